"""An epoch's time leaves out the time the process was stopped: checked with a clock that jumps, and
with a real SIGSTOP of a real training run."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest

from test_cli import QUICK_EVAL
from vae_lab.device import BEAT_S, STOP_AFTER_S, Stopwatch

STOPPED_S = 12.0


class Jumping:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_late_beat_is_a_stop_and_a_punctual_one_is_not():
    clock = Jumping()
    watch = Stopwatch(clock)
    for _ in range(20):  # beats on time, and late by less than a stop
        clock.t += BEAT_S + 0.9 * STOP_AFTER_S * (_ % 2)
        watch.beat()
    assert watch.stopped_s == 0 and watch.now() == clock.t
    clock.t += 3600.0  # a beat due in BEAT_S wakes an hour later: stopped for all but the beat
    watch.beat()
    assert watch.stopped_s == pytest.approx(3600.0 - BEAT_S)
    clock.t += BEAT_S
    watch.beat()
    assert watch.now() == pytest.approx(clock.t - 3600.0 + BEAT_S)
    assert watch.now() - watch.started == pytest.approx(clock.t - 100.0 - 3600.0 + BEAT_S)  # ran, from the start


def test_a_watch_thread_that_sees_nothing_stopped_counts_nothing():
    with Stopwatch() as watch:
        started = watch.now()
        time.sleep(0.3)
    assert watch.stopped_s == 0 and watch.now() - started == pytest.approx(0.3, abs=0.25)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP on this system")
def test_an_epoch_stopped_for_seconds_does_not_log_them(tmp_path, vae_lab_command, data_root):
    """seeds/002's published run logged 11,163 s for one epoch of about 110 s: it was stopped while
    the machine ran other work. Here a run is stopped for 12 s once its first epoch is logged."""
    run = tmp_path / "run"
    command = [*vae_lab_command, "train", "trainer.epochs=40", "trainer.device=cpu", *QUICK_EVAL,
               "eval.figures=false", f"hydra.run.dir={run}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "VAE_LAB_DATA": str(data_root)})
    log = run / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (log.is_file() and log.read_text().count("\n") >= 1):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no epoch logged in 240 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGSTOP)
    logged_before = log.read_text().count("\n")
    time.sleep(STOPPED_S)
    process.send_signal(signal.SIGCONT)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    epochs = [json.loads(line)["epoch_s"] for line in log.read_text().splitlines()]
    assert logged_before < len(epochs) == 40  # stopped while it trained
    # The epoch it was stopped in, against the others: a busy machine may slow an epoch by seconds,
    # not by the stop.
    assert epochs[logged_before] - statistics.median(epochs) < STOPPED_S - 4.0, (logged_before, epochs)
