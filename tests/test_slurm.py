"""Sweeps on a real SLURM cluster: tools/slurm-cluster.sh brings one up on this machine (slurmctld,
slurmdbd with MariaDB, and a compute node whose slurmd runs in its own PID and UTS namespaces, so that
its jobs see none of this host's processes and another host name). `.ci/run` starts it and exports
SLURM_CONF; without a cluster these tests are skipped with the reason, except where
VAE_LAB_REQUIRE_SLURM=1 (CI) makes that a failure.

The tests run one after another on one test worker (the cluster's cores are this machine's)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import EXACT
from test_cli import QUICK_EVAL

pytestmark = [pytest.mark.xdist_group("slurm")]

QUICK = ("backbone.hidden=[64]", *QUICK_EVAL, "eval.sample_images=0", "eval.figures=false", *EXACT)
NODE = "vaelab-node"  # the compute node's host name (tools/slurm-cluster.sh)
GUIDE = Path(__file__).parents[1] / "docs" / "guide" / "sweeps.md"
# The cluster commands docs/guide/sweeps.md shows: the tests below run each (with QUICK and a folder).
SLURM = "model.latent_dim=2,3 trainer.epochs=2 hydra/launcher=slurm hydra.launcher.timeout_min=10"
REQUEUED = ("model.latent_dim=2 trainer.epochs=1200 hydra/launcher=slurm hydra.launcher.timeout_min=2 "
            "hydra.launcher.signal_delay_s=30")
OUT_OF_MEMORY = ("model.latent_dim=2 trainer.epochs=2 hydra/launcher=slurm hydra.launcher.timeout_min=10 "
                 "+hydra.launcher.additional_parameters.mem=200M")
STACKED = ("model.latent_dim=2,3 trainer.epochs=2 hydra/launcher=stacked hydra.launcher.executor=submitit_slurm "
           "+hydra.launcher.submitit.cpus_per_task=1 hydra.launcher.submitit.timeout_min=10")


def test_the_guide_shows_only_cluster_commands_these_tests_run():
    shown = {line.strip().removeprefix("vae-lab sweep ") for line in GUIDE.read_text().splitlines()
             if line.strip().startswith("vae-lab sweep") and ("slurm" in line or "submitit" in line)}
    assert shown == {SLURM, REQUEUED, OUT_OF_MEMORY, STACKED}


def slurm_answers() -> str:
    """Why no cluster can be used here, or '' when one answers."""
    if not os.environ.get("SLURM_CONF"):
        return ("no SLURM cluster: SLURM_CONF is not set (as root: tools/slurm-cluster.sh install, then "
                "eval \"$(tools/slurm-cluster.sh up)\")")
    if shutil.which("sinfo") is None:
        return "no SLURM cluster: sinfo is not installed"
    try:
        listed = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "no SLURM cluster: sinfo did not answer in 30 s"
    if listed.returncode != 0 or not listed.stdout.strip():
        return f"no SLURM cluster: sinfo says {(listed.stderr or listed.stdout).strip()!r}"
    return ""


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_answers()
    if reason and os.environ.get("VAE_LAB_REQUIRE_SLURM") == "1":
        pytest.fail(f"{reason}, and VAE_LAB_REQUIRE_SLURM=1 asks for one")
    if reason:
        pytest.skip(reason)


def squeue(*args: str) -> list[str]:
    return subprocess.run(["squeue", "-h", "-r", *args], capture_output=True, text=True).stdout.split()


def metrics(sweep: Path, job: int) -> dict:
    """A run's final metrics, without its timings (cost_s, train_s, train/images_per_s)."""
    return numbers(sweep / str(job))


def numbers(run: Path) -> dict:
    return {k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if not k.endswith("_s")}


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory, data_root, vae_lab_command):
    """The reference: two runs through the basic launcher, in this process's machine."""
    sweep = tmp_path_factory.mktemp("slurm") / "basic"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    subprocess.run([*vae_lab_command, "sweep", "model.latent_dim=2,3", "trainer.epochs=2", *QUICK,
                    f"hydra.sweep.dir={sweep}"], env=env, check=True, capture_output=True, timeout=600)
    return sweep


def test_the_slurm_launcher_runs_each_job_on_the_node_with_the_basic_launchers_numbers(cluster, basic_sweep,
                                                                                        vae_lab, tmp_path):
    """The jobs run on the compute node, in its own PID namespace (where the sweep's PID means
    nothing: a watcher that looked for it there ended every job after 13 s), and compute what the
    basic launcher computes, to the last bit."""
    sweep = tmp_path / "slurm"
    result = vae_lab("sweep", *SLURM.split(), *QUICK, f"hydra.sweep.dir={sweep}", timeout=600)
    assert "2 complete" in result.stderr + result.stdout
    for job in (0, 1):
        assert metrics(sweep, job) == metrics(basic_sweep, job)
        logs = "".join(p.read_text() for p in (sweep / ".submitit").glob(f"*_{job}/*_log.*"))
        assert f"hostname={NODE}" in logs, "the job did not run on the compute node"


def test_hydras_own_slurm_launcher_is_refused_with_vae_labs_named(cluster, vae_lab, tmp_path):
    result = vae_lab("sweep", "model.latent_dim=2,3", "hydra/launcher=submitit_slurm",
                     f"hydra.sweep.dir={tmp_path / 'refused'}", check=False)
    assert result.returncode == 2 and "use hydra/launcher=slurm" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "refused").exists()


def test_the_guides_stacked_cluster_command_runs_and_runs_again(cluster, basic_sweep, vae_lab, tmp_path):
    """Both runs as one population in one SLURM job, with the cluster settings given as the guide
    gives them (``+hydra.launcher.submitit.*``); run again, the same command finds the sweep
    complete instead of refusing it as another grid."""
    sweep = tmp_path / "stacked"
    command = ("sweep", *STACKED.split(), *QUICK, f"hydra.sweep.dir={sweep}")
    vae_lab(*command, timeout=600)
    assert len([p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]) == 1, "one job for both runs"
    for job in (0, 1):
        for key, value in metrics(basic_sweep, job).items():
            if isinstance(value, float):  # the population's sums run in another order (docs/guide/sweeps.md)
                assert metrics(sweep, job)[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    again = vae_lab(*command, timeout=600)
    assert "2 complete already, 0 to run" in again.stderr


def test_a_cancelled_job_stops_at_once_and_its_rerun_resumes_it_exactly(cluster, basic_sweep, vae_lab_command,
                                                                        data_root, tmp_path):
    """``scancel`` of a running job: it stops within seconds (it used to train on until SIGKILL),
    its run is a failed row naming SLURM's state, the other job finishes untouched, and the rerun
    resumes the cancelled run to the numbers of an uninterrupted one."""
    sweep = tmp_path / "cancelled"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    command = [*vae_lab_command, "sweep", "model.latent_dim=2,3", "trainer.epochs=40", *QUICK,
               "hydra/launcher=slurm", "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}"]
    sweeping = subprocess.Popen(command, env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    history = sweep / "0" / "metrics.jsonl"
    wait_until(lambda: history.is_file() and len(history.read_text().splitlines()) >= 3, 300, "job 0's third epoch")
    job = (sweep / "0" / ".lock").read_text().split("SLURM job ")[1].rstrip(")\n")
    subprocess.run(["scancel", job], check=True)
    cancelled = time.monotonic()
    lock = sweep / "0" / ".lock"  # removed by a holder that lets go
    wait_until(lambda: not lock.exists() or not lock.read_text() or job not in squeue(), 30, "the cancelled job's end")
    stopped_after = time.monotonic() - cancelled
    out, err = sweeping.communicate(timeout=600)
    assert sweeping.returncode == 1, err
    assert "job 0 failed: SLURM job" in err and "CANCELLED" in err and "Traceback" not in err
    summary = (sweep / "summary.csv").read_text()
    assert "failed: SLURM job" in summary and "CANCELLED" in summary and "complete" in summary
    assert stopped_after < 15, f"the job trained on for {stopped_after:.0f} s after scancel"
    assert (sweep / ".submitit").is_dir(), "the job logs the failure names are kept"

    rerun = subprocess.run(command, env=env, cwd=tmp_path, text=True, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in (sweep / "0" / "train.log").read_text()
    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run([*vae_lab_command, "train", "model.latent_dim=2", "trainer.epochs=40", *QUICK,
                    f"hydra.run.dir={uninterrupted}"], env=env, check=True, capture_output=True, timeout=600)
    assert metrics(sweep, 0) == numbers(uninterrupted)


def test_a_job_killed_for_memory_is_a_failed_row_and_the_sweep_ends(cluster, vae_lab, tmp_path):
    """SLURM kills a job over its memory; the sweep writes its summary with the job as a failed row
    naming SLURM's state and what its step daemon said, and exits 1, without a traceback."""
    sweep = tmp_path / "memory"
    result = vae_lab("sweep", *OUT_OF_MEMORY.split(), *QUICK, f"hydra.sweep.dir={sweep}", check=False, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    row = (sweep / "summary.csv").read_text()
    assert "failed: SLURM job" in row and "memory limit" in row, row
    assert "see error.txt" in result.stderr


def test_without_accounting_a_dead_job_is_given_up_not_awaited_forever(cluster, vae_lab, tmp_path, monkeypatch):
    """With no sacct (accounting not set up) a job that died leaves no record of how it ended: the
    sweep gives it up once it has left the queue, instead of waiting forever."""
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "sacct").write_text("#!/bin/sh\necho 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n")
    (shims / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    sweep = tmp_path / "unaccounted"
    result = vae_lab("sweep", *OUT_OF_MEMORY.split(), *QUICK, "hydra.launcher.lost_after_s=20",
                     f"hydra.sweep.dir={sweep}", check=False, timeout=600)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "left the queue without a result" in (sweep / "summary.csv").read_text()


def test_a_job_over_its_time_limit_is_requeued_and_ends_with_the_uninterrupted_numbers(
        cluster, vae_lab, vae_lab_command, data_root, tmp_path):
    """The job gets two minutes and trains for longer (1200 epochs of about 0.15 s); SLURM signals it
    30 s before its limit (its controller looks every 30 s, so 30 to 60 s before), submitit requeues
    it, and it resumes its run. The sweep ends with the numbers of a run that was never interrupted, trained meanwhile
    beside it."""
    sweep, alone = tmp_path / "requeued", tmp_path / "alone"
    run = [o for o in REQUEUED.split() if not o.startswith(("hydra/", "hydra."))]
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    with open(tmp_path / "alone.log", "w") as log:  # a pipe would fill up and stop it
        uninterrupted = subprocess.Popen([*vae_lab_command, "train", *run, *QUICK, f"hydra.run.dir={alone}"],
                                         env=env, cwd=tmp_path, stdout=log, stderr=log)
    result = vae_lab("sweep", *REQUEUED.split(), *QUICK, f"hydra.sweep.dir={sweep}", timeout=1200)
    assert uninterrupted.wait(timeout=600) == 0, (tmp_path / "alone.log").read_text()[-2000:]
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "Requeued job" in logs, "the job ended before its time limit: give it more epochs"
    assert "resuming" in (sweep / "0" / "train.log").read_text()
    assert metrics(sweep, 0) == numbers(alone)
    assert "1 complete" in result.stderr + result.stdout


def test_ctrl_c_cancels_every_job_the_sweep_submitted_and_says_which(cluster, vae_lab_command, data_root, tmp_path):
    sweep = tmp_path / "interrupted"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    sweeping = subprocess.Popen([*vae_lab_command, "sweep", "model.latent_dim=2,3,4", "trainer.epochs=500", *QUICK,
                                 "hydra/launcher=slurm", "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}"],
                                env=env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: (sweep / "0" / "metrics.jsonl").is_file(), 300, "the first epoch")
    submitted = squeue("-o", "%i")
    assert len(submitted) == 3, submitted  # two running, one waiting for a core
    sweeping.send_signal(signal.SIGINT)
    out, err = sweeping.communicate(timeout=120)
    assert sweeping.returncode == 130, err
    assert "cancelled 3 job(s) it submitted" in err and all(job in err for job in submitted), err
    wait_until(lambda: not squeue(), 60, "an empty queue")
