"""The loop's extension points, in a leaf module: what a callback, a loss hook and a term average are.

Everything the loop does besides forward, backward and step is a :class:`Callback`; terms beyond a
model's own objective are a :class:`LossHook`. Both are declared here, importing nothing of vae-lab,
so that losses never import the loop and the loop never imports evaluation.
"""

import torch


class Callback:
    """Called at a run's named moments; each does nothing unless overridden. ``loop``:
    vae_lab.loop.Loop; ``member``: vae_lab.member.Member."""

    def on_run_start(self, member) -> None:
        """The run passed every check and is about to train (its folder is written from here on)."""

    def on_epoch_end(self, loop, rows: list[dict]) -> None:
        """Once for the population, with each member's row of metrics: add to the rows, or fail a
        member (``member.failure``)."""

    def on_member_epoch_end(self, loop, member, row: dict) -> None:
        """For each member still healthy, once the row is in its history."""

    def on_run_end(self, member, metrics: "dict | BaseException") -> None:
        """The run ended: its final metrics, or why it did not finish."""


class LossHook:
    """Terms beyond the model's own objective, for one member (an image-space loss): added before
    the backward pass, with a step of their own after the optimizer's (a discriminator's). Its state
    travels in the member's checkpoint. A member with a loss hook trains in a population of its own
    (vae_lab/population.py never stacks it)."""

    name = "loss_hook"  # its key in the checkpoint

    def add_terms(self, model, images: torch.Tensor, reconstruction: torch.Tensor,
                  objective: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image terms [B] to log, and ``loss``: what to add to the per-image ``objective``.
        ``reconstruction``: the logits of the model's reconstruction of ``images`` in this step."""
        return {}

    def after_step(self, model, images: torch.Tensor, reconstruction: torch.Tensor,
                   autocast) -> dict[str, torch.Tensor]:
        """After the optimizer's step: per-image terms [B] to log."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class TermMeans:
    """Per-image means of named terms over many batches, summed on the device (no sync per batch).
    Values are per image on their last axis, [B], or [K, B] for the K members of a population."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # per term: some join mid-epoch (the discriminator's)

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for name, values in terms.items():
            total = values.detach().float().sum(-1)
            self.sums[name] = self.sums[name] + total if name in self.sums else total
            self.counts[name] = self.counts.get(name, 0) + values.shape[-1]

    def means(self) -> dict[str, float]:
        return {name: total.item() / self.counts[name] for name, total in self.sums.items()}

    def per_member(self, members: int) -> list[dict[str, float]]:
        """One dict of means per member (one sync for all of them)."""
        names = list(self.sums)
        if not names:
            return [{} for _ in range(members)]
        table = (torch.stack([self.sums[n].expand(members) for n in names]).cpu()
                 / torch.tensor([float(self.counts[n]) for n in names])[:, None])
        return [{n: float(table[i, k]) for i, n in enumerate(names)} for k in range(members)]
