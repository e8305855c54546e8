"""A sweep's figures: rate against distortion, metrics against each swept number, and a montage of
every run's samples and reconstructions (vae_lab/sweep.py draws them into the sweep's figures/)."""

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np

from vae_lab.figures.style import label_points, save
from vae_lab.summary import RunSummary, SeedGroup, run_label, seed_groups, short_key

PLOTTED_METRICS = ("test/nelbo", "test/nll", "test/recon", "rate", "test/ssim", "test/probe_acc", "samples/fd",
                   "test/active_units")


# What each plotted metric is, in what unit, and which way is better.
METRIC_LABELS = {
    "test/nelbo": "test negative ELBO\n(nats / image, lower is better)",
    "test/nll": "test NLL, importance-sampled\n(nats / image, lower is better)",
    "test/recon": "test reconstruction -log p(x|z)\n(nats / image, lower is better)",
    "rate": "rate: total KL of the code\n(nats / image)",
    "test/ssim": "test SSIM of reconstructions\n(1 is identical, higher is better)",
    "test/probe_acc": "digit probe accuracy on codes\n(fraction, higher is better)",
    "samples/fd": "Frechet distance of prior samples\n(reference CNN features, lower is better)",
    "test/active_units": "active latent units\n(count, posterior mean variance > 0.01)",
}


def rate_distortion(runs: list[RunSummary], keys: list[str], path: Path) -> Path:
    """A point per configuration: runs that differ only in their seed as their mean, with bars of one
    standard deviation on both axes."""
    fig, ax = plt.subplots(figsize=(7, 5.2), constrained_layout=True)
    measured = [r for r in runs if r.rate is not None and "test/recon" in r.metrics]
    groups = seed_groups(measured, keys)
    labels = []
    for group in groups:
        (rate, rate_sd), (recon, recon_sd) = group.spread("rate"), group.spread("test/recon")
        seeds = len(group.runs)
        ax.errorbar(rate, recon, xerr=rate_sd if seeds > 1 else None, yerr=recon_sd if seeds > 1 else None,
                    fmt="o", markersize=5, color="C0", capsize=3)
        # A lone run is named by its settings, seed included; seeds pooled into one point by the rest.
        label = run_label(group.runs[0], keys) if seeds == 1 else ", ".join(
            f"{short_key(k)}={v}" for k, v in group.settings.items())
        if label:
            labels.append((rate, recon, label))
    rates = [r.rate for r in runs if r.rate is not None and r.rate > 0]
    if rates and max(rates) / min(rates) > 30:
        ax.set_xscale("log")  # beta 0 next to beta 10: rates hundreds of times apart
    ax.set_xlabel("rate: KL(q(z|x) || p(z)), all latent parts (nats / image)")
    ax.set_ylabel("distortion: -log p(x|z) (nats / image)")
    ax.grid(alpha=0.3)
    most_seeds = max((len(g.runs) for g in groups), default=1)
    spread = f"\n(a point per configuration: mean ± sd over {most_seeds} seeds)" if most_seeds > 1 else ""
    ax.set_title(f"Rate and distortion on the test split, {len(runs)} runs{spread}", fontsize=10)
    label_points(ax, labels)
    return save(fig, path)


def metrics_against(runs: list[RunSummary], key: str, others: list[str], path: Path) -> Path:
    """Each metric against the swept number ``key``, a line per combination of the other swept keys;
    runs that share a point (repeats over seeds) as their mean with a bar of one standard deviation."""
    metrics = [m for m in PLOTTED_METRICS if any(m in r.metrics or (m == "rate" and r.rate is not None) for r in runs)]
    columns = min(4, len(metrics))
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.1 * columns, 3.3 * rows), constrained_layout=True,
                             squeeze=False)
    groups: dict[str, list[RunSummary]] = {}
    for r in runs:
        groups.setdefault(run_label(r, others) if others else "", []).append(r)
    values = sorted({float(r.overrides[key]) for r in runs})
    for ax, metric in zip(axes.ravel(), metrics):
        for name, members in groups.items():
            at = sorted({float(r.overrides[key]) for r in members})
            repeats = [SeedGroup({}, [r for r in members if float(r.overrides[key]) == x]) for x in at]
            means, sds = zip(*(g.spread(metric) for g in repeats))
            seeds = max(len(g.runs) for g in repeats)  # repeats of a configuration: mean and sd over them
            ax.errorbar(at, means, yerr=sds if seeds > 1 else None, fmt="-o", markersize=4, capsize=3,
                        label=(name or None) if seeds == 1 else f"{name + ', ' if name else ''}mean ± sd of {seeds} seeds")
        if values[0] > 0 and values[-1] / values[0] >= 8:
            ax.set_xscale("log", base=2)
        elif values[0] == 0 and len(values) > 2 and values[-1] / values[1] >= 8:
            ax.set_xscale("symlog", linthresh=values[1])
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(key)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric), fontsize=9)
        ax.grid(alpha=0.3)
        if (others and len(groups) > 1) or seeds > 1:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"Test metrics against {key}", fontsize=10)
    return save(fig, path)


MONTAGE_FIGURES = ("samples.png", "reconstructions.png")


def montage(runs: list[RunSummary], keys: list[str], path: Path) -> Optional[Path]:
    """Every run's prior samples and test reconstructions side by side, a row per run that drew
    either; no montage where none did (failed runs, ``eval.figures=false``)."""
    runs = [r for r in runs if any((r.path / "figures" / name).is_file() for name in MONTAGE_FIGURES)]
    if not runs:
        return None
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.4 * len(runs)), constrained_layout=True,
                             squeeze=False, gridspec_kw={"width_ratios": [1, 1.5]})
    for (left, right), r in zip(axes, runs):
        for ax, name in zip((left, right), MONTAGE_FIGURES):
            ax.axis("off")
            figure = r.path / "figures" / name
            if figure.is_file():
                image = plt.imread(figure)
                ax.imshow(image[grid_top(image):])  # without the figure's own title: the row's label says it
            else:
                ax.text(0.5, 0.5, f"no {name}", ha="center", va="center", fontsize=9)
        left.set_title(f"run {r.name}: {run_label(r, keys)}\nprior samples", fontsize=9, loc="left")
        right.set_title("test images and reconstructions", fontsize=9, loc="left")
    return save(fig, path)


def grid_top(image: np.ndarray) -> int:
    """The first pixel row of the image grid in a saved samples or reconstructions figure: its frame
    is a row mostly of the grid's mid-grey separator (vae_lab/figures/style.py, image_grid). 0 when
    there is none, so that nothing of the grid is ever cut."""
    rgb = image[..., :3]
    grey = (np.abs(rgb - 0.5) < 0.02).all(-1).mean(1)  # the share of each pixel row that is separator grey
    frames = np.flatnonzero(grey > 0.5)
    return max(0, int(frames[0]) - 2) if len(frames) else 0
