"""`vae-lab sweep`: Hydra multiruns with summaries, resumable, on Hydra's own launchers."""

import csv
import json

import pytest

from test_cli import QUICK_EVAL

TINY = ("trainer.epochs=1", "trainer.batch_size=128", "backbone.hidden=[64]", *QUICK_EVAL, "eval.sample_images=0")


def read_summary(sweep_dir):
    with open(sweep_dir / "summary.csv") as f:
        return list(csv.DictReader(f))


def stamps(sweep_dir, name):
    return {p.parent.name if name == "metrics.json" else p.parents[1].name: p.stat().st_mtime_ns
            for p in sweep_dir.glob(f"*/{'checkpoints/' if name == 'last.pt' else ''}{name}")}


def sweep_runner(vae_lab_command, data_root, sweep_dir, *args):
    """``run(check=True, directory=sweep_dir)``: `vae-lab sweep ARGS` into a folder, as a user runs it."""
    import os
    import subprocess

    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}

    def run(check=True, directory=sweep_dir):
        result = subprocess.run([*vae_lab_command, "sweep", *args, f"hydra.sweep.dir={directory}"], cwd=sweep_dir.parent,
                                env=env, text=True, capture_output=True, timeout=600)
        assert not check or result.returncode == 0, result.stderr[-3000:]
        return result

    return run


@pytest.fixture(scope="session")  # once per test worker, shared by its group
def joblib_sweep(tmp_path_factory, vae_lab_command, data_root):
    """A 2 x 2 sweep (latent size x beta) of tiny runs, two jobs at a time."""
    sweep_dir = tmp_path_factory.mktemp("sweeps") / "grid"
    run = sweep_runner(vae_lab_command, data_root, sweep_dir, "model.latent_dim=2,3", "model.beta=0,1",
                       "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY)
    return sweep_dir, run, run()


@pytest.mark.xdist_group("joblib_sweep")
def test_a_joblib_sweep_writes_a_row_per_run_and_the_figures(joblib_sweep):
    sweep_dir, _, first = joblib_sweep
    rows = read_summary(sweep_dir)
    assert len(rows) == 4 and all(r["status"] == "complete" for r in rows)
    assert {(r["model.latent_dim"], r["model.beta"]) for r in rows} == {("2", "0"), ("2", "1"), ("3", "0"), ("3", "1")}
    assert all(float(r["test/nelbo"]) > 0 and float(r["rate"]) >= 0 for r in rows)
    table = (sweep_dir / "summary.md").read_text()
    assert table.count("| complete |") == 4 and "model.latent_dim" in table and "test/nelbo" in table
    for figure in ("rate_distortion.png", "metrics_vs_latent_dim.png", "metrics_vs_beta.png", "montage.png"):
        assert (sweep_dir / "figures" / figure).stat().st_size > 10_000, figure
    assert first.stdout.strip().splitlines()[-1] == str(sweep_dir.resolve())


@pytest.mark.xdist_group("joblib_sweep")
def test_a_rerun_starts_no_training_and_a_deleted_result_reruns_only_its_run(joblib_sweep):
    sweep_dir, run, _ = joblib_sweep
    checkpoints, results = stamps(sweep_dir, "last.pt"), stamps(sweep_dir, "metrics.json")
    # One rerun shows both: the three complete runs are skipped, and the one without its result
    # is re-evaluated from its finished checkpoint without training again.
    (sweep_dir / "2" / "metrics.json").unlink()
    run()
    again = stamps(sweep_dir, "metrics.json")
    assert again.keys() == results.keys() and again["2"] != results["2"]
    assert {k: v for k, v in again.items() if k != "2"} == {k: v for k, v in results.items() if k != "2"}
    assert stamps(sweep_dir, "last.pt") == checkpoints
    assert len(read_summary(sweep_dir)) == 4


@pytest.mark.xdist_group("joblib_sweep")
def test_summarize_rebuilds_the_summary_of_a_partial_folder(joblib_sweep, vae_lab, tmp_path):
    import shutil

    from vae_lab.sweep import summarize

    sweep_dir, _, _ = joblib_sweep
    partial = tmp_path / "partial"
    shutil.copytree(sweep_dir, partial)
    (partial / "1" / "metrics.json").unlink()
    shutil.rmtree(partial / "figures")
    assert summarize(partial) == partial
    rows = {r["run"]: r for r in read_summary(partial)}
    assert rows["1"]["status"] == "incomplete (1/1 epochs)" and rows["0"]["status"] == "complete"
    assert (partial / "figures" / "montage.png").is_file()
    missing = vae_lab("sweep", "summarize", str(tmp_path / "nothing"), check=False)  # the command line path
    assert missing.returncode == 2 and "no such folder" in missing.stderr


def test_a_failed_job_is_recorded_and_the_others_finish(vae_lab, tmp_path):
    sweep_dir = tmp_path / "failing"
    # The job with data.val_fraction=0.999 keeps a single training image: more labels than images.
    result = vae_lab("sweep", "data.val_fraction=0.1,0.999", "data.n_labels=20", f"hydra.sweep.dir={sweep_dir}",
                     *TINY, check=False)
    assert result.returncode == 1 and "1 job(s) failed: 1" in result.stderr
    rows = {r["run"]: r for r in read_summary(sweep_dir)}
    assert rows["0"]["status"] == "complete"
    assert rows["1"]["status"].startswith("failed: data.n_labels=20")
    assert "Traceback" in (sweep_dir / "1" / "error.txt").read_text()


def test_a_sweep_through_submitit_local_completes(vae_lab, tmp_path):
    sweep_dir = tmp_path / "submitit"
    vae_lab("sweep", "model.latent_dim=2,3", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={sweep_dir}", *TINY)
    rows = read_summary(sweep_dir)
    assert len(rows) == 2 and all(r["status"] == "complete" for r in rows)


def test_an_optuna_search_returns_the_metric_it_minimises(vae_lab, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "optuna"
    vae_lab("sweep", "hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep_dir}", *TINY)
    best = (sweep_dir / "optimization_results.yaml").read_text()
    rows = read_summary(sweep_dir)
    assert len(rows) == 2 and "best_value" in best
    # The search selects on the validation split: its best value is the lowest val/nelbo of a trial.
    validation = [json.loads(path.read_text())["val/nelbo"] for path in sweep_dir.glob("*/metrics.json")]
    assert len(validation) == 2
    assert float(best.split("best_value:")[1].split()[0]) == pytest.approx(min(validation))
