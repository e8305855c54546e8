"""The write-ups vae-lab reproduces, as data, and the one judge of their claims.

A write-up is its recipe, ``conf/experiment/<name>.yaml`` (what to train), and beside it its claims,
``conf/experiment/<name>.claims.yml`` (what the write-up says, on the numbers):

    title: "seeds/004: latent 2 vs 64, beta 0 vs 10"
    observation: Latent 64 clusters digits better than latent 2; ...   # the write-up, in our words
    metrics: [test/nelbo, test/knn_acc, ...]                           # the report's table
    figures:
      - {caption: Rate and distortion of every run, file: rate_distortion.png}           # the sweep's
      - {caption: "Latent 2: the plane", file: latent_scatter.png, run: {latent_dim: 2}}  # a run's
    extra_runs: {separate_encoder: [model=combined, model.share_encoder=false]}          # optional
    ranked: {higher: [test/mig]}  # optional: name the configuration best at these, beyond the spread
    claims:
      - says: latent 64 clusters digits better than latent 2
        metric: test/knn_acc
        higher: {latent_dim: 64, beta: 1}
        than: {latent_dim: 2, beta: 1}
    checklist:  # every sentence of the write-up's findings (seeds/004 in ../shared/seeds), in order
      source: seeds/004
      from: "## The effect of Latent Dimension Size"
      sentences:
        - {sentence: "There's more orgnisation here , better clusters compared to previous.",
           claims: [latent 64 clusters digits better than latent 2]}  # or figure (and why), not_judged, not_a_claim

(``.yml``, not ``.yaml``, so that Hydra does not offer the file as an experiment.) A claim compares
two sides, ``higher`` (or ``lower``) ``than``: a side is a configuration of the sweep, picked by the
short names and values of its overrides (``null``: runs without that override) and measured over its
seeds (a side may name a ``metric`` of its own), or a plain number. ``based_on: NAME`` takes another
write-up's claims and figures, for a second recipe of the same write-up.

:func:`judge` judges every claim: a claim holds only when the two sides differ beyond the spread
over seeds (:meth:`Measured.below`). A configuration that lacks a complete run for any planned seed
is not judged, and neither is a write-up measured on one seed (quick mode): one seed cannot tell a
difference from the spread. Beside each verdict, :func:`welch_p` says how often the seeds' noise alone
would put the sides that far apart.
"""

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import yaml
from omegaconf import OmegaConf
from scipy import stats

from vae_lab.compose import config_dir
from vae_lab.errors import UserError, closest
from vae_lab.runs import is_replicate
from vae_lab.summary import Measured, leads, swept_keys


class Missing(Exception):
    """A number a claim needs is not there (its run failed, has not finished, or never ran)."""


class Runs:
    """A sweep's runs, picked by their overrides' short names: ``runs.get("test/mse", latent_dim="2")``
    is test MSE over the seeds of the runs with latent_dim 2. A selector value ``None`` asks for runs
    without that override; the seed is never part of a selector. ``seeds``: the seeds every
    configuration was planned with (None: whichever it has)."""
    def __init__(self, runs: list, seeds: Optional[tuple[str, ...]] = None):
        self.all, self.seeds = runs, seeds
        self.left_out: dict[str, str] = {}  # run name: its seed, planned for no configuration

    def planned(self, run) -> bool:
        return self.seeds is None or (run.replicate or "0") in self.seeds

    def configuration(self, **selector: Optional[str]) -> list:
        """The runs of the one configuration the selector picks, one per seed."""
        def matches(run) -> bool:
            short = {key.rsplit(".", 1)[-1]: _spelled(value) for key, value in run.overrides.items()}
            return all(short.get(name) == (None if value is None else _spelled(str(value)))
                       for name, value in selector.items())

        found = [r for r in self.all if matches(r)]
        configurations = {tuple(sorted((k, v) for k, v in r.overrides.items() if not is_replicate(k))) for r in found}
        if len(configurations) != 1:
            raise Missing(f"{len(configurations)} configurations match {_shown(selector)}")
        return found

    def find(self, **selector: Optional[str]):
        """The configuration's first run (lowest seed): the one whose figures are shown."""
        return min(self.configuration(**selector), key=lambda r: int(r.replicate or "0"))

    def get(self, metric: str, **selector: Optional[str]) -> Measured:
        """The metric over the configuration's planned seeds; a run of a seed not planned is left out
        (and noted in :attr:`left_out`), never averaged in."""
        runs = self.configuration(**selector)
        self.left_out.update({r.name: r.replicate for r in runs if not self.planned(r)})
        runs = [r for r in runs if self.planned(r)]
        lacking = [f"run {r.name} ({r.status})" for r in runs if metric not in r.metrics]
        have = {r.replicate or None for r in runs}
        lacking += [f"seed {seed}'s run" for seed in (self.seeds or ()) if seed not in have and
                    not (seed == "0" and None in have)]  # a run without a seed override has seed 0
        if lacking:
            raise Missing(f"{metric} of {_shown(selector)}: no number from {', '.join(lacking)}")
        odd = [r.name for r in runs if not math.isfinite(r.metrics[metric])]
        if odd:
            raise Missing(f"{metric} of {_shown(selector)}: not a finite number in run {', '.join(odd)}")
        return Measured(tuple(r.metrics[metric] for r in runs))


def _spelled(value: str) -> str:
    """An override's value as compared: Hydra's sweeper writes `false` back as `False`."""
    return value.lower() if value.lower() in ("true", "false") else value


def _shown(selector: dict) -> str:
    """A configuration as a reader names it: a key the runs leave at its default (None) goes unsaid."""
    return ", ".join(f"{k}={v}" for k, v in selector.items() if v is not None and k != "metric") or "the sweep"


# ---- a write-up -----------------------------------------------------------------------------------

Side = Union[dict, float]


@dataclass(frozen=True)
class Claim:
    says: str
    metric: Optional[str]
    direction: str  # "higher" or "lower"
    side: Side
    than: Side

    @staticmethod
    def parse(entry: dict) -> "Claim":
        """A claim read from a checked claims file (:func:`read_claims_file`)."""
        direction = "higher" if "higher" in entry else "lower"
        return Claim(entry["says"], entry.get("metric"), direction, entry[direction], entry["than"])

    def measure(self, runs: Runs, side: Side) -> tuple[Measured, str]:
        """A side's numbers, and the metric they are of ("" for a plain number)."""
        if not isinstance(side, dict):
            return Measured((float(side),)), ""
        selector = {k: (None if v is None else str(v)) for k, v in side.items() if k != "metric"}
        metric = side.get("metric", self.metric)
        return runs.get(metric, **selector), metric


@dataclass(frozen=True)
class Judged:
    claim: Claim
    holds: Optional[bool]  # None: not judged
    detail: str  # the numbers, or why not judged


@dataclass(frozen=True)
class Verdict:
    summary: str  # "Holds", "Holds in part", "Does not hold", "Not judged"
    claims: tuple[Judged, ...]
    seeds: tuple[str, ...]

    left_out: tuple[str, ...] = ()  # runs of seeds no configuration was planned with

    def markdown(self) -> str:
        marks = {True: "holds", False: "does not hold", None: "not judged"}
        if len(self.seeds) == 1:  # quick mode: whatever the other claims, no line says "holds"
            marks = {True: f"agrees on seed {self.seeds[0]}", False: f"disagrees on seed {self.seeds[0]}",
                     None: "not judged"}
        lines = [f"**{self.summary}**" + self._why(), ""]
        lines += [f"- {marks[j.holds]}: {j.claim.says}: {j.detail}" for j in self.claims]
        if self.left_out:
            lines += ["", f"Left out, as no configuration was planned with their seed: {', '.join(self.left_out)}."]
        return "\n".join(lines)

    def _why(self) -> str:
        if not self.claims:
            return ": the write-up states no claim to judge."
        if not self.seeds:
            return ": its recipe's seeds could not be composed, so nothing says which runs to compare."
        judged = [j for j in self.claims if j.holds is not None]
        if len(judged) < len(self.claims):
            return f": {len(self.claims) - len(judged)} of {len(self.claims)} claims lack their numbers."
        if len(self.seeds) == 1:
            return ": one seed, so no difference can be told from the spread over seeds."
        held = sum(bool(j.holds) for j in judged)
        return f" ({held} of {len(judged)} claims beyond the spread over seeds {', '.join(self.seeds)})."


@dataclass(frozen=True)
class Figure:
    caption: str
    file: str  # under figures/ of the run (or of the sweep folder)
    run: Optional[dict] = None  # selector of the run; None: the sweep's own figure


@dataclass(frozen=True)
class Sentence:
    """One sentence of a write-up's findings and what judges it (exactly one of): the claims that
    state it (by what they say), a figure that shows it, why it is not judged, or what it is instead
    of a claim. ``why``: why a figure and no claim."""

    sentence: str
    claims: tuple[str, ...] = ()
    figure: Optional[str] = None
    not_judged: Optional[str] = None
    not_a_claim: Optional[str] = None
    why: Optional[str] = None


@dataclass(frozen=True)
class Checklist:
    """Every sentence of the write-up's findings in order: from the line ``start`` of its text
    (``seeds/NNN``, in ../shared/seeds/NNN_*.txt) to the line ``end`` (or its end)."""

    source: str
    start: str
    end: Optional[str]
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True)
class WriteUp:
    experiment: str
    title: str
    observation: str
    metrics: tuple[str, ...]
    figures: tuple[Figure, ...]
    claims: tuple[Claim, ...]
    extra_runs: dict = field(default_factory=dict)  # folder: overrides of an extra sweep
    ranked: dict = field(default_factory=dict)  # "higher" / "lower" (the better way): metrics to rank by
    checklist: Optional[Checklist] = None

    def judge(self, runs: Runs) -> Verdict:
        return judge(self, runs)

    def metric_names(self) -> list[str]:
        """Every metric the write-up names: its table's, its claims' (either side's own too) and its
        rankings', each once, in that order."""
        named = [*self.metrics]
        for claim in self.claims:
            named += [claim.metric, *(side.get("metric") for side in (claim.side, claim.than) if isinstance(side, dict))]
        named += [metric for better in ("higher", "lower") for metric in self.ranked.get(better, [])]
        return list(dict.fromkeys(name for name in named if name))


def claims_folder() -> Path:
    """Where the write-ups are: beside the recipes, in the config tree's experiment/ folder."""
    return config_dir() / "experiment"


def claims_file(experiment: str, folder: Optional[Path] = None) -> Path:
    return (folder or claims_folder()) / f"{experiment}.claims.yml"


def write_up_names(folder: Optional[Path] = None) -> tuple[str, ...]:
    """The write-ups' names (their recipes' names), in order, without reading their claims files:
    one broken file must not stop the others (or ``--help``)."""
    return tuple(sorted(path.name.removesuffix(".claims.yml") for path in (folder or claims_folder()).glob("*.claims.yml")))


def load_write_up(experiment: str, folder: Optional[Path] = None) -> WriteUp:
    """The write-up whose claims are conf/experiment/<experiment>.claims.yml, checked: a file that
    breaks the format (:data:`WRITE_UP_KEYS`, :data:`CLAIM_KEYS`) is a UserError naming file, line
    and key."""
    data = read_claims_file(claims_file(experiment, folder))
    path = claims_file(experiment, folder)
    if "based_on" in data:
        base = load_write_up(data.pop("based_on"), folder)
        data = {"title": base.title, "observation": base.observation, "metrics": list(base.metrics),
                "figures": [vars(f) for f in base.figures], "claims": [], "extra_runs": base.extra_runs,
                "ranked": base.ranked, **data, "_claims": base.claims, "_checklist": base.checklist}
    claims = tuple(Claim.parse(c) for c in data.get("claims", [])) or data.get("_claims", ())
    checklist = data.get("_checklist")
    if "checklist" in data:
        listed = data["checklist"]
        checklist = Checklist(listed["source"], listed["from"], listed.get("to"),
                              tuple(Sentence(**{**entry, "claims": tuple(entry.get("claims", ()))})
                                    for entry in listed["sentences"]))
        said = {claim.says for claim in claims}
        for number, entry in enumerate(checklist.sentences):
            for unknown in (c for c in entry.claims if c not in said):
                raise UserError(f"{path}:{_key_lines(yaml.compose(path.read_text()))[('checklist', 'sentences', number)]}: "
                                f"the checklist names a claim the file does not make: {unknown!r}")
    return WriteUp(experiment, data["title"], data["observation"], tuple(data["metrics"]),
                   tuple(Figure(**f) for f in data.get("figures", [])), claims,
                   dict(data.get("extra_runs", {})), dict(data.get("ranked", {})), checklist)


def write_ups(folder: Optional[Path] = None) -> tuple[WriteUp, ...]:
    """Every write-up: each conf/experiment/<name>.claims.yml beside its recipe, in the order of names."""
    return tuple(load_write_up(name, folder) for name in write_up_names(folder))


# ---- the claims file's format ----------------------------------------------------------------------

# A write-up's keys: (required, what its value is). A write-up ``based_on`` another needs none.
WRITE_UP_KEYS = {"title": (True, str), "observation": (True, str), "metrics": (True, list),
                 "figures": (False, list), "claims": (False, list), "extra_runs": (False, dict),
                 "ranked": (False, dict), "based_on": (False, str), "checklist": (False, dict)}
CLAIM_KEYS = ("says", "metric", "higher", "lower", "than")
FIGURE_KEYS = ("caption", "file", "run")
CHECKLIST_KEYS = ("source", "from", "to", "sentences")
SENTENCE_KEYS = ("sentence", "claims", "figure", "not_judged", "not_a_claim", "why")
VERDICT_KINDS = ("claims", "figure", "not_judged", "not_a_claim")  # a sentence has exactly one


def read_claims_file(path: Path) -> dict:
    """A claims file's contents, checked against the format above before anything uses them."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise UserError(f"{path}: no such claims file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: not YAML ({getattr(error, 'problem', None) or 'unreadable'})") from None
    if not isinstance(data, dict):
        found = "empty" if data is None else f"a {type(data).__name__}"
        raise UserError(f"{path}:1: a claims file is a mapping with {', '.join(WRITE_UP_KEYS)}; this one is {found}")
    lines = _key_lines(node)
    for key, value in data.items():
        where = f"{path}:{lines.get((key,), 1)}"
        if key not in WRITE_UP_KEYS:
            raise UserError(f"{where}: `{key}` is not a key of a write-up; "
                            f"{_expected(str(key), WRITE_UP_KEYS)}")
        if not isinstance(value, WRITE_UP_KEYS[key][1]):
            raise UserError(f"{where}: `{key}` is a {WRITE_UP_KEYS[key][1].__name__}, not {value!r}")
    required = [k for k, (needed, _) in WRITE_UP_KEYS.items() if needed] if "based_on" not in data else []
    lacking = [k for k in required if k not in data]
    if lacking:
        raise UserError(f"{path}:1: a write-up needs `{'`, `'.join(lacking)}`")
    for number, entry in enumerate(data.get("claims", [])):
        _check_entry(entry, path, lines, ("claims", number), CLAIM_KEYS, "a claim")
        where = f"{path}:{lines.get(('claims', number), 1)}"
        directions = [d for d in ("higher", "lower") if d in entry]
        if len(directions) != 1 or "than" not in entry or "says" not in entry:
            raise UserError(f"{where}: a claim has `says`, one of `higher`/`lower`, and `than` (and may have "
                            f"`metric`); this one has {', '.join(f'`{k}`' for k in entry)}")
        sides = [entry[directions[0]], entry["than"]]
        if not any(isinstance(side, dict) for side in sides):
            raise UserError(f"{where}: both sides of the claim are numbers; at least one is a configuration "
                            "of the sweep, such as {latent_dim: 64}")
        if any(isinstance(side, dict) and "metric" not in side for side in sides) and not entry.get("metric"):
            raise UserError(f"{where}: the claim names no `metric` for its configuration(s)")
    for number, entry in enumerate(data.get("figures", [])):
        _check_entry(entry, path, lines, ("figures", number), FIGURE_KEYS, "a figure")
    if "checklist" in data:
        _check_entry(data["checklist"], path, lines, ("checklist",), CHECKLIST_KEYS, "a checklist")
        sentences = data["checklist"].get("sentences")
        if not isinstance(sentences, list) or not all(k in data["checklist"] for k in ("source", "from")):
            raise UserError(f"{path}:{lines.get(('checklist',), 1)}: a checklist has a source, from and a list of "
                            "sentences")
        for number, entry in enumerate(sentences):
            _check_entry(entry, path, lines, ("checklist", "sentences", number), SENTENCE_KEYS, "a checklist sentence")
            kinds = [k for k in VERDICT_KINDS if k in entry]
            if "sentence" not in entry or len(kinds) != 1:
                raise UserError(f"{path}:{lines.get(('checklist', 'sentences', number), 1)}: a checklist sentence has "
                                f"`sentence` and one of {', '.join(VERDICT_KINDS)}; this one has "
                                f"{', '.join(f'`{k}`' for k in entry)}")
    return data


def findings_sentences(text: str, start: str, end: Optional[str] = None) -> list[str]:
    """The sentences of a write-up's findings, from its line ``start`` to its line ``end``: its prose
    lines split at each sentence's end; images, HTML, headings, tables, rules, bold labels and list
    numbers left out."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == start.strip())
    last = next((i for i, line in enumerate(lines) if end is not None and line.strip() == end.strip()), len(lines))
    found = []
    for line in lines[first:last]:
        line = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", line).strip()
        if not line or re.match(r"(<|#|\||-{3,}|\*{3})", line) or re.fullmatch(r"\*\*[^*]+\*\*|\d+\.", line):
            continue
        found += [part.strip() for part in re.split(r"(?<=[.!?])\s+", line) if part.strip()]
    return found


def _check_entry(entry, path: Path, lines: dict, at: tuple, allowed: tuple, what: str) -> None:
    where = f"{path}:{lines.get(at, 1)}"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: {what} is a mapping with {', '.join(allowed)}, not {entry!r}")
    for key in entry:
        if key not in allowed:
            raise UserError(f"{path}:{lines.get((*at, key), lines.get(at, 1))}: `{key}` is not a key of {what}; "
                            f"{_expected(str(key), allowed)}")


def _expected(key: str, allowed) -> str:
    near = closest(key, list(allowed))
    return (f"did you mean `{near}`? " if near else "") + f"the keys allowed here are {', '.join(allowed)}"


def _key_lines(node) -> dict[tuple, int]:
    """The line (from 1) of every key and list item of a YAML node tree, by its path of keys and
    indices: where a message about it points."""
    found: dict[tuple, int] = {}

    def walk(node, at: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found[(*at, key.value)] = key.start_mark.line + 1
                walk(value, (*at, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                found[(*at, index)] = item.start_mark.line + 1
                walk(item, (*at, index))

    walk(node, ())
    return found


# ---- the judge ------------------------------------------------------------------------------------


def judge(write_up: WriteUp, runs: Runs) -> Verdict:
    """Every claim of the write-up judged on ``runs``, each configuration over every planned seed
    (``runs.seeds``; None: every seed any run of the sweep has; empty: none could be planned, so
    nothing is judged)."""
    seeds = runs.seeds if runs.seeds is not None else tuple(sorted({r.replicate or "0" for r in runs.all}, key=_seed_order))
    runs = Runs(runs.all, seeds)
    if not seeds:
        return Verdict("Not judged", tuple(Judged(c, None, "no seeds planned") for c in write_up.claims), seeds)
    judged = tuple(judge_claim(claim, runs) for claim in write_up.claims)
    if not judged or any(j.holds is None for j in judged) or len(seeds) < 2:
        summary = "Not judged"
    elif all(j.holds for j in judged):
        summary = "Holds"
    elif any(j.holds for j in judged):
        summary = "Holds in part"
    else:
        summary = "Does not hold"
    return Verdict(summary, judged, seeds, tuple(f"run {name} (seed {seed})" for name, seed in runs.left_out.items()))


def judge_claim(claim: Claim, runs: Runs) -> Judged:
    try:
        (mine, metric), (theirs, other_metric) = claim.measure(runs, claim.side), claim.measure(runs, claim.than)
    except Missing as missing:
        return Judged(claim, None, str(missing))
    holds = mine.above(theirs) if claim.direction == "higher" else mine.below(theirs)
    shown = metric or other_metric
    detail = f"{_side_name(claim.side, claim.metric)} {_value(mine, shown)} against " \
             f"{_side_name(claim.than, claim.metric)} {_value(theirs, shown)}"
    p = welch_p(mine, theirs, claim.direction)
    return Judged(claim, holds, detail + ("" if p is None else f" (Welch's t-test, one-sided: p = {p:.2g})"))


def welch_p(mine: Measured, theirs: Measured, direction: str) -> Optional[float]:
    """How often seeds' noise alone would show ``mine`` this far ``direction`` of ``theirs``: Welch's
    t-test, one-sided (a one-sample t-test against a plain number). None where a side has one value
    or neither side varies (no spread to test against)."""
    if len(mine.values) < 2 or mine.sd == theirs.sd == 0:
        return None
    alternative = "greater" if direction == "higher" else "less"
    with warnings.catch_warnings():  # scipy warns of lost precision where one side's seeds agree
        warnings.simplefilter("ignore", RuntimeWarning)
        if len(theirs.values) == 1:
            return float(stats.ttest_1samp(mine.values, theirs.values[0], alternative=alternative).pvalue)
        return float(stats.ttest_ind(mine.values, theirs.values, equal_var=False, alternative=alternative).pvalue)


def rankings(write_up: WriteUp, runs: Runs) -> list[str]:
    """A line per metric the write-up ranks its configurations by (``ranked``)."""
    found = configurations(runs)
    return [ranking(runs, metric, better, found) for better in ("higher", "lower")
            for metric in write_up.ranked.get(better, [])]


def configurations(runs: Runs) -> list[dict]:
    """A selector for each configuration of the runs: the short names of the overrides that vary
    between runs (but the seed), None where a configuration lacks one."""
    keys = [k for k in swept_keys(runs.all) if not is_replicate(k)]
    found: list[dict] = []
    for run in runs.all:
        selector = {key.rsplit(".", 1)[-1]: run.overrides.get(key) for key in keys}
        if selector not in found:
            found.append(selector)
    return found


def ranking(runs: Runs, metric: str, better: str, configurations: list[dict]) -> str:
    """Which of ``configurations`` is best at ``metric`` (``better``: "higher" or "lower"), and
    whether it is so beyond the spread over seeds against every other one."""
    measured, missing = [], []
    for selector in configurations:
        try:
            measured.append((selector, runs.get(metric, **selector)))
        except Missing:
            missing.append(f"{_side_name(selector, metric)} missing")
    if len(measured) < 2:
        return f"{metric}: fewer than two configurations measured" + (f" ({len(missing)} missing)" if missing else "")
    sign = 1 if better == "higher" else -1
    measured.sort(key=lambda pair: -sign * pair[1].mean)
    best = measured[0][0]
    clear = leads([m for _, m in measured], better == "lower")
    shown = ", ".join([*(f"{_side_name(s, metric)} {_value(m, metric)}" for s, m in measured), *missing])
    most = f"{'highest' if better == 'higher' else 'lowest'} mean"
    verdict = (f"{most} on one seed, which cannot tell a difference from the spread" if min(len(m.values) for _, m in measured) < 2
               else f"{most}, not ranked against {len(missing)} configuration(s) missing numbers" if missing
               else "best beyond the spread" if clear else f"{most}, within the spread of another")
    return f"{metric} ({better} is better): {_side_name(best, metric)} {verdict} ({shown})"


def _side_name(side: Side, metric: Optional[str]) -> str:
    if not isinstance(side, dict):
        return "the threshold"
    named_metric = side.get("metric")
    return f"{named_metric} of {_shown(side)}" if named_metric and named_metric != metric else _shown(side)


def _seed_order(seed: str) -> tuple:
    return (0, int(seed), "") if seed.isdigit() else (1, 0, seed)


PERCENT = ("_acc", "digit_control", "digit_change")  # metrics that are fractions of images


def _value(measured: Measured, metric: str) -> str:
    """Fractions of images as percentages, anything else to four significant digits."""
    if metric.endswith(PERCENT):
        return f"{measured:%}"
    digits = 4 - int(math.floor(math.log10(abs(measured.mean)))) - 1 if measured.mean else 3
    return format(measured, f".{min(max(digits, 0), 6)}f")
