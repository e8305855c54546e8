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


class GaussianLatent(nn.Module):
    """Diagonal Gaussian posterior against a standard normal prior; reparameterized samples."""

    def __init__(self, dim: int, kl_name: str = "kl"):
        super().__init__()
        self.dim, self.kl_name = dim, kl_name
        self.param_size, self.code_size = 2 * dim, dim
        self.spec = LatentSpec(continuous=dim)

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = params.float().chunk(2, dim=-1)
        return mean, logvar

    def forward(self, params: torch.Tensor, step: Optional[torch.Tensor] = None) -> LatentSample:
        mean, logvar = self.split(params)
        code = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        return LatentSample(code, {self.kl_name: gaussian_kl(mean, logvar).sum(-1)})

    def mean_code(self, params: torch.Tensor) -> torch.Tensor:
        return self.split(params)[0]

    def split_params(self, params: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
        return [(self, params)]

    def kl_details(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image KL of each dimension, [B, dim]."""
        return {"kl_per_dim": gaussian_kl(*self.split(params))}

    def posterior_sample(self, params: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact draws per image, [n, ..., dim], and their log q(z|x), [n, ...]."""
        mean, logvar = self.split(params)
        noise = torch.randn(n, *mean.shape, device=mean.device)
        codes = mean + noise * torch.exp(0.5 * logvar)
        log_q = -0.5 * (noise.square() + logvar + LOG_2PI).sum(-1)
        return codes, log_q

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        return -0.5 * (codes.square() + LOG_2PI).sum(-1)

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return _randn(n, self.dim, device=device, generator=generator)


@dataclass(frozen=True)
class TemperatureSchedule:
    """Gumbel-softmax temperature at a training step: max(minimum, initial * exp(-rate * step))."""

    initial: float
    minimum: float
    rate: float

    def __call__(self, step: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.initial * torch.exp(-self.rate * step.float()), min=self.minimum)


class CategoricalLatent(nn.Module):
    """``n_vars`` independent categorical variables of ``n_cats`` categories, uniform prior.

    Training draws relaxed one-hot codes (Gumbel-softmax at the scheduled temperature; with ``hard``,
    exact one-hot codes forward and relaxed gradients backward, the straight-through estimator).
    Evaluation draws exact one-hot codes, so held-out losses are the discrete model's true ELBO.
    """

    def __init__(self, n_vars: int, n_cats: int, temperature: TemperatureSchedule, hard: bool = False,
                 kl_name: str = "kl_disc"):
        super().__init__()
        self.n_vars, self.n_cats, self.kl_name = n_vars, n_cats, kl_name
        self.temperature, self.hard = temperature, hard
        self.param_size = self.code_size = n_vars * n_cats
        self.spec = LatentSpec(discrete=((n_vars, n_cats),))

    def logits(self, params: torch.Tensor) -> torch.Tensor:
        """[B, n_vars, n_cats] unnormalised log-probabilities."""
        return params.float().unflatten(-1, (self.n_vars, self.n_cats))

    def forward(self, params: torch.Tensor, step: Optional[torch.Tensor] = None) -> LatentSample:
        logits = self.logits(params)
        if self.training:
            tau = self.temperature(step if step is not None else torch.zeros((), device=logits.device))
            code = F.gumbel_softmax(logits, tau=tau, hard=self.hard)
        else:
            code = F.gumbel_softmax(logits, tau=1.0, hard=True).detach()  # Gumbel-max: exact one-hot
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

    def posterior_sample(self, params: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` exact one-hot draws per image, [n, ..., n_vars * n_cats], and their log q(c|x)."""
        log_p = F.log_softmax(self.logits(params), -1)
        categories = torch.distributions.Categorical(logits=log_p).sample((n,))
        log_q = log_p.expand(n, *log_p.shape).gather(-1, categories.unsqueeze(-1)).squeeze(-1).sum(-1)
        return F.one_hot(categories, self.n_cats).float().flatten(-2), log_q

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.full(codes.shape[:-1], -self.n_vars * math.log(self.n_cats), device=codes.device)

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        where = generator.device if generator is not None else device
        categories = torch.randint(self.n_cats, (n, self.n_vars), device=where, generator=generator)
        return F.one_hot(categories, self.n_cats).float().flatten(-2).to(device)


class JointLatent(nn.Module):
    """Latents side by side: parameters split in order, codes concatenated, KL terms kept by name."""

    def __init__(self, *parts: nn.Module):
        super().__init__()
        kinds = ["discrete" if p.spec.discrete else "continuous" for p in parts]
        if kinds != sorted(kinds):  # "continuous" < "discrete": the order LatentSpec lays codes out in
            raise ValueError(f"continuous parts must come before discrete ones, not {kinds}")
        self.parts = nn.ModuleList(parts)
        self.param_sizes = [p.param_size for p in parts]
        self.param_size = sum(self.param_sizes)
        self.code_size = sum(p.code_size for p in parts)
        self.spec = sum((p.spec for p in parts), LatentSpec())

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return params.split(self.param_sizes, dim=-1)

    def split_params(self, params: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
        """Each part with its own slice of the parameters."""
        return list(zip(self.parts, self._split(params)))

    def forward(self, params: torch.Tensor, step: Optional[torch.Tensor] = None) -> LatentSample:
        samples = [part(p, step) for part, p in zip(self.parts, self._split(params))]
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

    def posterior_sample(self, params: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        draws = [part.posterior_sample(p, n) for part, p in zip(self.parts, self._split(params))]
        return torch.cat([codes for codes, _ in draws], -1), sum(log_q for _, log_q in draws)

    def prior_log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        sizes = [part.code_size for part in self.parts]
        return sum(part.prior_log_prob(c) for part, c in zip(self.parts, codes.split(sizes, -1)))

    def prior_sample(self, n: int, device: torch.device,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return torch.cat([part.prior_sample(n, device, generator) for part in self.parts], -1)
