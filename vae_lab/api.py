"""vae-lab from Python, for notebooks: open a run folder as an object, or train one in-process.

    import vae_lab
    run = vae_lab.load_run("outputs/2026-01-01/12-00-00")     # config, history, metrics, model
    codes = run.model.embed(run.splits.test.batch(torch.arange(8)).images)
    new = vae_lab.train(["model.latent_dim=2", "trainer.epochs=2"], run_dir="outputs/notebook-run")

``vae_lab.train`` is the command line's `vae-lab train` without the command line: the same config
composition and checks, the same run folder.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from vae_lab.compose import train_config, train_config_from_dict
from vae_lab.config import TrainConfig
from vae_lab.data import Splits, load_splits
from vae_lab.errors import UserError
from vae_lab.models import VAE
from vae_lab.reporting import load_model
from vae_lab.runs import RunDir

WEIGHTS = ("best", "last")


@dataclass
class Run:
    """A run folder, read: its config, per-epoch history and final metrics (empty until the run is
    complete), and its model with the chosen weights, in eval mode on ``device``. The model keeps its
    public ``encode``, ``embed``, ``decode``, ``sample`` and ``reconstruct``."""

    path: Path
    config: TrainConfig
    history: list[dict]
    metrics: dict
    model: VAE
    epoch: int  # of the weights loaded
    device: torch.device
    _splits: Optional[Splits] = field(default=None, repr=False)

    @property
    def splits(self) -> Splits:
        """The run's train, validation and test splits (its data config, on its device), loaded
        on first use."""
        if self._splits is None:
            self._splits = load_splits(self.config.data, self.device)
        return self._splits


def load_run(path: str | Path, weights: str = "best", device: str | torch.device = "cpu",
             data_root: Optional[str] = None) -> Run:
    """Open the run folder at ``path`` with its ``best`` (lowest validation loss) or ``last`` weights.
    ``data_root``: read MNIST from there instead of the run's data.root."""
    if weights not in WEIGHTS:
        raise UserError(f"weights={weights!r}: expected one of {', '.join(WEIGHTS)}")
    run = RunDir.open(path, weights)
    config = train_config_from_dict(run.read_config(), run.config)
    if data_root is not None:
        config.data.root = str(Path(data_root).expanduser().resolve())
    device = torch.device(device)
    model, checkpoint = load_model(run, config, device, weights)
    return Run(run.path, config, run.history(), run.final_metrics() if run.is_complete else {},
               model.eval(), int(checkpoint["epoch"]), device)


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
