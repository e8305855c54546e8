"""Latent families: each maps encoder outputs to a code for the decoder, with its KL to the prior.

A latent reads a flat parameter vector of ``param_size`` per image (the encoder head's output), draws
a reparameterized code of ``code_size`` and returns its KL terms by name, in nats per image summed
over dimensions and variables. ``mean_code`` is the deterministic code used for figures and probes,
``prior_sample`` draws codes from the prior for generation, and ``spec`` describes the code as data:
continuous dimensions first, then each categorical variable's one-hot block.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


@dataclass
class LatentSample:
    code: torch.Tensor  # [B, code_size], what the decoder reads
    kl: dict[str, torch.Tensor]  # per-image KL terms by name


@dataclass(frozen=True)
class LatentSpec:
    """A code's layout: ``continuous`` Gaussian dimensions, then categorical variables, each given as
    (n_vars, n_cats) and laid out as n_vars one-hot blocks of n_cats."""

    continuous: int = 0
    discrete: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    @property
    def code_size(self) -> int:
        return self.continuous + sum(n * k for n, k in self.discrete)

    @property
    def continuous_slice(self) -> slice:
        return slice(0, self.continuous)

    @property
    def discrete_slice(self) -> slice:
        return slice(self.continuous, self.code_size)

    def __add__(self, other: "LatentSpec") -> "LatentSpec":
        return LatentSpec(self.continuous + other.continuous, self.discrete + other.discrete)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) for each dimension, in closed form."""
    return 0.5 * (mean.square() + logvar.exp() - 1 - logvar)


def categorical_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(softmax(logits)) || uniform) over the last axis: sum_k q_k log(K q_k)."""
    log_q = F.log_softmax(logits.float(), dim=-1)
    return (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(-1)


def _randn(*shape: int, device: torch.device, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Standard normal draws made where the generator lives (a CPU generator gives the same draws on
    every machine), then moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randn(*shape, device=where, generator=generator).to(device)


def standard_gumbel(*shape: int, device: torch.device, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Standard Gumbel draws, -log E with E ~ Exp(1), as torch.nn.functional.gumbel_softmax makes them."""
    return -torch.empty(*shape, device=device).exponential_(generator=generator).log()


def relaxed_one_hot(logits: torch.Tensor, gumbels: torch.Tensor, tau: torch.Tensor | float,
                    hard: bool) -> torch.Tensor:
    """Gumbel-softmax (Jang et al. 2017) from given Gumbel noise: softmax((logits + g) / tau); with
    ``hard``, the one-hot argmax forward and the relaxed gradient backward (straight-through).
    F.gumbel_softmax computes the same but draws its own noise."""
    soft = ((logits + gumbels) / tau).softmax(-1)
    if not hard:
        return soft
    return F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype) - soft.detach() + soft


class Latent(nn.Module):
    """What every latent family offers. Randomness is explicit: ``noise`` (``noise_size`` draws per
    image, laid out as the code, from ``draw_noise``) may be given to ``forward`` and
    ``posterior_sample``; without it they draw their own. A population of stacked models gives each
    member the draws of its own generator (vae_lab/population.py)."""

    param_size: int
    code_size: int
    spec: LatentSpec

    @property
    def noise_size(self) -> int:
        return self.code_size

    def draw_noise(self, shape: tuple[int, ...], device: torch.device,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
        raise NotImplementedError


class GaussianLatent(Latent):
    """Diagonal Gaussian posterior against a standard normal prior; reparameterized samples.

    ``active`` marks the dimensions that exist: all of them, except in a model padded to a larger
    latent inside a stacked population, whose extra dimensions carry no code, no KL and no
    likelihood term, and so get no gradient."""

    def __init__(self, dim: int, kl_name: str = "kl"):
        super().__init__()
        self.dim, self.kl_name = dim, kl_name
        self.param_size, self.code_size = 2 * dim, dim
        self.spec = LatentSpec(continuous=dim)
        self.register_buffer("active", torch.ones(dim), persistent=False)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = params.float().chunk(2, dim=-1)
        return mean, logvar

    def draw_noise(self, shape: tuple[int, ...], device: torch.device,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.randn(*shape, self.dim, device=device, generator=generator)

    def forward(self, params: torch.Tensor, step: Optional[torch.Tensor] = None,
                noise: Optional[torch.Tensor] = None) -> LatentSample:
        mean, logvar = self.split(params)
        noise = torch.randn_like(mean) if noise is None else noise
        code = (mean + noise * torch.exp(0.5 * logvar)) * self.active
        return LatentSample(code, {self.kl_name: (gaussian_kl(mean, logvar) * self.active).sum(-1)})

    def mean_code(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0] * self.active

    def split_params(self, params: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
        return [(self, params)]

    def kl_details(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image KL of each dimension, [B, dim]."""
        return {"kl_per_dim": gaussian_kl(*self.split(params)) * self.active}

    def posterior_sample(self, params: torch.Tensor, n: int,
                         noise: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact draws per image, [n, ..., dim], and their log q(z|x), [n, ...]."""
        mean, logvar = self.split(params)
        noise = torch.randn(n, *mean.shape, device=mean.device) if noise is None else noise
        codes = (mean + noise * torch.exp(0.5 * logvar)) * self.active
        log_q = -0.5 * ((noise.square() + logvar + LOG_2PI) * self.active).sum(-1)
        return codes, log_q

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((codes.square() + LOG_2PI) * self.active).sum(-1)

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return _randn(n, self.dim, device=device, generator=generator) * self.active


@dataclass(frozen=True)
class TemperatureSchedule:
    """Gumbel-softmax temperature at a training step: max(minimum, initial * exp(-rate * step))."""

    initial: float
    minimum: float
    rate: float

    def __call__(self, step: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.initial * torch.exp(-self.rate * step.float()), min=self.minimum)


class CategoricalLatent(Latent):
    """``n_vars`` independent categorical variables of ``n_cats`` categories, uniform prior.

    Training draws relaxed one-hot codes (Gumbel-softmax at the scheduled temperature; with ``hard``,
    exact one-hot codes forward and relaxed gradients backward, the straight-through estimator).
    Evaluation draws exact one-hot codes, so held-out losses are the discrete model's true ELBO. The
    schedule is kept in buffers, so that stacked models may each have their own.
    """

    def __init__(self, n_vars: int, n_cats: int, temperature: TemperatureSchedule, hard: bool = False,
                 kl_name: str = "kl_disc"):
        super().__init__()
        self.n_vars, self.n_cats, self.kl_name = n_vars, n_cats, kl_name
        self.hard = hard
        self.param_size = self.code_size = n_vars * n_cats
        self.spec = LatentSpec(discrete=((n_vars, n_cats),))
        for name, value in (("initial", temperature.initial), ("minimum", temperature.minimum),
                            ("rate", temperature.rate)):
            self.register_buffer(f"temperature_{name}", torch.tensor(float(value)), persistent=False)

    def temperature(self, step: torch.Tensor) -> torch.Tensor:
        """max(minimum, initial * exp(-rate * step))."""
        return torch.maximum(self.temperature_initial * torch.exp(-self.temperature_rate * step.float()),
                             self.temperature_minimum)

    def logits(self, params: torch.Tensor) -> torch.Tensor:
        """[B, n_vars, n_cats] unnormalised log-probabilities."""
        return params.float().unflatten(-1, (self.n_vars, self.n_cats))

    def draw_noise(self, shape: tuple[int, ...], device: torch.device,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return standard_gumbel(*shape, self.code_size, device=device, generator=generator)

    def forward(self, params: torch.Tensor, step: Optional[torch.Tensor] = None,
                noise: Optional[torch.Tensor] = None) -> LatentSample:
        logits = self.logits(params)
        gumbels = standard_gumbel(*logits.shape, device=logits.device) if noise is None else noise.view_as(logits)
        if self.training:
            tau = self.temperature(step if step is not None else torch.zeros((), device=logits.device))
            code = relaxed_one_hot(logits, gumbels, tau, self.hard)
        else:  # Gumbel-max: an exact draw from the posterior
            code = F.one_hot((logits + gumbels).argmax(-1), self.n_cats).float()
        return LatentSample(code.flatten(-2), {self.kl_name: categorical_kl_uniform(logits).sum(-1)})

    def mean_code(self, params: torch.Tensor) -> torch.Tensor:
        """Posterior probabilities of every category, flattened: the relaxed code's expectation."""
        return F.softmax(self.logits(params), dim=-1).flatten(-2)

    def split_params(self, params: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
        return [(self, params)]

    def most_likely(self, params: torch.Tensor) -> torch.Tensor:
        """[B, n_vars] the most probable category of each variable."""
        return self.logits(params).argmax(-1)

    def kl_details(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image KL of each categorical variable, [B, n_vars]."""
        return {"kl_per_var": categorical_kl_uniform(self.logits(params))}

    def posterior_sample(self, params: torch.Tensor, n: int,
                         noise: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact one-hot draws per image (Gumbel-max), [n, ..., n_vars * n_cats], and their log q(c|x)."""
        log_p = F.log_softmax(self.logits(params), -1)
        gumbels = (standard_gumbel(n, *log_p.shape, device=log_p.device) if noise is None
                   else noise.unflatten(-1, (self.n_vars, self.n_cats)))
        categories = (log_p + gumbels).argmax(-1)
        log_q = log_p.expand(n, *log_p.shape).gather(-1, categories.unsqueeze(-1)).squeeze(-1).sum(-1)
        return F.one_hot(categories, self.n_cats).float().flatten(-2), log_q

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.full(codes.shape[:-1], -self.n_vars * math.log(self.n_cats), device=codes.device)

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        where = generator.device if generator is not None else device
        categories = torch.randint(self.n_cats, (n, self.n_vars), device=where, generator=generator)
        return F.one_hot(categories, self.n_cats).float().flatten(-2).to(device)


class JointLatent(Latent):
    """Latents side by side: parameters split in order, codes (and noise) concatenated, KL terms kept
    by name."""

    def __init__(self, *parts: Latent):
        super().__init__()
        kinds = ["discrete" if p.spec.discrete else "continuous" for p in parts]
        if kinds != sorted(kinds):  # "continuous" < "discrete": the order LatentSpec lays codes out in
            raise ValueError(f"continuous parts must come before discrete ones, not {kinds}")
        self.parts = nn.ModuleList(parts)
        self.param_sizes = [p.param_size for p in parts]
        self.code_sizes = [p.code_size for p in parts]
        self.param_size = sum(self.param_sizes)
        self.code_size = sum(self.code_sizes)
        self.spec = sum((p.spec for p in parts), LatentSpec())

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return params.split(self.param_sizes, dim=-1)

    def _noises(self, noise: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], ...]:
        return (None,) * len(self.parts) if noise is None else noise.split(self.code_sizes, dim=-1)

    def split_params(self, params: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
        """Each part with its own slice of the parameters."""
        return list(zip(self.parts, self._split(params)))

    def draw_noise(self, shape: tuple[int, ...], device: torch.device,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.cat([part.draw_noise(shape, device, generator) for part in self.parts], -1)

    def forward(self, params: torch.Tensor, step: Optional[torch.Tensor] = None,
                noise: Optional[torch.Tensor] = None) -> LatentSample:
        samples = [part(p, step, e) for part, p, e in zip(self.parts, self._split(params), self._noises(noise))]
        return LatentSample(torch.cat([s.code for s in samples], -1),
                            {name: kl for s in samples for name, kl in s.kl.items()})

    def mean_code(self, params: torch.Tensor) -> torch.Tensor:
        return torch.cat([part.mean_code(p) for part, p in zip(self.parts, self._split(params))], -1)

    def kl_details(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        details: dict[str, list[torch.Tensor]] = {}
        for part, p in zip(self.parts, self._split(params)):
            for name, values in part.kl_details(p).items():
                details.setdefault(name, []).append(values)
        return {name: torch.cat(values, -1) for name, values in details.items()}

    def posterior_sample(self, params: torch.Tensor, n: int,
                         noise: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        draws = [part.posterior_sample(p, n, e)
                 for part, p, e in zip(self.parts, self._split(params), self._noises(noise))]
        return torch.cat([codes for codes, _ in draws], -1), sum(log_q for _, log_q in draws)

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(part.prior_log_prob(c) for part, c in zip(self.parts, codes.split(self.code_sizes, -1)))

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.cat([part.prior_sample(n, device, generator) for part in self.parts], -1)
