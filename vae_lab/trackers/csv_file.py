"""A CSV file of the per-epoch metrics in the run folder: one row per epoch, one column per metric."""

import csv
from pathlib import Path

from vae_lab.runs import atomic_write
from vae_lab.trackers.base import Tracker


class CsvTracker(Tracker):
    """Rewritten whole (atomically) each epoch from the run's history, so a resumed run's file has
    each epoch once; columns are every metric any epoch has, in order of first appearance."""

    name = "csv"

    def __init__(self, path: Path, history: list[dict]):
        self.path, self.rows = path, list(history)
        if self.rows:
            self._write()

    def epoch(self, row: dict, images: dict) -> None:
        self.rows.append(row)
        self._write()

    def _write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))

        def write(file) -> None:
            writer = csv.DictWriter(file, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(self.path, write)
