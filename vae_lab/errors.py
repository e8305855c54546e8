"""The errors vae-lab reports to its user as one line, without a traceback.

This module imports nothing of vae-lab, so every layer can raise them.
"""

import dataclasses
import sys
from pathlib import Path
from typing import Any, NoReturn


class UserError(Exception):
    """A problem with what the user asked for; the CLI prints it as one line and exits with status 2."""

    exit_status = 2


class ConfigError(UserError):
    """A config value that cannot be used: names the key, the value and what is wrong with it."""

    def __init__(self, key: str, value: Any, problem: str):
        self.key, self.value, self.problem = key, value, problem
        super().__init__(f"{key}={show(value)}: {problem}")

    def under(self, prefix: str) -> "ConfigError":
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.value, self.problem)


class DamagedFile(UserError):
    """A file vae-lab wrote earlier that can no longer be read (truncated, overwritten, edited)."""

    def __init__(self, path: Path, reason: str, remedy: str):
        self.path = path
        super().__init__(f"{path} cannot be read ({reason}); {remedy}")


class RunFailed(UserError):
    """A run that started well and could not finish (diverged, disk full): not the input's fault,
    so exit status 1. Its run folder stays resumable and says why in error.txt."""

    exit_status = 1


def show(value: Any) -> str:
    """A value as a user types it on the command line."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def one_line(error: Exception) -> str:
    """The gist of an error in one line: for a config error, the key, the value and what is wrong."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, MissingMandatoryValue,
                                  OmegaConfBaseException)

    if isinstance(error, MissingConfigException) and error.options is not None:
        group, _, name = (error.missing_cfg_file or "").rpartition("/")
        return f"{group}={name}: no such {group}; expected one of {', '.join(sorted(error.options))}"
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    key = getattr(cause, "full_key", None)
    if isinstance(cause, MissingMandatoryValue) and key:
        return f"{key} is required: give {key}=VALUE"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key:
        schema = getattr(cause, "object_type", None)
        known = [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
        group = key.rpartition(".")[0]
        return f"{key}: no such key" + (f" in {group}; its keys are {', '.join(known)}" if known else "")
    if isinstance(cause, OmegaConfBaseException) and key:
        message = (getattr(cause, "msg", None) or str(cause)).strip().splitlines()[0]
        return f"{key}={cause.value}: {message}" if cause.value is not None else f"{key}: {message}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return ": ".join(lines[:2]) if lines and "parsing override" in lines[0] else (lines or [repr(error)])[0]


def fail(message: str, status: int = 2) -> NoReturn:
    """End the command with one line on stderr (status 2: bad input; 1: a run that failed)."""
    print(f"vae-lab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)
