"""The image-space losses (seeds/003): PatchGAN adversarial terms, the VGG16 perceptual distance, and
a training run that uses them, resumes them and plots them."""

import json
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from conftest import EXACT
from test_cli import QUICK_EVAL, assert_figure_is_not_blank
from vae_lab.config import ConfigError, UserError
from vae_lab.image_losses import (PatchDiscriminator, VGGPerceptual, discriminator_loss, generator_loss,
                                  imagenet_vgg16)
from vae_lab.checkpoints import load_checkpoint
from vae_lab.training import train


@pytest.fixture
def digits() -> torch.Tensor:
    """64 of scikit-learn's handwritten digits, as 28 x 28 images in [0, 1]."""
    from sklearn.datasets import load_digits

    small = torch.tensor(load_digits().images[:64], dtype=torch.float32).unsqueeze(1) / 16
    return F.pad(F.interpolate(small, size=(20, 20), mode="bilinear"), (4, 4, 4, 4)).clamp(0, 1)


def test_the_non_saturating_losses_are_the_binary_cross_entropies_of_the_gan():
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 5, 5), torch.randn(4, 1, 5, 5)
    bce = F.binary_cross_entropy_with_logits
    expected_d = (bce(real, torch.ones_like(real), reduction="none")
                  + bce(fake, torch.zeros_like(fake), reduction="none")).mean((1, 2, 3))
    expected_g = bce(fake, torch.ones_like(fake), reduction="none").mean((1, 2, 3))
    torch.testing.assert_close(discriminator_loss("non_saturating", real, fake), expected_d)
    torch.testing.assert_close(generator_loss("non_saturating", fake), expected_g)


def test_the_hinge_loss_is_zero_beyond_the_margins_and_linear_inside_them():
    confident = discriminator_loss("hinge", torch.full((2, 1, 3, 3), 1.5), torch.full((2, 1, 3, 3), -1.2))
    assert torch.equal(confident, torch.zeros(2))
    unsure = discriminator_loss("hinge", torch.full((1, 1, 3, 3), 0.25), torch.full((1, 1, 3, 3), 0.5))
    torch.testing.assert_close(unsure, torch.tensor([(1 - 0.25) + (1 + 0.5)]))
    torch.testing.assert_close(generator_loss("hinge", torch.tensor([[[[2.0, -1.0]]]])), torch.tensor([-0.5]))


def test_the_discriminator_judges_local_patches():
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(in_channels=1, channels=8, layers=2).eval()
    images = torch.rand(1, 1, 28, 28)
    logits = discriminator(images)
    assert logits.shape == (1, 1, 5, 5)
    touched = images.clone()
    touched[..., 0, 0] = 1 - touched[..., 0, 0]  # one corner pixel
    changed = (discriminator(touched) - logits).abs()[0, 0] > 0
    assert changed[0, 0] and not changed[-1, -1], "a patch logit sees its own patch only"


def test_the_discriminator_learns_to_tell_images_from_blurred_reconstructions(digits):
    torch.manual_seed(0)
    images = digits[:64]
    blurred = F.avg_pool2d(images, 3, stride=1, padding=1)
    discriminator = PatchDiscriminator(1, channels=8, layers=2)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.9))

    def loss() -> torch.Tensor:
        return discriminator_loss("hinge", discriminator(images), discriminator(blurred)).mean()

    before = loss().item()
    for _ in range(40):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.5 * before
    assert (discriminator(images) > 0).float().mean() > 0.8 and (discriminator(blurred) < 0).float().mean() > 0.8


@pytest.mark.parametrize("channels", [1, 3])
def test_the_perceptual_distance_is_a_frozen_per_image_distance(channels):
    torch.manual_seed(0)
    perceptual = VGGPerceptual(weights="none")
    a, b = torch.rand(3, channels, 28, 28), torch.rand(3, channels, 28, 28)
    a.requires_grad_(True)
    distance = perceptual(a, b)
    assert distance.shape == (3,) and (distance > 0).all()
    torch.testing.assert_close(perceptual(b, a.detach()), distance.detach())
    assert torch.equal(perceptual(b, b), torch.zeros(3))
    distance.sum().backward()
    assert a.grad.abs().sum() > 0 and all(p.grad is None for p in perceptual.parameters())
    near = perceptual(b + 0.01 * torch.randn_like(b), b)
    assert (near < distance.detach()).all(), "a slightly perturbed image is nearer than another image"


def test_missing_vgg_weights_offline_stop_with_a_message_that_says_what_to_do(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as error:
        imagenet_vgg16()
    message = str(error.value)
    assert "vgg16-397923af.pth" in message and str(tmp_path) in message
    assert "loss.perceptual.enabled=false" in message


def test_m2_refuses_image_losses_before_any_work(train_config):
    with pytest.raises(ConfigError) as error:
        train_config("model=semi", "model.variant=m2", "loss.adversarial.enabled=true")
    assert error.value.key == "loss.adversarial.enabled"
    train_config("model=semi", "model.variant=latent_classifier", "loss.adversarial.enabled=true")


def test_compile_refuses_the_adaptive_weight_that_it_would_get_wrong(train_config):
    with pytest.raises(ConfigError) as error:
        train_config("trainer.compile=true", "loss.adversarial.enabled=true")
    assert error.value.key == "trainer.compile" and "loss.adversarial.adaptive=false" in str(error.value)
    train_config("trainer.compile=true", "loss.adversarial.enabled=true", "loss.adversarial.adaptive=false")


SMALL_UNET = ("backbone=unet", "backbone.channels=[8,16]", "backbone.groups=4", "backbone.heads=2",
              "backbone.hidden=32", "trainer.batch_size=128", "data=color_mnist", *QUICK_EVAL,
              "eval.is_samples=2")  # importance sampling through a U-Net is this test's dearest part
SMALL_CONV = ("backbone=conv", "backbone.channels=[8,16]", "backbone.hidden=64", "trainer.batch_size=128",
              "data=color_mnist", *QUICK_EVAL)
ADVERSARIAL = ("loss.adversarial.enabled=true", "loss.adversarial.start_step=5", "loss.adversarial.channels=8")
SHARP = (*SMALL_UNET, *ADVERSARIAL, "loss.perceptual.enabled=true", "loss.perceptual.weights=none",
         "loss.perceptual.layers=[relu1_2]")


class Judge(torch.nn.Module):
    """A stand-in discriminator: +1 on each of 2 x 2 patches of the real images it is shown first,
    and on the reconstructions shown next -1 (it tells them apart) or +1 (it is fooled)."""

    def __init__(self, fooled: bool):
        super().__init__()
        self.weight, self.fooled, self.calls = torch.nn.Parameter(torch.zeros(())), fooled, 0

    def forward(self, images):
        real = self.calls % 2 == 0
        self.calls += 1
        sign = 1.0 if real or self.fooled else -1.0
        return sign + self.weight * 0 + torch.zeros(len(images), 1, 2, 2)


@pytest.mark.parametrize("fooled, accuracy, loss", [(False, 1.0, 0.0), (True, 0.5, 2.0)])
def test_the_discriminators_accuracy_is_the_share_of_patches_it_judges_right(train_config, fooled, accuracy, loss):
    """Right on every patch: d_acc 1 and a hinge loss of 0 (every logit at its margin); fooled by every
    reconstruction: half its patches right and max(0, 1 + 1) = 2 on each fake one."""
    from vae_lab.image_losses import ImageLosses

    config = train_config(*ADVERSARIAL, "loss.adversarial.kind=hinge")
    losses = ImageLosses(config.loss, (1, 28, 28), torch.device("cpu"))
    losses.discriminator = Judge(fooled)
    losses.optimizer = torch.optim.Adam(losses.discriminator.parameters())
    images = torch.rand(4, 1, 28, 28)
    terms = losses.train_discriminator(torch.zeros(4, 1, 28, 28), images, step=10)
    assert terms["d_acc"].tolist() == [accuracy] * 4
    assert terms["adv_d"].tolist() == [loss] * 4


def test_a_unet_with_both_losses_trains_and_plots_them(train_config, tmp_path):
    metrics = train(train_config(*SHARP, "trainer.epochs=1"), str(tmp_path))
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert {"train/adv_d", "train/adv_g", "train/d_acc", "train/perceptual"} <= set(row)
    assert row["train/perceptual"] > 0
    assert "val/adv_g" not in row and "test/perceptual" not in row, "held-out losses are the VAE's own"
    assert {"test/mse", "test/psnr", "test/ssim"} <= set(metrics)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert {"discriminator", "optimizer"} <= set(last["image_losses"])
    assert_figure_is_not_blank(tmp_path / "figures" / "training_curves.png")


def test_a_resumed_run_continues_the_discriminators_game(train_config, tmp_path, monkeypatch):
    import vae_lab.reporting

    monkeypatch.setattr(vae_lab.reporting, "finish", lambda *args: {})  # the epochs are what is compared

    def epochs(folder: str, *overrides: str) -> list[dict]:
        train(train_config(*SMALL_CONV, *ADVERSARIAL, *EXACT, *overrides), str(tmp_path / folder))
        return [json.loads(line) for line in (tmp_path / folder / "metrics.jsonl").read_text().splitlines()]

    whole = epochs("whole", "trainer.epochs=2")
    epochs("resumed", "trainer.epochs=1")
    resumed = epochs("resumed", "trainer.epochs=2", "trainer.resume=true")
    assert len(resumed) == 2
    for key in ("train/loss", "train/adv_d", "train/adv_g", "train/d_acc", "test/loss"):
        assert resumed[-1][key] == whole[-1][key], key


def test_settings_of_a_loss_that_is_off_do_not_make_a_run_different(train_config):
    from vae_lab.config import as_dict
    from vae_lab.runs import SAME_RUN, differences as config_differences

    def differences(*before: str, now: tuple = ()) -> list[str]:
        return [key for key, _, _ in config_differences(as_dict(train_config(*before)), as_dict(train_config(*now)),
                                                        SAME_RUN)]

    assert differences("loss.adversarial.start_step=5") == []
    assert differences("loss.adversarial.enabled=true", "loss.adversarial.start_step=5",
                       now=("loss.adversarial.enabled=true",)) == ["loss.adversarial.start_step"]
    assert differences("loss=sharp", now=("loss=sharp", "loss.perceptual.weight=2")) == ["loss.perceptual.weight"]


def test_a_fixed_weight_counts_each_term_per_pixel_position_for_grey_and_color(train_config):
    from vae_lab.image_losses import ImageLosses

    config = train_config(*SHARP, "loss.adversarial.weight=0.5", "loss.adversarial.adaptive=false",
                          "loss.perceptual.weight=2").loss
    for channels in (1, 3):
        losses = ImageLosses(config, (channels, 28, 28), torch.device("cpu"))
        terms = {"adv_g": torch.tensor([1.0, -2.0]), "perceptual": torch.tensor([0.25, 0.0])}
        expected = 28 * 28 * (0.5 * terms["adv_g"] + 2 * terms["perceptual"])
        torch.testing.assert_close(losses.objective(terms, torch.zeros(2), [])["loss"], expected)


@pytest.mark.parametrize("model", ["continuous", "both"])
def test_the_adaptive_weight_gives_the_adversarial_gradient_its_share_at_the_output_layer(train_config, digits,
                                                                                           model):
    """At the decoder's output layer, the weighted generator term's gradient has ``weight`` times the
    norm of the likelihood's (reconstruction plus perceptual) gradient (to VQGAN's epsilon), and the
    weight itself passes no gradient: the objective's gradient is the likelihood's plus the weight times the generator's."""
    from vae_lab.data import Batch
    from vae_lab.image_losses import ImageLosses
    from vae_lab.models import build_model

    torch.manual_seed(0)
    config = train_config(*SHARP, f"model={model}", "data=mnist", "loss.adversarial.weight=0.3",
                          "loss.adversarial.start_step=0")
    vae = build_model(config.model, config.backbone, (1, 28, 28))
    losses = ImageLosses(config.loss, (1, 28, 28), torch.device("cpu"))
    images = digits[:16]
    terms, reconstruction = vae.terms_and_reconstruction(Batch(images, torch.zeros(16, dtype=torch.long)))
    likelihood = vae.objective(terms)
    image_terms = losses.generator_terms(reconstruction, images, step=0)
    image = losses.objective(image_terms, likelihood, vae.output_layer_weights())
    output = vae.output_layer_weights()

    def gradient(loss: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss.mean(), output, retain_graph=True)])

    of_likelihood = gradient(likelihood + 28 * 28 * image_terms["perceptual"])  # perceptual weight 1, per pixel position
    of_generator = gradient(image_terms["adv_g"])
    weight = image["adv_weight"][0]
    guarded = of_generator.norm() / (of_generator.norm() + 1e-4)  # VQGAN's epsilon in the denominator
    torch.testing.assert_close((weight * of_generator).norm(), 0.3 * of_likelihood.norm() * guarded)
    torch.testing.assert_close(gradient(likelihood + image["loss"]), of_likelihood + weight * of_generator,
                               rtol=1e-4, atol=1e-3)  # float32 sums of terms in the hundreds


@pytest.mark.parametrize("backbone", ["mlp", "conv", "unet"])
def test_the_output_layer_is_the_one_that_makes_the_logits(train_config, backbone):
    """With the returned weights zeroed, every code decodes to the same image (the output layer's bias):
    nothing after them depends on the code."""
    from vae_lab.models import build_model

    torch.manual_seed(0)
    for model in ("continuous", "both"):
        config = train_config(f"backbone={backbone}", f"model={model}", "backbone.channels=[8,16]",
                              "backbone.groups=4", "backbone.heads=2") if backbone == "unet" else \
            train_config(f"backbone={backbone}", f"model={model}")
        vae = build_model(config.model, config.backbone, (3, 28, 28))
        codes = vae.latent.prior_sample(4, torch.device("cpu"))
        with torch.no_grad():
            assert not torch.allclose(vae.decoder(codes)[0], vae.decoder(codes)[1])
            for weight in vae.output_layer_weights():
                weight.zero_()
            logits = vae.decoder(codes)
        torch.testing.assert_close(logits, logits[:1].expand_as(logits))
