"""Writing and reading a run's files: every write atomic, every read of a damaged file one clear error.

Every file is written to a temporary name in the same folder, flushed to disk and renamed over the
old one, so a reader (or a crash) never sees half a file; the temporaries a killed process leaves
behind are removed by the next process that holds the folder (vae_lab/runs.py, ``Claims``).
"""

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

from vae_lab.errors import DamagedFile

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read it back: files get the usual permissions, not mkstemp's private 0600
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what atomic_write's mkstemp names look like



def cache_folder() -> Path:
    """Where vae-lab keeps what it made once and reuses (a reference classifier, drawn dSprites):
    ``$VAE_LAB_CACHE``, else ``$XDG_CACHE_HOME/vae-lab``, else ``~/.cache/vae-lab``. Never beside the
    data, which may be shared or read-only."""
    if os.environ.get("VAE_LAB_CACHE"):
        return Path(os.environ["VAE_LAB_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "vae-lab"


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, rename it over."""
    atomic_writes([(path, write, binary)])


def atomic_writes(files: list[tuple[Path, Callable[[Any], None], bool]]) -> None:
    """Several files as one step: each (path, write, binary) written in full to a temporary file
    beside it and flushed to disk, then all renamed into place, in order. A write that fails (a full
    disk) leaves every one of them as it was."""
    written: list[tuple[str, Path]] = []
    try:
        for path, write, binary in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            written.append((tmp, path))
            try:
                with os.fdopen(fd, "wb" if binary else "w") as file:
                    write(file)
                    file.flush()
                    os.fsync(file.fileno())
            except OSError as error:
                if error.filename is None:
                    error.filename = str(path)  # a write through a file object names no file
                raise
            os.chmod(tmp, 0o666 & ~_UMASK)
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
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
    """Keys in natural order at every depth: z1, z2, ..., z10 (sorted as text, z10 came before z2)."""
    atomic_write(path, lambda f: json.dump(naturally_sorted(data), f, indent=2))


def naturally_sorted(data: Any) -> Any:
    """``data`` with every mapping's keys in natural order: numbers within them compared as numbers."""
    if isinstance(data, dict):
        return {key: naturally_sorted(data[key]) for key in sorted(data, key=_natural)}
    if isinstance(data, list):
        return [naturally_sorted(item) for item in data]
    return data


def _natural(key: Any) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(key)))


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
