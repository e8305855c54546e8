"""The training loop, for a population of members (a single run is a population of one).

Per step: each member's batch and noise, one stacked forward pass, each member's objective, one
backward pass, each member's Adam step. Everything else happens at named moments through hooks:
after the optimizer step (an image-space loss's discriminator), and at the end of an epoch (the
member's snapshot for training_evolution.gif, its checkpoints and metrics.jsonl).

After every epoch each member's weights are handed back to its own model, its row of metrics
checked for divergence, and its run folder brought up to date: ``best.pt`` (if validation
improved), ``last.pt`` (everything needed to resume: weights, Adam state, generators, history), then
``metrics.jsonl``. Each write is atomic, so a killed run resumes from ``last.pt`` and ends exactly
as an uninterrupted one.
"""

import contextlib
import logging
import math
import time
from typing import Optional

import torch

from vae_lab import threads
from vae_lab.config import TrainConfig, as_dict
from vae_lab.data import Batch, Splits
from vae_lab.errors import RunFailed
from vae_lab.evaluate import TermMeans, each_model, evaluating, loss_terms
from vae_lab.figures.animations import SNAPSHOT_IMAGES, snapshot
from vae_lab.image_losses import ImageLosses
from vae_lab.metrics import population_reconstruction_quality
from vae_lab.models import VAE
from vae_lab.population import Population
from vae_lab.precision import precision_context
from vae_lab.progress import progress
from vae_lab.runs import RunDir, save_checkpoint, write_jsonl
from vae_lab.trackers import Trackers

log = logging.getLogger("vae_lab.training")

NOISE_STREAM = 2**32  # a member's noise generator is seeded with seed + this: apart from its shuffling


class Member:
    """One run in a population: its config, run folder, model (its own shapes), generators, Adam
    state between populations, history and best epoch."""

    def __init__(self, config: TrainConfig, run: RunDir, model: VAE, splits: Splits):
        self.config, self.run, self.model, self.splits = config, run, model, splits
        device = model.device
        self.shuffle = torch.Generator(device=device).manual_seed(config.seed)
        self.noise = torch.Generator(device=device).manual_seed(config.seed + NOISE_STREAM)
        self.optimizer_state: Optional[dict] = None  # None: Adam starts afresh
        self.history: list[dict] = []
        self.snapshots: list[dict] = []  # one per epoch, for training_evolution.gif
        self.best = {"epoch": 0, "val/loss": math.inf}
        self.failure: Optional[RunFailed] = None
        self.image_losses = ImageLosses(config.loss, splits.image_shape, device)
        self.trackers = Trackers([], run.path)  # opened when the run starts (vae_lab/training.py)

    @property
    def epoch(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        return self.failure is not None or self.epoch >= self.config.trainer.epochs

    def log(self, message: str, *args, console: bool = True) -> None:
        """A line of this run's log; ``console=False``: its train.log only (a population's terminal
        shows one line for all its members instead)."""
        log.info(message, *args, extra={"run": self.run.path, "console": console})

    def tracked_images(self) -> dict[str, torch.Tensor]:
        """An epoch's pictures for the trackers, as image grids [C, H, W]: the snapshot's test images
        above their reconstructions, and prior samples drawn from the same noise every epoch."""
        from torchvision.utils import make_grid  # here: importing torchvision costs every process a second

        test = self.splits.test
        originals = test.batch(torch.arange(SNAPSHOT_IMAGES, device=test.device)).images.cpu()
        rebuilt = self.snapshots[-1]["reconstructions"].float() / 255
        grids = {"reconstructions": make_grid(torch.cat([originals, rebuilt]), nrow=SNAPSHOT_IMAGES, pad_value=0.5)}
        tensorboard = self.config.logger.tensorboard
        if tensorboard is not None and tensorboard.sample_images:
            noise = torch.Generator(device=self.model.device).manual_seed(0)
            with evaluating(self.model):
                samples = self.model.sample(tensorboard.sample_images, noise).float().cpu()
            grids["prior_samples"] = make_grid(samples, nrow=math.ceil(math.sqrt(len(samples))), pad_value=0.5)
        return grids

    # -- checkpoints -------------------------------------------------------------------------------

    def save(self, row: dict) -> None:
        """The end of an epoch in the run folder: best.pt if validation improved, last.pt, metrics.jsonl."""
        val_loss = row.get("val/loss", -math.inf)  # without a validation split the latest epoch is the best
        if val_loss <= self.best["val/loss"]:
            self.best = {"epoch": row["epoch"], "val/loss": val_loss}
            save_checkpoint(self.run.best_checkpoint, {
                "epoch": row["epoch"], "model": self.model.state_dict(), "image_shape": list(self.splits.image_shape),
                "config": as_dict(self.config), "data": self.splits.fingerprint})
        save_checkpoint(self.run.last_checkpoint, self.state())
        write_jsonl(self.run.metrics_per_epoch, self.history)

    def state(self) -> dict:
        cuda = self.model.device.type == "cuda"
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer_state,
            "image_losses": self.image_losses.state_dict(),  # the discriminator and its optimizer
            "rng": {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(),
                    "noise": self.noise.get_state(), "cuda": torch.cuda.get_rng_state_all() if cuda else []},
            "history": self.history,
            "snapshots": self.snapshots,
            "best": self.best,
            "config": as_dict(self.config),
            "data": self.splits.fingerprint,
        }

    def load_state(self, checkpoint: dict, alone: bool) -> None:
        """Continue from a checkpoint. ``alone``: this member trains by itself, so the process's own
        generators (which only an unstackable model draws from) are restored too."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer_state = checkpoint["optimizer"]
        self.image_losses.load_state_dict(checkpoint.get("image_losses", {}))
        self.history, self.best = checkpoint["history"], checkpoint["best"]
        self.snapshots = checkpoint["snapshots"]
        rng = checkpoint["rng"]
        self.shuffle.set_state(rng["shuffle"].cpu())
        if "noise" in rng:
            self.noise.set_state(rng["noise"].cpu())
        if alone:
            torch.set_rng_state(rng["torch"].cpu())
            if self.model.device.type == "cuda" and rng["cuda"]:
                torch.cuda.set_rng_state_all([state.cpu() for state in rng["cuda"]])


def train_members(members: list[Member], splits: Splits) -> None:
    """Train every member to its number of epochs. Members at the same epoch train together; one
    that is behind (a resumed group whose members were saved at different epochs) first catches up
    with the next, so every member ends as it would have alone. A member that fails leaves the
    population, which goes on without it."""
    while True:
        pending = [m for m in members if not m.done]
        if not pending:
            return
        epoch = min(m.epoch for m in pending)
        active = [m for m in pending if m.epoch == epoch]
        until = min([m.epoch for m in pending if m.epoch > epoch] + [m.config.trainer.epochs for m in active])
        PopulationTrainer(active, splits).fit(until)


class PopulationTrainer:
    """The epochs of one population of members, all at the same epoch."""

    def __init__(self, members: list[Member], splits: Splits):
        self.members, self.splits = members, splits
        settings = members[0].config.trainer
        self.settings = settings
        self.population = Population([m.model for m in members], [m.config.trainer.lr for m in members],
                                     compile=settings.compile)
        for k, member in enumerate(members):
            if member.optimizer_state is not None:
                self.population.load_optimizer_state(k, member.optimizer_state)
        self.device = members[0].model.device
        # Per member, the first optimizer step whose loss was not finite (-1: none yet), kept on the
        # device, so that watching for divergence costs no synchronisation per step.
        self.first_bad_step = torch.full((len(members),), -1, dtype=torch.long, device=self.device)
        self.image_losses = members[0].image_losses if len(members) == 1 else None
        if self.image_losses is not None and self.image_losses.enabled:
            self.output_weights = members[0].model.output_layer_weights()

    def fit(self, until: int) -> None:
        members = self.members
        for member in members:
            write_jsonl(member.run.metrics_per_epoch, member.history)
        while members[0].epoch < until:
            started = time.perf_counter()
            rows = self.train_epoch()
            self.population.hand_back()
            for k, member in enumerate(members):
                member.optimizer_state = self.population.optimizer_state(k)
            for name, values in self.held_out_metrics().items():
                for row, value in zip(rows, values):
                    row[name] = value
            seconds = time.perf_counter() - started
            if len(members) > 1:
                losses = [row["val/loss" if "val/loss" in row else "test/loss"] for row in rows]
                log.info("epoch %d/%d of %d models: %s loss %.2f to %.2f | %.1f s, %s img/s in all",
                         rows[0]["epoch"], members[0].config.trainer.epochs, len(members),
                         "val" if "val/loss" in rows[0] else "test", min(losses), max(losses), seconds,
                         f"{len(members) * rows[0]['train/images_per_s']:,.0f}")
            healthy = []
            for k, (member, row) in enumerate(zip(members, rows)):
                row["epoch_s"] = seconds
                try:
                    stop_if_diverged(member, row, int(self.first_bad_step[k]))
                except RunFailed as failure:
                    member.failure = failure
                    continue
                self.end_epoch(member, row)
                healthy.append(member)
            if len(healthy) < len(members):
                return  # the failed leave; train_members stacks the rest again

    def end_epoch(self, member: Member, row: dict) -> None:
        """The epoch-end hooks of one member: its snapshot, its checkpoints and metrics.jsonl."""
        with evaluating(member.model):
            member.snapshots.append(snapshot(member.model, self.splits.test))
        member.history.append(row)
        member.save(row)
        member.trackers.epoch(row, member.tracked_images)
        member.log("epoch %d/%d: train/loss %.2f | val/loss %.2f | test/loss %.2f | %.1f s, %s img/s",
                   row["epoch"], member.config.trainer.epochs, row["train/loss"], row.get("val/loss", math.nan),
                   row["test/loss"], row["epoch_s"], f"{row['train/images_per_s']:,.0f}",
                   console=len(self.members) == 1)

    # -- one epoch -----------------------------------------------------------------------------------

    def train_epoch(self) -> list[dict]:
        members, population, data = self.members, self.population, self.splits.train
        population.train(True)
        means = TermMeans()
        extra = members[0].config.data.labelled_per_batch
        epochs = [data.shuffled_batches(self.settings.batch_size, m.shuffle, labelled_extra=extra) for m in members]
        n_batches = math.ceil(len(data) / self.settings.batch_size)
        label = f"epoch {members[0].epoch + 1}/{self.settings.epochs}" + (f", {len(members)} models" if len(members) > 1 else "")
        started = time.perf_counter()
        for batches in progress(zip(*epochs), total=n_batches, desc=label, unit="batch"):
            threads.tick()
            with self.autocast():
                terms = population.run("forward", self.stack(batches), {})
            totals = {"loss": population.objectives(terms), "nelbo": population.nelbos(terms), **terms}
            if self.image_losses is not None and self.image_losses.enabled:
                self.add_image_losses(totals, batches[0])
            loss = totals["loss"].mean(-1)  # [K]: each member's batch mean
            self.first_bad_step = torch.where((self.first_bad_step < 0) & ~torch.isfinite(loss.detach()),
                                              population.steps, self.first_bad_step)
            population.zero_grad()
            loss.sum().backward()  # members share no parameter: each gets its own gradient
            population.clip_gradients([m.config.trainer.grad_clip for m in members])
            population.step()
            if self.image_losses is not None and self.image_losses.enabled:
                self.train_discriminator(totals, batches[0])
            means.add(totals)
        images_per_s = len(data) / (time.perf_counter() - started)
        per_member = means.per_member(len(members))  # syncs
        return [{"epoch": m.epoch + 1, **{f"train/{k}": v for k, v in mine.items()}, "train/images_per_s": images_per_s,
                 "train/members": len(members)} for m, mine in zip(members, per_member)]

    def stack(self, batches: tuple[Batch, ...]) -> dict[str, torch.Tensor]:
        """The members' batches as tensors with a leading member axis, with each member's noise."""
        stacked = {"images": torch.stack([b.images for b in batches]), "labels": torch.stack([b.labels for b in batches])}
        if batches[0].labelled is not None:
            stacked["labelled"] = torch.stack([b.labelled for b in batches])
        noise = [m.model.draw_noise((len(b),), m.noise) for m, b in zip(self.members, batches)]
        if noise[0] is not None:
            stacked["noise"] = torch.stack(self.population.pad_noise(noise))
        return stacked

    def add_image_losses(self, totals: dict, batch: Batch) -> None:
        """The generator's image-space terms of a population of one (PatchGAN, VGG perceptual)."""
        model = self.members[0].model
        step = int(model.step)  # syncs: only with image losses
        image_terms = self.image_losses.generator_terms(model.last_reconstruction, batch.images, step)
        if image_terms:
            image = self.image_losses.objective(image_terms, totals["loss"][0], self.output_weights)
            totals["loss"] = totals["loss"] + image.pop("loss")
            totals.update({k: v.unsqueeze(0) for k, v in {**image_terms, **image}.items()})

    def train_discriminator(self, totals: dict, batch: Batch) -> None:
        """After the step hook: the discriminator's own step."""
        model = self.members[0].model
        with self.autocast():
            terms = self.image_losses.train_discriminator(model.last_reconstruction, batch.images, int(model.step) - 1)
        totals.update({k: v.unsqueeze(0) for k, v in terms.items()})

    def autocast(self) -> contextlib.AbstractContextManager:
        return precision_context(self.settings.precision, self.device)

    # -- held-out metrics -----------------------------------------------------------------------------

    def held_out_metrics(self) -> dict[str, list[float]]:
        """Per member: loss terms on validation and test; image quality of reconstructions of the
        first eval.epoch_images of the training and test splits (the same every epoch)."""
        settings = self.members[0].config.eval
        seeds = [m.config.seed for m in self.members]
        models = [m.model for m in self.members]  # handed back: the weights of this epoch
        metrics: dict[str, list[float]] = {}
        results = [(split, each_model(models, seeds, lambda p, s, data=getattr(self.splits, split):
                                      loss_terms(p, s, data, settings.batch_size)))
                   for split in ("val", "test") if len(getattr(self.splits, split))]
        results += [(split, each_model(models, seeds, lambda p, s, data=getattr(self.splits, split):
                                       population_reconstruction_quality(p, data, settings.batch_size,
                                                                         settings.epoch_images)))
                    for split in ("train", "test")]
        for split, values in results:
            for name in values[0]:
                metrics[f"{split}/{name}"] = [mine[name] for mine in values]
        return metrics


def stop_if_diverged(member: Member, row: dict, bad_step: int) -> None:
    """After an epoch: fail the member if a loss was not finite, before anything of that epoch is
    saved, so checkpoints/last.pt keeps the last finite weights."""
    broken = sorted(key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value))
    if bad_step < 0 and not broken:
        return
    where = f"at optimizer step {bad_step + 1}" if bad_step >= 0 else f"({', '.join(broken[:3])} not finite)"
    kept = (f"Checkpoints/last.pt keeps epoch {member.epoch}, the last finite one" if member.epoch
            else "No epoch finished, so nothing was saved")
    settings, model = member.config.trainer, member.config.model
    remedies = [f"a smaller trainer.lr (now {settings.lr:g})"]
    if settings.grad_clip is None:
        remedies.append("trainer.grad_clip=1")
    if model.likelihood == "gaussian":
        remedies.append(f"a larger model.obs_std (now {model.obs_std:g})")
    raise RunFailed(f"training diverged in epoch {row['epoch']} {where}: the loss became infinite or NaN. "
                    f"{kept}. Try {' or '.join(remedies)} in a new run")
