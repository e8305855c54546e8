"""The errors vae-lab reports to its user as one line, without a traceback.

This module imports nothing of vae-lab, so every layer can raise them.
"""

from pathlib import Path
from typing import Any


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
