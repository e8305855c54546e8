"""An Optuna search killed mid-trial and rerun with the same command: what the rerun says, which trial
it finishes where it stopped, and the study it ends with.

The search of docs/guide/sweeps.md (6 trials of 2 epochs, no figures) starts in a new folder; after
--kill-after seconds the whole process group gets SIGKILL, as a lost machine would. The same command
then runs again. Printed: the rerun's line about the trials it found, the trial(s) the kill left
unfinished, the wall time from the first start, and every trial's parameters and validation NELBO.

    python benchmarks/resumed_search.py --sweep-dir outputs/resumed-search [--kill-after 64] [--out summary.csv]

--out writes a row per trial (trial, resumed: beta, latent, lr, val/nelbo) as docs/findings/ generates
its tables from.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from results_csv import add_out_option, add_sweep_options, refuse_existing_out, write_results

from vae_lab.runs import RunDir
from vae_lab.summary import read_summary_csv

TRIALS = 6


def unfinished(sweep: Path) -> list[str]:
    """Trial folders that began training but hold no final metrics."""
    return sorted((p.name for p in sweep.iterdir() if p.name.isdigit()
                   and RunDir(p).metrics_per_epoch.is_file() and not RunDir(p).is_complete), key=int)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_options(parser, "a new folder for the search")
    parser.add_argument("--kill-after", type=float, default=64.0, help="seconds before the SIGKILL")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out, args.sweep_dir)
    command = [sys.executable, "-m", "vae_lab", "sweep", "hparams_search=optuna", f"hydra.sweeper.n_trials={TRIALS}",
               "trainer.epochs=2", "eval.figures=false", f"hydra.sweep.dir={args.sweep_dir}",
               f"data.root={Path(args.data_root).resolve()}"]
    print(" ".join(command[1:]), flush=True)
    started = time.perf_counter()
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first.wait(timeout=args.kill_after)
        parser.error(f"the search finished within {args.kill_after:g} s: give a shorter --kill-after")
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    left = unfinished(args.sweep_dir)
    print(f"killed after {args.kill_after:g} s; unfinished trial(s): {', '.join(left) or 'none'}", flush=True)
    rerun = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    said = [line for line in (rerun.stdout + rerun.stderr).splitlines() if "trials done" in line]
    if rerun.returncode:
        sys.exit(f"the rerun failed (exit {rerun.returncode}):\n{rerun.stderr[-2000:]}")
    print(f"the rerun said: {said[0].strip() if said else '(nothing about the trials it found)'}")
    print(f"finished {wall:.0f} s after the first start")
    trials = sorted(read_summary_csv(args.sweep_dir / "summary.csv"), key=lambda r: int(r.name))
    results = []
    print(f"{'trial':>5} {'beta':>6} {'latent':>6} {'lr':>8} {'val/nelbo':>10}")
    for trial in trials:
        o = trial.overrides
        numbers = {"beta": float(o["model.beta"]), "latent": float(o["model.latent_dim"]),
                   "lr": float(o["trainer.lr"]), **({"val/nelbo": trial.metrics["val/nelbo"]}
                                                    if "val/nelbo" in trial.metrics else {}),
                   "wall_s": wall}
        resumed = "yes" if trial.name in left else ""
        print(f"{trial.name:>5} {numbers['beta']:>6.2f} {o['model.latent_dim']:>6} {numbers['lr']:>8.4f} "
              f"{numbers.get('val/nelbo', float('nan')):>10.2f} {trial.status} {resumed and '(resumed)'}")
        results.append((trial.name, {"trial": trial.name, "resumed": resumed}, numbers))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
