"""Where a run computes: the device ``auto`` means, the precision (where bfloat16 is worth using,
and the context that uses it), and how many CPU threads.

OpenMP's threads spin while they wait for work. Alone that is the fastest way to run small models,
but beside another busy process they spin on cores they do not get, and both slow down many times
over (docs/findings/performance.md). With ``trainer.threads`` unset, a run on the CPU therefore looks,
every few seconds, at how much of the machine other processes use, and sets torch's threads to the
cores left (at least one) (:class:`ThreadGovernor`). A set ``trainer.threads`` (or OMP_NUM_THREADS)
is used as it is, and makes a run reproducible to the last bit, which a thread count that follows
the load does not.

The machine's time, too: an epoch's time leaves out the time the process was stopped (SIGSTOP,
Ctrl-Z, a job scheduler's suspend, a machine asleep), so that an epoch stopped for hours does not log
hours. A stopped process cannot see its stop, only its end: a thread that wakes every ``BEAT_S``
seconds finds on waking that far more time went by, and the excess counts as stopped
(:class:`Stopwatch`).
"""

import contextlib
import logging
import os
import threading
import time
from typing import Callable, Optional

import torch

from vae_lab.errors import UserError

log = logging.getLogger(__name__)


def resolve_device(name: str, option: str = "device") -> torch.device:
    """The device ``name`` (auto, cpu, cuda) means here; a GPU asked for where none is visible is
    refused in one line naming ``option``, the setting that asked (rather than failing later, on the
    first tensor sent there)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        given = f"{option} {name}" if option.startswith("--") else f"{option}={name}"  # a flag, or a setting
        raise UserError(f"{given}: no CUDA GPU is visible on this machine; use cpu or auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a GPU that supports it, or a CPU with AVX-512
    BF16 or AMX (elsewhere bf16 is emulated, and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16: the forward pass autocast to bfloat16 (matrix products and convolutions; losses and
    KL terms are computed in float32 by the models themselves)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---- CPU threads ---------------------------------------------------------------------------------

CHECK_EVERY_S = 2.0  # how often the other processes' load is looked at (a check costs ~50 microseconds)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_seconds() -> Optional[float]:
    """CPU seconds every core has spent busy since boot (/proc/stat), or None where it is unknown."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system


class ThreadGovernor:
    """Keeps torch's threads to the cores that other processes leave free; long loops (training,
    importance sampling) call :meth:`tick` often, which is cheap unless a check is due."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and _busy_seconds() is not None
        self.cores = _cores()
        self.threads = torch.get_num_threads()
        if self.enabled:
            self._mark()
            time.sleep(0.2)  # a first look before training starts
            self._adjust()

    def _mark(self) -> None:
        self.wall, self.busy, self.own = time.monotonic(), _busy_seconds(), _own_seconds()

    def tick(self) -> None:
        if self.enabled and time.monotonic() - self.wall >= CHECK_EVERY_S:
            self._adjust()

    def _adjust(self) -> None:
        wall, busy, own = time.monotonic() - self.wall, _busy_seconds() - self.busy, _own_seconds() - self.own
        self._mark()
        others = max(0.0, (busy - own) / wall)  # cores other processes kept busy meanwhile
        threads = max(1, min(self.cores, round(self.cores - others)))
        if threads != self.threads:
            torch.set_num_threads(threads)
            log.info("other processes use %.1f of %d cores: running on %d thread%s", others, self.cores, threads,
                     "" if threads == 1 else "s")
            self.threads = threads


def flush_subnormals() -> None:
    """From now on this process's CPU arithmetic flushes subnormal floats (below 1.2e-38 in fp32) to
    zero. Adam's running squared gradients of the pixels a decoder has settled reach that range within
    a few epochs, and x86 cores compute on subnormals many times slower than on normal numbers; as
    zeros they change no update by a measurable amount.

    The flag belongs to each thread, and torch's worker threads copy it from the main thread when they
    start, which is at the first parallel operation: vae-lab's commands call this before anything else.
    Called later, in a process that has computed in parallel already, it reaches the main thread only."""
    torch.set_flush_denormal(True)


@contextlib.contextmanager
def one_thread():
    """Computes on one CPU thread, then gives the caller's thread count back: for what must come out the
    same on every run on this machine, whatever threads the run itself has (the order of a sum follows
    the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def govern_threads(configured: Optional[int], device: torch.device) -> ThreadGovernor:
    """Torch's threads for a run's work: ``configured`` where it is set (``trainer.threads``: the same
    numbers to the bit), else the cores other processes leave free, looked at as the work goes on
    (call the governor's ``tick``)."""
    if configured is not None:
        torch.set_num_threads(configured)
    return ThreadGovernor(free_to_choose(configured, device))


def free_to_choose(configured: Optional[int], device: torch.device) -> bool:
    """Whether a run chooses its threads itself: on the CPU, when neither ``trainer.threads`` nor
    OMP_NUM_THREADS says how many. A thread count that follows the load changes the order of
    floating-point sums, so only a fixed one makes a run reproducible to the last bit."""
    return device.type == "cpu" and configured is None and "OMP_NUM_THREADS" not in os.environ


BEAT_S = 0.05
# A beat this much later than due is a stop: a thread that lost the GIL or its core on a busy machine
# wakes within milliseconds to tenths of a second, never this late.
STOP_AFTER_S = 1.0


class Stopwatch:
    """``now()`` runs like ``time.perf_counter()`` but for the time the process was stopped while the
    stopwatch was running (``with stopwatch:``)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.stopped_s = 0.0
        self.started = self.last_beat = clock()  # now() when the stopwatch was made
        self._halt = threading.Event()
        self._thread = None

    def now(self) -> float:
        return self.clock() - self.stopped_s

    def beat(self) -> None:
        """One wake of the watching thread: a gap past STOP_AFTER_S is a stop, less the beat itself."""
        now = self.clock()
        gap = now - self.last_beat
        if gap > BEAT_S + STOP_AFTER_S:
            self.stopped_s += gap - BEAT_S
        self.last_beat = now

    def __enter__(self) -> "Stopwatch":
        self._halt.clear()
        self.last_beat = self.clock()
        self._thread = threading.Thread(target=self._watch, name="vae-lab stopwatch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._halt.wait(BEAT_S):
            self.beat()
