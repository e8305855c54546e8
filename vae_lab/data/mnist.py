"""MNIST through torchvision, as whole-split uint8 tensors, checked before they are used."""

import struct
from pathlib import Path

import torch

from vae_lab.config import DATA_ROOT_ENV
from vae_lab.errors import ConfigError

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
N_CLASSES = 10
IMAGE_SIZE = (28, 28)


def read_mnist(root: str | Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One official split: images uint8 [N, 28, 28] and labels int64 [N] in 0..9.

    Reads ``root/MNIST/raw`` with torchvision; when the files are missing and ``download`` is on,
    torchvision fetches them. If neither works the error says which files to put where; a file that
    is there but is not MNIST is named with what is wrong with it.
    """
    # Imported here, not at the top: importing torchvision takes about 2 s (it loads torch._dynamo),
    # and the command line must reject a bad config before paying for what only training needs.
    from torchvision.datasets import MNIST

    root = Path(root).expanduser().resolve()
    raw = root / "MNIST" / "raw"
    images_file, labels_file = (raw / name for name in (RAW_FILES[:2] if train else RAW_FILES[2:]))
    if images_file.is_file() and labels_file.is_file():
        check_idx_file(images_file, rank=3)
        check_idx_file(labels_file, rank=1)
    try:
        dataset = MNIST(str(root), train=train, download=download)
    except (RuntimeError, OSError):
        # torchvision's own message is a fragment when offline ("Error downloading ...:") and advises
        # download=True otherwise; say once what is missing and the ways to provide it.
        fetched = " and could not be downloaded" if download else ""
        raise ConfigError(
            "data.root", str(root),
            f"MNIST is not in {raw}{fetched}. Put {', '.join(RAW_FILES)} (or their .gz files) there, "
            f"or point data.root or ${DATA_ROOT_ENV} at a folder that has them"
            + ("" if download else ", or allow data.download=true"),
        ) from None
    images, labels = dataset.data, dataset.targets.long()
    if tuple(images.shape[1:]) != IMAGE_SIZE:
        raise _bad_file(images_file, f"its images are {tuple(images.shape[1:])} pixels, not {IMAGE_SIZE}")
    if len(images) != len(labels):
        raise _bad_file(labels_file, f"it has {len(labels):,} labels for the {len(images):,} images of {images_file.name}")
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < N_CLASSES):
        bad = labels[(labels < 0) | (labels >= N_CLASSES)][0].item()
        raise _bad_file(labels_file, f"it holds the label {bad}; MNIST labels are 0 to {N_CLASSES - 1}")
    return images, labels


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, H, W] images as [N, size, size]: bilinear with antialiasing, as torchvision's
    ``Resize(size)`` does to the PIL images of the JointVAE paper's loader; unchanged at their own size."""
    if tuple(images.shape[1:]) == (size, size):
        return images
    from torchvision.transforms.v2.functional import resize  # slow import: see read_mnist

    return resize(images, [size, size], antialias=True)


def check_idx_file(path: Path, rank: int) -> None:
    """The IDX header of an MNIST file (two zero bytes, type 0x08 = unsigned byte, the rank, then a
    big-endian size per axis), and a length that matches it."""
    size = path.stat().st_size
    header_size = 4 + 4 * rank
    with path.open("rb") as file:
        header = file.read(header_size)
    if len(header) < header_size:
        raise _bad_file(path, f"it is {size} bytes long, too short for an IDX header")
    zeros, kind, found_rank = struct.unpack(">HBB", header[:4])
    if zeros != 0 or kind != 0x08 or found_rank != rank:
        raise _bad_file(path, f"its magic number is 0x{header[:4].hex()}, not 0x000008{rank:02x} "
                              f"(unsigned bytes, {rank} axes)")
    shape = struct.unpack(f">{rank}I", header[4:])
    expected = header_size + int(torch.tensor(shape).prod())
    if size != expected:
        raise _bad_file(path, f"its header promises {' x '.join(map(str, shape))} values ({expected:,} bytes) "
                              f"but it has {size:,} bytes")


def _bad_file(path: Path, problem: str) -> ConfigError:
    return ConfigError("data.root", str(path.parents[2]),
                       f"{path.name} is not an MNIST file: {problem}. Replace it with the original")
