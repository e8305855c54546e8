"""Figures of a trained model, drawn only through its public ``embed``, ``reconstruct`` and ``sample``.

Every figure has a title that says which model it shows, labelled axes, and colors that mean
something (digit classes in a fixed qualitative palette; on color_mnist also each sample's own tint).
"""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from vae_lab.data import CLASS_NAMES, ImageSet, Splits  # noqa: E402
from vae_lab.evaluate import evaluating  # noqa: E402
from vae_lab.models import VAE  # noqa: E402

DIGIT_COLORS = plt.get_cmap("tab10").colors
SCATTER_POINTS = 5000  # enough to see the structure, few enough that points stay readable
DPI = 150
TERM_LABELS = {
    "loss": "training objective",
    "nelbo": "negative ELBO",
    "recon": "reconstruction $-\\log p(x|z)$",
    "kl": "KL$(q(z|x)\\,\\|\\,p(z))$",
    "kl_disc": "categorical KL$(q(c|x)\\,\\|\\,p(c))$",
    "kl_y": "label KL$(q(y|x)\\,\\|\\,p(y))$",
    "class_acc": "classifier accuracy",
}


def describe(config: Any) -> str:
    """A caption naming the model, e.g. 'continuous VAE (latent 20, beta 1), mlp backbone, mnist'."""
    data = config.data.name + (f", {config.data.n_labels} labels" if config.data.n_labels else "")
    return f"{config.model.name} VAE ({config.model.summary()}), {config.backbone.name} backbone, {data}"


def draw_figures(model: VAE, splits: Splits, history: list[dict], out_dir: Path, config: Any) -> list[Path]:
    """Every figure of a finished run, into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    caption = describe(config)
    with evaluating(model):
        paths = [
            reconstructions(model, splits.test, out_dir / "reconstructions.png", caption),
            samples(model, out_dir / "samples.png", caption, seed=config.seed),
            latent_scatter(model, splits.test, out_dir / "latent_scatter.png", caption),
        ]
        if model.conditional:
            paths.append(conditional_samples(model, out_dir / "conditional_samples.png", caption, config.seed))
    paths.append(training_curves(history, out_dir / "training_curves.png", caption))
    return paths


def reconstructions(model: VAE, data: ImageSet, path: Path, caption: str,
                    rows: int = 4, columns: int = 12) -> Path:
    """Pairs of rows: test images, and under each its reconstruction from the posterior mean."""
    batch = data.batch(torch.arange(rows * columns, device=data.device))
    originals, rebuilt = batch.images, model.reconstruct(batch.images)
    interleaved = torch.stack([originals.view(rows, columns, *originals.shape[1:]),
                               rebuilt.view(rows, columns, *rebuilt.shape[1:])], dim=1)
    grid = _grid(interleaved.flatten(0, 2), columns)
    fig, ax = plt.subplots(figsize=(columns * 0.55 + 1.3, 2 * rows * 0.55 + 0.8), constrained_layout=True)
    _show_grid(ax, grid)
    cell = grid.shape[0] / (2 * rows)
    ax.set_yticks([cell * (i + 0.5) for i in range(2 * rows)],
                  ["original", "reconstruction"] * rows, fontsize=8)
    ax.set_title(f"Test images and their reconstructions\n{caption}", fontsize=10)
    return _save(fig, path)


def samples(model: VAE, path: Path, caption: str, seed: int, side: int = 8) -> Path:
    """A grid of images decoded from codes drawn from the prior."""
    images = model.sample(side * side, generator=torch.Generator().manual_seed(seed))
    fig, ax = plt.subplots(figsize=(5.2, 5.6), constrained_layout=True)
    _show_grid(ax, _grid(images, side))
    ax.set_yticks([])
    ax.set_title(f"Samples from the prior\n{caption}", fontsize=10)
    return _save(fig, path)


def conditional_samples(model: VAE, path: Path, caption: str, seed: int, per_label: int = 10) -> Path:
    """One row per digit: images the model generates when asked for that digit."""
    labels = torch.arange(len(CLASS_NAMES)).repeat_interleave(per_label)
    images = model.sample_with_label(labels, generator=torch.Generator().manual_seed(seed))
    fig, ax = plt.subplots(figsize=(per_label * 0.55 + 1.2, len(CLASS_NAMES) * 0.55 + 0.9),
                           constrained_layout=True)
    grid = _grid(images, per_label)
    _show_grid(ax, grid)
    cell = grid.shape[0] / len(CLASS_NAMES)
    ax.set_yticks([cell * (i + 0.5) for i in range(len(CLASS_NAMES))], CLASS_NAMES)
    ax.set_ylabel("requested digit")
    ax.set_title(f"Samples generated for each digit\n{caption}", fontsize=10)
    return _save(fig, path)


def latent_scatter(model: VAE, data: ImageSet, path: Path, caption: str) -> Path:
    """Test codes in 2-D, one row per latent part: the continuous part (PCA above two dimensions) and
    the categorical part (PCA of its category probabilities). Colored by digit; on color_mnist also by
    each image's own tint."""
    codes = torch.cat([model.embed(b.images) for b in data.batches(1000)]).float().cpu().numpy()
    spec = model.spec
    parts = []
    if spec.continuous:
        parts.append(("Gaussian part", codes[:, spec.continuous_slice]))
    if spec.discrete:
        layout = " + ".join(f"{n}x{k}" for n, k in spec.discrete)
        parts.append((f"categorical part ({layout}, probabilities)", codes[:, spec.discrete_slice]))
    shown = np.random.default_rng(0).permutation(len(codes))[:SCATTER_POINTS]
    labels = data.labels.cpu().numpy()[shown]
    tints = data.colors.cpu().numpy()[shown] if data.colors is not None else None
    columns = 1 if tints is None else 2
    fig, axes = plt.subplots(len(parts), columns, figsize=(5.8 * columns, 5.0 * len(parts)),
                             constrained_layout=True, squeeze=False)
    for row, (part, values) in enumerate(parts):
        points, axis_labels, how = _to_2d(values)
        points = points[shown]
        ax = axes[row, 0]
        for digit, name in enumerate(CLASS_NAMES):
            mine = points[labels == digit]
            ax.scatter(mine[:, 0], mine[:, 1], s=4, alpha=0.6, color=DIGIT_COLORS[digit], label=name,
                       rasterized=True)
        ax.legend(title="digit", markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5),
                  frameon=False)
        ax.set_title(f"{part}: {how}, by digit", fontsize=10)
        if tints is not None:
            ax = axes[row, 1]
            ax.set_facecolor("0.12")  # a dark ground, as the images have, so every tint shows
            ax.scatter(points[:, 0], points[:, 1], s=4, c=tints, rasterized=True)
            ax.set_title(f"{part}: by each image's own tint", fontsize=10)
        for ax in axes[row]:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
    fig.suptitle(f"Test set in latent space ({len(shown):,} images)\n{caption}", fontsize=10)
    return _save(fig, path)


def _to_2d(values: np.ndarray) -> tuple[np.ndarray, list[str], str]:
    """Points to plot, axis labels and how they were made: as they are in two dimensions, by PCA above
    two, with a meaningless vertical jitter in one."""
    if values.shape[1] > 2:
        pca = PCA(n_components=2).fit(values)
        share = pca.explained_variance_ratio_ * 100
        return (pca.transform(values), [f"PC {i + 1} ({share[i]:.0f}% of variance)" for i in range(2)],
                f"PCA of {values.shape[1]} dimensions")
    if values.shape[1] == 2:
        return values, ["$z_1$", "$z_2$"], "the 2 dimensions"
    jitter = np.random.default_rng(0).uniform(-0.4, 0.4, len(values))
    return np.column_stack([values[:, 0], jitter]), ["$z_1$", "jitter (no meaning)"], "1 dimension"


def training_curves(history: list[dict], path: Path, caption: str) -> Path:
    """Objective, reconstruction, each KL term and (for classifiers) accuracy per epoch and split."""
    logged = {key.split("/", 1)[1] for row in history for key in row if key.startswith("train/")}
    terms = ["loss", "recon", *sorted(t for t in logged if t.startswith("kl"))]
    terms += [t for t in ("class_acc",) if t in logged]
    fig, axes = plt.subplots(1, len(terms), figsize=(4.3 * len(terms), 3.6), constrained_layout=True)
    epochs = [row["epoch"] for row in history]
    for ax, term in zip(np.atleast_1d(axes), terms):
        for split, style in (("train", "-o"), ("val", "--s"), ("test", ":^")):
            values = [row.get(f"{split}/{term}", np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, style, markersize=4, label=split)
        ax.set_xlabel("epoch")
        unit = "fraction of images" if term == "class_acc" else "nats / image"
        ax.set_ylabel(f"{TERM_LABELS.get(term, term)} ({unit})")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Training curves\n{caption}", fontsize=10)
    return _save(fig, path)


def _grid(images: torch.Tensor, columns: int) -> np.ndarray:
    grid = make_grid(images.float().cpu().clamp(0, 1), nrow=columns, padding=2, pad_value=0.5)
    return grid.permute(1, 2, 0).numpy()


def _show_grid(ax: plt.Axes, grid: np.ndarray) -> None:
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
