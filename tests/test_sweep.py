"""`vae-lab sweep`: Hydra multiruns with summaries, resumable, on Hydra's own launchers."""

import csv
import json
import os
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from test_cli import QUICK_EVAL

TINY = ("trainer.epochs=1", "trainer.batch_size=128", "backbone.hidden=[64]", *QUICK_EVAL, "eval.sample_images=0")
METRICS_ONLY = (*TINY, "eval.figures=false")  # for sweeps whose runs' figures no test looks at


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
    assert "vae-lab: Ranked by val/nelbo (lower is better): the best run is " in first.stderr  # its closing lines


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
                     *METRICS_ONLY, check=False)
    assert result.returncode == 1 and "1 job(s) failed: 1" in result.stderr
    rows = {r["run"]: r for r in read_summary(sweep_dir)}
    assert rows["0"]["status"] == "complete"
    assert rows["1"]["status"].startswith("failed: data.n_labels=20")
    assert "Traceback" in (sweep_dir / "1" / "error.txt").read_text()


def test_a_sweep_through_submitit_local_completes(vae_lab, tmp_path):
    sweep_dir = tmp_path / "submitit"
    vae_lab("sweep", "model.latent_dim=2,3", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
            f"hydra.sweep.dir={sweep_dir}", *METRICS_ONLY)
    rows = read_summary(sweep_dir)
    assert len(rows) == 2 and all(r["status"] == "complete" for r in rows)


def test_an_optuna_study_prunes_a_diverged_trial_and_continues_where_a_killed_search_stopped(vae_lab, tmp_path):
    """Trial 0 diverges (pruned, the search goes on); trial 2 was left running by a killed sweep: the
    rerun finishes it in its own folder, and the study ends with n_trials trials."""
    import optuna

    sweep_dir = tmp_path / "optuna"
    sweep_dir.mkdir()
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    space = {"model.obs_std": optuna.distributions.CategoricalDistribution([1e-30, 0.5])}
    study = optuna.create_study(storage=storage, study_name=str(sweep_dir))
    study.enqueue_trial({"model.obs_std": 1e-30})  # the sampler's first choices, fixed for the test
    study.enqueue_trial({"model.obs_std": 0.5})
    search = ("sweep", "hparams_search=optuna", "hydra.sweeper.params=null", "model.obs_std=choice(1e-30,0.5)",
              "model.likelihood=gaussian", f"hydra.sweep.dir={sweep_dir}", *METRICS_ONLY)
    first = vae_lab(*search, "hydra.sweeper.n_trials=2", check=False)
    assert "trial 0 (model.obs_std=1e-30) failed: training diverged" in first.stderr
    assert "counts it as pruned and the search goes on" in first.stderr
    study.enqueue_trial({"model.obs_std": 0.5})
    study.ask(space)  # trial 2, as a sweep killed while training it leaves it: running, its folder begun
    (sweep_dir / "2" / ".hydra").mkdir(parents=True)

    second = vae_lab(*search, "hydra.sweeper.n_trials=3", check=False)
    assert "2 of 3 trials done, 1 to finish where it stopped" in second.stderr
    states = [t.state.name for t in optuna.load_study(study_name=str(sweep_dir), storage=storage).trials]
    assert states == ["PRUNED", "COMPLETE", "COMPLETE"]
    assert (sweep_dir / "2" / "metrics.json").is_file() and not (sweep_dir / "3").exists()
    # The search selects on the validation split: its best value is the lowest val/nelbo of a trial.
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    validation = {int(p.parent.name): json.loads(p.read_text())["val/nelbo"] for p in sweep_dir.glob("*/metrics.json")}
    assert sorted(validation) == [1, 2] and best.best_value == pytest.approx(min(validation.values()))
    assert validation[best.best_trial] == min(validation.values())


def test_a_continued_study_does_not_draw_its_first_trials_again():
    """A seeded sampler made afresh for a continued study is seeded past the trials it has."""
    import optuna
    from hydra_plugins.vae_lab_optuna_sweeper.optuna_sweeper import make_sampler

    settings = {"_target_": "optuna.samplers.TPESampler", "seed": 0}
    space = {"beta": optuna.distributions.FloatDistribution(0.25, 4.0)}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = optuna.create_study(sampler=make_sampler(settings, 0))
    drawn = [first.ask(space).params["beta"] for _ in range(3)]
    continued = optuna.create_study(sampler=make_sampler(settings, 3))
    for beta in drawn:
        continued.add_trial(optuna.trial.create_trial(params={"beta": beta}, distributions=space, value=beta))
    assert continued.ask(space).params["beta"] not in drawn
    assert make_sampler(settings, 3).__class__ is optuna.samplers.TPESampler


@pytest.mark.parametrize("returned, problem", [(1.5, None), (float("nan"), "not finite (nan)"),
                                               (float("inf"), "not finite (inf)"), ((1.0, 2.0), "2 values for 1")])
def test_a_trial_value_that_is_not_one_finite_number_is_a_problem_not_a_crash(returned, problem):
    from hydra.core.utils import JobReturn, JobStatus
    from hydra_plugins.vae_lab_optuna_sweeper.optuna_sweeper import objective_values

    job = JobReturn(status=JobStatus.COMPLETED, _return_value=returned)
    values, found = objective_values(job, objectives=1)
    assert (found is None) == (problem is None) and (problem is None or problem in found)
    assert values == ([returned] if problem is None else [])


def test_runs_that_differ_only_in_seed_are_summarised_as_mean_and_sd(tmp_path):
    """Against numpy: two latent sizes over three seeds (and one run that failed, left out)."""
    import numpy as np

    from vae_lab.sweep import summarize

    nelbo = {(2, 0): 120.0, (2, 1): 122.0, (2, 2): 127.0, (8, 0): 101.0, (8, 1): 100.0, (8, 2): 105.0}
    for number, ((latent, seed), value) in enumerate(nelbo.items()):
        run = tmp_path / str(number)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- model.latent_dim={latent}\n- seed={seed}\n")
        (run / "metrics.json").write_text(json.dumps({"test/nelbo": value, "test/kl": value / 10, "test/recon": 1.0}))
    failed = tmp_path / "6"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text("- model.latent_dim=8\n- seed=3\n")
    (failed / "error.txt").write_text("training diverged\n")
    summarize(tmp_path)
    with open(tmp_path / "summary_over_seeds.csv") as file:
        rows = {r["model.latent_dim"]: r for r in csv.DictReader(file)}
    for latent in (2, 8):
        values = np.array([v for (d, _), v in nelbo.items() if d == latent])
        assert rows[str(latent)]["runs"] == "3" and rows[str(latent)]["seeds"] == "0 1 2"
        assert float(rows[str(latent)]["test/nelbo_mean"]) == pytest.approx(values.mean())
        assert float(rows[str(latent)]["test/nelbo_sd"]) == pytest.approx(values.std(ddof=1))
    table = (tmp_path / "summary.md").read_text()
    assert "| 2 | 3 | 12.3 ± 0.36 | 123 ± 3.6 |" in table and "## Every run" in table
    # Ranked by test/nelbo (no validation split here): latent 8 first, beyond the spread (102.0 ± 2.6
    # against 123.0 ± 3.6), in the sentence and in both tables.
    assert ("Ranked by test/nelbo (lower is better): model.latent_dim=8 (102.0 ± 2.6): best beyond the spread "
            "over seeds.") in table
    assert table.index("| 8 | 3 |") < table.index("| 2 | 3 |")
    assert table.index("| 4 | 8 | 1 |") < table.index("| 3 | 8 | 0 |") < table.index("| 5 | 8 | 2 |") < table.index("| 0 | 2 |")
    assert (tmp_path / "figures" / "metrics_vs_latent_dim.png").is_file()
    assert not (tmp_path / "figures" / "metrics_vs_seed.png").exists()



def _runs(values: dict[tuple[str, str], dict]) -> list:
    from vae_lab.summary import RunSummary

    return [RunSummary(str(number), Path("/nowhere") / str(number), {"model.beta": beta, "seed": seed}, "complete", metrics)
            for number, ((beta, seed), metrics) in enumerate(values.items())]


def test_a_ranking_takes_the_metrics_direction_and_says_how_clearly_the_best_leads():
    from vae_lab.summary import Ranking, RunSummary, ranking, seed_groups

    runs = _runs({("1", "0"): {"val/nelbo": 100.0, "test/probe_acc": 0.9}, ("1", "1"): {"val/nelbo": 104.0},
                  ("4", "0"): {"val/nelbo": 101.0}, ("4", "1"): {"val/nelbo": 103.0}})
    rank = ranking(runs)
    assert (rank.metric, rank.direction) == ("val/nelbo", "lower")  # validation first: what chose best.pt
    groups = seed_groups(runs, ["model.beta", "seed"])
    assert rank.verdict(runs, ["model.beta", "seed"], groups) == (
        "Ranked by val/nelbo (lower is better): model.beta=1 (102.0 ± 2.8): best mean, within the spread of another.")
    single = [r for r in runs if r.overrides["seed"] == "0"]
    assert rank.verdict(single, ["model.beta"], []) == (
        "Ranked by val/nelbo (lower is better): the best run is 0 (model.beta=1) at 100.0, one run per setting "
        "(no spread over seeds to tell a difference from).")
    one_seed = seed_groups(single, ["model.beta", "seed"])
    assert rank.verdict(single, ["model.beta", "seed"], one_seed).endswith(
        "one seed each, so no difference can be told from the spread.")
    accuracy = [RunSummary(r.name, r.path, r.overrides, r.status, {"test/nelbo": 1.0, "test/probe_acc": acc})
                for r, acc in zip(single, (0.7, 0.9))]
    assert ranking(accuracy).metric == "test/nelbo"
    assert [r.name for r in Ranking("test/probe_acc", False).measured(accuracy)] == ["2", "0"]  # higher first
    incomplete = [RunSummary("9", Path("/nowhere"), {}, "incomplete (1/10 epochs)", {})]
    assert ranking(incomplete) is None


def test_a_sweep_ranks_by_the_objective_its_runs_were_optimised_for(tmp_path):
    from vae_lab.summary import closing_verdict

    for number, (accuracy, nelbo) in enumerate([(0.8, 100.0), (0.9, 120.0)]):
        run = tmp_path / str(number)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- model.beta={number + 1}\n")
        (run / "config.yaml").write_text("optimized_metric: test/probe_acc\nseed: 0\nmodel: {beta: %d}\n" % (number + 1)
                                         + "".join(f"{part}: {{}}\n" for part in ("backbone", "data", "trainer", "eval")))
        (run / "metrics.json").write_text(json.dumps({"test/nelbo": nelbo, "test/probe_acc": accuracy}))
    assert closing_verdict(tmp_path).startswith(
        "Ranked by test/probe_acc (higher is better): the best run is 1 (model.beta=2) at 0.9000")


def test_a_sweep_over_seeds_alone_gets_markdown_tables_with_as_many_cells_as_columns(tmp_path):
    from vae_lab.sweep import summarize

    for seed in (0, 1):
        run = tmp_path / str(seed)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (run / "metrics.json").write_text(json.dumps({"test/nelbo": 100.0 + seed, "test/kl": 5.0}))
    summarize(tmp_path)
    tables = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("|")]
    assert len(tables) == 2 + 1 + 2 + 2  # over seeds: head, rule, one row; every run: head, rule, two rows
    for table in (tables[:3], tables[3:]):
        assert len({line.count("|") for line in table}) == 1, table
    assert tables[0].startswith("| runs |") and tables[2].startswith("| 2 | ")
    assert tables[3].startswith("| run | seed | status |")

@pytest.mark.parametrize("at_once, members, expected", [(1, 1, "about 6 min"), (2, 1, "about 3 min"),
                                                        (2, 3, "(6 at a time)")])
def test_the_time_estimate_counts_the_jobs_that_run_side_by_side(tmp_path, at_once, members, expected):
    """Four runs of 10 epochs of 9 s each: 6 min one after another, 3 min two at a time."""
    from vae_lab.progress import SweepProgress

    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "metrics.jsonl").write_text(json.dumps({"epoch_s": 9.0, "train/members": members}) + "\n")
    line = SweepProgress(tmp_path, jobs=4, epochs=10, at_once=at_once, started=0).first_epoch()
    assert expected in line
    if members == 1:
        assert "will take" in line and ("at a time" in line) == (at_once > 1)


def test_the_time_estimate_counts_evaluation_once_a_run_of_this_sweep_has_finished(tmp_path):
    """Run 0 finished in this sweep with 30 s of evaluation: the 3 runs left add 90 s (2 min) one after another,
    45 s two at a time; a run finished before the sweep started, or one without eval_s, says nothing."""
    from vae_lab.progress import SweepProgress

    started = time.time() - 60
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "metrics.json").write_text(json.dumps({"eval_s": {"probes": 10.0, "figures": 20.0}}))
    line = SweepProgress(tmp_path, jobs=4, epochs=10, started=started).first_evaluation()
    assert "run 0's evaluation took 30 s" in line and "the 3 runs left adds about 2 min" in line, line
    assert "about 45 s (2 at a time)" in SweepProgress(tmp_path, jobs=4, epochs=10, at_once=2,
                                                       started=started).first_evaluation()
    os.utime(tmp_path / "0" / "metrics.json", (started - 10, started - 10))
    assert SweepProgress(tmp_path, jobs=4, epochs=10, started=started).first_evaluation() is None
    (tmp_path / "0" / "metrics.json").write_text("{}")
    assert SweepProgress(tmp_path, jobs=4, epochs=10, started=started).first_evaluation() is None


def test_the_joblib_launcher_runs_as_many_jobs_at_once_as_it_is_given_or_one_per_core():
    from vae_lab.compose import jobs_at_once, threads_per_job

    cores = os.cpu_count()
    assert jobs_at_once(OmegaConf.create({"n_jobs": 3})) == 3
    assert jobs_at_once(OmegaConf.create({"n_jobs": -1})) == cores
    assert jobs_at_once(OmegaConf.create({"_target_": "basic"})) == 1
    assert threads_per_job(OmegaConf.create({"n_jobs": -1})) == 1


def test_the_time_estimate_of_a_finished_sweep_is_no_error(tmp_path):
    from vae_lab.progress import SweepProgress

    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "metrics.jsonl").write_text(json.dumps({"epoch_s": 9.0}) + "\n")
    (tmp_path / "0" / "metrics.json").write_text("{}")
    assert SweepProgress(tmp_path, jobs=1, epochs=10, at_once=2, started=0).first_epoch() is None  # nothing left


def test_the_time_estimate_of_a_resumed_sweep_takes_this_sweeps_pace_and_the_epochs_left(tmp_path):
    """Job 0 logged 6 fast epochs in an earlier session; job 1 has logged 2 epochs of 9 s since this
    sweep started. Left: 4 + 8 epochs at 9 s, 108 s; the old estimate (job 0's first epoch for all
    ten epochs of both jobs) said 20 s."""
    from vae_lab.progress import SweepProgress

    for job, rows in (("0", [{"epoch_s": 1.0}] * 6), ("1", [{"epoch_s": 9.0}] * 2)):
        (tmp_path / job).mkdir()
        (tmp_path / job / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    started = time.time() - 60
    os.utime(tmp_path / "0" / "metrics.jsonl", (started - 3600, started - 3600))
    line = SweepProgress(tmp_path, jobs=2, epochs=10, started=started).first_epoch()
    assert "an epoch takes 9.0 s" in line and "(12 epochs) will take about 2 min" in line, line
    os.utime(tmp_path / "1" / "metrics.jsonl", (started - 3600, started - 3600))
    assert SweepProgress(tmp_path, jobs=2, epochs=10, started=started).first_epoch() is None  # no epoch yet



def test_a_resumed_run_leaves_its_old_epochs_out_of_the_sweeps_pace(tmp_path):
    """Resuming rewrites metrics.jsonl to last.pt's rows and keeps the file's time: the epoch
    before a pause (an hour here) must not pass for this sweep's pace."""
    from vae_lab.progress import SweepProgress
    from vae_lab.files import read_jsonl
    from vae_lab.training import align_epoch_rows

    history = [{"epoch": 1, "epoch_s": 9.0}, {"epoch": 2, "epoch_s": 3600.0}]
    path = tmp_path / "0" / "metrics.jsonl"
    path.parent.mkdir()
    for on_file in (history, history + [{"epoch": 3, "epoch_s": 9.0}]):  # agrees; a row more than last.pt
        path.write_text("".join(json.dumps(row) + "\n" for row in on_file))
        started = time.time()
        os.utime(path, (started - 60, started - 60))
        align_epoch_rows(path, history)
        assert read_jsonl(path) == history and path.stat().st_mtime == started - 60
        assert SweepProgress(tmp_path, jobs=1, epochs=10, started=started).first_epoch() is None
    path.unlink()
    align_epoch_rows(path, [])  # a new run starts its file now
    assert read_jsonl(path) == [] and path.stat().st_mtime >= started

@pytest.mark.parametrize("overrides", [
    ["seed=0,1,2", "model.latent_dim=2,4"],
    ["model=continuous,discrete", "seed=0,1", "trainer.epochs=3"],
    ["seed=0,1,2", "model.latent_dim=2,16", "seed=0"],  # the last value given for a key wins
    ["model.beta=choice(0,1,10)", "+extra=x"],
])
def test_the_sweep_grid_is_the_basic_sweepers(overrides):
    """vae-lab checks the jobs of a sweep before Hydra runs them: they must be the very jobs, in the
    very order, of Hydra's basic sweeper (which numbers the job folders)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from vae_lab.plan import grid

    parsed = OverridesParser.create().parse_overrides(overrides)
    assert grid(parsed) == BasicSweeper.split_arguments(parsed, None)[0]


def test_a_summary_csv_reads_back_as_the_runs_it_was_written_from(tmp_path):
    """The results a report publishes are checked against the summary.csv committed beside them."""
    from vae_lab.summary import RunSummary, read_summary_csv, write_summary_csv

    runs = [RunSummary("0", tmp_path / "0", {"seed": "0", "model.latent_dim": "2"}, "complete",
                       {"test/nelbo": 101.23456789012345, "test/kl": 4.5, "test/probe_acc": 0.875}),
            RunSummary("separate/1", tmp_path / "separate" / "1", {"seed": "1", "model.share_encoder": "False"},
                       "failed: diverged", {}),
            RunSummary("2", tmp_path / "2", {"seed": "2", "model.latent_dim": "16"}, "complete",
                       {"test/nelbo": 99.5, "test/kl_disc": 1.0})]
    write_summary_csv(tmp_path / "summary.csv", runs)
    back = read_summary_csv(tmp_path / "summary.csv")
    assert [(r.name, r.overrides, r.status, r.metrics) for r in back] == [
        (r.name, r.overrides, r.status, r.metrics) for r in runs]
    assert [r.rate for r in back] == [4.5, None, 1.0]


def test_the_rate_adds_the_kl_terms_once_not_their_breakdowns_by_dimension_or_variable():
    from vae_lab.summary import RunSummary

    metrics = {"test/kl": 4.5, "test/kl_disc": 1.0, "test/kl_per_dim": [4.0, 0.5], "test/kl_per_var": [0.25, 0.75],
               "test/recon": 80.0}
    assert RunSummary("0", None, {}, "complete", metrics).rate == 5.5
