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
}


def describe(config: Any) -> str:
    """A short caption naming the model, e.g. 'continuous VAE (latent 20, beta 1), mlp, mnist'."""
    model = config.model
    sizes = [f"latent {model.latent_dim}"] if hasattr(model, "latent_dim") else []
    sizes.append(f"beta {model.beta:g}")
    return f"{model.name} VAE ({', '.join(sizes)}), {config.backbone.name} backbone, {config.data.name}"


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


def latent_scatter(model: VAE, data: ImageSet, path: Path, caption: str) -> Path:
    """Test codes in 2-D (PCA above two dimensions), colored by digit, and by tint on color_mnist."""
    codes = torch.cat([model.embed(b.images) for b in data.batches(1000)]).float().cpu().numpy()
    if codes.shape[1] > 2:
        pca = PCA(n_components=2).fit(codes)
        points = pca.transform(codes)
        share = pca.explained_variance_ratio_ * 100
        axis_labels = [f"PC {i + 1} ({share[i]:.0f}% of variance)" for i in range(2)]
        how = f"PCA of the {codes.shape[1]}-d posterior means"
    elif codes.shape[1] == 2:
        points, axis_labels, how = codes, ["$z_1$", "$z_2$"], "posterior means"
    else:
        points = np.column_stack([codes[:, 0], np.random.default_rng(0).uniform(-0.4, 0.4, len(codes))])
        axis_labels, how = ["$z_1$", "jitter (no meaning)"], "1-d posterior means"
    shown = np.random.default_rng(0).permutation(len(points))[:SCATTER_POINTS]
    labels = data.labels.cpu().numpy()[shown]
    panels = 2 if data.colors is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.8 * panels, 5.2), constrained_layout=True, squeeze=False)
    ax = axes[0, 0]
    for digit, name in enumerate(CLASS_NAMES):
        mine = points[shown][labels == digit]
        ax.scatter(mine[:, 0], mine[:, 1], s=4, alpha=0.6, color=DIGIT_COLORS[digit], label=name,
                   rasterized=True)
    ax.legend(title="digit", markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5),
              frameon=False)
    ax.set_title("colored by digit", fontsize=10)
    if panels == 2:
        ax = axes[0, 1]
        tints = data.colors.cpu().numpy()[shown]
        ax.set_facecolor("0.12")  # a dark ground, as the images have, so every tint shows
        ax.scatter(points[shown, 0], points[shown, 1], s=4, c=tints, rasterized=True)
        ax.set_title("colored by each image's own tint", fontsize=10)
    for ax in axes[0]:
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
    fig.suptitle(f"Test set in latent space ({how}, {len(shown):,} images)\n{caption}", fontsize=10)
    return _save(fig, path)


def training_curves(history: list[dict], path: Path, caption: str) -> Path:
    """Objective, reconstruction and KL terms per epoch, for each split that has them."""
    terms = ["loss", "recon"] + sorted({key.split("/", 1)[1] for row in history for key in row
                                        if key.startswith("train/kl")})
    fig, axes = plt.subplots(1, len(terms), figsize=(4.3 * len(terms), 3.6), constrained_layout=True)
    epochs = [row["epoch"] for row in history]
    for ax, term in zip(np.atleast_1d(axes), terms):
        for split, style in (("train", "-o"), ("val", "--s"), ("test", ":^")):
            values = [row.get(f"{split}/{term}", np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, style, markersize=4, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{TERM_LABELS.get(term, term)} (nats / image)")
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
