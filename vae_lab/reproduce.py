"""Rerun the five write-ups (conf/experiment/) and report on them in docs/results.md.

``vae-lab reproduce`` (``make reproduce``) runs each write-up's sweep into
``outputs/reproduce/<experiment>/``, resuming whatever an earlier call left unfinished, then writes
``docs/results.md``: per write-up the command, the numbers measured, the figures it names (copied to
``docs/results/``) and one sentence, computed from the numbers, on whether its observation holds here.
``--quick`` trains 2 epochs with a lighter evaluation, into ``outputs/reproduce-quick/``: a check that
everything runs, on a laptop, in about half an hour.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from vae_lab.runs import atomic_write
from vae_lab.sweep import RunSummary, read_runs, summarize, swept_keys

QUICK_OVERRIDES = ("trainer.epochs=2", "eval.is_samples=100", "eval.sample_images=2000",
                   "eval.tsne_points=1000", "eval.probe_images=5000")


class Missing(Exception):
    """A number a verdict needs is not there (its run failed or has not finished)."""


class Runs:
    """A sweep's runs, picked by their overrides' short names: ``runs.get("test/mse", latent_dim="2")``.
    A selector value ``None`` asks for runs without that override."""

    def __init__(self, runs: list[RunSummary]):
        self.all = runs

    def find(self, **selector: Optional[str]) -> RunSummary:
        def matches(run: RunSummary) -> bool:
            short = {key.rsplit(".", 1)[-1]: value for key, value in run.overrides.items()}
            return all(short.get(name) == (None if value is None else str(value)) for name, value in selector.items())

        found = [r for r in self.all if matches(r)]
        if len(found) != 1:
            raise Missing(f"{len(found)} runs match {selector}")
        return found[0]

    def get(self, metric: str, **selector: Optional[str]) -> float:
        run = self.find(**selector)
        if metric not in run.metrics:
            raise Missing(f"{metric} of run {run.name} ({run.status})")
        return run.metrics[metric]


@dataclass(frozen=True)
class Figure:
    caption: str
    file: str                             # under figures/ of the run (or of the sweep folder)
    run: Optional[dict] = None            # selector of the run; None: the sweep's own figure


@dataclass(frozen=True)
class WriteUp:
    experiment: str                       # conf/experiment/<experiment>.yaml
    title: str
    observation: str                      # what the write-up reports, in our words
    metrics: tuple[str, ...]              # the table's columns
    figures: tuple[Figure, ...]
    verdict: Callable[[Runs], str]
    extra_runs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # folder: `vae-lab train` overrides


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def verdict_seed000(runs: Runs) -> str:
    digit = runs.get("test/probe_acc", model="continuous", share_encoder=None)
    color = runs.get("test/color_probe_acc", model="continuous", share_encoder=None)
    nelbo = {name: runs.get("test/nelbo", model=name, share_encoder=None)
             for name in ("continuous", "discrete", "combined")}
    separate = runs.get("test/nelbo", model="combined", share_encoder="false")
    probes = f"a linear probe reads the digit at {_pct(digit)} and the hue bin at {_pct(color)} from it"
    if min(digit, color) > 0.8:
        claim = f"Holds: the continuous latent carries both digit and color ({probes}; the traversal shows which "
        claim += "coordinates move which)."
    else:
        claim = f"Does not hold: the continuous latent does not carry both digit and color ({probes}; chance is "
        claim += "10% and one over the number of hue bins)."
    return (f"{claim} Test NELBO: continuous {nelbo['continuous']:.1f}, discrete "
            f"{nelbo['discrete']:.1f}, combined {nelbo['combined']:.1f} nats with a shared encoder and "
            f"{separate:.1f} with separate ones, so the combined model "
            f"{'beats' if nelbo['combined'] < nelbo['continuous'] else 'does not beat'} the continuous one here.")


def verdict_seed001(runs: Runs) -> str:
    plain = runs.get("test/knn_acc", model="continuous")
    semi = runs.get("test/knn_acc", model="semi")
    accuracy = runs.get("test/class_acc", model="semi")
    asked = runs.get("samples/label_acc", model="semi")
    holds = "Holds" if semi > plain + 0.02 and asked > 0.5 else "Does not hold"
    return (f"{holds}: with the classifier on the 2-D latent, digits separate further (5-NN accuracy in "
            f"the latent plane {_pct(semi)} against {_pct(plain)} without it; the classifier itself "
            f"{_pct(accuracy)} on test), and a sample generated for a chosen digit is read as that digit "
            f"{_pct(asked)} of the time.")


def verdict_seed002(runs: Runs) -> str:
    names = ("continuous", "discrete", "both")
    mse = {name: runs.get("test/mse", model=name) for name in names}
    color = {name: runs.get("test/color_probe_acc", model=name) for name in names}
    best = min(mse, key=mse.get)
    holds = "Holds" if best == "discrete" else "Does not hold"
    return (f"{holds}: the write-up found the discrete model's reconstructions best; here test MSE is "
            + ", ".join(f"{name} {mse[name]:.4f}" for name in names)
            + f" ({best} best), and the hue bin is read from the latent at "
            + ", ".join(f"{_pct(color[name])} ({name})" for name in names) + ".")


def verdict_seed003(runs: Runs) -> str:
    sizes = ("2", "4", "16")
    mse = [runs.get("test/mse", latent_dim=s) for s in sizes]
    ssim = [runs.get("test/ssim", latent_dim=s) for s in sizes]
    psnr = [runs.get("test/psnr", latent_dim=s) for s in sizes]
    improves = all(a > b for a, b in zip(mse, mse[1:])) and all(a < b for a, b in zip(ssim, ssim[1:]))
    return (f"{'Holds' if improves else 'Does not hold'}: a larger latent reconstructs better at every step "
            f"(latent 2 / 4 / 16: MSE {' / '.join(f'{v:.4f}' for v in mse)}, SSIM "
            f"{' / '.join(f'{v:.3f}' for v in ssim)}, PSNR {' / '.join(f'{v:.1f}' for v in psnr)} dB).")


def verdict_seed004(runs: Runs) -> str:
    knn = {d: runs.get("test/knn_acc", latent_dim=d, beta="1") for d in ("2", "64")}
    at = {b: runs.find(latent_dim="64", beta=b).metrics for b in ("0", "1", "10")}
    need = ("test/mse", "samples/fd", "samples/class_entropy")
    if any(m not in at[b] for b in at for m in need):
        raise Missing("latent 64 runs' metrics")
    clusters = knn["64"] > knn["2"]
    beta0 = at["0"]["test/mse"] < at["1"]["test/mse"] and at["0"]["samples/fd"] > at["1"]["samples/fd"]
    beta10 = at["10"]["test/mse"] > at["1"]["test/mse"] and (at["10"]["samples/class_entropy"]
                                                             < at["1"]["samples/class_entropy"])
    holds = {3: "Holds", 0: "Does not hold"}.get(clusters + beta0 + beta10, "Holds in part")
    return (f"{holds}: latent 64 clusters digits {'better' if clusters else 'no better'} than latent 2 "
            f"(5-NN accuracy {_pct(knn['64'])} vs {_pct(knn['2'])}); at latent 64, beta 0 reconstructs "
            f"best (test MSE {at['0']['test/mse']:.4f} vs {at['1']['test/mse']:.4f} at beta 1) but its prior "
            f"samples are {'worse' if at['0']['samples/fd'] > at['1']['samples/fd'] else 'no worse'} "
            f"(Frechet distance {at['0']['samples/fd']:.0f} vs {at['1']['samples/fd']:.0f}), and beta 10 "
            f"blurs (MSE {at['10']['test/mse']:.4f}) with digit-class entropy of its samples "
            f"{at['10']['samples/class_entropy']:.2f} vs {at['1']['samples/class_entropy']:.2f} nats at beta 1.")


WRITE_UPS = (
    WriteUp("seed000_three_latents", "seeds/000: three latent spaces on random-color MNIST",
            "A continuous, a discrete (N=6, K=25) and a combined (N=5, K=65) latent; a latent coordinate "
            "controls both the color and the digit; encoder weights shared or not.",
            ("test/nelbo", "test/nll", "test/mse", "test/probe_acc", "test/color_probe_acc", "samples/fd"),
            (Figure("Prior samples and test reconstructions of every model", "montage.png"),
             Figure("Continuous: traversal of the most informative coordinates over (-2, 2)",
                    "latent_traversal.png", {"model": "continuous", "share_encoder": None}),
             Figure("Continuous: range of each latent coordinate", "latent_ranges.png",
                    {"model": "continuous", "share_encoder": None}),
             Figure("Discrete: PCA of the relaxed codes", "latent_scatter.png",
                    {"model": "discrete", "share_encoder": None}),
             Figure("Combined: traversals of the Gaussian coordinates and of each category",
                    "latent_traversal.png", {"model": "combined", "share_encoder": None})),
            verdict_seed000,
            extra_runs={"separate_encoder": ("model=combined", "model.share_encoder=false")}),
    WriteUp("seed001_conv_semi", "seeds/001: a convolutional VAE and its semi-supervised variant",
            "With a classifier on the 2-D latent, digit classes separate in latent space, and a digit can "
            "be generated on request.",
            ("test/nelbo", "test/mse", "test/probe_acc", "test/knn_acc", "test/class_acc", "samples/label_acc"),
            (Figure("Latent scatter by digit, without the classifier", "latent_scatter.png", {"model": "continuous"}),
             Figure("Latent scatter by digit, with the classifier", "latent_scatter.png", {"model": "semi"}),
             Figure("Decoded grid over the latent plane, without the classifier", "latent_traversal.png",
                    {"model": "continuous"}),
             Figure("Generated digits, one row per requested label", "conditional_samples.png", {"model": "semi"}),
             Figure("Test reconstructions", "reconstructions.png", {"model": "continuous"})),
            verdict_seed001),
    WriteUp("seed002_fc_color", "seeds/002: small fully connected models on random-color MNIST",
            "Of continuous, discrete (N=3, K=20) and both side by side, the discrete model reconstructs test "
            "images best and captures color better; the continuous one whitens digits.",
            ("test/nelbo", "test/mse", "test/ssim", "test/probe_acc", "test/color_probe_acc"),
            (Figure("Test images and reconstructions of every model", "montage.png"),
             Figure("Continuous: latent space by digit and by tint", "latent_scatter.png", {"model": "continuous"}),
             Figure("Continuous: decoded latent grid", "latent_traversal.png", {"model": "continuous"}),
             Figure("Both: decoded grid of its Gaussian half", "latent_traversal.png", {"model": "both"}),
             Figure("Discrete: each category of each variable in turn", "latent_traversal.png",
                    {"model": "discrete"})),
            verdict_seed002),
    WriteUp("seed003_latent_sizes", "seeds/003: latent size 2, 4 and 16, and image-quality metrics",
            "A larger latent gives sharper reconstructions: MSE, SSIM and PSNR improve from 2 to 16.",
            ("test/nelbo", "test/mse", "test/psnr", "test/ssim", "test/active_units"),
            (Figure("Test metrics against latent size", "metrics_vs_latent_dim.png"),
             Figure("Prior samples and test reconstructions by latent size", "montage.png"),
             Figure("Latent 2: loss, KL, MSE, PSNR and SSIM by epoch", "training_curves.png", {"latent_dim": "2"}),
             Figure("Latent 16: loss, KL, MSE, PSNR and SSIM by epoch", "training_curves.png", {"latent_dim": "16"}),
             Figure("Latent 2: the latent space and reconstructions over training", "training_evolution.gif",
                    {"latent_dim": "2"})),
            verdict_seed003),
    WriteUp("seed004_latent_and_beta", "seeds/004: latent 2 vs 64, beta 0 vs 10",
            "Latent 64 clusters digits better than latent 2; beta 0 reconstructs well but its prior samples "
            "are garbage; beta 10 is blurry with little diversity.",
            ("test/nelbo", "test/kl", "test/mse", "test/knn_acc", "samples/fd", "samples/class_entropy"),
            (Figure("Rate and distortion of every run", "rate_distortion.png"),
             Figure("Prior samples and test reconstructions of every run", "montage.png"),
             Figure("Latent 2, beta 1: the latent plane", "latent_scatter.png", {"latent_dim": "2", "beta": "1"}),
             Figure("Latent 64, beta 1: PCA and t-SNE", "latent_scatter.png", {"latent_dim": "64", "beta": "1"}),
             Figure("Latent 64, beta 1: samples near training images' posteriors", "samples_posterior.png",
                    {"latent_dim": "64", "beta": "1"}),
             Figure("Latent 64, beta 0: prior samples", "samples.png", {"latent_dim": "64", "beta": "0"}),
             Figure("Latent 64, beta 10: prior samples", "samples.png", {"latent_dim": "64", "beta": "10"}),
             Figure("Latent 64, beta 1: interpolation between two digits", "interpolation.gif",
                    {"latent_dim": "64", "beta": "1"})),
            verdict_seed004),
)


def run_write_up(write_up: WriteUp, folder: Path, extra: list[str]) -> None:
    """Train what is missing of one write-up (any extra runs, then the sweep) and summarize it. The
    time it took is added up in <folder>/SPENT_FILE, over calls that resume it."""
    started = time.perf_counter()
    vae_lab = [sys.executable, "-m", "vae_lab"]
    for name, overrides in write_up.extra_runs.items():
        subprocess.run([*vae_lab, "train", f"experiment={write_up.experiment}", *overrides, "trainer.resume=true",
                        *extra, f"hydra.run.dir={folder / name}"], check=False)
    subprocess.run([*vae_lab, "sweep", f"experiment={write_up.experiment}", *extra, f"hydra.sweep.dir={folder}"],
                   check=False)  # a failed job is reported in the results; the other write-ups go on
    summarize(folder)
    before = seconds_spent(folder) or 0.0
    atomic_write(folder / SPENT_FILE, lambda f: f.write(f"{before + time.perf_counter() - started:.1f}\n"))


SPENT_FILE = "reproduce_seconds.txt"


def seconds_spent(folder: Path) -> Optional[float]:
    """What reproducing a write-up into ``folder`` has cost so far, over every call (None: nothing yet)."""
    try:
        return float((folder / SPENT_FILE).read_text())
    except (OSError, ValueError):
        return None


def commands(write_up: WriteUp, extra: list[str]) -> list[str]:
    quick = " ".join(extra)
    lines = [f"vae-lab sweep experiment={write_up.experiment} {quick}".strip()]
    lines += [f"vae-lab train experiment={write_up.experiment} {' '.join(o)} {quick}".strip()
              for o in write_up.extra_runs.values()]
    return lines


def _copy_for_the_web(source: Path, target: Path, width: int = 1000) -> None:
    """A PNG wider than ``width`` pixels is scaled down and kept to a 256-color palette, so that every
    committed figure in docs/ stays well under 1 MiB; anything else is copied."""
    from PIL import Image

    with Image.open(source) as image:
        if source.suffix == ".png" and image.width > width:
            smaller = image.convert("RGB").resize((width, round(image.height * width / image.width)), Image.LANCZOS)
            # Octree, not the default median cut: on mostly grey figures median cut merged the tints.
            smaller.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(target, optimize=True)
            return
    shutil.copyfile(source, target)


def _slug(selector: dict) -> str:
    return "_".join(f"{k}-{v}" for k, v in selector.items() if v is not None) or "sweep"


def section(write_up: WriteUp, folder: Path, extra: list[str], docs: Path) -> list[str]:
    runs = Runs(read_runs(folder))
    lines = [f"## {write_up.title}", "", f"*The write-up:* {write_up.observation}", ""]
    try:
        verdict = write_up.verdict(runs)
    except Missing as missing:
        verdict = f"Not measured: {missing}."
    lines += [f"**Here:** {verdict}", "", "```", *commands(write_up, extra), "```", ""]
    spent = seconds_spent(folder)
    took = f", {spent / 60:.1f} min of training and evaluation here" if spent is not None else ""
    lines += [f"Sweep folder: `{os.path.relpath(folder)}`{took}.", ""]
    labels = swept_keys(runs.all)
    lines += ["| run | " + " | ".join(labels) + " | status | " + " | ".join(write_up.metrics) + " |",
              "|" + " --- |" * (len(labels) + 2 + len(write_up.metrics))]
    for r in runs.all:
        cells = [f"{r.metrics[m]:.4g}" if m in r.metrics else "" for m in write_up.metrics]
        lines.append(f"| {r.name} | " + " | ".join(r.overrides.get(k, "") for k in labels)
                     + f" | {r.status} | " + " | ".join(cells) + " |")
    lines.append("")
    target = docs / "results" / write_up.experiment
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


def write_results(docs: Path, folders: dict[str, Path], extra: list[str], quick: bool,
                  only: Optional[set[str]] = None) -> Path:
    """docs/results.md: a section per write-up with results in ``folders``. With ``only``, the other
    write-ups' sections and figures stay exactly as an earlier report left them."""
    mode = ("quick mode (`make reproduce QUICK=1`): 2 epochs and a lighter evaluation, a check that "
            "everything runs rather than the write-ups' numbers" if quick else
            "full mode (`make reproduce`): each write-up's own number of epochs")
    lines = ["# The write-ups, rerun", "",
             f"Written by `vae-lab reproduce` on {platform.machine()} with {torch.get_num_threads()} CPU threads"
             f"{' and ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; each section "
             "says when and in which mode it was rerun. Each write-up is one experiment config in "
             "`conf/experiment/`; the verdicts below are computed from the numbers, not written by hand. "
             "Metrics are on the MNIST test split: NELBO and NLL in nats per image, accuracies of probes fit "
             "on latent means, sample metrics from the project's reference classifier (see the README).", ""]
    path = docs / "results.md"
    earlier = previous_sections(path)
    for write_up in WRITE_UPS:
        if only is not None and write_up.experiment not in only and write_up.title in earlier:
            lines += earlier[write_up.title]  # not rerun: as it was, figures and all
        elif write_up.experiment in folders:
            shutil.rmtree(docs / "results" / write_up.experiment, ignore_errors=True)  # its earlier figures
            lines += section(write_up, folders[write_up.experiment], extra, docs)
            lines[-1:-1] = [f"*Rerun on {time.strftime('%Y-%m-%d')} in {mode}.*", ""]
    atomic_write(path, lambda f: f.write("\n".join(lines)))
    return path


def previous_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an earlier results.md by write-up title (the text after ``## ``)."""
    if not path.is_file():
        return {}
    sections: dict[str, list[str]] = {}
    current: Optional[list[str]] = None
    for line in path.read_text().split("\n"):
        if line.startswith("## "):
            current = sections.setdefault(line[3:], [])
        if current is not None:
            current.append(line)
    return sections


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="vae-lab reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs and a lighter evaluation")
    parser.add_argument("--only", nargs="+", metavar="EXPERIMENT", choices=[w.experiment for w in WRITE_UPS],
                        help="rerun these write-ups only (the report still covers every one that has results)")
    parser.add_argument("--outputs", type=Path, default=Path("outputs"), help="where the sweep folders go")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="where results.md goes")
    args = parser.parse_args(argv)
    extra = list(QUICK_OVERRIDES) if args.quick else []
    root = (args.outputs / ("reproduce-quick" if args.quick else "reproduce")).resolve()
    chosen = [w for w in WRITE_UPS if args.only is None or w.experiment in args.only]
    known = {w.experiment: seconds_spent(root / w.experiment) for w in chosen}
    if all(known.values()):
        cost = f"they took {sum(known.values()) / 60:.0f} min here before, a rerun skips what is complete"
    else:
        cost = "each write-up's sweep says what it will cost as it starts"
    print(f"vae-lab: reproducing {len(chosen)} write-up(s) into {root}; {cost}", file=sys.stderr, flush=True)
    for number, write_up in enumerate(chosen, start=1):
        print(f"vae-lab: write-up {number} of {len(chosen)}: {write_up.experiment}", file=sys.stderr, flush=True)
        run_write_up(write_up, root / write_up.experiment, extra)
    folders = {w.experiment: root / w.experiment for w in WRITE_UPS if any((root / w.experiment).glob("*/.hydra"))}
    rerun = None if args.only is None else set(args.only)
    print(write_results(args.docs.resolve(), folders, extra, args.quick, rerun), flush=True)
