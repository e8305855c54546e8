"""Training runs: the checks made before any work, the population they train in, the final report.

``train(config, run_dir)`` trains one run; ``train_together(jobs)`` trains runs of one architecture
as one stacked population (vae_lab/loop.py, vae_lab/population.py), each member exactly as it would
train alone and each writing its own run folder.
"""

import contextlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from vae_lab.config import TrainConfig, as_dict

from vae_lab.compose import train_config_from_dict
from vae_lab.data import Splits, load_splits
from vae_lab.errors import ConfigError, DamagedFile, RunFailed, UserError, one_line
from vae_lab.evaluate import evaluating, final_metric_names, final_metrics
from vae_lab.image_losses import imagenet_vgg16
from vae_lab.loop import Member, train_members
from vae_lab import threads
from vae_lab.precision import resolve_precision
from vae_lab.models import VAE, build_model, parameter_count
from vae_lab.reporting import load_best_model, report
from vae_lab.trackers import Embedding, Trackers, refuse_missing_packages
from vae_lab.stacking import MEMBER_KEYS, member_logs, stack_key, working_for
from vae_lab.runs import (NOT_TRAINING, RESUMABLE_CHANGES, RunDir, config_differences, record_failure,
                          refuse_other_data, refuse_other_settings, remove_temporary_files)

log = logging.getLogger(__name__)

BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and Adam's two moments
Outcome = Union[dict, BaseException]  # a run's final metrics, or why it did not finish


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device


def train(config: TrainConfig, run_dir: str) -> dict[str, float]:
    """Train one model as ``config`` says, filling ``run_dir``; return the final test metrics.

    Everything that can refuse the run is checked before the first file is written: the folder (one
    writer, no other run in it, a resume that matches), the data, the model's memory and the metric
    a sweeper asked for. A run that fails after that (diverged, disk full) says why in error.txt and
    stays resumable from its last good epoch.
    """
    outcome = train_together([(config, run_dir)])[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def train_together(jobs: list[tuple[TrainConfig, str]]) -> list[Outcome]:
    """Train runs that share their architecture, data and training length as one population; return
    each run's final metrics, or the error that stopped it (the others go on). A run that is already
    complete is not trained again."""
    first = jobs[0][0]
    device = resolve_device(first.trainer.device)
    for config, _ in jobs:  # saved as resolved: what the run was, on any machine it is reloaded on
        config.data.root = str(Path(config.data.root).expanduser().resolve())
        config.trainer.precision = resolve_precision(config.trainer.precision, device)
    keys = {stack_key(c) for c, _ in jobs}
    if len(jobs) > 1 and (None in keys or len(keys) > 1):
        raise ValueError("runs trained together must differ only in " + ", ".join(MEMBER_KEYS)
                         + ", and their model must stack (vae_lab/stacking.py)")
    outcomes: list[Optional[Outcome]] = [None] * len(jobs)
    with contextlib.ExitStack() as held:
        for _, run_dir in jobs:
            held.enter_context(RunDir(run_dir).claimed())
        if first.trainer.threads is not None:
            torch.set_num_threads(first.trainer.threads)
        threads.govern(threads.free_to_choose(first.trainer.threads, device))
        splits: Optional[Splits] = None
        members: list[tuple[int, Member, Optional[dict]]] = []
        for i, (config, run_dir) in enumerate(jobs):
            try:
                splits = splits or load_splits(config.data, device)
                prepared = prepare(config, RunDir(run_dir), splits, device)
            except Exception as error:  # noqa: BLE001  one run's refusal; the others go on
                outcomes[i] = error
                continue
            if isinstance(prepared, dict):
                outcomes[i] = prepared  # complete already
            else:
                members.append((i, *prepared))
        alone = len(members) == 1
        for _, member, checkpoint in members:
            start(member, checkpoint, splits, alone)
            held.callback(member.trackers.close, finished=False)  # interrupted: a no-op once closed below
        if members:
            train_members([m for _, m, _ in members], splits)
            concluded = conclude([m for _, m, _ in members], splits)
            for i, member, _ in members:
                outcomes[i] = concluded[member]
                member.trackers.close(finished=not isinstance(outcomes[i], BaseException))
    return outcomes


def prepare(config: TrainConfig, run: RunDir, splits: Splits, device: torch.device
            ) -> Union[dict, tuple[Member, Optional[dict]]]:
    """Every check of one run before its first write; then its model, built as a standalone run
    builds it. Returns the final metrics of a run that is complete already, else (member, the
    checkpoint it continues from)."""
    previous = PreviousRun.find(run, config, device)
    if previous is not None:
        refuse_other_data(run, previous.data, splits.fingerprint, config.data.root)
        if previous.finished:
            log.info("%s is already complete: nothing to train (vae-lab eval recomputes its metrics)", run.path)
            return previous.final_metrics
    refuse_what_does_not_fit(config, splits.image_shape, device)
    refuse_missing_packages(config.logger)
    if config.loss.perceptual.enabled and config.loss.perceptual.weights == "imagenet":
        imagenet_vgg16()  # offline without them: stop now, with what to do, before writing anything
    seed_everything(config.seed)
    model = build_model(config.model, config.backbone, splits.image_shape).to(device)
    refuse_unknown_metric(config, model, splits)
    return Member(config, run, model, splits), (previous.checkpoint if previous is not None else None)


def start(member: Member, checkpoint: Optional[dict], splits: Splits, alone: bool) -> None:
    """The first writes of a run that passed every check: its folder tidied, its config saved, its
    model at its start (the mean image) or where its checkpoint left it."""
    run, config = member.run, member.config
    remove_temporary_files(run.path)  # what a killed process left; this one holds the folder now
    run.error.unlink(missing_ok=True)
    run.metrics.unlink(missing_ok=True)  # no longer final once training goes on
    run.write_config(as_dict(config))
    if config.trainer.start_at_mean_image:  # a resumed run loads its own weights over this
        member.model.start_at_mean_image(splits.train.mean_image())
    if checkpoint is not None:
        member.load_state(checkpoint, alone)
        member.log("resuming %s after epoch %d", run.path, member.epoch)
    member.trackers = Trackers.open(config.logger, run.path, as_dict(config), member.history)
    model = member.model
    member.log("training %s on %s (%d train / %d val / %d test images), %s parameters", type(model).__name__,
               model.device, len(splits.train), len(splits.val), len(splits.test),
               f"{sum(p.numel() for p in model.parameters()):,}")


def conclude(members: list[Member], splits: Splits) -> dict[Member, Outcome]:
    """Each trained member's final report, or the failure that ended it (recorded in error.txt). The
    best weights of every member that finished are evaluated together; each then draws its figures
    and writes its metrics.json."""
    outcomes: dict[Member, Outcome] = {}
    finished: list[tuple[Member, VAE, dict]] = []
    for member in members:
        try:
            if member.failure is not None:
                raise member.failure
            finished.append((member, *load_best_model(member.run, member.config, member.model.device)))
        except RunFailed as failure:
            record_failure(member.run, failure)
            outcomes[member] = failure
        except Exception as error:  # noqa: BLE001  reported by the caller (the CLI, or the launcher)
            outcomes[member] = error
    if not finished:
        return outcomes
    try:
        metrics = final_metrics([model for _, model, _ in finished], splits, [m.config for m, _, _ in finished])
    except Exception as error:  # noqa: BLE001
        return {**outcomes, **{member: error for member, _, _ in finished}}
    for (member, model, best), mine in zip(finished, metrics):
        with working_for(member.run.path):
            try:
                outcomes[member] = finish(member, splits, model, best, mine)
            except Exception as error:  # noqa: BLE001
                outcomes[member] = error
    return outcomes


@dataclass
class PreviousRun:
    """What an earlier run left in the folder, found only when it may be continued."""

    data: Optional[dict]  # the data fingerprint it was trained on (None: not recorded)
    checkpoint: Optional[dict]  # checkpoints/last.pt, or None when no epoch had finished
    final_metrics: Optional[dict]  # metrics.json when the run is complete with these very settings

    @property
    def finished(self) -> bool:
        return self.final_metrics is not None

    @staticmethod
    def find(run: RunDir, config: TrainConfig, device: torch.device) -> Optional["PreviousRun"]:
        """None for a folder with no run in it. Refuses a folder that holds a run unless
        ``trainer.resume`` is on, and a resume with other settings."""
        if not run.holds_a_run:
            return None
        if not config.trainer.resume:
            found = ", ".join(p.name for p in run.written_files)
            raise ConfigError("trainer.resume", False,
                              f"the folder {run.path} already holds a run ({found}); set trainer.resume=true "
                              "to continue it, or choose another hydra.run.dir")
        now = as_dict(config)
        if run.is_complete and run.config.is_file():
            saved = saved_config(run.read_config())
            if not config_differences(saved, now, ignore=NOT_TRAINING):
                try:
                    metrics = run.final_metrics()
                    return PreviousRun(run.load_best(device).get("data"), None, metrics)
                except DamagedFile as damaged:
                    log.warning("%s: evaluating the run again", damaged)
        if run.last_checkpoint.is_file():
            checkpoint = run.load_last(device)
            refuse_other_settings(run, saved_config(checkpoint["config"]), now, ignore=RESUMABLE_CHANGES)
            return PreviousRun(checkpoint.get("data"), checkpoint, None)
        if run.config.is_file():  # stopped before its first epoch ended: start it again, same settings
            refuse_other_settings(run, saved_config(run.read_config()), now, ignore=RESUMABLE_CHANGES)
        log.info("no finished epoch in %s: starting its run again", run.path)
        return PreviousRun(None, None, None)


def saved_config(values: dict) -> dict:
    """A run's saved config with today's defaults for keys added since (so an older run still matches)."""
    return as_dict(train_config_from_dict(values))


def refuse_what_does_not_fit(config: TrainConfig, image_shape: tuple[int, int, int], device: torch.device) -> None:
    """Refuse a model whose weights, gradients and optimizer state alone exceed the free memory."""
    needed = parameter_count(config.model, config.backbone, image_shape) * BYTES_PER_PARAMETER
    free = available_memory(device)
    if needed > free:
        raise UserError(f"model={config.model.name} ({config.model.summary()}) on backbone={config.backbone.name} "
                        f"would need {needed / 2**30:,.1f} GiB for its weights, gradients and optimizer state, "
                        f"more than the {free / 2**30:,.1f} GiB free on {device}; choose smaller sizes")


def available_memory(device: torch.device) -> int:
    """Bytes free for a new allocation on ``device``."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_unknown_metric(config: TrainConfig, model: VAE, splits: Splits) -> None:
    """``optimized_metric`` must be one the run will report (checked now, not after training)."""
    if config.optimized_metric is None:
        return
    names = final_metric_names(model, splits, config)
    if config.optimized_metric not in names:
        raise ConfigError("optimized_metric", config.optimized_metric,
                          f"this run reports no such metric; expected one of {', '.join(sorted(names))}")


def finish(member: Member, splits: Splits, model: VAE, best: dict, metrics: dict) -> dict:
    """The figures of the best weights, then metrics.json."""
    config, run, history = member.config, member.run, member.history
    # The best epoch's validation numbers: what a hyperparameter search may select on (never test/).
    validation = next(({k: v for k, v in row.items() if k.startswith("val/")}
                       for row in history if row["epoch"] == best["epoch"]), {})
    metrics = report(model, splits, config, history, member.snapshots, run.metrics, run.figures, metrics=metrics, extra={
        **validation,
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "train/images_per_s": float(np.mean([row["train/images_per_s"] for row in history])),
        "train_s": float(sum(row["epoch_s"] for row in history)),
    })
    member.log("test/nelbo %.2f nats (best epoch %d of %d)", metrics["test/nelbo"], best["epoch"], len(history))
    figures = sorted(run.figures.glob("*.*")) if run.figures.is_dir() else []
    member.trackers.finish(metrics, figures, lambda: projector_points(model, splits, config))
    return metrics


def projector_points(model: VAE, splits: Splits, config: TrainConfig) -> Embedding:
    """The first test images' codes for an embedding projector, with their digit (and hue bin)."""
    test = splits.test
    count = min(len(test), config.logger.tensorboard.projector_images)
    batch = test.batch(torch.arange(count, device=test.device))
    with evaluating(model):
        codes = torch.cat([model.embed(batch.images[i:i + config.eval.batch_size]).float()
                           for i in range(0, count, config.eval.batch_size)])
    labels = {"digit": batch.labels.tolist(), "test image": list(range(count))}
    if batch.hue_bins is not None:
        labels["hue bin"] = batch.hue_bins.tolist()
    return Embedding(codes.cpu(), batch.images.cpu(), labels)


def train_population(jobs: list[tuple[TrainConfig, str]]) -> list:
    """Train runs as one population, here or in a submitit job: each run's final metrics, or for a
    run that failed one line saying why (also recorded in its error.txt). Each member's lines go
    to its own train.log."""
    root = logging.getLogger()
    if not root.handlers:  # a fresh process (a submitit job): its log is submitit's own file
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    formatter = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    with member_logs([run_dir for _, run_dir in jobs], formatter):
        outcomes = train_together(jobs)
    reported = []
    for (_, run_dir), outcome in zip(jobs, outcomes):
        if isinstance(outcome, BaseException):
            record_failure(RunDir(run_dir), outcome)
            outcome = one_line(outcome)
        reported.append(outcome)
    return reported
