"""vae-lab: config-driven experiments on the latent spaces of variational autoencoders."""

__version__ = "0.1.0"
