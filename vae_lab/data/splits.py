"""Train, validation and test splits built from the data config, ready on the training device."""

import hashlib
from dataclasses import dataclass, field, replace

import torch

from vae_lab.config import DataConfig
from vae_lab.errors import ConfigError
from vae_lab.data.sources import SOURCES
from vae_lab.data.tensors import DataInfo, ImageSet


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet  # carved from the training split (empty when data.val_fraction=0)
    test: ImageSet  # the official test split, or one held out (see vae_lab.data.sources)
    # What the data was, to tell it apart from other data: the official splits' sizes and a hash of
    # their content as loaded (tinted, before binarization), whatever folder it came from.
    fingerprint: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape

    @property
    def info(self) -> DataInfo:
        return self.train.info


def load_split(config: DataConfig, split: str) -> ImageSet:
    """One split ('train' or 'test') as its source reads it, on the CPU."""
    return SOURCES[config.name].read(config, split)


def check_data(config: DataConfig) -> DataInfo:
    """Before any work: the data is there (fetched now where it may be) and the settings fit it."""
    source = SOURCES[config.name]
    source.check(config)
    info = source.info(config)
    if config.n_labels is not None:
        classes = len(info.class_names)
        if not classes:
            raise ConfigError("data.n_labels", config.n_labels, f"data={config.name} has no labels; expected null")
        if config.n_labels % classes:
            raise ConfigError("data.n_labels", config.n_labels, f"expected null (every label) or a multiple of the "
                                                                 f"{classes} classes (as many of each)")
    return info


def load_splits(config: DataConfig, device: torch.device | str = "cpu") -> Splits:
    """Load, tint, split off validation and move everything to ``device`` once."""
    train_all, test = load_split(config, "train"), load_split(config, "test")
    fingerprint = {"train_images": len(train_all), "test_images": len(test),
                   "sha256": content_hash(train_all, test)}
    order = torch.randperm(len(train_all), generator=torch.Generator().manual_seed(config.seed))
    n_val = round(config.val_fraction * len(train_all))
    if n_val >= len(train_all):
        raise ConfigError("data.val_fraction", config.val_fraction,
                          f"holds out {n_val:,} of the {len(train_all):,} training images, leaving none to train on")
    kept = order[n_val:]
    if config.n_train is not None:
        if config.n_train > len(kept):
            raise ConfigError("data.n_train", config.n_train,
                              f"expected at most the {len(kept):,} training images left after validation")
        kept = kept[:config.n_train]
    train, val = train_all.subset(kept.sort().values), train_all.subset(order[:n_val].sort().values)
    # Only training labels may be learned from; held-out splits measure the unlabelled bound.
    train.labelled = (torch.ones(len(train), dtype=torch.bool) if config.n_labels is None
                      else balanced_label_mask(train.labels, config.n_labels, config.seed, len(train.info.class_names)))
    if config.binarize != "none":
        # Held-out pixels are drawn once, so validation and test numbers compare across epochs and
        # runs; with "dynamic", training pixels are drawn afresh at every batch instead.
        val = binarized_once(val, seed=config.seed + 1)
        test = binarized_once(test, seed=config.seed + 2)
        if config.binarize == "static":
            train = binarized_once(train, seed=config.seed)
        else:
            train.dynamic_binarization = True
    return Splits(train.to(device), val.to(device), test.to(device), fingerprint)


def content_hash(*splits: ImageSet) -> str:
    digest = hashlib.sha256()
    for split in splits:
        for tensor in (split.images, split.labels):
            digest.update(tensor.contiguous().numpy().data)
    return digest.hexdigest()


def binarized_once(data: ImageSet, seed: int) -> ImageSet:
    """Each pixel drawn once as 0 or 255 with probability its grey value, reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    probabilities = data.images.float() / 255
    pixels = torch.bernoulli(probabilities, generator=generator).to(torch.uint8) * 255
    return replace(data, images=pixels)


def balanced_label_mask(labels: torch.Tensor, n_labels: int, seed: int, classes: int = 10) -> torch.Tensor:
    """A bool mask over ``labels`` keeping ``n_labels // classes`` images of each class, chosen by a
    permutation drawn from ``seed``: the same images for the same seed and training split."""
    per_class = n_labels // classes
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for label in range(classes):
        rows = order[labels[order] == label][:per_class]
        if len(rows) < per_class:
            raise ConfigError("data.n_labels", n_labels,
                              f"the training split has only {len(rows)} images of class {label}, "
                              f"fewer than the {per_class} per class asked for")
        mask[rows] = True
    return mask
