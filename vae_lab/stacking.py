"""Which runs of a sweep can train as one population, and each member's own log while they do.

Runs stack when they differ only in the settings members may differ in (``Role.MEMBER`` in
vae_lab/runs.py) and their model can be stacked (not M2, no image-space losses, not compiled). The
stacked launcher (``hydra/launcher=stacked``, hydra_plugins/vae_lab_stacked_launcher) groups a
sweep's jobs by :func:`stack_key` and trains each group with vae_lab.training.train_population.
"""

import contextlib
import json
import logging
from pathlib import Path
from typing import Iterator, Optional

from vae_lab.config import TrainConfig, as_dict
from vae_lab.runs import ROLES, Role, flatten, role


def stack_key(config: TrainConfig) -> Optional[str]:
    """Runs with the same key train as one population; None for a run that trains alone."""
    if not config.model.stackable() or config.loss.enabled or config.trainer.compile:
        return None
    shared = {k: v for k, v in flatten(as_dict(config)).items() if role(k) not in (Role.MEMBER, Role.COMMAND)}
    return json.dumps(shared, sort_keys=True, default=str)


def refuse_unstackable(configs: list[TrainConfig]) -> None:
    """Runs trained together must share one stack key (a single run always trains)."""
    keys = {stack_key(c) for c in configs}
    if len(configs) > 1 and (None in keys or len(keys) > 1):
        members = [key for key, its_role in ROLES.items() if its_role is Role.MEMBER]
        raise ValueError("runs trained together must differ only in " + ", ".join(members)
                         + ", and their model must stack (vae_lab/stacking.py)")


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


class MemberLogs:
    """Each member's lines into its own <run>/train.log while a population trains, in place of the
    log file of the job Hydra set up last. A record belongs to a member when it says so
    (``extra={"run": path}``) or is made while :meth:`working_for` it (its final evaluation);
    records of no member in particular go to every member's log."""

    def __init__(self, run_dirs: list[str], formatter: logging.Formatter):
        self.paths = [Path(run_dir).resolve() for run_dir in run_dirs]
        self.formatter = formatter
        self.current: Optional[Path] = None
        self.handlers: list[logging.FileHandler] = []
        self.replaced: list[logging.Handler] = []

    def __enter__(self) -> "MemberLogs":
        root = logging.getLogger()
        self.replaced = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
        for path in self.paths:
            handler = logging.FileHandler(path / "train.log")
            handler.setFormatter(self.formatter)
            handler.addFilter(lambda record, path=path: getattr(record, "run", self.current or path) == path)
            self.handlers.append(handler)
        for handler in self.replaced:
            root.removeHandler(handler)
        for handler in self.handlers:
            root.addHandler(handler)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for handler in self.replaced:
            root.addHandler(handler)

    @contextlib.contextmanager
    def working_for(self, run_dir: Path) -> Iterator[None]:
        """Attribute every log record of the block to one member's run."""
        self.current = Path(run_dir).resolve()
        try:
            yield
        finally:
            self.current = None


class MembersOnFile(logging.Filter):
    """For the terminal: drops what a member logs for its train.log only (``extra={"console": False}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)
