"""A reference classifier for judging generated images, without downloading any weights.

A small CNN trained by vae-lab on the training split of the same data (same dataset, tint, binarization
and validation split), once: it is cached beside the data (``<data.root>/vae_lab_reference/``, or the
user's cache folder when the data folder is read-only) and reused by every run on that data.
"""

import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vae_lab.config import DataConfig
from vae_lab.data import ImageSet, Splits
from vae_lab.runs import atomic_write

log = logging.getLogger(__name__)
FEATURES = 128
EPOCHS = 3


class ReferenceClassifier(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURES), nn.ReLU())
        self.classify = nn.Linear(FEATURES, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


def cache_path(config: DataConfig) -> Path:
    name = f"{config.name}-binarize_{config.binarize}-seed{config.seed}-val{config.val_fraction:g}.pt"
    beside_data = Path(config.root) / "vae_lab_reference"
    writable = os.access(beside_data if beside_data.exists() else Path(config.root), os.W_OK)
    folder = beside_data if writable else Path.home() / ".cache" / "vae-lab" / "reference"
    return folder / name


def reference_classifier(config: DataConfig, splits: Splits, device: torch.device) -> ReferenceClassifier:
    """The cached classifier for this data, trained now if there is none yet."""
    path = cache_path(config)
    model = ReferenceClassifier(splits.image_shape[0]).to(device)
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["model"])
        return model.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(config.seed)
        accuracy = _train(model, splits.train, splits.test)
    log.info("reference classifier for %s: test accuracy %.4f, cached in %s", config.name, accuracy, path)
    atomic_write(path, lambda f: torch.save({"model": model.state_dict(), "test_acc": accuracy}, f),
                 binary=True)
    return model.eval()


def _train(model: ReferenceClassifier, train: ImageSet, test: ImageSet) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=train.device).manual_seed(0)
    model.train()
    for _ in range(EPOCHS):
        for batch in train.shuffled_batches(128, generator):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(batch.images), batch.labels).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum((model(b.images).argmax(-1) == b.labels).sum().item() for b in test.batches(1000))
    return correct / len(test)
