"""The `vae-lab` command: ``train``, ``eval`` and ``sweep``, each a Hydra application over conf/, and
``reproduce``, which reruns the write-ups through them.

Before Hydra starts any work, the command line is composed and checked once (every job of a sweep
too), and the folder the command will write is claimed (one writer per run or sweep folder): a bad
value or a busy folder ends the command with one line on stderr and exit status 2, with nothing
written. Anything Hydra accepts on its own command line works as usual (``--cfg job``,
``--multirun``, ``hydra.run.dir=PATH``, ...).

Only the standard library is imported at the top, so that even a Ctrl-C while Python loads the
rest ends in one line.
"""

import contextlib
import dataclasses
import errno
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

USAGE = """usage: vae-lab COMMAND [KEY=VALUE ...] [hydra options]

commands:
  train   train one model:             vae-lab train model.latent_dim=2 data=color_mnist
  eval    re-evaluate a finished run:  vae-lab eval run_dir=outputs/2026-01-01/12-00-00
  sweep   train many and summarize:    vae-lab sweep sweep=latent_dims hydra/launcher=joblib
          (re)summarize a sweep:       vae-lab sweep summarize outputs/multirun/2026-01-01/12-00-00
  reproduce  rerun the write-ups:      vae-lab reproduce [--quick] (writes docs/results.md)

`vae-lab COMMAND --help` lists the config groups and the main keys with their defaults."""

# Set by the process that runs a sweep; a job running in another process (a joblib worker) watches
# it and stops when it is gone, instead of training on for nobody.
SWEEP_PROCESS_ENV = "VAE_LAB_SWEEP_PID"
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)

log = logging.getLogger("vae_lab")


def main(argv: Optional[list[str]] = None) -> None:
    try:
        run_command(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:
        print("\nvae-lab: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)


def run_command(argv: list[str]) -> None:
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
        if not any(a.startswith("trainer.resume=") for a in args):
            args = with_override(args, "trainer.resume=true")
        args = ["--multirun", *args]
        command = "train"
    if command not in COMMANDS:
        fail(f"unknown command {command!r}: expected one of train, eval, sweep, reproduce")
    if "--help" in args or "-h" in args:
        from vae_lab.help import help_text

        print(help_text(argv[0], COMMANDS[command][0]))
        return
    import hydra

    from vae_lab.compose import config_dir, store_schemas
    from vae_lab.errors import UserError

    config_name, task = COMMANDS[command]
    store_schemas()
    plan = check_before_work(config_name, args)
    multirun = plan.folder_key == "hydra.sweep.dir"
    try:
        with claim(plan), watching(plan):
            if multirun:
                os.environ[SWEEP_PROCESS_ENV] = str(os.getpid())
            app = hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(
                reporting_user_errors(task))
            sys.argv = [f"vae-lab {command}", *plan.args]
            app()
    except UserError as error:
        fail(str(error), error.exit_status)
    if multirun:
        finish_multirun()


def with_override(args: list[str], override: str) -> list[str]:
    """``args`` with one more override, placed among the overrides already there: Hydra's parser takes
    its overrides as one run of words, so an override after an option (``--cfg job``) would not parse."""
    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return [*args[:first], override, *args[first:]]


@dataclasses.dataclass
class Plan:
    """What a command will do, checked: its Hydra arguments, and the folder it writes, if known
    before Hydra starts (given by ``folder_key``, which the arguments then set to that very path)."""

    args: list[str]
    folder: Optional[Path] = None
    folder_key: Optional[str] = None
    jobs: int = 0  # a sweep's jobs, when known before it starts (the basic sweeper's grid)
    epochs: int = 0  # of each job
    at_once: int = 1  # jobs the launcher runs side by side (joblib's n_jobs)


def watching(plan: Plan):
    """A sweep's progress on stderr while it runs (k of n runs, time left), when its jobs are known."""
    if plan.folder_key != "hydra.sweep.dir" or not plan.jobs:
        return contextlib.nullcontext()
    from vae_lab.sweep_progress import SweepProgress

    return SweepProgress(plan.folder, plan.jobs, plan.epochs, plan.at_once)


@contextlib.contextmanager
def claim(plan: Plan):
    """Hold the command's folder for its duration. A folder this command created and that holds no
    run when the command fails (refused before any work, interrupted while starting) is removed
    again: what Hydra and the lock put there is all it has."""
    import shutil

    from vae_lab.runs import RunDir, claimed

    if plan.folder is None:
        yield
        return
    fresh = not plan.folder.exists()
    with claimed(plan.folder, "sweep folder" if plan.folder_key == "hydra.sweep.dir" else "run folder"):
        try:
            yield
        except BaseException:
            jobs = [p for p in plan.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]  # not .hydra
            if fresh and not any(RunDir(p).holds_a_run for p in [plan.folder, *jobs]):
                shutil.rmtree(plan.folder, ignore_errors=True)
            raise


def run_train(cfg) -> Optional[float]:
    """One training job; returns config.optimized_metric's final value to a sweeper that asks."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from vae_lab.compose import typed
    from vae_lab.progress import result
    from vae_lab.stacking import enlist
    from vae_lab.training import train

    hydra_config = HydraConfig.get()
    run_dir = hydra_config.runtime.output_dir
    config = typed(cfg)
    if config.trainer.threads is None:
        config.trainer.threads = threads_per_job(hydra_config.launcher)
    if hydra_config.mode == RunMode.MULTIRUN:
        config.logger.sweep = str(Path(hydra_config.sweep.dir).resolve())
    if enlist(config, run_dir):
        return None  # the stacked launcher trains it with its population
    stop_with_the_sweep()
    try:
        metrics = train(config, run_dir)
    except KeyboardInterrupt:
        kept = [o for o in HydraConfig.get().overrides.task
                if not o.startswith(("trainer.resume=", "hydra.run.dir="))]
        print(f"\nvae-lab: interrupted; every finished epoch is saved. Continue with:\n"
              f"  vae-lab train {' '.join(kept + ['trainer.resume=true', f'hydra.run.dir={run_dir}'])}",
              file=sys.stderr, flush=True)
        sys.exit(130)
    result(run_dir)
    return metrics[config.optimized_metric] if config.optimized_metric else None


_watching = False


def stop_with_the_sweep() -> None:
    """In a job that runs in a worker process of the sweep (joblib), end this process when the
    sweep's own process is gone: its finished epochs are saved, and rerunning the sweep resumes it."""
    global _watching
    sweep = os.environ.get(SWEEP_PROCESS_ENV)
    if _watching or not sweep or int(sweep) == os.getpid():
        return

    def watch(pid: int) -> None:
        while True:
            time.sleep(1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(143)  # as if terminated: the sweep was killed, so is its work
            except PermissionError:
                pass  # alive, someone else's: not ours to judge

    threading.Thread(target=watch, args=(int(sweep),), daemon=True, name="vae-lab sweep watch").start()
    _watching = True


def jobs_at_once(launcher) -> int:
    """How many jobs the launcher runs side by side on this machine: joblib's n_jobs (-1: one per core)."""
    if not launcher.get("n_jobs"):
        return 1
    cores = os.cpu_count() or 1
    return max(1, launcher.n_jobs if launcher.n_jobs > 0 else cores + 1 + launcher.n_jobs)


def threads_per_job(launcher) -> Optional[int]:
    """Torch threads for one job, so that parallel jobs x threads never exceed the cores: the joblib
    launcher's jobs share this machine's cores; a submitit job gets its cpus_per_task."""
    if launcher.get("n_jobs"):
        return max(1, (os.cpu_count() or 1) // jobs_at_once(launcher))
    return launcher.get("cpus_per_task") or None


def summarize_command(args: list[str]) -> None:
    from vae_lab.errors import UserError
    from vae_lab.runs import claimed
    from vae_lab.sweep import summarize

    if len(args) != 1:
        fail("usage: vae-lab sweep summarize SWEEP_FOLDER")
    folder = Path(args[0]).expanduser().resolve()
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder; give the folder of a vae-lab sweep")
    try:
        with claimed(folder, "sweep folder"):
            print(summarize(folder))
    except (FileNotFoundError, UserError) as error:
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


def run_eval(cfg) -> None:
    from vae_lab.compose import typed
    from vae_lab.reporting import evaluate_run
    from vae_lab.training import resolve_device

    config = typed(cfg)
    run, metrics = evaluate_run(config.run_dir, resolve_device(config.device), config.eval,
                                config.data_root)
    log.info("test/nelbo %.2f nats; %s in %s", metrics["test/nelbo"],
             "metrics and figures" if config.eval.figures else "metrics", run.eval)
    print(run.eval, flush=True)


COMMANDS: dict[str, tuple[str, Callable[[Any], object]]] = {  # command: (config, job)
    "train": ("train", run_train),
    "eval": ("evaluate", run_eval),
}


# ---- checking before any work -----------------------------------------------------------------


def check_before_work(config_name: str, args: list[str]) -> Plan:
    """Compose and check every job the command line asks for, and the folder it will write; exit 2
    on the first problem.

    In a multirun the jobs are those of the basic sweeper: the command line's own sweeps together
    with any ``hydra.sweeper.params`` a config defines (``sweep=...``). Other sweepers (Optuna) choose
    their jobs as they go: their base configuration is checked.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vae_lab.compose import config_dir, typed
    from vae_lab.errors import UserError, one_line

    parsed = get_args_parser().parse_args(args)
    if parsed.help or parsed.hydra_help or parsed.info or parsed.shell_completion:
        return Plan([a for a in args if a != "--multirun"])  # Hydra takes one mode at a time
    if parsed.config_path or parsed.config_dir or parsed.config_name:
        return Plan(args)  # a config tree of the user's own: the jobs check themselves as they start
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            jobs = [parsed.overrides]
            parser = OverridesParser.create()
            given = parser.parse_overrides(parsed.overrides)
            plain = [o.input_line for o in given if not o.is_sweep_override()]
            base = compose(config_name, overrides=plain, return_hydra_config=True)
            basic_sweeper = base.hydra.sweeper._target_.endswith("BasicSweeper")
            optuna_study = base.hydra.sweeper._target_.endswith("OptunaStudySweeper")
            if parsed.multirun:
                jobs = [plain]
                if basic_sweeper:
                    named = {o.key_or_group for o in given}
                    from_config = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items()
                                   if key not in named]
                    every = given + parser.parse_overrides(from_config)
                    jobs = [job for batch in BasicSweeper.split_arguments(every, None) for job in batch]
            for job in jobs:
                typed(compose(config_name, overrides=job))
            if parsed.cfg and parsed.multirun:
                print_jobs(config_name, jobs, parsed.cfg, parsed.resolve)
                sys.exit(0)
            if parsed.cfg:
                return Plan(args)  # prints the config; writes nothing
            plan = folder_plan(config_name, args, parsed.multirun, base)
            if parsed.multirun and basic_sweeper and plan.folder is not None:
                refuse_another_grid(plan.folder, jobs)
                plan.jobs, plan.epochs = len(jobs), int(base.trainer.epochs)
                plan.at_once = jobs_at_once(base.hydra.launcher)
            elif parsed.multirun and optuna_study and plan.folder is not None:
                plan.jobs, plan.epochs = int(base.hydra.sweeper.n_trials), int(base.trainer.epochs)  # trial k: folder k
            return plan
    except (UserError, HydraException, OmegaConfBaseException) as error:
        fail(one_line(error))


def print_jobs(config_name: str, jobs: list[list[str]], part: str, resolve: bool) -> None:
    """``vae-lab sweep --cfg job|hydra|all``: the config of every job the sweep would run (Hydra's own
    --cfg takes no --multirun)."""
    from hydra import compose
    from omegaconf import OmegaConf

    for number, job in enumerate(jobs):
        config = compose(config_name, overrides=job, return_hydra_config=part != "job")
        if part == "hydra":
            config = OmegaConf.create({"hydra": config.hydra})
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(OmegaConf.to_yaml(config, resolve=resolve and part == "job"))


def folder_plan(config_name: str, args: list[str], multirun: bool, base) -> Plan:
    """The folder the command writes, resolved now and handed to Hydra as the same absolute path
    (so a timestamped default names one folder, claimed before Hydra writes into it)."""
    from vae_lab.errors import UserError

    if config_name == "evaluate":
        run = Path(base.run_dir).expanduser().resolve()
        if run.is_file():
            raise UserError(f"run_dir={base.run_dir} is a file, not a folder: give the folder of a vae-lab train run")
        if not run.is_dir():
            raise UserError(f"run_dir={base.run_dir}: no such folder; give the folder of a vae-lab train run")
        if not (run / "checkpoints" / "best.pt").is_file():
            raise UserError(f"run_dir={base.run_dir}: no checkpoints/best.pt there; give the folder of a "
                            "vae-lab train run that has finished at least one epoch")
        return Plan([*args], run, "run_dir")
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = Path(str(base.hydra.sweep.dir if multirun else base.hydra.run.dir)).expanduser().resolve()
    except Exception:  # noqa: BLE001  a folder named by runtime values (${hydra.job.num}, ...): the job claims it
        return Plan(args)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{key}={folder} is a file, not a folder: choose a folder for the "
                        f"{'sweep' if multirun else 'run'}")
    return Plan([a for a in args if not a.startswith(f"{key}=")] + [f"{key}={folder}"], folder, key)


def refuse_another_grid(sweep_dir: Path, jobs: list[list[str]]) -> None:
    """A sweep folder is rerun with the grid that made it (to resume it), never with another one:
    its job folders are numbered by position in the grid, so another grid would put new settings
    into old runs' folders."""
    from omegaconf import OmegaConf

    from vae_lab.errors import UserError

    def settings(overrides: list[str]) -> dict[str, str]:
        pairs = (o.split("=", 1) for o in overrides if "=" in o)
        return {k: v for k, v in pairs if not k.startswith(("hydra.", "hydra/", "trainer.resume", "~hydra"))}

    for number, job in enumerate(jobs):
        saved = sweep_dir / str(number) / ".hydra" / "overrides.yaml"
        if not saved.is_file():
            continue
        try:
            before = settings(OmegaConf.to_container(OmegaConf.load(saved)))
        except Exception:  # noqa: BLE001
            raise UserError(f"{saved} cannot be read: the sweep in {sweep_dir} cannot be resumed; "
                            "give a new hydra.sweep.dir") from None
        now = settings(job)
        if before != now:
            keys = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
            show = lambda d: " ".join(f"{k}={d[k]}" if k in d else f"{k} unset" for k in keys)  # noqa: E731
            raise UserError(f"hydra.sweep.dir={sweep_dir} holds a sweep over another grid: its job {number} ran with "
                            f"{show(before)}, this command's job {number} has {show(now)}. Rerun that folder with "
                            "its own grid to resume it, or give a new hydra.sweep.dir")


def reporting_user_errors(task: Callable[[Any], object]) -> Callable[[Any], object]:
    """Hydra prints a traceback for any exception; a user's mistake, a damaged file or a full disk
    gets one line instead (status 2 for bad input, 1 for a run that failed). In a multirun a failed
    job records why in its folder and the other jobs carry on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from vae_lab.errors import UserError, one_line
    from vae_lab.runs import RunDir, record_failure

    def wrapped(cfg) -> object:
        hydra_config = HydraConfig.get()
        multirun = hydra_config.mode == RunMode.MULTIRUN
        run = RunDir(hydra_config.runtime.output_dir)
        try:
            return task(cfg)
        except Exception as error:
            out_of_space = isinstance(error, OSError) and error.errno in OUT_OF_SPACE
            message = (f"no space left on the disk while writing {error.filename or run.path}; free some space, "
                       "then rerun the same command with trainer.resume=true (every finished epoch is saved)"
                       if out_of_space else one_line(error))
            if multirun:
                record_failure(run, error)
                log.error("job %s failed: %s", run.path.name, message)
                return None
            if isinstance(error, (UserError, OmegaConfBaseException)) or out_of_space:
                fail(message, getattr(error, "exit_status", 1 if out_of_space else 2))
            raise

    wrapped.__name__ = task.__name__
    return wrapped


def fail(message: str, status: int = 2) -> NoReturn:
    print(f"vae-lab: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
