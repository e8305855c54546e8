"""What another busy process costs a training run, with OpenMP's waiting threads spinning or passive.

Runs benchmarks/throughput.py (vae-lab's loop, one model, images/s over a few epochs) in a fresh
process for each setting, on an idle machine and beside a second training with the same settings
(two trainings at once, the case that collapses when waiting threads spin). OMP_WAIT_POLICY is read when PyTorch loads
OpenMP, so each setting needs its own process. ``--out`` also writes the results as a summary.csv (a
row per setting), the form docs/findings/ generates its tables from.

    python benchmarks/sharing.py [--epochs 2] [--data-root PATH] [--out summary.csv]
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from results_csv import add_out_option, refuse_existing_out, write_results


def _command(epochs: int, governed: bool) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("throughput.py")), "--epochs", str(epochs), "--members", "1",
            "--skip-classic", *(["--free-cores"] if governed else [])]


def competitor(setting: tuple, threads: Optional[int], data_root: str) -> subprocess.Popen:
    """A second training (vae-lab's loop) that runs until it is killed."""
    return subprocess.Popen(_command(1000, setting[1]), env=_environment(setting, threads, data_root),
                            stdout=subprocess.DEVNULL)


SETTINGS = {  # name: the OpenMP environment a run starts with, and whether vae-lab picks its threads
    "spin (OpenMP's default)": ({"OMP_WAIT_POLICY": "ACTIVE"}, False),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, False),
    "spin 100k, then sleep": ({"GOMP_SPINCOUNT": "100000"}, False),
    "spin 10k, then sleep": ({"GOMP_SPINCOUNT": "10000"}, False),
    "vae-lab: threads = free cores": ({}, True),  # the default: trainer.threads=null
}


def _environment(setting: tuple, threads: Optional[int], data_root: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    return {**env, **setting[0], **({"OMP_NUM_THREADS": str(threads)} if threads else {}), "VAE_LAB_DATA": data_root}


def images_per_s(setting: tuple, threads: Optional[int], epochs: int, data_root: str) -> float:
    result = subprocess.run(_command(epochs, setting[1]), env=_environment(setting, threads, data_root),
                            capture_output=True, text=True, check=True)
    return float(re.search(r"vae-lab K=1\s+([\d,]+)", result.stdout).group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--only", default=None, help="measure the settings whose name contains this")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)
    results = []
    print(f"{'waiting threads':<30}{'threads':>8}{'idle':>12}{'beside a second training':>27}")
    rows = [(item, t) for item in SETTINGS.items() for t in ((None,) if item[1][1] else (2, 1))
            if args.only is None or args.only in item[0]]
    for (name, setting), threads in rows:
        idle = images_per_s(setting, threads, args.epochs, args.data_root)
        other = competitor(setting, threads, args.data_root)  # two vae-lab trainings side by side
        time.sleep(8)  # until it trains
        try:
            busy = images_per_s(setting, threads, args.epochs, args.data_root)
        finally:
            other.kill()
            other.wait()
        print(f"{name:<30}{threads or 'auto':>8}{idle:>12,.0f}{busy:>27,.0f}", flush=True)
        setting_name = f"{name}, threads {threads or 'auto'}"
        results.append((setting_name, {"waiting": name, "threads": str(threads or "auto")},
                        {"alone": idle, "beside_a_second_training": busy}))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
