"""A population: K models of one architecture trained as one stacked computation.

Members share the architecture (model type, backbone, image shape) and may differ in their seed,
beta, learning rate, KL warm-up, temperature schedule and latent size. Each member is a model of its
own shapes, built exactly as its standalone run would build it. For training, their parameters are
stacked on a leading member axis, smaller latents padded to the largest, and one ``vmap`` of ``functional_call`` runs every member's forward pass at once. Each
member keeps what makes it itself:

- its own batches (the member's shuffle generator) and its own noise: a latent's random draws are
  made outside ``vmap`` from the member's generator and passed in (``Batch.noise``), so a member
  computes the same whatever population it trains in, alone included;
- its own Adam state and learning rate: PyTorch's Adam (``torch.optim.adam.adam``, fused) steps each
  member's slice of the stacked tensors, one call per distinct learning rate;
- a padded latent's extra dimensions carry no code, no KL and no gradient: their weights start at
  zero and the latent's ``active`` mask keeps them out of every term (see latents.GaussianLatent).

A population of one whose model cannot be stacked (M2, image-space losses) runs the model itself.

Which runs stack: those that differ only in the settings members may differ in (``STACKABLE`` in
vae_lab/runs.py) and whose model can be stacked (not M2, no image-space losses, not compiled). The
stacked launcher (``hydra/launcher=stacked``, hydra_plugins/vae_lab_stacked_launcher) groups a
sweep's jobs by :func:`stack_key` and trains each group as one population.
"""

import copy
import json
import math
from typing import Callable, Optional

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.optim.adam import adam

from vae_lab.config import TrainConfig, as_dict
from vae_lab.data import Batch
from vae_lab.latents import GaussianLatent, JointLatent, Latent
from vae_lab.models import VAE
from vae_lab.runs import ROLES, STACKABLE, Role, flatten, role


# ---- which runs stack ----------------------------------------------------------------------------


def stack_key(config: TrainConfig) -> Optional[str]:
    """Runs with the same key train as one population; None for a run that trains alone."""
    if not config.model.stackable() or config.loss.enabled or config.trainer.compile:
        return None
    shared = {k: v for k, v in flatten(as_dict(config)).items() if role(k) not in STACKABLE | {Role.COMMAND}}
    return json.dumps(shared, sort_keys=True, default=str)


def refuse_unstackable(configs: list[TrainConfig]) -> None:
    """Runs trained together must share one stack key (a single run always trains)."""
    keys = {stack_key(c) for c in configs}
    if len(configs) > 1 and (None in keys or len(keys) > 1):
        members = [key for key, its_role in ROLES.items() if its_role in STACKABLE]
        raise ValueError("runs trained together must differ only in " + ", ".join(members)
                         + ", and their model must stack (vae_lab/population.py)")


def plan_groups(keys: list[Optional[str]], max_members: int) -> list[list[int]]:
    """Positions of the runs, grouped by key (first appearance first) into populations of at most
    ``max_members``; a run without a key is a group of its own."""
    groups: dict[str, list[int]] = {}
    order: list[list[int]] = []
    for i, key in enumerate(keys):
        if key is None:
            order.append([i])
            continue
        if key not in groups or len(groups[key]) >= max_members:
            groups[key] = []
            order.append(groups[key])
        groups[key].append(i)
    return order


ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}  # torch.optim.Adam's defaults


class NotStackable(ValueError):
    """Models that cannot share one stacked computation (their shapes differ beyond the latent size)."""


# ---- padding a member into the population's shapes ----------------------------------------------


def _positions(member: Latent, padded: Latent, kind: str) -> torch.Tensor:
    """Where each entry of a member latent's parameter (``kind="param"``) or code vector sits in the
    padded latent's: a Gaussian's parameters are [means, log-variances], each padded at its end."""
    if isinstance(member, JointLatent):
        offsets = [0] + list(torch.tensor([getattr(p, f"{kind}_size") for p in padded.parts]).cumsum(0)[:-1].tolist())
        return torch.cat([offset + _positions(m, p, kind) for m, p, offset in zip(member.parts, padded.parts, offsets)])
    if isinstance(member, GaussianLatent) and kind == "param":
        return torch.cat([torch.arange(member.dim), padded.dim + torch.arange(member.dim)])
    return torch.arange(getattr(member, f"{kind}_size"))


def index_maps(member: Latent, padded: Latent) -> dict[tuple[int, int], Optional[torch.Tensor]]:
    """(member size, padded size) of an axis -> where the member's entries go along it, for the
    parameter and code vectors of the latent and of each of its parts (a part's own head or
    decoder reads only its slice). None marks a pair of sizes that two layouts share: ambiguous."""
    maps: dict[tuple[int, int], Optional[torch.Tensor]] = {}
    pairs = [(member, padded), *(zip(member.parts, padded.parts) if isinstance(member, JointLatent) else [])]
    for m, p in pairs:
        for kind in ("param", "code"):
            key = (getattr(m, f"{kind}_size"), getattr(p, f"{kind}_size"))
            positions = _positions(m, p, kind)
            if key in maps and (maps[key] is None or not torch.equal(maps[key], positions)):
                maps[key] = None
            else:
                maps[key] = positions
    return maps


def _axis_map(maps: dict, name: str, member_size: int, padded_size: int) -> torch.Tensor:
    positions = maps.get((member_size, padded_size))
    if positions is None:
        raise NotStackable(f"{name}: a member's size {member_size} does not map onto the population's {padded_size}")
    return positions


def pad(tensor: torch.Tensor, shape: torch.Size, maps: dict, name: str) -> torch.Tensor:
    """A member's tensor in the population's shape, zeros where the member has no entry."""
    for axis, (size, padded_size) in enumerate(zip(tensor.shape, shape)):
        if size != padded_size:
            positions = _axis_map(maps, name, size, padded_size).to(tensor.device)
            grown = list(tensor.shape)
            grown[axis] = padded_size
            tensor = tensor.new_zeros(grown).index_copy_(axis, positions, tensor)
    return tensor


def unpad(tensor: torch.Tensor, shape: torch.Size, maps: dict, name: str) -> torch.Tensor:
    """The member's own entries of a padded tensor, in the member's shape."""
    for axis, (padded_size, size) in enumerate(zip(tensor.shape, shape)):
        if size != padded_size:
            tensor = tensor.index_select(axis, _axis_map(maps, name, size, padded_size).to(tensor.device))
    return tensor


# ---- the population -----------------------------------------------------------------------------


class _Method(nn.Module):
    """Calls one method of the model it wraps, so functional_call can run methods besides forward."""

    def __init__(self, model: VAE):
        super().__init__()
        self.model = model

    def forward(self, method: str, *args):
        return getattr(self.model, method)(*args)


class Population:
    """K member models trained as one; ``models[k]`` holds member k's weights after
    :meth:`hand_back`. Two kinds behind this one interface, chosen once by :meth:`Population.of`: a
    model alone runs itself (:class:`Alone`); several are stacked and run with one vmap
    (:class:`Stacked`)."""

    @staticmethod
    def of(models: list[VAE], lrs: Optional[list[float]] = None, compile: bool = False) -> "Population":
        """The population of ``models`` (with their learning rates): one runs alone, several stacked."""
        if len(models) == 1:
            return Alone(models[0], None if lrs is None else lrs[0], compile)
        return Stacked(models, lrs)

    def __init__(self, models: list[VAE], lrs: Optional[list[float]]):
        self.models, self.lrs = models, lrs or [0.0] * len(models)
        self.device = models[0].device
        self.template: VAE = models[0]  # the architecture; a stack's template holds no tensors of its own
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.maps: list[dict] = [{}]  # per member, where its latent sits in the population's (padding)
        self._adam: Optional[MemberAdam] = None  # made when first needed: evaluation needs none

    @property
    def adam(self) -> "MemberAdam":
        if self._adam is None:
            self._adam = MemberAdam(self)
        return self._adam

    def __len__(self) -> int:
        return len(self.models)

    # -- what each kind does its own way ---------------------------------------------------------------

    def run(self, method: str, batched: dict[str, torch.Tensor], shared: dict[str, torch.Tensor],
            build: Callable[..., tuple] = lambda **kw: (Batch(**kw),)):
        """``method`` of every member on its arguments, results stacked [K, ...]. ``batched`` tensors
        have a leading member axis, ``shared`` ones are the same for every member; ``build`` turns
        them into the method's positional arguments (by default one Batch)."""
        raise NotImplementedError

    def pad_noise(self, noises: list[torch.Tensor]) -> list[torch.Tensor]:
        """Members' noise [..., noise_size] in the population's layout (it follows the code's)."""
        raise NotImplementedError

    def train(self, mode: bool = True) -> None:
        """Training or evaluation mode, for the members' models (whose weights, such as a warmed-up
        beta, read it) and the population's own computation."""
        for model in self.models:
            model.train(mode)

    @property
    def steps(self) -> torch.Tensor:
        """[K] optimizer steps each member has taken."""
        raise NotImplementedError

    def member_slice(self, tensor: torch.Tensor, k: int) -> torch.Tensor:
        """Member k's part of a population tensor (a parameter, its gradient, Adam's moments)."""
        raise NotImplementedError

    def clip_gradients(self, max_norms: list[Optional[float]]) -> None:
        """Scale each member's gradient to at most its max norm, as clip_grad_norm_ would."""
        raise NotImplementedError

    def hand_back(self) -> None:
        """Copy every member's weights (and step) from the population into its own model."""

    # -- objectives, gradients, steps --------------------------------------------------------------

    def objectives(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """[K, B] each member's training objective from the stacked terms. Weights (beta, warm-up,
        alpha) come from each member's own model at its step in the population; a model with an
        objective of its own (capacity control) computes it on its slice."""
        steps = self.steps
        if all(type(model).objective is VAE.objective for model in self.models):
            each = [model.weights_at(step) for model, step in zip(self.models, steps)]
            weights = {name: torch.stack([torch.as_tensor(mine[name], device=self.device, dtype=torch.float32)
                                          for mine in each]) for name in each[0]}
            return sum(weights[name][:, None] * terms[name] for name in weights)
        return torch.stack([model.objective({name: values[k] for name, values in terms.items()}, steps[k])
                            for k, model in enumerate(self.models)])

    def nelbos(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(terms[name] for name in self.models[0].elbo_terms)

    def step(self) -> None:
        self.adam.step()
        with torch.no_grad():
            self.buffers["step"] += 1

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def optimizer_state(self, k: int) -> dict:
        """Member k's Adam state in its own shapes (the checkpoint format)."""
        return self.adam.member_state(k)

    def load_optimizer_state(self, k: int, state: dict) -> None:
        self.adam.load_member_state(k, state)


class Alone(Population):
    """One model, running itself (compiled if asked): its own tensors are the population's."""

    def __init__(self, model: VAE, lr: Optional[float] = None, compile: bool = False):
        super().__init__([model], None if lr is None else [lr])
        # The training passes run compiled when asked; evaluation's other methods as they are.
        self.calls = {name: torch.compile(getattr(model, name)) if compile else getattr(model, name)
                      for name in ("forward", "terms_and_reconstruction")}
        self.params = dict(model.named_parameters())
        self.buffers = dict(model.named_buffers())

    def run(self, method, batched, shared, build=lambda **kw: (Batch(**kw),)):
        arguments = {**{k: v[0] for k, v in batched.items()}, **shared}
        call = self.calls.get(method) or getattr(self.template, method)
        return _add_member_axis(call(*build(**arguments)))

    def pad_noise(self, noises):
        return noises

    @property
    def steps(self) -> torch.Tensor:
        return self.buffers["step"].view(1)

    def member_slice(self, tensor, k):
        return tensor

    def clip_gradients(self, max_norms):
        if max_norms[0] is not None:
            torch.nn.utils.clip_grad_norm_(list(self.params.values()), max_norms[0])


class Stacked(Population):
    """Models of one architecture on a leading member axis, smaller latents padded to the widest,
    run with one ``vmap`` of ``functional_call``."""

    def __init__(self, models: list[VAE], lrs: Optional[list[float]] = None):
        if not can_stack(models):
            raise NotStackable(f"{type(models[0]).__name__} cannot be stacked")
        super().__init__(models, lrs)
        widest = max(models, key=lambda m: m.latent.code_size)
        self.template = copy.deepcopy(widest).to("meta")  # the shapes; its own tensors are never used
        self.maps = [index_maps(m.latent, widest.latent) for m in models]
        shapes = {**{n: t.shape for n, t in widest.named_parameters()}, **{n: t.shape for n, t in widest.named_buffers()}}
        padded = [self._padded_state(model, maps, shapes) for model, maps in zip(models, self.maps)]
        stacked = {name: torch.stack([state[name] for state in padded]) for name in shapes}
        is_param = dict(widest.named_parameters())
        self.params = {name: t.requires_grad_() for name, t in stacked.items() if name in is_param}
        self.buffers = {name: t for name, t in stacked.items() if name not in is_param}
        self.call = _Method(self.template)

    @staticmethod
    def _padded_state(model: VAE, maps: dict, shapes: dict) -> dict[str, torch.Tensor]:
        own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
        if own.keys() != shapes.keys():
            raise NotStackable(f"{type(model).__name__}: its tensors differ from the population's")
        return {name: pad(t.detach(), shapes[name], maps, name) for name, t in own.items()}

    def run(self, method, batched, shared, build=lambda **kw: (Batch(**kw),)):
        def one(params, buffers, mine):
            return functional_call(self.call, (params, buffers), (method, *build(**mine, **shared)))

        prefixed = lambda tensors: {f"model.{name}": t for name, t in tensors.items()}  # noqa: E731  (_Method.model)
        return vmap(one, randomness="error")(prefixed(self.params), prefixed(self.buffers), batched)

    def pad_noise(self, noises):
        size = self.template.latent.noise_size
        return [pad(noise, torch.Size([*noise.shape[:-1], size]), maps, "noise") for noise, maps in zip(noises, self.maps)]

    def train(self, mode: bool = True) -> None:
        self.call.train(mode)
        super().train(mode)

    @property
    def steps(self) -> torch.Tensor:
        return self.buffers["step"]

    def member_slice(self, tensor, k):
        return tensor[k]

    def clip_gradients(self, max_norms):
        if all(norm is None for norm in max_norms):
            return
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        total = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # [K]
        limit = torch.tensor([math.inf if n is None else n for n in max_norms], device=total.device)
        coefficient = torch.clamp(limit / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(coefficient.view(-1, *[1] * (g.dim() - 1)))

    def hand_back(self) -> None:
        with torch.no_grad():
            for k, (model, maps) in enumerate(zip(self.models, self.maps)):
                for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
                    stacked = self.params.get(name, self.buffers.get(name))
                    tensor.copy_(unpad(stacked[k], tensor.shape, maps, name))


def can_stack(models: list[VAE]) -> bool:
    return all(model.stackable for model in models)


def _add_member_axis(value):
    if isinstance(value, torch.Tensor):
        return value.unsqueeze(0)
    if isinstance(value, dict):
        return {k: _add_member_axis(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_add_member_axis(v) for v in value)
    return value


class MemberAdam:
    """Adam for every member of a population, each on its own slice with its own learning rate:
    PyTorch's implementation (``torch.optim.adam.adam``, fused where the device allows), called once
    per distinct learning rate on the members' slices of the stacked tensors."""

    def __init__(self, population: Population):
        self.population = population
        self.names = list(population.params)
        self.exp_avg = {n: torch.zeros_like(p, memory_format=torch.preserve_format) for n, p in population.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p, memory_format=torch.preserve_format) for n, p in population.params.items()}
        device = population.device
        self.fused = device.type in ("cpu", "cuda")
        self.steps = [{n: torch.zeros((), dtype=torch.float32, device=device) for n in self.names}
                      for _ in range(len(population))]

    @torch.no_grad()
    def step(self) -> None:
        population = self.population
        by_lr: dict[float, list[int]] = {}
        for k, lr in enumerate(population.lrs):
            by_lr.setdefault(lr, []).append(k)
        for lr, members in by_lr.items():
            rows = [(k, n) for k in members for n in self.names if population.params[n].grad is not None]
            part = population.member_slice
            adam(
                [part(population.params[n], k) for k, n in rows], [part(population.params[n].grad, k) for k, n in rows],
                [part(self.exp_avg[n], k) for k, n in rows], [part(self.exp_avg_sq[n], k) for k, n in rows],
                [], [self.steps[k][n] for k, n in rows], fused=self.fused, amsgrad=False, lr=lr,
                maximize=False, **ADAM)

    def member_state(self, k: int) -> dict:
        population = self.population
        model, maps = population.models[k], population.maps[k]
        shapes = dict((n, p.shape) for n, p in model.named_parameters())
        take = lambda t, n: unpad(population.member_slice(t, k), shapes[n], maps, n).clone()  # noqa: E731
        return {"step": int(next(iter(self.steps[k].values()), torch.zeros(())).item()),
                "exp_avg": {n: take(self.exp_avg[n], n) for n in self.names},
                "exp_avg_sq": {n: take(self.exp_avg_sq[n], n) for n in self.names}}

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict) -> None:
        population = self.population
        state = as_member_state(state, population.models[k])
        maps = population.maps[k]
        for n in self.names:
            for mine, theirs in ((self.exp_avg, state["exp_avg"]), (self.exp_avg_sq, state["exp_avg_sq"])):
                target = population.member_slice(mine[n], k)
                target.copy_(pad(theirs[n].to(target.device), target.shape, maps, n))
            self.steps[k][n].fill_(float(state["step"]))


def as_member_state(state: dict, model: VAE) -> dict:
    """An optimizer state in the checkpoint format; a torch.optim.Adam state_dict (what runs made
    before populations saved) is converted by the order of the model's parameters."""
    if "exp_avg" in state:
        return state
    names = [n for n, _ in model.named_parameters()]
    per_param = state["state"]
    if not per_param:
        zeros = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        return {"step": 0, "exp_avg": zeros, "exp_avg_sq": dict(zeros)}
    return {"step": int(float(per_param[0]["step"])),
            "exp_avg": {n: per_param[i]["exp_avg"] for i, n in enumerate(names)},
            "exp_avg_sq": {n: per_param[i]["exp_avg_sq"] for i, n in enumerate(names)}}
