"""Sweeps: many training runs in one folder, and their summary.

:func:`summarize` reads a sweep folder's runs (vae_lab/summary.py), finished or not, and writes
beside them ``summary.csv``, ``summary.md`` and ``figures/`` (vae_lab/figures/sweep.py).
:class:`SummarizeSweep` does it when a Hydra multirun ends; ``vae-lab sweep summarize PATH`` does it
on demand.
"""

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vae_lab.figures.sweep import metrics_against, montage, rate_distortion
from vae_lab.runs import is_replicate
from vae_lab.summary import (markdown, numeric_key, read_runs, seed_groups, short_key, swept_keys,
                             write_markdown, write_seed_csv, write_summary_csv)

log = logging.getLogger(__name__)


def summary_text(sweep_dir: str | Path) -> str:
    """summary.md of the runs in ``sweep_dir`` as it stands, written nowhere: for a sweep folder that
    is still running (its own writer summarizes it as it ends) or cannot be written."""
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    runs, keys, groups = _read(sweep_dir)
    return markdown(sweep_dir, runs, keys, groups)


def _read(sweep_dir: Path) -> tuple[list, list[str], list]:
    runs = read_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"no runs (*/.hydra/overrides.yaml) under {sweep_dir}")
    swept = swept_keys(runs)
    keys = swept or sorted({k for r in runs for k in r.overrides})  # runs that vary in nothing: all they set
    groups = seed_groups(runs, keys) if any(is_replicate(k) for k in keys) else []
    return runs, keys, groups


def summarize(sweep_dir: str | Path) -> Path:
    """Write summary.csv, summary.md and figures/ for the runs in ``sweep_dir`` (complete or not);
    a sweep over seeds also gets summary_over_seeds.csv, its mean ± sd table, and error bars."""
    sweep_dir = Path(sweep_dir).expanduser().resolve()
    runs, keys, groups = _read(sweep_dir)
    swept = swept_keys(runs)
    write_summary_csv(sweep_dir / "summary.csv", runs)
    if groups:
        write_seed_csv(sweep_dir / "summary_over_seeds.csv", groups)
    write_markdown(sweep_dir / "summary.md", runs, keys, groups)
    figures = sweep_dir / "figures"
    figures.mkdir(exist_ok=True)
    complete = [r for r in runs if r.status == "complete"]
    if complete:
        rate_distortion(complete, keys, figures / "rate_distortion.png")
        varied = [k for k in swept if not is_replicate(k)]  # a plot against a key that never changes says nothing
        for key in varied:
            if numeric_key(complete, key):
                metrics_against(complete, key, [k for k in varied if k != key], figures / f"metrics_vs_{short_key(key)}.png")
    montage(runs, keys, figures / "montage.png")
    log.info("summary of %d runs (%d complete) in %s", len(runs), len(complete), sweep_dir)
    return sweep_dir


class SummarizeSweep(Callback):
    """Hydra callback: summarize the sweep folder when a multirun ends (in the launching process,
    whichever launcher ran the jobs)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summarize(config.hydra.sweep.dir)
