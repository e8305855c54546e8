"""The discrete VAE: ``n_vars`` categorical variables of ``n_cats`` categories, relaxed with
Gumbel-softmax (Jang et al. 2017; Maddison et al. 2017), against a uniform prior."""

from dataclasses import dataclass

import torch

from omegaconf import MISSING

from vae_lab.config import ConfigError, ModelConfig, at_least, greater_than
from vae_lab.latents import CategoricalLatent, TemperatureSchedule
from vae_lab.models.base import MODELS, VAE


@dataclass
class Relaxation:
    """The Gumbel-softmax temperature schedule, max(temperature_min, temperature * exp(-rate * step)),
    and the straight-through option."""

    temperature: float = greater_than(0)
    temperature_min: float = greater_than(0)
    anneal_rate: float = at_least(0)  # per optimizer step; 0 keeps the temperature constant
    hard: bool = MISSING  # straight-through: one-hot codes forward, relaxed gradients backward

    def schedule(self) -> TemperatureSchedule:
        return TemperatureSchedule(self.temperature, self.temperature_min, self.anneal_rate)

    def cross_check(self) -> None:
        if self.anneal_rate > 0 and self.temperature_min >= self.temperature:
            raise ConfigError("temperature_min", self.temperature_min,
                              f"must be below temperature ({self.temperature}) for anneal_rate="
                              f"{self.anneal_rate} to change anything; set anneal_rate=0 for a constant "
                              "temperature")


@dataclass
class DiscreteConfig(ModelConfig, Relaxation):
    n_vars: int = at_least(1)  # N categorical variables
    n_cats: int = at_least(2)  # K categories each

    def summary(self) -> str:
        return f"{self.n_vars}x{self.n_cats} categorical, {super().summary()}"


def categorical_latent(config: DiscreteConfig) -> CategoricalLatent:
    return CategoricalLatent(config.n_vars, config.n_cats, config.schedule(), config.hard)


@MODELS.register("discrete", DiscreteConfig)
class DiscreteVAE(VAE):
    elbo_terms = ("recon", "kl_disc")

    def __init__(self, config: DiscreteConfig, backbone, image_shape):
        latent = categorical_latent(config)
        super().__init__(config, backbone.encoder(image_shape), latent,
                         backbone.decoder(latent.code_size, image_shape), image_shape)

    def most_likely_categories(self, images: torch.Tensor) -> torch.Tensor:
        """[B, n_vars] the most probable category of each variable (seeds/002's predicted category)."""
        return self.latent.most_likely(self.encode(images))
