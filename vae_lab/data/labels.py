"""Which training labels a semi-supervised run may use: a class-balanced subset fixed by data.seed."""

import torch

from vae_lab.config import ConfigError

N_CLASSES = 10


def balanced_label_mask(labels: torch.Tensor, n_labels: int, seed: int) -> torch.Tensor:
    """A bool mask over ``labels`` keeping ``n_labels // N_CLASSES`` images of each class, chosen by a
    permutation drawn from ``seed``: the same images for the same seed and training split."""
    per_class = n_labels // N_CLASSES
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(N_CLASSES):
        rows = order[labels[order] == digit][:per_class]
        if len(rows) < per_class:
            raise ConfigError("data.n_labels", n_labels,
                              f"the training split has only {len(rows)} images of digit {digit}, "
                              f"fewer than the {per_class} per class asked for")
        mask[rows] = True
    return mask
