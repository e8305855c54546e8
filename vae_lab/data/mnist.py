"""MNIST through torchvision, as whole-split uint8 tensors."""

from pathlib import Path

import torch

from vae_lab.config import DATA_ROOT_ENV, ConfigError

RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_mnist(root: str | Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One official split: images uint8 [N, 28, 28] and labels int64 [N].

    Reads ``root/MNIST/raw`` with torchvision; when the files are missing and ``download`` is on,
    torchvision fetches them. If neither works the error says which files to put where.
    """
    # Imported here, not at the top: importing torchvision takes about 2 s (it loads torch._dynamo),
    # and the command line must reject a bad config before paying for what only training needs.
    from torchvision.datasets import MNIST

    root = Path(root).expanduser().resolve()
    try:
        dataset = MNIST(str(root), train=train, download=download)
    except (RuntimeError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            "data.root", str(root),
            f"MNIST is not there ({reason}). Put {', '.join(RAW_FILES)} (or their .gz files) into "
            f"{root / 'MNIST' / 'raw'}, or point data.root or ${DATA_ROOT_ENV} at a folder that has "
            "them" + ("" if download else ", or allow data.download=true"),
        ) from None
    return dataset.data, dataset.targets.long()
