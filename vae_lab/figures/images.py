"""Grids of images: reconstructions, prior samples, samples near the data, samples per digit."""

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from vae_lab.data import DataInfo, ImageSet
from vae_lab.figures.style import image_grid, label_rows, save, show_grid


def _figure(grid, rows: int, columns: int, extra_height: float = 0.9):
    fig, ax = plt.subplots(figsize=(columns * 0.55 + 1.3, rows * 0.55 + extra_height), constrained_layout=True)
    show_grid(ax, grid)
    return fig, ax


def reconstructions(model, data: ImageSet, path: Path, caption: str, rows: int = 4, columns: int = 12) -> Path:
    """Pairs of rows: test images, and under each its reconstruction from the posterior mean."""
    images = data.batch(torch.arange(rows * columns, device=data.device)).images
    rebuilt = model.reconstruct(images)
    pairs = torch.stack([images.view(rows, columns, *images.shape[1:]),
                         rebuilt.view(rows, columns, *rebuilt.shape[1:])], dim=1)
    grid = image_grid(pairs.flatten(0, 2), columns)
    fig, ax = _figure(grid, 2 * rows, columns)
    label_rows(ax, grid, ["original", "reconstruction"] * rows)
    ax.set_title(f"Test images and their reconstructions (posterior mean code)\n{caption}", fontsize=10)
    return save(fig, path)


def samples(model, path: Path, caption: str, seed: int, side: int = 8) -> Path:
    """Images decoded from codes drawn from the prior."""
    images = model.sample(side * side, generator=torch.Generator().manual_seed(seed))
    fig, ax = _figure(image_grid(images, side), side, side)
    ax.set_title(f"Samples from the prior\n{caption}", fontsize=10)
    return save(fig, path)


def samples_posterior(model, data: ImageSet, path: Path, caption: str, seed: int, rows: int = 8,
                      draws: int = 7) -> Path:
    """Each row: a training image, then images decoded from codes drawn from its posterior."""
    generator = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(data), generator=generator)[:rows].to(data.device)
    images = data.batch(picked).images
    torch.manual_seed(seed)
    near = torch.stack([model.sample_posterior(images) for _ in range(draws)], dim=1)  # [rows, draws, ...]
    grid = image_grid(torch.cat([images.unsqueeze(1), near], dim=1).flatten(0, 1), draws + 1)
    fig, ax = _figure(grid, rows, draws + 1)
    ax.set_xticks([grid.shape[1] / (draws + 1) * 0.5], ["training image"], fontsize=8)
    ax.set_xlabel(f"then {draws} images decoded from codes drawn from its posterior q(z|x)", fontsize=8)
    ax.set_title(f"Samples near the data\n{caption}", fontsize=10)
    return save(fig, path)


def conditional_samples(model, info: DataInfo, path: Path, caption: str, seed: int, per_label: int = 10) -> Path:
    """One row per class (digit): images the model generates when asked for that class."""
    names = info.class_names
    labels = torch.arange(len(names)).repeat_interleave(per_label)
    images = model.sample_with_label(labels, generator=torch.Generator().manual_seed(seed))
    grid = image_grid(images, per_label)
    fig, ax = _figure(grid, len(names), per_label)
    label_rows(ax, grid, list(names))
    ax.set_ylabel(f"requested {info.label}")
    ax.set_xlabel(f"{per_label} samples of each {info.label}, each decoded from a code of its own", fontsize=8)
    ax.set_title(f"Samples generated for each {info.label}\n{caption}", fontsize=10)
    return save(fig, path)
