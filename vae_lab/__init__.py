"""vae-lab: config-driven experiments on the latent spaces of variational autoencoders.

From Python: ``vae_lab.load_run(path)`` opens a run folder, ``vae_lab.train([...overrides])`` trains
one (vae_lab/api.py). They load on first use, so that `import vae_lab` (and the command line, which
imports only the standard library first) stays light.
"""

__version__ = "0.1.0"
__all__ = ["Run", "load_run", "train"]


def __getattr__(name: str):
    if name in __all__:
        from vae_lab import api

        return getattr(api, name)
    raise AttributeError(f"module 'vae_lab' has no attribute {name!r}")
