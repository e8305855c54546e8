import pytest
import torch

from vae_lab.backbones import Conv, ConvConfig
from vae_lab.config import ConfigError
from vae_lab.data import Batch
from vae_lab.models import MODELS, build_model


SMALL = {"continuous": ["model.latent_dim=7"],
         "discrete": ["model.n_vars=3", "model.n_cats=4"],
         "combined": ["model.latent_dim=7", "model.n_vars=3", "model.n_cats=4"],
         "both": ["model.latent_dim=7", "model.n_vars=3", "model.n_cats=4"],
         "semi": ["model.latent_dim=7"]}


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("backbone", ["mlp", "conv"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_model_fits_every_backbone_and_both_datasets(train_config, name, backbone, channels):
    config = train_config(f"model={name}", f"backbone={backbone}", *SMALL[name])
    model = build_model(config.model, config.backbone, (channels, 28, 28))
    images = torch.rand(5, channels, 28, 28)
    batch = Batch(images, torch.arange(5), labelled=torch.tensor([True, False, True, False, False]))
    for mode in (model.train, model.eval):
        mode()
        terms = model(batch)
        assert set(model.weights) <= set(terms) and set(model.elbo_terms) <= set(terms)
        assert all(t.shape == (5,) and torch.isfinite(t).all() for t in terms.values())
        assert model.objective(terms).shape == model.nelbo(terms).shape == (5,)
    assert model.embed(images).shape == (5, model.spec.code_size)
    assert model.reconstruct(images).shape == images.shape
    samples = model.sample(3)
    assert samples.shape == (3, channels, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    if model.conditional:
        assert model.sample_with_label(torch.tensor([0, 9, 9])).shape == (3, channels, 28, 28)


@pytest.mark.parametrize("channels", [[8], [8, 16], [8, 16, 32], [4, 4, 4, 4]])
@pytest.mark.parametrize("size", [28, 32, 27])
def test_conv_decoder_restores_the_exact_image_size(channels, size):
    conv = Conv(ConvConfig(name="conv", channels=channels, hidden=32))
    encoder, decoder = conv.encoder((3, size, size)), conv.decoder(10, (3, size, size))
    assert encoder(torch.zeros(2, 3, size, size)).shape == (2, 32)
    assert decoder(torch.zeros(2, 10)).shape == (2, 3, size, size)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in decoder.modules())


def test_default_model_is_the_classic_784_400_20_vae(train_config):
    config = train_config()
    model = build_model(config.model, config.backbone, (1, 28, 28))
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    shapes = sorted((m.in_features, m.out_features) for m in linear)
    assert shapes == sorted([(784, 400), (400, 40), (20, 400), (400, 784)])
    assert sum(p.numel() for p in model.parameters()) == 652_824


def test_an_unknown_model_name_is_a_config_error():
    with pytest.raises(ConfigError, match="model.name=nope: expected one of both, combined, continuous"):
        MODELS["nope"]
