"""The `vae-lab` command: ``train``, ``eval`` and ``sweep``, each a Hydra application over conf/, and
``reproduce``, which reruns the write-ups through them.

Before Hydra starts any work, the command line is composed and checked once (every job of a sweep
too): a bad value ends the command with one line on stderr that names the key, the value and what is
allowed, and exit status 2. Anything Hydra accepts on its own command line works as usual
(``--cfg job``, ``--multirun``, ``hydra.run.dir=PATH``, ...).
"""

import dataclasses
import logging
import os
import sys
from typing import Callable, NoReturn, Optional

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import (ConfigAttributeError, ConfigKeyError, MissingMandatoryValue,
                              OmegaConfBaseException)

from vae_lab.config import UserError, config_dir, store_schemas, typed
from vae_lab.runs import RunDir, record_failure

USAGE = """usage: vae-lab COMMAND [KEY=VALUE ...] [hydra options]

commands:
  train   train one model:             vae-lab train model.latent_dim=2 data=color_mnist
  eval    re-evaluate a finished run:  vae-lab eval run_dir=outputs/2026-01-01/12-00-00
  sweep   train many and summarize:    vae-lab sweep sweep=latent_dims hydra/launcher=joblib
          (re)summarize a sweep:       vae-lab sweep summarize outputs/multirun/2026-01-01/12-00-00
  reproduce  rerun the write-ups:      vae-lab reproduce [--quick] (writes docs/results.md)

`vae-lab COMMAND --help` lists the config groups and the composed config."""

log = logging.getLogger("vae_lab")


def main(argv: Optional[list[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        sys.exit(0 if argv else 2)
    command, args = argv[0], argv[1:]
    if command == "reproduce":
        from vae_lab.reproduce import main as reproduce

        reproduce(args)
        return
    if command == "sweep" and args[:1] == ["summarize"]:
        summarize_command(args[1:])
        return
    if command == "sweep":
        # A sweep is a multirun of `train` that continues what an earlier run of it left unfinished.
        resume = [] if any(a.startswith("trainer.resume=") for a in args) else ["trainer.resume=true"]
        args = ["--multirun", *resume, *args]
        command = "train"
    if command not in COMMANDS:
        fail(f"unknown command {command!r}: expected one of train, eval, sweep, reproduce")
    config_name, task = COMMANDS[command]
    store_schemas()
    check_before_work(config_name, args)
    app = hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(
        reporting_user_errors(task))
    sys.argv = [f"vae-lab {command}", *args]
    app()
    if "--multirun" in args or "-m" in args:
        finish_multirun()


def run_train(cfg: DictConfig) -> Optional[float]:
    """One training job; returns config.optimized_metric's final value to a sweeper that asks."""
    from vae_lab.train import train

    hydra_config = HydraConfig.get()
    run_dir = hydra_config.runtime.output_dir
    config = typed(cfg)
    if config.trainer.threads is None:
        config.trainer.threads = threads_per_job(hydra_config.launcher)
    try:
        metrics = train(config, run_dir)
    except KeyboardInterrupt:
        kept = [o for o in HydraConfig.get().overrides.task
                if not o.startswith(("trainer.resume=", "hydra.run.dir="))]
        print(f"\nvae-lab: interrupted; every finished epoch is saved. Continue with:\n"
              f"  vae-lab train {' '.join(kept + ['trainer.resume=true', f'hydra.run.dir={run_dir}'])}",
              file=sys.stderr, flush=True)
        sys.exit(130)
    print(run_dir, flush=True)
    return metrics[config.optimized_metric] if config.optimized_metric else None


def threads_per_job(launcher: DictConfig) -> Optional[int]:
    """Torch threads for one job, so that parallel jobs x threads never exceed the cores: the joblib
    launcher's jobs share this machine's cores; a submitit job gets its cpus_per_task."""
    if launcher.get("n_jobs"):
        cores = os.cpu_count() or 1
        jobs = launcher.n_jobs if launcher.n_jobs > 0 else cores + 1 + launcher.n_jobs  # joblib's -1: all
        return max(1, cores // max(1, jobs))
    return launcher.get("cpus_per_task") or None


def summarize_command(args: list[str]) -> None:
    from vae_lab.sweep import summarize

    if len(args) != 1:
        fail("usage: vae-lab sweep summarize SWEEP_FOLDER")
    try:
        print(summarize(args[0]))
    except FileNotFoundError as error:
        fail(str(error))


def finish_multirun() -> None:
    """After a multirun: print the sweep folder last; exit 1 if any job failed (each left error.txt,
    and the summary lists them)."""
    from vae_lab import sweep

    if sweep.last_summarized is None:
        return
    print(sweep.last_summarized, flush=True)
    failed = sweep.failed_runs(sweep.last_summarized)
    if failed:
        print(f"vae-lab: {len(failed)} job(s) failed: {', '.join(failed)} (see error.txt in each); "
              "rerun the same command to retry them", file=sys.stderr)
        sys.exit(1)


def run_eval(cfg: DictConfig) -> None:
    from vae_lab.reporting import evaluate_run
    from vae_lab.train import resolve_device

    config = typed(cfg)
    run, metrics = evaluate_run(config.run_dir, resolve_device(config.device), config.eval,
                                config.data_root)
    log.info("test/nelbo %.2f nats; %s in %s", metrics["test/nelbo"],
             "metrics and figures" if config.eval.figures else "metrics", run.eval)
    print(run.eval, flush=True)


COMMANDS: dict[str, tuple[str, Callable[[DictConfig], object]]] = {  # command: (config, job)
    "train": ("train", run_train),
    "eval": ("evaluate", run_eval),
}


# ---- checking before any work -----------------------------------------------------------------


def check_before_work(config_name: str, args: list[str]) -> None:
    """Compose and check every job the command line asks for; exit 2 on the first bad value.

    In a multirun the jobs are those of the basic sweeper: the command line's own sweeps together
    with any ``hydra.sweeper.params`` a config defines (``sweep=...``). Other sweepers (Optuna) choose
    their jobs as they go: their base configuration is checked.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = get_args_parser().parse_args(args)
    if parsed.help or parsed.hydra_help or parsed.info or parsed.shell_completion:
        return
    if parsed.config_path or parsed.config_dir or parsed.config_name:
        return  # a config tree of the user's own: the jobs check themselves as they start
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            jobs = [parsed.overrides]
            if parsed.multirun:
                parser = OverridesParser.create()
                given = parser.parse_overrides(parsed.overrides)
                plain = [o.input_line for o in given if not o.is_sweep_override()]
                base = compose(config_name, overrides=plain, return_hydra_config=True)
                if base.hydra.sweeper._target_.endswith("BasicSweeper"):
                    named = {o.key_or_group for o in given}
                    from_config = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items()
                                   if key not in named]
                    every = given + parser.parse_overrides(from_config)
                    jobs = [job for batch in BasicSweeper.split_arguments(every, None) for job in batch]
                else:
                    jobs = [plain]
            for job in jobs:
                typed(compose(config_name, overrides=job))
    except (UserError, HydraException, OmegaConfBaseException) as error:
        fail(one_line(error))


def reporting_user_errors(task: Callable[[DictConfig], object]) -> Callable[[DictConfig], object]:
    """Hydra prints a traceback for any exception; a user's mistake gets one line and status 2. In a
    multirun a failed job records why in its folder and the other jobs carry on."""

    def wrapped(cfg: DictConfig) -> object:
        hydra_config = HydraConfig.get()
        multirun = hydra_config.mode == RunMode.MULTIRUN
        run = RunDir(hydra_config.runtime.output_dir)
        if multirun:
            run.error.unlink(missing_ok=True)  # an earlier attempt's
        try:
            return task(cfg)
        except Exception as error:
            if multirun:
                record_failure(run, error)
                log.error("job %s failed: %s", run.path.name, one_line(error))
                return None
            if isinstance(error, (UserError, OmegaConfBaseException)):
                fail(one_line(error))
            raise

    wrapped.__name__ = task.__name__
    return wrapped



def one_line(error: Exception) -> str:
    """The gist of a config error in one line: the key, the value and what is wrong."""
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


def fail(message: str) -> NoReturn:
    print(f"vae-lab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
