"""The categorical latent and the models built on it, against independent computations:
torch.distributions, closed forms, and exact enumeration of every code of a tiny model."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Categorical, kl_divergence

from vae_lab.backbones import logit_of_mean_image
from vae_lab.data import Batch
from vae_lab.latents import (CategoricalLatent, GaussianLatent, JointLatent, TemperatureSchedule,
                             categorical_kl_uniform)
from vae_lab.models import build_model

CONSTANT = TemperatureSchedule(initial=1.0, minimum=1.0, rate=0.0)


def test_categorical_kl_matches_torch_distributions():
    logits = torch.randn(32, 6, 25, generator=torch.Generator().manual_seed(0)) * 3
    uniform = Categorical(logits=torch.zeros(25))
    expected = kl_divergence(Categorical(logits=logits), uniform)
    torch.testing.assert_close(categorical_kl_uniform(logits), expected)
    latent = CategoricalLatent(6, 25, CONSTANT)
    torch.testing.assert_close(latent(logits.flatten(1)).kl["kl_disc"], expected.sum(-1))


def test_categorical_kl_is_zero_for_uniform_and_log_k_for_certain_posteriors():
    assert categorical_kl_uniform(torch.zeros(3, 7)).abs().max() < 1e-6
    certain = torch.full((7,), -1e4)
    certain[2] = 1e4
    assert categorical_kl_uniform(certain).item() == pytest.approx(math.log(7), abs=1e-5)


def test_relaxed_samples_sum_to_one_and_hard_ones_are_one_hot():
    logits = torch.randn(64, 18)
    relaxed = CategoricalLatent(3, 6, CONSTANT).train()(logits).code.view(64, 3, 6)
    torch.testing.assert_close(relaxed.sum(-1), torch.ones(64, 3))
    assert ((relaxed > 0) & (relaxed < 1)).any()  # really relaxed
    for latent in (CategoricalLatent(3, 6, CONSTANT, hard=True).train(), CategoricalLatent(3, 6, CONSTANT).eval()):
        code = latent(logits).code.view(64, 3, 6)
        assert set(code.unique().tolist()) == {0.0, 1.0}
        torch.testing.assert_close(code.sum(-1), torch.ones(64, 3))


def test_straight_through_samples_pass_relaxed_gradients():
    logits = torch.randn(8, 12, requires_grad=True)
    code = CategoricalLatent(2, 6, CONSTANT, hard=True).train()(logits).code
    (code * torch.randn(8, 12)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_evaluation_draws_categories_with_the_posterior_probabilities():
    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5]])
    latent = CategoricalLatent(1, 4, CONSTANT).eval()
    draws = latent(logits.repeat(40_000, 1)).code.mean(0)
    torch.testing.assert_close(draws, F.softmax(logits[0], -1), atol=0.01, rtol=0)


def test_prior_samples_are_uniform_one_hot_codes():
    codes = CategoricalLatent(2, 5, CONSTANT).prior_sample(20_000, torch.device("cpu")).view(-1, 2, 5)
    torch.testing.assert_close(codes.sum(-1), torch.ones(20_000, 2))
    torch.testing.assert_close(codes.mean(0), torch.full((2, 5), 0.2), atol=0.015, rtol=0)


@pytest.mark.parametrize("step", [0, 1, 1000, 20_000, 10**6])
def test_temperature_schedule_gives_the_configured_values(step):
    schedule = TemperatureSchedule(initial=2.0, minimum=0.5, rate=1e-4)
    assert schedule(torch.tensor(step)).item() == pytest.approx(max(0.5, 2.0 * math.exp(-1e-4 * step)), rel=1e-6)


def test_the_configured_schedule_reaches_the_latent_and_follows_the_steps(train_config):
    config = train_config("model=discrete", "model.temperature=2.0", "model.temperature_min=0.3",
                          "model.anneal_rate=0.01")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    temperatures = []
    for step in (0, 50, 1000):
        model.step.fill_(step)
        temperatures.append(model.latent.temperature(model.step).item())
    assert temperatures == pytest.approx([2.0, 2.0 * math.exp(-0.5), 0.3], rel=1e-6)


def test_a_schedule_that_could_never_change_is_refused(train_config):
    from vae_lab.config import ConfigError

    with pytest.raises(ConfigError, match="model.temperature_min=1.0: must be below temperature"):
        train_config("model=discrete", "model.temperature=1.0", "model.temperature_min=1.0")


def test_joint_latent_concatenates_codes_and_keeps_each_kl():
    joint = JointLatent(GaussianLatent(3), CategoricalLatent(2, 4, CONSTANT))
    assert (joint.param_size, joint.code_size) == (6 + 8, 3 + 8)
    assert joint.spec.continuous == 3 and joint.spec.discrete == ((2, 4),)
    params = torch.randn(5, 14)
    sample = joint.eval()(params)
    assert sample.code.shape == (5, 11) and set(sample.kl) == {"kl", "kl_disc"}
    torch.testing.assert_close(sample.kl["kl_disc"], categorical_kl_uniform(params[:, 6:].view(5, 2, 4)).sum(-1))
    with pytest.raises(ValueError, match="continuous parts must come before"):
        JointLatent(CategoricalLatent(2, 4, CONSTANT), GaussianLatent(3))


def tiny_discrete_model(train_config):
    config = train_config("model=discrete", "model.n_vars=2", "model.n_cats=3", "backbone.hidden=[16]")
    torch.manual_seed(0)
    return build_model(config.model, config.backbone, (1, 28, 28)).eval()


def exact_log_likelihood_and_elbo(model, images):
    """log p(x) = logsumexp_z log p(x|z) + log p(z) and the ELBO, both by enumerating all K^N codes."""
    n_vars, n_cats = model.latent.n_vars, model.latent.n_cats
    codes = torch.tensor(list(itertools.product(range(n_cats), repeat=n_vars)))
    one_hot = F.one_hot(codes, n_cats).float().flatten(1)  # [K^N, N*K]
    with torch.no_grad():
        log_px_given_z = torch.stack([Bernoulli(logits=model.decoder(one_hot)).log_prob(x.expand(len(codes), -1, -1, -1)
                                                                                    ).flatten(1).sum(1)
                                      for x in images])  # [B, K^N]
        log_prior = -n_vars * math.log(n_cats)
        log_q_vars = F.log_softmax(model.latent.logits(model.encode(images)), -1)  # [B, N, K]
        log_q = sum(log_q_vars[:, v, codes[:, v]] for v in range(n_vars))  # [B, K^N]
    log_px = torch.logsumexp(log_px_given_z + log_prior, dim=1)
    elbo = (log_q.exp() * (log_px_given_z + log_prior - log_q)).sum(1)
    return log_px, elbo


def test_exact_log_likelihood_bounds_the_elbo_and_the_models_nelbo_estimates_it(train_config):
    model = tiny_discrete_model(train_config)
    images = torch.bernoulli(torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    log_px, elbo = exact_log_likelihood_and_elbo(model, images)
    assert (log_px >= elbo - 1e-3).all()
    # In evaluation the model draws exact one-hot codes: its nelbo is an unbiased estimate of -ELBO.
    torch.manual_seed(2)
    with torch.no_grad():
        many = images.repeat_interleave(4000, 0)
        nelbo = model.nelbo(model(Batch(many, torch.zeros(len(many), dtype=torch.long)))).view(4, 4000)
    standard_error = nelbo.std(1) / math.sqrt(4000)
    assert ((nelbo.mean(1) + elbo).abs() < 4 * standard_error + 1e-3).all()


def test_discrete_model_yields_the_most_likely_category_of_each_variable(train_config):
    model = tiny_discrete_model(train_config)
    images = torch.rand(5, 1, 28, 28)
    expected = model.latent.logits(model.encode(images)).argmax(-1)
    assert torch.equal(model.most_likely_categories(images), expected) and expected.shape == (5, 2)


def test_the_mean_of_two_decoder_images_is_taken_in_logit_space_exactly():
    a, b = torch.randn(3, 1, 28, 28) * 5, torch.randn(3, 1, 28, 28) * 5
    torch.testing.assert_close(torch.sigmoid(logit_of_mean_image([a, b])),
                               (torch.sigmoid(a) + torch.sigmoid(b)) / 2)


def test_both_trains_on_the_sum_of_its_two_vaes_and_reports_the_mean_image(train_config):
    config = train_config("model=both", "model.n_vars=2", "model.n_cats=3", "model.beta=2")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    images = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    terms = model(Batch(images, torch.zeros(4, dtype=torch.long)))
    torch.testing.assert_close(model.objective(terms), terms["recon_cont"] + terms["recon_disc"]
                               + 2 * (terms["kl"] + terms["kl_disc"]))
    torch.testing.assert_close(model.nelbo(terms), terms["recon"] + terms["kl"] + terms["kl_disc"])
    # recon is the cross-entropy to the mean of the two decoders' images
    torch.manual_seed(0)
    code = model.draw(images).code
    first, second = model.decoder.each(code)
    mean = (torch.sigmoid(first) + torch.sigmoid(second)) / 2
    expected = -(images * mean.log() + (1 - images) * (1 - mean).log()).flatten(1).sum(1)
    torch.testing.assert_close(terms["recon"], expected, rtol=1e-4, atol=1e-3)


def test_combined_capacity_objective_follows_jointvae(train_config):
    config = train_config("model=combined", "model.n_vars=2", "model.n_cats=3", "model.capacity.enabled=true",
                          "trainer.start_at_mean_image=false", "model.capacity.gamma=7", "model.capacity.continuous_max=4",
                          "model.capacity.discrete_max=4", "model.capacity.steps=100")
    model = build_model(config.model, config.backbone, (1, 28, 28))
    terms = {"recon": torch.tensor([10.0, 20.0]), "kl": torch.tensor([1.0, 3.0]), "kl_disc": torch.tensor([0.5, 0.5])}
    most_disc = 2 * math.log(3)  # what two variables of 3 categories can hold, 2.20 nats
    # Both targets rise at 4 nats per 100 steps; the categorical one stops at most_disc (JointVAE's
    # trainer does the same), so at step 75 it is full while the Gaussian one still rises.
    for step, continuous_target, discrete_target in [(25, 1.0, 1.0), (75, 3.0, most_disc)]:
        model.step.fill_(step)
        expected = terms["recon"] + 7 * (abs(2.0 - continuous_target) + abs(0.5 - discrete_target))
        torch.testing.assert_close(model.objective(terms), expected)
    # Held out (eval mode) the objective is measured against the final targets at any step, so that
    # validation loss compares epochs alike and best.pt is not an early epoch with a low target.
    model.step.fill_(25)
    model.eval()
    final = terms["recon"] + 7 * (abs(2.0 - 4.0) + abs(0.5 - most_disc))
    torch.testing.assert_close(model.objective(terms), final)


def test_combined_encoders_are_shared_or_separate_as_configured(train_config):
    def encoder_parameters(share):
        config = train_config("model=combined", f"model.share_encoder={share}")
        model = build_model(config.model, config.backbone, (1, 28, 28))
        return sum(p.numel() for name, p in model.named_parameters() if name.startswith(("encoder", "head")))

    # The separate variant has a second 784-400 trunk.
    assert encoder_parameters(False) - encoder_parameters(True) == 784 * 400 + 400
