"""The `vae-lab` command: which command the first word names, and how the process ends.

Only the standard library is imported here, and a Ctrl-C is held (:class:`HeldInterrupt`) until the
work begins, so that a Ctrl-C at any moment ends in one line: the commands themselves
(vae_lab/commands.py, vae_lab/reproduce.py) are imported once the hold is in place.
"""

import os
import sys
from typing import Optional

from vae_lab.errors import HeldInterrupt, fail  # the standard library only, as this module

USAGE = """usage: vae-lab COMMAND [KEY=VALUE ...] [hydra options]

commands:
  train   train one model:             vae-lab train model.latent_dim=2 data=color_mnist
  eval    re-evaluate a finished run:  vae-lab eval outputs/2026-01-01/12-00-00 (or run_dir=...)
  sweep   train many and summarize:    vae-lab sweep sweep=latent_dims hydra/launcher=joblib
          (re)summarize a sweep:       vae-lab sweep summarize outputs/multirun/2026-01-01/12-00-00
  reproduce  rerun the write-ups:      vae-lab reproduce [--quick] (writes docs/findings/results.md)
  explore  the latent space, live:     vae-lab explore outputs/2026-01-01/12-00-00 [--port 8000]

`vae-lab COMMAND --help` lists the config groups and the main keys with their defaults."""


def main(argv: Optional[list[str]] = None) -> None:
    HeldInterrupt.hold()
    try:
        try:
            run_command(sys.argv[1:] if argv is None else list(argv))
        finally:
            HeldInterrupt.release()  # where no work began (help, a refusal): a Ctrl-C still counts
    except KeyboardInterrupt:
        print("\nvae-lab: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except BrokenPipeError:  # `vae-lab sweep --cfg job | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail
        sys.exit(141)


def run_command(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    command, args = argv[0], argv[1:]
    if command == "sweep" and args[:1] != ["summarize"]:
        # A sweep is a multirun of `train` that continues what an earlier run of it left unfinished.
        if not any(a.startswith("trainer.resume=") for a in args):
            args = with_override(args, "trainer.resume=true")
        args, command = ["--multirun", *args], "train"
    if command == "eval" and args and not args[0].startswith("-") and ("=" not in args[0] or os.path.isdir(args[0])):
        args = [f"run_dir={args[0]}", *args[1:]]  # `vae-lab eval RUN`, as explore and summarize take a folder
    if command not in ("train", "eval", "sweep", "reproduce", "explore"):
        fail(f"unknown command {command!r}: expected one of train, eval, sweep, reproduce, explore")
    if command in ("train", "eval") and ("--help" in args or "-h" in args):
        from vae_lab.help import help_text  # Hydra alone: no torch to wait for

        print(help_text(argv[0], "train" if command == "train" else "evaluate"))
        return
    from vae_lab import commands, reproduce  # everything else, now that a Ctrl-C is held

    if command == "reproduce":
        reproduce.main(args)
    elif command == "explore":
        commands.explore_command(args)
    elif command == "sweep":
        commands.summarize_command(args[1:])
    else:
        commands.train_or_eval(command, args)


def with_override(args: list[str], override: str) -> list[str]:
    """``args`` with one more override, placed among the overrides already there: Hydra's parser takes
    its overrides as one run of words, so an override after an option (``--cfg job``) would not parse."""
    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return [*args[:first], override, *args[first:]]


if __name__ == "__main__":
    main()
