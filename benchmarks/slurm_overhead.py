"""What a SLURM job costs a sweep beyond its run: the same sweep through the basic launcher and through
hydra/launcher=slurm, one after the other in one invocation.

The sweep is --runs runs of the default model (seeds 0, 1, ...; --epochs epochs, metrics without
figures). Through SLURM they run one job at a time (array_parallelism=1) with every core of the node
(cpus_per_task), as the basic launcher runs them one after another in one process. Printed per
launcher, as medians over the runs: a run's own time (its .hydra/ written to its metrics.json), and
for SLURM the time a job spends on its node besides its run (Python, imports, Hydra, submitit's
files: sacct's Start to End less the run) and the scheduler's turn-around from one job's end to the
next one's start; their sum is the overhead per job. sacct counts whole seconds. The wall time of
each sweep is printed too (the first run in a process also trains the reference classifier if it is
not cached yet: medians leave that out). Needs a cluster (tools/slurm-cluster.sh up) and SLURM_CONF.

    python benchmarks/slurm_overhead.py --sweep-dir outputs/slurm-overhead [--runs 5] [--epochs 2] [--out summary.csv]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from results_csv import add_out_option, add_sweep_options, refuse_existing_out, write_results

LAUNCHERS = {"basic": (), "slurm": ("hydra/launcher=slurm", "hydra.launcher.array_parallelism=1",
                                    f"hydra.launcher.cpus_per_task={os.cpu_count()}", "hydra.launcher.timeout_min=30")}


def run_times(sweep: Path, runs: int) -> list[tuple[float, float]]:
    """(start, end) of each run: its .hydra/ written, its metrics.json written."""
    return [((sweep / str(n) / ".hydra" / "overrides.yaml").stat().st_mtime, (sweep / str(n) / "metrics.json").stat().st_mtime)
            for n in range(runs)]


def slurm_times(sweep: Path) -> list[tuple[float, float]]:
    """(started, ended) of each array task of the sweep's SLURM job, in task order, from sacct."""
    job = next(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    listed = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,Start,End", "-j", job],
                            capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in listed.splitlines() if "_" in line.split("|")[0]]
    stamp = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731
    return [(stamp(started), stamp(ended)) for _, started, ended in sorted(rows, key=lambda r: int(r[0].split("_")[1]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_options(parser, "a new folder: <dir>/basic and <dir>/slurm")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out, args.sweep_dir)
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
        runs = [end - start for start, end in run_times(sweep, args.runs)]
        numbers = {"wall_s": walls[launcher], "run_s": statistics.median(runs)}
        if launcher == "slurm":
            jobs = slurm_times(sweep)
            numbers["on_node_s"] = statistics.median(end - start - run for (start, end), run in zip(jobs, runs))
            numbers["turn_around_s"] = statistics.median(after[0] - before[1] for before, after in zip(jobs, jobs[1:]))
            numbers["overhead_per_job_s"] = numbers["on_node_s"] + numbers["turn_around_s"]
        print(f"{launcher:6s} " + "  ".join(f"{key} {value:.1f}" for key, value in numbers.items()), flush=True)
        rows.append((launcher, {"launcher": launcher, "runs": str(args.runs), "epochs": str(args.epochs)}, numbers))
    write_results(args.out, rows)


if __name__ == "__main__":
    main()
