"""MNIST's IDX files (plain or gzipped) as whole-split uint8 tensors, checked before they are used;
torchvision downloads them where they are missing. Fashion-MNIST comes in the same files and layout
(``root/FashionMNIST/raw``), so it is read here too: ``dataset`` names torchvision's class and folder."""

import contextlib
import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import Optional

import torch

from vae_lab.config import DATA_ROOT_ENV
from vae_lab.errors import ConfigError

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
N_CLASSES = 10
IMAGE_SIZE = (28, 28)


def read_mnist(root: str | Path, train: bool, download: bool, dataset: str = "MNIST"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One official split: images uint8 [N, 28, 28] and labels int64 [N] in 0..9.

    Reads ``root/<dataset>/raw``, each file as it is or gzipped (``.gz``); when the files are missing
    and ``download`` is on, torchvision fetches them. If neither works the error says which files to
    put where; a file that is there but is not in MNIST's format is named with what is wrong with it.
    """
    root = Path(root).expanduser().resolve()
    raw = root / dataset / "raw"
    names = RAW_FILES[:2] if train else RAW_FILES[2:]
    if not all(_found(raw, name) for name in names):
        fetch(root, train, download, dataset)
    images, labels = read_idx(_found(raw, names[0]), rank=3), read_idx(_found(raw, names[1]), rank=1).long()
    images_file, labels_file = _found(raw, names[0]), _found(raw, names[1])
    if tuple(images.shape[1:]) != IMAGE_SIZE:
        raise _bad_file(images_file, f"its images are {tuple(images.shape[1:])} pixels, not {IMAGE_SIZE}")
    if len(images) != len(labels):
        raise _bad_file(labels_file, f"it has {len(labels):,} labels for the {len(images):,} images of {images_file.name}")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < N_CLASSES):
        bad = labels[(labels < 0) | (labels >= N_CLASSES)][0].item()
        raise _bad_file(labels_file, f"it holds the label {bad}; {dataset} labels are 0 to {N_CLASSES - 1}")
    return images, labels


def _found(raw: Path, name: str) -> Optional[Path]:
    """The file as it is, else gzipped, else None."""
    return next((path for path in (raw / name, raw / f"{name}.gz") if path.is_file()), None)


def fetch(root: Path, train: bool, download: bool, dataset: str = "MNIST") -> None:
    """The split's files downloaded into ``root/<dataset>/raw`` by torchvision, or a ConfigError saying
    what is missing and the ways to provide it; folders made for a download that failed are removed."""
    # Imported here, not at the top: importing torchvision takes about 2 s (it loads torch._dynamo),
    # and the command line must reject a bad config before paying for what only training needs.
    import torchvision.datasets

    raw = root / dataset / "raw"
    made = [folder for folder in (root, root / dataset, raw) if not folder.exists()]
    try:
        if not download:
            raise FileNotFoundError(raw)
        getattr(torchvision.datasets, dataset)(str(root), train=train, download=True)
    except (RuntimeError, OSError):
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # only if empty: never what a download did leave
                folder.rmdir()
        # torchvision's own message is a fragment when offline ("Error downloading ...:") and advises
        # download=True otherwise; say once what is missing and the ways to provide it.
        fetched = " and could not be downloaded" if download else ""
        raise DataMissing(
            "data.root", str(root),
            f"{dataset} is not in {raw}{fetched}. Put {', '.join(RAW_FILES)} (or their .gz files) there, "
            f"or point data.root or ${DATA_ROOT_ENV} at a folder that has them"
            + ("" if download else ", or allow data.download=true"),
        ) from None


class DataMissing(ConfigError):
    """MNIST is not where data.root says, and was not downloaded there."""


def read_idx(path: Path, rank: int) -> torch.Tensor:
    """An IDX file of unsigned bytes (MNIST's format), plain or gzipped, checked: two zero bytes,
    type 0x08, the rank, a big-endian size per axis, and a length that matches them."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise _bad_file(path, f"it cannot be decompressed ({error})") from None
    header_size = 4 + 4 * rank
    if len(data) < header_size:
        raise _bad_file(path, f"it is {len(data)} bytes long, too short for an IDX header")
    zeros, kind, found_rank = struct.unpack(">HBB", data[:4])
    if zeros != 0 or kind != 0x08 or found_rank != rank:
        raise _bad_file(path, f"its magic number is 0x{data[:4].hex()}, not 0x000008{rank:02x} "
                              f"(unsigned bytes, {rank} axes)")
    shape = struct.unpack(f">{rank}I", data[4:header_size])
    expected = header_size + math.prod(shape)
    if len(data) != expected:
        raise _bad_file(path, f"its header promises {' x '.join(map(str, shape))} values ({expected:,} bytes) "
                              f"but it has {len(data):,} bytes")
    return torch.frombuffer(bytearray(data[header_size:]), dtype=torch.uint8).reshape(shape)


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, H, W] images as [N, size, size]: bilinear with antialiasing, as torchvision's
    ``Resize(size)`` does to the PIL images of the JointVAE paper's loader; unchanged at their own size."""
    if tuple(images.shape[1:]) == (size, size):
        return images
    from torchvision.transforms.v2.functional import resize  # slow import: see read_mnist

    return resize(images, [size, size], antialias=True)


def _bad_file(path: Path, problem: str) -> ConfigError:
    return ConfigError("data.root", str(path.parents[2]),
                       f"{path.name} is not an MNIST file: {problem}. Replace it with the original")
