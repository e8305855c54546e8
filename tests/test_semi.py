import math

import pytest
import torch
import torch.nn.functional as F

from vae_lab.config import ConfigError
from vae_lab.data import Batch, check_data, load_splits
from vae_lab.data.splits import balanced_label_mask
from vae_lab.latents import categorical_kl_uniform
from vae_lab.models import build_model


def test_label_subsets_are_balanced_and_fixed_by_the_seed():
    labels = torch.arange(10).repeat(50)[torch.randperm(500, generator=torch.Generator().manual_seed(3))]
    mask = balanced_label_mask(labels, 30, seed=0)
    assert torch.bincount(labels[mask], minlength=10).tolist() == [3] * 10
    assert torch.equal(mask, balanced_label_mask(labels, 30, seed=0))
    assert not torch.equal(mask, balanced_label_mask(labels, 30, seed=1))
    with pytest.raises(ConfigError, match="data.n_labels=600: the training split has only 50 images"):
        balanced_label_mask(labels, 600, seed=0)


def test_n_labels_must_be_a_multiple_of_the_classes(train_config):
    with pytest.raises(ConfigError, match="data.n_labels=15: expected null .* multiple of the 10 classes"):
        check_data(train_config("data.n_labels=15").data)
    check_data(train_config("data.n_labels=20").data)
    with pytest.raises(ConfigError, match="data.n_labels=0: expected null"):
        train_config("data.n_labels=0")


def test_every_training_batch_carries_labelled_images(train_config):
    splits = load_splits(train_config("data.n_labels=20", "data.labelled_per_batch=8").data)
    assert int(splits.train.labelled.sum()) == 20 and splits.val.labelled is None
    batches = list(splits.train.shuffled_batches(100, torch.Generator().manual_seed(0), labelled_extra=8))
    assert all(int(b.labelled.sum()) >= 8 for b in batches)
    assert sum(len(b) for b in batches) == len(splits.train) + 8 * len(batches)
    everything = load_splits(train_config().data).train
    assert everything.labelled.all()  # n_labels=null: every training label may be used


@pytest.fixture
def m2(train_config):
    config = train_config("model=semi", "model.latent_dim=4", "backbone.hidden=[32]", "model.alpha=3",
                          "model.beta=2")
    torch.manual_seed(0)
    return build_model(config.model, config.backbone, (1, 28, 28))


def bound_at_label(model, image, label):
    """recon + kl of one image at one label, by hand."""
    features = model.encoder(image[None])
    y = F.one_hot(torch.tensor([label]), 10).float()
    mean, _ = model.head(torch.cat([features, y], -1)).chunk(2, -1)  # noise off: z = mean
    logits = model.decoder(torch.cat([mean, y], -1))
    recon = F.binary_cross_entropy_with_logits(logits, image[None], reduction="sum")
    params = model.head(torch.cat([features, y], -1))
    mean, logvar = params.chunk(2, -1)
    kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum()
    return recon, kl


def test_m2_unlabelled_bound_equals_its_brute_force_sum_over_classes(m2, monkeypatch):
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # z = posterior mean: comparable
    images = torch.rand(3, 1, 28, 28)
    labels = torch.tensor([4, 1, 7])
    with torch.no_grad():
        terms = m2(Batch(images, labels, labelled=torch.tensor([False, True, False])))
        q = F.softmax(m2.classifier(images), -1)
        for i in (0, 2):  # unlabelled: the bound averaged over q(y|x), plus KL(q(y|x) || p(y))
            per_class = [bound_at_label(m2, images[i], c) for c in range(10)]
            recon = sum(q[i, c] * r for c, (r, _) in enumerate(per_class))
            kl = sum(q[i, c] * k for c, (_, k) in enumerate(per_class))
            kl_y = (q[i] * (q[i] * 10).log()).sum()
            torch.testing.assert_close(terms["recon"][i], recon, rtol=1e-5, atol=1e-3)
            torch.testing.assert_close(terms["kl"][i], kl, rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(terms["kl_y"][i], kl_y, rtol=1e-5, atol=1e-5)
            assert terms["class"][i] == 0
        recon, kl = bound_at_label(m2, images[1], 1)  # labelled: at its own label, -log p(y) = log 10
        torch.testing.assert_close(terms["recon"][1], recon, rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(terms["kl"][1], kl, rtol=1e-5, atol=1e-4)
        assert terms["kl_y"][1].item() == pytest.approx(math.log(10))
        torch.testing.assert_close(terms["class"][1], F.cross_entropy(m2.classifier(images[1:2]), labels[1:2]))
    expected = terms["recon"] + 2 * terms["kl"] + terms["kl_y"] + 3 * terms["class"]
    torch.testing.assert_close(m2.objective(terms), expected)
    torch.testing.assert_close(m2.nelbo(terms), terms["recon"] + terms["kl"] + terms["kl_y"])


def test_m2_gumbel_training_draws_one_relaxed_label_and_keeps_the_exact_kl_y(train_config):
    config = train_config("model=semi", "model.unlabelled=gumbel", "model.latent_dim=4", "backbone.hidden=[32]")
    model = build_model(config.model, config.backbone, (1, 28, 28)).train()
    images, labels = torch.rand(6, 1, 28, 28), torch.arange(6)
    terms = model(Batch(images, labels, labelled=torch.zeros(6, dtype=torch.bool)))
    torch.testing.assert_close(terms["kl_y"], categorical_kl_uniform(model.classifier(images)))
    assert all(torch.isfinite(t).all() for t in terms.values())


def test_class_accuracy_is_measured_against_the_true_labels(m2):
    images = torch.rand(8, 1, 28, 28)
    labels = m2.predict(images)
    labels[:3] = (labels[:3] + 1) % 10  # three wrong
    terms = m2.eval()(Batch(images, labels))
    assert terms["class_acc"].mean().item() == pytest.approx(5 / 8)


def test_latent_classifier_generates_codes_its_classifier_assigns_to_the_label(train_config):
    config = train_config("model=semi", "model.variant=latent_classifier", "model.latent_dim=2",
                          "model.alpha=2")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    with torch.no_grad():  # each digit owns a 36-degree wedge of the plane
        angles = torch.arange(10) * 2 * math.pi / 10
        model.classifier.weight.copy_(5 * torch.stack([angles.cos(), angles.sin()], 0))  # [in, out]
        model.classifier.bias.zero_()
    labels = torch.tensor([0, 3, 3, 9])
    decoded, decode = [], model.decode

    def recording_decode(code):
        decoded.append(code)
        return decode(code)

    model.decode = recording_decode
    images = model.sample_with_label(labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 28, 28)
    assert torch.equal(model.classifier(decoded[0]).argmax(-1), labels)
    terms = model(Batch(torch.rand(4, 1, 28, 28), labels, labelled=torch.tensor([True, False, True, False])))
    assert terms["class"][1] == 0 and terms["class"][3] == 0 and terms["class"][0] > 0
    assert model.objective(terms).shape == (4,)
