"""Latent families: each maps encoder outputs to a code for the decoder, with its KL to the prior.

A latent reads a flat parameter vector of ``param_size`` per image (the encoder head's output), draws
a reparameterized code of ``code_size`` and returns its KL terms by name, in nats per image summed
over dimensions. ``mean_code`` is the deterministic code used for figures and probes, and
``prior_sample`` draws codes from the prior for generation.
"""

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn


@dataclass
class LatentSample:
    code: torch.Tensor  # [B, code_size], what the decoder reads
    kl: dict[str, torch.Tensor]  # per-image KL terms by name


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) for each dimension, in closed form."""
    return 0.5 * (mean.square() + logvar.exp() - 1 - logvar)


class GaussianLatent(nn.Module):
    """Diagonal Gaussian posterior against a standard normal prior; reparameterized samples."""

    def __init__(self, dim: int, kl_name: str = "kl"):
        super().__init__()
        self.dim, self.kl_name = dim, kl_name
        self.param_size, self.code_size = 2 * dim, dim

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = params.float().chunk(2, dim=-1)
        return mean, logvar

    def forward(self, params: torch.Tensor) -> LatentSample:
        mean, logvar = self.split(params)
        code = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return LatentSample(code, {self.kl_name: gaussian_kl(mean, logvar).sum(-1)})

    def mean_code(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def kl_per_dim(self, params: torch.Tensor) -> torch.Tensor:
        return gaussian_kl(*self.split(params))

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return _randn(n, self.dim, device=device, generator=generator)


def _randn(*shape: int, device: torch.device, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Standard normal draws made where the generator lives (a CPU generator gives the same draws on
    every machine), then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(*shape, device=where, generator=generator).to(device)
