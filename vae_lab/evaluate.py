"""Evaluation: loss terms over a split, and every final metric of a trained model."""

import contextlib
import logging
import time
from typing import Iterator

import torch

from vae_lab.data import ImageSet, Splits
from vae_lab.metrics import (importance_sampled_nll, latent_statistics, probe_accuracies,
                             reconstruction_quality, reference_classifier, sample_quality)
from vae_lab.models import VAE

log = logging.getLogger(__name__)


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


def loss_terms(model: VAE, data: ImageSet, batch_size: int, seed: int) -> dict[str, float]:
    """Mean loss, negative ELBO and each loss term over a split (one posterior sample per image,
    drawn from a generator seeded by ``seed``, as loop.stacked_loss_terms draws a member's), in full
    precision."""
    means = TermMeans()
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with evaluating(model):
        for batch in data.batches(batch_size):
            batch.noise = model.draw_noise((len(batch),), generator)
            means.add(with_totals(model, model(batch)))
    return means.means()


def final_metrics(model: VAE, splits: Splits, config) -> dict:
    """Every metric of a trained model: the same numbers for the same seed, at the end of training and
    in `vae-lab eval`. Test-split metrics are named ``test/...``, sample metrics ``samples/...``. The
    caller's random state is left as it was."""
    settings = config.eval
    cuda = [model.device] if model.device.type == "cuda" else []
    metrics: dict = {}

    def section(name: str, prefix: str, compute) -> None:
        started = time.perf_counter()
        metrics.update({f"{prefix}/{key}": value for key, value in compute().items()})
        log.info("%s: %.1f s", name, time.perf_counter() - started)

    with torch.random.fork_rng(devices=cuda), evaluating(model):
        torch.manual_seed(config.seed)
        section("loss terms", "test", lambda: loss_terms(model, splits.test, settings.batch_size, config.seed))
        if settings.is_samples:
            section(f"importance-sampled NLL ({settings.is_samples} samples)", "test",
                    lambda: importance_sampled_nll(model, splits.test, settings.is_samples, settings.is_rows))
        section("image quality", "test", lambda: reconstruction_quality(model, splits.test, settings.batch_size))
        section("latent statistics", "test", lambda: latent_statistics(model, splits.test, settings.batch_size))
        section("probes", "test", lambda: probe_accuracies(model, splits.train, splits.test, settings.batch_size,
                                                           settings.probe_images))
        if settings.sample_images:
            reference = reference_classifier(config.data, splits, model.device)
            section("sample quality", "samples", lambda: sample_quality(
                model, reference, splits.test, settings.sample_images, settings.batch_size, config.seed))
    return metrics


# What `finish` adds to the metrics of final_metrics.
RUN_METRICS = ("best_epoch", "epochs", "train/images_per_s", "train_s")


def final_metric_names(model: VAE, splits: Splits, config) -> set[str]:
    """The names of the numbers :func:`final_metrics` and the end of training will report for this
    model and config, known before training (to check ``optimized_metric`` before any work). The
    loss terms are read off one forward pass on two training images; the caller's random state is
    left as it was."""
    settings = config.eval
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []), evaluating(model):
        terms = with_totals(model, model(splits.train.batch(torch.arange(min(2, len(splits.train)),
                                                                         device=splits.train.device))))
    test = [*terms, "mse", "psnr", "ssim", "probe_acc", "knn_acc"]
    if settings.is_samples:
        test += ["nll", "bits_per_dim"]
    if splits.train.hue_bins is not None:
        test.append("color_probe_acc")
    if model.spec.continuous:
        test.append("active_units")
    if model.spec.discrete:
        test.append("code_perplexity")
    samples = []
    if settings.sample_images:
        samples = ["confidence", "class_entropy", "fd"] + (["label_acc"] if model.conditional else [])
    return {*(f"test/{name}" for name in test), *(f"samples/{name}" for name in samples), *RUN_METRICS}
