"""The run folder: the one interface between train, eval, sweep and the user, and its policy.

    <run>/config.yaml           the resolved training config (data.root absolute)
    <run>/metrics.jsonl         one JSON object per finished epoch
    <run>/metrics.json          final test metrics; written last, so its presence means "done"
    <run>/checkpoints/last.pt   everything needed to resume (model, optimizer, RNG states, history, data)
    <run>/checkpoints/best.pt   the weights with the lowest validation loss
    <run>/figures/              pictures of the trained model
    <run>/eval/                 what `vae-lab eval` recomputes
    <run>/error.txt             why the run's last attempt failed (a sweep's other jobs carry on)
    <run>/.lock                 held by the one process that writes the folder, removed as it lets go

Every file is written to a temporary name in the same folder and renamed over the old one, so a
reader (or a crash) never sees half a file; the temporaries a killed process leaves behind are
removed by the next process that claims the folder. A folder is written by one process at a time
(:class:`Claims`).

The identity of a run lives here too: what counts as a run (anything vae-lab would write over), and
one table (:data:`ROLES`) of which settings tell runs apart, which a resume may change and which may
differ between the members of one population, with one comparer over it (:func:`differences`).
"""

import contextlib
import enum
import errno
import fcntl
import logging
import os
import socket
import traceback
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from omegaconf import OmegaConf

from vae_lab.checkpoints import load_checkpoint
from vae_lab.errors import ConfigError, DamagedFile, UserError
from vae_lab.files import atomic_write, read_json, read_jsonl

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
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


# ---- one writer per folder ---------------------------------------------------------------------


READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


class ReadOnlyFolder(UserError):
    """A folder a command would write cannot be written (permissions, a read-only file system)."""

    def __init__(self, folder: Path, reason: str, what: str):
        self.folder, self.reason = folder, reason
        super().__init__(f"{folder} cannot be written ({reason}): a {what} needs a folder vae-lab can write")


class FolderInUse(UserError):
    """A folder another command holds as its writer (``owner``: who, as its lock file says)."""

    def __init__(self, folder: Path, owner: str, what: str):
        self.folder, self.owner = folder, owner
        super().__init__(f"{folder} is in use by {owner}: a {what} has one writer at a time; wait for it to finish")


class Claims:
    """The folders one command holds as their only writer. Each folder is held through an exclusive
    ``flock`` on its ``.lock`` file, which the kernel releases when the holder exits, however it
    exits, so a lock is never stale. Holding a folder the same Claims holds already is allowed (the
    command claims a run folder, then its training claims it again); a second Claims, in this
    process or another, is refused.

    A holder that lets go removes the ``.lock`` file (and the folder, where it made it and left it
    empty), so a finished run holds only what it wrote. A process that opened the file before it was
    removed would then lock a file nobody else sees: so a lock counts only while the path still names
    the file locked, and is taken again on the new file otherwise."""

    def __init__(self) -> None:
        self._held: dict[Path, list] = {}  # folder -> [lock file descriptor, depth]

    @contextlib.contextmanager
    def hold(self, folder: Path, what: str = "run folder") -> Iterator[None]:
        """Hold ``folder`` for the block, or refuse with one line if another writer does."""
        folder = Path(folder).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder} is a file, not a folder: choose a folder for the {what}")
        if folder in self._held:
            self._held[folder][1] += 1
            try:
                yield
            finally:
                self._held[folder][1] -= 1
            return
        made = not folder.exists()
        fd = _locked(folder, what)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"vae-lab process {os.getpid()} on {socket.gethostname()}{_slurm_job()}\n".encode(), 0)
        self._held[folder] = [fd, 1]
        try:
            yield
        finally:
            del self._held[folder]
            with contextlib.suppress(OSError):
                os.unlink(folder / LOCK_FILE)  # while still held: see the class's docstring
            os.close(fd)  # releases the lock
            if made:
                with contextlib.suppress(OSError):  # only if empty: a refused run leaves nothing behind
                    folder.rmdir()


def _locked(folder: Path, what: str) -> int:
    """An open descriptor of ``folder/.lock`` holding its exclusive lock, the file made where missing
    (the folder too); FolderInUse naming the holder where another process holds it."""
    lock = folder / LOCK_FILE
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue  # its folder was removed as it was made: a holder let go of an empty one
        except OSError as error:
            if error.errno not in READ_ONLY:
                raise
            raise ReadOnlyFolder(folder, error.strerror, what) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FolderInUse(folder, owner, what) from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before let go and removed this file as it did: lock the one there now


def _slurm_job() -> str:
    """Which SLURM job this process is, if any: a folder's holder may run on another machine."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    return f" (SLURM job {job})" if job else ""


def claimed(folder: Path, what: str = "run folder") -> contextlib.AbstractContextManager:
    """Hold ``folder`` for the block as its only writer (see :class:`Claims`)."""
    return Claims().hold(folder, what)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()

    @classmethod
    def open(cls, path: str | Path, weights: str = "best", key: Optional[str] = None) -> "RunDir":
        """A run folder to read: one that holds config.yaml and the checkpoint of ``weights`` (best or
        last), or one line saying what is missing. ``key``: the option that named it, for the message."""
        named = f"{key}={path}" if key else str(path)
        run = cls(path)
        if run.path.is_file():
            raise UserError(f"{named} is a file, not a folder: give the folder of a vae-lab train run")
        if not run.path.is_dir():
            raise UserError(f"{named}: no such folder; give the folder of a vae-lab train run")
        checkpoints = [run.best_checkpoint] + ([run.last_checkpoint] if weights == "last" else [])
        for checkpoint in checkpoints:
            if not checkpoint.is_file():
                raise UserError(f"{named}: no checkpoints/{checkpoint.name} there; give the folder of a vae-lab "
                                "train run that has finished at least one epoch")
        if not run.config.is_file():
            raise UserError(f"{named}: no config.yaml there; give the folder of a vae-lab train run")
        return run

    config = property(lambda self: self.path / "config.yaml")
    metrics_per_epoch = property(lambda self: self.path / "metrics.jsonl")
    metrics = property(lambda self: self.path / "metrics.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")
    figures = property(lambda self: self.path / "figures")
    eval = property(lambda self: self.path / "eval")
    error = property(lambda self: self.path / "error.txt")

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


def record_dead_job(run: RunDir, failure: str, overrides: Optional[list[str]] = None) -> None:
    """For a job of a sweep that died without a word (killed by its cluster): say why in its run
    folder, as the job itself says why it failed, and list the folder with its overrides (Hydra's
    ``.hydra/overrides.yaml``, which a job that died before starting did not write), so that the
    sweep's summary has its row. Written as the folder's one writer; a folder still held (the job
    alive after all) is left alone."""
    try:
        with claimed(run.path):
            listing = run.path / ".hydra" / "overrides.yaml"
            if overrides is not None and not listing.is_file():
                atomic_write(listing, lambda f: f.write(OmegaConf.to_yaml(overrides)))
            atomic_write(run.error, lambda f: f.write(f"{failure}\n"))
    except (UserError, OSError) as error:
        log.warning("could not record in %s that its job died: %s", run.path, error)


# ---- run identity: which settings tell runs apart -------------------------------------------------


class Role(enum.Enum):
    """What a config key means for a run's identity. A key without a role is what the run *is*: two
    runs that differ in it are different runs, and members of one population share it."""

    COMMAND = "set by the command itself (a sweep resumes, a sweeper reads a metric): never tells runs apart"
    SETTING = "how a run is computed, not what: a finished run with another value is the same run"
    LENGTH = "how long a run trains: a resumed run may train for more epochs"
    MEMBER = "may differ between the members of one stacked population (vae_lab/population.py)"
    REPLICATE = ("a repeat of one configuration (its seed): runs that differ only in it are one configuration, "
                 "measured over them; members of a population may differ in it too")


ROLES: dict[str, Role] = {  # a key, or a prefix ending in '.'
    "trainer.resume": Role.COMMAND, "optimized_metric": Role.COMMAND, "hydra.": Role.COMMAND,
    "hydra/": Role.COMMAND,  # the launcher and its cluster settings among them
    # The data is compared by its fingerprint instead of by data.root, so a moved copy still resumes;
    # eval. only changes the final metrics, which `vae-lab eval` recomputes.
    "trainer.device": Role.SETTING, "trainer.compile": Role.SETTING, "trainer.threads": Role.SETTING,
    "data.root": Role.SETTING, "data.download": Role.SETTING, "eval.": Role.SETTING, "logger.": Role.SETTING,
    "trainer.epochs": Role.LENGTH,
    "seed": Role.REPLICATE, "model.beta": Role.MEMBER, "model.beta_warmup_steps": Role.MEMBER,
    "model.latent_dim": Role.MEMBER, "model.temperature": Role.MEMBER, "model.temperature_min": Role.MEMBER,
    "model.anneal_rate": Role.MEMBER, "trainer.lr": Role.MEMBER, "trainer.grad_clip": Role.MEMBER,
}
SAME_RUN = frozenset({Role.COMMAND, Role.SETTING})  # what a finished run may differ in and stay the run
RESUMABLE = SAME_RUN | {Role.LENGTH}  # what a resumed run may change
STACKABLE = frozenset({Role.MEMBER, Role.REPLICATE})  # what the members of one population may differ in


def role(key: str) -> Optional[Role]:
    """The role of a dotted config key (or an override's key, whose ``+``, ``++`` or ``~`` does not
    change what it sets), None for one that tells runs apart."""
    key = key.lstrip("+~")
    for name, its_role in ROLES.items():
        if key == name or (name.endswith((".", "/")) and key.startswith(name)) or key == name.rstrip("./"):
            return its_role
    return None


def is_replicate(key: str) -> bool:
    """Whether runs that differ only in ``key`` are repeats of one configuration (their seed)."""
    return role(key) is Role.REPLICATE


def differences(before: dict, now: dict, ignoring: frozenset = frozenset()) -> list[tuple[str, Any, Any]]:
    """(key, before, now) for every dotted key whose value differs, except keys whose role is in
    ``ignoring``. Nested configs and flat {dotted key: value} dicts (overrides) compare alike; the
    settings of an image-space loss that is off are no difference."""
    flat_before, flat_now = flatten(_without_disabled_losses(before)), flatten(_without_disabled_losses(now))
    return [(key, flat_before.get(key), flat_now.get(key))
            for key in sorted(flat_before.keys() | flat_now.keys())
            if flat_before.get(key) != flat_now.get(key) and role(key) not in ignoring]


def _without_disabled_losses(values: dict) -> dict:
    """The config minus what of ``loss`` changes nothing: the settings of image-space losses that are
    off, and the preset's name."""
    loss = values.get("loss")
    if not isinstance(loss, dict):
        return values
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


def refuse_other_settings(run: RunDir, before: dict, now: dict) -> None:
    """Raise if the run in ``run`` was made with settings that a resume may not change."""
    for key, was, value in differences(before, now, RESUMABLE):
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
