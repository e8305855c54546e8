"""Data: MNIST loading (torchvision), color tinting, in-memory splits and batching."""

from vae_lab.data.splits import CLASS_NAMES, N_CLASSES, Splits, load_split, load_splits
from vae_lab.data.tensors import Batch, ImageSet

__all__ = ["Batch", "CLASS_NAMES", "ImageSet", "N_CLASSES", "Splits", "load_split", "load_splits"]
