import pytest
import torch

from vae_lab.backbones import Dense, Conv, ConvConfig, SelfAttention, UNet, UNetConfig, output_layer_weights
from vae_lab.config import ConfigError
from vae_lab.data import Batch, ImageSet
from vae_lab.models import MODELS, build_model


SMALL = {"continuous": ["model.latent_dim=7"],
         "discrete": ["model.n_vars=3", "model.n_cats=4"],
         "combined": ["model.latent_dim=7", "model.n_vars=3", "model.n_cats=4"],
         "both": ["model.latent_dim=7", "model.n_vars=3", "model.n_cats=4"],
         "semi": ["model.latent_dim=7"]}
SMALL_BACKBONES = {"mlp": [], "conv": [],
                   "unet": ["backbone.channels=[8,16]", "backbone.groups=4", "backbone.heads=2", "backbone.hidden=32"]}


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("backbone", ["mlp", "conv", "unet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_fits_every_backbone_and_both_datasets(train_config, name, backbone, channels):
    config = train_config(f"model={name}", f"backbone={backbone}", *SMALL[name], *SMALL_BACKBONES[backbone])
    model = build_model(config.model, config.backbone, (channels, 28, 28))
    images = torch.rand(5, channels, 28, 28)
    batch = Batch(images, torch.arange(5), labelled=torch.tensor([True, False, True, False, False]))
    for mode in (model.train, model.eval):
        mode()
        terms = model(batch)
        assert set(model.weights) <= set(terms) and set(model.elbo_terms) <= set(terms)
        assert all(t.shape == (5,) and torch.isfinite(t).all() for t in terms.values())
        assert model.objective(terms).shape == model.nelbo(terms).shape == (5,)
        reconstruction = model.terms_and_reconstruction(batch)[1]
        if config.model.reconstructs_each_image():
            assert reconstruction.shape == images.shape  # what image-space losses compare
        else:
            assert reconstruction is None
    assert model.embed(images).shape == (5, model.spec.code_size)
    assert model.reconstruct(images).shape == images.shape
    samples = model.sample(3)
    assert samples.shape == (3, channels, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    if model.conditional:
        assert model.sample_with_label(torch.tensor([0, 9, 9])).shape == (3, channels, 28, 28)


@pytest.mark.parametrize("name", MODELS.names())
def test_beta_warms_up_over_training_steps_and_held_out_losses_use_it_whole(train_config, name):
    config = train_config(f"model={name}", *SMALL[name], "model.beta=2", "model.beta_warmup_steps=10")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    held_out = model.eval().weights
    kl_terms = {term for term, weight in held_out.items() if weight == 2.0}
    assert kl_terms and kl_terms <= {"kl", "kl_disc"}
    model.train()
    for step, expected in ((0, 0.0), (4, 0.8), (10, 2.0), (25, 2.0)):
        model.step.fill_(step)
        weights = model.weights
        for term, weight in weights.items():
            assert float(weight) == pytest.approx(expected if term in kl_terms else held_out[term]), (step, term)
        model.eval()
        assert model.weights == held_out  # validation compares epochs at the full beta
        model.train()


def test_warmup_and_capacity_control_together_are_refused(train_config):
    with pytest.raises(ConfigError) as error:
        train_config("model=combined", "model.capacity.enabled=true", "trainer.start_at_mean_image=false",
                     "model.beta_warmup_steps=100")
    assert error.value.key == "model.beta_warmup_steps"


def test_capacity_control_with_the_mean_image_start_is_refused(train_config):
    """Capacity control holds the code near 0 nats at first; a decoder that already draws the mean image
    then only learns to ignore the code (docs/findings/jointvae.md)."""
    with pytest.raises(ConfigError) as error:
        train_config("model=combined", "model.capacity.enabled=true")
    assert error.value.key == "trainer.start_at_mean_image"
    assert not train_config("model=combined", "model.capacity.enabled=true",
                            "trainer.start_at_mean_image=false").trainer.start_at_mean_image
    assert train_config("model=combined").trainer.start_at_mean_image  # without capacity control, the default


@pytest.mark.parametrize("name", ["continuous", "both"])
@pytest.mark.parametrize("backbone", ["mlp", "conv", "unet"])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_decoder_started_at_the_mean_image_draws_it(train_config, name, backbone, channels):
    config = train_config(f"model={name}", f"backbone={backbone}", *SMALL[name], *SMALL_BACKBONES[backbone])
    model = build_model(config.model, config.backbone, (channels, 28, 28))
    pixels = torch.randint(0, 256, (50, channels, 28, 28), dtype=torch.uint8)
    pixels[:, :, 0] = 0  # an always-black row, as MNIST's borders
    data = ImageSet(pixels, torch.zeros(50, dtype=torch.long), torch.arange(50))
    mean_image = data.mean_image()
    assert torch.allclose(mean_image, pixels.double().mean(0).div(255).float())

    model.start_at_mean_image(mean_image)
    for weight in model.output_layer_weights():  # what is left is the bias of every pixel
        weight.data.zero_()
    drawn = model.decode(torch.randn(4, model.spec.code_size))
    expected = mean_image.clamp(0.01, 0.99)  # black kept just above 0
    assert torch.allclose(drawn, expected.expand_as(drawn), atol=1e-5)


@pytest.mark.parametrize("channels", [[8], [8, 16], [8, 16, 32], [4, 4, 4, 4]])
@pytest.mark.parametrize("size", [28, 32, 27])
def test_conv_decoder_restores_the_exact_image_size(channels, size):
    conv = Conv(ConvConfig(name="conv", channels=channels, hidden=32))
    encoder, decoder = conv.encoder((3, size, size)), conv.decoder(10, (3, size, size))
    assert encoder(torch.zeros(2, 3, size, size)).shape == (2, 32)
    assert decoder(torch.zeros(2, 10)).shape == (2, 3, size, size)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in decoder.modules())


def test_a_tinted_conv_decoder_draws_the_plain_decoders_shape_times_a_color_the_code_sets():
    def decoder(tint: bool):
        torch.manual_seed(0)  # the same draws: the same trunk
        return Conv(ConvConfig(name="conv", channels=[8, 16], hidden=32, tint=tint)).decoder(10, (3, 28, 28))

    plain, tinted = decoder(False), decoder(True)
    code = torch.randn(4, 10)
    with torch.no_grad():
        color = torch.sigmoid(code @ tinted.tint.weight + tinted.tint.bias)  # [4, 3]
        shape = torch.sigmoid(plain(code))
        assert torch.allclose(torch.sigmoid(tinted(code)), color[:, :, None, None] * shape, atol=1e-6)
        assert color.min() > 0.7  # it starts near the plain decoder (sigmoid(2) = 0.88, give or take the weights)
        tinted.tint.weight.zero_()
        tinted.tint.weight[0, 0] = 60.0  # the code's first coordinate sets the red channel alone
        up, down = code.clone(), code.clone()
        up[:, 0], down[:, 0] = 1.0, -1.0
        assert torch.allclose(torch.sigmoid(tinted(up))[:, 0], torch.sigmoid(plain(up))[:, 0], atol=1e-6)
        assert torch.sigmoid(tinted(down))[:, 0].max() < 1e-20  # red off: logits finite, far below zero
        untouched = torch.sigmoid(torch.tensor(tinted.INITIAL_TINT_LOGIT))  # green and blue keep their starting tint
        assert torch.allclose(torch.sigmoid(tinted(down))[:, 1:], torch.sigmoid(plain(down))[:, 1:] * untouched)
        tinted.pixel_bias.bias.fill_(-40.0)  # a black background stays black, whatever the tint
        assert torch.sigmoid(tinted(up)).max() < 1e-15
        for extreme in (60.0, -60.0):  # probabilities at 0 and 1 still give finite logits
            tinted.pixel_bias.bias.fill_(extreme)
            assert torch.isfinite(tinted(up)).all() and torch.isfinite(tinted(down)).all()
    # The layer adaptive image-loss weights look at is still the trunk's last convolution.
    assert output_layer_weights(tinted) == [tinted.trunk[-1].weight]


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_takes_the_tinted_conv_decoder(train_config, name):
    config = train_config(f"model={name}", "backbone=conv", "backbone.tint=true", "data=color_mnist", *SMALL[name])
    model = build_model(config.model, config.backbone, (3, 28, 28))
    batch = Batch(torch.rand(5, 3, 28, 28), torch.arange(5), labelled=torch.tensor([True, False, True, False, False]))
    for mode in (model.train, model.eval):
        mode()
        assert all(torch.isfinite(t).all() for t in model(batch).values())
    assert model.sample(3).shape == (3, 3, 28, 28)


@pytest.mark.parametrize("channels", [[8], [8, 16], [8, 16, 32]])
@pytest.mark.parametrize("size", [28, 27])
def test_unet_restores_the_exact_image_size_and_attends_at_its_lowest_resolution(channels, size):
    unet = UNet(UNetConfig(name="unet", channels=channels, blocks=2, groups=4, heads=2, hidden=32))
    encoder, decoder = unet.encoder((3, size, size)), unet.decoder(10, (3, size, size))
    assert encoder(torch.zeros(2, 3, size, size)).shape == (2, 32)
    assert decoder(torch.zeros(2, 10)).shape == (2, 3, size, size)
    for trunk in (encoder, decoder):
        attention = [m for m in trunk.modules() if isinstance(m, SelfAttention)]
        assert len(attention) == 1 and attention[0].norm.num_channels == channels[-1]
        assert sum(isinstance(m, torch.nn.GroupNorm) for m in trunk.modules()) >= 4 * len(channels)


def test_self_attention_mixes_positions_and_keeps_the_residual_path():
    torch.manual_seed(0)
    attention = SelfAttention(8, groups=4, heads=2).eval()
    x = torch.randn(1, 8, 3, 3)
    moved = x.clone()
    moved[..., 2, 2] += 5  # one position changes: every other position's output changes too
    changed = (attention(moved) - attention(x)).abs().sum(1)[0]
    assert (changed[:2, :2] > 1e-4).all()
    torch.nn.init.zeros_(attention.attention.out_proj.weight)
    torch.nn.init.zeros_(attention.attention.out_proj.bias)
    assert torch.equal(attention(x), x)


@pytest.mark.parametrize("override, key", [("backbone.groups=3", "backbone.groups"),
                                           ("backbone.heads=3", "backbone.heads")])
def test_unet_settings_that_do_not_divide_the_channels_are_named(train_config, override, key):
    with pytest.raises(ConfigError) as error:
        train_config("backbone=unet", override)
    assert error.value.key == key


def test_default_model_is_the_classic_784_400_20_vae(train_config):
    config = train_config()
    model = build_model(config.model, config.backbone, (1, 28, 28))
    linear = [m for m in model.modules() if isinstance(m, Dense)]
    shapes = sorted((m.in_features, m.out_features) for m in linear)
    assert shapes == sorted([(784, 400), (400, 40), (20, 400), (400, 784)])
    assert sum(p.numel() for p in model.parameters()) == 652_824


def test_an_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match="model.name=nope: expected one of both, combined, continuous"):
        MODELS["nope"]


def test_a_dense_layer_starts_as_nn_linear_and_loads_its_checkpoints():
    torch.manual_seed(3)
    linear = torch.nn.Linear(5, 7)
    torch.manual_seed(3)
    dense = Dense(5, 7)
    assert torch.equal(dense.weight, linear.weight.t()) and torch.equal(dense.bias, linear.bias)
    x = torch.randn(4, 5)
    assert torch.allclose(dense(x), linear(x), atol=1e-6)
    before = torch.nn.Sequential(torch.nn.Linear(5, 7))  # a checkpoint made before Dense: [out, in]
    after = torch.nn.Sequential(Dense(5, 7))
    after.load_state_dict(before.state_dict())
    assert torch.allclose(after(x), before(x), atol=1e-6)
    again = torch.nn.Sequential(Dense(5, 7))  # and Dense's own checkpoints load as they are
    again.load_state_dict(after.state_dict())
    assert torch.equal(again[0].weight, after[0].weight)
