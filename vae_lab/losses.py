"""Reconstruction terms: negative log-likelihoods of images under the decoder, in nats per image.

Convention used everywhere in vae-lab: every loss term is a per-image value, summed over pixels (and
over latent dimensions for KL terms); batches are averaged over images. The decoder always outputs
logits; ``torch.sigmoid(logits)`` is the image it means (the Bernoulli mean, or the Gaussian mean).
"""

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian")


PIXEL_DIMS = (-3, -2, -1)  # channels, height, width: summed into one value per image


def bernoulli_nll(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) for independent Bernoulli pixels; x may be grey values in [0, 1] (then it is the
    cross-entropy to those values, the usual convention for non-binarized MNIST).

    softplus(l) - x l is the cross-entropy with logits, written so that ``images`` [B, C, H, W] may
    broadcast against ``logits`` with extra leading axes ([n, B, C, H, W] for n draws per image)."""
    logits = logits.float()
    return (softplus(logits) - images * logits).sum(PIXEL_DIMS)


def softplus(logits: torch.Tensor) -> torch.Tensor:
    """log(1 + e^l). Where no gradient is wanted (evaluation: every held-out score and the importance
    weights), as max(l, 0) - log(sigmoid(|l|)): a CPU's log and sigmoid are vectorised where its log1p
    is not, which makes this several times faster than F.softplus, equal up to float32 rounding
    (tests/test_losses.py). Training keeps F.softplus, whose gradient is exact at l = 0 too. Gradient
    mode, not ``requires_grad``, tells them apart: inside torch.func's grad transform (stacked
    training) a tensor does not say that it requires one."""
    if torch.is_grad_enabled():
        return F.softplus(logits)
    return logits.clamp_min(0) - torch.sigmoid(logits.abs()).log()


def gaussian_nll(logits: torch.Tensor, images: torch.Tensor, std: float) -> torch.Tensor:
    """-log N(x; sigmoid(logits), std^2) summed over pixels, with its normalising constant."""
    residual = (images - torch.sigmoid(logits.float())) / std
    per_pixel = 0.5 * residual.square() + math.log(std) + 0.5 * math.log(2 * math.pi)
    return per_pixel.sum(PIXEL_DIMS)


def reconstruction_nll(likelihood: str, logits: torch.Tensor, images: torch.Tensor,
                       obs_std: float) -> torch.Tensor:
    if likelihood == "bernoulli":
        return bernoulli_nll(logits, images)
    if likelihood == "gaussian":
        return gaussian_nll(logits, images, obs_std)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
