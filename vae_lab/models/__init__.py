"""Model types: one module each, registered by name in ``MODELS`` with its config schema.

Every module in this package is imported here, so a new model type is a new module (a schema plus a
``VAE`` subclass decorated with ``@MODELS.register``) and a ``conf/model/<name>.yaml`` that extends it.
"""

import importlib
import pkgutil

import torch

from vae_lab.backbones import build_backbone
from vae_lab.config import BackboneConfig, ModelConfig
from vae_lab.models.base import MODELS, VAE

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def build_model(config: ModelConfig, backbone: BackboneConfig, image_shape: tuple[int, int, int],
                classes: int = 10) -> VAE:
    """The model for images of ``image_shape``; one that learns from labels (``learns_labels`` on
    its class or factory) is also given how many classes they have (MNIST's 10 unless said)."""
    factory = MODELS[config.name]
    labels = {"classes": classes} if getattr(factory, "learns_labels", False) else {}
    return factory(config, build_backbone(backbone), image_shape, **labels)


def parameter_count(config: ModelConfig, backbone: BackboneConfig, image_shape: tuple[int, int, int],
                    classes: int = 10) -> int:
    """How many parameters the model will have, counted on PyTorch's meta device: nothing is
    allocated and no random number drawn, so a model too large for memory can be refused first."""
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config, backbone, image_shape, classes).parameters())


__all__ = ["MODELS", "VAE", "build_model", "parameter_count"]
