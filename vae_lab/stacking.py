"""Which runs of a sweep can train as one population, and how a launcher gathers them.

Runs stack when everything but the members' own settings (:data:`MEMBER_KEYS`) is the same and
their model can be stacked (not M2, no image-space losses, not compiled). The launcher
(``hydra/launcher=stacked``, in hydra_plugins/vae_lab_stacked_launcher) lets Hydra prepare each job's
folder as usual, with the job's task in :func:`enlisting` mode: the task hands its typed config and
folder to :func:`enlist` instead of training, and the launcher trains the group together.
"""

import contextlib
import json
import logging
from pathlib import Path
from typing import Iterator, Optional

from vae_lab.config import TrainConfig, as_dict
from vae_lab.runs import flatten

# What members of one population may differ in.
MEMBER_KEYS = ("seed", "model.beta", "model.beta_warmup_steps", "model.latent_dim", "model.temperature",
               "model.temperature_min", "model.anneal_rate", "trainer.lr", "trainer.grad_clip")
# What never tells runs apart (a sweep sets trainer.resume itself).
NOT_COMPARED = ("trainer.resume", "optimized_metric")


def stack_key(config: TrainConfig) -> Optional[str]:
    """Runs with the same key train as one population; None for a run that trains alone."""
    if not config.model.stackable() or config.loss.enabled or config.trainer.compile:
        return None
    shared = {k: v for k, v in flatten(as_dict(config)).items() if k not in MEMBER_KEYS + NOT_COMPARED}
    return json.dumps(shared, sort_keys=True, default=str)


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


_enlisted: Optional[list[tuple[TrainConfig, str]]] = None


@contextlib.contextmanager
def enlisting() -> Iterator[list[tuple[TrainConfig, str]]]:
    """While active, a training task hands its (config, run folder) over instead of training."""
    global _enlisted
    _enlisted = []
    try:
        yield _enlisted
    finally:
        _enlisted = None


def enlist(config: TrainConfig, run_dir: str) -> bool:
    """Hand a run to the launcher that is gathering a population; False when none is."""
    if _enlisted is None:
        return False
    _enlisted.append((config, run_dir))
    return True


_working_for: Optional[Path] = None  # the member whose report is being made (see working_for)


@contextlib.contextmanager
def working_for(run_dir: Path) -> Iterator[None]:
    """Attribute every log record of the block to one member's run (its final evaluation)."""
    global _working_for
    _working_for = Path(run_dir).resolve()
    try:
        yield
    finally:
        _working_for = None


class _OneRun(logging.Filter):
    """Passes the records of one member (``extra={"run": path}``, or made while working for it) and
    those of no member in particular."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "run", _working_for or self.path) == self.path


class MembersOnFile(logging.Filter):
    """For the terminal: drops what a member logs for its train.log only (``extra={"console": False}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


@contextlib.contextmanager
def member_logs(run_dirs: list[str], formatter: logging.Formatter) -> Iterator[None]:
    """Each member's lines into its own <run>/train.log while a population trains, in place of the
    log file of the job Hydra set up last."""
    root = logging.getLogger()
    replaced = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
    added = []
    for run_dir in run_dirs:
        path = Path(run_dir).resolve()
        handler = logging.FileHandler(path / "train.log")
        handler.setFormatter(formatter)
        handler.addFilter(_OneRun(path))
        added.append(handler)
    for handler in replaced:
        root.removeHandler(handler)
    for handler in added:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in added:
            root.removeHandler(handler)
            handler.close()
        for handler in replaced:
            root.addHandler(handler)
