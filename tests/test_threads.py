"""Threads kept to the cores other processes leave free, and subnormal floats flushed in training
(vae_lab/device.py)."""

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


def _subnormal_survives() -> bool:
    return (torch.tensor([1e-39]) * 1.0).item() != 0.0


def test_subnormals_are_flushed_inside_and_kept_outside():
    assert _subnormal_survives()
    with threads.subnormals_flushed():
        assert not _subnormal_survives()
        assert (torch.tensor([2e-38]) * 1.0).item() == pytest.approx(2e-38)  # a normal float stays
    assert _subnormal_survives()


def test_every_optimizer_step_of_training_computes_with_subnormals_flushed(train_config, tmp_path, monkeypatch):
    from vae_lab.population import Population
    from vae_lab.training import train

    flushed, original = [], Population.step

    def watched(self):
        flushed.append(not _subnormal_survives())
        return original(self)

    monkeypatch.setattr(Population, "step", watched)
    train(train_config("trainer.epochs=2", "backbone.hidden=[64]", *QUICK_EVAL, "eval.figures=false"), str(tmp_path / "run"))
    assert len(flushed) > 2 and all(flushed)
    assert _subnormal_survives()  # and the process's arithmetic is as before once training ends
