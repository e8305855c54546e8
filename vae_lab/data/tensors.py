"""A split held as tensors on one device, and batches drawn from it by index.

No per-sample Python: a batch is one gather of uint8 images by an index tensor, converted to floats
(and, with dynamic binarization, resampled) on the device the data lives on.
"""

from dataclasses import dataclass, fields, replace
from typing import Iterator, Optional

import torch


@dataclass
class Batch:
    images: torch.Tensor  # float [B, C, H, W] in [0, 1]
    labels: torch.Tensor  # int64 [B]
    colors: Optional[torch.Tensor] = None  # float [B, 3] tint (color_mnist)
    hue_bins: Optional[torch.Tensor] = None  # int64 [B] tint class (color_mnist)
    labelled: Optional[torch.Tensor] = None  # bool [B]: may the model learn from this label?
    noise: Optional[torch.Tensor] = None  # [B, noise_size]: the model's random draws (None: its own)

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class DataInfo:
    """What a dataset's samples carry besides pixels: the names of its label classes (none where it
    is unlabelled), what a label is called in figures and reports, and the names of the known
    factors of variation in ``ImageSet.factors``, in order."""

    class_names: tuple[str, ...]
    factor_names: tuple[str, ...]
    label: str = "class"

    @property
    def labelled(self) -> bool:
        return bool(self.class_names)


DIGITS = DataInfo(tuple(str(d) for d in range(10)), (), "digit")


@dataclass
class ImageSet:
    """One split: images as uint8 [N, C, H, W] plus what each sample carries along."""

    images: torch.Tensor
    labels: torch.Tensor  # int64 [N] (zeros where the data is unlabelled: see info)
    index: torch.Tensor  # int64 [N]: position in the dataset's split as read (MNIST's official split)
    colors: Optional[torch.Tensor] = None
    hue_bins: Optional[torch.Tensor] = None
    labelled: Optional[torch.Tensor] = None  # bool [N]; None: no label may be learned from
    dynamic_binarization: bool = False  # resample {0, 1} pixels from the grey values at every batch
    factors: Optional[torch.Tensor] = None  # int64 [N, F]: each sample's class of each known factor
    info: DataInfo = DIGITS

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def mean_image(self) -> torch.Tensor:
        """The per-pixel mean, float [C, H, W] on the [0, 1] scale (also of binarized pixels, in
        expectation)."""
        return self.images.sum(0, dtype=torch.float32).div_(255 * len(self))

    def subset(self, rows: torch.Tensor) -> "ImageSet":
        return self._map(lambda t: t[rows.to(t.device)])

    def to(self, device: torch.device | str) -> "ImageSet":
        return self._map(lambda t: t.to(device))

    def batch(self, rows: torch.Tensor, generator: Optional[torch.Generator] = None) -> Batch:
        """The samples at ``rows``; with dynamic binarization, pixels drawn from ``generator``."""
        images = self.images[rows].float().div_(255)
        if self.dynamic_binarization:
            images = torch.bernoulli(images, generator=generator)
        pick = lambda t: None if t is None else t[rows]  # noqa: E731
        return Batch(images, self.labels[rows], pick(self.colors), pick(self.hue_bins), pick(self.labelled))

    def batches(self, batch_size: int, limit: Optional[int] = None) -> Iterator[Batch]:
        """In order, the whole split (or its first ``limit`` samples)."""
        rows = torch.arange(min(len(self), limit or len(self)), device=self.device)
        for chunk in rows.split(batch_size):
            yield self.batch(chunk)

    def shuffled_batches(self, batch_size: int, generator: torch.Generator,
                         labelled_extra: int = 0) -> Iterator[Batch]:
        """One epoch in a random order drawn from ``generator`` (which lives on the data's device).

        With ``labelled_extra``, each batch also gets that many images drawn from the labelled ones
        (when only some are labelled), so that a few labels are seen in every batch, not once an epoch.
        """
        order = torch.randperm(len(self), generator=generator, device=self.device)
        pool = None
        if labelled_extra and self.labelled is not None and not self.labelled.all():
            pool = self.labelled.nonzero().squeeze(1)
        for chunk in order.split(batch_size):
            if pool is not None:
                draws = torch.randint(len(pool), (labelled_extra,), generator=generator, device=self.device)
                chunk = torch.cat([chunk, pool[draws]])
            yield self.batch(chunk)

    def _map(self, fn) -> "ImageSet":
        tensors = {f.name: fn(getattr(self, f.name)) for f in fields(self)
                   if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **tensors)
