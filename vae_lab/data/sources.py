"""Where each dataset's images come from: one :class:`Source` per ``data.name``.

A source reads one split ('train' or 'test') as an :class:`ImageSet` of uint8 images at
``data.image_size``, with the labels and known factors it has, and says up front what those are
(:class:`DataInfo`), so that evaluation runs what the data allows and names what it skips. Adding a
dataset is one source here (or a module of its own that this one imports) and one file in
``conf/data/``.

Where data has no test split of its own (dSprites, a folder without ``train/`` and ``test/``, a tensor
file with one set of images), ``data.test_fraction`` of it is held out by a fixed draw that does not
depend on ``data.seed``: every run on that data is scored on the same images, as on MNIST's test split.
"""

import functools
import math
from pathlib import Path
from typing import Optional, Protocol

import numpy as np
import torch

from vae_lab.config import DataConfig
import vae_lab.data.dsprites as dsprites
from vae_lab.data.color import sample_tints, tint
from vae_lab.data.mnist import RAW_FILES, read_mnist, resized
from vae_lab.data.tensors import DIGITS, DataInfo, ImageSet
from vae_lab.errors import ConfigError
from vae_lab.files import atomic_write, cache_folder

FASHION = DataInfo(("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                    "ankle boot"), (), "item")
SPLIT_SEED = 0  # the held-out test split's draw, the same for every data.seed
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class Source(Protocol):
    def info(self, config: DataConfig) -> DataInfo:
        """What each sample carries: class names (none: unlabelled) and known factors."""

    def check(self, config: DataConfig) -> None:
        """The data is there, or is fetched now: a ConfigError naming what is missing otherwise."""

    def read(self, config: DataConfig, split: str) -> ImageSet:
        """One split on the CPU."""


class Mnist:
    """MNIST or Fashion-MNIST in torchvision's layout under ``data.root``; with ``color``, each digit
    tinted by its own color, whose hue bin is a second factor."""

    def __init__(self, folder: str, classes: DataInfo, color: bool = False):
        self.folder, self.classes, self.color = folder, classes, color

    def info(self, config: DataConfig) -> DataInfo:
        return DataInfo(self.classes.class_names, (self.classes.label, "hue") if self.color else (),
                        self.classes.label)

    def check(self, config: DataConfig) -> None:
        raw = Path(config.root).expanduser().resolve() / self.folder / "raw"
        if not all((raw / name).is_file() or (raw / f"{name}.gz").is_file() for name in RAW_FILES):
            for train in (True, False):
                read_mnist(config.root, train=train, download=config.download, dataset=self.folder)

    def read(self, config: DataConfig, split: str) -> ImageSet:
        grey, labels = read_mnist(config.root, train=split == "train", download=config.download, dataset=self.folder)
        grey = resized(grey, config.image_size)
        index = torch.arange(len(labels))
        info = self.info(config)
        if not self.color:
            return ImageSet(grey.unsqueeze(1), labels, index, info=info)
        colors, hue_bins = sample_tints(config.seed, split, index, config.hue_bins)
        return ImageSet(tint(grey, colors), labels, index, colors, hue_bins,
                        factors=torch.stack([labels, hue_bins], dim=1), info=info)


class DSprites:
    """dSprites drawn by vae_lab.data.dsprites, kept in the cache folder as packed bits (377 MB for
    3.0 GB of pixels) and in memory once per process. Labelled by shape; five factors."""

    def info(self, config: DataConfig) -> DataInfo:
        return DataInfo(dsprites.SHAPES, dsprites.FACTOR_NAMES, "shape")

    def check(self, config: DataConfig) -> None:
        pass  # drawn, never missing

    def read(self, config: DataConfig, split: str) -> ImageSet:
        rows = held_out(dsprites.COUNT, config.test_fraction, split)
        images = resized_images(_dsprites_images()[rows], config.image_size)
        factors = dsprites.factors_of(rows)
        return ImageSet(images, factors[:, 0].clone(), rows, factors=factors, info=self.info(config))


@functools.cache
def _dsprites_images() -> torch.Tensor:
    path = cache_folder() / "dsprites" / f"dsprites-v{dsprites.VERSION}.npy"
    try:
        return torch.from_numpy(np.unpackbits(np.load(path), axis=-1)).view(-1, 1, 64, 64).mul_(255)
    except (OSError, ValueError):
        pass
    images = dsprites.images()
    packed = np.packbits(images.numpy() > 0, axis=-1)
    try:
        atomic_write(path, lambda file: np.save(file, packed), binary=True)
    except OSError:
        pass  # a cache must never cost a run: drawn again next time
    return images


class ImageFolder:
    """A folder of class folders (torchvision's ImageFolder): ``data.path/<class>/<image>``, or
    ``data.path/train/<class>/...`` and ``data.path/test/<class>/...``. Any size, grey or color: each
    image is resized (shorter side) and centre-cropped to ``data.image_size``; kept grey when every
    image is."""

    def info(self, config: DataConfig) -> DataInfo:
        return DataInfo(tuple(_folder_classes(_root(config))), ())

    def check(self, config: DataConfig) -> None:
        root = _root(config)
        if not root.is_dir():
            raise ConfigError("data.path", config.path, "expected a folder of class folders of images")
        for folder in _split_folders(root):
            if not _folder_classes(folder):
                raise ConfigError("data.path", config.path,
                                  f"{folder} has no class folder with an image in it ({', '.join(IMAGE_SUFFIXES)})")

    def read(self, config: DataConfig, split: str) -> ImageSet:
        self.check(config)
        root = _root(config)
        folders, info = _split_folders(root), self.info(config)
        if len(folders) == 2:
            images, labels = _read_folder(folders[split == "test"], info.class_names, config.image_size)
            rows = shuffled(len(labels))
        else:  # both splits from one reading (see _read_folder)
            images, labels = _read_folder(root, info.class_names, config.image_size)
            rows = held_out(len(labels), config.test_fraction, split)
        return ImageSet(images[rows], labels[rows], rows, info=info)


def _root(config: DataConfig) -> Path:
    if not config.path:
        raise ConfigError("data.path", config.path, f"data={config.name} reads data.path: set it to your data")
    return Path(config.path).expanduser().resolve()


def _split_folders(root: Path) -> list[Path]:
    """[train, test] where the folder has both, else [the folder]."""
    split = [root / "train", root / "test"]
    return split if all(folder.is_dir() for folder in split) else [root]


def _folder_classes(root: Path) -> list[str]:
    """The class folders that hold an image, sorted as ImageFolder sorts them; of ``train/`` where
    the folder is split."""
    root = _split_folders(root)[0]
    return sorted(entry.name for entry in root.iterdir()
                  if entry.is_dir() and any(_images_in(entry))) if root.is_dir() else []


def _images_in(folder: Path):
    return (path for path in sorted(folder.rglob("*")) if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file())


@functools.lru_cache(maxsize=2)  # a folder without train/ and test/ is read once for both splits
def _read_folder(root: Path, classes: tuple[str, ...], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF  # slow import: see vae_lab/data/mnist.py

    images, labels = [], []
    for label, name in enumerate(classes):
        for path in _images_in(root / name):
            try:
                with Image.open(path) as opened:
                    picture = TF.pil_to_tensor(opened.convert("RGB"))
            except (OSError, UnidentifiedImageError) as error:
                raise ConfigError("data.path", str(root), f"{path} cannot be read as an image ({error})") from None
            picture = TF.center_crop(TF.resize(picture, size, antialias=True), [size, size])
            images.append(picture)
            labels.append(label)
    if not images:
        raise ConfigError("data.path", str(root), f"has no images of the classes {', '.join(classes)}")
    stacked = torch.stack(images)
    return _grey_if_grey(stacked), torch.tensor(labels)


def _grey_if_grey(images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] as [N, 1, H, W] where every pixel's three channels are equal."""
    return images[:, :1].clone() if bool((images == images[:, :1]).all()) else images


class TensorFile:
    """A ``.pt`` or ``.npz`` file at ``data.path`` holding ``images`` (or ``train_images`` and
    ``test_images``): [N, H, W], [N, C, H, W] or [N, H, W, C] with C 1 or 3, uint8 or floats in
    [0, 1]; optionally ``labels`` [N] (and ``class_names``), ``factors`` [N, F] of integer classes
    (and ``factor_names``), with ``train_``/``test_`` before each where the file is split. Images are
    resized to ``data.image_size`` on each side (squashed where not square)."""

    def info(self, config: DataConfig) -> DataInfo:
        content = _tensor_file(_root(config))
        prefix = "train_" if "train_images" in content else ""
        labels, factors = content.get(f"{prefix}labels"), content.get(f"{prefix}factors")
        class_names = content.get("class_names")
        if labels is not None and class_names is None:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]
        factor_names = content.get("factor_names")
        if factors is not None and factor_names is None:
            factor_names = [f"factor {i}" for i in range(factors.shape[1])]
        return DataInfo(tuple(class_names or ()), tuple(factor_names or ()))

    def check(self, config: DataConfig) -> None:
        for split in ("train", "test"):
            self.read(config, split)

    def read(self, config: DataConfig, split: str) -> ImageSet:
        path = _root(config)
        content = _tensor_file(path)
        info = self.info(config)
        split_file = "train_images" in content
        prefix = f"{split}_" if split_file else ""
        if f"{prefix}images" not in content:
            raise ConfigError("data.path", config.path, f"{path.name} has no '{prefix}images' "
                              f"(found: {', '.join(sorted(content)) or 'nothing'}); expected 'images', or "
                              "'train_images' and 'test_images'")
        images = _as_images(content[f"{prefix}images"], path, f"{prefix}images")
        n = len(images)
        labels = _integers(content.get(f"{prefix}labels"), n, 1, path, f"{prefix}labels")
        factors = _integers(content.get(f"{prefix}factors"), n, 2, path, f"{prefix}factors")
        if labels is not None and int(labels.max()) >= len(info.class_names):
            raise ConfigError("data.path", config.path, f"{path.name}: a label is {int(labels.max())} but "
                              f"class_names names {len(info.class_names)} classes")
        if factors is not None and factors.shape[1] != len(info.factor_names):
            raise ConfigError("data.path", config.path, f"{path.name}: {factors.shape[1]} factors but "
                              f"factor_names names {len(info.factor_names)}")
        images = resized_images(images, config.image_size)
        labels = labels if labels is not None else torch.zeros(n, dtype=torch.long)
        rows = shuffled(n) if split_file else held_out(n, config.test_fraction, split)
        return ImageSet(images[rows], labels[rows], rows,
                        factors=None if factors is None else factors[rows], info=info)


@functools.lru_cache(maxsize=2)
def _tensor_file(path: Path) -> dict:
    if path.suffix not in (".pt", ".npz"):
        raise ConfigError("data.path", str(path), "expected a .pt or .npz file")
    if not path.is_file():
        raise ConfigError("data.path", str(path), "no such file")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as found:
                content = {key: found[key] for key in found.files}
        else:
            content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  any unreadable file is the same one-line error
        raise ConfigError("data.path", str(path), f"cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(content, dict):
        raise ConfigError("data.path", str(path), f"holds a {type(content).__name__}; expected a dict of tensors")
    return {key: (value.tolist() if key.endswith("_names") and hasattr(value, "tolist") else value)
            for key, value in content.items()}


def _as_images(value, path: Path, key: str) -> torch.Tensor:
    """uint8 [N, C, H, W] from what a tensor file holds."""
    images = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    problem = None
    if images.ndim == 3:
        images = images.unsqueeze(1)
    elif images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
        images = images.permute(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        problem = f"is {list(images.shape)}; expected [N, H, W], [N, C, H, W] or [N, H, W, C] with C 1 or 3"
    elif images.is_floating_point():
        if bool(images.isnan().any()) or images.min() < 0 or images.max() > 1:
            problem = "holds floats outside [0, 1]; expected uint8 or floats in [0, 1]"
        else:
            images = images.mul(255).round_().to(torch.uint8)
    elif images.dtype != torch.uint8:
        problem = f"is {images.dtype}; expected uint8 or floats in [0, 1]"
    if problem:
        raise ConfigError("data.path", str(path), f"{key} {problem}")
    return images.contiguous()


def _integers(value, n: int, rank: int, path: Path, key: str) -> Optional[torch.Tensor]:
    if value is None:
        return None
    found = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    if found.ndim != rank or len(found) != n or found.is_floating_point() or found.dtype == torch.bool \
            or (found.numel() and int(found.min()) < 0):
        shape = "[N]" if rank == 1 else "[N, F]"
        raise ConfigError("data.path", str(path), f"{key} is {list(found.shape)} {found.dtype}; expected {shape} "
                          f"whole numbers from 0 (classes), N = {n} as the images")
    return found.long()


def resized_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] at [N, C, size, size] (square images; see vae_lab.data.mnist.resized)."""
    if tuple(images.shape[2:]) == (size, size):
        return images
    return torch.stack([resized(images[:, c], size) for c in range(images.shape[1])], dim=1)


def held_out(count: int, test_fraction: float, split: str) -> torch.Tensor:
    """The rows of ``count`` samples that make the split: ``test_fraction`` of them (at least one)
    drawn with a fixed seed as the test split, the rest as the training split, each in that draw's
    order. Never sorted: data stored by class or by factor (a folder, dSprites) would then put one
    class first, and a metric that reads a split's first images would see only it."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = max(1, math.ceil(test_fraction * count))
    return order[:n_test] if split == "test" else order[n_test:]


def shuffled(count: int) -> torch.Tensor:
    """All ``count`` rows in a fixed random order (see :func:`held_out`)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))


SOURCES: dict[str, Source] = {
    "mnist": Mnist("MNIST", DIGITS),
    "color_mnist": Mnist("MNIST", DIGITS, color=True),
    "fashion_mnist": Mnist("FashionMNIST", FASHION),
    "dsprites": DSprites(),
    "folder": ImageFolder(),
    "tensors": TensorFile(),
}
