"""One run of a population: what it is, where its training stands, and how it is built.

:func:`build_member` is the one place a run is built, for a new run and a resumed one alike: the
global generators seeded, the model built, its loss hooks attached, its start (the mean image) or
its checkpoint restored. It writes nothing: a run's first write comes after (vae_lab/training.py).
"""

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from vae_lab.checkpoints import resume
from vae_lab.config import TrainConfig
from vae_lab.data import Splits
from vae_lab.errors import RunFailed
from vae_lab.hooks import LossHook
from vae_lab.image_losses import ImageLosses
from vae_lab.models import VAE, build_model
from vae_lab.runs import RunDir

log = logging.getLogger("vae_lab.training")

NOISE_STREAM = 2**32  # a member's noise generator is seeded with seed + this: apart from its shuffling


@dataclass
class Member:
    """One run in a population: what it is, and where its training stands."""

    config: TrainConfig
    run: RunDir
    model: VAE
    loss_hooks: list[LossHook] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # a row of metrics per finished epoch
    snapshots: list[dict] = field(default_factory=list)  # one per epoch, for training_evolution.gif
    best: dict = field(default_factory=lambda: {"epoch": 0, "val/loss": math.inf})
    optimizer_state: Optional[dict] = None  # Adam's state between populations; None: it starts afresh
    failure: Optional[RunFailed] = None
    trackers: object = None  # vae_lab.trackers.Trackers, opened when the run starts
    shuffle: torch.Generator = field(init=False)
    noise: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        device = self.model.device
        self.shuffle = torch.Generator(device=device).manual_seed(self.config.seed)
        self.noise = torch.Generator(device=device).manual_seed(self.config.seed + NOISE_STREAM)

    def __hash__(self) -> int:
        return id(self)

    @property
    def epoch(self) -> int:
        return len(self.history)

    @property
    def done(self) -> bool:
        return self.failure is not None or self.epoch >= self.config.trainer.epochs

    def log(self, message: str, *args, console: bool = True) -> None:
        """A line of this run's log; ``console=False``: its train.log only (a population's terminal
        shows one line for all its members instead)."""
        log.info(message, *args, extra={"run": self.run.path, "console": console})


def build_member(config: TrainConfig, run: RunDir, splits: Splits, device: torch.device,
                 checkpoint: Optional[dict] = None) -> Member:
    """The run ``config`` describes, ready to train: seeded, built, hooked, and at its start or where
    ``checkpoint`` (its checkpoints/last.pt) left it."""
    seed_everything(config.seed)
    model = build_model(config.model, config.backbone, splits.image_shape, len(splits.info.class_names)).to(device)
    hooks = [ImageLosses(config.loss, splits.image_shape, device)] if config.loss.enabled else []
    member = Member(config, run, model, loss_hooks=hooks)
    if config.trainer.start_at_mean_image:  # a resumed run loads its own weights over this
        model.start_at_mean_image(splits.train.mean_image())
    if checkpoint is not None:
        resume(member, checkpoint)
    return member


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device
