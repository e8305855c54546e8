"""Rerun the write-ups (conf/experiment/) and report on them in docs/findings/results.md.

``vae-lab reproduce`` (``make reproduce``) runs each write-up's sweep into
``outputs/reproduce/<experiment>/``, resuming whatever an earlier call left unfinished, then writes
``docs/findings/results.md``: per write-up the commands, the mean ± sd of its metrics over seeds, the
figures it names and the numbers of every run (copied to ``docs/findings/results/<experiment>/``) and
the verdict on each of its claims
(``conf/experiment/<name>.claims.yml``, judged by vae_lab/write_ups.py).
``--quick`` trains seed 0 for 2 epochs with a lighter evaluation, into ``outputs/reproduce-quick/``, and
writes its report there too (``report/results.md``): a check that everything runs rather than the
write-ups' numbers, which leaves the findings alone. ``--rejudge`` trains nothing: it judges
the numbers results.md keeps again, with today's judge and claims files, and writes
docs/findings/write-ups.md (what each write-up is and claims).
"""

import argparse
import dataclasses
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from PIL import Image

from vae_lab.compose import config_dir, store_schemas, typed
from vae_lab.data import load_splits
from vae_lab.errors import HeldInterrupt, UserError, closest, fail
from vae_lab.evaluate import final_metric_names
from vae_lab.files import atomic_write
from vae_lab.models import build_model
from vae_lab.plan import check_command, sweep_jobs
from vae_lab.runs import is_replicate
from vae_lab.summary import read_runs, read_summary_csv, seed_groups, seeds_table, swept_keys, write_summary_csv
from vae_lab.sweep import summarize
from vae_lab.write_ups import (Missing, Runs, WriteUp, claims_file, judge, load_write_up, rankings,
                               write_up_names)

# Quick mode: one seed, 2 epochs and a lighter evaluation. A command-line `seed=0` replaces the
# seeds a write-up's sweep lists (Hydra's basic sweeper keeps the last value given for a key).
# eval.is_samples stays each recipe's own: at most the default 100, and 0 where a recipe skips the NLL.
QUICK_OVERRIDES = ("seed=0", "trainer.epochs=2", "eval.sample_images=2000", "eval.probe_images=5000")


def sweeps(write_up: WriteUp, folder: Path, extra: list[str]) -> list[list[str]]:
    """The `vae-lab sweep` arguments that reproduce a write-up into ``folder``: any extra sweeps
    (into <folder>/<name>, over the same seeds as the main one), then the main sweep."""
    return [*([f"experiment={write_up.experiment}", *overrides, *extra, f"hydra.sweep.dir={folder / name}"]
              for name, overrides in write_up.extra_runs.items()),
            [f"experiment={write_up.experiment}", *extra, f"hydra.sweep.dir={folder}"]]


def check_sweeps(chosen: list[WriteUp], root: Path, extra: list[str]) -> None:
    """Compose every job of every sweep to be run, as `vae-lab sweep` would before its first job, so
    that a bad override ends the command with one line (exit 2) before anything trains."""
    store_schemas()
    for write_up in chosen:
        jobs = [job for arguments in sweeps(write_up, root / write_up.experiment, extra)
                for job in check_command("train", ["--multirun", "trainer.resume=true", *arguments]).grid]
        refuse_unknown_metrics(write_up, jobs)


def refuse_unknown_metrics(write_up: WriteUp, jobs: list[list[str]]) -> None:
    """Every metric the write-up names (its claims, table and rankings) is one its runs will report:
    a misspelt name would otherwise leave its claims unjudged after every run had trained."""
    reported = reported_metrics(jobs)
    for name in write_up.metric_names():
        if name not in reported:
            near = closest(name, sorted(reported))
            raise UserError(f"{claims_file(write_up.experiment)}: {name}: no run of this write-up reports such a "
                            "metric; " + (f"the closest it reports is {near}" if near else
                                          f"its runs report {', '.join(sorted(reported))}"))


def reported_metrics(jobs: list[list[str]]) -> set[str]:
    """The names of the numbers the jobs' runs will report (metrics.json), known before training: each
    job's model built on the CPU, each data config loaded once."""


    splits, names = {}, set()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for job in jobs:
            config = typed(compose("train", overrides=job))
            data = OmegaConf.to_yaml(OmegaConf.structured(config.data))
            if data not in splits:
                splits[data] = load_splits(config.data)
            model = build_model(config.model, config.backbone, splits[data].image_shape)
            names |= final_metric_names(model, splits[data], config)
    return names


def planned_seeds(write_up: WriteUp, extra: list[str]) -> tuple[str, ...]:
    """The seeds the write-up's sweep runs each configuration with (none where the recipe cannot be
    composed: then nothing says which runs to compare, and the judge judges nothing). Composed
    only: the data need not be there."""


    store_schemas()
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            _, jobs = sweep_jobs("train", [f"experiment={write_up.experiment}", *extra])
    except (UserError, HydraException, OmegaConfBaseException):
        return ()
    seeds = {o.split("=", 1)[1] for job in jobs for o in job if "=" in o and is_replicate(o.split("=", 1)[0])}
    return tuple(sorted(seeds, key=int)) if seeds else ("0",)


def run_write_up(write_up: WriteUp, folder: Path, extra: list[str]) -> None:
    """Train what is missing of one write-up (any extra runs, then the sweep) and summarize it."""
    for arguments in sweeps(write_up, folder, extra):
        # check=False: a failed job is reported in the results; the other write-ups go on
        subprocess.run([sys.executable, "-m", "vae_lab", "sweep", *arguments], check=False)
    summarize(folder)


def cost(runs: Runs) -> tuple[float, int, int]:
    """What a write-up's complete runs cost, from their own records (metrics.json's ``cost_s``: each
    run's share of its population's epochs and evaluation, and its figures), so that neither resumed
    calls nor runs replaced since are counted; and how many of the complete runs recorded it."""
    complete = [r for r in runs.all if r.status == "complete"]
    recorded = [r.metrics["cost_s"] for r in complete if "cost_s" in r.metrics]
    return float(sum(recorded)), len(recorded), len(complete)


def commands(write_up: WriteUp, extra: list[str]) -> list[str]:
    quick = " ".join(extra)
    return [f"vae-lab sweep experiment={write_up.experiment} {' '.join(overrides)} {quick}".replace("  ", " ").strip()
            for overrides in [(), *write_up.extra_runs.values()]]


def read_write_up_runs(write_up: WriteUp, folder: Path, seeds: Optional[tuple[str, ...]] = None) -> Runs:
    """The runs of the write-up's sweep, and of its extra sweeps (named <extra>/<job>)."""
    runs = read_runs(folder)
    for name in write_up.extra_runs:
        if (folder / name).is_dir():
            runs += [dataclasses.replace(r, name=f"{name}/{r.name}") for r in read_runs(folder / name)]
    return Runs(runs, seeds)


def _copy_for_the_web(source: Path, target: Path, width: int = 1000) -> None:
    """A PNG wider than ``width`` pixels is scaled down and kept to a 256-color palette, so that every
    committed figure in docs/ stays well under 1 MiB; anything else is copied."""
    with Image.open(source) as image:
        if source.suffix == ".png" and image.width > width:
            smaller = image.convert("RGB").resize((width, round(image.height * width / image.width)), Image.LANCZOS)
            # Octree, not the default median cut: on mostly grey figures median cut merged the tints.
            smaller.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(target, optimize=True)
            return
    shutil.copyfile(source, target)


def _slug(selector: dict) -> str:
    return "_".join(f"{k}-{v}" for k, v in selector.items() if v is not None) or "sweep"


def section(write_up: WriteUp, folder: Path, extra: list[str], docs: Path,
            seeds: Optional[tuple[str, ...]] = None) -> list[str]:
    """A write-up's section of results.md: its claims judged over ``seeds`` (the planned ones), the
    commands, the table over seeds and the figures."""
    runs = read_write_up_runs(write_up, folder, seeds)
    lines = [f"## {write_up.title}", "", f"*The write-up:* {write_up.observation}", ""]
    lines += verdict_lines(write_up, runs)
    lines += ["```", *commands(write_up, extra), "```", ""]
    seconds, counted, complete = cost(runs)
    took = (f"; its complete runs took {seconds / 60:.1f} min of training and evaluation"
            + (f" ({counted} of the {complete} recorded it)" if counted < complete else "") if counted else "")
    lines += [f"Sweep folder: `{os.path.relpath(folder)}`{took}.", ""]
    keys = swept_keys(runs.all)
    complete = sum(r.status == "complete" for r in runs.all)
    seeds = sorted({r.replicate for r in runs.all})
    target = docs / "results" / write_up.experiment
    data = keep_the_data(write_up, folder, runs, target)
    lines += [f"{complete} of {len(runs.all)} runs complete; mean ± standard deviation over seeds "
              f"{', '.join(seeds)}. Every run's numbers: [{data.name}]({data.relative_to(docs).as_posix()}), "
              f"and each run's metrics.json beside it.", "", *table_lines(write_up, runs), ""]
    for figure in write_up.figures:
        try:
            source = (folder if figure.run is None else runs.find(**figure.run).path) / "figures" / figure.file
        except Missing:
            source = None
        if source is None or not source.is_file():
            lines += [f"*{figure.caption}: not drawn (its run did not finish).*", ""]
            continue
        copy = target / f"{_slug(figure.run or {})}_{figure.file}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        _copy_for_the_web(source, copy)
        lines += [f"**{figure.caption}** (`{source.relative_to(folder.parent)}`)", "",
                  f"![{figure.caption}]({copy.relative_to(docs).as_posix()})", ""]
    return lines


# Metric columns per table at most: more scroll sideways on the docs site at 1,400 pixels.
METRICS_PER_TABLE = 6


def table_lines(write_up: WriteUp, runs: Runs) -> list[str]:
    """The write-up's metrics, mean ± sd over seeds, a row per configuration; many metrics are split
    evenly over as few tables as hold at most ``METRICS_PER_TABLE`` each, one after another."""
    keys = swept_keys(runs.all)
    groups, settings = seed_groups(runs.all, keys), [k for k in keys if not is_replicate(k)]
    metrics = list(write_up.metrics)
    tables_needed = max(1, math.ceil(len(metrics) / METRICS_PER_TABLE))
    per_table = max(1, math.ceil(len(metrics) / tables_needed))
    tables = [seeds_table(groups, settings, metrics[i:i + per_table])
              for i in range(0, len(metrics), per_table)] or [seeds_table(groups, settings, [])]
    return [line for i, table in enumerate(tables) for line in ([""] if i else []) + table]


def _tables_span(lines: list[str]) -> tuple[int, int]:
    """Where a section's tables (one, or several separated by blank lines) start and end."""
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    end = start
    while end < len(lines) and (lines[end].startswith("|") or
                                (lines[end] == "" and end + 1 < len(lines) and lines[end + 1].startswith("|"))):
        end += 1
    return start, end


def verdict_lines(write_up: WriteUp, runs: Runs) -> list[str]:
    """What the judge says of a write-up's runs: each claim, and the rankings the write-up asks for."""
    lines = ["*Here:*", "", *judge(write_up, runs).markdown().split("\n"), ""]
    if write_up.ranked:
        lines += ["*Ranked by each measure, mean ± sd over seeds:*", "",
                  *(f"- {line}" for line in rankings(write_up, runs)), ""]
    return lines


def rejudge(docs: Path) -> Path:
    """results.md in ``docs`` with what each section says of its numbers made again from the numbers
    it keeps (results/<write-up>/summary.csv), with today's judge and claims files: its title and the
    write-up in our words, the verdicts over the seeds its mode plans, and its table; commands, costs
    and figures as they were. Nothing is trained."""
    path = docs / "results.md"
    sections: list[list[str]] = [[]]
    for line in path.read_text().split("\n"):
        if line.startswith("## "):
            sections.append([])
        sections[-1].append(line)
    for lines in sections[1:]:
        named = re.search(r"\]\(results/([^/)]+)/summary\.csv\)", "\n".join(lines))
        if named is None or "*Here:*" not in lines:
            continue
        write_up = load_write_up(named.group(1))
        quick = any("in quick mode" in line for line in lines)
        seeds = planned_seeds(write_up, list(QUICK_OVERRIDES) if quick else [])
        runs = Runs(read_summary_csv(docs / "results" / write_up.experiment / "summary.csv"), seeds)
        lines[0] = f"## {write_up.title}"
        said = next(i for i, line in enumerate(lines) if line.startswith("*The write-up:* "))
        lines[said] = f"*The write-up:* {write_up.observation}"
        start = lines.index("*Here:*")
        end = lines.index("```", start)
        lines[start:end] = verdict_lines(write_up, runs)
        table, end = _tables_span(lines)
        lines[table:end] = table_lines(write_up, runs)
    atomic_write(path, lambda f: f.write("\n".join(line for lines in sections for line in lines)))
    return path


def write_ups_page(docs: Path) -> Path:
    """write-ups.md in ``docs``: what each write-up is, in the project's words, and what it claims,
    from the claims files, each linked to its verdict in results.md; for a reader without the
    write-ups themselves."""
    lines = ["# The write-ups", "",
             "Five short reports of VAE experiments on MNIST, by other authors, are vae-lab's test cases: each is a recipe in `conf/experiment/<name>.yaml` that reruns what it did, and a "
             "claims file beside it (`<name>.claims.yml`) that states what it concluded as claims the numbers "
             "can judge. The pages call them `seeds/000` to `seeds/004`. Here is what each is, in our words, "
             "and what it claims; [the write-ups, rerun](results.md) has the verdicts, the numbers and the "
             "figures. This page is written by `vae-lab reproduce --rejudge` from the claims files.", ""]
    for name in write_up_names():
        write_up = load_write_up(name)
        lines += [f"## {write_up.title}", "", write_up.observation, "",
                  f"Recipe `conf/experiment/{name}.yaml`; its verdict: [results]({'results.md#' + _anchor(write_up.title)}).",
                  "", "It claims:", "", *(f"- {claim.says}" for claim in write_up.claims), ""]
        unjudged = [entry for entry in (write_up.checklist.sentences if write_up.checklist else ())
                    if entry.figure or entry.not_judged]
        if unjudged:
            lines += ["What else its findings say, judged by no claim, and why:", "",
                      *(f"- \"{entry.sentence}\" " + (f"Shown in `{entry.figure}`" + (f": {entry.why}." if entry.why else ".")
                                                      if entry.figure else f"Not judged: {entry.not_judged}.")
                        for entry in unjudged), ""]
    path = docs / "write-ups.md"
    atomic_write(path, lambda f: f.write("\n".join(lines)))
    return path


def _anchor(title: str) -> str:
    """The id the docs site gives a heading (Python-Markdown's table of contents)."""
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


def keep_the_data(write_up: WriteUp, folder: Path, runs: Runs, target: Path) -> Path:
    """The numbers behind a section, kept beside its figures so that a reader can check every one:
    summary.csv of the write-up's runs (its sweep and any extra sweeps) and each complete run's
    metrics.json as runs/<run>.json. Returns summary.csv."""
    summary = target / "summary.csv"
    write_summary_csv(summary, runs.all)
    for run in runs.all:
        if run.status == "complete":
            copy = target / "runs" / f"{run.name.replace('/', '-')}.json"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run.path / "metrics.json", copy)
    return summary


def write_results(docs: Path, folders: dict[str, Path], extra: list[str], quick: bool,
                  only: Optional[set[str]] = None) -> Path:
    """results.md in ``docs``: a section per write-up with results in ``folders``. With ``only``, the other
    write-ups' sections and figures stay exactly as an earlier report left them."""
    mode = ("quick mode (`make reproduce QUICK=1`): 2 epochs and a lighter evaluation, a check that "
            "everything runs rather than the write-ups' numbers" if quick else
            "full mode (`make reproduce`): each write-up's own number of epochs")
    lines = ["# The write-ups, rerun", "",
             f"Written by `vae-lab reproduce` on {platform.machine()} with {torch.get_num_threads()} CPU threads"
             f"{' and ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; each section "
             "says when and in which mode it was rerun. Each write-up is a recipe and a verdict in "
             "`conf/experiment/` (`<name>.yaml`, `<name>.claims.yml`); every claim below is judged from the numbers, "
             "not by hand, and \"holds\" only where the difference exceeds the spread over seeds. "
             "Metrics are on the MNIST test split: NELBO and NLL in nats per image, accuracies of probes fit "
             "on latent means, sample metrics from the project's reference classifier "
             "([Evaluation](../guide/evaluation.md)).", ""]
    path = docs / "results.md"
    earlier = previous_sections(path)
    for experiment in write_up_names():
        if only is not None and experiment not in only and experiment in earlier:
            lines += earlier[experiment]  # not rerun: as it was, figures and all (its claims file unread)
        elif experiment in folders:
            try:
                write_up = load_write_up(experiment)
            except UserError as error:  # another write-up's broken claims file: said, not fatal
                lines += [f"## {experiment}", "", f"*Not reported: {error}*", ""]
                continue
            shutil.rmtree(docs / "results" / experiment, ignore_errors=True)  # its earlier figures
            rerun = section(write_up, folders[experiment], extra, docs, planned_seeds(write_up, extra))
            lines += [*rerun[:2], f"*Rerun on {time.strftime('%Y-%m-%d')} in {mode}.*", "", *rerun[2:]]
    atomic_write(path, lambda f: f.write("\n".join(lines)))
    return path


def previous_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an earlier results.md by write-up, each known by the folder of its numbers
    (``results/<experiment>/``), which every section links."""
    if not path.is_file():
        return {}
    sections: list[list[str]] = []
    for line in path.read_text().split("\n"):
        if line.startswith("## "):
            sections.append([])
        if sections:
            sections[-1].append(line)
    found = {}
    for lines in sections:
        named = re.search(r"\]\(results/([^/)]+)/summary\.csv\)", "\n".join(lines))
        if named:
            found[named.group(1)] = lines
    return found


FINDINGS = Path("docs/findings")


def report_folder(docs: Optional[Path], sweeps: Path, quick: bool) -> Path:
    """Where results.md goes unless --docs says: the findings, or in quick mode a folder beside the
    quick sweeps, so that a check that everything runs never rewrites the published numbers."""
    if docs is not None:
        return docs
    return sweeps / "report" if quick else FINDINGS


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="vae-lab reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs and a lighter evaluation")
    parser.add_argument("--rejudge", action="store_true",
                        help="train nothing: judge the numbers results.md keeps again, with today's judge")
    parser.add_argument("--only", nargs="+", metavar="EXPERIMENT", choices=write_up_names(),
                        help="rerun these write-ups only (the report still covers every one that has results): "
                             + ", ".join(write_up_names()))
    parser.add_argument("--outputs", type=Path, default=Path("outputs"), help="where the sweep folders go")
    parser.add_argument("--docs", type=Path, default=None,
                        help="where results.md and its figures and numbers (results/) go: docs/findings, or in "
                             "quick mode outputs/reproduce-quick/report (a check never touches the findings)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="Hydra overrides for every sweep, before --only: hydra/launcher=joblib trains two runs "
                             "at a time on two cores, hydra/launcher=stacked many at once on a GPU")
    args = parser.parse_args(argv)
    if args.rejudge:
        docs = args.docs or FINDINGS
        try:
            print(rejudge(docs.resolve()), write_ups_page(docs.resolve()), sep="\n", flush=True)
        except (UserError, FileNotFoundError) as error:
            fail(str(error))
        return
    extra = [*(QUICK_OVERRIDES if args.quick else ()), *args.overrides]
    root = (args.outputs / ("reproduce-quick" if args.quick else "reproduce")).resolve()
    docs = report_folder(args.docs, root, args.quick).resolve()
    try:
        chosen = [load_write_up(name) for name in write_up_names() if args.only is None or name in args.only]
        check_sweeps(chosen, root, extra)
    except UserError as error:
        fail(str(error))
    HeldInterrupt.release()  # from here a Ctrl-C stops the sweeps (each resumes when rerun)
    print(f"vae-lab: reproducing {len(chosen)} write-up(s) into {root}; each write-up's sweep says what it will "
          "cost as it starts, and a rerun skips what is complete", file=sys.stderr, flush=True)
    for number, write_up in enumerate(chosen, start=1):
        print(f"vae-lab: write-up {number} of {len(chosen)}: {write_up.experiment}", file=sys.stderr, flush=True)
        run_write_up(write_up, root / write_up.experiment, extra)
    folders = {name: root / name for name in write_up_names() if any((root / name).glob("*/.hydra"))}
    rerun = None if args.only is None else set(args.only)
    print(write_results(docs, folders, extra, args.quick, rerun), flush=True)
