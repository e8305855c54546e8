"""A sweep's numbers at chosen epochs, from each complete run's metrics.jsonl, as a summary.csv: a row
per run and epoch, its overrides plus `epoch`, then that epoch's numbers. docs/findings/ generates
tables from it as from any summary (tools/findings_tables.py), e.g. accuracy as training goes on.

    python tools/epoch_summary.py SWEEP --epochs 10,20,50,100 --out docs/findings/results/NAME/epochs.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_lab.runs import RunDir  # noqa: E402
from vae_lab.summary import RunSummary, read_runs, write_summary_csv  # noqa: E402


def epoch_rows(sweep: Path, epochs: list[int]) -> list[RunSummary]:
    """Every complete run of the sweep at each of ``epochs``; a run that never reached one is refused."""
    rows = []
    for epoch in epochs:
        for run in read_runs(sweep):
            if run.status != "complete":
                continue
            by_epoch = {row["epoch"]: row for row in RunDir(run.path).history()}
            if epoch not in by_epoch:
                raise SystemExit(f"{run.path}/metrics.jsonl has no epoch {epoch}: it ends at {max(by_epoch, default=0)}")
            numbers = {k: v for k, v in by_epoch[epoch].items() if k != "epoch" and isinstance(v, (int, float))}
            rows.append(RunSummary(f"{run.name}@{epoch}", run.path, {**run.overrides, "epoch": str(epoch)},
                                   "complete", numbers))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--epochs", required=True, help="comma-separated, e.g. 10,20,50,100")
    parser.add_argument("--out", type=Path, required=True, help="the summary.csv to write (a new file)")
    args = parser.parse_args(argv)
    try:
        epochs = [int(e) for e in args.epochs.split(",")]
    except ValueError:
        parser.error(f"--epochs {args.epochs}: whole numbers separated by commas")
    if args.out.exists():
        parser.error(f"--out {args.out} exists: give a path that does not")
    rows = epoch_rows(args.sweep, epochs)
    if not rows:
        parser.error(f"{args.sweep} holds no complete run")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_summary_csv(args.out, rows)
    print(f"{args.out}: {len(rows)} rows")


if __name__ == "__main__":
    main()
