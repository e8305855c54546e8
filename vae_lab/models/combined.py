"""Continuous and discrete latents in one VAE (in the manner of JointVAE, Dupont 2018): a Gaussian
part and a categorical part, their codes concatenated into one decoder."""

import math
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import MISSING
from torch import nn

from vae_lab.backbones import PerPartEncoder
from vae_lab.config import ConfigError, at_least
from vae_lab.latents import GaussianLatent, JointLatent
from vae_lab.models.base import MODELS, VAE
from vae_lab.models.continuous import ContinuousConfig
from vae_lab.models.discrete import DiscreteConfig, categorical_latent


@dataclass
class ContinuousAndDiscrete(ContinuousConfig, DiscreteConfig):
    """The settings of a Gaussian part (latent_dim) and a categorical part (n_vars x n_cats)."""


@dataclass
class Capacity:
    """Capacity control: per part, gamma * |KL - C|, with C rising linearly from 0 to its maximum over
    ``steps`` optimizer steps; replaces beta * KL when enabled. The categorical part's C rises at the
    same rate but stops at what the part can hold, n_vars * ln(n_cats), as in JointVAE: with one
    variable of 10 and a maximum of 5 nats it is full at 46% of ``steps``, well before the Gaussian
    part. Held-out losses use the final C, so
    that validation loss (which picks best.pt) compares epochs alike, not each against its own C."""

    enabled: bool = MISSING
    gamma: float = at_least(0)
    continuous_max: float = at_least(0)  # nats
    discrete_max: float = at_least(0)  # nats; C stops at what the categorical part can hold
    steps: int = at_least(1)


@dataclass
class CombinedConfig(ContinuousAndDiscrete):
    share_encoder: bool = MISSING  # one trunk with two heads, or a trunk per part
    capacity: Capacity = MISSING

    def code_starts_empty(self) -> bool:
        return self.capacity.enabled

    def summary(self) -> str:
        encoders = "shared encoder" if self.share_encoder else "separate encoders"
        return f"{super().summary()}, {encoders}"

    def kl_weighting(self) -> str:
        if not self.capacity.enabled:
            return super().kl_weighting()
        c = self.capacity
        return f"capacity control to {c.continuous_max:g} and {c.discrete_max:g} nats, gamma {c.gamma:g}"

    def cross_check(self) -> None:
        if self.capacity.enabled and self.beta_warmup_steps:
            raise ConfigError("beta_warmup_steps", self.beta_warmup_steps,
                              "has no effect with capacity.enabled=true, whose targets replace beta; use one of "
                              "them (conv and unet on color_mnist warm up by default: add model.beta_warmup_steps=0)")


def joint_latent(config: ContinuousAndDiscrete) -> JointLatent:
    return JointLatent(GaussianLatent(config.latent_dim), categorical_latent(config))


@MODELS.register("combined", CombinedConfig)
class CombinedVAE(VAE):
    elbo_terms = ("recon", "kl", "kl_disc")

    def __init__(self, config: CombinedConfig, backbone, image_shape):
        latent = joint_latent(config)
        if config.share_encoder:
            encoder, head = backbone.encoder(image_shape), None
        else:
            encoder = PerPartEncoder([backbone.encoder(image_shape), backbone.encoder(image_shape)],
                                     latent.param_sizes)
            head = nn.Identity()
        super().__init__(config, encoder, latent, backbone.decoder(latent.code_size, image_shape),
                         image_shape, head=head)

    def objective(self, terms: dict[str, torch.Tensor], step: Optional[torch.Tensor] = None) -> torch.Tensor:
        capacity = self.config.capacity
        if not capacity.enabled:
            return super().objective(terms, step)
        step = self.step if step is None else step
        progress = torch.clamp(step.float() / capacity.steps, max=1.0) if self.training else torch.tensor(1.0)
        most_disc = self.config.n_vars * math.log(self.config.n_cats)
        targets = {"kl": progress * capacity.continuous_max,
                   "kl_disc": torch.clamp(progress * capacity.discrete_max, max=most_disc)}
        # As in JointVAE, the penalty acts on the batch's mean KL, the same for every image.
        penalty = sum((terms[name].mean() - target).abs() for name, target in targets.items())
        return terms["recon"] + capacity.gamma * penalty
