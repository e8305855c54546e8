"""The training loop, for a population of members (a single run is a population of one).

Per step: each member's batch and noise, one stacked forward pass, each member's objective (plus
any loss hook's terms), one backward pass, each member's Adam step, then the loss hooks' own steps.
Everything else happens in callbacks (vae_lab/callbacks.py) at two named moments of each epoch:

- ``on_epoch_end(loop, rows)``, once for the population, with each member's row of metrics:
  held-out scoring adds to the rows, the divergence check fails a member (``member.failure``);
- ``on_member_epoch_end(loop, member, row)``, for each member still healthy, once the row is in its
  history: its snapshot, its checkpoints and metrics.jsonl, its trackers, its log line.

A member that fails leaves the population, which goes on without it (:func:`train_members` stacks
the rest again).
"""

import contextlib
import logging
import math
from typing import Callable

import torch

from vae_lab.data import Batch, Splits
from vae_lab.hooks import Callback, TermMeans
from vae_lab.member import Member
from vae_lab.population import Population
from vae_lab.device import Stopwatch, precision_context
from vae_lab.progress import progress

log = logging.getLogger("vae_lab.training")

# A loss beyond this many nats per image is divergence, though finite: no image of these datasets costs
# it (784 pixels x 3 channels at a cross-entropy of 1e4 each is 2e7), and its figures would not draw.
ABSURD_LOSS = 1e10


def train_members(members: list[Member], splits: Splits, callbacks: list[Callback],
                  tick: Callable[[], None] = lambda: None) -> None:
    """Train every member to its number of epochs. Members at the same epoch train together; one
    that is behind (a resumed group whose members were saved at different epochs) first catches up
    with the next, so every member ends as it would have alone. A member that fails leaves the
    population, which goes on without it. ``tick`` is called at every step (the thread governor)."""
    while True:
        pending = [m for m in members if not m.done]
        if not pending:
            return
        epoch = min(m.epoch for m in pending)
        active = [m for m in pending if m.epoch == epoch]
        until = min([m.epoch for m in pending if m.epoch > epoch] + [m.config.trainer.epochs for m in active])
        Loop(active, splits, callbacks, tick).fit(until)


class Loop:
    """The epochs of one population of members, all at the same epoch."""

    def __init__(self, members: list[Member], splits: Splits, callbacks: list[Callback],
                 tick: Callable[[], None] = lambda: None):
        if len(members) > 1 and any(m.loss_hooks for m in members):
            raise ValueError("a member with loss hooks trains in a population of its own")
        self.members, self.splits, self.callbacks, self.tick = members, splits, callbacks, tick
        self.settings = members[0].config.trainer
        self.population = Population.of([m.model for m in members], [m.config.trainer.lr for m in members],
                                     compile=self.settings.compile)
        for k, member in enumerate(members):
            if member.optimizer_state is not None:
                self.population.load_optimizer_state(k, member.optimizer_state)
        self.device = members[0].model.device
        # Per member, the first optimizer step whose loss was not finite (-1: none yet), kept on the
        # device, so that watching for divergence costs no synchronisation per step.
        self.first_bad_step = torch.full((len(members),), -1, dtype=torch.long, device=self.device)
        self.clock = Stopwatch()  # an epoch's time leaves out the time the process was stopped
        self.epoch_started = 0.0

    def fit(self, until: int) -> None:
        with self.clock:
            self._fit(until)

    def _fit(self, until: int) -> None:
        while self.members[0].epoch < until:
            self.epoch_started = self.clock.now()
            rows = self.train_epoch()
            self.population.hand_back()
            for k, member in enumerate(self.members):
                member.optimizer_state = self.population.optimizer_state(k)
            for callback in self.callbacks:
                callback.on_epoch_end(self, rows)
            for member, row in zip(self.members, rows):
                if member.failure is None:
                    member.history.append(row)
                    for callback in self.callbacks:
                        callback.on_member_epoch_end(self, member, row)
            if any(member.failure is not None for member in self.members):
                return  # the failed leave; train_members stacks the rest again

    def train_epoch(self) -> list[dict]:
        """One pass over the training split; each member's row of mean training terms."""
        members, population, data = self.members, self.population, self.splits.train
        population.train(True)
        means = TermMeans()
        extra = members[0].config.data.labelled_per_batch
        epochs = [data.shuffled_batches(self.settings.batch_size, m.shuffle, labelled_extra=extra) for m in members]
        n_batches = math.ceil(len(data) / self.settings.batch_size)
        label = f"epoch {members[0].epoch + 1}/{self.settings.epochs}" + (f", {len(members)} models" if len(members) > 1 else "")
        hooked = [(k, hook) for k, member in enumerate(members) for hook in member.loss_hooks]
        started = self.clock.now()
        for batches in progress(zip(*epochs), total=n_batches, desc=label, unit="batch"):
            self.tick()
            with self.autocast():
                if hooked:  # a population of one (loss hooks never stack): its reconstructions, as data
                    terms, reconstructions = population.run("terms_and_reconstruction", self.stack(batches), {})
                else:
                    terms = population.run("forward", self.stack(batches), {})
            totals = {"loss": population.objectives(terms), "nelbo": population.nelbos(terms), **terms}
            for k, hook in hooked:
                added = hook.add_terms(members[k].model, batches[k].images, reconstructions[k], totals["loss"][k])
                if "loss" in added:
                    totals["loss"] = totals["loss"] + added.pop("loss")
                totals.update({name: value.unsqueeze(0) for name, value in added.items()})
            loss = totals["loss"].mean(-1)  # [K]: each member's batch mean
            bad = ~torch.isfinite(loss.detach()) | (loss.detach().abs() > ABSURD_LOSS)
            self.first_bad_step = torch.where((self.first_bad_step < 0) & bad, population.steps, self.first_bad_step)
            population.zero_grad()
            loss.sum().backward()  # members share no parameter: each gets its own gradient
            population.clip_gradients([m.config.trainer.grad_clip for m in members])
            population.step()
            for k, hook in hooked:
                totals.update({name: value.unsqueeze(0) for name, value in
                               hook.after_step(members[k].model, batches[k].images, reconstructions[k],
                                               self.autocast()).items()})
            means.add(totals)
        images_per_s = len(data) / (self.clock.now() - started)
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

    def autocast(self) -> contextlib.AbstractContextManager:
        return precision_context(self.settings.precision, self.device)
