"""Experiment trackers: TensorBoard, MLflow and a CSV file, fed at a run's moments (its start, the end
of each epoch, its final report).

A tracker mirrors the run folder, which stays the record. So a tracker never costs a run: one that
cannot start or write (a missing package, an unreachable server, a folder it may not write) says so
in one warning line and is dropped, and the run goes on.

A resumed run continues its tracker runs: TensorBoard discards what a killed process logged after
the checkpoint it resumes from; MLflow finds the run by its folder and logs the epochs it lacks.
"""

import csv
import logging
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from vae_lab.config import LoggerConfig, MlflowConfig
from vae_lab.files import atomic_write
from vae_lab.trackers.base import Embedding, Tracker

log = logging.getLogger(__name__)


class Trackers:
    """The trackers of one run, each call guarded: a failing tracker warns once and is dropped."""

    def __init__(self, trackers: list[Tracker], run_path: Path):
        self.trackers, self.run_path = trackers, run_path

    @staticmethod
    def open(settings: LoggerConfig, run_path: Path, config: dict, history: list[dict]) -> "Trackers":
        """Start the trackers ``settings`` names for the run in ``run_path`` (``config`` as saved),
        continuing after ``history`` (the epochs already trained)."""
        openers: dict[str, Callable[[], Tracker]] = {
            "csv": lambda: CsvTracker(run_path / settings.csv.file, history),
            "tensorboard": lambda: _tensorboard().TensorBoardTracker(settings.tensorboard, run_path, config, history),
            "mlflow": lambda: _mlflow().MlflowTracker(settings.mlflow, settings.sweep, run_path, config, history),
        }
        started = Trackers([], run_path)
        for name, opener in openers.items():
            if getattr(settings, name) is not None:
                tracker = started._guarded(name, opener)
                if tracker is not _FAILED:
                    started.trackers.append(tracker)
        return started

    def epoch(self, row: dict, images: Callable[[], dict[str, torch.Tensor]]) -> None:
        """``images`` is called only when a tracker wants them."""
        drawn = images() if any(t.wants_images for t in self.trackers) else {}
        self._each(lambda t: t.epoch(row, drawn))

    def finish(self, metrics: dict, figures: list[Path], embedding: Callable[[], Optional[Embedding]]) -> None:
        points = embedding() if any(t.wants_embedding for t in self.trackers) else None
        self._each(lambda t: t.finish(metrics, figures, points))

    def close(self, finished: bool) -> None:
        self._each(lambda t: t.close(finished))
        self.trackers = []

    def _each(self, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            if self._guarded(tracker.name, lambda: call(tracker)) is _FAILED:
                self.trackers.remove(tracker)

    def _guarded(self, name: str, call: Callable[[], object]) -> object:
        return guarded(call, f"{name} tracking stopped for {self.run_path}", "the run goes on; its folder has everything")


class CsvTracker(Tracker):
    """Rewritten whole (atomically) each epoch from the run's history, so a resumed run's file has
    each epoch once; columns are every metric any epoch has, in order of first appearance."""

    name = "csv"

    def __init__(self, path: Path, history: list[dict]):
        self.path, self.rows = path, list(history)
        if self.rows:
            self._write()

    def epoch(self, row: dict, images: dict) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))

        def write(file) -> None:
            writer = csv.DictWriter(file, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(self.path, write)


class SweepTracking(Callback):
    """Hydra callback: a sweep's own tracker run (MLflow's parent run), made before its jobs start,
    so that parallel jobs find one parent, and finished with the sweep's summary when it ends."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._mlflow(config, "start_sweep")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._mlflow(config, "end_sweep")

    @staticmethod
    def _mlflow(config: Any, moment: str) -> None:
        if config.logger.get("mlflow") is None:
            return
        settings = MlflowConfig(**OmegaConf.to_container(config.logger.mlflow, resolve=True))
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        guarded(lambda: getattr(_mlflow(), moment)(settings, sweep_dir), f"mlflow tracking of the sweep {sweep_dir}",
                "the sweep goes on")


_FAILED = object()


def guarded(call: Callable[[], object], what: str, consequence: str) -> object:
    """``call()``, or on any error one warning line and ``_FAILED``: a tracker never costs the work."""
    try:
        return call()
    except Exception as error:  # noqa: BLE001
        from vae_lab.errors import one_line

        log.warning("%s: %s; %s", what, one_line(error), consequence)
        return _FAILED


def _tensorboard():
    from vae_lab.trackers import tensorboard  # imported only when asked for: an optional extra

    return tensorboard


def _mlflow():
    from vae_lab.trackers import mlflow  # imported only when asked for: an optional extra

    return mlflow
