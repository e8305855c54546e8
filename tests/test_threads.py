"""Threads kept to the cores other processes leave free, and subnormal floats flushed in training
(vae_lab/device.py)."""

import os

import pytest
import torch

import vae_lab.device as threads
from test_cli import QUICK_EVAL


def test_threads_follow_the_cores_other_processes_leave_free(monkeypatch):
    clock = {"wall": 0.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(threads.time, "sleep", lambda s: clock.update(wall=clock["wall"] + s))
    monkeypatch.setattr(threads, "_busy_seconds", lambda: clock["busy"])
    monkeypatch.setattr(threads, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(threads, "_cores", lambda: 4)
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)

    def after(seconds: float, others: float, own: float) -> None:  # cores kept busy meanwhile
        clock["wall"] += seconds
        clock["busy"] += seconds * (others + own)
        clock["own"] += seconds * own
        governor.tick()

    governor = threads.ThreadGovernor(enabled=True)  # an idle machine: all four cores
    assert chosen == []
    after(1.0, others=3.0, own=4.0)  # too soon to look again
    assert chosen == []
    after(2.0, others=3.0, own=4.0)  # another process took three cores
    assert chosen == [1]
    after(2.0, others=1.4, own=1.0)
    assert chosen == [1, 3]
    after(2.0, others=0.0, own=3.0)  # it ended
    assert chosen == [1, 3, 4]


def test_a_thread_count_that_was_asked_for_is_kept(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.free_to_choose(None, cpu) and not threads.free_to_choose(2, cpu)
    assert not threads.free_to_choose(None, torch.device("cuda"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert not threads.free_to_choose(None, cpu)


FLUSH_AND_MULTIPLY = """
import sys, torch
from vae_lab.device import flush_subnormals
if sys.argv[1] == "first":
    flush_subnormals()
torch.set_num_threads(2)
x = torch.full((1_000_000,), 1e-20)
x.add_(0.0)  # a parallel operation: torch's worker thread starts here
if sys.argv[1] == "late":
    flush_subnormals()
print(int((x * x != 0).sum()))  # 1e-40 each: subnormal unless flushed
"""


@pytest.mark.parametrize("when, survivors", [("first", "none"), ("late", "the worker's share"), ("never", "all")])
def test_subnormals_are_flushed_in_every_thread_when_flushed_before_the_first_parallel_work(when, survivors):
    import subprocess
    import sys

    left = int(subprocess.run([sys.executable, "-c", FLUSH_AND_MULTIPLY, when], capture_output=True, text=True,
                              check=True, env={**os.environ, "OMP_NUM_THREADS": "2"}).stdout)
    expected = {"none": lambda n: n == 0, "the worker's share": lambda n: 0 < n < 1_000_000,
                "all": lambda n: n == 1_000_000}[survivors]
    assert expected(left), f"{left:,} of 1,000,000 products left subnormal"


def test_training_and_the_command_line_flush_subnormals_before_their_work(train_config, tmp_path, monkeypatch):
    import vae_lab.cli
    import vae_lab.plan
    import vae_lab.training

    calls = []
    monkeypatch.setattr(threads, "flush_subnormals", lambda: calls.append("flush"))
    monkeypatch.setattr(vae_lab.training, "flush_subnormals", lambda: calls.append("flush"))
    checked = vae_lab.plan.check_command
    monkeypatch.setattr(vae_lab.plan, "check_command", lambda *a: (calls.append("check"), checked(*a))[1])
    with pytest.raises(SystemExit):
        vae_lab.cli.main(["train", "model.latent_dim=0"])
    assert calls == ["flush", "check"]
    calls.clear()
    vae_lab.training.train(train_config("trainer.epochs=1", "backbone.hidden=[64]", *QUICK_EVAL, "eval.figures=false"),
                           str(tmp_path / "run"))
    assert calls == ["flush"]
