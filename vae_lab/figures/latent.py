"""The latent space: test codes in 2-D, the range of latent values, and traversals.

All three read the code layout from ``model.spec`` (continuous dimensions, then categorical blocks),
so every model type is drawn the same way.
"""

import math
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from vae_lab.data import ImageSet
from vae_lab.figures.style import (GRID_GREY, SCATTER_POINTS, TSNE_POINTS, has_spread, image_grid, label_rows,
                                   project, save, scatter_by_label, scatter_by_tint, show_grid)
from vae_lab.metrics.traversal import TRAVERSAL_VALUES, Coordinate, discretised

TRAVERSED_DIMS = 8  # the most active continuous dimensions shown
TRAVERSED_VARS = 6  # categorical variables shown (every category of each)
CATEGORIES_PER_ROW = 16  # more categories wrap onto further rows of equal length


def _embed(model, data: ImageSet, limit: int | None = None) -> np.ndarray:
    return torch.cat([model.embed(b.images).float() for b in data.batches(1000, limit)]).cpu().numpy()


def code_parts(spec, codes: np.ndarray) -> list[tuple[str, np.ndarray]]:
    parts = []
    if spec.continuous:
        parts.append(("Gaussian part", codes[:, spec.continuous_slice]))
    if spec.discrete:
        layout = " + ".join(f"{n}x{k}" for n, k in spec.discrete)
        parts.append((f"categorical part ({layout}, probabilities)", codes[:, spec.discrete_slice]))
    return parts


def latent_scatter(model, data: ImageSet, path: Path, caption: str, tsne_points: int = TSNE_POINTS) -> Path:
    """Test codes in 2-D, a row per latent part and projection: two dimensions as they are, more by PCA
    and (unless ``tsne_points`` is 0) by t-SNE of that many images; one row that says so for a part
    that gives every image the same code. Colored by label (the digit); on color_mnist also by each image's own
    tint."""
    codes = _embed(model, data)
    shown = np.random.default_rng(0).permutation(len(codes))[:SCATTER_POINTS]
    labels = data.labels.cpu().numpy()
    tints = data.colors.cpu().numpy() if data.colors is not None else None
    projections = ["pca", "tsne"] if tsne_points else ["pca"]
    rows = [(part, values, method) for part, values in code_parts(model.spec, codes)
            for method in (["none"] if not has_spread(values[shown]) else
                           projections if values.shape[1] > 2 else ["as is"])]
    columns = 1 if tints is None else 2
    fig, axes = plt.subplots(len(rows), columns, figsize=(5.8 * columns, 4.8 * len(rows)),
                             constrained_layout=True, squeeze=False)
    for row, (part, values, method) in enumerate(rows):
        picked = shown[:tsne_points] if method == "tsne" else shown
        if method == "none" or not has_spread(values[picked]):  # t-SNE's fewer images may not differ
            _no_spread(axes[row], part, len(picked))
            continue
        points, axis_labels, how = project(values[picked], method)
        scatter_by_label(axes[row, 0], points, labels[picked], data.info, legend=data.info.labelled)
        by = f", by {data.info.label}" if data.info.labelled else ""
        axes[row, 0].set_title(f"{part}: {how} ({len(picked):,} images){by}", fontsize=9)
        if tints is not None:
            scatter_by_tint(axes[row, 1], points, tints[picked])
            axes[row, 1].set_title(f"{part}: {how}, by each image's own tint", fontsize=9)
        for ax in axes[row]:
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
    fig.suptitle(f"Test set in latent space\n{caption}", fontsize=10)
    return save(fig, path)


def _no_spread(axes, part: str, images: int) -> None:
    """A scatter panel for a latent part that gives every image the same code: it says so, since a
    collapsed code is a finding, not a figure to leave out."""
    for ax in axes:
        ax.text(0.5, 0.5, f"every one of these {images:,} test images\nhas the same code:\nnothing to project",
                ha="center", va="center", fontsize=11, transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{part}: one code for every image", fontsize=9)


def latent_ranges(model, data: ImageSet, path: Path, caption: str) -> Path:
    """Distribution over the test set of each Gaussian dimension's posterior mean and of each
    categorical variable's encoder logits (seeds/000 compares these ranges across models)."""
    params = torch.cat([model.encode(b.images).float() for b in data.batches(1000)])
    panels = []
    for part, part_params in model.latent.split_params(params):
        if part.spec.continuous:
            values = part.mean_code(part_params).cpu().numpy()
            panels.append(("Gaussian part: posterior mean per dimension", "dimension", "posterior mean",
                           [values[:, d] for d in range(values.shape[1])]))
        else:
            logits = part.logits(part_params).cpu().numpy()
            panels.append(("categorical part: encoder logits per variable (all categories)", "variable",
                           "logit", [logits[:, v].ravel() for v in range(logits.shape[1])]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.3 * max(len(p[3]) for p in panels) + 2),
                                                      3.4 * len(panels)), constrained_layout=True, squeeze=False)
    for ax, (title, xlabel, ylabel, columns) in zip(axes[:, 0], panels):
        ax.boxplot(columns, whis=(1, 99), showfliers=False, widths=0.6)
        ax.plot(range(1, len(columns) + 1), [c.min() for c in columns], "v", color="0.4", markersize=3)
        ax.plot(range(1, len(columns) + 1), [c.max() for c in columns], "^", color="0.4", markersize=3)
        low, high = min(c.min() for c in columns), max(c.max() for c in columns)
        ax.set_title(f"{title}; overall range ({low:.1f}, {high:.1f})", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(1, len(columns) + 1), [str(i + 1) for i in range(len(columns))],
                      fontsize=7 if len(columns) > 20 else 9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Range of latent values over the test set\n(box: quartiles; whiskers: 1st-99th percentile; "
                 f"triangles: minimum and maximum)\n{caption}", fontsize=10)
    return save(fig, path)


def latent_traversal(model, data: ImageSet, path: Path, caption: str, control: Optional[dict] = None,
                     control_images: int = 0) -> Path:
    """How the image changes along latent coordinates. A 2-D Gaussian latent: the decoded grid over
    (-2, 2)^2. Otherwise, from the code of a test image: each of the most active Gaussian dimensions
    swept over (-2, 2) with the others fixed, and each categorical variable set to each category.
    With ``control`` (metrics.json's ``test/traversal_control``, measured on ``control_images`` test
    images), each coordinate's row says how much sweeping it changes the hue and the digit, and the
    Gaussian dimensions that change each most are among the rows."""
    spec = model.spec
    if spec.continuous == 2 and not spec.discrete:
        return _grid_2d(model, path, caption)
    base_image = data.batch(torch.arange(1, device=data.device)).images
    base = discretised(model.embed(base_image).float().cpu(), spec)
    decode = lambda codes: model.decode(codes.to(model.device)).cpu()  # noqa: E731
    has_hue = any("hue_change" in change for change in (control or {}).values())  # grey data has none
    label = data.info.label  # what traversal control's "digit" is on this data
    sections = []
    if spec.continuous:
        activity = _embed(model, data, 2000)[:, spec.continuous_slice].var(0)
        dims = _most_active_and_strongest(np.argsort(-activity), control or {})
        rows = [decode(Coordinate(f"z{d + 1}", int(d)).sweep(base)[0]) for d in dims]
        low, high = TRAVERSAL_VALUES[0].item(), TRAVERSAL_VALUES[-1].item()
        strongest = f" (and those that change {'hue and ' if has_hue else ''}{label} most)" if control else ""
        sections.append((f"Gaussian dimensions, most active first{strongest}, each swept over {low:g}...{high:g}",
                         [f"$z_{{{d + 1}}}$" for d in dims], rows, [f"{v:g}" for v in TRAVERSAL_VALUES.tolist()],
                         [f"z{d + 1}" for d in dims]))
    if spec.discrete:
        sections.append(_categorical_section(spec, base, decode))
    grids = []
    for _, _, rows, _, _ in sections:
        columns = max(len(r) for r in rows)
        padded = [torch.cat([r, torch.full((columns - len(r), *r.shape[1:]), GRID_GREY)]) for r in rows]
        grids.append(image_grid(torch.cat(padded), columns))
    base_grid = image_grid(base_image.cpu(), 1)
    # Each panel is as tall as its grid is for the common width, so no grid is shrunk into a band.
    ratios = [0.18] + [g.shape[0] / g.shape[1] for g in grids]
    width = 9.0
    fig, axes = plt.subplots(len(ratios), 1, figsize=(width, width * sum(ratios) * 0.8 + 1.6),
                             constrained_layout=True, squeeze=False, gridspec_kw={"height_ratios": ratios})
    show_grid(axes[0, 0], base_grid)
    axes[0, 0].set_title("the test image whose code is varied", fontsize=9)
    for ax, grid, (title, row_names, rows, column_names, swept) in zip(axes[1:, 0], grids, sections):
        show_grid(ax, grid)
        label_rows(ax, grid, row_names)
        if control:
            _label_changes(ax, grid, [control.get(name) if name else None for name in swept], label)
        cell = grid.shape[1] / max(len(r) for r in rows)
        if any(column_names):  # wrapped categories have no common column label
            ax.set_xticks([cell * (i + 0.5) for i in range(len(column_names))], column_names, fontsize=7)
        ax.set_title(title, fontsize=9)
    hue = "the mean change of hue and " if has_hue else ""
    measured = (f"\nright of each row: over {control_images} test images, {hue}the share of {label}s changed when "
                "it is swept" if control else "")
    fig.suptitle(f"Latent traversal\n{caption}{measured}", fontsize=10)
    return save(fig, path)


def _most_active_and_strongest(by_activity: np.ndarray, control: dict) -> list[int]:
    """The TRAVERSED_DIMS most active Gaussian dimensions, in that order, the last of them giving way
    to the dimensions whose sweep changes the hue and the digit most, if those are not among them."""
    gaussian = {int(name[1:]) - 1: change for name, change in control.items() if name.startswith("z")}
    measured = next(iter(gaussian.values()), {})  # grey data has no hue_change
    strongest = {max(gaussian, key=lambda d: gaussian[d][quantity]) for quantity in measured}
    shown = [int(d) for d in by_activity[:TRAVERSED_DIMS]]
    missing = [d for d in strongest if d not in shown]
    kept = shown[:len(shown) - len(missing)] + missing
    return sorted(kept, key=lambda d: list(by_activity).index(d))


def _label_changes(ax: plt.Axes, grid: np.ndarray, changes: list[Optional[dict]], label: str = "digit") -> None:
    """Beside each row of a traversal grid, what sweeping its coordinate changes (traversal control)."""
    def said(change: dict) -> str:
        hue = f"hue {change['hue_change']:.0f}°, " if "hue_change" in change else ""
        return f"{hue}{label} {change['digit_change']:.0%}"

    cell = grid.shape[0] / len(changes)
    right = ax.secondary_yaxis("right")
    right.set_yticks([cell * (i + 0.5) for i, c in enumerate(changes) if c],
                     [said(c) for c in changes if c], fontsize=7)
    right.tick_params(length=0)
    right.spines["right"].set_visible(False)


def _categorical_section(spec, base: torch.Tensor, decode) -> tuple:
    """The first TRAVERSED_VARS categorical variables, each set to every one of its categories in
    turn, wrapped onto rows of equal length (K = 20: two rows of 10); a row is labelled with its
    variable and the categories it shows, and its first row names the variable's coordinate."""
    rows, names, swept, offset, shown = [], [], [], spec.continuous, 0
    n_total = sum(n for n, _ in spec.discrete)
    widest = max(k for _, k in spec.discrete)
    per_row = math.ceil(widest / math.ceil(widest / CATEGORIES_PER_ROW))
    for n_vars, n_cats in spec.discrete:
        for v in range(min(n_vars, TRAVERSED_VARS - shown)):
            start = offset + v * n_cats
            codes = base.repeat(n_cats, 1)
            codes[:, start:start + n_cats] = F.one_hot(torch.arange(n_cats), n_cats).float()
            images = decode(codes)
            shown += 1
            for first in range(0, n_cats, per_row):
                rows.append(images[first:first + per_row])
                last = min(first + per_row, n_cats)
                span = f"{first + 1}-{last}" if n_cats > per_row else ""
                names.append(f"var. {shown}: {span}" if first == 0 and span else span or f"variable {shown}")
                swept.append(f"c{shown}" if first == 0 else None)
        offset += n_vars * n_cats
    which = f"the first {shown} of {n_total} categorical variables" if shown < n_total else "each categorical variable"
    wrapped = ", categories left to right, wrapped" if widest > per_row else ""
    columns = [str(k + 1) for k in range(per_row)] if widest <= per_row else ["" for _ in range(per_row)]
    return (f"{which}, set to each of its {widest if len({k for _, k in spec.discrete}) == 1 else 'K'} "
            f"categories in turn{wrapped}", names, rows, columns, swept)


def _grid_2d(model, path: Path, caption: str, side: int = 15) -> Path:
    values = torch.linspace(-2, 2, side)
    z1, z2 = torch.meshgrid(values, values.flip(0), indexing="xy")  # z2 grows upwards
    images = model.decode(torch.stack([z1.ravel(), z2.ravel()], 1).to(model.device))
    grid = image_grid(images, side)
    fig, ax = plt.subplots(figsize=(8, 8.4), constrained_layout=True)
    ax.imshow(grid, interpolation="nearest", extent=(-2, 2, -2, 2))
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(f"Images decoded from a grid over the 2-D latent space\n{caption}", fontsize=10)
    return save(fig, path)
