"""The tables of docs/findings/ (and the README), generated from the summaries committed beside them.

    python tools/findings_tables.py          # rewrite every generated table in place
    python tools/findings_tables.py --check  # exit 1 naming each table that differs from its data

A generated table sits between two comments that say where its numbers come from:

    <!-- table from results/jointvae32/summary.csv rows=runs keys=seed metrics=test/cluster_acc:%,test/nelbo:.1f footer=mean -->
    | seed | test/cluster_acc | test/nelbo |
    ...
    <!-- end of table -->

- sources: one or more summary.csv files (`vae-lab sweep` writes them), relative to the page, joined
  with `+`; `label=path` names a source, and its runs then have the key `source` set to that label.
  Only complete runs are shown.
- where=KEY=VALUE[,KEY=VALUE]: only the runs whose keys say so (one model of a write-up's sweep).
- fill=KEY=VALUE[,...]: the value a run's KEY has when its summary leaves it out (a sweep records only
  the keys it overrides, so another sweep's explicit `model.share_encoder=True` is its default).
- rows=runs: a row per run, its `keys` then its `metrics`. pivot=KEY puts the runs that differ only in
  KEY on one row, each metric once per value of KEY (released code beside vae-lab, seed by seed); a pivot on `seed` heads its columns "seed N".
  footer=mean,best adds the mean ± sd row and the best run's row (for metrics given a direction).
- rows=seeds: a row per configuration (the runs that share every key but the seed), mean ± sd.
- metrics: `name:format[:max|min]`, the format a Python format spec (`.1f`, `.3g`; `_.0f` groups
  thousands, shown with commas) or `%` (a fraction shown as a percentage with one decimal), the
  direction which way is better.

Typing a number into such a table is caught by the check (tests/test_docs.py runs it), so every number
in it is the one its data holds.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vae_lab.runs import is_replicate  # noqa: E402
from vae_lab.summary import Measured, RunSummary, read_summary_csv, seed_groups  # noqa: E402

FINDINGS = REPO / "docs" / "findings"
BLOCK = re.compile(r"(<!-- table from (?P<spec>[^\n]*?) -->\n)(?P<table>.*?)(<!-- end of table -->)", re.S)


class BadSpec(ValueError):
    pass


def parse(spec: str) -> dict:
    sources, *options = spec.split()
    parsed = {"sources": [], "rows": "runs", "keys": [], "metrics": [], "footer": [], "pivot": None,
              "where": {}, "fill": {}}
    for source in sources.split("+"):
        label, _, path = source.rpartition("=")
        parsed["sources"].append((label or None, path))
    for option in options:
        name, _, value = option.partition("=")
        if name not in parsed or name == "sources":
            raise BadSpec(f"unknown option {name!r} in table spec {spec!r}")
        if name in ("keys", "footer"):
            parsed[name] = value.split(",")
        elif name == "metrics":
            parsed["metrics"] = [Column(*m.split(":")) for m in value.split(",")]
        elif name in ("where", "fill"):
            pairs = [pair.partition("=") for pair in value.split(",")]
            if not all(key and sign for key, sign, _ in pairs):
                raise BadSpec(f"{name}={value} in table spec {spec!r}: KEY=VALUE[,KEY=VALUE]")
            parsed[name] = {key: wanted for key, _, wanted in pairs}
        else:
            parsed[name] = value
    if parsed["rows"] not in ("runs", "seeds"):
        raise BadSpec(f"rows={parsed['rows']} in table spec {spec!r}: runs or seeds")
    return parsed


class Column:
    def __init__(self, name: str, form: str = ".4g", better: str | None = None):
        if better not in (None, "max", "min"):
            raise BadSpec(f"{name}: direction {better!r}, not max or min")
        self.name, self.form, self.better = name, form, better

    def cell(self, value: float | Measured | None) -> str:
        # `,` would end the metric in a spec, so thousands are grouped with `_` and shown with commas.
        return self._cell(value).replace("_", ",")

    def _cell(self, value: float | Measured | None) -> str:
        if isinstance(value, Measured):
            if not value.values:
                return ""
            return f"{value:%}" if self.form == "%" else format(value, self.form)
        if value is None:
            return ""
        return f"{100 * value:.1f}%" if self.form == "%" else format(value, self.form)


def read(spec: dict, page: Path) -> list[RunSummary]:
    runs = []
    for label, path in spec["sources"]:
        for run in read_summary_csv(page.parent / path):
            for key, value in spec["fill"].items():
                run.overrides.setdefault(key, value)
            if run.status == "complete" and all(run.overrides.get(k) == v for k, v in spec["where"].items()):
                if label:
                    run.overrides["source"] = label
                runs.append(run)
    if not runs:
        raise BadSpec(f"{page.name}: no complete run in {spec['sources']}"
                      + (f" where {spec['where']}" if spec["where"] else ""))
    return runs


def measured(runs: list[RunSummary], metric: str) -> Measured:
    return Measured(tuple(r.metrics[metric] for r in runs if metric in r.metrics))


def table(spec: dict, page: Path) -> list[str]:
    runs, columns, keys = read(spec, page), spec["metrics"], spec["keys"]
    if spec["rows"] == "seeds":
        settings = [k for k in keys if not is_replicate(k)]
        lines = head([*settings, "seeds", *(c.name for c in columns)])
        for group in seed_groups(runs, settings):
            lines.append(row([*(group.settings.get(k, "") for k in settings), str(len(group.runs)),
                              *(c.cell(measured(group.runs, c.name)) for c in columns)]))
        return lines
    pivot = spec["pivot"]
    sides = list(dict.fromkeys(r.overrides.get(pivot, "") for r in runs)) if pivot else [None]
    side_runs = {side: [r for r in runs if side is None or r.overrides.get(pivot, "") == side] for side in sides}
    cells = [(side, c) for c in columns for side in sides]
    named = (lambda side: f"seed {side}") if pivot and is_replicate(pivot) else (lambda side: side)  # a bare number needs its key
    lines = head([*keys, *(c.name if side is None else f"{named(side)}: {c.name}" for side, c in cells)])
    rows: dict[tuple, dict] = {}
    for run in runs:
        rows.setdefault(tuple(run.overrides.get(k, "") for k in keys), {})[run.overrides.get(pivot) if pivot else None] = run
    for values, by_side in rows.items():
        lines.append(row([*values, *(c.cell(by_side[side].metrics.get(c.name) if side in by_side else None)
                                     for side, c in cells)]))
    blank = [""] * (len(keys) - 1)
    if "mean" in spec["footer"]:
        lines.append(row(["mean ± sd", *blank, *(c.cell(measured(side_runs[side], c.name)) for side, c in cells)]))
    if "best" in spec["footer"]:
        def best(side, c):
            values = measured(side_runs[side], c.name).values
            return c.cell((max if c.better == "max" else min)(values)) if c.better and values else ""
        lines.append(row(["best", *blank, *(best(side, c) for side, c in cells)]))
    return lines


def head(columns: list[str]) -> list[str]:
    return [row(columns), row(["---"] * len(columns))]


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def regenerate(page: Path) -> str:
    """The page's text with every generated table written from its data."""
    text = page.read_text()
    return BLOCK.sub(lambda m: m.group(1) + "\n".join(table(parse(m.group("spec")), page)) + "\n" + m.group(4), text)


def pages() -> list[Path]:
    return [p for p in [REPO / "README.md", *sorted(FINDINGS.rglob("*.md"))] if "<!-- table from" in p.read_text()]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for page in pages():
        try:
            text = regenerate(page)
        except (BadSpec, OSError) as error:
            print(f"{page.relative_to(REPO)}: {error}", file=sys.stderr)
            return 2
        if text != page.read_text():
            stale.append(page.relative_to(REPO))
            if not check:
                page.write_text(text)
    for page in stale:
        print(f"{page}: {'a table differs from its data' if check else 'tables rewritten'}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
