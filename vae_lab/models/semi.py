"""Semi-supervised VAEs: learn from the few labels that data.n_labels keeps, generate a chosen digit.

``variant=m2`` is Kingma et al. (2014)'s M2: a classifier q(y|x), an encoder q(z|x,y) and a decoder
p(x|y,z), with a uniform p(y) and p(z) = N(0, I). A labelled image adds the bound on -log p(x, y):
``recon + kl + kl_y`` with ``kl_y = log K`` (that is -log p(y)), plus ``alpha`` times the classifier's
cross-entropy. An unlabelled image adds the bound on -log p(x): ``recon`` and ``kl`` averaged over
q(y|x), and ``kl_y = KL(q(y|x) || p(y))``. The average over q(y|x) is exact (every class decoded) or,
while training with ``unlabelled=gumbel``, one Gumbel-softmax draw of y; evaluation is always exact.

``variant=latent_classifier`` is seeds/001's model: a Gaussian VAE with a linear classifier on its code,
trained on the labelled images beside the decoder, so that classes separate in latent space. It
generates a chosen digit from the prior draws its classifier assigns to that digit most surely.

Both report ``class_acc`` per image (the classifier's accuracy against the true label, which on the
training split includes the labels it may not learn from): ``test/class_acc`` in metrics.json.
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vae_lab.backbones import Dense
from vae_lab.config import at_least, one_of
from vae_lab.data import Batch
from vae_lab.errors import UserError
from vae_lab.latents import GaussianLatent, LatentSpec, categorical_kl_uniform
from vae_lab.models.base import MODELS, VAE
from vae_lab.models.continuous import ContinuousConfig
from vae_lab.models.discrete import Relaxation


@dataclass
class SemiConfig(ContinuousConfig, Relaxation):
    variant: str = one_of("m2", "latent_classifier")
    alpha: float = at_least(0)  # weight of the classifier's cross-entropy on each labelled image
    unlabelled: str = one_of("enumerate", "gumbel")  # m2, training: how q(y|x) enters the bound

    def summary(self) -> str:
        return f"{self.variant}, alpha {self.alpha:g}, {super().summary()}"

    def reconstructs_each_image(self) -> bool:
        return self.variant != "m2"  # M2 reconstructs an unlabelled image once for every label

    def stackable(self) -> bool:
        return self.variant != "m2"  # see M2VAE.stackable


@MODELS.register("semi", SemiConfig)
def build_semi(config: SemiConfig, backbone, image_shape, classes: int) -> VAE:
    if classes < 2:
        raise UserError("model=semi learns from labels, and this data has none: give your images labels "
                        "(class folders, or 'labels' in a tensor file) or pick another model type")
    variants = {"m2": M2VAE, "latent_classifier": LatentClassifierVAE}
    return variants[config.variant](config, backbone, image_shape, classes)


build_semi.learns_labels = True  # see vae_lab.models.build_model


def _labelled(batch: Batch) -> torch.Tensor:
    if batch.labelled is None:
        return torch.zeros_like(batch.labels, dtype=torch.bool)
    return batch.labelled


class M2VAE(VAE):
    elbo_terms = ("recon", "kl", "kl_y")
    conditional = True
    stackable = False  # unlabelled images are decoded once per class: shapes depend on the batch's labels

    def __init__(self, config: SemiConfig, backbone, image_shape, classes: int):
        latent = GaussianLatent(config.latent_dim)
        encoder = backbone.encoder(image_shape)
        head = Dense(encoder.out_features + classes, latent.param_size)  # q(z | x, y)
        decoder = backbone.decoder(latent.code_size + classes, image_shape)  # p(x | z, y)
        super().__init__(config, encoder, latent, decoder, image_shape, head=head)
        self.classes = classes
        trunk = backbone.encoder(image_shape)
        self.classifier = nn.Sequential(trunk, Dense(trunk.out_features, self.classes))  # q(y | x)

    @property
    def spec(self) -> LatentSpec:
        return LatentSpec(self.config.latent_dim, ((1, self.classes),))

    def weights_at(self, step: torch.Tensor) -> dict[str, float | torch.Tensor]:
        return {"recon": 1.0, "kl": self.beta_at(step), "kl_y": 1.0, "class": self.config.alpha}

    def given_labels(self, features: torch.Tensor, images: torch.Tensor,
                     y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """recon and kl of each image for the (one-hot or relaxed) label y [R, K]."""
        sample = self.latent(self.head(torch.cat([features, y], -1)), self.step)
        logits = self.decoder(torch.cat([sample.code, y], -1))
        return self.reconstruction_nll(logits, images), sample.kl["kl"]

    def terms_and_reconstruction(self, batch: Batch) -> tuple[dict[str, torch.Tensor], None]:
        """The terms; no reconstruction of each image (one per label, weighted by q(y|x))."""
        images, labels, labelled = batch.images, batch.labels, _labelled(batch)
        class_logits = self.classifier(images).float()
        features = self.encoder(images)
        if self.training and self.config.unlabelled == "gumbel":
            tau = self.config.schedule()(self.step)
            drawn = F.gumbel_softmax(class_logits, tau=tau, hard=self.config.hard)
            y = torch.where(labelled[:, None], F.one_hot(labels, self.classes).float(), drawn)
            recon, kl = self.given_labels(features, images, y)
        else:
            recon, kl = self._over_every_class(features, images, labels, labelled, class_logits)
        kl_y = torch.where(labelled, math.log(self.classes), categorical_kl_uniform(class_logits))
        cross_entropy = F.cross_entropy(class_logits, labels, reduction="none")
        return {"recon": recon, "kl": kl, "kl_y": kl_y, "class": cross_entropy * labelled,
                "class_acc": (class_logits.argmax(-1) == labels).float()}, None

    def _over_every_class(self, features, images, labels, labelled, class_logits):
        """Labelled images at their label; unlabelled ones at every class, weighted by q(y|x)."""
        recon = torch.zeros(len(images), device=images.device)
        kl = torch.zeros_like(recon)
        if labelled.any():
            r, k = self.given_labels(features[labelled], images[labelled],
                                     F.one_hot(labels[labelled], self.classes).float())
            recon, kl = recon.masked_scatter(labelled, r), kl.masked_scatter(labelled, k)
        unlabelled = ~labelled
        if unlabelled.any():
            n = int(unlabelled.sum())
            every_class = torch.eye(self.classes, device=images.device).repeat(n, 1)
            r, k = self.given_labels(features[unlabelled].repeat_interleave(self.classes, 0),
                                     images[unlabelled].repeat_interleave(self.classes, 0), every_class)
            q = F.softmax(class_logits[unlabelled], -1)
            recon = recon.masked_scatter(unlabelled, (q * r.view(n, self.classes)).sum(1))
            kl = kl.masked_scatter(unlabelled, (q * k.view(n, self.classes)).sum(1))
        return recon, kl

    def draw_noise(self, shape: tuple[int, ...], generator: Optional[torch.Generator] = None) -> None:
        return None  # M2 draws its own: how many codes a batch needs depends on its labels

    def log_importance_weights(self, images: torch.Tensor, n: int,
                               noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """[B, n] log weights of draws (y, z) from q(y|x) q(z|x,y): log p(x|y,z) + log p(z) + log p(y)
        - log q(z|x,y) - log q(y|x). (Its noise is its own: see draw_noise.)"""
        log_qy = F.log_softmax(self.classifier(images).float(), -1)
        labels = torch.distributions.Categorical(logits=log_qy).sample((n,))  # [n, B]
        y = F.one_hot(labels, self.classes).float()
        features = self.encoder(images).expand(n, -1, -1)
        z, log_qz = self.latent.posterior_sample(self.head(torch.cat([features, y], -1)), 1)
        z, log_qz = z[0], log_qz[0]
        logits = self.decoder(torch.cat([z, y], -1).flatten(0, 1)).unflatten(0, (n, len(images)))
        log_px = -self.reconstruction_nll(logits, images)
        log_qy_drawn = log_qy.expand(n, -1, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        log_w = log_px + self.latent.prior_log_prob(z) - math.log(self.classes) - log_qz - log_qy_drawn
        return log_w.T

    # -- the public interface --------------------------------------------------------------

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images).argmax(-1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The parameters of q(z | x, y) at y = q(y|x): the head is affine in y, so the mean is z's
        posterior mean averaged over q(y|x)."""
        q = F.softmax(self.classifier(images).float(), -1)
        return self.head(torch.cat([self.encoder(images), q], -1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[z's posterior mean averaged over q(y|x), q(y|x)]."""
        q = F.softmax(self.classifier(images).float(), -1)
        return torch.cat([self.latent.mean_code(self.encode(images)), q], -1)

    def sample_posterior(self, images: torch.Tensor) -> torch.Tensor:
        y = F.one_hot(self.predict(images), self.classes).float()
        codes, _ = self.latent.posterior_sample(self.head(torch.cat([self.encoder(images), y], -1)), 1)
        return self.decode(torch.cat([codes[0], y], -1))

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        where = generator.device if generator is not None else self.device
        labels = torch.randint(self.classes, (n,), device=where, generator=generator).to(self.device)
        return self.sample_with_label(labels, generator)

    def sample_with_label(self, labels: torch.Tensor,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
        z = self.latent.prior_sample(len(labels), self.device, generator)
        return self.decode(torch.cat([z, F.one_hot(labels.to(self.device), self.classes).float()], -1))


class LatentClassifierVAE(VAE):
    conditional = True
    candidates_per_sample = 200  # prior draws scored by the classifier for each generated image

    def __init__(self, config: SemiConfig, backbone, image_shape, classes: int):
        latent = GaussianLatent(config.latent_dim)
        super().__init__(config, backbone.encoder(image_shape), latent,
                         backbone.decoder(latent.code_size, image_shape), image_shape)
        self.classes = classes
        self.classifier = Dense(latent.code_size, classes)

    def weights_at(self, step: torch.Tensor) -> dict[str, float | torch.Tensor]:
        return {"recon": 1.0, "kl": self.beta_at(step), "class": self.config.alpha}

    def terms_and_reconstruction(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        params = self.encode(batch.images)
        sample = self.latent(params, self.step, batch.noise)
        logits = self.decoder(sample.code)
        recon = self.reconstruction_nll(logits, batch.images)
        cross_entropy = F.cross_entropy(self.classifier(sample.code).float(), batch.labels, reduction="none")
        predicted = self.classifier(self.latent.mean_code(params)).argmax(-1)
        return {"recon": recon, **sample.kl, "class": cross_entropy * _labelled(batch),
                "class_acc": (predicted == batch.labels).float()}, logits

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(images)).argmax(-1)

    def sample_with_label(self, labels: torch.Tensor,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
        labels = labels.to(self.device)
        candidates = self.latent.prior_sample(self.candidates_per_sample * len(labels), self.device, generator)
        surest = F.softmax(self.classifier(candidates).float(), -1)
        codes = torch.empty(len(labels), candidates.shape[1], device=self.device)
        for label in labels.unique():
            rows = (labels == label).nonzero().squeeze(1)
            codes[rows] = candidates[surest[:, label].topk(len(rows)).indices]
        return self.decode(codes)
