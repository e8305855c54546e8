"""The commands behind `vae-lab` (vae_lab/cli.py): ``train``, ``eval`` and ``sweep``, each a Hydra
application over conf/; ``sweep summarize`` and ``explore``.

Before Hydra starts any work, the command line is composed and checked once (every job of a sweep
too, vae_lab/plan.py), and the folder the command will write is claimed (one writer per run or sweep
folder): a bad value or a busy folder ends the command with one line on stderr and exit status 2,
with nothing written. Anything Hydra accepts on its own command line works as usual (``--cfg job``,
``--multirun``, ``hydra.run.dir=PATH``, ...).
"""

import argparse
import contextlib
import errno
import logging
import os
import select
import shlex
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf.errors import OmegaConfBaseException

# vae_lab.sweep and vae_lab.trackers hold conf/train.yaml's Hydra callbacks: imported here, where a
# Ctrl-C is a plain KeyboardInterrupt (imported by Hydra's start-up, one becomes "Error locating target").
import vae_lab.trackers  # noqa: F401
from vae_lab import device, plan
from vae_lab.compose import config_dir, hydra_value, job_config, store_schemas, typed
from vae_lab.errors import HeldInterrupt, UserError, fail, one_line
from vae_lab.explore import serve
from vae_lab.progress import SweepProgress, result
from vae_lab.reporting import evaluate_run
from vae_lab.runs import Claims, FolderInUse, ReadOnlyFolder, Role, RunDir, claimed, record_failure, role
from vae_lab.summary import closing_verdict, failed_runs
from vae_lab.sweep import summarize, summary_text
from vae_lab.training import train

# Set by the process that runs a sweep (see sweep_process); a job running in another process on the
# same machine (a joblib worker) watches it and stops when it is gone, instead of training on for nobody.
SWEEP_PROCESS_ENV = "VAE_LAB_SWEEP_PID"
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)

log = logging.getLogger("vae_lab")


def train_or_eval(command: str, args: list[str]) -> None:
    """`vae-lab train|eval|sweep ARGS`: the command line checked and its folder claimed, then Hydra's
    application over conf/ (a multirun for a sweep)."""
    device.flush_subnormals()  # before any work starts torch's worker threads: they copy the setting then
    config_name, task = COMMANDS[command]
    store_schemas()
    try:
        checked = plan.check_command(config_name, args)
    except UserError as error:
        fail(str(error))
    claims = Claims()  # the folders this command holds as their only writer
    try:
        with claim(checked, claims), watching(checked):
            if checked.sweep:
                os.environ[SWEEP_PROCESS_ENV] = sweep_process()
            app = hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(
                reporting_user_errors(lambda cfg: task(cfg, claims), task.__name__))
            sys.argv = [f"vae-lab {command}", *checked.args]
            try:
                app()
            except KeyboardInterrupt:  # where no job caught it: a stacked population, a launcher waiting
                if not checked.sweep:
                    raise
                sweep_interrupted()
    except ReadOnlyFolder as error:
        fail(f"{error}; {elsewhere(checked)}")
    except UserError as error:
        fail(str(error), error.exit_status)
    if checked.sweep and checked.folder is not None:
        finish_multirun(checked.folder)


def elsewhere(checked: plan.Plan) -> str:
    """What to do where the command's folder cannot be written."""
    if checked.folder_key == "run_dir":
        return "write the evaluation to a folder you can write with out_dir=PATH"
    if checked.sweep:
        return "give a hydra.sweep.dir you can write (vae-lab sweep summarize prints a read-only sweep's summary)"
    if RunDir(checked.folder).is_complete:
        return (f"the run there is complete; vae-lab eval run_dir={hydra_value(str(checked.folder))} out_dir=PATH "
                "evaluates it again into a folder you can write")
    return f"give a {checked.folder_key} you can write"


def watching(plan):
    """A sweep's progress on stderr while it runs (k of n runs, time left), when its jobs are known."""
    if not plan.sweep or not plan.jobs:
        return contextlib.nullcontext()

    return SweepProgress(plan.folder, plan.jobs, plan.epochs, plan.at_once)


@contextlib.contextmanager
def claim(checked: plan.Plan, claims: Claims):
    """Hold the command's folder for its duration. A folder this command created and that holds no
    run when the command fails (refused before any work, interrupted while starting) is removed
    again: what Hydra and the lock put there is all it has. One it submitted cluster jobs from is
    kept: their logs are there, and a job may still be writing."""
    if checked.folder is None:
        yield
        return
    fresh = not checked.folder.exists()
    evaluation = RunDir(checked.folder).eval if checked.folder_key == "run_dir" else None  # eval's output
    fresh_evaluation = evaluation is not None and not evaluation.exists()
    with claims.hold(checked.folder, "sweep folder" if checked.sweep else "run folder"):
        try:
            yield
        except BaseException:
            if fresh_evaluation and evaluation.is_dir() and {p.name for p in evaluation.iterdir()} <= {"eval.log"}:
                shutil.rmtree(evaluation, ignore_errors=True)  # its log alone: what the refusal said on stderr
            jobs = [p for p in checked.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]  # not .hydra
            submitted = (checked.folder / ".submitit").exists()  # cluster jobs: their logs, and maybe their writes
            if fresh and not submitted and not any(RunDir(p).holds_a_run for p in [checked.folder, *jobs]):
                shutil.rmtree(checked.folder, ignore_errors=True)
            raise


def run_train(cfg, claims) -> Optional[float]:
    """One training job; returns config.optimized_metric's final value to a sweeper that asks."""
    hydra_config = HydraConfig.get()
    run_dir = hydra_config.runtime.output_dir
    config = job_config(cfg, hydra_config)
    stop_with_the_sweep()
    try:
        metrics = train(config, run_dir, claims)
    except KeyboardInterrupt:
        if not RunDir(run_dir).last_checkpoint.is_file():
            print("\nvae-lab: interrupted before its first epoch finished, so none was saved",
                  file=sys.stderr, flush=True)
            sys.exit(130)
        if hydra_config.mode == RunMode.MULTIRUN:  # the run alone is not what the user asked for
            sweep_interrupted()
        kept = [o for o in hydra_config.overrides.task if role(o.split("=", 1)[0]) is not Role.COMMAND]
        again = [*kept, "trainer.resume=true", f"hydra.run.dir={hydra_value(run_dir)}"]
        print(f"\nvae-lab: interrupted; every finished epoch is saved. Continue with:\n"
              f"  vae-lab train {' '.join(shlex.quote(a) for a in again)}", file=sys.stderr, flush=True)
        sys.exit(130)
    result(run_dir)
    return metrics[config.optimized_metric] if config.optimized_metric else None


def sweep_interrupted() -> None:
    print("\nvae-lab: interrupted; every finished epoch is saved. Rerun the same command to continue: "
          "the sweep skips complete runs and resumes the others", file=sys.stderr, flush=True)
    sys.exit(130)


SWEEP_WATCH = "vae-lab sweep watch"  # the thread's name: one per worker process


def sweep_process() -> str:
    """This process, as its jobs in other processes find it: its PID, and where that PID means it."""
    return f"{os.getpid()}@{place()}"


def place() -> str:
    """Where this process runs, for watching another by its PID: this boot of this machine, this PID
    namespace, and this SLURM job, if any. A job on another node or in a container of its own sees
    other PIDs, and a job SLURM started is SLURM's to stop, even on the sweep's own machine."""
    try:
        here = f"{Path('/proc/sys/kernel/random/boot_id').read_text().strip()}:{os.readlink('/proc/self/ns/pid')}"
    except OSError:  # not Linux: the host name is the best there is
        here = socket.gethostname()
    return f"{here}:{os.environ.get('SLURM_JOB_ID', '')}"


def stop_with_the_sweep() -> None:
    """In a job that runs in a worker process of the sweep on its machine (joblib, submitit_local),
    end this process when the sweep's own process is gone: its finished epochs are saved, and
    rerunning the sweep resumes it. A job elsewhere (a cluster node) is its scheduler's to stop."""
    sweep, _, where = os.environ.get(SWEEP_PROCESS_ENV, "").partition("@")
    if (not sweep.isdigit() or where != place() or int(sweep) == os.getpid()
            or any(t.name == SWEEP_WATCH for t in threading.enumerate())):
        return
    threading.Thread(target=exit_when_gone, args=(int(sweep),), daemon=True, name=SWEEP_WATCH).start()


def exit_when_gone(pid: int) -> None:
    """Exit this process as if terminated once process ``pid`` has ended. Through a pidfd, which
    turns readable when the process ends, zombie or not: a signal 0 still reaches a zombie, and a
    sweep killed before its parent reaped it would be watched forever."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(143)
    except (AttributeError, OSError):  # no pidfd (not Linux 5.3+): poll the process instead
        while True:
            time.sleep(1)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(143)
            except PermissionError:
                pass  # alive, someone else's: not ours to judge
    watch = select.poll()
    watch.register(handle, select.POLLIN)
    watch.poll()  # until the sweep's process ends
    os._exit(143)  # as if terminated: the sweep was killed, so is its work


def explore_command(args: list[str]) -> None:
    """`vae-lab explore RUN_OR_SWEEP [--port N]`: serve the latent explorer until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="vae-lab explore", description="A trained model's latent space, live "
                                     "in the browser (the explore extra: pip install 'vae-lab[explore]').")
    parser.add_argument("folder", type=Path, help="a run folder, or a sweep folder (pick and compare its runs)")
    parser.add_argument("--port", type=int, default=None, help="the port to serve on (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to serve on (default: this machine only)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="where the model runs")
    parser.add_argument("--data-root", default=None, help="read MNIST from here instead of the run's data.root")
    options = parser.parse_args(args)
    if options.port is not None and not 0 <= options.port <= 65535:
        fail(f"--port {options.port}: expected a port number from 0 to 65535 (or leave --port out for a free one)")

    HeldInterrupt.release()
    try:
        serve(options.folder, options.port, options.host, options.device, options.data_root,
              ready=lambda url: print(f"{url}", flush=True))
    except UserError as error:
        fail(str(error), error.exit_status)


def summarize_command(args: list[str]) -> None:
    """`vae-lab sweep summarize SWEEP_FOLDER`: the sweep's summary, written again and printed."""

    HeldInterrupt.release()
    if len(args) != 1:
        fail("usage: vae-lab sweep summarize SWEEP_FOLDER")
    folder = Path(args[0]).expanduser().resolve()
    if not folder.is_dir():
        fail(f"{args[0]}: no such folder; give the folder of a vae-lab sweep")
    try:
        try:
            with claimed(folder, "sweep folder"):
                summarize(folder)
            verdict = closing_verdict(folder)
            if verdict is not None:
                print(f"vae-lab: {verdict}", file=sys.stderr, flush=True)
            print(folder)
        except (FolderInUse, ReadOnlyFolder) as unwritable:  # nothing needs writing to show it
            print(summary_text(folder), end="")
            why = (f"is being written by {unwritable.owner}, which summarizes it as it ends"
                   if isinstance(unwritable, FolderInUse) else f"cannot be written ({unwritable.reason})")
            print(f"vae-lab: {folder} {why}: its summary so far is printed here, not written", file=sys.stderr)
    except (FileNotFoundError, UserError) as error:
        fail(str(error))


def finish_multirun(folder: Path) -> None:
    """After a multirun (summarized as it ended): print the sweep folder last; exit 1 if any job
    failed (each left error.txt, and the summary lists them)."""
    verdict = closing_verdict(folder)
    if verdict is not None:
        print(f"vae-lab: {verdict}", file=sys.stderr, flush=True)
    print(folder, flush=True)
    failed = failed_runs(folder)
    if failed:
        print(f"vae-lab: {len(failed)} job(s) failed: {', '.join(failed)} (see error.txt in each); "
              "rerun the same command to retry them", file=sys.stderr)
        sys.exit(1)


def run_eval(cfg, claims) -> None:
    config = typed(cfg)
    out, metrics = evaluate_run(config.run_dir, config.device, config.eval, config.data_root, config.out_dir)
    log.info("test/nelbo %.2f nats; %s in %s", metrics["test/nelbo"],
             "metrics and figures" if config.eval.figures else "metrics", out)
    print(out, flush=True)


COMMANDS: dict[str, tuple[str, Callable[[Any, Any], object]]] = {  # command: (config, job of (cfg, claims))
    "train": ("train", run_train),
    "eval": ("evaluate", run_eval),
}


def reporting_user_errors(task: Callable[[Any], object], name: str) -> Callable[[Any], object]:
    """Hydra prints a traceback for any exception; a user's mistake, a damaged file or a full disk
    gets one line instead (status 2 for bad input, 1 for a run that failed). In a multirun a failed
    job records why in its folder and the other jobs carry on."""
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

    wrapped.__name__ = name
    return wrapped
