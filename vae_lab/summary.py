"""A sweep's runs, read and summarised: statistics and tables, without a plot or Hydra at import.

A sweep folder holds one run folder per job (Hydra's ``<sweep dir>/<job number>``), each with its
``.hydra/overrides.yaml``. :func:`read_runs` reads them all, finished or not; runs that differ only
in their seed are repeats of one configuration (:func:`seed_groups`, mean and spread). The tables:
``summary.csv`` (a row per run: its overrides, status and final metrics), ``summary_over_seeds.csv``
and ``summary.md``. vae_lab/sweep.py writes them with the sweep's figures.
"""

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import OmegaConf

from vae_lab.errors import DamagedFile
from vae_lab.files import atomic_write
from vae_lab.runs import SAME_RUN, Role, RunDir, differences, flatten, is_replicate, role

# The metrics a summary table shows, in this order, when the runs have them.
TABLE_METRICS = ("test/nelbo", "test/nll", "test/recon", "test/kl", "test/kl_disc", "test/mse", "test/ssim",
                 "test/probe_acc", "test/cluster_acc", "test/code_mi", "test/class_acc", "samples/fd",
                 "samples/label_acc", "test/mig", "test/sap", "test/dci_disentanglement", "test/dci_completeness",
                 "test/dci_informativeness")

@dataclass
class RunSummary:
    name: str
    path: Path
    overrides: dict[str, str]
    status: str  # complete | incomplete (epochs done/asked) | failed | not started
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def replicate(self) -> str:
        """Its seed, as its overrides set it ("" where they leave it to the config)."""
        return next((value for key, value in self.overrides.items() if is_replicate(key)), "")

    @property
    def rate(self) -> Optional[float]:
        """Total KL (every kl term): the nats per image the code carries, for rate-distortion. The
        per-dimension and per-variable lists break the same nats down, so they are not added."""
        kls = [v for k, v in self.metrics.items() if k.startswith("test/kl") and isinstance(v, (int, float))]
        return sum(kls) if kls else None


def read_runs(sweep_dir: Path) -> list[RunSummary]:
    runs = []
    for overrides_file in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"), key=_job_order):
        path = overrides_file.parents[1]
        try:
            overrides = dict(o.split("=", 1) for o in OmegaConf.to_container(OmegaConf.load(overrides_file))
                             if "=" in o)
        except Exception:  # noqa: BLE001  YAML or OmegaConf errors: the row says so
            runs.append(RunSummary(path.name, path, {}, "damaged: .hydra/overrides.yaml cannot be read"))
            continue
        status, metrics = run_status(RunDir(path), overrides)
        runs.append(RunSummary(path.name, path, overrides, status, metrics))
    return runs


def run_status(run: RunDir, overrides: dict[str, str]) -> tuple[str, dict[str, float]]:
    """What a run's folder says about it, and its final metrics when it is complete. The latest
    attempt decides (a failure recorded after an old result is a failure), and a folder whose config
    disagrees with the overrides it is listed under is reported as such, never with its numbers."""
    try:
        if run.error.is_file():
            return "failed: " + (run.error.read_text().splitlines() or ["(no message)"])[0], {}
        config = run.read_config() if run.config.is_file() else None
        if config is not None:
            disagreement = disagreeing_override(overrides, config)
            if disagreement:
                return f"mismatch: its config.yaml has {disagreement}", {}
        if run.is_complete:
            return "complete", {k: v for k, v in run.final_metrics().items() if isinstance(v, (int, float))}
        if run.metrics_per_epoch.is_file():
            asked = config["trainer"]["epochs"] if config is not None else "?"
            return f"incomplete ({len(run.history())}/{asked} epochs)", {}
        return "not started", {}
    except DamagedFile as damaged:
        return f"damaged: {damaged.path.name} cannot be read", {}


def disagreeing_override(overrides: dict[str, str], config: dict) -> Optional[str]:
    """``key=value`` of the saved config for the first override it contradicts, else None. Group
    choices (``model=discrete``) are compared with the group's ``name``; keys the config does not
    have (``experiment=...``) and groups without a name (``logger=[tensorboard,mlflow]``) are not
    compared, nor are keys that do not tell a run apart (``trainer.threads``, ``eval.``: SAME_RUN in
    vae_lab/runs.py), in which the sweep that lists it may differ from the one that made it."""
    asked = overridden_values(overrides, config)
    have = {key: value for key, value in flatten(config).items() if key in asked}
    found = differences(have, asked, SAME_RUN)
    return next((f"{key.removesuffix('.name')}={was}" for key, was, _ in found), None)


def overridden_values(overrides: dict[str, str], config: dict) -> dict[str, Any]:
    """The values overrides set, as {dotted key of the config: value}; a group choice as its ``name``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    values = {}
    for key, text in overrides.items():
        key = key.lstrip("+~")
        node: Any = config
        for part in key.split("."):
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is _ABSENT or (isinstance(node, dict) and "name" not in node):
            continue
        try:
            value = parser.parse_override(f"{key}={text}").value()
        except Exception:  # noqa: BLE001  a sweep expression: nothing single to compare
            continue
        values[f"{key}.name" if isinstance(node, dict) else key] = value
    return values


_ABSENT = object()


def _job_order(overrides_file: Path) -> tuple:
    name = overrides_file.parents[1].name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def swept_keys(runs: list[RunSummary]) -> list[str]:
    """The overrides whose value differs between runs: what the sweep varies (never what the command
    sets itself, such as trainer.resume)."""
    keys = sorted(k for k in {k for r in runs for k in r.overrides} if role(k) is not Role.COMMAND)
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


ROUNDING = 1e-6  # relative: what float32 arithmetic leaves undecided in a metric


@dataclass(frozen=True)
class Measured:
    """One metric of one configuration, over the seeds it was run with."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        """The standard deviation over seeds (n - 1 in the denominator); 0 for one seed."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def below(self, other: "Measured") -> bool:
        """Lower beyond the spread: the two means differ by more than the two standard deviations
        together, and by more than rounding (with no spread on either side a 1e-12 difference is
        float32's noise, not a result). With one seed each this is a plain comparison."""
        rounding = ROUNDING * max(abs(self.mean), abs(other.mean))
        return self.mean + self.sd + rounding < other.mean - other.sd

    def above(self, other: "Measured") -> bool:
        return other.below(self)

    def __format__(self, spec: str) -> str:
        """``f"{m:.3f}"``: mean ± sd to that format; ``f"{m:%}"``: both as percentages with one decimal."""
        if spec == "%":
            return f"{100 * self.mean:.1f}" + (f" ± {100 * self.sd:.1f}%" if len(self.values) > 1 else "%")
        return format(self.mean, spec) + (f" ± {format(self.sd, spec)}" if len(self.values) > 1 else "")


def leads(ordered: list[Measured], lower_is_better: bool) -> bool:
    """Whether the first of ``ordered`` (best first) is better than every other one beyond the spread
    over seeds: the one rule by which a sweep's summary and a write-up's rankings name a best."""
    top = ordered[0]
    return all(top.below(m) if lower_is_better else top.above(m) for m in ordered[1:])


@dataclass
class SeedGroup:
    """The complete runs of one configuration over seeds."""

    settings: dict[str, str]  # the swept keys but the seed
    runs: list[RunSummary]

    def spread(self, metric: str) -> tuple[float, float]:
        """Mean and standard deviation over the runs (nan where a run lacks the metric)."""
        measured = Measured(tuple(float("nan") if value is None else value for value in
                                  (r.rate if metric == "rate" else r.metrics.get(metric) for r in self.runs)))
        return measured.mean, measured.sd


def seed_groups(runs: list[RunSummary], keys: list[str]) -> list[SeedGroup]:
    """Complete runs grouped by their swept settings other than the seed, in order of first run."""
    groups: dict[tuple, SeedGroup] = {}
    for r in runs:
        if r.status == "complete":
            settings = {k: r.overrides[k] for k in keys if not is_replicate(k) and k in r.overrides}
            groups.setdefault(tuple(settings.items()), SeedGroup(settings, [])).runs.append(r)
    return list(groups.values())


def write_summary_csv(path: Path, runs: list[RunSummary]) -> None:
    """A row per run: its name, status, overrides, rate and every final number at full precision."""
    override_keys = sorted({k for r in runs for k in r.overrides})
    metric_keys = sorted({k for r in runs for k in r.metrics})
    header = ["run", "status", *override_keys, "rate", *metric_keys]

    def write(file) -> None:
        writer = csv.writer(file)
        writer.writerow(header)
        for r in runs:
            writer.writerow([r.name, r.status, *(r.overrides.get(k, "") for k in override_keys),
                             _cell(r.rate), *(_cell(r.metrics.get(k)) for k in metric_keys)])

    atomic_write(path, write)


def read_summary_csv(path: Path) -> list[RunSummary]:
    """The runs a summary.csv (:func:`write_summary_csv`) describes, with their overrides, status and
    numbers, as :func:`read_runs` reads them from the run folders."""
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    header, body = rows[0], rows[1:]
    rate = header.index("rate")
    runs = []
    for row in body:
        overrides = {key: value for key, value in zip(header[2:rate], row[2:rate]) if value != ""}
        metrics = {key: float(value) for key, value in zip(header[rate + 1:], row[rate + 1:]) if value != ""}
        runs.append(RunSummary(row[0], path.parent / row[0], overrides, row[1], metrics))
    return runs


def write_seed_csv(path: Path, groups: list[SeedGroup]) -> None:
    setting_keys = list(dict.fromkeys(k for g in groups for k in g.settings))
    metric_keys = ["rate", *sorted({k for g in groups for r in g.runs for k, v in r.metrics.items()
                                    if isinstance(v, (int, float))})]

    def write(file) -> None:
        writer = csv.writer(file)
        writer.writerow([*setting_keys, "runs", "seeds", *(f"{m}_{s}" for m in metric_keys for s in ("mean", "sd"))])
        for g in groups:
            spreads = [g.spread(m) for m in metric_keys]
            writer.writerow([*(g.settings.get(k, "") for k in setting_keys), len(g.runs),
                             " ".join(r.replicate for r in g.runs),
                             *(_cell(v) for pair in spreads for v in pair)])

    atomic_write(path, write)


def write_markdown(path: Path, runs: list[RunSummary], keys: list[str], groups: list[SeedGroup]) -> None:
    text = markdown(path.parent, runs, keys, groups)
    atomic_write(path, lambda f: f.write(text))


def markdown(sweep_dir: Path, runs: list[RunSummary], keys: list[str], groups: list[SeedGroup]) -> str:
    """summary.md: the sweep's runs, and over seeds where it has them, best first by its ranking."""
    rank = ranking(runs)
    shown = [m for m in TABLE_METRICS if any(m in r.metrics for r in runs)]
    if rank is not None and rank.metric not in shown:
        shown.insert(0, rank.metric)
    lines = [f"# Sweep summary: {sweep_dir}", "",
             f"{sum(r.status == 'complete' for r in runs)} of {len(runs)} runs complete. Metrics are on the "
             "test split (nats per image unless named otherwise); rate is the total KL.", ""]
    if rank is not None:
        lines += [rank.verdict(runs, keys, groups) + " Tables list the best first.", ""]
        runs, groups = rank.runs_in_order(runs), rank.groups_in_order(groups)
    best = runs[0].name if rank is not None and rank.measured(runs) and not groups else None  # runs: best first
    if groups:
        lines += ["## Over seeds", "", "Mean ± standard deviation over the complete runs of each configuration.",
                  "", *seeds_table(groups, [k for k in keys if not is_replicate(k)], ["rate", *shown]), "", "## Every run", ""]
    lines += runs_table(runs, keys, ["rate", *shown], best)
    return "\n".join(lines) + "\n"


# ---- ranking ----------------------------------------------------------------------------------------

# What a sweep's runs are ranked by where they name no optimized_metric of their own: the validation
# NELBO (by which each run chose its best.pt), else the test NELBO.
RANKED_BY = ("val/nelbo", "test/nelbo")
# The metrics that are better lower, by the last part of their name; any other is better higher.
LOWER_IS_BETTER = ("loss", "nelbo", "nll", "nll_se", "bits_per_dim", "recon", "kl", "kl_disc", "mse", "fd")


@dataclass(frozen=True)
class Ranking:
    """How a sweep's runs are ordered: by ``metric``, lower or higher first."""

    metric: str
    lower_is_better: bool

    @property
    def direction(self) -> str:
        return "lower" if self.lower_is_better else "higher"

    def measured(self, runs: list[RunSummary]) -> list[RunSummary]:
        """The complete runs that report the metric, best first."""
        found = [r for r in runs if r.status == "complete" and _number(r.metrics.get(self.metric))]
        return sorted(found, key=lambda r: r.metrics[self.metric] * (1 if self.lower_is_better else -1))

    def runs_in_order(self, runs: list[RunSummary]) -> list[RunSummary]:
        measured = self.measured(runs)
        return measured + [r for r in runs if r not in measured]

    def groups_in_order(self, groups: list[SeedGroup]) -> list[SeedGroup]:
        def key(group: SeedGroup) -> float:
            mean = group.spread(self.metric)[0]
            return math.inf if math.isnan(mean) else mean * (1 if self.lower_is_better else -1)
        return sorted(groups, key=key)

    def verdict(self, runs: list[RunSummary], keys: list[str], groups: list[SeedGroup]) -> str:
        """One sentence: the best run (or configuration, over seeds) by the metric, and how clearly."""
        head = f"Ranked by {self.metric} ({self.direction} is better):"
        if groups:
            measured = [(g, Measured(tuple(r.metrics[self.metric] for r in g.runs if _number(r.metrics.get(self.metric)))))
                        for g in self.groups_in_order(groups)]
            measured = [(g, m) for g, m in measured if m.values]
            if not measured:
                return f"{head} no complete run reports it."
            best, top = measured[0]
            seeds = min(len(m.values) for _, m in measured)
            how = ("the only configuration measured" if len(measured) == 1 else
                   "one seed each, so no difference can be told from the spread" if seeds < 2 else
                   "best beyond the spread over seeds" if leads([m for _, m in measured], self.lower_is_better)
                   else "best mean, within the spread of another")
            return f"{head} {_settings(best.settings)} ({_value(top)}): {how}."
        ordered = self.measured(runs)
        if not ordered:
            return f"{head} no complete run reports it."
        best = ordered[0]
        alone = ", one run per setting (no spread over seeds to tell a difference from)" if len(ordered) > 1 else ""
        return (f"{head} the best run is {best.name} ({label(best, keys)}) at "
                f"{_value(Measured((best.metrics[self.metric],)))}{alone}.")


def ranking(runs: list[RunSummary]) -> Optional[Ranking]:
    """The sweep's ranking: by the optimized_metric its runs name (a sweeper's objective), else by
    :data:`RANKED_BY`; None where no complete run reports any of them."""
    complete = [r for r in runs if r.status == "complete"]
    metric = _optimized_metric(complete) or next((m for m in RANKED_BY if any(m in r.metrics for r in complete)), None)
    return None if metric is None else Ranking(metric, metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER)


def closing_verdict(sweep_dir: Path) -> Optional[str]:
    """The ranking's sentence for a sweep folder as it stands (None: nothing to rank), for the lines
    a sweep ends with."""
    runs = read_runs(Path(sweep_dir))
    rank = ranking(runs)
    if rank is None:
        return None
    keys = swept_keys(runs)
    groups = seed_groups(runs, keys) if any(is_replicate(k) for k in keys) else []
    return rank.verdict(runs, keys, groups)


def label(run: RunSummary, keys: list[str]) -> str:
    """A run as its sweep tells it apart: the swept settings it has."""
    return _settings({k: run.overrides[k] for k in keys if k in run.overrides})


def _settings(settings: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "as configured"


def _optimized_metric(complete: list[RunSummary]) -> Optional[str]:
    for run in complete[:1]:
        try:
            return RunDir(run.path).read_config().get("optimized_metric")
        except (DamagedFile, OSError, AttributeError):
            return None
    return None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _value(measured: "Measured") -> str:
    """Four significant digits of the mean, and at least two of the spread."""
    digits = 3 - int(math.floor(math.log10(abs(measured.mean)))) if measured.mean else 3
    if measured.sd > 0:
        digits = max(digits, 1 - int(math.floor(math.log10(measured.sd))))
    return format(measured, f".{min(max(digits, 0), 6)}f")


def seeds_table(groups: list[SeedGroup], settings: list[str], metrics: list[str]) -> list[str]:
    """A markdown table: a row per configuration, its mean ± sd over seeds for each metric."""
    lines = _table_head([*settings, "runs", *metrics])
    for g in groups:
        lines.append(_row([*(g.settings.get(k, "") for k in settings), str(len(g.runs)),
                           *(_spread_cell(*g.spread(m)) for m in metrics)]))
    return lines


def runs_table(runs: list[RunSummary], keys: list[str], metrics: list[str], best: Optional[str] = None) -> list[str]:
    """A markdown table: a row per run, its settings, status and metrics (4 significant digits);
    the run named ``best`` is marked so."""
    lines = _table_head(["run", *keys, "status", *metrics])
    for r in runs:
        lines.append(_row([f"**{r.name}** (best)" if r.name == best else r.name, *(r.overrides.get(k, "") for k in keys), r.status,
                           *(_cell(r.rate if m == "rate" else r.metrics.get(m), 4) for m in metrics)]))
    return lines


def _table_head(columns: list[str]) -> list[str]:
    return [_row(columns), _row(["---"] * len(columns))]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _spread_cell(mean: float, sd: float) -> str:
    return "" if math.isnan(mean) else f"{mean:.4g} ± {sd:.2g}"


def _cell(value: Any, digits: Optional[int] = None) -> str:
    """A table cell: full precision unless ``digits`` significant digits are asked for."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value) if digits is None else f"{value:.{digits}g}"
    return str(value)


def numeric_key(runs: list[RunSummary], key: str) -> bool:
    try:
        [float(r.overrides[key]) for r in runs]
        return True
    except (KeyError, ValueError):
        return False


def short_key(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def run_label(run: RunSummary, keys: list[str]) -> str:
    """The run's swept settings, short; a key this run does not have (share_encoder for a model
    without one) is left out rather than shown as a placeholder."""
    return ", ".join(f"{short_key(k)}={run.overrides[k]}" for k in keys if k in run.overrides)


def failed_runs(sweep_dir: Path) -> list[str]:
    return [r.name for r in read_runs(Path(sweep_dir)) if r.status.startswith("failed")]
