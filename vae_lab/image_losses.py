"""Losses in image space that sharpen reconstructions (seeds/003): a PatchGAN discriminator and a VGG16
perceptual distance, trained beside the VAE's own likelihood (``loss.adversarial``, ``loss.perceptual``).

Both compare each training image with the model's reconstruction of it (the decoder's mean image for
the posterior draw the ELBO used), as per-image terms logged on their own scale (per patch, per VGG
layer). The perceptual distance enters the objective scaled to a sum over the image's H x W pixel
positions, as the reconstruction term sums over pixels: ``weight * H*W * distance``.

The generator's adversarial term is weighted adaptively, as in VQGAN (Esser et al. 2021, eq. 7): at
the decoder's output layer its gradient gets ``weight`` times the norm of the likelihood's gradient
(reconstruction plus perceptual), recomputed every step. A fixed weight cannot serve both datasets: at
``0.1 * H*W`` grey MNIST trained well, but on color MNIST the discriminator won (its accuracy rising
0.77 -> 0.84), the validation loss went 346 -> 604 nats in a second epoch and reconstructions lost their
colors. ``adaptive=false`` keeps the fixed ``weight * H*W * term`` for comparison.

The image losses enter the training objective only: validation and test losses, NELBO and NLL stay the
VAE's.
"""
import math
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from vae_lab.config import LossConfig, UserError
from vae_lab.hooks import LossHook


# ---- the adversarial loss ---------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """Isola et al. (2017)'s PatchGAN: a real-or-reconstructed logit for each overlapping patch.
    ``layers`` stride-2 convolutions (widths doubling from ``channels``), then two stride-1 ones; on
    28 x 28 images with 2 layers, a 5 x 5 grid of logits, each seeing a 22 x 22 patch. Spectral
    normalization (Miyato et al. 2018) instead of pix2pix's BatchNorm: it keeps the discriminator
    1-Lipschitz-ish for the hinge loss, and each logit a function of its own patch only."""

    def __init__(self, in_channels: int, channels: int, layers: int):
        super().__init__()
        widths = [in_channels, *(channels * 2 ** i for i in range(layers + 1)), 1]
        strides = [2] * layers + [1, 1]
        modules: list[nn.Module] = []
        for i, stride in enumerate(strides):
            modules.append(spectral_norm(nn.Conv2d(widths[i], widths[i + 1], 4, stride=stride, padding=1)))
            if i < len(strides) - 1:
                modules.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*modules)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Patch logits [B, 1, h, w] for images in [0, 1]."""
        return self.net(2 * images - 1)


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per image, the mean over patches: hinge max(0, 1 - D(x)) + max(0, 1 + D(x~)), or the
    non-saturating GAN's -log sigmoid(D(x)) - log(1 - sigmoid(D(x~)))."""
    if kind == "hinge":
        loss = F.relu(1 - real) + F.relu(1 + fake)
    else:
        loss = F.softplus(-real) + F.softplus(fake)
    return loss.flatten(1).mean(1)


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Per image, the mean over patches: hinge -D(x~), or non-saturating -log sigmoid(D(x~))."""
    loss = -fake if kind == "hinge" else F.softplus(-fake)
    return loss.flatten(1).mean(1)


# ---- the perceptual loss ----------------------------------------------------------------------

VGG_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}  # in torchvision's vgg16().features
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def imagenet_vgg16() -> Path:
    """The file of VGG16's ImageNet weights in the torch hub cache, downloaded there when missing and
    online. ``train`` asks for it before it writes anything, so that offline it stops at once."""
    from torchvision.models import VGG16_Weights  # here: see vae_lab/data/mnist.py on torchvision's import

    weights = VGG16_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(cached), progress=False)
        return cached
    except Exception as error:  # URLError offline, HTTPError, a full disk, ...
        raise UserError(
            f"loss.perceptual.weights=imagenet: VGG16's ImageNet weights are not in the torch cache and "
            f"could not be downloaded ({type(error).__name__}: {error}); put {weights.url} at {cached}, "
            "or turn the perceptual loss off with loss.perceptual.enabled=false") from error


class VGGPerceptual(nn.Module):
    """Per-image distance between VGG16 features of two image batches, in the manner of LPIPS
    (Zhang et al. 2018) without its learned channel weights: at each chosen layer (by default relu1_2,
    relu2_2 and relu3_3), each position's feature vector is scaled to unit length, and the squared
    differences are averaged over positions and summed over channels, then summed over the layers.
    Grey images are repeated into three channels; the network is frozen."""

    def __init__(self, weights: str, layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")):
        super().__init__()
        from torchvision.models import vgg16  # here: see vae_lab/data/mnist.py on torchvision's import

        vgg = vgg16(weights=None)
        if weights == "imagenet":
            vgg.load_state_dict(torch.load(imagenet_vgg16(), weights_only=True))
        self.taps = {VGG_LAYERS[name] for name in layers}
        self.features = vgg.features[:max(self.taps) + 1].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "VGGPerceptual":
        return super().train(False)  # a fixed measuring device, whatever mode its owner is in

    def forward(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = torch.cat([images, targets]).expand(-1, 3, -1, -1)  # grey: the same value in R, G and B
        x = (x - self.mean) / self.std
        distance = x.new_zeros(len(images))
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                a, b = F.normalize(x.float(), dim=1, eps=1e-10).chunk(2)
                distance = distance + (a - b).pow(2).sum(1).flatten(1).mean(1)
        return distance


# ---- both, in training ------------------------------------------------------------------------


class ImageLosses(LossHook):
    """The image-space losses of one training run, a loss hook of the training loop: ``add_terms``
    adds the generator's terms to the VAE's objective, and ``after_step`` trains the discriminator
    with its own Adam optimizer after each VAE step. The discriminator joins (and its term is logged)
    from optimizer step ``loss.adversarial.start_step`` on, once the VAE's reconstructions are worth
    judging."""

    name = "image_losses"  # the checkpoint's key for the discriminator and its optimizer

    def __init__(self, config: LossConfig, image_shape: tuple[int, int, int], device: torch.device):
        self.config, self.pixels = config, math.prod(image_shape[1:])
        self.output_weights: Optional[list[torch.Tensor]] = None  # the decoder's output layer, on first use
        adversarial, perceptual = config.adversarial, config.perceptual
        self.perceptual = (VGGPerceptual(perceptual.weights, tuple(perceptual.layers)).to(device)
                           if perceptual.enabled else None)
        self.discriminator: Optional[PatchDiscriminator] = None
        if adversarial.enabled:
            self.discriminator = PatchDiscriminator(image_shape[0], adversarial.channels,
                                                    adversarial.layers).to(device)
            self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=adversarial.lr,
                                              betas=(0.5, 0.9))

    @property
    def enabled(self) -> bool:
        return self.perceptual is not None or self.discriminator is not None

    def add_terms(self, model, images: torch.Tensor, reconstruction: torch.Tensor,
                  objective: torch.Tensor) -> dict[str, torch.Tensor]:
        """The generator's terms of this step's reconstructions, and their share of the objective."""
        terms = self.generator_terms(reconstruction, images, int(model.step))  # syncs
        if not terms:
            return {}
        if self.output_weights is None:
            self.output_weights = model.output_layer_weights()
        return {**terms, **self.objective(terms, objective, self.output_weights)}

    def after_step(self, model, images: torch.Tensor, reconstruction: torch.Tensor,
                   autocast) -> dict[str, torch.Tensor]:
        """The discriminator's own step, on the reconstructions of the step just taken."""
        with autocast:
            return self.train_discriminator(reconstruction, images, int(model.step) - 1)

    def adversarial_on(self, step: int) -> bool:
        return self.discriminator is not None and step >= self.config.adversarial.start_step

    def generator_terms(self, logits: torch.Tensor, images: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Per-image ``perceptual`` and ``adv_g`` (the generator's adversarial loss) of reconstructions."""
        reconstructions = torch.sigmoid(logits.float())
        terms = {}
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(reconstructions, images)
        if self.adversarial_on(step):
            self.discriminator.requires_grad_(False)  # this gradient is the VAE's alone
            fake = self.discriminator(reconstructions).float()
            terms["adv_g"] = generator_loss(self.config.adversarial.kind, fake)
        return terms

    def objective(self, terms: dict[str, torch.Tensor], likelihood: torch.Tensor,
                  output_weights: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The image losses' share of the per-image training objective (``loss``) and, while the
        discriminator is listened to, the weight its term got (``adv_weight``). ``likelihood`` is the
        VAE's own per-image objective; ``output_weights`` the decoder's output layer (see the module)."""
        loss = self.config.perceptual.weight * self.pixels * terms["perceptual"] if "perceptual" in terms else 0
        if "adv_g" not in terms:
            return {"loss": loss}
        weight = self.adversarial_weight(likelihood + loss, terms["adv_g"], output_weights)
        return {"loss": loss + weight * terms["adv_g"], "adv_weight": weight.expand_as(terms["adv_g"])}

    def adversarial_weight(self, likelihood: torch.Tensor, adversarial: torch.Tensor,
                           output_weights: list[torch.Tensor]) -> torch.Tensor:
        """A constant (no gradient flows through it): ``weight * ||grad likelihood|| / ||grad adversarial||``
        with both gradients of the batch means taken at ``output_weights``, or ``weight * H*W``."""
        settings = self.config.adversarial
        if not settings.adaptive:
            return adversarial.new_tensor(settings.weight * self.pixels)
        like = torch.autograd.grad(likelihood.mean(), output_weights, retain_graph=True)
        adv = torch.autograd.grad(adversarial.mean(), output_weights, retain_graph=True)
        # VQGAN's guards against a vanishing adversarial gradient, its cap of 1e4 counted per pixel position
        # here, since this likelihood sums over pixels where VQGAN's averages.
        ratio = _norm(like) / (_norm(adv) + 1e-4)
        return settings.weight * ratio.clamp(max=1e4 * self.pixels).detach()

    def train_discriminator(self, logits: torch.Tensor, images: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """One optimizer step of the discriminator on real images against reconstructions; returns its
        per-image loss (``adv_d``) and the share of patches it judges right (``d_acc``)."""
        if not self.adversarial_on(step):
            return {}
        self.discriminator.requires_grad_(True)
        real = self.discriminator(images).float()
        fake = self.discriminator(torch.sigmoid(logits.detach().float())).float()
        loss = discriminator_loss(self.config.adversarial.kind, real, fake)
        self.optimizer.zero_grad(set_to_none=True)
        loss.mean().backward()
        self.optimizer.step()
        right = torch.cat([(real > 0).flatten(1), (fake < 0).flatten(1)], 1).float().mean(1)
        return {"adv_d": loss.detach(), "d_acc": right}

    def state_dict(self) -> dict:
        if self.discriminator is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.optimizer.load_state_dict(state["optimizer"])


def _norm(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors]))
