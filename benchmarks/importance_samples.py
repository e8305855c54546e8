"""How many importance samples the test NLL needs: what 100 draws per image cost in accuracy against
1000, and what a subset of test images would cost instead, on trained runs.

For each run folder given: -log p(x) of every test image with 100 and with 1000 draws (bf16 where
native, as the default evaluation), then the mean over the test split with its standard error, the
time each took, the every-fifth-image subset at 1000 draws, and the paired difference between the
first two runs.

    python benchmarks/importance_samples.py RUN [RUN ...] [--data-root PATH] [--out summary.csv]

--out writes a row per estimate (model, draws, images: nll, nll_se, seconds) and one per paired
difference (model "A minus B": nll, nll_se).

docs/findings/performance.md's table used runs 4, 7 and 10 (latent 8, 20, 64 at beta 1) of `benchmarks/sweep.py`'s basic sweep.
"""

import argparse
import math
import os
import time

import torch
from results_csv import add_out_option, refuse_existing_out, write_results

from vae_lab.api import load_run
from vae_lab.metrics.likelihood import nll_per_image
from vae_lab.population import Population

SAMPLES = (100, 1000)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def shown(values: torch.Tensor) -> str:
    return "{:.2f} ± {:.2f}".format(*mean_and_se(values))


def row(model: str, draws: int, images: int, values: torch.Tensor, seconds: float | None = None):
    nll, se = mean_and_se(values)
    return (f"{model}, {draws} draws, {images} images", {"model": model, "draws": str(draws), "images": str(images)},
            {"nll": nll, "nll_se": se, **({} if seconds is None else {"seconds": seconds})})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA"))
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)
    device = torch.device("cpu")
    per_image, names, results = {}, {}, []
    for folder in args.runs:
        run = load_run(folder, device=device, data_root=args.data_root)
        config, model, test = run.config, run.model, run.splits.test
        names[folder] = name = config.model.summary()
        cells = []
        for n in SAMPLES:
            started = time.perf_counter()
            per_image[folder, n] = nll_per_image(Population.of([model]), [config.seed], test, n, 1000, "auto")[0]
            seconds = time.perf_counter() - started
            cells.append(f"{n} draws {shown(per_image[folder, n])} in {seconds:.1f} s")
            results.append(row(name, n, len(test), per_image[folder, n], seconds))
        # The fifth is timed as a fifth of the full pass: the draws per image are independent.
        fifth = per_image[folder, SAMPLES[-1]][::5]
        results.append(row(name, SAMPLES[-1], len(fifth), fifth, seconds * len(fifth) / len(test)))
        print(f"{name}: {' | '.join(cells)} | every fifth image, {SAMPLES[-1]} draws: {shown(fifth)}", flush=True)
    if len(args.runs) > 1:
        first, second = args.runs[:2]
        for n in SAMPLES:
            difference = per_image[first, n] - per_image[second, n]
            print(f"{first} minus {second}, {n} draws, paired over images: {shown(difference)}")
            results.append(row(f"{names[first]} minus {names[second]}", n, len(test), difference))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
