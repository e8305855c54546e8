"""Training curves: every logged term, and reconstruction quality, per epoch and split."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from vae_lab.figures.style import axis_label, save

SPLIT_STYLES = (("train", "-o"), ("val", "--s"), ("test", ":^"))


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
    columns = min(4, len(terms))
    rows = -(-len(terms) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), constrained_layout=True,
                             squeeze=False)
    epochs = [row["epoch"] for row in history]
    for ax, term in zip(axes.ravel(), terms):
        if term == "adversarial":
            adversarial_panel(ax, history, epochs)
            continue
        for split, style in SPLIT_STYLES:
            values = [row.get(f"{split}/{term}", np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, style, markersize=4, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(axis_label(term), fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(terms):]:
        ax.set_visible(False)
    fig.suptitle(f"Training curves\n{caption}", fontsize=10)
    return save(fig, path)


def adversarial_panel(ax: plt.Axes, history: list[dict], epochs: list[int]) -> None:
    """The discriminator's loss and the generator's (both per patch) on one axis: they pull
    against each other. Epochs before the discriminator joined have neither."""
    for key, style, label in (("train/adv_d", "-o", "discriminator"), ("train/adv_g", "-s", "generator")):
        values = [row.get(key, np.nan) for row in history]
        ax.plot(epochs, values, style, markersize=4, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(axis_label("adversarial"), fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
