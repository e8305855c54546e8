"""What the training loop does besides training, as callbacks at its named moments (vae_lab/loop.py).

:func:`standard_callbacks` lists them in the order they run: held-out scoring, the epoch's time and
log line, the divergence check; then per member the snapshot for training_evolution.gif, the
checkpoints with metrics.jsonl, and the trackers.

After every epoch each member's run folder is brought up to date: ``best.pt`` (if validation
improved), ``last.pt`` (everything needed to resume: weights, Adam state, generators, history), then
``metrics.jsonl``. Each write is atomic, so a killed run resumes from ``last.pt`` and ends exactly
as an uninterrupted one.
"""

import math

import torch

from vae_lab.checkpoints import best_state, resumable_state, save_checkpoints
from vae_lab.config import as_dict
from vae_lab.errors import RunFailed
from vae_lab.evaluate import each_model, evaluating, loss_terms
from vae_lab.figures.animations import SNAPSHOT_IMAGES, snapshot
from vae_lab.files import write_jsonl
from vae_lab.hooks import Callback
from vae_lab.loop import ABSURD_LOSS, Loop, log
from vae_lab.member import Member
from vae_lab.metrics import population_reconstruction_quality
from vae_lab.trackers import Trackers


def standard_callbacks() -> list[Callback]:
    return [HeldOutScores(), EpochLog(), DivergenceCheck(), Snapshots(), Checkpoints(), Tracking()]


class HeldOutScores(Callback):
    """Per member: loss terms on validation and test; image quality of reconstructions of the first
    eval.epoch_images of the training and test splits (the same every epoch)."""

    def on_epoch_end(self, loop: Loop, rows: list[dict]) -> None:
        settings = loop.members[0].config.eval
        seeds = [m.config.seed for m in loop.members]
        models = [m.model for m in loop.members]  # handed back: the weights of this epoch
        splits = loop.splits
        results = [(split, each_model(models, seeds, lambda p, s, data=getattr(splits, split):
                                      loss_terms(p, s, data, settings.batch_size)))
                   for split in ("val", "test") if len(getattr(splits, split))]
        results += [(split, each_model(models, seeds, lambda p, s, data=getattr(splits, split):
                                       population_reconstruction_quality(p, data, settings.batch_size,
                                                                         settings.epoch_images)))
                    for split in ("train", "test")]
        for split, values in results:
            for name in values[0]:
                for row, mine in zip(rows, values):
                    row[f"{split}/{name}"] = mine[name]


class EpochLog(Callback):
    """The epoch's time in each row, and its log lines: one for the population on the terminal (a
    population of one: its member's line), and each member's in its train.log."""

    def on_epoch_end(self, loop: Loop, rows: list[dict]) -> None:
        seconds = loop.clock.now() - loop.epoch_started  # less any time the process was stopped
        for row in rows:
            row["epoch_s"] = seconds
        if len(rows) > 1:
            losses = [row["val/loss" if "val/loss" in row else "test/loss"] for row in rows]
            log.info("epoch %d/%d of %d models: %s loss %.2f to %.2f | %.1f s, %s img/s in all",
                     rows[0]["epoch"], loop.settings.epochs, len(rows), "val" if "val/loss" in rows[0] else "test",
                     min(losses), max(losses), seconds, f"{len(rows) * rows[0]['train/images_per_s']:,.0f}")

    def on_member_epoch_end(self, loop: Loop, member: Member, row: dict) -> None:
        validation = f" | val/loss {row['val/loss']:.2f}" if "val/loss" in row else ""  # none without a split
        member.log("epoch %d/%d: train/loss %.2f%s | test/loss %.2f | %.1f s, %s img/s",
                   row["epoch"], member.config.trainer.epochs, row["train/loss"], validation,
                   row["test/loss"], row["epoch_s"], f"{row['train/images_per_s']:,.0f}",
                   console=len(loop.members) == 1)


class DivergenceCheck(Callback):
    """Fails a member whose loss was not finite, before anything of that epoch is saved, so
    checkpoints/last.pt keeps the last finite weights."""

    def on_epoch_end(self, loop: Loop, rows: list[dict]) -> None:
        for k, (member, row) in enumerate(zip(loop.members, rows)):
            bad_step = int(loop.first_bad_step[k])
            broken = sorted(key for key, value in row.items() if isinstance(value, float)
                            and not (math.isfinite(value) and abs(value) <= ABSURD_LOSS))
            if bad_step >= 0 or broken:
                member.failure = diverged(member, row, bad_step, broken)


def diverged(member: Member, row: dict, bad_step: int, broken: list[str]) -> RunFailed:
    where = f"at optimizer step {bad_step + 1}" if bad_step >= 0 else f"({', '.join(broken[:3])} not finite or absurd)"
    kept = (f"Checkpoints/last.pt keeps epoch {member.epoch}, the last finite one" if member.epoch
            else "No epoch finished, so nothing was saved")
    settings, model = member.config.trainer, member.config.model
    remedies = [f"a smaller trainer.lr (now {settings.lr:g})"]
    if settings.grad_clip is None:
        remedies.append("trainer.grad_clip=1")
    if model.likelihood == "gaussian":
        remedies.append(f"a larger model.obs_std (now {model.obs_std:g})")
    return RunFailed(f"training diverged in epoch {row['epoch']} {where}: the loss became infinite, NaN or over "
                     f"{ABSURD_LOSS:.0e} nats per image. "
                     f"{kept}. Try {' or '.join(remedies)} in a new run")


class Snapshots(Callback):
    """What training_evolution.gif keeps of each epoch (vae_lab/figures/animations.py)."""

    def on_member_epoch_end(self, loop: Loop, member: Member, row: dict) -> None:
        with evaluating(member.model):
            member.snapshots.append(snapshot(member.model, loop.splits.test))


class Checkpoints(Callback):
    """The run folder after every epoch: best.pt if validation improved, last.pt, metrics.jsonl."""

    def on_member_epoch_end(self, loop: Loop, member: Member, row: dict) -> None:
        splits = loop.splits
        val_loss = row.get("val/loss", -math.inf)  # without a validation split the latest epoch is the best
        states = {}
        if val_loss <= member.best["val/loss"]:
            member.best = {"epoch": row["epoch"], "val/loss": val_loss}
            states[member.run.best_checkpoint] = best_state(member, row["epoch"], splits)
        states[member.run.last_checkpoint] = resumable_state(member, splits.fingerprint)
        save_checkpoints(states)  # both or neither: a full disk leaves the pair that resumes
        write_jsonl(member.run.metrics_per_epoch, member.history)


class Tracking(Callback):
    """Each member's experiment trackers (vae_lab/trackers/): opened as the run starts, continuing
    after the epochs it has; fed each epoch; closed as it ends (unfinished if it did not)."""

    def on_run_start(self, member: Member) -> None:
        config = as_dict(member.config)
        member.trackers = Trackers.open(member.config.logger, member.run.path, config, member.history)

    def on_member_epoch_end(self, loop: Loop, member: Member, row: dict) -> None:
        member.trackers.epoch(row, lambda: tracked_images(member, loop.splits))

    def on_run_end(self, member: Member, metrics: "dict | BaseException") -> None:
        if member.trackers is not None:  # once: an interrupted run ends here again as the command unwinds
            member.trackers.close(finished=not isinstance(metrics, BaseException))
            member.trackers = None


def tracked_images(member: Member, splits) -> dict[str, torch.Tensor]:
    """An epoch's pictures for the trackers, as image grids [C, H, W]: the snapshot's test images
    above their reconstructions, and prior samples drawn from the same noise every epoch."""
    from torchvision.utils import make_grid  # here: importing torchvision costs every process a second

    test = splits.test
    originals = test.batch(torch.arange(SNAPSHOT_IMAGES, device=test.device)).images.cpu()
    rebuilt = member.snapshots[-1]["reconstructions"].float() / 255
    grids = {"reconstructions": make_grid(torch.cat([originals, rebuilt]), nrow=SNAPSHOT_IMAGES, pad_value=0.5)}
    tensorboard = member.config.logger.tensorboard
    if tensorboard is not None and tensorboard.sample_images:
        noise = torch.Generator(device=member.model.device).manual_seed(0)
        with evaluating(member.model):
            samples = member.model.sample(tensorboard.sample_images, noise).float().cpu()
        grids["prior_samples"] = make_grid(samples, nrow=math.ceil(math.sqrt(len(samples))), pad_value=0.5)
    return grids
