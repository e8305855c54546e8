"""What every model type shares: encoder trunk -> latent -> decoder trunk, and named loss terms.

A model's ``forward(batch)`` returns a dict of per-image loss terms in nats (``recon``, ``kl``, ...).
``objective`` weights them for training (``recon + beta * kl`` for the plain VAE) and ``nelbo`` adds
up those that make the negative ELBO, so the trainer sums terms without knowing which model it has.
Figures and metrics use only ``embed``, ``reconstruct``, ``decode`` and ``sample``.
"""

from typing import Optional

import torch
from torch import nn

from vae_lab.config import ModelConfig, Registry
from vae_lab.data import Batch
from vae_lab.losses import reconstruction_nll

MODELS: Registry[type["VAE"]] = Registry("model")


class VAE(nn.Module):
    elbo_terms: tuple[str, ...] = ("recon", "kl")

    def __init__(self, config: ModelConfig, encoder: nn.Module, latent: nn.Module,
                 decoder: nn.Module, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config, self.image_shape = config, image_shape
        self.encoder, self.latent, self.decoder = encoder, latent, decoder
        self.head = nn.Linear(encoder.out_features, latent.param_size)

    # -- the objective ------------------------------------------------------------------------

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        sample = self.latent(self.encode(batch.images))
        logits = self.decoder(sample.code)
        return {"recon": self.reconstruction_nll(logits, batch.images), **sample.kl}

    def reconstruction_nll(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return reconstruction_nll(self.config.likelihood, logits, images, self.config.obs_std)

    @property
    def weights(self) -> dict[str, float]:
        return {"recon": 1.0, "kl": self.config.beta}

    def objective(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-image training objective: the weighted sum of the loss terms."""
        return sum(weight * terms[name] for name, weight in self.weights.items())

    def nelbo(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-image negative ELBO (nats): the unweighted sum of the ELBO's terms."""
        return sum(terms[name] for name in self.elbo_terms)

    # -- the public interface for figures and metrics ----------------------------------------

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior parameters [B, latent.param_size]."""
        return self.head(self.encoder(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """A deterministic code per image (the posterior mean for a Gaussian latent)."""
        return self.latent.mean_code(self.encode(images))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] that a code means."""
        return torch.sigmoid(self.decoder(code).float())

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(images))

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images decoded from ``n`` codes drawn from the prior."""
        return self.decode(self.latent.prior_sample(n, self.device, generator))

    @property
    def device(self) -> torch.device:
        return self.head.weight.device
