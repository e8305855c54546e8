"""Sample quality, judged by the reference classifier: confidence, digit coverage, a Frechet distance
in its feature space, and for label-conditioned models whether samples show the requested digit; on
color images, how colorful the samples' strokes are next to the data's."""

import math

import torch
import torch.nn.functional as F

from vae_lab.data import ImageSet
from vae_lab.metrics.reference import FEATURES, ReferenceClassifier
from vae_lab.metrics.traversal import stroke_hue
from vae_lab.progress import progress


def sample_quality(model, reference: ReferenceClassifier, test: ImageSet, n_samples: int,
                   batch_size: int, seed: int) -> dict[str, float]:
    """``confidence``: mean top-class probability of prior samples. ``class_entropy``: entropy (nats)
    of the classes (digits) they are classified as, ln 10 = 2.303 when all ten are equally common. ``fd``: the
    Frechet distance between reference features of the samples and of the test images (torchmetrics'
    FID with this classifier as feature extractor). ``label_acc`` (conditional models): how often the
    classifier sees the digit that was asked for. ``stroke_chroma`` (color images): the mean chroma of
    the samples' stroke colors over that of the test images' (1: as colorful as the data; toward 0: the
    strokes whiten, as a decoder does that averages many tints)."""
    generator = torch.Generator().manual_seed(seed)
    sizes = [min(batch_size, n_samples - start) for start in range(0, n_samples, batch_size)]
    with progress(desc="sample quality", total=2 * n_samples, unit="image") as bar:
        samples = torch.cat([model.sample(size, generator=generator) for size in sizes]).float()
        bar.update(n_samples)
        fake = reference.embed(samples)  # once, for the distance and the digits seen
        bar.update(n_samples)
    real = reference.test_features
    if real is None or len(real) != len(test):  # a classifier not made by reference_classifier
        real = reference.features_of(test, batch_size)
    probabilities = F.softmax(reference.classify(fake), -1)
    counts = torch.bincount(probabilities.argmax(-1), minlength=probabilities.shape[-1]).float()
    share = counts / counts.sum()
    metrics = {
        "confidence": probabilities.max(-1).values.mean().item(),
        "class_entropy": -(share * share.clamp_min(1e-12).log()).sum().item(),
        "fd": frechet_distance(real, fake),
    }
    if samples.shape[-3] == 3:
        data_chroma = torch.cat([stroke_hue(batch.images.float())[1] for batch in test.batches(batch_size)]).mean()
        metrics["stroke_chroma"] = (stroke_hue(samples)[1].mean() / data_chroma.clamp_min(1e-8)).item()
    if model.conditional:
        classes = probabilities.shape[-1]
        labels = torch.arange(classes).repeat(math.ceil(n_samples / classes))[:n_samples]
        asked = torch.cat([model.sample_with_label(chunk, generator) for chunk in labels.split(batch_size)])
        seen = reference(asked).argmax(-1)
        metrics["label_acc"] = (seen.cpu() == labels).float().mean().item()
    return metrics


class _Computed(torch.nn.Identity):
    """A feature extractor for torchmetrics' FID whose input is features already computed."""

    num_features = FEATURES


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance between two sets of features [N, FEATURES] (torchmetrics' FID, fed the
    reference classifier's features)."""
    from torchmetrics.image.fid import FrechetInceptionDistance  # lazily, as in metrics/images.py

    fid = FrechetInceptionDistance(feature=_Computed()).to(fake.device)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return fid.compute().item()
