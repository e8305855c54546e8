"""Training: device, precision, compilation, the epoch loop, checkpoints and resume.

The loop never looks at the model type: it sums the model's weighted loss terms and logs every term
by name. After each epoch it writes ``best.pt`` (if validation improved), then ``last.pt`` (with the
whole history and every random state), then ``metrics.jsonl``; each write is atomic, so an interrupted
run resumes from ``last.pt`` with ``trainer.resume=true`` and ends exactly as an uninterrupted one.
"""

import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from vae_lab.config import TrainConfig, as_dict, train_config_from_dict
from vae_lab.data import Splits, load_splits
from vae_lab.errors import ConfigError, DamagedFile, RunFailed, UserError
from vae_lab.evaluate import TermMeans, evaluating, final_metric_names, loss_terms, with_totals
from vae_lab.figures.animations import snapshot
from vae_lab.image_losses import ImageLosses, imagenet_vgg16
from vae_lab.metrics import reconstruction_quality
from vae_lab.models import VAE, build_model, parameter_count
from vae_lab.reporting import load_best_model, report
from vae_lab.runs import (NOT_TRAINING, RESUMABLE_CHANGES, RunDir, config_differences, record_failure,
                          refuse_other_data, refuse_other_settings, remove_temporary_files, save_checkpoint,
                          write_jsonl)

log = logging.getLogger(__name__)

BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and Adam's two moments


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
    run = RunDir(run_dir)
    config.data.root = str(Path(config.data.root).expanduser().resolve())
    with run.claimed():
        if config.trainer.threads is not None:
            torch.set_num_threads(config.trainer.threads)
        device = resolve_device(config.trainer.device)
        previous = PreviousRun.find(run, config, device)
        splits = load_splits(config.data, device)
        if previous is not None:
            refuse_other_data(run, previous.data, splits.fingerprint, config.data.root)
            if previous.finished:
                log.info("%s is already complete: nothing to train (vae-lab eval recomputes its metrics)", run.path)
                return previous.final_metrics
        refuse_what_does_not_fit(config, splits.image_shape, device)
        if config.loss.perceptual.enabled and config.loss.perceptual.weights == "imagenet":
            imagenet_vgg16()  # offline without them: stop now, with what to do, before writing anything
        seed_everything(config.seed)
        model = build_model(config.model, config.backbone, splits.image_shape).to(device)
        refuse_unknown_metric(config, model, splits)

        remove_temporary_files(run.path)  # what a killed process left; this one holds the folder now
        run.error.unlink(missing_ok=True)
        run.metrics.unlink(missing_ok=True)  # no longer final once training goes on
        run.write_config(as_dict(config))
        if config.trainer.start_at_mean_image:  # a resumed run loads its own weights over this
            model.start_at_mean_image(splits.train.mean_image())
        trainer = Trainer(model, splits, config, run)
        if previous is not None and previous.checkpoint is not None:
            trainer.load_state(previous.checkpoint)
            log.info("resuming %s after epoch %d", run.path, trainer.epoch)
        log.info("training %s on %s (%d train / %d val / %d test images), %s parameters",
                 type(model).__name__, device, len(splits.train), len(splits.val), len(splits.test),
                 f"{sum(p.numel() for p in model.parameters()):,}")
        try:
            trainer.fit()
            return finish(model, splits, config, run, trainer)
        except RunFailed as failure:
            record_failure(run, failure)
            raise


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


class Trainer:
    """Runs the epochs of one model on in-memory splits and keeps its run folder up to date."""

    def __init__(self, model: VAE, splits: Splits, config: TrainConfig, run: RunDir):
        self.model, self.splits, self.config, self.run = model, splits, config, run
        self.settings = config.trainer
        self.device = model.device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.settings.lr, fused=True)
        self.image_losses = ImageLosses(config.loss, splits.image_shape, self.device)
        self.output_weights = model.output_layer_weights()  # where the image losses balance gradients
        self.forward = torch.compile(model) if self.settings.compile else model
        self.shuffle = torch.Generator(device=self.device).manual_seed(config.seed)
        self.history: list[dict] = []
        self.snapshots: list[dict] = []  # one per epoch, for training_evolution.gif
        self.best = {"epoch": 0, "val/loss": math.inf}
        # The first optimizer step whose loss was not finite (-1: none yet), kept on the device so
        # that watching for divergence costs no synchronisation per step.
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=self.device)

    @property
    def epoch(self) -> int:
        return len(self.history)

    def fit(self) -> None:
        write_jsonl(self.run.metrics_per_epoch, self.history)
        while self.epoch < self.settings.epochs:
            started = time.perf_counter()
            row = {"epoch": self.epoch + 1, **self.train_epoch()}
            self.stop_if_diverged(row)
            row.update(self.held_out_metrics())
            self.stop_if_diverged(row)
            with evaluating(self.model):
                self.snapshots.append(snapshot(self.model, self.splits.test))
            row["epoch_s"] = time.perf_counter() - started
            self.history.append(row)
            self.save(row)
            log.info("epoch %d/%d: train/loss %.2f | val/loss %.2f | test/loss %.2f | %.1f s, %s img/s",
                     row["epoch"], self.settings.epochs, row["train/loss"], row.get("val/loss", math.nan),
                     row["test/loss"], row["epoch_s"], f"{row['train/images_per_s']:,.0f}")

    def train_epoch(self) -> dict[str, float]:
        model, data = self.model, self.splits.train
        model.train()
        means = TermMeans()
        batches = data.shuffled_batches(self.settings.batch_size, self.shuffle,
                                        labelled_extra=self.config.data.labelled_per_batch)
        n_batches = math.ceil(len(data) / self.settings.batch_size)
        started = time.perf_counter()
        for batch in tqdm(batches, total=n_batches, desc=f"epoch {self.epoch + 1}/{self.settings.epochs}",
                          unit="batch", leave=False, disable=None):
            step = int(model.step) if self.image_losses.enabled else 0  # int() syncs: only when needed
            with self.autocast():
                terms = self.forward(batch)
                image_terms = (self.image_losses.generator_terms(model.last_reconstruction, batch.images, step)
                               if self.image_losses.enabled else {})
            totals = with_totals(model, terms)
            if image_terms:
                image = self.image_losses.objective(image_terms, totals["loss"], self.output_weights)
                totals["loss"] = totals["loss"] + image.pop("loss")
                totals.update(image_terms, **image)
            self.optimizer.zero_grad(set_to_none=True)
            loss = totals["loss"].mean()
            self.first_bad_step = torch.where((self.first_bad_step < 0) & ~torch.isfinite(loss.detach()),
                                              model.step, self.first_bad_step)
            loss.backward()
            if self.settings.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.settings.grad_clip)
            self.optimizer.step()
            if self.image_losses.enabled:
                with self.autocast():
                    totals.update(self.image_losses.train_discriminator(model.last_reconstruction, batch.images, step))
            model.step += 1
            means.add(totals)
        metrics = {f"train/{name}": value for name, value in means.means().items()}  # syncs
        metrics["train/images_per_s"] = len(data) / (time.perf_counter() - started)
        return metrics

    def stop_if_diverged(self, row: dict) -> None:
        """After an epoch: stop the run if a loss was not finite, before anything of that epoch is
        saved, so checkpoints/last.pt keeps the last finite weights."""
        bad_step = int(self.first_bad_step)
        broken = sorted(key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value))
        if bad_step < 0 and not broken:
            return
        where = f"at optimizer step {bad_step + 1}" if bad_step >= 0 else f"({', '.join(broken[:3])} not finite)"
        kept = (f"Checkpoints/last.pt keeps epoch {self.epoch}, the last finite one" if self.epoch
                else "No epoch finished, so nothing was saved")
        settings, model = self.settings, self.config.model
        remedies = [f"a smaller trainer.lr (now {settings.lr:g})"]
        if settings.grad_clip is None:
            remedies.append("trainer.grad_clip=1")
        if model.likelihood == "gaussian":
            remedies.append(f"a larger model.obs_std (now {model.obs_std:g})")
        raise RunFailed(f"training diverged in epoch {row['epoch']} {where}: the loss became infinite or NaN. "
                        f"{kept}. Try {' or '.join(remedies)} in a new run")

    def held_out_metrics(self) -> dict[str, float]:
        """Loss terms on validation and test; image quality of reconstructions on subsets of the
        training and test splits (the first eval.epoch_images of each, the same every epoch)."""
        metrics, settings = {}, self.config.eval
        for split in ("val", "test"):
            data = getattr(self.splits, split)
            if len(data):
                terms = loss_terms(self.model, data, settings.batch_size)
                metrics.update({f"{split}/{name}": value for name, value in terms.items()})
        with evaluating(self.model):
            for split in ("train", "test"):
                quality = reconstruction_quality(self.model, getattr(self.splits, split), settings.batch_size,
                                                 limit=settings.epoch_images)
                metrics.update({f"{split}/{name}": value for name, value in quality.items()})
        return metrics

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.settings.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, row: dict) -> None:
        # Without a validation split the latest epoch counts as the best.
        val_loss = row.get("val/loss", -math.inf)
        if val_loss <= self.best["val/loss"]:
            self.best = {"epoch": row["epoch"], "val/loss": val_loss}
            save_checkpoint(self.run.best_checkpoint, {
                "epoch": row["epoch"], "model": self.model.state_dict(),
                "image_shape": list(self.splits.image_shape), "config": as_dict(self.config),
                "data": self.splits.fingerprint})
        save_checkpoint(self.run.last_checkpoint, self.state())
        write_jsonl(self.run.metrics_per_epoch, self.history)

    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "image_losses": self.image_losses.state_dict(),  # the discriminator and its optimizer
            "rng": {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
            "history": self.history,
            "snapshots": self.snapshots,
            "best": self.best,
            "config": as_dict(self.config),
            "data": self.splits.fingerprint,
        }

    def load_state(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.image_losses.load_state_dict(checkpoint.get("image_losses", {}))
        self.history, self.best = checkpoint["history"], checkpoint["best"]
        self.snapshots = checkpoint["snapshots"]
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        self.shuffle.set_state(rng["shuffle"].cpu())
        if self.device.type == "cuda" and rng["cuda"]:
            torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])


def finish(model: VAE, splits: Splits, config: TrainConfig, run: RunDir, trainer: Trainer) -> dict:
    """Evaluate the best weights, draw the figures, then write metrics.json."""
    model, best = load_best_model(run, config, model.device)
    history = trainer.history
    metrics = report(model, splits, config, history, trainer.snapshots, run.metrics, run.figures, extra={
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "train/images_per_s": float(np.mean([row["train/images_per_s"] for row in history])),
        "train_s": float(sum(row["epoch_s"] for row in history)),
    })
    log.info("test/nelbo %.2f nats (best epoch %d of %d)", metrics["test/nelbo"], best["epoch"], len(history))
    return metrics
