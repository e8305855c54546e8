"""The model side of the latent explorer: what a page needs of a trained run, through the model's
public interface only (``embed``, ``decode``, ``reconstruct``, ``kl_details`` and its latent
``spec``), with no web library in sight, so that each function is tested against the model itself.

A code is laid out as ``spec`` says: the Gaussian coordinates, then each categorical variable as a
block of its categories' probabilities (one-hot when a category is chosen).
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from vae_lab.metrics.codes import ACTIVITY_THRESHOLD
from vae_lab.metrics.traversal import coordinates
from vae_lab.reporting import Run

log = logging.getLogger(__name__)

MAP_POINTS = 2000  # test images on the map (t-SNE of them takes seconds, once)
SLIDER_RANGE = 3.0  # each Gaussian coordinate from -3 to 3 prior standard deviations, or as far as test codes go
MAP_METHODS = ("kl", "pca", "tsne")
# Nats per image under which a coordinate carries next to nothing (at beta 8 fourteen of twenty carry
# 0.02-0.07): its slider is folded away with the inactive ones.
QUIET_NATS = 0.1
NEIGHBOURS = 8  # nearest test images shown beside a picked one
TRAVERSAL_ROWS = 16  # Gaussian coordinates swept in the traversal panel, most KL first
GRID_MOST = 24  # cells a side of the decoded grid behind the map


@dataclass(frozen=True)
class Coordinate:
    """A Gaussian coordinate as the page shows it."""

    index: int  # its position in the code
    kl: float  # mean KL over the map's test images, nats
    active: bool  # its posterior mean varies across images (as test/active_units counts)
    quiet: bool  # it carries under QUIET_NATS: the page folds it away with the inactive ones


class Explorer:
    """One trained run, ready to be explored: the codes of its first test images, each Gaussian
    coordinate's KL and activity, and decoding at any point."""

    def __init__(self, run: Run, points: int = MAP_POINTS):
        self.run, self.model, self.spec = run, run.model, run.model.spec
        test = run.splits.test
        self.count = min(points, len(test))
        self.images = test.batch(torch.arange(self.count, device=test.device)).images
        with torch.no_grad():
            self.codes = torch.cat([self.model.embed(chunk).float() for chunk in self.images.split(500)]).cpu()
            kl = torch.cat([self.model.kl_details(chunk)["kl_per_dim"].float() for chunk in self.images.split(500)]) \
                if self.spec.continuous else torch.zeros(self.count, 0)
        self.labels = test.labels[:self.count].cpu().numpy()
        self.info = test.info  # the labels' class names (none: unlabelled) and what a label is called
        self.hue_bins = test.hue_bins[:self.count].cpu().numpy() if test.hue_bins is not None else None
        self.tints = test.colors[:self.count].cpu().numpy() if test.colors is not None else None
        activity = self.codes[:, :self.spec.continuous].var(0) if self.spec.continuous else torch.zeros(0)
        means = kl.mean(0)
        self.coordinates = sorted((Coordinate(d, float(means[d]), bool(activity[d] > ACTIVITY_THRESHOLD),
                                              float(means[d]) < QUIET_NATS)
                                   for d in range(self.spec.continuous)), key=lambda c: -c.kl)
        self._maps: dict[str, np.ndarray] = {}
        self._pca = None  # the map's PCA, once drawn: it places any code
        self._lock = threading.Lock()

    # -- the layout of the controls ---------------------------------------------------------------

    def layout(self) -> dict:
        """What the page builds its controls from."""
        variables = [n_cats for n_vars, n_cats in self.spec.discrete for _ in range(n_vars)]
        channels, height, width = self.images.shape[1:]
        return {
            "coordinates": [vars(c) for c in self.coordinates],
            "slider_range": max(SLIDER_RANGE, math.ceil(float(self.codes[:, :self.spec.continuous].abs().max()))
                                if self.spec.continuous else SLIDER_RANGE),
            "categorical": variables,
            "code_size": self.spec.code_size,
            "continuous": self.spec.continuous,
            "image": {"channels": channels, "height": height, "width": width},
            "digits": self.digit_codes() is not None,
            "classes": list(self.info.class_names),  # the map's groups and the names the page shows for labels
            "label": self.info.label,
            # M2 generates a chosen digit through its categorical variable: the page names it so
            "digit_variable": 0 if self.model.conditional and self.spec.discrete else None,
            "color": self.hue_bins is not None,
            "hue_bins": int(self.hue_bins.max()) + 1 if self.hue_bins is not None else 0,
            "maps": [m for m in MAP_METHODS if m != "kl" or self.spec.continuous >= 2],
        }

    # -- decoding ----------------------------------------------------------------------------------

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """Images uint8 [N, H, W, C] that codes [N, code_size] mean."""
        if codes.dim() != 2 or codes.shape[1] != self.spec.code_size:
            raise ValueError(f"a code of this model has {self.spec.code_size} numbers, not {codes.shape[-1]}")
        with torch.no_grad():
            return _pixels(self.model.decode(codes.to(self.model.device).float()).clamp(0, 1))

    def code(self, gaussian: list[float], categories: list[int]) -> torch.Tensor:
        """The code [code_size] of Gaussian values (in code order) and one chosen category per
        categorical variable."""
        parts = [torch.tensor(gaussian, dtype=torch.float32)]
        sizes = [n_cats for n_vars, n_cats in self.spec.discrete for _ in range(n_vars)]
        if len(gaussian) != self.spec.continuous or len(categories) != len(sizes):
            raise ValueError(f"expected {self.spec.continuous} Gaussian values and {len(sizes)} categories")
        for category, n_cats in zip(categories, sizes):
            if not 0 <= category < n_cats:
                raise ValueError(f"category {category} of a variable of {n_cats}")
            parts.append(torch.nn.functional.one_hot(torch.tensor(category), n_cats).float())
        return torch.cat(parts)

    def point_of(self, index: int) -> dict:
        """Test image ``index`` as the controls show it: its Gaussian posterior means and the most
        probable category of each variable."""
        return self._point(self.codes[index])

    def _point(self, code: torch.Tensor) -> dict:
        categories, offset = [], self.spec.continuous
        for n_vars, n_cats in self.spec.discrete:
            block = code[offset:offset + n_vars * n_cats].view(n_vars, n_cats)
            categories += block.argmax(-1).tolist()
            offset += n_vars * n_cats
        return {"gaussian": code[:self.spec.continuous].tolist(), "categories": categories}

    def test_image(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Test image ``index`` and its reconstruction, uint8 [H, W, C] each."""
        if not 0 <= index < self.count:
            raise IndexError(f"test image {index}: the map holds images 0 to {self.count - 1}")
        with torch.no_grad():
            rebuilt = self.model.reconstruct(self.images[index:index + 1]).clamp(0, 1)
        return _pixels(self.images[index:index + 1].float())[0], _pixels(rebuilt)[0]

    def neighbours(self, index: int, k: int = NEIGHBOURS) -> list[tuple[int, float]]:
        """The ``k`` test images of the map whose codes lie nearest to image ``index``'s (Euclidean,
        over the whole code: Gaussian means and category probabilities), nearest first, with their
        distance; the image itself left out."""
        if not 0 <= index < self.count:
            raise IndexError(f"test image {index}: the map holds images 0 to {self.count - 1}")
        return self._nearest(self.codes[index], k, leave_out=index)

    def _nearest(self, code: torch.Tensor, k: int, leave_out: Optional[int] = None) -> list[tuple[int, float]]:
        distances = torch.cdist(code[None].double(), self.codes.double())[0]
        if leave_out is not None:
            distances[leave_out] = math.inf
        nearest = torch.topk(distances, min(k, self.count - (leave_out is not None)), largest=False)
        return [(int(i), float(d)) for d, i in zip(nearest.values, nearest.indices)]

    def encode(self, image: np.ndarray, k: int = NEIGHBOURS) -> dict:
        """An image from outside the data (drawn on the page, or dropped on it), uint8 [H, W, C] of the
        model's size and channels: its point (as :meth:`point_of` gives a test image's), its
        reconstruction, and the ``k`` test images whose codes lie nearest to its code."""
        channels, height, width = self.images.shape[1:]
        if image.dtype != np.uint8 or image.shape != (height, width, channels):
            raise ValueError(f"an image of this model is {height} x {width} x {channels} bytes, "
                             f"not {' x '.join(map(str, image.shape))}")
        pixels = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().div(255).to(self.images.device)
        with torch.no_grad():
            code = self.model.embed(pixels).float().cpu()[0]
            rebuilt = _pixels(self.model.reconstruct(pixels).clamp(0, 1))[0]
        return {"point": self._point(code), "reconstruction": rebuilt, "neighbours": self._nearest(code, k)}

    def digit_codes(self) -> Optional[list[dict]]:
        """For a model that generates a chosen digit through its Gaussian code (a classifier on the
        latent), each digit's mean test code, as the controls show it; None for other models (M2
        chooses its digit with its categorical variable)."""
        if not self.model.conditional or self.spec.discrete:
            return None
        found = []
        for digit in range(len(self.info.class_names)):
            mine = self.codes[torch.from_numpy(self.labels == digit)]
            found.append({"gaussian": mine[:, :self.spec.continuous].mean(0).tolist() if len(mine) else
                          [0.0] * self.spec.continuous, "categories": []})
        return found

    # -- the map -----------------------------------------------------------------------------------

    def map(self, method: str) -> tuple[np.ndarray, list[str]]:
        """The map's test codes in two dimensions, [count, 2], and the axes' names: ``kl`` the two
        Gaussian coordinates with the most KL as they are, ``pca`` and ``tsne`` of the whole code."""
        if method not in MAP_METHODS:
            raise ValueError(f"map {method!r}: expected one of {', '.join(MAP_METHODS)}")
        if method == "kl":
            if len(self.coordinates) < 2:
                raise ValueError("the map by KL needs two Gaussian coordinates")
            first, second = self.coordinates[0].index, self.coordinates[1].index
            return self.codes[:, [first, second]].numpy(), [f"z{first + 1} (KL {self.coordinates[0].kl:.2f} nats)",
                                                           f"z{second + 1} (KL {self.coordinates[1].kl:.2f} nats)"]
        with self._lock:
            if method not in self._maps:
                self._maps[method] = self._project(method)
        names = ["PC 1", "PC 2"] if method == "pca" else ["t-SNE 1", "t-SNE 2"]
        return self._maps[method], names

    def placement(self, method: str) -> Optional[dict]:
        """How any code lands on the map ``method`` draws, for the page to mark the decoded point:
        ``kl`` its two coordinates (``axes``), ``pca`` its projection (``mean``, ``components``); None
        for t-SNE, which places only the codes it was fitted on."""
        self.map(method)
        if method == "kl":
            return {"axes": [self.coordinates[0].index, self.coordinates[1].index]}
        if method == "pca" and self._pca is not None:
            return {"mean": self._pca.mean_.tolist(), "components": self._pca.components_.tolist()}
        return None

    def _project(self, method: str) -> np.ndarray:
        from sklearn.decomposition import PCA

        from vae_lab.figures.style import tsne_map  # matplotlib with it: loaded when a map is first asked for

        codes = self.codes.double().numpy()
        if codes.std(0).max() < 1e-9:  # a code that is the same for every image: nothing to project
            return np.zeros((len(codes), 2))
        if method == "pca":
            self._pca = PCA(n_components=2).fit(codes)
            return self._pca.transform(codes)
        log.info("t-SNE map of %d test codes of %s: seconds, once", len(codes), self.run.path)
        started = time.perf_counter()
        points = tsne_map(codes)
        log.info("t-SNE map ready in %.1f s", time.perf_counter() - started)
        return points

    # -- traversal ---------------------------------------------------------------------------------

    def traversal(self, code: torch.Tensor, most: int = TRAVERSAL_ROWS) -> tuple[list[dict], int]:
        """A row per coordinate as :mod:`vae_lab.metrics.traversal` sweeps it, from ``code`` with the
        rest held: each Gaussian coordinate the page shows a slider for (active, not quiet), most KL
        first, at its traversal values; each categorical variable at each of its categories. At most
        ``most`` Gaussian rows; also returns how many shown coordinates that left out."""
        shown = [c for c in self.coordinates if c.active and not c.quiet]
        by_name = {c.name: c for c in coordinates(self.spec)}
        rows = [(by_name[f"z{c.index + 1}"], f"{c.kl:.2f} nats") for c in shown[:most]]
        rows += [(c, f"{c.categories} categories") for c in by_name.values() if c.categories]
        if not rows:
            return [], 0
        sweeps = [coordinate.sweep(code[None])[0] for coordinate, _ in rows]  # [positions, code_size] each
        images = self.decode(torch.cat(sweeps))  # in one pass
        starts = np.cumsum([0] + [len(sweep) for sweep in sweeps])
        found = [{"name": coordinate.name, "about": about, "images": images[a:b]}
                 for (coordinate, about), a, b in zip(rows, starts, starts[1:])]
        return found, max(0, len(shown) - most)

    # -- a decoded grid behind the map ------------------------------------------------------------

    def grid(self, code: torch.Tensor, axes: tuple[int, int], x: tuple[float, float], y: tuple[float, float],
             cells: int) -> np.ndarray:
        """The images decoded across a rectangle of two Gaussian coordinates ``axes``, the rest of
        ``code`` held: ``cells`` x ``cells`` of them, each at its cell's centre, as one picture uint8
        [cells * H, cells * W, C] with the largest ``y`` at the top (as the map draws it)."""
        if not (len(axes) == 2 and axes[0] != axes[1] and all(0 <= a < self.spec.continuous for a in axes)):
            raise ValueError(f"axes={list(axes)}: expected two different Gaussian coordinates of "
                             f"0 to {self.spec.continuous - 1}")
        if not 2 <= cells <= GRID_MOST:
            raise ValueError(f"cells={cells}: expected 2 to {GRID_MOST} a side")
        for name, (low, high) in (("x", x), ("y", y)):
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name}=[{low}, {high}]: expected a finite range, low to high")
        centres = lambda low, high: low + (torch.arange(cells) + 0.5) * (high - low) / cells  # noqa: E731
        across, down = centres(*x), centres(*y).flip(0)
        codes = code.repeat(cells * cells, 1)
        codes[:, axes[0]] = across.repeat(cells)
        codes[:, axes[1]] = down.repeat_interleave(cells)
        images = self.decode(codes)  # [cells * cells, H, W, C], row by row from the top
        height, width, channels = images.shape[1:]
        return images.reshape(cells, cells, height, width, channels).transpose(0, 2, 1, 3, 4).reshape(
            cells * height, cells * width, channels)

    # -- interpolation ---------------------------------------------------------------------------

    def interpolate(self, start: torch.Tensor, end: torch.Tensor, steps: int, mode: str = "linear") -> np.ndarray:
        """Images decoded along the way from code ``start`` to code ``end`` (``steps`` of them, both
        ends included): ``linear``, or ``spherical`` for the Gaussian part (along the great circle,
        with the norm interpolated linearly, so that the path keeps to where the prior has mass);
        categorical probabilities always linearly."""
        if mode not in ("linear", "spherical"):
            raise ValueError(f"interpolation {mode!r}: expected linear or spherical")
        t = torch.linspace(0, 1, steps)[:, None]
        codes = (1 - t) * start + t * end
        if mode == "spherical" and self.spec.continuous:
            d = self.spec.continuous
            codes[:, :d] = slerp(start[:d], end[:d], t)
        return self.decode(codes)


def _pixels(images: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [0, 1] as uint8 [N, H, W, C]."""
    return (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def slerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points along the great circle from the direction of ``start`` to that of ``end``, their norm
    going linearly from one's to the other's; t [steps, 1]. Straight through the origin where the
    two point opposite ways or one is 0."""
    a_norm, b_norm = start.norm(), end.norm()
    if a_norm < 1e-9 or b_norm < 1e-9:
        return (1 - t) * start + t * end
    a, b = start / a_norm, end / b_norm
    angle = torch.arccos((a * b).sum().clamp(-1, 1))
    if angle < 1e-6 or math.pi - angle < 1e-6:
        return (1 - t) * start + t * end
    direction = (torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b) / torch.sin(angle)
    return direction * ((1 - t) * a_norm + t * b_norm)
