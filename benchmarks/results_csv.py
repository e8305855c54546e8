"""A benchmark's results as a summary.csv, the form `vae-lab sweep` writes and docs/findings/ generates
its tables from (tools/findings_tables.py): a row per measured setting, its keys, then its numbers."""

import argparse
import os
from pathlib import Path

from vae_lab.summary import RunSummary, write_summary_csv


def add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="also write the results to this summary.csv (a new file)")


def add_training_options(parser: argparse.ArgumentParser, overrides_help: str) -> None:
    """--seeds, --data-root and Hydra overrides, for a benchmark that composes runs as `vae-lab
    train` does (read back with :func:`seeds`)."""
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("overrides", nargs="*", help=overrides_help)


def add_sweep_options(parser: argparse.ArgumentParser, sweep_help: str) -> None:
    """--sweep-dir, a folder the benchmark creates for the sweeps it runs (refused if it exists, by
    :func:`refuse_existing_out`), and --data-root."""
    parser.add_argument("--sweep-dir", type=Path, required=True, help=sweep_help)
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))


def seeds(args: argparse.Namespace) -> list[int]:
    return [int(seed) for seed in args.seeds.split(",")]


def refuse_existing_out(parser: argparse.ArgumentParser, out: Path | None, sweep_dir: Path | None = None) -> None:
    """Before any measuring: a benchmark writes only files it creates."""
    if out is not None and out.exists():
        parser.error(f"--out {out} exists: give a path that does not")
    if sweep_dir is not None and sweep_dir.exists():
        parser.error(f"--sweep-dir {sweep_dir} exists: the sweeps start in a new folder")


def write_results(out: Path | None, rows: list[tuple[str, dict[str, str], dict[str, float]]]) -> None:
    """``rows``: (name, keys, numbers) for each setting measured; a run's metrics may be given whole,
    since only the scalar numbers are written (a summary row holds no lists)."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_summary_csv(out, [RunSummary(name, Path(name), keys, "complete",
                                           {k: v for k, v in numbers.items() if isinstance(v, (int, float))})
                                for name, keys, numbers in rows])
