"""Jobs on a SLURM cluster (through submitit), from both ends.

In the job, :func:`stopping_on_sigterm` ends the work at once when SLURM sends SIGTERM (``scancel``,
a time limit reached, preemption): the run folders hold every finished epoch, so the job only loses
the epoch in progress, which a resume trains again with the same numbers. submitit's own handler
ignores SIGTERM, and the job then trained on until SIGKILL. submitit's earlier signal
(``signal_delay_s`` before the time limit) still goes to submitit, which requeues a checkpointable
job (:class:`ClusterJob`, or Hydra's launcher): the job starts again and resumes its runs.

In the sweep, :func:`wait_for` waits for submitted jobs and tells how each ended: its return value,
or for a job that died without one (cancelled, out of memory, over its time limit, its node lost)
what SLURM reports of it. It never waits forever: a job that has left the queue without a result is
given up after ``lost_after_s``, with accounting or without. A Ctrl-C while waiting cancels every
job still queued or running and says which.
"""

import contextlib
import logging
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

log = logging.getLogger(__name__)

# States in which a SLURM job runs no more (sacct's names); a job that reaches one without writing
# its result died. REQUEUED, PENDING, RUNNING, SUSPENDED, ... are on their way.
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "REVOKED", "TIMEOUT"}
SLURM_CALL_TIMEOUT_S = 30


class JobStopped(KeyboardInterrupt):
    """The cluster stopped this job (SIGTERM): unwound like a Ctrl-C, so that every folder is
    released with its finished epochs saved."""


@contextlib.contextmanager
def stopping_on_sigterm() -> Iterator[None]:
    """Inside a cluster job: SIGTERM raises :class:`JobStopped` in the main thread for the block."""

    def stop(signum, frame) -> None:
        raise JobStopped("the cluster sent SIGTERM (scancel, the time limit or preemption); every "
                         "finished epoch is saved")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ClusterJob:
    """``function(*args)`` as a submitit job: stopped at once by SIGTERM, and checkpointable, so
    that submitit requeues it on its signal before the time limit (it reruns the same call, which
    resumes the runs it trains)."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self.function, self.args = function, args

    def __call__(self) -> Any:
        with stopping_on_sigterm():
            return self.function(*self.args)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


@dataclass
class Ended:
    """How a submitted job ended: what it returned, or why it returned nothing (one line)."""

    value: Any = None
    failure: Optional[str] = None


def wait_for(jobs: Sequence[Any], poll_s: float = 1.0, ask_slurm_s: float = 10.0, report_s: float = 60.0,
             result_grace_s: float = 15.0, lost_after_s: float = 180.0) -> list[Ended]:
    """Wait until every submitit job in ``jobs`` has ended; how each ended, in order.

    A job that wrote its result returned it (or raised: its failure is the exception's last line).
    A SLURM job that ended without one (given ``result_grace_s`` for the file to arrive through a
    shared file system) is a failure naming its state, exit code and log; one that SLURM no longer
    knows at all (not queued, no accounting record) is given up ``lost_after_s`` after it was last
    seen. Every ``report_s`` the jobs still awaited are logged with their states. A Ctrl-C cancels
    the jobs that have not ended, says which, and is raised again."""
    ended: dict[int, Ended] = {}
    last_seen = {i: time.monotonic() for i in range(len(jobs))}  # queued or running, by SLURM's word
    seen_ending: dict[int, float] = {}
    states: dict[str, tuple[str, str]] = {}
    asked, reported = -math.inf, time.monotonic()
    slurm = {i for i, job in enumerate(jobs) if _on_slurm(job)}
    try:
        while len(ended) < len(jobs):
            now = time.monotonic()
            if slurm - ended.keys() and now - asked >= ask_slurm_s:
                states, asked = slurm_states([jobs[i].job_id for i in slurm - ended.keys()]), now
            for i, job in enumerate(jobs):
                if i in ended:
                    continue
                if Path(job.paths.result_pickle).exists() or (i not in slurm and job.done()):
                    ended[i] = _result(job)
                    continue
                if i not in slurm:
                    continue  # a local job: submitit follows its process
                state, exit_code = states.get(str(job.job_id), ("", ""))
                if state and state not in ENDED:
                    last_seen[i] = now
                    seen_ending.pop(i, None)  # requeued
                elif state:
                    if now - seen_ending.setdefault(i, now) > result_grace_s:
                        why = slurm_says(Path(job.paths.stderr))
                        ended[i] = Ended(failure=f"SLURM job {job.job_id} ended {state} (exit code {exit_code}) "
                                                 f"without a result{f': {why}' if why else ''}; its log: "
                                                 f"{job.paths.stderr}")
                elif now - last_seen[i] > lost_after_s:
                    ended[i] = Ended(failure=f"SLURM job {job.job_id} left the queue without a result, and "
                                             "SLURM has no record of how it ended (is accounting, sacct, "
                                             f"set up?); its log: {job.paths.stderr}")
            if len(ended) < len(jobs):
                if now - reported >= report_s:
                    awaited = [f"{jobs[i].job_id} {states.get(str(jobs[i].job_id), ('(state unknown)',))[0]}"
                               for i in range(len(jobs)) if i not in ended]
                    log.info("waiting for %d of %d jobs: %s", len(awaited), len(jobs), ", ".join(awaited))
                    reported = now
                time.sleep(poll_s)
    except KeyboardInterrupt:
        cancelled = cancel([job for i, job in enumerate(jobs) if i not in ended])
        if cancelled:
            print(f"\nvae-lab: cancelled {len(cancelled)} job(s) it submitted: {', '.join(cancelled)}",
                  file=sys.stderr, flush=True)
        raise
    return [ended[i] for i in range(len(jobs))]


def _on_slurm(job: Any) -> bool:
    return type(job).__name__ == "SlurmJob"


def _result(job: Any) -> Ended:
    try:
        return Ended(value=job.results()[0])
    except Exception as error:  # noqa: BLE001  the job raised, or died: its last line says why
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return Ended(failure=f"job {job.job_id}: {lines[-1] if lines else type(error).__name__}; "
                             f"its log: {job.paths.stderr}")


def slurm_says(log_file: Path) -> str:
    """What SLURM's step daemon wrote into a job's log about ending it ("StepId=7.0 exceeded memory
    limit (463114240 > 314572800), being killed", "CANCELLED AT ... DUE TO TIME LIMIT"): the line
    about memory if there is one, else its last; empty if it wrote nothing."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    said = [line.split("error:", 1)[-1].strip(" *") for line in lines if line.startswith("slurmstepd")]
    return next((line for line in said if "memory limit (" in line), said[-1] if said else "")


def slurm_states(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """{job id: (state, exit code)} for the jobs SLURM knows: from its accounting (sacct), and for
    jobs it has no record of yet (or no accounting at all), from its queue (squeue)."""
    states: dict[str, tuple[str, str]] = {}
    if not job_ids:
        return states
    mains = sorted({str(job_id).split("_")[0] for job_id in job_ids})
    listed = _slurm(["sacct", "-X", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(mains)])
    for line in listed.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and "[" not in parts[0]:
            states[parts[0]] = (parts[1].split()[0] if parts[1] else "", parts[2])
    queued = _slurm(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(mains)])
    for line in queued.splitlines():
        job_id, _, state = line.partition("|")
        if state and job_id not in states:
            states[job_id] = (state, "")
    return states


def _slurm(command: list[str]) -> str:
    """A SLURM command's output; empty when it fails (no accounting, the controller busy)."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=SLURM_CALL_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def cancel(jobs: Sequence[Any]) -> list[str]:
    """Cancel these submitit jobs (``scancel`` on SLURM); the ids of those it cancelled."""
    ids = [str(job.job_id) for job in jobs]
    if not ids:
        return []
    if all(_on_slurm(job) for job in jobs):
        subprocess.run(["scancel", *ids], capture_output=True, timeout=SLURM_CALL_TIMEOUT_S)
        return ids
    for job in jobs:
        job.cancel(check=False)
    return ids
