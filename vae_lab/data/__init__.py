"""Data: each dataset's source (MNIST, color MNIST, Fashion-MNIST, dSprites, your own images), in-memory
splits and batching."""

from vae_lab.data.splits import Splits, check_data, load_split, load_splits
from vae_lab.data.tensors import DIGITS, Batch, DataInfo, ImageSet

__all__ = ["Batch", "DIGITS", "DataInfo", "ImageSet", "Splits", "check_data", "load_split", "load_splits"]
