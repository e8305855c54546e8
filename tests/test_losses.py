"""Every loss term against an independent computation: torch.distributions, closed forms in float64
NumPy, and Monte Carlo estimates."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lab.data import Batch
from vae_lab.latents import GaussianLatent, gaussian_kl
from vae_lab.losses import bernoulli_nll, gaussian_nll, reconstruction_nll


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


def test_bernoulli_nll_matches_bernoulli_log_prob_on_binary_pixels(rng):
    logits = torch.randn(5, 1, 28, 28, generator=rng) * 3
    pixels = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3), generator=rng)
    expected = -Bernoulli(logits=logits).log_prob(pixels).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, pixels), expected)


def test_bernoulli_nll_is_cross_entropy_to_grey_values(rng):
    """Grey targets: -[x log p + (1 - x) log(1 - p)] summed over pixels, in float64 NumPy."""
    logits = torch.randn(4, 3, 28, 28, generator=rng) * 4
    grey = torch.rand(4, 3, 28, 28, generator=rng)
    p = 1 / (1 + np.exp(-logits.double().numpy()))
    x = grey.double().numpy()
    expected = -(x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(4, -1).sum(1)
    np.testing.assert_allclose(bernoulli_nll(logits, grey).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("grad", [False, True], ids=["evaluating", "training"])
def test_softplus_is_log1p_exp_in_float64_with_and_without_gradients(grad):
    """Both ways of computing it: over logits from -100 to 100 (where e^l overflows float32 and
    log(sigmoid) would round to 0 if taken naively), and its gradient is sigmoid(l), at 0 too."""
    from vae_lab.losses import softplus

    logits = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor([0.0, 1e-8, -1e-8])]).requires_grad_(grad)
    expected = np.logaddexp(0, logits.detach().double().numpy())
    with torch.set_grad_enabled(grad):
        found = softplus(logits)
    np.testing.assert_allclose(found.detach().double().numpy(), expected, rtol=2e-7, atol=1e-7)
    if grad:
        found.sum().backward()
        torch.testing.assert_close(logits.grad, torch.sigmoid(logits.detach()))


def test_softplus_trains_with_f_softplus_inside_torch_func_too():
    """Stacked training takes gradients with torch.func.grad, where no tensor says it requires one: the
    loss must be the same function there as in a model trained alone (the same bits), and evaluation
    under no_grad takes the fast formula."""
    import torch.nn.functional as F

    from vae_lab import losses

    logits = torch.randn(64, generator=torch.Generator().manual_seed(0)) * 4
    seen = []
    real = F.softplus
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(losses.F, "softplus", lambda x: seen.append("F") or real(x))
        grad = torch.func.grad(lambda l: losses.softplus(l).sum())(logits)
        with torch.no_grad():
            losses.softplus(logits)
    torch.testing.assert_close(grad, torch.sigmoid(logits))
    assert seen == ["F"]


def test_bernoulli_nll_sums_pixels_and_keeps_images_apart(rng):
    logits = torch.randn(3, 1, 28, 28, generator=rng)
    pixels = torch.rand(3, 1, 28, 28, generator=rng)
    per_image = bernoulli_nll(logits, pixels)
    assert per_image.shape == (3,)
    torch.testing.assert_close(per_image[1], bernoulli_nll(logits[1:2], pixels[1:2])[0])
    assert per_image.min() > 28 * 28 * 0.3  # a sum over 784 pixels, not a mean


@pytest.mark.parametrize("std", [0.1, 1.0])
def test_gaussian_nll_matches_normal_log_prob(rng, std):
    logits = torch.randn(4, 3, 28, 28, generator=rng)
    images = torch.rand(4, 3, 28, 28, generator=rng)
    expected = -Normal(torch.sigmoid(logits), std).log_prob(images).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(logits, images, std), expected)
    torch.testing.assert_close(reconstruction_nll("gaussian", logits, images, std), expected)


def test_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="likelihood"):
        reconstruction_nll("poisson", torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 1.0)


def test_gaussian_kl_matches_torch_distributions(rng):
    mean = torch.randn(64, 20, generator=rng) * 2
    logvar = torch.randn(64, 20, generator=rng)
    posterior = Normal(mean, torch.exp(0.5 * logvar))
    expected = kl_divergence(posterior, Normal(torch.zeros(()), torch.ones(())))
    torch.testing.assert_close(gaussian_kl(mean, logvar), expected)


def test_gaussian_latent_kl_is_summed_over_dimensions_and_zero_at_the_prior(rng):
    latent = GaussianLatent(dim=6)
    params = torch.randn(8, 12, generator=rng)
    sample = latent(params)
    mean, logvar = params.chunk(2, -1)
    torch.testing.assert_close(sample.kl["kl"], gaussian_kl(mean, logvar).sum(-1))
    at_prior = latent(torch.zeros(3, 12))  # mean 0, log-variance 0: the posterior is the prior
    torch.testing.assert_close(at_prior.kl["kl"], torch.zeros(3))


def test_gaussian_kl_agrees_with_a_monte_carlo_estimate():
    """KL = E_q[log q(z) - log p(z)], estimated from the latent's own reparameterized samples."""
    torch.manual_seed(1)
    latent = GaussianLatent(dim=3)
    params = torch.tensor([[0.5, -1.0, 2.0, 0.3, -0.7, 0.0]]).repeat(200_000, 1)
    z = latent(params).code
    mean, logvar = params.chunk(2, -1)
    q, p = Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
    estimate = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    exact = gaussian_kl(mean[:1], logvar[:1]).sum()
    assert abs(estimate - exact) < 0.02 * exact + 0.01


def test_reparameterized_samples_have_the_posterior_moments():
    torch.manual_seed(2)
    latent = GaussianLatent(dim=2)
    params = torch.tensor([[1.5, -2.0, math.log(0.25), math.log(4.0)]]).repeat(100_000, 1)
    z = latent(params).code
    torch.testing.assert_close(z.mean(0), torch.tensor([1.5, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 2.0]), atol=0.02, rtol=0)


def test_model_terms_objective_and_nelbo_follow_the_convention(train_config):
    """recon and kl rebuilt by hand from the model's parts; objective = recon + beta kl; nelbo = recon + kl."""
    from vae_lab.models import build_model

    config = train_config("model.beta=4", "model.latent_dim=5")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    images = torch.rand(6, 1, 28, 28)
    torch.manual_seed(3)
    terms = model(Batch(images, torch.zeros(6, dtype=torch.long)))

    torch.manual_seed(3)  # the same posterior sample, by hand
    mean, logvar = model.encode(images).chunk(2, -1)
    z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
    recon = -Bernoulli(logits=model.decoder(z), validate_args=False).log_prob(images).flatten(1).sum(1)
    kl = kl_divergence(Normal(mean, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)

    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["kl"], kl)
    torch.testing.assert_close(model.objective(terms), recon + 4 * kl)
    torch.testing.assert_close(model.nelbo(terms), recon + kl)
