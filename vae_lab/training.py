"""Training runs: build what a run needs, train it, report on it.

``train(config, run_dir)`` trains one run; ``train_together(jobs)`` trains runs of one architecture
as one stacked population (vae_lab/loop.py, vae_lab/population.py), each member exactly as it would
train alone and each writing its own run folder. Every check comes first (vae_lab/preflight.py):
a run that is refused writes nothing. A run that fails after that (diverged, disk full) says why in
error.txt and stays resumable from its last good epoch.
"""

import contextlib
import logging
import os
from pathlib import Path
from typing import Optional, Union

from vae_lab import preflight
from vae_lab.callbacks import standard_callbacks
from vae_lab.config import TrainConfig, as_dict
from vae_lab.data import Splits, load_splits
from vae_lab.device import flush_subnormals, govern_threads, resolve_device, resolve_precision
from vae_lab.errors import one_line
from vae_lab.files import remove_temporary_files, write_jsonl
from vae_lab.hooks import Callback
from vae_lab.loop import train_members
from vae_lab.member import Member, build_member
from vae_lab.population import refuse_unstackable
from vae_lab.progress import MemberLogs
from vae_lab.reporting import conclude
from vae_lab.runs import Claims, RunDir, record_failure

log = logging.getLogger(__name__)

Outcome = Union[dict, BaseException]  # a run's final metrics, or why it did not finish


def train(config: TrainConfig, run_dir: str, claims: Optional[Claims] = None) -> dict[str, float]:
    """Train one model as ``config`` says, filling ``run_dir``; return the final test metrics.
    ``claims``: the folders the caller holds already (the command line holds the run folder)."""
    outcome = train_together([(config, run_dir)], claims)[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def train_together(jobs: list[tuple[TrainConfig, str]], claims: Optional[Claims] = None,
                   logs: Optional[MemberLogs] = None) -> list[Outcome]:
    """Train runs that share their architecture, data and training length as one population; return
    each run's final metrics, or the error that stopped it (the others go on). A run that is already
    complete is not trained again."""
    flush_subnormals()  # a launcher's fresh process (joblib, submitit) or the Python API comes here first
    claims = claims or Claims()
    device = resolve_device(jobs[0][0].trainer.device)
    for config, _ in jobs:  # saved as resolved: what the run was, on any machine it is reloaded on
        config.data.root = str(Path(config.data.root).expanduser().resolve())
        config.trainer.precision = resolve_precision(config.trainer.precision, device)
    refuse_unstackable([config for config, _ in jobs])
    outcomes: list[Optional[Outcome]] = [None] * len(jobs)
    callbacks = standard_callbacks()
    with contextlib.ExitStack() as held:
        for _, run_dir in jobs:
            held.enter_context(claims.hold(run_dir))
        governor = govern_threads(jobs[0][0].trainer.threads, device)
        splits, members = None, []
        for i, (config, run_dir) in enumerate(jobs):
            run = RunDir(run_dir)
            try:
                splits = splits or load_splits(config.data, device)
                previous = preflight.check_run(config, run, splits, device)
                if previous is not None and previous.finished:
                    log.info(previous.found)
                    outcomes[i] = previous.final_metrics
                    continue
                member = build_member(config, run, splits, device, previous and previous.checkpoint)
                preflight.refuse_unknown_metric(config, member.model, splits)
            except Exception as error:  # noqa: BLE001  one run's refusal; the others go on
                outcomes[i] = error
                continue
            start(member, previous, splits, callbacks)
            held.callback(end, callbacks, member, KeyboardInterrupt())  # interrupted; once ended below, a no-op
            members.append((i, member))
        if members:
            train_members([m for _, m in members], splits, callbacks, governor.tick)
            concluded = conclude([m for _, m in members], splits, logs, governor.tick)
            for i, member in members:
                outcomes[i] = concluded[member]
                end(callbacks, member, outcomes[i])
    return outcomes


def start(member: Member, previous: Optional[preflight.PreviousRun], splits: Splits, callbacks: list[Callback]) -> None:
    """The first writes of a run that passed every check: its folder tidied, its config saved, its
    epochs' rows as its checkpoint has them; then each callback's start of the run."""
    run, config, model = member.run, member.config, member.model
    if previous is not None and previous.damaged:
        log.warning(previous.damaged)
    if previous is not None and previous.found:
        log.info(previous.found)
    remove_temporary_files(run.path)  # what a killed process left; this one holds the folder now
    run.error.unlink(missing_ok=True)
    run.metrics.unlink(missing_ok=True)  # no longer final once training goes on
    run.write_config(as_dict(config))
    if member.epoch:
        member.log("resuming %s after epoch %d", run.path, member.epoch)
    align_epoch_rows(run.metrics_per_epoch, member.history)
    for callback in callbacks:
        callback.on_run_start(member)
    member.log("training %s on %s (%d train / %d val / %d test images), %s parameters", type(model).__name__,
               model.device, len(splits.train), len(splits.val), len(splits.test),
               f"{sum(p.numel() for p in model.parameters()):,}")


def end(callbacks: list[Callback], member: Member, outcome: Outcome) -> None:
    for callback in callbacks:
        callback.on_run_end(member, outcome)


def align_epoch_rows(path: Path, history: list[dict]) -> None:
    """metrics.jsonl as last.pt has it: a kill between the two writes of an epoch left it a row short.
    The file keeps its time, that of its newest epoch, for a sweep's time estimate takes epochs
    written since the sweep started as its pace (a paused run's old epoch would not be)."""
    try:
        written = path.stat().st_mtime
    except OSError:
        written = None  # a new run: its file starts now
    write_jsonl(path, history)
    if written is not None:
        os.utime(path, (written, written))


def train_population(jobs: list[tuple[TrainConfig, str]]) -> list:
    """Train runs as one population, here or in a submitit job: each run's final metrics, or for a
    run that failed one line saying why (also recorded in its error.txt). Each member's lines go
    to its own train.log."""
    root = logging.getLogger()
    if not root.handlers:  # a fresh process (a submitit job): its log is submitit's own file
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    formatter = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    with MemberLogs([run_dir for _, run_dir in jobs], formatter) as logs:
        outcomes = train_together(jobs, logs=logs)
    reported = []
    for (_, run_dir), outcome in zip(jobs, outcomes):
        if isinstance(outcome, BaseException):
            record_failure(RunDir(run_dir), outcome)
            outcome = one_line(outcome)
        reported.append(outcome)
    return reported
