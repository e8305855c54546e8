"""The run folder: the one interface between train, eval, sweep and the user.

    <run>/config.yaml           the resolved training config (data.root absolute)
    <run>/metrics.jsonl         one JSON object per finished epoch
    <run>/metrics.json          final test metrics; written last, so its presence means "done"
    <run>/checkpoints/last.pt   everything needed to resume (model, optimizer, RNG states, history)
    <run>/checkpoints/best.pt   the weights with the lowest validation loss
    <run>/figures/              pictures of the trained model
    <run>/eval/                 what `vae-lab eval` recomputes
    <run>/error.txt             why a sweep's job failed (the sweep's other jobs carry on)

Every file is written to a temporary name in the same folder and renamed over the old one, so a
reader (or a crash) never sees half a file.
"""

import json
import os
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import OmegaConf

CHECKPOINT_FORMAT = 1
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read it back: files get the usual permissions, not mkstemp's private 0600


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=2, sort_keys=True))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda f: f.writelines(json.dumps(row) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save({"format": CHECKPOINT_FORMAT, **state}, f), binary=True)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """Checkpoints hold only tensors and plain Python values, so they load with weights_only=True."""
    return torch.load(path, map_location=device, weights_only=True)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()

    config = property(lambda self: self.path / "config.yaml")
    metrics_per_epoch = property(lambda self: self.path / "metrics.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")
    figures = property(lambda self: self.path / "figures")
    eval = property(lambda self: self.path / "eval")
    error = property(lambda self: self.path / "error.txt")

    @property
    def is_complete(self) -> bool:
        return self.metrics.is_file()

    @property
    def holds_a_run(self) -> bool:
        return self.last_checkpoint.is_file() or self.is_complete

    def write_config(self, values: dict) -> None:
        atomic_write(self.config, lambda f: f.write(OmegaConf.to_yaml(values)))

    def read_config(self) -> dict:
        return OmegaConf.to_container(OmegaConf.load(self.config))

    def history(self) -> list[dict]:
        return read_jsonl(self.metrics_per_epoch) if self.metrics_per_epoch.is_file() else []

    def final_metrics(self) -> dict:
        return json.loads(self.metrics.read_text())


def record_failure(run: RunDir, error: BaseException) -> None:
    """Note in the run folder why its job failed: the message, then the traceback."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    atomic_write(run.error, lambda f: f.write(f"{error}\n\n{text}"))
