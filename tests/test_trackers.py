"""Experiment trackers, read back with the trackers' own readers: TensorBoard's event accumulator and
MLflow's client (on the SQLite store, and through a real `mlflow server`)."""

import csv
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import vae_lab
from vae_lab.errors import UserError
from vae_lab.files import read_jsonl

QUICK = ("trainer.batch_size=64", "eval.is_samples=8", "eval.sample_images=0", "eval.probe_images=500",
         "eval.epoch_images=100", "eval.tsne_points=0")


def tensorboard_events(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def assert_tracked_history(history: list[dict], scalars) -> None:
    """Every per-epoch metric of metrics.jsonl, once per epoch, with its value."""
    for name in history[0]:
        if name == "epoch":
            continue
        expected = [(row["epoch"], row[name]) for row in history]
        tracked = scalars(name)
        assert [step for step, _ in tracked] == [step for step, _ in expected], name
        assert [value for _, value in tracked] == pytest.approx([v for _, v in expected], rel=1e-6), name


def test_a_run_and_its_resumption_appear_once_per_epoch_in_tensorboard_mlflow_and_csv(data_root, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default MLflow store is outputs/mlflow.db where vae-lab runs
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = [f"data.root={data_root}", "logger=[tensorboard,mlflow,csv]", "logger.tensorboard.projector_images=50",
                "logger.tensorboard.sample_images=9", *QUICK]
    vae_lab.train([*settings, "trainer.epochs=1", "eval.figures=false"], run_dir=tmp_path / "run")
    run = vae_lab.train([*settings, "trainer.epochs=2", "trainer.resume=true"], run_dir=tmp_path / "run")
    history, final = read_jsonl(run.path / "metrics.jsonl"), json.loads((run.path / "metrics.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]

    events = tensorboard_events(run.path)
    assert_tracked_history(history, lambda name: [(e.step, e.value) for e in events.Scalars(name)])
    assert events.Scalars("final/test/nelbo")[-1].value == pytest.approx(final["test/nelbo"], rel=1e-6)
    tags = events.Tags()
    assert [e.step for e in events.Images("epoch/reconstructions")] == [1, 2]
    assert [e.step for e in events.Images("epoch/prior_samples")] == [1, 2]
    assert {"figures/reconstructions", "figures/latent_traversal"} <= set(tags["images"])
    assert "config/text_summary" in tags["tensors"]
    projector = run.path / "tensorboard" / "00002" / "test_latents"
    metadata = (projector / "metadata.tsv").read_text().splitlines()
    assert metadata[0].split("\t") == ["digit", "test image"] and len(metadata) == 51
    assert (projector / "sprite.png").is_file()
    assert len((projector / "tensors.tsv").read_text().splitlines()) == 50

    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    [tracked] = client.search_runs([client.get_experiment_by_name("vae-lab").experiment_id])
    assert tracked.info.status == "FINISHED" and tracked.data.tags["vae_lab.run_dir"] == str(run.path)
    assert tracked.data.params["model.latent_dim"] == str(run.config.model.latent_dim)
    assert_tracked_history(history, lambda name: sorted((m.step, m.value) for m in
                                                         client.get_metric_history(tracked.info.run_id, name)))
    assert tracked.data.metrics["final/test/nelbo"] == pytest.approx(final["test/nelbo"])
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert {"config.yaml", "metrics.json", "metrics.jsonl", "figures"} <= artifacts
    assert (tmp_path / "outputs" / "mlartifacts").is_dir()  # beside the store, not in the working folder

    with open(run.path / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val/nelbo"]) == pytest.approx(history[1]["val/nelbo"])


def test_mlflow_catches_up_with_epochs_trained_before_it_was_asked_for(data_root, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = [f"data.root={data_root}", *QUICK, "eval.figures=false"]
    vae_lab.train([*settings, "trainer.epochs=1"], run_dir=tmp_path / "run")
    run = vae_lab.train([*settings, "trainer.epochs=2", "trainer.resume=true", "logger=mlflow",
                         f"logger.mlflow.tracking_uri={store}"], run_dir=tmp_path / "run")
    client = MlflowClient(store)
    [tracked] = client.search_runs([client.get_experiment_by_name("vae-lab").experiment_id])
    assert sorted(m.step for m in client.get_metric_history(tracked.info.run_id, "train/loss")) == [1, 2]
    assert len(run.history) == 2


def test_a_tracker_that_fails_costs_one_warning_and_never_the_run(data_root, tmp_path, caplog):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]  # bound, never listening: connections are refused
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "tensorboard").write_text("a file where TensorBoard wants its folder")
    with caplog.at_level(logging.WARNING):
        run = vae_lab.train([f"data.root={data_root}", *QUICK, "eval.figures=false", "trainer.epochs=1",
                             "logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}"],
                            run_dir=tmp_path / "run")
    closed.close()
    assert (run.path / "metrics.json").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert any(w.startswith("tensorboard tracking stopped") for w in warnings)
    assert any(w.startswith("mlflow tracking stopped") and f"127.0.0.1:{port}" in w for w in warnings)


def test_a_tracker_that_is_not_installed_is_refused_before_any_work(data_root, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'vae-lab\[tensorboard\]'"):
        vae_lab.train([f"data.root={data_root}", "logger=[mlflow,tensorboard]"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` on 127.0.0.1 over a SQLite store; its URI."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "mlflow server did not start"
                time.sleep(0.3)
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.xdist_group("sweeps")
def test_a_sweep_is_a_parent_run_with_its_runs_nested_on_an_mlflow_server(vae_lab, mlflow_server, tmp_path):
    sweep_dir = tmp_path / "sweep"
    vae_lab("sweep", "logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}", "model.beta=1,2",
            "trainer.epochs=1", *QUICK, "eval.figures=false", f"hydra.sweep.dir={sweep_dir}")
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("vae-lab").experiment_id])
    [parent] = [r for r in runs if "vae_lab.sweep_dir" in r.data.tags]
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)
    assert [r.data.tags["vae_lab.run_dir"] for r in children] == [str(sweep_dir / "0"), str(sweep_dir / "1")]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert [r.data.params["model.beta"] for r in children] == ["1.0", "2.0"]
    assert parent.info.status == "FINISHED"
    assert "summary.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    for child in children:
        history = read_jsonl(Path(child.data.tags["vae_lab.run_dir"]) / "metrics.jsonl")
        assert child.data.metrics["train/loss"] == pytest.approx(history[-1]["train/loss"])
    # The REST endpoint the MLflow UI reads a run's page from.
    with urllib.request.urlopen(f"{mlflow_server}/api/2.0/mlflow/runs/get?run_id={children[0].info.run_id}") as page:
        shown = json.load(page)["run"]
    assert shown["info"]["run_name"] == "sweep/0" and shown["info"]["status"] == "FINISHED"
