"""The errors vae-lab reports to its user as one line, without a traceback.

This module imports nothing of vae-lab and only the standard library at its top, so every layer
can raise them, and the command line can hold a Ctrl-C (:class:`HeldInterrupt`) before it imports
anything heavy.
"""

import dataclasses
import re
import signal
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


def closest(key: str, known: list[str]) -> "str | None":
    """The known dotted key most like ``key``, by the whole key, else by its last part; None where
    none is close (a suggestion that shares nothing with what was typed only misleads)."""
    import difflib

    def like(name: str, by_name: dict[str, str]) -> "str | None":
        found = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.6)
        return by_name[found[0]] if found else None

    parent, _, tail = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    # Among its siblings first: compared whole, a shared "trainer." made any trainer key look close.
    return (like(tail, siblings) or like(tail, {k.rpartition(".")[2]: k for k in known})
            or (None if siblings else like(key, {k: k for k in known})))


def no_such_key(key: str, known: list[str]) -> str:
    """What to say of a key the config does not have: the closest it has, if one is close."""
    near = closest(key, known)
    return f"no such key; the closest is {near}" if near else "no such key, nor one like it (--help lists the config's keys)"


def missing_key(error: Exception) -> "str | None":
    """The dotted key an OmegaConf or Hydra error says does not exist, or None."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    key = getattr(cause, "full_key", None)
    return key if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key else None


TYPE_NAMES = {"Float": "a number", "Integer": "a whole number", "Boolean": "true or false"}


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
        kind = re.match(r"Value '.*' (?:of type '\w+' could not be converted to (\w+)|is not a valid (bool))", message)
        if kind:  # OmegaConf's wording, in the words the other checks use
            name = kind.group(1) or "Boolean"
            message = f"expected {TYPE_NAMES.get(name, name.lower())}"
        return f"{key}={cause.value}: {message}" if cause.value is not None else f"{key}: {message}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return ": ".join(lines[:2]) if lines and "parsing override" in lines[0] else (lines or [repr(error)])[0]


def fail(message: str, status: int = 2) -> NoReturn:
    """End the command with one line on stderr (status 2: bad input; 1: a run that failed)."""
    print(f"vae-lab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


class HeldInterrupt:
    """The SIGINT handler while vae-lab starts: a Ctrl-C is noted, not raised. Raised inside an
    import (torch, numpy, scipy), a KeyboardInterrupt leaves a half-loaded module that fails later
    in other ways (a RecursionError, "cannot load module more than once"), and raised inside Hydra's
    start-up it becomes "Error locating target" or is swallowed; so it is raised where the work
    begins, by :meth:`release`. The handler is the process's own state, held by the signal module."""

    def __init__(self) -> None:
        self.pending = False

    def __call__(self, signum, frame) -> None:
        self.pending = True

    @staticmethod
    def hold() -> None:
        signal.signal(signal.SIGINT, HeldInterrupt())

    @staticmethod
    def release() -> None:
        """Ctrl-C acts at once from now on; one pressed while it was held is raised here."""
        held = signal.getsignal(signal.SIGINT)
        if isinstance(held, HeldInterrupt):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if held.pending:
                raise KeyboardInterrupt


class ReleaseInterrupt:
    """Hydra callback, first in conf/: the work begins (a run, or a sweep's launcher). Hydra calls
    every moment of a callback, so the others are here too, doing nothing (hydra's own Callback
    base class would be the one import here beyond the standard library)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        HeldInterrupt.release()

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        HeldInterrupt.release()

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        pass

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        pass

