"""Progress bars for the long phases (training epochs, each evaluation step, the runs of a sweep):
tqdm on stderr, drawn only when stderr is a terminal and cleared when the phase ends. The run's log
keeps one line per phase with its duration instead."""

import logging
import sys
from typing import Iterable, Optional

from tqdm import tqdm


def progress(iterable: Optional[Iterable] = None, *, desc: str, total: Optional[float] = None,
             unit: str = "it", **options) -> tqdm:
    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=False, disable=None, dynamic_ncols=True,
                **options)


def counting(batches: Iterable, bar: tqdm) -> Iterable:
    """The batches, advancing ``bar`` by the images in each."""
    for batch in batches:
        yield batch
        bar.update(len(batch))


class LinesAroundBars(logging.StreamHandler):
    """A console log handler that writes each line above the progress bars (tqdm.write clears them,
    writes, and draws them again) instead of through them. conf/hydra/*_logging/vae_lab.yaml."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001  logging's own policy: report, never raise
            self.handleError(record)


def result(line: object) -> None:
    """A result on stdout (a folder a command wrote), above any progress bar rather than through it."""
    tqdm.write(str(line), file=sys.stdout)
    sys.stdout.flush()
