"""vae-lab from Python, for notebooks: open a run folder as an object, or train one in-process.

    import vae_lab
    run = vae_lab.load_run("outputs/2026-01-01/12-00-00")     # config, history, metrics, model
    codes = run.model.embed(run.splits.test.batch(torch.arange(8)).images)
    new = vae_lab.train(["model.latent_dim=2", "trainer.epochs=2"], run_dir="outputs/notebook-run")

``vae_lab.train`` is the command line's `vae-lab train` without the command line: the same config
composition and checks, the same run folder.
"""

from pathlib import Path
from typing import Optional, Sequence

from vae_lab.compose import train_config
from vae_lab.reporting import Run, load_run
from vae_lab.runs import RunDir

__all__ = ["Run", "load_run", "train"]

def train(config_overrides: Sequence[str] = (), run_dir: Optional[str | Path] = None) -> Run:
    """Train one run as `vae-lab train OVERRIDES...` would, into ``run_dir`` (default: a new
    outputs/<date>/<time> folder), and return it opened with its best weights on its training
    device."""
    import shutil
    from datetime import datetime

    from vae_lab.device import resolve_device
    from vae_lab.training import train as train_run

    config = train_config(list(config_overrides))
    folder = Path(run_dir or Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")).expanduser().resolve()
    fresh = not folder.exists()
    try:
        train_run(config, str(folder))
    except BaseException:
        if fresh and folder.is_dir() and not RunDir(folder).holds_a_run:  # refused before writing: leave nothing
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return load_run(folder, device=resolve_device(config.trainer.device))
