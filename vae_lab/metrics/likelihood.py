"""The test log-likelihood, estimated by importance sampling with the encoder as proposal."""

import math

import torch

from vae_lab.data import ImageSet


def importance_sampled_nll(model, data: ImageSet, n_samples: int, rows_per_pass: int) -> dict[str, float]:
    """Mean -log p(x) over ``data`` in nats, from ``n_samples`` posterior draws per image
    (log-mean-exp of the importance weights; an upper bound on -log p(x) in expectation that tightens
    as ``n_samples`` grows), and the same in bits per dimension.

    ``rows_per_pass`` bounds the decoder passes made at once: images are taken a few at a time and
    their draws in chunks, so memory stays flat however many samples are asked for.
    """
    chunk = min(n_samples, rows_per_pass)
    images_at_once = max(1, rows_per_pass // chunk)
    sizes = [chunk] * (n_samples // chunk) + ([n_samples % chunk] if n_samples % chunk else [])
    per_image = []
    for batch in data.batches(images_at_once):
        log_w = torch.cat([model.log_importance_weights(batch.images, m) for m in sizes], dim=1)
        per_image.append(torch.logsumexp(log_w, dim=1) - math.log(n_samples))
    nll = -torch.cat(per_image).mean().item()
    return {"nll": nll, "bits_per_dim": nll / (math.prod(data.image_shape) * math.log(2))}
