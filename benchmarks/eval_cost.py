"""What a run's final evaluation costs, phase by phase, in two versions of vae-lab side by side.

With ``--run``, the same trained run folder is evaluated by `vae-lab eval` from this checkout
("after") and from another commit ("before", checked out into a temporary git worktree), taking
turns ``--repeats`` times, each into a fresh copy of the run, with the evaluation that training ends
with (``eval.is_samples=100``). With ``--train``, each version trains a run from the overrides given
(the default run without any) and evaluates it as training does, taking turns alike; its training
seconds (``train_s``) and the median seconds an epoch spent scoring after its training steps
(``epoch_s`` less the steps' own time) are reported beside the phases.

Each phase's seconds are read from the log lines both versions print ("probes: 0.7 s"); the median of
the repeats is reported for each, with the ratio, and every metric both report with its largest
difference between the versions. Both read one cached reference classifier (the same recipe), so its
training is never timed. Run it alone: a second process on the cores skews every number, except the
one ``--beside-training`` starts on purpose: a vae-lab training (benchmarks/sharing.py's, choosing its
threads as a default run does) that runs through every timed evaluation, the case of a sweep's
evaluation beside its other jobs.

    python benchmarks/eval_cost.py (--run RUN | --train) --before COMMIT [--repeats 3] [--beside-training]
        [--data-root DIR] [--out summary.csv] [eval.* overrides, or with --train any training override]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_csv import add_out_option, refuse_existing_out, write_results
from sharing import SETTINGS, competitor

from vae_lab.metrics.reference import cache_folder

REPOSITORY = Path(__file__).resolve().parent.parent
PHASE = re.compile(r"^(?P<name>[a-z][a-zA-Z -]+?)(?: \([^)]*\))?(?: of \d+ models)?: (?P<seconds>\d+\.\d) s$")
USER_CACHE = cache_folder()
NOT_EVALUATION = ("command", "training", "per_epoch_scoring", "median_epoch")  # the rows that are not its phases
RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoints/best.pt", "checkpoints/last.pt")


def copy_run(run: Path, into: Path) -> Path:
    """The files `vae-lab eval` reads, in a folder of their own, so that each evaluation writes a new
    eval/ and the run itself is never written to."""
    for name in RUN_FILES:
        if (run / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / name, into / name)
    return into


def vae_lab(tree: Path, cache: Path, arguments: list[str]) -> tuple[dict, float]:
    """`vae-lab ARGUMENTS` run by the code in ``tree``: each evaluation phase's seconds, read off its
    log, and the wall time of the whole command."""
    env = {**os.environ, "PYTHONPATH": str(tree), "VAE_LAB_CACHE": str(cache), "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vae_lab", *arguments], cwd=tree, env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"vae-lab {arguments[0]} from {tree} exited {done.returncode}:\n{done.stderr[-3000:]}")
    phases = {}
    for line in (done.stdout + done.stderr).splitlines():
        found = PHASE.match(line.strip())
        if found and found["name"] != "evaluation took":
            phases[found["name"].replace(" ", "_").replace("-", "_")] = float(found["seconds"])
    return phases, wall


def evaluate(tree: Path, run: Path, data_root: Path, cache: Path, overrides: list[str]) -> tuple[dict, dict, float]:
    """`vae-lab eval` of ``run`` by the code in ``tree``: each phase's seconds, the metrics, and the
    wall time of the whole command."""
    phases, wall = vae_lab(tree, cache, ["eval", f"run_dir={run}", f"data_root={data_root}", *overrides])
    return phases, json.loads((run / "eval" / "metrics.json").read_text()), wall


def train(tree: Path, run: Path, data_root: Path, cache: Path, overrides: list[str]) -> tuple[dict, dict, float]:
    """`vae-lab train` into ``run`` by the code in ``tree``: as :func:`evaluate`, with the training's
    seconds and the median seconds an epoch spent after its training steps (scoring, logging) among
    the phases."""
    phases, wall = vae_lab(tree, cache, ["train", f"hydra.run.dir={run}", f"data.root={data_root}", *overrides])
    metrics = json.loads((run / "metrics.json").read_text())
    images = int(re.search(r"\((\d+) train /", (run / "train.log").read_text())[1])
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    phases["training"] = metrics["train_s"]
    phases["per_epoch_scoring"] = statistics.median(row["epoch_s"] - images / row["train/images_per_s"]
                                                   for row in epochs)
    phases["median_epoch"] = statistics.median(row["epoch_s"] for row in epochs)
    return phases, metrics, wall


def data_folder(real: Path, into: Path) -> Path:
    """A folder that shows the real data's files through links: an older version writes its reference
    classifier's cache beside the data, which must not be the shared data folder."""
    into.mkdir()
    for entry in real.iterdir():
        (into / entry.name).symlink_to(entry)
    return into


def share_reference(cache: Path, data: Path) -> None:
    """The reference classifier cached by this version, also where older versions look for it (beside
    the data, named without the data's hash)."""
    for path in (cache / "reference").glob("*.pt"):
        older = data / "vae_lab_reference" / re.sub(r"-data[0-9a-f]+", "", path.name)
        older.parent.mkdir(exist_ok=True)
        shutil.copy2(path, older)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", type=Path, help="a trained run folder (only read) that each version evaluates")
    what.add_argument("--train", action="store_true", help="each version trains a run from the overrides")
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("VAE_LAB_DATA", "./data")))
    parser.add_argument("--beside-training", action="store_true", help="a training runs beside each evaluation")
    parser.add_argument("overrides", nargs="*", help="overrides for both versions (eval.* with --run)")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)
    if args.run and not (args.run / "checkpoints" / "best.pt").is_file():
        parser.error(f"--run {args.run}: no checkpoints/best.pt there")
    # Training ends with 100 importance samples; `vae-lab eval` is told to take as many.
    overrides = args.overrides if args.train else ["eval.is_samples=100", *args.overrides]
    measure = train if args.train else lambda tree, run, *rest: evaluate(tree, copy_run(args.run.resolve(), run), *rest)
    with tempfile.TemporaryDirectory(prefix="eval-cost-") as scratch:
        scratch = Path(scratch)
        before = scratch / "before"
        subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", "-q", str(before), args.before],
                       check=True)
        try:
            data, cache = data_folder(args.data_root.resolve(), scratch / "data"), scratch / "cache"
            if (USER_CACHE / "reference").is_dir():  # a classifier trained before: not trained again here
                shutil.copytree(USER_CACHE / "reference", cache / "reference")
            trees = {"before": before, "after": REPOSITORY}
            # Not timed: the reference classifier trained (or loaded) once, then shared with the old version.
            measure(REPOSITORY, scratch / "warm-up", data, cache, [*overrides, "eval.figures=false", "eval.is_samples=0",
                                                                  "eval.traversal_images=0",
                                                                  *["trainer.epochs=1"] * args.train])
            share_reference(cache, data)
            seconds = {version: {} for version in trees}
            metrics = {}
            for repeat in range(args.repeats):
                for version, tree in trees.items():
                    busy = (competitor(SETTINGS["vae-lab: threads = free cores"], None, str(args.data_root))
                            if args.beside_training else None)
                    try:
                        if busy:
                            time.sleep(10)  # past its start-up, training
                        phases, metrics[version], wall = measure(tree, scratch / f"{version}-{repeat}", data, cache,
                                                                 overrides)
                    finally:
                        if busy:
                            busy.kill()
                            busy.wait()
                    for name, value in {**phases, "command": wall}.items():
                        seconds[version].setdefault(name, []).append(value)
                    print(f"{version} {repeat + 1}/{args.repeats}: {wall:.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(before)], check=False)
    report(seconds, metrics, args)


def report(seconds: dict, metrics: dict, args: argparse.Namespace) -> None:
    phases = list(dict.fromkeys([*seconds["before"], *seconds["after"]]))
    median = {version: {name: statistics.median(values) for name, values in found.items()}
              for version, found in seconds.items()}
    for version in median:
        median[version]["evaluation"] = sum(v for k, v in median[version].items() if k not in NOT_EVALUATION)
    print(f"\n{'phase':<28}{'before s':>10}{'after s':>10}{'after/before':>14}")
    rows = []
    for name in [*phases, "evaluation"]:
        old, new = median["before"].get(name), median["after"].get(name)
        ratio = new / old if old and new is not None else float("nan")
        print(f"{name:<28}{old if old is not None else float('nan'):>10.1f}"
              f"{new if new is not None else float('nan'):>10.1f}{ratio:>14.2f}")
        rows.append((name, {"phase": name}, {"before_s": old if old is not None else float("nan"),
                                             "after_s": new if new is not None else float("nan"),
                                             "after_over_before": ratio}))
    print("\nmetrics that differ between the versions (largest absolute difference):")
    same = 0
    for name, old in metrics["before"].items():
        new = metrics["after"].get(name)
        if not isinstance(old, (int, float)) or not isinstance(new, (int, float)) or name.endswith("_s"):
            continue
        if old == new:
            same += 1
        else:
            print(f"  {name}: {old:.6g} -> {new:.6g} ({new - old:+.2e})")
    print(f"  ({same} others identical)")
    write_results(args.out, rows)


if __name__ == "__main__":
    main()
