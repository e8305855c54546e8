"""Faults and bad input, each as a user met it: nothing silently wrong, no run lost, one line and no
traceback for a mistake or a damaged file, nothing written before a refusal."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import EXACT, N_TRAIN, make_tiny_mnist, write_idx
from test_cli import QUICK_EVAL
from vae_lab.errors import ConfigError, DamagedFile, RunFailed, UserError
from vae_lab.files import remove_temporary_files
from vae_lab.runs import Claims, RunDir, claimed

TINY = ("trainer.epochs=1", "backbone.hidden=[64]", *QUICK_EVAL, "eval.sample_images=0", "eval.figures=false")


def one_line_error(result: subprocess.CompletedProcess, status: int = 2) -> str:
    assert result.returncode == status, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith("vae-lab: error: ") or lines[-1] == "vae-lab: interrupted", lines
    errors = [line for line in lines if line.startswith("vae-lab: error")]
    assert len(errors) <= 1, lines
    return lines[-1]


@pytest.fixture
def tiny_run(train_config, tmp_path):
    """Train one tiny epoch in-process; returns (run folder, a function to train again with overrides)."""
    from vae_lab.training import train

    def run_training(folder: Path, *overrides: str):
        return train(train_config(*TINY, *overrides), str(folder))

    folder = tmp_path / "run"
    run_training(folder)
    return folder, run_training


# ---- the data ----------------------------------------------------------------------------------


def _damage_mnist(raw: Path, how: str) -> str:
    labels, images = raw / "train-labels-idx1-ubyte", raw / "train-images-idx3-ubyte"
    if how == "label 200":
        data = bytearray(labels.read_bytes())
        data[8 + 5] = 200
        labels.write_bytes(bytes(data))
        return "it holds the label 200"
    if how == "bad magic":
        images.write_bytes(b"\x00\x00\x0b\x03" + images.read_bytes()[4:])
        return "magic number is 0x00000b03"
    if how == "empty":
        labels.write_bytes(b"")
        return "too short for an IDX header"
    if how == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
        return "but it has"
    if how == "counts disagree":
        write_idx(labels, np.zeros(N_TRAIN - 1, dtype=np.uint8))
        return f"{N_TRAIN - 1:,} labels for the {N_TRAIN:,} images"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["label 200", "bad magic", "empty", "truncated", "counts disagree"])
def test_a_malformed_mnist_file_is_named_with_what_is_wrong(tmp_path, train_config, how):
    from vae_lab.data import load_splits

    root = make_tiny_mnist(tmp_path / "data")
    expected = _damage_mnist(root / "MNIST" / "raw", how)
    with pytest.raises(ConfigError) as caught:
        load_splits(train_config(f"data.root={root}").data)
    message = str(caught.value)
    assert expected in message and "ubyte is not an MNIST file" in message and "\n" not in message


def test_a_validation_split_that_leaves_no_training_images_is_refused(train_config):
    from vae_lab.data import load_splits

    with pytest.raises(ConfigError, match="data.val_fraction=0.99999: holds out 1,200 of the 1,200"):
        load_splits(train_config("data.val_fraction=0.99999").data)


@pytest.mark.parametrize("override, message", [
    ("trainer.lr=inf", "trainer.lr=inf: expected a finite number"),
    ("model.beta=inf", "model.beta=inf: expected a finite number"),
    ("model.beta=nan", "model.beta=nan: expected a finite number"),
    ("seed=-1", "seed=-1: expected an integer from 0 to 4294967295"),
    (f"seed={2**70}", f"seed={2**70}: expected an integer from 0"),
    ("data.seed=4294967296", "data.seed=4294967296: expected an integer from 0"),
])
def test_infinite_numbers_and_seeds_out_of_range_are_refused(train_config, override, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        train_config(override)


# ---- damaged and crafted files -------------------------------------------------------------------


class Exploit:
    """A pickle that would create a file when loaded unsafely."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _damage(path: Path, how: str, marker: Path) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00\xffnot what vae-lab wrote\n{[")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "crafted pickle":
        torch.save({"model": Exploit(marker)}, path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "crafted pickle"])
def test_every_file_of_a_run_that_is_damaged_is_one_line_and_runs_no_code(tiny_run, tmp_path, how):
    folder, _ = tiny_run
    marker = tmp_path / "code-ran"
    run = RunDir(folder)
    readers = {
        run.last_checkpoint: run.load_last, run.best_checkpoint: run.load_best,
        run.metrics: run.final_metrics, run.metrics_per_epoch: run.history, run.config: run.read_config,
    }
    for path, read in readers.items():
        if (how == "crafted pickle" and path.suffix != ".pt") or (how == "empty" and path == run.metrics_per_epoch):
            continue  # an empty metrics.jsonl is a run with no finished epoch, not a damaged one
        original = path.read_bytes()
        _damage(path, how, marker)
        with pytest.raises(DamagedFile) as caught:
            read()
        message = str(caught.value)
        assert str(path) in message and "\n" not in message, message
        assert "weights_only=False" not in message and "weights_only" not in message
        path.write_bytes(original)
    assert not marker.exists(), "loading a crafted checkpoint ran its code"


def test_a_reference_classifier_cache_that_is_crafted_is_trained_again(tmp_path, train_config, monkeypatch):
    from vae_lab.data import load_splits
    from vae_lab.metrics.reference import cache_path, reference_classifier

    monkeypatch.setenv("VAE_LAB_CACHE", str(tmp_path / "cache"))
    config = train_config()
    marker = tmp_path / "code-ran"
    splits = load_splits(config.data)
    path = cache_path(config.data, splits.fingerprint["sha256"])
    path.parent.mkdir(parents=True)
    torch.save({"model": Exploit(marker)}, path)
    assert reference_classifier(config.data, splits, torch.device("cpu")) is not None
    assert not marker.exists()


def test_the_reference_classifier_works_where_no_cache_can_be_written(tmp_path, train_config, monkeypatch):
    import vae_lab.metrics.reference as reference
    from vae_lab.data import load_splits

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(reference, "atomic_write", read_only)
    monkeypatch.setenv("VAE_LAB_CACHE", str(tmp_path / "cache"))
    config = train_config()
    splits = load_splits(config.data)
    model = reference.reference_classifier(config.data, splits, torch.device("cpu"))
    assert model is not None and not reference.cache_path(config.data, splits.fingerprint["sha256"]).exists()


def test_a_saved_config_is_data_not_interpolations(tiny_run, monkeypatch):
    from vae_lab.compose import train_config_from_dict

    folder, _ = tiny_run
    config = RunDir(folder).config
    config.write_text(config.read_text().replace(f"root: {RunDir(folder).read_config()['data']['root']}",
                                                 "root: ${oc.env:VAE_LAB_SECRET}/elsewhere"))
    monkeypatch.setenv("VAE_LAB_SECRET", "/resolved")
    typed = train_config_from_dict(RunDir(folder).read_config())
    assert typed.data.root == "${oc.env:VAE_LAB_SECRET}/elsewhere"


def test_temporaries_of_a_killed_process_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    left = [tmp_path / "checkpoints" / ".last.pt.k3x_9q1z.tmp", tmp_path / ".metrics.jsonl.abcdefgh.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden.tmp", tmp_path / "checkpoints" / "last.pt"]
    for path in left + kept:
        path.write_text("x")
    assert remove_temporary_files(tmp_path) == 2
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)


# ---- one writer per folder, and what counts as a run -----------------------------------------------


def test_a_folder_has_one_writer_and_a_dead_writer_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vae_lab.runs import claimed\n"
                               f"with claimed({str(folder)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"in use by vae-lab process {holder.pid} on "):
        with claimed(folder):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    claims = Claims()
    with claims.hold(folder):  # the kernel released the dead holder's lock
        with claims.hold(folder):  # and a holder may claim again
            pass


def test_a_holder_that_lets_go_removes_its_lock_and_a_lock_on_the_removed_file_is_taken_again(tmp_path, monkeypatch):
    """A process that opened .lock just before its holder removed it locks a file nobody else sees:
    it must notice, and lock the file the path names now, or two writers would hold the folder."""
    import vae_lab.runs as runs

    folder = tmp_path / "made" / "run"
    with claimed(folder):
        stale = os.open(folder / ".lock", os.O_RDWR)  # opened while held, as a second process might
        (folder / "kept.txt").write_text("a file of the run")
    assert sorted(p.name for p in folder.iterdir()) == ["kept.txt"]  # the holder's lock file is gone
    opened, real_open = [], os.open

    def stale_first(path, flags, mode=0o777):
        opened.append(path)
        return stale if len(opened) == 1 else real_open(path, flags, mode)

    monkeypatch.setattr(runs.os, "open", stale_first)
    with claimed(folder):
        assert len(opened) == 2 and (folder / ".lock").read_text().startswith(f"vae-lab process {os.getpid()}")
    monkeypatch.undo()
    empty = tmp_path / "empty"
    with claimed(empty):
        pass
    assert not empty.exists()  # a folder the claim made, left empty: removed with its lock
    (tmp_path / "theirs").mkdir()
    with claimed(tmp_path / "theirs"):
        pass
    assert (tmp_path / "theirs").is_dir()  # one it did not make stays


@pytest.mark.parametrize("leftover, named", [("checkpoints/best.pt", "best.pt"), ("metrics.jsonl", "metrics.jsonl"),
                                             ("config.yaml", "config.yaml"), ("figures/samples.png", "figures")])
def test_anything_train_would_write_over_is_refused_without_resume(tmp_path, train_config, leftover, named):
    from vae_lab.training import train

    path = tmp_path / "run" / leftover
    path.parent.mkdir(parents=True)
    path.write_bytes(b"someone's file")
    with pytest.raises(ConfigError, match=f"already holds a run \\({named}\\)"):
        train(train_config(*TINY), str(tmp_path / "run"))
    assert path.read_bytes() == b"someone's file"


def test_resume_on_other_data_is_refused_and_on_a_moved_copy_continues(tiny_run, tmp_path, data_root):
    folder, run_training = tiny_run
    other = make_tiny_mnist(tmp_path / "other")
    _damage_mnist(other / "MNIST" / "raw", "counts disagree")
    write_idx(other / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.arange(N_TRAIN) % 10)
    with pytest.raises(ConfigError, match="was trained on other data"):
        run_training(folder, "trainer.epochs=2", "trainer.resume=true", f"data.root={other}")
    assert len(RunDir(folder).history()) == 1
    moved = shutil.copytree(data_root, tmp_path / "moved")
    metrics = run_training(folder, "trainer.epochs=2", "trainer.resume=true", f"data.root={moved}")
    assert metrics["epochs"] == 2 and len(RunDir(folder).history()) == 2


# ---- divergence -------------------------------------------------------------------------------------


def test_a_run_that_diverges_stops_and_keeps_its_last_finite_epoch(tiny_run, monkeypatch):
    from vae_lab.loop import Loop

    folder, run_training = tiny_run
    original = Loop.train_epoch

    def poisoned(self):  # the weights blow up in the second epoch
        with torch.no_grad():
            next(iter(self.population.params.values())).fill_(float("nan"))
        return original(self)

    monkeypatch.setattr(Loop, "train_epoch", poisoned)
    with pytest.raises(RunFailed) as caught:
        run_training(folder, "trainer.epochs=3", "trainer.resume=true")
    message = str(caught.value)
    assert "training diverged in epoch 2 at optimizer step" in message and "keeps epoch 1" in message
    assert "trainer.lr (now 0.001)" in message and "trainer.grad_clip=1" in message
    run = RunDir(folder)
    last = run.load_last()
    assert last["epoch"] == 1 and all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert len(run.history()) == 1 and run.best_checkpoint.is_file()
    assert run.error.read_text().startswith("training diverged in epoch 2")

    from vae_lab.summary import run_status

    assert run_status(run, {})[0].startswith("failed: training diverged in epoch 2")


def test_a_run_that_diverges_at_once_says_nothing_was_saved(train_config, tmp_path):
    from vae_lab.training import train

    with pytest.raises(RunFailed, match="diverged in epoch 1 .* No epoch finished.*larger model.obs_std"):
        train(train_config(*TINY, "model.likelihood=gaussian", "model.obs_std=1e-30"), str(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---- sweeps ---------------------------------------------------------------------------------------


def _fake_run(folder: Path, overrides: list[str], latent_dim: int, complete: bool = True, error: str = "") -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "config.yaml").write_text(f"model:\n  name: continuous\n  latent_dim: {latent_dim}\n  beta: 1.0\n"
                                        "backbone:\n  name: mlp\n  hidden: [64]\ndata:\n  name: mnist\n"
                                        "trainer:\n  epochs: 1\neval:\n  figures: false\nseed: 0\n")
    if complete:
        (folder / "metrics.json").write_text(json.dumps({"test/nelbo": 100.0 + latent_dim}))
    if error:
        (folder / "error.txt").write_text(error)


def test_a_summary_row_always_describes_the_run_that_made_its_numbers(tmp_path):
    from vae_lab.summary import read_runs

    _fake_run(tmp_path / "0", ["model.latent_dim=2", "model.beta=1"], 2)
    _fake_run(tmp_path / "1", ["model.latent_dim=4", "model.beta=1"], 8)  # settings from another grid
    _fake_run(tmp_path / "2", ["model.latent_dim=8", "model.beta=1"], 8, error="model.latent_dim=8: refused\n")
    _fake_run(tmp_path / "3", ["model=continuous", "backbone.hidden=[64]"], 3)
    (tmp_path / "4" / ".hydra").mkdir(parents=True)
    (tmp_path / "4" / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    _fake_run(tmp_path / "5", ["model.latent_dim=5"], 5)
    (tmp_path / "5" / "metrics.json").write_text('{"test/nelbo": 1')
    # a sweep rerun with settings of how, not what, is computed finds its runs complete: so does its summary
    _fake_run(tmp_path / "6", ["model.latent_dim=6", "trainer.threads=1", "eval.figures=true"], 6)
    config = tmp_path / "6" / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 1\n", "epochs: 1\n  threads: null\n"))
    status = {r.name: (r.status, r.metrics) for r in read_runs(tmp_path)}
    assert status["0"] == ("complete", {"test/nelbo": 102.0})
    assert status["1"] == ("mismatch: its config.yaml has model.latent_dim=8", {})
    assert status["2"] == ("failed: model.latent_dim=8: refused", {})
    assert status["3"][0] == "complete"
    assert status["4"][0].startswith("damaged: .hydra/overrides.yaml") and status["5"][0] == "damaged: metrics.json cannot be read"
    assert status["6"] == ("complete", {"test/nelbo": 106.0})


def test_a_sweep_folder_rerun_with_another_grid_is_refused_before_any_work(vae_lab, tmp_path):
    sweep = tmp_path / "sweep"
    for number, value in enumerate((2, 4)):
        _fake_run(sweep / str(number), ["trainer.resume=True", f"model.latent_dim={value}"], value)
    before = {p: p.stat().st_mtime_ns for p in sweep.rglob("*")}
    for grid in (("model.latent_dim=4,2",), ("model.latent_dim=2,4", "model.beta=1,4")):
        message = one_line_error(vae_lab("sweep", *grid, f"hydra.sweep.dir={sweep}", *TINY, check=False))
        assert "holds a sweep over another grid: its job 0 ran with" in message
    assert {p: p.stat().st_mtime_ns for p in sweep.rglob("*")} == before


# ---- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ("model.latent_dim=100000000", "on backbone=mlp would need 289.1 GiB for its weights"),
    ("data.val_fraction=0.99999", "data.val_fraction=0.99999: holds out 1,200 of the 1,200 training images"),
    ("data.n_train=5000", "data.n_train=5000: expected at most the 1,080 training images left after validation"),
    ("optimized_metric=test/nonexistent", "optimized_metric=test/nonexistent: this run reports no such metric"),
])
def test_a_refusal_that_needs_the_data_still_writes_nothing(vae_lab, tmp_path, override, message):
    folder = tmp_path / "never"
    assert message in one_line_error(vae_lab("train", override, f"hydra.run.dir={folder}", *TINY, check=False))
    assert not folder.exists()



@pytest.mark.parametrize("launcher", ["basic", "stacked"])
def test_a_sweep_without_its_data_is_one_line_before_any_job_writes(vae_lab, tmp_path, launcher):
    """Each job used to find the data missing on its own, after its folder, error.txt and the
    summary with its empty figure were written."""
    sweep = tmp_path / "sweep"
    result = vae_lab("sweep", "seed=0,1", f"hydra/launcher={launcher}", f"data.root={tmp_path / 'nothing'}",
                     "data.download=false", f"hydra.sweep.dir={sweep}", *TINY, check=False)
    assert "MNIST is not in" in one_line_error(result) and "data.download=true" in result.stderr
    assert not sweep.exists()

def test_folders_that_are_files_or_missing_are_refused_without_creating_anything(vae_lab, tmp_path):
    afile = tmp_path / "a_file"
    afile.write_text("mine")
    assert "is a file, not a folder" in one_line_error(vae_lab("train", f"hydra.run.dir={afile}", check=False))
    assert "is a file, not a folder" in one_line_error(vae_lab("sweep", "seed=0,1", f"hydra.sweep.dir={afile}",
                                                               check=False))
    missing = tmp_path / "no_run"
    assert "no such folder" in one_line_error(vae_lab("eval", f"run_dir={missing}", check=False))
    assert "is a file, not a folder" in one_line_error(vae_lab("eval", f"run_dir={afile}", check=False))
    assert not missing.exists() and afile.read_text() == "mine"


def test_a_busy_run_folder_is_refused_before_hydra_writes_into_it(vae_lab, tmp_path):
    folder = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from vae_lab.runs import claimed\n"
                               f"with claimed({str(folder)!r}):\n    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        message = one_line_error(vae_lab("train", f"hydra.run.dir={folder}", *TINY, check=False))
        assert f"is in use by vae-lab process {holder.pid}" in message
        assert sorted(p.name for p in folder.iterdir()) == [".lock"]
    finally:
        holder.kill()


def test_a_damaged_checkpoint_on_resume_and_eval_is_one_line(tiny_run, vae_lab, tmp_path):
    folder, _ = tiny_run
    marker = tmp_path / "code-ran"
    run = RunDir(folder)
    torch.save({"model": Exploit(marker)}, run.last_checkpoint)
    message = one_line_error(vae_lab("train", f"hydra.run.dir={folder}", "trainer.resume=true", "trainer.epochs=2",
                                     *TINY[1:], check=False))
    assert "last.pt cannot be read (it holds Python objects" in message and "vae-lab eval" in message
    # A complete run is evaluated from best.pt alone: a damaged last.pt costs only its animation.
    result = vae_lab("eval", f"run_dir={folder}", *QUICK_EVAL, "eval.figures=false")
    assert (folder / "eval" / "metrics.json").is_file() and "last.pt cannot be read" in result.stderr
    _damage(run.config, "garbage", marker)
    assert "config.yaml cannot be read (not valid YAML" in one_line_error(
        vae_lab("eval", f"run_dir={folder}", check=False))
    assert not marker.exists()


def test_eval_recomputes_a_run_whose_metrics_files_are_damaged(tiny_run, vae_lab):
    """What `vae-lab eval` is for: metrics.json and metrics.jsonl cut short cost only the curves
    (reading the run through the Python API's reader once refused it)."""
    folder, _ = tiny_run
    run = RunDir(folder)
    run.metrics.write_text('{"test/nelbo": 1')
    run.metrics_per_epoch.write_text('{"epoch": 1, "train/lo')
    result = vae_lab("eval", f"run_dir={folder}", *QUICK_EVAL, "eval.figures=false")
    assert json.loads((folder / "eval" / "metrics.json").read_text())["test/nelbo"] > 0
    assert "metrics.jsonl cannot be read" in result.stderr and "Traceback" not in result.stderr


def test_a_full_disk_is_one_line_and_the_run_resumes_once_there_is_room(vae_lab_command, data_root, tmp_path):
    if not shutil.which("unshare") or subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode:
        pytest.skip("no user and mount namespaces here (unshare -Urm), so no small disk to fill")
    disk = tmp_path / "disk"
    disk.mkdir()
    command = " ".join([*vae_lab_command, "train", *TINY, f"hydra.run.dir={disk}/run"])
    script = (f"mount -t tmpfs -o size=400k tmpfs {disk} && cd {tmp_path} && {{ {command}; echo \"status $?\"; }}; "
              f"mount -o remount,size=64m {disk} && {command} trainer.resume=true && ls -a {disk}/run {disk}/run/checkpoints")
    result = subprocess.run(["unshare", "-Urm", "sh", "-c", script], env={**os.environ, "VAE_LAB_DATA": str(data_root)},
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    full = [line for line in result.stderr.splitlines() if line.startswith("vae-lab: error")]
    assert len(full) == 1 and "no space left on the disk while writing" in full[0] and "trainer.resume=true" in full[0]
    assert "status 1" in result.stdout and "Traceback" not in result.stderr
    assert "metrics.json" in result.stdout and ".tmp" not in result.stdout


def test_a_full_disk_while_writing_last_pt_leaves_a_run_that_resumes_as_advised(train_config, tmp_path, monkeypatch):
    """Once best.pt was written and last.pt was not: the message's trainer.resume=true was refused."""
    from vae_lab import files
    from vae_lab.training import train

    real = files.tempfile.mkstemp

    def full_disk(*args, prefix: str = "", **kwargs):
        if prefix.startswith(".last.pt."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, prefix=prefix, **kwargs)

    folder = tmp_path / "run"
    with monkeypatch.context() as patched:
        patched.setattr(files.tempfile, "mkstemp", full_disk)
        with pytest.raises(OSError):
            train(train_config(*TINY, *EXACT), str(folder))
    assert not (folder / "checkpoints" / "best.pt").exists()  # neither of the pair: as before the epoch
    resumed = train(train_config(*TINY, *EXACT, "trainer.resume=true"), str(folder))
    alone = train(train_config(*TINY, *EXACT), str(tmp_path / "alone"))
    assert resumed["test/nelbo"] == alone["test/nelbo"]
    assert not list(folder.rglob(".*.tmp"))


@pytest.mark.xdist_group("killed_sweep")
@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "a-zombie"])
def test_killing_a_joblib_sweep_stops_its_workers(vae_lab_command, data_root, tmp_path, reaped):
    """Also while the killed sweep is a zombie (its caller has not reaped it yet): a signal 0 still
    reaches a zombie, so a watcher that sent one trained on."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    main = subprocess.Popen([*vae_lab_command, "sweep", "seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                             f"hydra.sweep.dir={sweep}", *TINY, "trainer.epochs=1000"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    locks = [sweep / str(n) / ".lock" for n in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(p.is_file() and p.read_text() for p in locks) and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [int(p.read_text().split()[2]) for p in locks]
    main.send_signal(signal.SIGKILL)
    if reaped:
        main.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except (ProcessLookupError, FileNotFoundError):
            return False

    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "the sweep's workers went on training after it was killed"
    main.wait()


def test_a_job_watches_its_sweep_only_where_the_sweeps_pid_names_it(monkeypatch):
    """A job on a cluster node (another machine, PID namespace or SLURM job) never watches the PID it
    was handed: there it names nothing, or another process (every job used to end 13 s in)."""
    from vae_lab import commands

    watched = []
    monkeypatch.setattr(commands, "exit_when_gone", watched.append)  # the watcher's thread, without its exit
    here = commands.place().rsplit(":", 1)[0]  # this machine and PID namespace, no SLURM job
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    for sweep, slurm_job in (("1@another-boot:pid:[4026531836]:", None),  # another node
                             (f"1@{here}:", "12"),  # a job SLURM started on the sweep's own machine
                             (f"1@{here}:", None)):  # a joblib worker of the sweep
        monkeypatch.setenv(commands.SWEEP_PROCESS_ENV, sweep)
        if slurm_job:
            monkeypatch.setenv("SLURM_JOB_ID", slurm_job)
        else:
            monkeypatch.delenv("SLURM_JOB_ID", raising=False)
        commands.stop_with_the_sweep()
    deadline = time.monotonic() + 5
    while not watched and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watched == [1], "only the worker on the sweep's machine should watch it"


# ---- round two: what a fault campaign still found -------------------------------------------------


def test_a_run_killed_between_its_last_checkpoint_and_its_metrics_row_resumes_to_agreeing_records(tiny_run):
    """The kill lands after the final epoch's last.pt is written and before metrics.jsonl gets its
    row: the resumed run has nothing left to train, and its records must still agree."""
    folder, run_training = tiny_run
    run_training(folder, "trainer.epochs=3", "trainer.resume=true")
    run = RunDir(folder)
    rows = run.history()
    run.metrics_per_epoch.write_text("".join(json.dumps(row) + "\n" for row in rows[:2]))
    run.metrics.unlink()
    final = run_training(folder, "trainer.epochs=3", "trainer.resume=true")
    assert final["epochs"] == 3 and run.history() == rows == run.load_last()["history"]
    again = run_training(folder, "trainer.epochs=3", "trainer.resume=true")  # complete: read back
    assert again == final and run.history() == rows


@pytest.mark.parametrize("override, key, closest", [
    ("+model.foo=1", "model.foo", ""),
    ("+foo=1", "foo", ""),  # "the closest is data.root" misled: nothing is like foo
    ("++trainer.nonexistent=1", "trainer.nonexistent", ""),
    ("+model.latnt_dim=4", "model.latnt_dim", "model.latent_dim"),
    ("latent_dim=4", "latent_dim", "model.latent_dim"),
    ("model.latnt_dim=4", "model.latnt_dim", "model.latent_dim"),
])
def test_a_key_that_does_not_exist_is_refused_with_the_closest_real_one(vae_lab, tmp_path, override, key, closest):
    """With + or ++ Hydra adds a key the schema does not have, and typing the config dropped it: the
    run trained the default model without a word."""
    message = one_line_error(vae_lab("train", override, f"hydra.run.dir={tmp_path / 'never'}", *TINY, check=False))
    assert message.startswith(f"vae-lab: error: {key}")
    assert message.endswith(f"no such key; the closest is {closest}" if closest else
                            "no such key, nor one like it (--help lists the config's keys)")
    assert not (tmp_path / "never").exists()


def test_a_complete_run_without_its_last_checkpoint_is_never_trained_over(tiny_run):
    folder, run_training = tiny_run
    run = RunDir(folder)
    run.last_checkpoint.unlink()
    before = {p: p.read_bytes() for p in (run.metrics, run.best_checkpoint, run.metrics_per_epoch)}
    with pytest.raises(UserError, match="has finished epochs .*best.pt, metrics.json.* but no checkpoints/last.pt"):
        run_training(folder, "trainer.epochs=3", "trainer.resume=true")
    assert {p: p.read_bytes() for p in before} == before


def test_eval_of_a_folder_without_its_config_is_one_line(tiny_run, vae_lab):
    folder, _ = tiny_run
    (folder / "config.yaml").unlink()
    assert "no config.yaml there" in one_line_error(vae_lab("eval", f"run_dir={folder}", check=False))


def test_a_config_edited_to_an_unknown_model_is_one_line_that_names_it(tiny_run, vae_lab):
    folder, _ = tiny_run
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("name: continuous", "name: gumbel"))
    message = one_line_error(vae_lab("eval", f"run_dir={folder}", check=False))
    assert str(config) in message and "model=gumbel" in message


def test_a_config_that_disagrees_with_its_checkpoint_is_one_line_that_names_both(tiny_run, vae_lab):
    folder, _ = tiny_run
    config = folder / "config.yaml"
    config.write_text(config.read_text().replace("latent_dim: 20", "latent_dim: 4"))
    message = one_line_error(vae_lab("eval", f"run_dir={folder}", check=False))
    assert "model.latent_dim=4" in message and "model.latent_dim=20" in message and "best.pt" in message


def test_a_discriminator_deeper_than_the_image_allows_is_refused_before_any_work(train_config):
    with pytest.raises(ConfigError, match="loss.adversarial.layers=10: a 28x28 image allows at most 3"):
        train_config("loss.adversarial.enabled=true", "loss.adversarial.layers=10")
    with pytest.raises(ConfigError, match="a 32x32 image allows at most 3"):
        train_config("loss.adversarial.enabled=true", "loss.adversarial.layers=4", "data.image_size=32")
    train_config("loss.adversarial.enabled=true", "loss.adversarial.layers=3")


def test_absurd_but_finite_losses_are_divergence(train_config, tmp_path):
    """lr 1e4 with clipping keeps the loss finite near 1e27 nats: a run that means nothing."""
    from vae_lab.training import train

    with pytest.raises(RunFailed, match="diverged in epoch 1 at optimizer step .* over 1e\\+10 nats per image"):
        train(train_config(*TINY, "trainer.lr=1e4", "trainer.grad_clip=1"), str(tmp_path / "run"))
    assert RunDir(tmp_path / "run").error.read_text().startswith("training diverged")


def test_a_figure_that_cannot_be_drawn_costs_only_itself(train_config, tmp_path, monkeypatch, caplog):
    from vae_lab.figures import images
    from vae_lab.training import train

    def broken(*args, **kwargs):
        raise ValueError("the PCA of an absurd code")

    monkeypatch.setattr(images, "samples", broken)
    metrics = train(train_config(*TINY, "eval.figures=true"), str(tmp_path / "run"))
    run = RunDir(tmp_path / "run")
    assert run.final_metrics() == metrics and not run.error.exists()
    drawn = {p.name for p in run.figures.iterdir()}
    assert "samples.png" not in drawn and {"reconstructions.png", "latent_scatter.png"} <= drawn
    assert "samples.png could not be drawn: the PCA of an absurd code" in caplog.text


def test_any_folder_name_a_filesystem_takes_is_a_run_folder(vae_lab, tmp_path):
    """Letters of any script, =, commas, quotes and brackets: vae-lab hands the folder back to Hydra."""
    folder = tmp_path / "résumé=1, it's [x]"
    from vae_lab.compose import hydra_value

    result = vae_lab("train", f"hydra.run.dir={hydra_value(str(folder))}", *TINY)
    assert result.stdout.strip().splitlines()[-1] == str(folder)
    assert (folder / "metrics.json").is_file()


def test_folder_names_typed_plainly_need_no_quotes(vae_lab, data_root, tmp_path):
    """What the guide promises without Hydra's quotes: a run folder, a data folder and eval's run_dir
    named with letters of any script, spaces and `=`, typed as they are."""
    data = tmp_path / "dätä β=1"
    shutil.copytree(data_root, data)
    folder = tmp_path / "ünïβ run=0.5"
    result = vae_lab("train", f"hydra.run.dir={folder}", f"data.root={data}", *TINY)
    assert result.stdout.strip().splitlines()[-1] == str(folder)
    assert RunDir(folder).read_config()["data"]["root"] == str(data)
    vae_lab("eval", f"run_dir={folder}", f"data_root={data}", *QUICK_EVAL)
    assert (folder / "eval" / "metrics.json").is_file()


def test_the_python_api_trains_where_it_is_told_once_and_says_where_else(data_root, tmp_path, monkeypatch, capsys):
    import vae_lab

    tiny = [f"data.root={data_root}", *TINY, "trainer.device=cpu"]
    with pytest.raises(TypeError, match=r"a list of overrides, such as \['model.latent_dim=2'\], not a string"):
        vae_lab.train("model.latent_dim=2")
    asked, given = tmp_path / "asked β", tmp_path / "given"
    with pytest.raises(UserError, match="name the run folder once"):
        vae_lab.train([*tiny, f"hydra.run.dir={asked}"], run_dir=given)
    with pytest.raises(UserError, match="Hydra's own settings belong to the command line"):
        vae_lab.train([*tiny, "hydra/launcher=joblib"])
    assert list(tmp_path.iterdir()) == []
    assert vae_lab.train([*tiny, f"hydra.run.dir={asked}"]).path == asked
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    run = vae_lab.train(tiny)
    assert run.path.parent.parent == tmp_path / "outputs"
    assert f"vae-lab: training into {run.path}" in capsys.readouterr().err


def test_a_run_whose_data_moved_is_told_the_option_that_works_and_a_refused_eval_leaves_nothing(
        vae_lab, data_root, tmp_path):
    import vae_lab as api

    data, moved, folder = tmp_path / "data", tmp_path / "moved", tmp_path / "run"
    shutil.copytree(data_root, data)
    vae_lab("train", f"hydra.run.dir={folder}", f"data.root={data}", "data.download=false", *TINY)
    data.rename(moved)
    said = one_line_error(vae_lab("eval", f"run_dir={folder}", *QUICK_EVAL, check=False))
    assert said == (f"vae-lab: error: data.root={data}: the MNIST this run was trained on is not in "
                    f"{data / 'MNIST' / 'raw'}; give the folder that holds it now with data_root=PATH")
    assert not (folder / "eval").exists()  # once an empty eval/eval.log
    assert one_line_error(vae_lab("explore", str(folder), check=False)).endswith("with --data-root PATH")
    with pytest.raises(UserError, match=r"with load_run\(\.\.\., data_root=PATH\)$"):
        api.load_run(folder).splits
    vae_lab("eval", f"run_dir={folder}", f"data_root={moved}", *QUICK_EVAL, "eval.figures=false")  # the advice works
    assert (folder / "eval" / "metrics.json").is_file()


@pytest.fixture
def read_only():
    """Makes a folder read-only for vae-lab: a read-only bind mount where this runs as root (root
    writes through permission bits), else the bits."""
    mounted = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~0o222)
            return
        if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
            pytest.skip("root here cannot mount: no read-only folder to test with")
        mounted.append(folder)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder), str(folder)], check=True)

    yield make
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_folder_is_said_and_what_needs_no_writing_is_offered(vae_lab, tmp_path, read_only):
    folder, sweep, empty = tmp_path / "run", tmp_path / "sweep", tmp_path / "empty"
    vae_lab("train", f"hydra.run.dir={folder}", *TINY)
    vae_lab("sweep", "seed=0,1", f"hydra.sweep.dir={sweep}", *TINY)
    empty.mkdir()
    for each in (folder, sweep, empty):
        read_only(each)
    said = one_line_error(vae_lab("train", f"hydra.run.dir={empty}", *TINY, check=False))
    assert said == (f"vae-lab: error: {empty} cannot be written (Read-only file system): a run folder needs a folder "
                    "vae-lab can write; give a hydra.run.dir you can write")
    said = one_line_error(vae_lab("train", f"hydra.run.dir={folder}", "trainer.resume=true", *TINY, check=False))
    assert said.endswith(f"the run there is complete; vae-lab eval run_dir={folder} out_dir=PATH evaluates it again "
                         "into a folder you can write")
    said = one_line_error(vae_lab("eval", f"run_dir={folder}", *QUICK_EVAL, check=False))
    assert said.endswith("; write the evaluation to a folder you can write with out_dir=PATH")
    out = tmp_path / "evaluated"
    assert vae_lab("eval", f"run_dir={folder}", f"out_dir={out}", *QUICK_EVAL, "eval.figures=false"
                   ).stdout.strip().splitlines()[-1] == str(out)
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == 1
    summarized = vae_lab("sweep", "summarize", str(sweep))
    assert summarized.stdout.startswith(f"# Sweep summary: {sweep}") and "2 of 2 runs complete" in summarized.stdout
    assert summarized.stderr.strip() == (f"vae-lab: {sweep} cannot be written (Read-only file system): its summary "
                                         "so far is printed here, not written")


def test_summarizing_a_running_sweep_prints_it_and_writes_nothing(vae_lab, tmp_path):
    sweep = tmp_path / "sweep"
    vae_lab("sweep", "seed=0,1", f"hydra.sweep.dir={sweep}", *TINY)
    (sweep / "summary.md").unlink()
    with claimed(sweep, "sweep folder"):  # as the running sweep holds it
        summarized = vae_lab("sweep", "summarize", str(sweep))
    assert summarized.returncode == 0 and "2 of 2 runs complete" in summarized.stdout
    assert "which summarizes it as it ends: its summary so far is printed here, not written" in summarized.stderr
    assert not (sweep / "summary.md").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there to load onto")
def test_loading_onto_a_gpu_that_is_not_there_says_so(tiny_run, vae_lab):
    """Not "the best weights ... are lost": the file is fine."""
    import vae_lab as api

    folder, _ = tiny_run
    with pytest.raises(UserError) as refused:
        api.load_run(folder, device="cuda")
    assert str(refused.value) == "device=cuda: no CUDA GPU is visible on this machine; use cpu or auto"
    assert one_line_error(vae_lab("eval", f"run_dir={folder}", "device=cuda", check=False)).startswith(
        "vae-lab: error: device=cuda: no CUDA GPU is visible on this machine")


def test_a_joblib_sweep_of_no_jobs_at_once_is_one_line(vae_lab, tmp_path):
    result = vae_lab("sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=0", "seed=0,1",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", *TINY, check=False)
    assert one_line_error(result).startswith("vae-lab: error: hydra.launcher.n_jobs=0: expected how many jobs")
    assert not (tmp_path / "sweep").exists()


def test_quoting_leaves_what_hydra_reads_as_it_is():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from vae_lab.compose import quote_paths

    typed = ["hydra.run.dir=/a/ünï", "hydra.sweep.dir=/b/swü=1", "run_dir=/c/x y", "data.root='/d/q=1'",
             "data.root=/e,/f", "model.beta=1", "data_root=/g/β"]
    quoted = quote_paths(typed)
    assert quoted[2:6] == typed[2:6]  # plain already, quoted by the user, a sweep, not a folder
    parser = OverridesParser.create()
    assert [parser.parse_override(o).value() for o in quoted[:2] + quoted[6:]] == ["/a/ünï", "/b/swü=1", "/g/β"]


@pytest.mark.parametrize("module", ["torch", "vae_lab.sweep", "sklearn.manifold"])
def test_ctrl_c_in_the_middle_of_an_import_at_start_up_is_one_line(data_root, tmp_path, module):
    """Ctrl-C lands exactly while a heavy module is being imported (a finder sends SIGINT to the
    process as the import starts): held, then raised where the work begins, it ends in one line,
    never in a half-imported module's RecursionError, Hydra's 'Error locating target' or a run that
    trains on."""
    script = (f"import os, signal, sys\n"
              f"class Interrupting:\n"
              f"    def find_spec(self, name, path=None, target=None):\n"
              f"        if name == {module!r}:\n"
              f"            sys.meta_path.remove(self)\n"
              f"            os.kill(os.getpid(), signal.SIGINT)\n"
              f"sys.meta_path.insert(0, Interrupting())\n"
              f"from vae_lab.cli import main\n"
              f"main(['train', 'hydra.run.dir={tmp_path / 'run'}', *{list(TINY)!r}])\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "VAE_LAB_DATA": str(data_root)})
    assert one_line_error(result, status=130) == "vae-lab: interrupted"
    assert not (tmp_path / "run").exists()  # refused-before-work cleanup: it held nothing


def test_a_held_ctrl_c_is_raised_only_when_released():
    import signal as signals

    from vae_lab.errors import HeldInterrupt

    before = signals.getsignal(signals.SIGINT)
    try:
        HeldInterrupt.hold()
        os.kill(os.getpid(), signals.SIGINT)
        time.sleep(0.05)  # delivered, and only noted
        with pytest.raises(KeyboardInterrupt):
            HeldInterrupt.release()
        assert signals.getsignal(signals.SIGINT) is signals.default_int_handler
        HeldInterrupt.release()  # released already: nothing more
    finally:
        signals.signal(signals.SIGINT, before)


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_ctrl_c_at_start_up_never_claims_an_epoch_was_saved(vae_lab_command, data_root, tmp_path, delay):
    folder = tmp_path / "run"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    process = subprocess.Popen([*vae_lab_command, "train", f"hydra.run.dir={folder}", *TINY], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    last = one_line_error(subprocess.CompletedProcess(process.args, process.returncode, "", stderr), status=130)
    saved = (folder / "checkpoints" / "last.pt").is_file()
    assert ("Continue with" in stderr) == saved  # never "every finished epoch is saved" when none was
    assert saved or last.startswith("vae-lab: interrupted")



@pytest.mark.parametrize("launcher", ["basic", "stacked"])
def test_ctrl_c_in_a_sweep_says_to_rerun_the_sweep(vae_lab_command, data_root, tmp_path, launcher):
    """Not the one run's `vae-lab train ... trainer.resume=true`: the user asked for the sweep. A
    stacked sweep said only "interrupted"."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    process = subprocess.Popen([*vae_lab_command, "sweep", "seed=0,1", f"hydra.sweep.dir={sweep}", *TINY,
                                "trainer.epochs=50", f"hydra/launcher={launcher}"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (sweep / "0" / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        "vae-lab: interrupted; every finished epoch is saved. Rerun the same command to continue: the sweep "
        "skips complete runs and resumes the others"), stderr[-2000:]
    assert "Traceback" not in stderr

def test_a_bit_flipped_checkpoint_is_damaged_not_a_foreign_object(tiny_run):
    """A flipped bit in the weights loaded without a word: the zip's checksums say it is damaged."""
    folder, _ = tiny_run
    run = RunDir(folder)
    data = bytearray(run.last_checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x10  # in the middle of the weights
    run.last_checkpoint.write_bytes(bytes(data))
    with pytest.raises(DamagedFile, match="damaged: .* fails its checksum"):
        run.load_last()


def test_messages_say_what_a_setting_means(train_config, vae_lab, tmp_path):
    with pytest.raises(ConfigError, match="trainer.threads=0: expected null \\(automatic"):
        train_config("trainer.threads=0")
    result = vae_lab("train", "data.val_fraction=0", f"hydra.run.dir={tmp_path / 'run'}", *TINY)
    assert "nan" not in result.stderr and "val/loss" not in result.stderr  # no validation split, no number


def test_summarizing_runs_that_vary_in_nothing_draws_without_warnings(tmp_path):
    """Plain runs in one folder: nothing swept, so no plot against a key that never changes."""
    import warnings

    from vae_lab.sweep import summarize

    for number in range(2):
        _fake_run(tmp_path / str(number), ["trainer.epochs=1", "eval.is_samples=4"], 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summarize(tmp_path)
    assert not list((tmp_path / "figures").glob("metrics_vs_*.png"))


# ---- claims files ------------------------------------------------------------------------------------


@pytest.fixture
def claims_folder(tmp_path, monkeypatch) -> Path:
    """A write-ups folder of the user's: seed003's claims copied, so that its recipe still composes."""
    from vae_lab import write_ups

    folder = tmp_path / "claims"
    folder.mkdir()
    shutil.copy(write_ups.claims_file("seed003_latent_sizes"), folder)
    monkeypatch.setattr(write_ups, "claims_folder", lambda: folder)
    return folder


HEAD = "title: t\nobservation: o\nmetrics: [test/mse]\n"  # a write-up's required keys, lines 1-3
CHECKLIST = "checklist:\n  source: seeds/009\n  from: x\n  sentences:\n"  # lines 4-7


@pytest.mark.parametrize("text, where, says", [
    ("title: t\nobservation: o: p\n", ":2:", "not YAML"),
    ("- a\n- b\n", ":1:", "this one is a list"),
    ("", ":1:", "this one is empty"),
    (HEAD + "claims:\n  - says: s\n    metric: test/mse\n    lowr: {latent_dim: 2}\n    than: {latent_dim: 4}\n",
     ":7:", "`lowr` is not a key of a claim; did you mean `lower`?"),
    (HEAD + "claims:\n  - says: s\n    metric: test/mse\n    lower: 1\n    than: 2\n", ":5:",
     "both sides of the claim are numbers"),
    ("title: t\nobservation: o\nmetrics: test/mse\n", ":3:", "`metrics` is a list"),
    ("title: t\nmetrics: [test/mse]\n", ":1:", "a write-up needs `observation`"),
    (HEAD + CHECKLIST + "    - {sentence: s, figure: f.png, not_judged: why}\n", ":8:",
     "a checklist sentence has `sentence` and one of"),
    (HEAD + CHECKLIST + "    - {sentence: s, claims: [no such claim]}\n", ":8:",
     "the checklist names a claim the file does not make"),
], ids=["malformed", "list", "empty", "typo", "two-numbers", "wrong-type", "lacking", "two-verdicts", "unknown-claim"])
def test_a_claims_file_that_breaks_the_format_is_one_line_naming_file_line_and_key(
        claims_folder, tmp_path, capsys, text, where, says):
    """A broken claims file is one line naming it, its line and key, and costs only its own write-up:
    `reproduce --help` and `reproduce --only <another>` still work."""
    from vae_lab.reproduce import main
    from vae_lab.write_ups import load_write_up

    (claims_folder / "mine.claims.yml").write_text(text)
    with pytest.raises(UserError) as refused:
        load_write_up("mine")
    message = str(refused.value)
    assert message.startswith(f"{claims_folder / 'mine.claims.yml'}{where}") and says in message, message
    assert "\n" not in message
    outputs = ["--outputs", str(tmp_path / "outputs"), "--docs", str(tmp_path / "docs")]
    with pytest.raises(SystemExit) as stopped:
        main(["--only", "mine", *outputs])
    assert stopped.value.code == 2 and capsys.readouterr().err.strip() == f"vae-lab: error: {message}"
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0 and "mine" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:  # the other write-up is read: its own override is the error
        main(["model.beta=-1", "--only", "seed003_latent_sizes", *outputs])
    assert capsys.readouterr().err.strip() == "vae-lab: error: model.beta=-1.0: expected a number >= 0"
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "docs").exists()


def test_a_claim_naming_a_metric_no_run_reports_is_refused_before_anything_trains(
        claims_folder, data_root, tmp_path, capsys):
    from vae_lab.reproduce import main

    claims = claims_folder / "seed003_latent_sizes.claims.yml"
    text = claims.read_text()
    assert text.count("metric: test/mse") >= 1
    claims.write_text(text.replace("metric: test/mse", "metric: test/knn_accuracy", 1))
    with pytest.raises(SystemExit) as stopped:
        main([f"data.root={data_root}", "--only", "seed003_latent_sizes", "--outputs", str(tmp_path / "outputs"),
              "--docs", str(tmp_path / "docs")])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"vae-lab: error: {claims}: test/knn_accuracy: no run of this write-up reports such a metric; "
        "the closest it reports is test/knn_acc")
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "docs").exists()
