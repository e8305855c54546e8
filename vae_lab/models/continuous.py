"""The Gaussian VAE (Kingma & Welling 2014): a continuous latent of ``latent_dim`` dimensions."""

from dataclasses import dataclass

from vae_lab.config import ModelConfig, at_least
from vae_lab.latents import GaussianLatent
from vae_lab.models.base import MODELS, VAE


@dataclass
class ContinuousConfig(ModelConfig):
    latent_dim: int = at_least(1)

    def summary(self) -> str:
        return f"latent {self.latent_dim}, {super().summary()}"


@MODELS.register("continuous", ContinuousConfig)
class ContinuousVAE(VAE):
    def __init__(self, config: ContinuousConfig, backbone, image_shape):
        latent = GaussianLatent(config.latent_dim)
        super().__init__(config, backbone.encoder(image_shape), latent,
                         backbone.decoder(latent.code_size, image_shape), image_shape)
