"""MLflow: one MLflow run per vae-lab run, found again by its folder (tag ``vae_lab.run_dir``), so a
resumed run continues its MLflow run and logs only the epochs it lacks.

Params: the flattened config. Metrics: each per-epoch metric with step = epoch, the final metrics as
``final/<name>``. Artifacts: config.yaml, metrics.json, metrics.jsonl and figures/. A sweep is a
parent run (tag ``vae_lab.sweep_dir``), made when the sweep starts; its runs nest under it.

The default store is a SQLite database, ``sqlite:///outputs/mlflow.db`` beside the run folders, with
artifacts in ``outputs/mlartifacts``; ``$MLFLOW_TRACKING_URI`` or ``logger.mlflow.tracking_uri``
choose another (a server: ``http://host:5000``).
"""

import logging
import os
import time
from pathlib import Path
from typing import Optional

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from vae_lab.config import MlflowConfig
from vae_lab.trackers.base import Embedding, Tracker, parameters

DEFAULT_STORE = Path("outputs") / "mlflow.db"
RUN_TAG, SWEEP_TAG = "vae_lab.run_dir", "vae_lab.sweep_dir"
# On the console, one warning when tracking stops: not MLflow's INFO lines (creating tables, ...), nor
# urllib3's line for each retry of an unreachable server.
logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
BATCH = 100  # MLflow takes at most 100 params (and 1000 metrics) per log_batch call
# An unreachable server should cost seconds, not MLflow's default minutes of retries.
QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def tracking_uri(settings: MlflowConfig) -> str:
    return settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE.resolve()}"


def client_and_experiment(settings: MlflowConfig) -> tuple[MlflowClient, str]:
    for name, value in QUICK_FAILURE.items():
        os.environ.setdefault(name, value)
    uri = tracking_uri(settings)
    artifacts = None
    if uri.startswith("sqlite:///"):  # a local store: the artifacts go beside it, not into the working folder
        database = Path(uri.removeprefix("sqlite:///"))
        database.parent.mkdir(parents=True, exist_ok=True)
        artifacts = (database.parent / "mlartifacts").resolve().as_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        try:
            return client, client.create_experiment(settings.experiment, artifact_location=artifacts)
        except Exception:  # noqa: BLE001  made meanwhile by a parallel job
            experiment = client.get_experiment_by_name(settings.experiment)
            if experiment is None:
                raise
    return client, experiment.experiment_id


def find_run(client: MlflowClient, experiment: str, tag: str, value: str) -> Optional[str]:
    found = client.search_runs([experiment], filter_string=f"tags.`{tag}` = '{value}'", max_results=1)
    return found[0].info.run_id if found else None


def sweep_run(client: MlflowClient, experiment: str, sweep_dir: str) -> str:
    """The parent run of a sweep, made on first use."""
    found = find_run(client, experiment, SWEEP_TAG, sweep_dir)
    if found is not None:
        return found
    folder = Path(sweep_dir)
    return client.create_run(experiment, run_name=f"sweep {folder.parent.name}/{folder.name}",
                             tags={SWEEP_TAG: sweep_dir}).info.run_id


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, settings: MlflowConfig, sweep: Optional[str], run_path: Path, config: dict,
                 history: list[dict]):
        self.client, experiment = client_and_experiment(settings)
        self.run_path = run_path
        self.run_id = find_run(self.client, experiment, RUN_TAG, str(run_path))
        if self.run_id is None:
            tags = {RUN_TAG: str(run_path)}
            if sweep:
                tags["mlflow.parentRunId"] = sweep_run(self.client, experiment, sweep)
            name = f"{run_path.parent.name}/{run_path.name}"
            self.run_id = self.client.create_run(experiment, run_name=name, tags=tags).info.run_id
            params = [Param(k, str(v)) for k, v in parameters(config).items()]
            for start in range(0, len(params), BATCH):
                self.client.log_batch(self.run_id, params=params[start:start + BATCH])
        else:
            self.client.update_run(self.run_id, status="RUNNING")
        logged = self.last_logged_epoch()
        for row in history:
            if row["epoch"] > logged:  # killed between its checkpoint and this log, or a tracker added on resume
                self.epoch(row, {})

    def last_logged_epoch(self) -> int:
        history = self.client.get_metric_history(self.run_id, "train/loss")
        return max((m.step for m in history), default=0)

    def epoch(self, row: dict, images: dict) -> None:
        self._log_metrics({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])

    def finish(self, metrics: dict, figures: list[Path], embedding: Optional[Embedding]) -> None:
        self._log_metrics({f"final/{k}": v for k, v in metrics.items()}, int(metrics.get("epochs", 0)))
        for name in ("config.yaml", "metrics.json", "metrics.jsonl"):
            if (self.run_path / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_path / name))
        for figure in figures:
            self.client.log_artifact(self.run_id, str(figure), "figures")

    def close(self, finished: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if finished else "FAILED")

    def _log_metrics(self, values: dict, step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + BATCH])


def start_sweep(settings: MlflowConfig, sweep_dir: Path) -> None:
    """Before a sweep's jobs start: its parent run, so that parallel jobs find one parent."""
    client, experiment = client_and_experiment(settings)
    sweep_run(client, experiment, str(sweep_dir))


def end_sweep(settings: MlflowConfig, sweep_dir: Path) -> None:
    """After a sweep: its summary attached to the parent run, which is then finished."""
    client, experiment = client_and_experiment(settings)
    run_id = sweep_run(client, experiment, str(sweep_dir))
    for name in ("summary.csv", "summary.md"):
        if (sweep_dir / name).is_file():
            client.log_artifact(run_id, str(sweep_dir / name))
    if (sweep_dir / "figures").is_dir():
        client.log_artifacts(run_id, str(sweep_dir / "figures"), "figures")
    client.set_terminated(run_id, "FINISHED")
