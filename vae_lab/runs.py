"""The run folder: the one interface between train, eval, sweep and the user, and its policy.

    <run>/config.yaml           the resolved training config (data.root absolute)
    <run>/metrics.jsonl         one JSON object per finished epoch
    <run>/metrics.json          final test metrics; written last, so its presence means "done"
    <run>/checkpoints/last.pt   everything needed to resume (model, optimizer, RNG states, history, data)
    <run>/checkpoints/best.pt   the weights with the lowest validation loss
    <run>/figures/              pictures of the trained model
    <run>/eval/                 what `vae-lab eval` recomputes
    <run>/error.txt             why the run's last attempt failed (a sweep's other jobs carry on)
    <run>/.lock                 held by the one process that writes the folder

Every file is written to a temporary name in the same folder and renamed over the old one, so a
reader (or a crash) never sees half a file; the temporaries a killed process leaves behind are
removed by the next process that claims the folder. A folder is written by one process at a time:
:func:`claimed` holds an exclusive ``flock`` on its ``.lock`` file, which the kernel releases when
the holder exits, however it exits, so a lock is never stale.

The policy of the folder lives here too: what counts as a run (anything vae-lab would write over),
and whether a run may be continued (same training config, same data).
"""

import contextlib
import fcntl
import io
import json
import logging
import os
import re
import socket
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from omegaconf import OmegaConf

from vae_lab.errors import ConfigError, DamagedFile, UserError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LOCK_FILE = ".lock"
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read it back: files get the usual permissions, not mkstemp's private 0600
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what atomic_write's mkstemp names look like


# ---- writing and reading files -------------------------------------------------------------------


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
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(path)  # a write through a file object names no file
        raise


def remove_temporary_files(folder: Path, recursive: bool = True) -> int:
    """Delete the temporaries of :func:`atomic_write` that a killed process left in ``folder``. Only
    safe while holding the folder (:func:`claimed`): another writer's temporaries look the same."""
    removed = 0
    for path in (folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        if _TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, lambda f: json.dump(data, f, indent=2, sort_keys=True))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda f: f.writelines(json.dumps(row) + "\n" for row in rows))


def read_jsonl(path: Path) -> list[dict]:
    return _parsed(path, lambda text: [json.loads(line) for line in text.splitlines() if line.strip()],
                   list, "it is rewritten from checkpoints/last.pt when the run is resumed")


def read_json(path: Path, remedy: str) -> dict:
    return _parsed(path, json.loads, dict, remedy)


def _parsed(path: Path, parse: Callable[[str], Any], kind: type, remedy: str) -> Any:
    try:
        value = parse(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:  # json.JSONDecodeError is a ValueError
        raise DamagedFile(path, f"not valid {'JSON lines' if kind is list else 'JSON'}: {error}", remedy) from None
    if not isinstance(value, kind) or (kind is list and not all(isinstance(row, dict) for row in value)):
        raise DamagedFile(path, "not what vae-lab writes there", remedy)
    return value


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialised in memory first: torch.save's own writer reports a full disk as an anonymous
    RuntimeError, and Python's file writes raise the OSError (ENOSPC) that the CLI explains."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()), binary=True)


def load_checkpoint(path: Path, device: torch.device | str = "cpu", remedy: str = "") -> dict:
    """A checkpoint holds only tensors and plain Python values, so it loads with weights_only=True:
    a file that holds anything else (a crafted pickle) is refused before any of it runs."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # noqa: BLE001  truncated, not a zip, foreign objects: all one answer
        raise DamagedFile(path, _load_failure(error), remedy or "it was not written by vae-lab, or not completely") from None
    if not isinstance(state, dict) or "model" not in state:
        raise DamagedFile(path, "not a vae-lab checkpoint", remedy or "it was not written by vae-lab")
    return state


def _load_failure(error: Exception) -> str:
    text = str(error)
    if "Weights only load failed" in text or "Unsupported global" in text:
        return "it holds Python objects, not only tensors, so it was not loaded"
    if "central directory" in text or "zip archive" in text or isinstance(error, EOFError):
        return "truncated or not a PyTorch file"
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _literal(value: Any) -> Any:
    """A value read from a run folder, with OmegaConf's ``${...}`` escaped: a saved config is data,
    and reloading it must not resolve environment variables or other interpolations."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


# ---- the folder ---------------------------------------------------------------------------------


_claims: dict[Path, list] = {}  # folder -> [lock file descriptor, depth]: re-entrant within a process


@contextlib.contextmanager
def claimed(folder: Path, what: str = "run folder") -> Iterator[None]:
    """Hold ``folder`` as its only writer for the block, or refuse with one line if another process
    does. Re-entrant: a process that holds a folder may claim it again."""
    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: choose a folder for the {what}")
    if folder in _claims:
        _claims[folder][1] += 1
        try:
            yield
        finally:
            _claims[folder][1] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"{folder} is in use by {owner}: a {what} has one writer at a time; wait for it "
                        "to finish, or choose another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"vae-lab process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _claims[folder] = [fd, 1]
    try:
        yield
    finally:
        del _claims[folder]
        os.close(fd)  # releases the lock; the file stays, so no two processes race to create it


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()

    config = property(lambda self: self.path / "config.yaml")
    metrics_per_epoch = property(lambda self: self.path / "metrics.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")
    figures = property(lambda self: self.path / "figures")
    eval = property(lambda self: self.path / "eval")
    error = property(lambda self: self.path / "error.txt")

    def claimed(self) -> contextlib.AbstractContextManager:
        return claimed(self.path, "run folder")

    @property
    def is_complete(self) -> bool:
        return self.metrics.is_file()

    @property
    def written_files(self) -> list[Path]:
        """What of a run is in the folder: everything `vae-lab train` would write over."""
        files = [self.config, self.metrics_per_epoch, self.metrics, self.last_checkpoint, self.best_checkpoint,
                 self.error]
        found = [path for path in files if path.exists()]
        if self.figures.is_dir() and any(self.figures.iterdir()):
            found.append(self.figures)
        return found

    @property
    def holds_a_run(self) -> bool:
        return bool(self.written_files)

    def write_config(self, values: dict) -> None:
        atomic_write(self.config, lambda f: f.write(OmegaConf.to_yaml(values)))

    def read_config(self) -> dict:
        """config.yaml as plain data (no interpolation resolved)."""
        try:
            values = OmegaConf.to_container(OmegaConf.load(self.config), resolve=False)
        except FileNotFoundError:
            raise
        except Exception as error:  # noqa: BLE001  YAML and OmegaConf errors alike
            raise DamagedFile(self.config, f"not valid YAML: {str(error).strip().splitlines()[0]}",
                              "the run's checkpoints hold the same config") from None
        # Every saved config has these (seed is written after the groups, so a cut file lacks it).
        if (not isinstance(values, dict) or "seed" not in values
                or not all(isinstance(values.get(k), dict) for k in ("model", "backbone", "data", "trainer", "eval"))):
            raise DamagedFile(self.config, "not a whole vae-lab training config",
                              "the run's checkpoints hold the same config")
        return _literal(values)

    def history(self) -> list[dict]:
        return read_jsonl(self.metrics_per_epoch) if self.metrics_per_epoch.is_file() else []

    def final_metrics(self) -> dict:
        return read_json(self.metrics, "rerun the sweep or `vae-lab train ... trainer.resume=true` in this "
                                       "folder to evaluate the run again")

    def load_last(self, device: torch.device | str = "cpu") -> dict:
        return _checkpoint_literal(load_checkpoint(
            self.last_checkpoint, device, f"the run in {self.path} cannot be continued; start a new run, or "
                                          f"evaluate its best weights with `vae-lab eval run_dir={self.path}`"))

    def load_best(self, device: torch.device | str = "cpu") -> dict:
        return _checkpoint_literal(load_checkpoint(
            self.best_checkpoint, device, f"the best weights of {self.path} are lost; its checkpoints/last.pt "
                                          "holds the latest ones"))


def _checkpoint_literal(checkpoint: dict) -> dict:
    if "config" in checkpoint:
        checkpoint["config"] = _literal(checkpoint["config"])
    return checkpoint


def record_failure(run: RunDir, error: BaseException) -> None:
    """Note in the run folder why its run failed: the message, then the traceback. Best effort: a
    full disk, the usual reason nothing else could be written, must not hide the first error."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        atomic_write(run.error, lambda f: f.write(f"{error}\n\n{text}"))
    except OSError as write_error:
        log.warning("could not write %s: %s", run.error, write_error)


# ---- may this run be continued? -----------------------------------------------------------------

# Settings that change nothing the training computes: a finished run with other values of these is
# still the same run. ("eval." only changes the final metrics, which `vae-lab eval` recomputes.) The
# data itself is compared by its fingerprint instead of by data.root, so a moved copy still resumes.
NOT_TRAINING = ("trainer.resume", "trainer.device", "trainer.compile", "trainer.threads", "data.root",
                "data.download", "eval.", "logger.", "optimized_metric")
# A resumed run may also be trained for more epochs; any other difference is refused.
RESUMABLE_CHANGES = NOT_TRAINING + ("trainer.epochs",)


def refuse_other_settings(run: RunDir, before: dict, now: dict, ignore: tuple[str, ...]) -> None:
    """Raise if the run in ``run`` was made with settings (other than ``ignore``) unlike ``now``."""
    for key, was, value in config_differences(before, now, ignore):
        raise ConfigError(key, value, f"the run in {run.path} was trained with {key}={was}; "
                                      "resume it with the same settings, or start a new run")


def refuse_other_data(run: RunDir, before: Optional[dict], now: dict, root: str) -> None:
    """Raise if the run was trained on data other than ``now`` (a fingerprint, see data.splits)."""
    if before is not None and before != now:
        raise ConfigError("data.root", root,
                          f"the run in {run.path} was trained on other data ({describe_data(before)}); this "
                          f"folder holds {describe_data(now)}. Resume it on the same files, or start a new run")


def describe_data(fingerprint: dict) -> str:
    return (f"{fingerprint['train_images']:,} training and {fingerprint['test_images']:,} test images, "
            f"sha256 {fingerprint['sha256'][:12]}")


def config_differences(before: dict, now: dict, ignore: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    """(key, before, now) for every dotted key whose value differs, except keys in ``ignore`` (a key,
    or a prefix ending in '.')."""
    flat_before, flat_now = flatten(_without_disabled_losses(before)), flatten(_without_disabled_losses(now))
    return [(key, flat_before.get(key), flat_now.get(key))
            for key in sorted(flat_before.keys() | flat_now.keys())
            if flat_before.get(key) != flat_now.get(key)
            and not any(key == c or (c.endswith(".") and key.startswith(c)) for c in ignore)]


def _without_disabled_losses(values: dict) -> dict:
    """The config minus what of ``loss`` changes nothing: the settings of image-space losses that are
    off, and the preset's name."""
    loss = values.get("loss", {})
    return {**values, "loss": {name: part if part.get("enabled") else {"enabled": False}
                               for name, part in loss.items() if isinstance(part, dict)}}


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
