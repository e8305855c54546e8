"""Training curves: every logged term, and reconstruction quality, per epoch and split."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from vae_lab.figures.style import axis_label, save

# One color and marker per split in every panel (and in every run's figure).
SPLIT_STYLES = {"train": dict(color="C0", linestyle="-", marker="o"),
                "val": dict(color="C1", linestyle="--", marker="s"),
                "test": dict(color="C2", linestyle=":", marker="^")}


IMAGE_QUALITY = ("mse", "psnr", "ssim")


def training_curves(history: list[dict], path: Path, caption: str) -> Path:
    """A panel per quantity: the objective, reconstruction, each KL term, classifier accuracy where
    there is one, MSE, PSNR and SSIM of reconstructions (train and test subsets), and with image-space
    losses the perceptual distance, the discriminator's and generator's losses, its accuracy and the
    generator term's weight."""
    logged = {key.split("/", 1)[1] for row in history for key in row if "/" in key}
    terms = ["loss", "recon", *sorted(t for t in logged if t.startswith("kl"))]
    terms += [t for t in ("class_acc", "mse", "psnr", "ssim", "perceptual") if t in logged]
    if {"adv_d", "adv_g"} & logged:
        terms += ["adversarial", "d_acc", *(["adv_weight"] if "adv_weight" in logged else [])]
    columns, legend_slot = grid_columns(len(terms))
    rows = -(-(len(terms) + legend_slot) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), constrained_layout=True,
                             squeeze=False)
    epochs = [row["epoch"] for row in history]
    shown = set()
    for ax, term in zip(axes.ravel(), terms):
        if term == "adversarial":
            adversarial_panel(ax, history, epochs)
            continue
        for split, style in SPLIT_STYLES.items():
            values = [row.get(f"{split}/{term}", np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, markersize=4, label=split, **style)
                shown.add(split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(axis_label(term), fontsize=8)
        if term in IMAGE_QUALITY:  # scored each epoch on subsets, to keep the epoch's scoring short
            ax.set_title("on train and test subsets (validation: not scored)", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    spare = axes.ravel()[len(terms):]
    for ax in spare:
        ax.axis("off")
    # One legend for the splits: in a spare grid slot where there is one, else in the first panel.
    handles = [plt.Line2D([], [], markersize=4, label=split, **style)
               for split, style in SPLIT_STYLES.items() if split in shown]
    if len(spare):
        spare[0].legend(handles=handles, title="split", loc="center", fontsize=9, frameon=False)
    else:
        axes.ravel()[0].legend(handles=handles, fontsize=8)
    fig.suptitle(f"Training curves\n{caption}", fontsize=10)
    return save(fig, path)


def grid_columns(panels: int) -> tuple[int, bool]:
    """Columns for a grid of panels with no empty slot: the panels alone fill it, or with one more
    slot that holds the legend. Whether the legend gets that slot."""
    if panels <= 4:
        return panels, False
    for extra in (0, 1):
        for columns in (4, 3, 5):
            if (panels + extra) % columns == 0:
                return columns, bool(extra)
    return 4, True  # an empty slot is left only where neither fills a grid of 3 to 5 columns


def adversarial_panel(ax: plt.Axes, history: list[dict], epochs: list[int]) -> None:
    """The discriminator's loss and the generator's (both per patch) on one axis: they pull
    against each other. Epochs before the discriminator joined have neither."""
    for key, style, color, label in (("train/adv_d", "-o", "C3", "discriminator"),
                                     ("train/adv_g", "-s", "C4", "generator")):  # not the splits' colors
        values = [row.get(key, np.nan) for row in history]
        ax.plot(epochs, values, style, color=color, markersize=4, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(axis_label("adversarial"), fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
