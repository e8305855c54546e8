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

from hydra.core.override_parser.overrides_parser import OverridesParser

from vae_lab.compose import quote_paths, train_config
from vae_lab.errors import UserError
from vae_lab.reporting import Run, load_run
from vae_lab.runs import RunDir

__all__ = ["Run", "load_run", "train"]


def train(config_overrides: Sequence[str] = (), run_dir: Optional[str | Path] = None) -> Run:
    """Train one run as `vae-lab train OVERRIDES...` would, into ``run_dir`` (or the override
    ``hydra.run.dir=...``; default: a new outputs/<date>/<time> folder, said on stderr), and return it
    opened with its best weights on its training device."""
    import shutil
    import sys
    from datetime import datetime

    from vae_lab.device import resolve_device
    from vae_lab.training import train as train_run

    overrides, named = run_folder_override(config_overrides)
    if named is not None and run_dir is not None:
        raise UserError(f"hydra.run.dir={named} and run_dir={run_dir}: name the run folder once")
    config = train_config(overrides)
    folder = Path(named or run_dir or Path("outputs") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")).expanduser().resolve()
    if named is None and run_dir is None:
        print(f"vae-lab: training into {folder}", file=sys.stderr, flush=True)
    fresh = not folder.exists()
    try:
        train_run(config, str(folder))
    except BaseException:
        if fresh and folder.is_dir() and not RunDir(folder).holds_a_run:  # refused before writing: leave nothing
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return load_run(folder, device=resolve_device(config.trainer.device))


def run_folder_override(config_overrides: Sequence[str]) -> tuple[list[str], Optional[str]]:
    """The overrides without ``hydra.run.dir=...``, and the folder it names (None: not given). Hydra's
    other settings (launchers, sweeps, logging) belong to the command line and are refused here."""
    if isinstance(config_overrides, str):
        raise TypeError(f"config_overrides is a list of overrides, such as [{config_overrides!r}], not a string")
    overrides, named = [], None
    for override in quote_paths([str(o) for o in config_overrides]):
        key, _, value = override.partition("=")
        if key == "hydra.run.dir":
            named = OverridesParser.create().parse_override(override).value()
        elif key.lstrip("+~").startswith(("hydra.", "hydra/")) or key == "hydra":
            raise UserError(f"{override}: Hydra's own settings belong to the command line (vae-lab train, "
                            "vae-lab sweep); vae_lab.train takes config overrides and the run folder")
        else:
            overrides.append(override)
    return overrides, named
