"""What a user sees while long work runs: progress bars for the long phases (training epochs, each
evaluation step), tqdm on stderr, drawn only when stderr is a terminal and cleared when the phase
ends (the run's log keeps one line per phase with its duration instead); a sweep's progress
(:class:`SweepProgress`); and the log lines of each member of a population (:class:`MemberLogs`).

A sweep's progress is read from its folder as runs finish: what it will cost before it starts, then
k of n runs done with an estimate of the time left. Reading the folder works alike for every
launcher: jobs in this process, in joblib workers, in a stacked population."""

import contextlib
import json
import logging
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

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


# ---- the members of a population ----------------------------------------------------------------


class MemberLogs:
    """Each member's lines into its own <run>/train.log while a population trains, in place of the
    log file of the job Hydra set up last. A record belongs to a member when it says so
    (``extra={"run": path}``) or is made while :meth:`working_for` it (its final evaluation);
    records of no member in particular go to every member's log."""

    def __init__(self, run_dirs: list[str], formatter: logging.Formatter):
        self.paths = [Path(run_dir).resolve() for run_dir in run_dirs]
        self.formatter = formatter
        self.current: Optional[Path] = None
        self.handlers: list[logging.FileHandler] = []
        self.replaced: list[logging.Handler] = []

    def __enter__(self) -> "MemberLogs":
        root = logging.getLogger()
        self.replaced = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
        for path in self.paths:
            handler = logging.FileHandler(path / "train.log")
            handler.setFormatter(self.formatter)
            handler.addFilter(lambda record, path=path: getattr(record, "run", self.current or path) == path)
            self.handlers.append(handler)
        for handler in self.replaced:
            root.removeHandler(handler)
        for handler in self.handlers:
            root.addHandler(handler)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for handler in self.replaced:
            root.addHandler(handler)

    @contextlib.contextmanager
    def working_for(self, run_dir: Path) -> Iterator[None]:
        """Attribute every log record of the block to one member's run."""
        self.current = Path(run_dir).resolve()
        try:
            yield
        finally:
            self.current = None


class MembersOnFile(logging.Filter):
    """For the terminal: drops what a member logs for its train.log only (``extra={"console": False}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "console", True)


# ---- a sweep -------------------------------------------------------------------------------------

POLL_S = 2.0


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class SweepProgress:
    """Watches ``folder``'s job folders 0..jobs-1 from a thread while the sweep runs, ``at_once`` of
    them side by side (a joblib launcher's processes)."""

    def __init__(self, folder: Path, jobs: int, epochs: int, at_once: int = 1,
                 started: Optional[float] = None) -> None:
        self.folder, self.jobs, self.epochs, self.at_once = folder, jobs, epochs, at_once
        self.started = time.time() if started is None else started
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True, name="vae-lab sweep progress")
        self.estimated = False

    def _run(self, number: int) -> Path:
        return self.folder / str(number)

    def finished(self) -> list[int]:
        """Jobs that ended: complete (metrics.json) or failed in this sweep (error.txt)."""
        return [n for n in range(self.jobs)
                if (self._run(n) / "metrics.json").is_file() or (self._run(n) / "error.txt").is_file()]

    def complete(self) -> list[int]:
        return [n for n in range(self.jobs) if (self._run(n) / "metrics.json").is_file()]

    def run_seconds(self, number: int) -> Optional[float]:
        """How long a complete run took from its start (Hydra writes .hydra/ as a job starts) to its
        metrics.json, training and evaluation together."""
        try:
            return ((self._run(number) / "metrics.json").stat().st_mtime
                    - (self._run(number) / ".hydra" / "overrides.yaml").stat().st_mtime)
        except OSError:
            return None

    def cost(self) -> str:
        """The line said before the sweep starts."""
        done = self.complete()
        left = self.jobs - len(done)
        head = f"vae-lab: sweep of {self.jobs} runs into {self.folder}"
        if done:
            head += f" ({len(done)} complete already, {left} to run)"
        if not left:
            return head
        seconds = [s for s in map(self.run_seconds, done) if s and s > 0]
        if seconds:
            self.estimated = True
            typical = statistics.median(seconds)
            pace = "one after another" if self.at_once == 1 else f"{self.at_once} at a time"
            return (f"{head}; about {minutes(typical * left / min(self.at_once, left))} {pace}, from the "
                    f"{len(seconds)} finished here ({minutes(typical)} each)")
        return f"{head}; a time estimate follows the first epoch"

    def first_epoch(self) -> Optional[str]:
        """Once a job has logged an epoch in this sweep: what the training left will cost. The pace is
        that of the epochs logged since the sweep started (a resumed sweep's older epochs may have run
        under another load), averaged over the jobs running, and each unfinished job counts only the
        epochs it still lacks."""
        finished, latest, epochs_left = set(self.finished()), [], 0
        for number in range(self.jobs):
            if number in finished:
                continue
            path = self._run(number) / "metrics.jsonl"
            try:
                rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
                fresh = path.stat().st_mtime >= self.started
            except (OSError, ValueError):
                rows, fresh = [], False
            epochs = [row for row in rows if "epoch_s" in row]
            epochs_left += max(0, self.epochs - len(epochs))
            if fresh and epochs:
                latest.append(epochs[-1])
        if not latest:
            return None
        epoch_s = statistics.mean(row["epoch_s"] for row in latest)
        members = int(latest[0].get("train/members", 1))  # models stacked in one job
        left = self.jobs - len(finished)
        training = epoch_s * epochs_left / members / max(1, min(self.at_once, left))
        together = f" ({members * self.at_once} at a time)" if members * self.at_once > 1 else ""
        return (f"vae-lab: an epoch takes {epoch_s:.1f} s{together}: training the {left} runs left "
                f"({epochs_left} epochs) will take about {minutes(training)}, and each run's evaluation adds to that "
                "(an estimate follows the first run's)")

    def first_evaluation(self) -> Optional[str]:
        """Once a run has finished in this sweep: what evaluating the runs left will cost, from the
        seconds its metrics.json records for each evaluation phase (``eval_s``, a stacked member's
        share), the runs that evaluate side by side counted as the training's are."""
        left = self.jobs - len(self.finished())
        for number in self.complete():
            path = self._run(number) / "metrics.json"
            try:
                if path.stat().st_mtime < self.started:
                    continue
                phases = json.loads(path.read_text()).get("eval_s")
            except (OSError, ValueError):
                continue
            if not phases or not left:
                return None
            seconds = sum(phases.values())
            together = max(1, min(self.at_once, left))
            return (f"vae-lab: run {number}'s evaluation took {seconds:.0f} s: evaluating the {left} runs left "
                    f"adds about {minutes(seconds * left / together)}"
                    + (f" ({together} at a time)" if together > 1 else ""))
        return None

    def _watch(self) -> None:
        done = len(self.finished())
        evaluation_said = False
        with progress(desc="sweep", total=self.jobs, initial=done, unit="run", position=0) as bar:
            while not self.stopped.wait(POLL_S) or done < len(self.finished()):
                if not self.estimated:
                    line = self.first_epoch()
                    if line:
                        tqdm.write(line, file=sys.stderr)
                        self.estimated = True
                if not evaluation_said:
                    line = self.first_evaluation()
                    if line:
                        tqdm.write(line, file=sys.stderr)
                        evaluation_said = True
                now = len(self.finished())
                if now > done:
                    bar.update(now - done)
                    done = now

    def __enter__(self) -> "SweepProgress":
        tqdm.write(self.cost(), file=sys.stderr)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
