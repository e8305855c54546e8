"""Metrics: functions of (model, data) that return numbers, testable on their own."""

import contextlib
from typing import Iterator

import torch

from vae_lab.data import ImageSet
from vae_lab.models import VAE


class TermMeans:
    """Per-image means of named terms over many batches, summed on the device (no sync per batch)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for name, values in terms.items():
            total = values.detach().sum()
            self.sums[name] = self.sums[name] + total if name in self.sums else total
        self.count += len(next(iter(terms.values())))

    def means(self) -> dict[str, float]:
        return {name: total.item() / self.count for name, total in self.sums.items()}


def with_totals(model: VAE, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss terms plus the training objective (``loss``) and the negative ELBO (``nelbo``)."""
    return {"loss": model.objective(terms), "nelbo": model.nelbo(terms), **terms}


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the block; the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def loss_terms(model: VAE, data: ImageSet, batch_size: int) -> dict[str, float]:
    """Mean loss, negative ELBO and each loss term over a split (one posterior sample per image),
    in full precision."""
    means = TermMeans()
    with evaluating(model):
        for batch in data.batches(batch_size):
            means.add(with_totals(model, model(batch)))
    return means.means()


def final_metrics(model: VAE, test: ImageSet, batch_size: int, seed: int) -> dict[str, float]:
    """The metrics of a trained model on the test split: the same numbers for the same seed, at the
    end of training and in `vae-lab eval`. The caller's random state is left as it was."""
    cuda = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        terms = loss_terms(model, test, batch_size)
    return {f"test/{name}": value for name, value in terms.items()}
