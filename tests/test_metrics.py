"""Each metric against an independent computation or a case whose answer is known."""

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_tiny_mnist
from test_discrete import exact_log_likelihood_and_elbo, tiny_discrete_model
from vae_lab.data import ImageSet, load_splits
from vae_lab.evaluate import evaluating, loss_terms
from vae_lab.population import Population
from vae_lab.metrics import (importance_sampled_nll, latent_statistics, probe_accuracies,
                             reconstruction_quality, reference_classifier, sample_quality)
from vae_lab.metrics.reference import cache_path
from vae_lab.models import build_model


def binary_images(n: int, seed: int = 1) -> ImageSet:
    images = torch.bernoulli(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))) * 255
    return ImageSet(images.to(torch.uint8), torch.zeros(n, dtype=torch.long), torch.arange(n))


def test_importance_sampling_converges_to_the_exact_likelihood(train_config):
    model = tiny_discrete_model(train_config)
    data = binary_images(4)
    log_px, elbo = exact_log_likelihood_and_elbo(model, data.batch(torch.arange(4)).images)
    torch.manual_seed(0)
    with evaluating(model):
        estimate = importance_sampled_nll(Population.of([model]), [0], data, n_samples=3000, rows_per_pass=1000)[0]["nll"]
    assert estimate == pytest.approx(-log_px.mean().item(), abs=0.05)
    assert -log_px.mean() < -elbo.mean()  # the bound is not tight here, so the test can tell them apart


def untrained(config):
    torch.manual_seed(0)
    return build_model(config.model, config.backbone, (1, 28, 28))


def mean_nelbo(model, data, repeats: int) -> float:
    """The NELBO averaged over ``repeats`` posterior draws per image."""
    return sum(loss_terms(Population.of([model]), [seed], data, len(data))[0]["nelbo"] for seed in range(repeats)) / repeats


def test_more_importance_samples_never_raise_the_estimate_above_the_nelbo(train_config):
    model, data = untrained(train_config("model.latent_dim=4", "backbone.hidden=[32]")), binary_images(16)
    with evaluating(model):
        torch.manual_seed(1)
        nelbo = mean_nelbo(model, data, repeats=50)
        one = sum(importance_sampled_nll(Population.of([model]), [seed], data, 1, 1000)[0]["nll"] for seed in range(50)) / 50
        many = importance_sampled_nll(Population.of([model]), [0], data, 500, 2000)[0]
    assert one == pytest.approx(nelbo, rel=0.01)  # one sample: the ELBO itself
    assert many["nll"] < nelbo - 1  # an untrained posterior leaves a wide gap that sampling closes
    assert many["bits_per_dim"] == pytest.approx(many["nll"] / (784 * math.log(2)))


@pytest.mark.parametrize("name", ["combined", "both", "semi"])
def test_importance_sampling_works_for_every_latent(train_config, name):
    model = untrained(train_config(f"model={name}", "model.latent_dim=3", "backbone.hidden=[32]",
                                   *(["model.n_vars=2", "model.n_cats=3"] if name != "semi" else [])))
    data = binary_images(8)
    with evaluating(model):
        torch.manual_seed(1)
        nelbo = mean_nelbo(model, data, repeats=20)
        nll = importance_sampled_nll(Population.of([model]), [0], data, 200, 800)[0]["nll"]
    assert math.isfinite(nll) and nll < nelbo


def test_active_units_count_the_dimensions_whose_mean_varies(train_config):
    config = train_config("model.latent_dim=6", "backbone.hidden=[32]")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    with torch.no_grad():  # dimensions 1-3 follow the image strongly; 4-6 ignore it entirely
        model.head.weight[:, :3] *= 10  # Dense weights are [in, out]: a column per output
        model.head.weight[:, 3:6].zero_()
    with evaluating(model):
        stats = latent_statistics(model, binary_images(64), 32)
    assert stats["active_units"] == 3
    assert len(stats["kl_per_dim"]) == 6 and all(v >= 0 for v in stats["kl_per_dim"])
    assert max(stats["unit_activity"][3:]) == pytest.approx(0, abs=1e-10)


def test_code_perplexity_counts_the_categories_in_use(train_config):
    config = train_config("model=discrete", "model.n_vars=2", "model.n_cats=4", "backbone.hidden=[16]")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    with torch.no_grad():  # variable 1 always picks category 3; variable 2 spreads evenly
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0, 0, 50.0, 0, 0, 0, 0, 0]))
    with evaluating(model):
        stats = latent_statistics(model, binary_images(32), 16)
    assert stats["code_perplexity_per_var"] == pytest.approx([1.0, 4.0], abs=1e-3)
    assert stats["kl_per_var"] == pytest.approx([math.log(4), 0.0], abs=1e-3)


class Shifted(torch.nn.Module):
    """A stand-in model whose reconstruction is the image plus a constant."""

    def __init__(self, shift: float):
        super().__init__()
        self.shift = shift

    def reconstruct(self, images):
        return images + self.shift


def test_image_quality_matches_closed_forms():
    grey = ImageSet(torch.full((10, 1, 28, 28), 100, dtype=torch.uint8), torch.zeros(10, dtype=torch.long),
                    torch.arange(10))
    shifted = reconstruction_quality(Shifted(0.1), grey, batch_size=4)
    assert shifted["mse"] == pytest.approx(0.01, rel=1e-4)
    assert shifted["psnr"] == pytest.approx(20.0, rel=1e-4)  # 10 log10(1 / 0.01)
    # Constant images have no variance: SSIM is its luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 100 / 255, 100 / 255 + 0.1, 0.01**2
    assert shifted["ssim"] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)
    same = reconstruction_quality(Shifted(0.0), binary_images(8), batch_size=8)
    assert same["mse"] == 0 and same["ssim"] == pytest.approx(1.0)


class OneHotEmbedding(torch.nn.Module):
    """A stand-in model whose code is the one-hot digit label (found by looking the image up): one
    categorical variable of 10 that is sure of every image's digit."""

    def __init__(self, data: ImageSet):
        from vae_lab.latents import LatentSpec

        super().__init__()
        self.data, self.spec = data, LatentSpec(0, ((1, 10),))

    def embed(self, images):
        return torch.nn.functional.one_hot(self.labels_of(images), 10).float()

    def labels_of(self, images):
        flat = self.data.images.flatten(1).float() / 255
        rows = torch.cdist(images.flatten(1), flat).argmin(1)
        return self.data.labels[rows]


def test_probes_read_a_perfect_code_perfectly(train_config):
    splits = load_splits(train_config("data=color_mnist").data)
    everything = ImageSet(torch.cat([splits.train.images, splits.test.images]),
                          torch.cat([splits.train.labels, splits.test.labels]), torch.arange(1))
    scores = probe_accuracies(OneHotEmbedding(everything), splits.train, splits.test, 500, train_images=600)
    assert scores["probe_acc"] == 1.0 and scores["knn_acc"] == 1.0
    assert 0 <= scores["color_probe_acc"] <= 0.5  # the code holds no color: near chance over 6 bins
    assert scores["cluster_acc"] == 1.0
    digits = torch.bincount(splits.test.labels, minlength=10).double() / len(splits.test)
    assert scores["code_mi"] == pytest.approx(float(-(digits * digits.log()).sum()), rel=1e-6)  # I(x; c) = H(digit)


class Resampler(torch.nn.Module):
    """A stand-in generator whose samples are test images (drawn in order), or noise."""

    conditional = False

    def __init__(self, data: ImageSet, noise: bool = False):
        super().__init__()
        self.data, self.noise, self.next = data, noise, 0

    def sample(self, n, generator=None):
        rows = torch.arange(self.next, self.next + n) % len(self.data)
        self.next += n
        images = self.data.batch(rows).images
        return torch.rand(images.shape, generator=generator) if self.noise else images


def test_sample_metrics_score_real_images_as_real(train_config):
    config = train_config()
    splits = load_splits(config.data)
    reference = reference_classifier(config.data, splits, torch.device("cpu"))
    assert cache_path(config.data, splits.fingerprint["sha256"]).is_file()
    cached = reference_classifier(config.data, splits, torch.device("cpu"))  # loaded, not retrained
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), cached.state_dict().values()))
    with torch.no_grad():
        probabilities = torch.softmax(reference(splits.test.batch(torch.arange(len(splits.test))).images), -1)
        accuracy = (probabilities.argmax(-1) == splits.test.labels).float().mean()
        assert accuracy > 0.6  # 27 steps on the tiny set (98% on ../shared/data's color MNIST); chance is 0.1
        real = sample_quality(Resampler(splits.test), reference, splits.test, len(splits.test), 200, seed=0)
        noise = sample_quality(Resampler(splits.test, noise=True), reference, splits.test, 300, 200, seed=0)
    assert real["fd"] == pytest.approx(0, abs=1e-2)
    share = torch.bincount(probabilities.argmax(-1), minlength=10).float() / len(splits.test)
    share = share[share > 0]
    assert real["class_entropy"] == pytest.approx(-(share * share.log()).sum().item(), rel=1e-5)
    assert real["confidence"] == pytest.approx(probabilities.max(-1).values.mean().item(), rel=1e-4)
    assert noise["fd"] > real["fd"] + 1


def test_the_test_images_features_are_cached_with_the_classifier_and_are_its_own(train_config):
    """Sample quality compares with the test images' features kept in the cache: the classifier's
    own features of them, whether just trained, loaded, or added to a cache that lacked them; the
    scores are those computed from the images."""
    config = train_config()
    splits = load_splits(config.data)
    trained = reference_classifier(config.data, splits, torch.device("cpu"))
    path = cache_path(config.data, splits.fingerprint["sha256"])
    state = torch.load(path)
    with torch.no_grad():
        own = torch.cat([trained.embed(batch.images) for batch in splits.test.batches(7)])
    assert torch.allclose(state["test_features"], own, atol=1e-5)
    del state["test_features"]  # a cache from before the features were kept
    torch.save(state, path)
    loaded = reference_classifier(config.data, splits, torch.device("cpu"))
    assert torch.allclose(loaded.test_features, own, atol=1e-5)
    assert torch.allclose(torch.load(path)["test_features"], own, atol=1e-5)
    with torch.no_grad():
        kept = sample_quality(Resampler(splits.test, noise=True), loaded, splits.test, 300, 200, seed=0)
        loaded.test_features = None
        computed = sample_quality(Resampler(splits.test, noise=True), loaded, splits.test, 300, 200, seed=0)
    assert kept == pytest.approx(computed, rel=1e-5)


def test_the_reference_classifier_is_cached_in_the_users_cache_never_beside_the_data(tmp_path, data_root,
                                                                                     train_config, monkeypatch):
    """The data folder may be shared or read-only: nothing is written there. $VAE_LAB_CACHE wins over
    $XDG_CACHE_HOME; two data folders of one name but other images get a classifier each."""
    import vae_lab.metrics.reference as module

    before = sorted(p.relative_to(data_root) for p in data_root.rglob("*"))
    monkeypatch.delenv("VAE_LAB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = train_config()
    splits = load_splits(config.data)
    monkeypatch.setattr(module, "_train", lambda model, train, test: 0.5)  # the place is tested, not the training
    reference_classifier(config.data, splits, torch.device("cpu"))
    assert [p.relative_to(tmp_path) for p in (tmp_path / "xdg").rglob("*.pt")] == [
        Path("xdg", "vae-lab", "reference", cache_path(config.data, splits.fingerprint["sha256"]).name)]
    monkeypatch.setenv("VAE_LAB_CACHE", str(tmp_path / "mine"))
    assert cache_path(config.data, "x").parent == tmp_path / "mine" / "reference"
    assert sorted(p.relative_to(data_root) for p in data_root.rglob("*")) == before
    other = make_tiny_mnist(tmp_path / "other")
    (other / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(
        (data_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()[:-1] + b"\x01")
    changed = load_splits(train_config(f"data.root={other}").data).fingerprint["sha256"]
    assert cache_path(config.data, changed) != cache_path(config.data, splits.fingerprint["sha256"])


def test_the_reference_classifier_judges_a_large_batch_in_pieces_with_one_passs_numbers():
    """In pieces, and with its kernels channels-last for judging: the numbers of one pass over every
    image by the classifier as it was trained (channels-first), up to float32 rounding."""
    import copy

    from vae_lab.metrics.reference import ReferenceClassifier

    torch.manual_seed(0)
    trained = ReferenceClassifier((3, 28, 28), piece=64).eval()
    judge = copy.deepcopy(trained).for_judging()
    assert judge.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.rand(64 * 3 + 5, 3, 28, 28)
    seen = []
    judge.features.register_forward_hook(lambda _, inputs, __: seen.append(len(inputs[0])))
    with torch.no_grad():
        logits, features = judge(images), judge.embed(images)
        whole = trained.features(images)
    assert seen == [64, 64, 64, 5] * 2
    torch.testing.assert_close(features, whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, trained.classify(whole), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 28, 28), (1, 32, 40)])
def test_ssim_is_torchmetrics_ssim(shape):
    """Against torchmetrics' own: noisy copies, the image itself (1), and flat images (the constants
    alone)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    from vae_lab.metrics.images import ssim

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(64, *shape, generator=generator)
    rebuilt = (target + 0.2 * torch.randn(64, *shape, generator=generator)).clamp(0, 1)
    rebuilt[0], rebuilt[1], target[2], rebuilt[2] = target[0], 0.5, 0.0, 0.0
    expected = structural_similarity_index_measure(rebuilt, target, data_range=1.0, reduction="none")
    torch.testing.assert_close(ssim(rebuilt, target), expected, rtol=0, atol=2e-6)
    assert ssim(rebuilt, target)[0] == pytest.approx(1, abs=1e-6)


def test_the_frechet_distance_of_features_is_the_closed_form():
    """FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), computed here with scipy's matrix root."""
    from scipy.linalg import sqrtm

    from vae_lab.metrics.samples import frechet_distance

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(400, 128, generator=generator, dtype=torch.float64)
    fake = 0.7 * torch.randn(300, 128, generator=generator, dtype=torch.float64) + 0.3
    mu1, mu2 = real.mean(0).numpy(), fake.mean(0).numpy()
    s1, s2 = np.cov(real.numpy(), rowvar=False), np.cov(fake.numpy(), rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    assert frechet_distance(real.float(), fake.float()) == pytest.approx(expected, rel=1e-4)


def test_resized_data_gets_a_reference_classifier_of_its_own(train_config):
    resized = train_config("data.image_size=32").data
    splits = load_splits(resized)
    assert cache_path(resized, splits.fingerprint["sha256"]) != cache_path(train_config().data,
                                                                           splits.fingerprint["sha256"])
    reference = reference_classifier(resized, splits, torch.device("cpu"))
    with torch.no_grad():
        predicted = reference(splits.test.batch(torch.arange(len(splits.test))).images).argmax(-1)
    assert (predicted == splits.test.labels).float().mean() > 0.6



def test_the_reference_classifier_learns_from_every_training_image_whatever_n_train(train_config, monkeypatch,
                                                                                    tmp_path):
    import vae_lab.metrics.reference as module

    few, every = train_config("data.n_train=100").data, train_config().data
    assert load_splits(few).fingerprint == load_splits(every).fingerprint
    assert cache_path(few, "data") == cache_path(every, "data")  # one instrument for both
    seen, train = [], module._train

    def counting_train(model, images, test):
        seen.append(len(images))
        return train(model, images, test)

    monkeypatch.setattr(module, "_train", counting_train)
    monkeypatch.setattr(module, "cache_path", lambda config, data_hash: tmp_path / "reference.pt")
    splits = load_splits(few)
    reference_classifier(few, splits, torch.device("cpu"))
    assert len(splits.train) == 100 and seen == [len(load_splits(every).train)]

def test_the_reference_classifier_is_the_same_instrument_whatever_threads_the_run_has(train_config, monkeypatch,
                                                                                     tmp_path):
    """Its features define samples/fd: trained on another thread count (its gradients summed in another
    order) or from where another run's random numbers stood, it becomes another classifier, and FDs of
    the same samples differ. Each run below has its own threads and its own random state."""
    import vae_lab.metrics.reference as module

    config, before = train_config().data, torch.get_num_threads()
    splits, weights = load_splits(config), []
    try:
        for threads in (2, 1):
            monkeypatch.setattr(module, "cache_path", lambda config, data_hash, threads=threads: tmp_path / f"{threads}.pt")
            torch.set_num_threads(threads)
            torch.manual_seed(threads)
            weights.append(reference_classifier(config, splits, torch.device("cpu")).state_dict())
            assert torch.get_num_threads() == threads  # the run's own count is given back
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


# ---- categorical codes ---------------------------------------------------------------------------


def test_code_information_is_zero_for_a_collapsed_code_and_ln_k_for_an_even_sure_one():
    """Against torch.distributions: H(mean q) - mean H(q), and the two cases the metric exists for."""
    from torch.distributions import Categorical

    from vae_lab.metrics.codes import mutual_information

    collapsed = torch.zeros(100, 10)
    collapsed[:, 3] = 1  # every image on one category: kl_disc reads ln 10, yet the code says nothing
    assert mutual_information(collapsed) == pytest.approx(0, abs=1e-9)
    even = torch.eye(10).repeat(10, 1)
    assert mutual_information(even) == pytest.approx(math.log(10))
    q = torch.softmax(torch.randn(50, 7, generator=torch.Generator().manual_seed(0)) * 3, -1)
    expected = Categorical(probs=q.mean(0)).entropy() - Categorical(probs=q).entropy().mean()
    assert mutual_information(q) == pytest.approx(float(expected), rel=1e-6)


def test_cluster_accuracy_maps_each_category_to_its_majority_digit_on_training_images():
    from vae_lab.latents import LatentSpec
    from vae_lab.metrics.codes import categorical_code_metrics, cluster_accuracy

    generator = torch.Generator().manual_seed(1)
    train_labels, test_labels = torch.randint(0, 10, (400,), generator=generator), torch.randint(0, 10, (200,), generator=generator)
    permutation = torch.randperm(10, generator=generator)  # category permutation[d] means digit d
    one_hot = lambda labels: torch.nn.functional.one_hot(permutation[labels], 10).float()  # noqa: E731
    assert cluster_accuracy(one_hot(train_labels), train_labels, one_hot(test_labels), test_labels) == 1.0
    # Brute force on random codes: the majority digit per category, counted by hand.
    train = torch.rand(400, 10, generator=generator)
    test = torch.rand(200, 10, generator=generator)
    majority = {}
    for category in range(10):
        chosen = train_labels[train.argmax(1) == category].tolist()
        majority[category] = max(range(10), key=lambda d: (chosen.count(d), -d)) if chosen else None
    correct = sum(majority[int(c)] == int(y) for c, y in zip(test.argmax(1), test_labels))
    assert cluster_accuracy(train, train_labels, test, test_labels) == pytest.approx(correct / 200)
    # Two variables beside a 2-D Gaussian part: the best variable counts; MI is their mean.
    spec = LatentSpec(2, ((2, 10),))
    codes = lambda labels, n: torch.cat([torch.zeros(n, 2), one_hot(labels), torch.full((n, 10), 0.1)], 1)  # noqa: E731
    found = categorical_code_metrics(codes(train_labels, 400), train_labels, codes(test_labels, 200), test_labels, spec)
    assert found["cluster_acc"] == 1.0
    assert found["code_mi_per_var"][1] == pytest.approx(0, abs=1e-9)
    assert found["code_mi"] == pytest.approx(sum(found["code_mi_per_var"]) / 2)


SCORER = Path(__file__).resolve().parents[1] / "examples" / "score_released_jointvae.py"


def _scorer():
    """examples/score_released_jointvae.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scorer", SCORER)
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    return scorer


def _released_layout(tmp_path: Path, head_bias: torch.Tensor = None) -> Path:
    """A model file with the released JointVAE's keys and shapes: the scorer's random weights, or a
    categorical head that ignores the image (weight 0) and puts all its mass on the category
    ``head_bias`` picks."""
    state = _scorer().random_state(0)
    if head_bias is not None:
        state["fc_alphas.0.weight"].zero_()
        state["fc_alphas.0.bias"] = head_bias
    path = tmp_path / ("constant.pt" if head_bias is not None else "model.pt")
    torch.save(state, path)
    return path


def train_config_for(data_root: Path, *overrides: str):
    from vae_lab.compose import train_config

    return train_config([f"data.root={data_root}", *overrides])


def _score(model_file: Path, data_root: Path) -> dict[str, float]:
    scored = subprocess.run([sys.executable, str(SCORER), str(model_file), str(data_root)],
                            capture_output=True, text=True, timeout=120)
    assert scored.returncode == 0, scored.stderr
    return {name: float(re.search(rf"{name} ([0-9.]+)", scored.stdout).group(1))
            for name in ("test/cluster_acc", "test/code_mi", "kl_disc")}


def test_the_released_jointvae_scorer_encodes_as_the_released_code_does():
    """The scorer rebuilds the released encoder layer by layer; what the released code itself (commit
    80fa464, its `VAE.encode`) computes for the same weights and images is committed as a fixture
    (tools/released_jointvae_outputs.py made it). A layer left out or misplaced, a ReLU dropped, a
    head read from the wrong key: the probabilities and the Gaussian parameters differ. The same
    encoder reads the paper's own model file as 88.73% (docs/findings/jointvae.md)."""
    import json

    folder = Path(__file__).resolve().parents[1]
    scorer = _scorer()
    fixture = json.loads((folder / "tests" / "fixtures" / "released_jointvae_outputs.json").read_text())
    assert fixture["commit"] == scorer.RELEASED_COMMIT
    images = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    state = scorer.random_state(0)
    with torch.no_grad():
        probabilities = scorer.released_encoder(state)(images)
        mean, log_var = scorer.released_gaussian(state)(images)
    for ours, theirs in ((probabilities, "probabilities"), (mean, "mean"), (log_var, "log_var")):
        assert ours == pytest.approx(torch.tensor(fixture[theirs]), abs=1e-5), theirs
    assert probabilities.max(1).values.min() < 0.9  # no saturated head: every layer shows in the numbers


def test_the_released_jointvae_scorer_gives_a_constant_code_the_commonest_digits_share(data_root, tmp_path):
    """A code that puts every image on category 3 reads every test image as the digit most training
    images have: its accuracy is that digit's share of the test set, its information 0, its KL ln 10."""
    scored = _score(_released_layout(tmp_path, torch.eye(10)[3] * 50), data_root)
    splits = load_splits(train_config_for(data_root, "data.image_size=32").data)
    commonest = int(torch.bincount(splits.train.labels).argmax())
    share = float((splits.test.labels == commonest).float().mean())
    assert scored["test/cluster_acc"] == pytest.approx(share, abs=1e-4)
    assert scored["test/code_mi"] == pytest.approx(0, abs=1e-3)
    assert scored["kl_disc"] == pytest.approx(math.log(10), abs=1e-3)


def test_the_released_jointvae_scorer_reads_a_model_file_in_the_papers_layout(data_root, tmp_path):
    """The scorer's accuracy for a random encoder in the paper's layout, against a count by hand: each
    category read as its commonest training digit, then scored on the test images."""
    model_file = _released_layout(tmp_path)
    scored = _score(model_file, data_root)
    encoder = _scorer().released_encoder(torch.load(model_file, weights_only=False))
    splits = load_splits(train_config_for(data_root, "data.image_size=32").data)
    with torch.no_grad():
        train, test = (torch.cat([encoder(b.images) for b in split.batches(500)]).argmax(1).numpy()
                       for split in (splits.train, splits.test))
    train_labels, test_labels = splits.train.labels.numpy(), splits.test.labels.numpy()
    digit_of = {c: np.bincount(train_labels[train == c], minlength=10).argmax() for c in set(train)}
    expected = np.mean([digit_of.get(c, -1) == label for c, label in zip(test, test_labels)])
    assert scored["test/cluster_acc"] == pytest.approx(expected, abs=1e-4)


def test_the_released_jointvae_scorer_adds_its_numbers_to_a_summary(data_root, tmp_path):
    """The Gaussian part's KL against torch.distributions on the same encoder, and the numbers a
    summary.csv row gets (read back as a sweep's summary is), an earlier row of the name replaced."""
    from torch.distributions import Normal, kl_divergence

    from vae_lab.summary import read_summary_csv

    model_file = _released_layout(tmp_path)
    summary = tmp_path / "released" / "summary.csv"
    for _ in range(2):
        scored = subprocess.run([sys.executable, str(SCORER), str(model_file), str(data_root), "--summary",
                                 str(summary), "--run", "released-0", "--seed", "0"],
                                capture_output=True, text=True, timeout=120)
        assert scored.returncode == 0, scored.stderr
    [row] = read_summary_csv(summary)
    assert (row.name, row.status, row.overrides) == ("released-0", "complete", {"seed": "0"})
    scorer = _scorer()
    state = torch.load(model_file, weights_only=False)
    features = nn.Sequential(*scorer.released_encoder(state)[:3])
    splits = load_splits(train_config_for(data_root, "data.image_size=32").data)
    with torch.no_grad():
        hidden = torch.cat([features(b.images) for b in splits.test.batches(1000)])
        mean = hidden @ state["fc_mean.weight"].T + state["fc_mean.bias"]
        std = (0.5 * (hidden @ state["fc_log_var.weight"].T + state["fc_log_var.bias"])).exp()
    expected = kl_divergence(Normal(mean, std), Normal(0.0, 1.0)).sum(1).mean()
    assert row.metrics["test/kl"] == pytest.approx(float(expected), rel=1e-4)
    assert row.metrics["test/cluster_acc"] == pytest.approx(_score(model_file, data_root)["test/cluster_acc"], abs=1e-4)
    assert row.rate == pytest.approx(row.metrics["test/kl"] + row.metrics["test/kl_disc"])


class Whitened(Resampler):
    """Test images with their color mixed toward grey by ``whiteness`` (1: every stroke grey)."""

    def __init__(self, data: ImageSet, whiteness: float):
        super().__init__(data)
        self.whiteness = whiteness

    def sample(self, n, generator=None):
        images = super().sample(n, generator)
        grey = images.mean(-3, keepdim=True).expand_as(images)
        return (1 - self.whiteness) * images + self.whiteness * grey


def test_stroke_chroma_is_one_for_the_data_and_falls_as_strokes_whiten(train_config):
    """Chroma (max - min of a stroke's mean color) is linear in a mix with grey, so a quarter toward
    grey keeps three quarters of it; grey strokes have none."""
    config = train_config("data=color_mnist", "data.hue_bins=6")
    splits = load_splits(config.data)
    reference = reference_classifier(config.data, splits, torch.device("cpu"))
    with torch.no_grad():
        chroma = {w: sample_quality(Whitened(splits.test, w), reference, splits.test, len(splits.test), 200, 0)
                  ["stroke_chroma"] for w in (0.0, 0.25, 1.0)}
    assert chroma[0.0] == pytest.approx(1, rel=1e-5)
    assert chroma[0.25] == pytest.approx(0.75, rel=1e-3)
    assert chroma[1.0] == pytest.approx(0, abs=1e-6)
    plain = train_config()  # grey MNIST: no colors to measure
    plain_splits = load_splits(plain.data)
    assert "stroke_chroma" not in sample_quality(Resampler(plain_splits.test), reference_classifier(
        plain.data, plain_splits, torch.device("cpu")), plain_splits.test, 100, 100, 0)
