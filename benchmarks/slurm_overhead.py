"""What a SLURM job costs a sweep beyond its run: the same sweep through the basic launcher and through
hydra/launcher=slurm, one after the other in one invocation.

The sweep is --runs runs of the default model (seeds 0, 1, ...; --epochs epochs, metrics without
figures). Through SLURM they run one job at a time (array_parallelism=1) with every core of the node
(cpus_per_task), as the basic launcher runs them one after another in one process, so that the
difference in wall time is the cost of the jobs themselves. Printed per launcher: the wall time, the
mean time of a run (its .hydra/ written to its metrics.json), and for SLURM the mean wait in the
queue (sacct's Submit to Start), the mean start-up on the node (Start to the run's .hydra/: Python,
imports, Hydra) and the overhead per job, (wall time through SLURM - wall time through the basic
launcher) / runs. Needs a cluster (tools/slurm-cluster.sh up) and SLURM_CONF.

    python benchmarks/slurm_overhead.py --sweep-dir outputs/slurm-overhead [--runs 4] [--epochs 2] [--out summary.csv]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from results_csv import add_out_option, refuse_existing_out, write_results

LAUNCHERS = {"basic": (), "slurm": ("hydra/launcher=slurm", "hydra.launcher.array_parallelism=1",
                                    f"hydra.launcher.cpus_per_task={os.cpu_count()}", "hydra.launcher.timeout_min=30")}


def run_times(sweep: Path, runs: int) -> list[tuple[float, float]]:
    """(start, end) of each run: its .hydra/ written, its metrics.json written."""
    return [((sweep / str(n) / ".hydra" / "overrides.yaml").stat().st_mtime, (sweep / str(n) / "metrics.json").stat().st_mtime)
            for n in range(runs)]


def slurm_times(sweep: Path) -> list[tuple[float, float]]:
    """(submitted, started) of each array task of the sweep's SLURM job, from sacct."""
    job = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    listed = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,Submit,Start", "-j", job],
                            capture_output=True, text=True, check=True).stdout
    rows = sorted(line.split("|") for line in listed.splitlines() if "_" in line.split("|")[0])
    stamp = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731
    return [(stamp(submitted), stamp(started)) for _, submitted, started in sorted(rows, key=lambda r: int(r[0].split("_")[1]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-dir", type=Path, required=True, help="a new folder: <dir>/basic and <dir>/slurm")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)
    if args.sweep_dir.exists():
        parser.error(f"--sweep-dir {args.sweep_dir} exists: give a new folder")
    if not os.environ.get("SLURM_CONF"):
        parser.error("SLURM_CONF is not set: start a cluster first (tools/slurm-cluster.sh up)")
    walls = {}
    for launcher, settings in LAUNCHERS.items():
        sweep = args.sweep_dir / launcher
        command = [sys.executable, "-m", "vae_lab", "sweep", f"seed={','.join(map(str, range(args.runs)))}",
                   f"trainer.epochs={args.epochs}", "eval.figures=false", *settings, f"hydra.sweep.dir={sweep.resolve()}",
                   f"data.root={Path(args.data_root).resolve()}"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls[launcher] = time.perf_counter() - started
    rows = []
    for launcher in LAUNCHERS:
        sweep = args.sweep_dir / launcher
        runs = run_times(sweep, args.runs)
        numbers = {"wall_s": walls[launcher], "run_s": statistics.mean(end - start for start, end in runs)}
        if launcher == "slurm":
            jobs = slurm_times(sweep)
            numbers["queued_s"] = statistics.mean(started - submitted for submitted, started in jobs)
            numbers["start_up_s"] = statistics.mean(run[0] - job[1] for run, job in zip(runs, jobs))
            numbers["overhead_per_job_s"] = (walls["slurm"] - walls["basic"]) / args.runs
        print(f"{launcher:6s} " + "  ".join(f"{key} {value:.1f}" for key, value in numbers.items()), flush=True)
        rows.append((launcher, {"launcher": launcher, "runs": str(args.runs), "epochs": str(args.epochs)}, numbers))
    write_results(args.out, rows)


if __name__ == "__main__":
    main()
