"""What every model type shares: encoder trunk -> latent -> decoder trunk, and named loss terms.

A model's ``forward(batch)`` returns a dict of per-image values by name, in nats: the loss terms
(``recon``, ``kl``, ``kl_disc``, ...) and any per-image diagnostics (``class_acc``). ``weights`` says
how the objective weighs the loss terms (``recon + beta * kl`` for the plain VAE) and ``elbo_terms``
which of them add up to the negative ELBO, so the trainer sums terms without knowing the model.
Figures and metrics use only ``embed``, ``reconstruct``, ``decode``, ``sample`` and, for models that
generate from a label, ``sample_with_label``.
"""

from typing import Optional

import torch
from torch import nn

from vae_lab.backbones import Dense, output_layer_weights, start_at_mean_image
from vae_lab.config import ModelConfig, Registry
from vae_lab.data import Batch
from vae_lab.latents import LatentSample
from vae_lab.losses import reconstruction_nll

MODELS: Registry = Registry("model")


class VAE(nn.Module):
    elbo_terms: tuple[str, ...] = ("recon", "kl")
    conditional = False  # True where sample_with_label generates images of a chosen class
    # Whether members of a population can train as one stacked computation (torch.func.vmap): the
    # forward pass has no data-dependent shapes and takes all its randomness from ``batch.noise``.
    stackable = True

    def __init__(self, config: ModelConfig, encoder: nn.Module, latent: nn.Module,
                 decoder: nn.Module, image_shape: tuple[int, int, int], head: Optional[nn.Module] = None):
        super().__init__()
        self.config, self.image_shape = config, image_shape
        self.encoder, self.latent, self.decoder = encoder, latent, decoder
        # The head maps encoder features to the latent's parameters (a linear layer unless given).
        self.head = head if head is not None else Dense(encoder.out_features, latent.param_size)
        # Optimizer steps taken: drives schedules (temperature, capacity) and travels with the weights.
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # -- the objective ------------------------------------------------------------------------

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.terms_and_reconstruction(batch)[0]

    def terms_and_reconstruction(self, batch: Batch) -> tuple[dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """The per-image loss terms by name, and the logits of each image's reconstruction [B, C, H, W],
        which image-space losses (vae_lab/image_losses.py) compare with the inputs; None for a model
        whose config says it does not ``reconstructs_each_image``. A model type overrides this."""
        sample = self.draw(batch.images, batch.noise)
        logits = self.decoder(sample.code)
        return {"recon": self.reconstruction_nll(logits, batch.images), **sample.kl}, logits

    def output_layer_weights(self) -> list[nn.Parameter]:
        """The weights that make the image logits, where image-space losses balance their gradients."""
        return output_layer_weights(self.decoder)

    def start_at_mean_image(self, mean_image: torch.Tensor) -> None:
        """Make the decoder's output start at ``mean_image`` (see backbones.start_at_mean_image)."""
        start_at_mean_image(self.decoder, mean_image)

    def draw(self, images: torch.Tensor, noise: Optional[torch.Tensor] = None) -> LatentSample:
        """A code from the posterior (from ``noise`` when given), with its KL terms."""
        return self.latent(self.encode(images), self.step, noise)

    def draw_noise(self, shape: tuple[int, ...], generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The noise of ``shape`` (images) posterior draws, [*shape, latent.noise_size]."""
        return self.latent.draw_noise(shape, self.device, generator)

    def reconstruction_nll(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return reconstruction_nll(self.config.likelihood, logits, images, self.config.obs_std)

    def beta_at(self, step: torch.Tensor) -> float | torch.Tensor:
        """The KL weight after ``step`` optimizer steps: ``config.beta``, scaled from 0 up over the
        first ``beta_warmup_steps`` while training (KL warm-up, Bowman et al. 2016), so that the code
        carries information before its price is charged in full. Held-out losses always use the full
        beta, so that validation loss compares epochs alike."""
        warmup = self.config.beta_warmup_steps
        if not (warmup and self.training):
            return self.config.beta
        return self.config.beta * torch.clamp(step.float() / warmup, max=1.0)  # a tensor: no sync

    def weights_at(self, step: torch.Tensor) -> dict[str, float | torch.Tensor]:
        """How the objective weighs each loss term after ``step`` optimizer steps."""
        beta = self.beta_at(step)
        return {"recon": 1.0, **{name: beta for name in self.elbo_terms if name != "recon"}}

    @property
    def weights(self) -> dict[str, float | torch.Tensor]:
        """The weights at the model's own step."""
        return self.weights_at(self.step)

    def objective(self, terms: dict[str, torch.Tensor], step: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-image training objective after ``step`` optimizer steps (default: the model's own):
        the weighted sum of the loss terms."""
        weights = self.weights_at(self.step if step is None else step)
        return sum(weight * terms[name] for name, weight in weights.items())

    def nelbo(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-image negative ELBO (nats): the unweighted sum of the ELBO's terms."""
        return sum(terms[name] for name in self.elbo_terms)

    # -- the public interface for figures and metrics ----------------------------------------

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior parameters [B, latent.param_size]."""
        return self.head(self.encoder(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """A deterministic code per image, laid out as ``latent.spec`` says (posterior means for
        Gaussian parts, category probabilities for categorical ones)."""
        return self.latent.mean_code(self.encode(images))

    def kl_details(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image KL by latent dimension (``kl_per_dim``) and categorical variable (``kl_per_var``)."""
        return self.latent.kl_details(self.encode(images))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] that a code means."""
        return torch.sigmoid(self.decoder(code).float())

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(images))

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images decoded from ``n`` codes drawn from the prior."""
        return self.decode(self.latent.prior_sample(n, self.device, generator))

    def log_importance_weights(self, images: torch.Tensor, n: int,
                               noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B, n] log p(x, z_i) - log q(z_i | x) for ``n`` draws z_i from the posterior (made from
        ``noise`` [n, B, noise_size] when given): their log-mean-exp estimates log p(x), ever more
        tightly as ``n`` grows (Burda et al. 2016)."""
        codes, log_q = self.latent.posterior_sample(self.encode(images), n, noise)  # [n, B, C], [n, B]
        logits = self.decoder(codes.flatten(0, 1)).unflatten(0, codes.shape[:2])  # [n, B, C, H, W]
        log_px_given_z = -self.reconstruction_nll(logits, images)  # images broadcast over the draws
        return (log_px_given_z + self.latent.prior_log_prob(codes) - log_q).T

    def sample_posterior(self, images: torch.Tensor) -> torch.Tensor:
        """Images decoded from one code drawn from each image's posterior (seeds/004: samples "near"
        the data, where the decoder was trained, unlike prior samples in a large latent)."""
        codes, _ = self.latent.posterior_sample(self.encode(images), 1)
        return self.decode(codes[0])

    def sample_with_label(self, labels: torch.Tensor,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not generate from a label")

    @property
    def spec(self):
        return self.latent.spec

    @property
    def device(self) -> torch.device:
        return self.step.device
