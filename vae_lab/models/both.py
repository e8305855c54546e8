"""seeds/002's "both" model: a continuous VAE and a discrete VAE side by side.

Each has its own encoder and decoder; training minimises the sum of the two VAEs' losses. The image
the pair means is the average of the two decoders' images. ``recon`` (and ``nelbo``) are measured on
that average: a true bound for the model whose likelihood has the averaged image as its mean, with both
latents drawn from their own posteriors.
"""

from dataclasses import dataclass

import torch

from vae_lab.backbones import AveragedDecoders, PerPartEncoder, logit_of_mean_image
from vae_lab.data import Batch
from vae_lab.models.base import MODELS, VAE
from vae_lab.models.combined import ContinuousAndDiscrete, joint_latent


@dataclass
class BothConfig(ContinuousAndDiscrete):
    pass


@MODELS.register("both", BothConfig)
class BothVAE(VAE):
    elbo_terms = ("recon", "kl", "kl_disc")

    def __init__(self, config: BothConfig, backbone, image_shape):
        latent = joint_latent(config)
        code_sizes = [part.code_size for part in latent.parts]
        encoder = PerPartEncoder([backbone.encoder(image_shape), backbone.encoder(image_shape)],
                                 latent.param_sizes)
        decoder = AveragedDecoders([backbone.decoder(n, image_shape) for n in code_sizes], code_sizes)
        super().__init__(config, encoder, latent, decoder, image_shape, head=torch.nn.Identity())

    def terms_and_reconstruction(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        sample = self.draw(batch.images, batch.noise)
        continuous, discrete = self.decoder.each(sample.code)
        logits = logit_of_mean_image([continuous, discrete])
        return {
            "recon": self.reconstruction_nll(logits, batch.images),
            "recon_cont": self.reconstruction_nll(continuous, batch.images),
            "recon_disc": self.reconstruction_nll(discrete, batch.images),
            **sample.kl,
        }, logits

    def weights_at(self, step: torch.Tensor) -> dict[str, float | torch.Tensor]:
        """The sum of the two VAEs' own losses."""
        beta = self.beta_at(step)
        return {"recon_cont": 1.0, "kl": beta, "recon_disc": 1.0, "kl_disc": beta}
