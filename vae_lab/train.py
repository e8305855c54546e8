"""Training: device, precision, compilation, the epoch loop, checkpoints and resume.

The loop never looks at the model type: it sums the model's weighted loss terms and logs every term
by name. After each epoch it writes ``best.pt`` (if validation improved), then ``last.pt`` (with the
whole history and every random state), then ``metrics.jsonl``; each write is atomic, so an interrupted
run resumes from ``last.pt`` with ``trainer.resume=true`` and ends exactly as an uninterrupted one.
"""

import contextlib
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

from vae_lab.config import ConfigError, TrainConfig, as_dict, train_config_from_dict
from vae_lab.data import Splits, load_splits
from vae_lab.evaluate import TermMeans, evaluating, loss_terms, with_totals
from vae_lab.figures.animations import snapshot
from vae_lab.image_losses import ImageLosses, imagenet_vgg16
from vae_lab.metrics import reconstruction_quality
from vae_lab.models import VAE, build_model
from vae_lab.reporting import load_best_model, report
from vae_lab.runs import RunDir, load_checkpoint, save_checkpoint, write_jsonl

log = logging.getLogger(__name__)

# Settings that change nothing the training computes: a finished run with other values of these is
# still the same run. ("eval." only changes the final metrics, which `vae-lab eval` recomputes.)
NOT_TRAINING = ("trainer.resume", "trainer.device", "trainer.compile", "trainer.threads", "data.root",
                "data.download", "eval.", "optimized_metric")
# A resumed run may also be trained for more epochs; any other difference is refused.
RESUMABLE_CHANGES = NOT_TRAINING + ("trainer.epochs",)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device


def train(config: TrainConfig, run_dir: str) -> dict[str, float]:
    """Train one model as ``config`` says, filling ``run_dir``; return the final test metrics."""
    run = RunDir(run_dir)
    config.data.root = str(Path(config.data.root).expanduser().resolve())
    if config.trainer.resume and run.is_complete and not config_differences(
            saved_config(run.read_config()), as_dict(config), ignore=NOT_TRAINING):
        log.info("%s is already complete: nothing to train (vae-lab eval recomputes its metrics)", run.path)
        return run.final_metrics()
    if config.trainer.threads is not None:
        torch.set_num_threads(config.trainer.threads)
    device = resolve_device(config.trainer.device)
    checkpoint = resume_point(run, config, device)
    if config.loss.perceptual.enabled and config.loss.perceptual.weights == "imagenet":
        imagenet_vgg16()  # offline without them: stop now, with what to do, before writing anything
    seed_everything(config.seed)
    run.write_config(as_dict(config))

    splits = load_splits(config.data, device)
    model = build_model(config.model, config.backbone, splits.image_shape).to(device)
    if config.trainer.start_at_mean_image:  # a resumed run loads its own weights over this
        model.start_at_mean_image(splits.train.mean_image())
    trainer = Trainer(model, splits, config, run)
    if checkpoint is not None:
        trainer.load_state(checkpoint)
        log.info("resuming %s after epoch %d", run.path, trainer.epoch)
    log.info("training %s on %s (%d train / %d val / %d test images), %s parameters",
             type(model).__name__, device, len(splits.train), len(splits.val), len(splits.test),
             f"{sum(p.numel() for p in model.parameters()):,}")
    trainer.fit()
    return finish(model, splits, config, run, trainer)


def resume_point(run: RunDir, config: TrainConfig, device: torch.device) -> Optional[dict]:
    """The checkpoint to continue from, or None for a fresh run. Never overwrites another run."""
    if not run.holds_a_run:
        if config.trainer.resume:
            log.info("nothing to resume in %s: starting a new run there", run.path)
        return None
    if not config.trainer.resume:
        raise ConfigError("trainer.resume", False,
                          f"the run folder {run.path} already holds a run; set trainer.resume=true "
                          "to continue it, or choose another hydra.run.dir")
    checkpoint = load_checkpoint(run.last_checkpoint, device)
    for key, before, now in config_differences(saved_config(checkpoint["config"]), as_dict(config),
                                               ignore=RESUMABLE_CHANGES):
        raise ConfigError(key, now, f"the run in {run.path} was trained with {key}={before}; "
                                    "resume it with the same settings, or start a new run")
    run.metrics.unlink(missing_ok=True)  # no longer final once training goes on
    return checkpoint


def saved_config(values: dict) -> dict:
    """A run's saved config with today's defaults for keys added since (so an older run still matches)."""
    return as_dict(train_config_from_dict(values))


def without_disabled_losses(values: dict) -> dict:
    """The config minus what of ``loss`` changes nothing: the settings of image-space losses that are
    off, and the preset's name."""
    loss = values.get("loss", {})
    return {**values, "loss": {name: part if part.get("enabled") else {"enabled": False}
                               for name, part in loss.items() if isinstance(part, dict)}}


def config_differences(before: dict, now: dict, ignore: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    """(key, before, now) for every dotted key whose value differs, except keys in ``ignore`` (a key,
    or a prefix ending in '.')."""
    flat_before, flat_now = _flatten(without_disabled_losses(before)), _flatten(without_disabled_losses(now))
    return [(key, flat_before.get(key), flat_now.get(key))
            for key in sorted(flat_before.keys() | flat_now.keys())
            if flat_before.get(key) != flat_now.get(key)
            and not any(key == c or (c.endswith(".") and key.startswith(c)) for c in ignore)]


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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

    @property
    def epoch(self) -> int:
        return len(self.history)

    def fit(self) -> None:
        write_jsonl(self.run.metrics_per_epoch, self.history)
        while self.epoch < self.settings.epochs:
            started = time.perf_counter()
            row = {"epoch": self.epoch + 1, **self.train_epoch()}
            row.update(self.held_out_metrics())
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
            totals["loss"].mean().backward()
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
                "image_shape": list(self.splits.image_shape), "config": as_dict(self.config)})
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
