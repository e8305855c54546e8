"""What a sweep costs through each launcher, measured one after another in one invocation.

The same 12-run sweep of the classic MLP VAE (latent 2, 8, 20, 64 x beta 0.5, 1, 4; 10 epochs; the
default evaluation) runs through Hydra's basic launcher (one job after another), joblib with 2 jobs
(two processes sharing the cores), and vae-lab's stacked launcher (the runs as one population).
Printed per launcher: the wall time of the whole command, the time spent training and evaluating
(each the union over runs of the intervals their train.log shows, since parallel jobs overlap), its
ratio to the others, and each run's test NELBO from the sweep's summary, side by side.

    python benchmarks/sweep.py [--launchers basic,joblib,stacked] [--epochs 10] [--out FOLDER] [--data-root PATH]

Each launcher's sweep goes into <out>/<launcher>; a launcher whose folder is complete already is
measured again only if that folder is removed (its earlier times are read back from its logs).
<out>/summary.csv holds the times, a row per launcher, as docs/findings/ generates its tables from;
like a sweep's summary it is written anew from the folders each time.
"""

import argparse
import csv
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from results_csv import write_results

GRID = ("model.latent_dim=2,8,20,64", "model.beta=0.5,1,4")
LAUNCHERS = {
    "basic": (),
    "joblib": ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
    "stacked": ("hydra/launcher=stacked",),
}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def phases(run: Path) -> tuple[float, float, float]:
    """(start, end of training, end of evaluation) of one run, from its train.log."""
    stamps = {}
    for line in (run / "train.log").read_text().splitlines():
        found = STAMP.match(line)
        if not found:
            continue
        moment = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if " training " in line:
            stamps.setdefault("start", moment)
        elif re.search(r"\bepoch (\d+)/\1\b", line):
            stamps["trained"] = moment
        elif "test/nelbo" in line and "best epoch" in line:
            stamps["evaluated"] = moment
    return stamps["start"], stamps["trained"], stamps["evaluated"]


def union(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one interval."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def nelbos(sweep: Path) -> dict[tuple[str, str], float]:
    with open(sweep / "summary.csv") as file:
        return {(r["model.latent_dim"], r["model.beta"]): float(r["test/nelbo"]) for r in csv.DictReader(file)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--launchers", default="basic,joblib,stacked")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmark-sweep"))
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    args = parser.parse_args()
    vae_lab = [sys.executable, "-m", "vae_lab"]
    env = {**os.environ, "VAE_LAB_DATA": str(Path(args.data_root).resolve())}
    results = {}
    for name in args.launchers.split(","):
        sweep = (args.out / name).resolve()
        wall_file = sweep / "benchmark_wall_s.txt"
        if not wall_file.is_file():
            started = time.perf_counter()
            subprocess.run([*vae_lab, "sweep", *GRID, f"trainer.epochs={args.epochs}", *LAUNCHERS[name],
                            f"hydra.sweep.dir={sweep}"], env=env, check=True, stdout=subprocess.DEVNULL)
            wall_file.write_text(f"{time.perf_counter() - started:.1f}\n")
        runs = [phases(run) for run in sorted(sweep.glob("[0-9]*")) if (run / "metrics.json").is_file()]
        results[name] = {
            "wall": float(wall_file.read_text()),
            "train": union([(start, trained) for start, trained, _ in runs]),
            "eval": union([(trained, evaluated) for _, trained, evaluated in runs]),
            "nelbo": nelbos(sweep),
        }
        print(f"{name}: {results[name]['wall']:.0f} s", file=sys.stderr, flush=True)

    names = list(results)
    write_results(args.out / "summary.csv", [
        (name, {"launcher": name}, {"wall_s": r["wall"], "training_s": r["train"], "evaluation_s": r["eval"],
                                    **({"x_basic": results["basic"]["wall"] / r["wall"]} if "basic" in results else {})})
        for name, r in results.items()])
    print(f"{'launcher':<10}{'wall s':>9}{'training s':>12}{'evaluation s':>14}"
          + "".join(f"{'x ' + other:>11}" for other in names))
    for name in names:
        r = results[name]
        print(f"{name:<10}{r['wall']:>9.0f}{r['train']:>12.0f}{r['eval']:>14.0f}"
              + "".join(f"{results[other]['wall'] / r['wall']:>10.2f}x" for other in names))
    print("\ntest/nelbo (nats) by run: " + " | ".join(names))
    for key in sorted(results[names[0]]["nelbo"], key=lambda k: (int(k[0]), float(k[1]))):
        print(f"latent {key[0]:>2}, beta {key[1]:>3}: " + " | ".join(f"{results[n]['nelbo'].get(key, float('nan')):.2f}"
                                                                   for n in names))


if __name__ == "__main__":
    main()
