"""What every figure shares: the palette, image grids, 2-D projections, labels and saving."""

import textwrap
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from vae_lab.data import DataInfo  # noqa: E402
from vae_lab.files import atomic_write  # noqa: E402

DIGIT_COLORS = plt.get_cmap("tab10").colors
DPI = 150
SCATTER_POINTS = 5000  # enough to see the structure, few enough that points stay readable
TSNE_POINTS = 2000  # t-SNE costs grow with points; this many take a few seconds on a CPU
# Half of sklearn's default 1,000: the maps keep their clusters and neighbourhoods in about half the
# time (docs/findings/performance.md#t-sne-iterations).
TSNE_ITERATIONS = 500

TERM_LABELS = {
    "loss": "training objective",
    "nelbo": "negative ELBO",
    "recon": "reconstruction $-\\log p(x|z)$",
    "kl": "KL$(q(z|x)\\,\\|\\,p(z))$",
    "kl_disc": "categorical KL$(q(c|x)\\,\\|\\,p(c))$",
    "kl_y": "label KL$(q(y|x)\\,\\|\\,p(y))$",
    "class_acc": "classifier accuracy",
    "mse": "reconstruction MSE",
    "psnr": "reconstruction PSNR",
    "ssim": "reconstruction SSIM",
    "perceptual": "VGG16 perceptual distance",
    "adversarial": "adversarial losses",
    "d_acc": "discriminator accuracy",
    "adv_weight": "generator term's weight",
}
UNITS = {"class_acc": "fraction of images", "mse": "per pixel", "psnr": "dB", "ssim": "1 is identical",
         "perceptual": "sum over VGG layers", "adversarial": "per patch", "d_acc": "fraction of patches",
         "adv_weight": "nats per unit of its loss"}


def axis_label(term: str) -> str:
    return f"{TERM_LABELS.get(term, term)} ({UNITS.get(term, 'nats / image')})"


GRID_GREY = 0.5  # the lines between the images of a grid, and the cells a short row leaves empty


def image_grid(images: torch.Tensor, columns: int) -> np.ndarray:
    """Images [N, C, H, W] in [0, 1] as one H x W x 3 array, separated by mid-grey lines."""
    from torchvision.utils import make_grid  # here: see vae_lab/data/mnist.py on torchvision's import

    grid = make_grid(images.float().cpu().clamp(0, 1), nrow=columns, padding=2, pad_value=GRID_GREY)
    return grid.permute(1, 2, 0).numpy()


def show_grid(ax: plt.Axes, grid: np.ndarray) -> None:
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def label_rows(ax: plt.Axes, grid: np.ndarray, labels: list[str]) -> None:
    """Tick labels at the middle of each row of an image grid."""
    cell = grid.shape[0] / len(labels)
    ax.set_yticks([cell * (i + 0.5) for i in range(len(labels))], labels, fontsize=8)


def has_spread(values: np.ndarray) -> bool:
    """Whether the points differ at all. A collapsed latent part gives every image the same code; PCA
    of such points is 0/0, and scikit-learn's t-SNE, started from that PCA, crashes the process."""
    scale = max(float(np.abs(values).max(initial=0.0)), 1.0)
    return bool(len(values) > 1 and np.ptp(values, axis=0).max() > 1e-6 * scale)


def project(values: np.ndarray, method: str) -> tuple[np.ndarray, list[str], str]:
    """Points in 2-D, their axis labels and how they were made: as they are for two dimensions, with
    a meaningless vertical jitter for one, else by ``method`` ("pca" or "tsne"). Points that do not
    differ (``has_spread``) are refused: there is nothing to project."""
    if not has_spread(values):
        raise ValueError(f"all {len(values)} points are the same: nothing to project")
    if values.shape[1] == 2:
        return values, ["$z_1$", "$z_2$"], "the two dimensions as they are"
    if values.shape[1] == 1:
        jitter = np.random.default_rng(0).uniform(-0.4, 0.4, len(values))
        return np.column_stack([values[:, 0], jitter]), ["$z_1$", "jitter (no meaning)"], "one dimension"
    if method == "tsne":
        return tsne_map(values), ["t-SNE 1", "t-SNE 2"], f"t-SNE of {values.shape[1]} dimensions"
    pca = PCA(n_components=2).fit(values)
    share = pca.explained_variance_ratio_ * 100
    return (pca.transform(values), [f"PC {i + 1} ({share[i]:.0f}% of variance)" for i in range(2)],
            f"PCA of {values.shape[1]} dimensions")


def tsne(points: int, iterations: int = TSNE_ITERATIONS) -> TSNE:
    """The t-SNE that the figures and the explorer map ``points`` codes with (seeded: the same map for
    the same codes)."""
    return TSNE(n_components=2, init="pca", perplexity=min(30, points - 1), max_iter=iterations, random_state=0)


def tsne_map(values: np.ndarray) -> np.ndarray:
    """``values`` [N, D] mapped to 2-D by :func:`tsne`."""
    return tsne(len(values)).fit_transform(values)


def class_colors(count: int) -> list:
    """A color per class: tab10's for up to ten (MNIST's digits keep theirs everywhere), else tab20's,
    repeated past twenty."""
    palette = DIGIT_COLORS if count <= 10 else plt.get_cmap("tab20").colors
    return [palette[i % len(palette)] for i in range(count)]


def scatter_by_label(ax: plt.Axes, points: np.ndarray, labels: np.ndarray, info: DataInfo,
                     legend: bool = True) -> None:
    """A scatter per class, in the class's color, named in a legend titled by what a label is."""
    for label, (name, color) in enumerate(zip(info.class_names, class_colors(len(info.class_names)))):
        mine = points[labels == label]
        ax.scatter(mine[:, 0], mine[:, 1], s=4, alpha=0.6, color=color, label=name, rasterized=True)
    if legend:
        ax.legend(title=info.label, markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5),
                  frameon=False, ncol=1 if len(info.class_names) <= 12 else 2)


def scatter_by_tint(ax: plt.Axes, points: np.ndarray, tints: np.ndarray) -> None:
    ax.set_facecolor("0.12")  # a dark ground, as the images have, so every tint shows
    ax.scatter(points[:, 0], points[:, 1], s=4, c=tints, rasterized=True)


# Where a point's label may sit, in points from the point, tried in this order: above right, below
# right, above left, below left.
LABEL_PLACES = (((5, 4), "left", "bottom"), ((5, -4), "left", "top"),
                ((-5, 4), "right", "bottom"), ((-5, -4), "right", "top"))


def label_points(ax: plt.Axes, points: list[tuple[float, float, str]]) -> None:
    """Write each label beside its point at the first of :data:`LABEL_PLACES` where it overlaps no
    label already written and stays inside the axes (else at the first place)."""
    fig = ax.figure
    fig.canvas.draw()  # settle the layout: boxes are measured in pixels
    renderer, frame, placed = fig.canvas.get_renderer(), ax.get_window_extent(), []

    def write(x: float, y: float, text: str, place: tuple) -> matplotlib.text.Annotation:
        offset, ha, va = place
        return ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, ha=ha, va=va, fontsize=8)

    for x, y, text in points:
        for place in LABEL_PLACES:
            label = write(x, y, text, place)
            box = label.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:
            label = write(x, y, text, LABEL_PLACES[0])
        placed.append(label.get_window_extent(renderer))


def titles(fig: plt.Figure) -> list[tuple[matplotlib.text.Text, Optional[plt.Axes]]]:
    """Every visible title of a figure, with the axes it heads (None: the figure's own)."""
    found = [(text, None) for text in fig.texts]
    if fig._suptitle is not None:
        found.append((fig._suptitle, None))
    for ax in fig.axes:
        found += [(ax.title, ax), (ax._left_title, ax), (ax._right_title, ax)]
    return [(text, ax) for text, ax in found if text.get_visible() and text.get_text()]


def title_room(fig: plt.Figure, ax: Optional[plt.Axes], text: matplotlib.text.Text) -> float:
    """How wide a title may be, in pixels: inside the figure from where it is anchored (the middle of
    its axes, or their left edge for a left-aligned title), and no wider than its axes where other
    axes stand beside them (wider, it runs into its neighbour's)."""
    if ax is None:
        return fig.bbox.width
    frame = ax.get_window_extent()
    if text is ax._left_title:
        room = fig.bbox.x1 - frame.x0
    else:
        middle = (frame.x0 + frame.x1) / 2
        room = 2 * min(middle - fig.bbox.x0, fig.bbox.x1 - middle)
    box = ax.get_position()
    beside = [other for other in fig.axes if other is not ax and other.get_visible()
              and other.get_position().y0 < box.y1 and box.y0 < other.get_position().y1]
    return min(room, frame.width) if beside else room


def fit_titles(fig: plt.Figure) -> None:
    """Wrap every title wider than its room (:func:`title_room`) onto more lines, so that no caption
    is cut at the figure's edge or runs into its neighbour's. Leaves the canvas drawn as it stands."""
    for wraps in range(4):  # wrapping moves the layout, which changes the room: settle it (3 wraps at most)
        fig.canvas.draw()
        if wraps == 3:
            return
        renderer = fig.canvas.get_renderer()
        changed = False
        for text, ax in titles(fig):
            room, width = title_room(fig, ax, text), text.get_window_extent(renderer).width
            if width > 0.98 * room:
                lines = text.get_text().split("\n")
                chars = max(16, int(max(map(len, lines)) * 0.94 * room / width))
                text.set_text("\n".join(textwrap.fill(line, chars, break_long_words=False) for line in lines))
                changed = True
        if not changed:
            return


def render(fig: plt.Figure, dpi: int = 100) -> np.ndarray:
    """The figure laid out, its titles fitted (:func:`fit_titles`) and drawn at ``dpi``: RGBA pixels
    [H, W, 4]."""
    fig.set_dpi(dpi)
    fit_titles(fig)
    return np.asarray(fig.canvas.buffer_rgba())


def save(fig: plt.Figure, path: Path) -> Path:
    """Write the figure atomically (a full disk or a kill never leaves half a PNG) and close it; long
    titles are wrapped first (:func:`render`), then it is drawn again at DPI."""
    try:
        render(fig)
        atomic_write(path, lambda f: fig.savefig(f, dpi=DPI, format=path.suffix.lstrip(".")), binary=True)
    finally:
        plt.close(fig)
    return path
