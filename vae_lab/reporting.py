"""What a trained model leaves behind: final test metrics and figures, at the end of training and
again, from the run folder alone, in `vae-lab eval`."""

import logging
import time
from pathlib import Path
from typing import Optional

import torch

from vae_lab.config import EvalConfig, TrainConfig

from vae_lab.compose import train_config_from_dict
from vae_lab.data import Splits, load_splits
from vae_lab.evaluate import final_metrics
from vae_lab.figures import draw_figures
from vae_lab.models import VAE, build_model
from vae_lab.errors import DamagedFile, UserError
from vae_lab.runs import RunDir, write_json

log = logging.getLogger(__name__)


def report(model: VAE, splits: Splits, config: TrainConfig, history: list[dict], snapshots: list[dict],
           metrics_path: Path, figures_dir: Path, extra: Optional[dict] = None,
           metrics: Optional[dict] = None) -> dict:
    """Every metric (``metrics`` when computed already, with the rest of a population) and, unless
    ``eval.figures`` is off, every figure of ``model``; metrics.json is written last (its presence
    means done)."""
    metrics = {**(metrics if metrics is not None else final_metrics([model], splits, [config])[0]), **(extra or {})}
    if config.eval.figures:
        started = time.perf_counter()
        drawn = draw_figures(model, splits, history, snapshots, figures_dir, config, metrics)
        log.info("figures (%d): %.1f s", len(drawn), time.perf_counter() - started)
    write_json(metrics_path, metrics)
    return metrics


def load_best_model(run: RunDir, config: TrainConfig, device: torch.device) -> tuple[VAE, dict]:
    """The run's model with its best weights, and the checkpoint they came from."""
    best = run.load_best(device)
    model = build_model(config.model, config.backbone, tuple(best["image_shape"])).to(device)
    model.load_state_dict(best["model"])
    return model, best


def evaluate_run(run_dir: str, device: torch.device, eval_config: EvalConfig,
                 data_root: Optional[str] = None) -> tuple[RunDir, dict[str, float]]:
    """Reload a finished (or interrupted) run and recompute its metrics and figures into <run>/eval."""
    run = RunDir(run_dir)
    if not run.best_checkpoint.is_file():
        raise UserError(f"run_dir={run_dir}: no checkpoints/best.pt there; give the folder of a "
                        "vae-lab train run that has finished at least one epoch")
    config = train_config_from_dict(run.read_config())
    config.eval = eval_config
    if data_root is not None:
        config.data.root = str(Path(data_root).expanduser().resolve())
    splits = load_splits(config.data, device)
    model, best = load_best_model(run, config, device)
    log.info("evaluating %s (best epoch %d) on %s", run.path, best["epoch"], device)
    history, snapshots = training_record(run)
    started = time.perf_counter()
    metrics = report(model, splits, config, history, snapshots, run.eval / "metrics.json", run.eval,
                     extra={"best_epoch": best["epoch"]})
    log.info("evaluation took %.1f s", time.perf_counter() - started)
    return run, metrics


def training_record(run: RunDir) -> tuple[list[dict], list[dict]]:
    """The per-epoch metrics and figure snapshots of a run, for its curves and training GIF. Neither
    is needed to evaluate the best weights: a missing or damaged file costs only its figure."""
    history: list[dict] = []
    snapshots: list[dict] = []
    try:
        history = run.history()
    except DamagedFile as damaged:
        log.warning("%s: no training curves", damaged)
    if run.last_checkpoint.is_file():
        try:
            last = run.load_last()
            snapshots = last.get("snapshots", [])  # runs from before snapshots were kept have none
            history = history or last.get("history", [])
        except DamagedFile as damaged:
            log.warning("%s: no training animation", damaged)
    return history, snapshots
