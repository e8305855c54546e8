"""How many importance samples the test NLL needs: what 100 draws per image cost in accuracy against
1000, and what a subset of test images would cost instead, on trained runs.

For each run folder given: -log p(x) of every test image with 100 and with 1000 draws (bf16 where
native, as the default evaluation), then the mean over the test split with its standard error, the
time each took, the every-fifth-image subset at 1000 draws, and the paired difference between the
first two runs.

    python benchmarks/importance_samples.py RUN [RUN ...] [--data-root PATH]

docs/findings/performance.md's table used runs 4, 7 and 10 (latent 8, 20, 64 at beta 1) of `benchmarks/sweep.py`'s basic sweep.
"""

import argparse
import math
import os
import time

import torch

from vae_lab.compose import train_config_from_dict
from vae_lab.data import load_splits
from vae_lab.metrics.likelihood import nll_per_image
from vae_lab.population import Population
from vae_lab.reporting import load_best_model
from vae_lab.runs import RunDir

SAMPLES = (100, 1000)


def mean_and_se(values: torch.Tensor) -> str:
    return f"{values.mean():.2f} ± {values.std() / math.sqrt(len(values)):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA"))
    args = parser.parse_args()
    device = torch.device("cpu")
    per_image = {}
    for folder in args.runs:
        run = RunDir(folder)
        config = train_config_from_dict(run.read_config())
        if args.data_root:
            config.data.root = args.data_root
        test = load_splits(config.data, device).test
        model, _ = load_best_model(run, config, device)
        model.eval()
        cells = []
        for n in SAMPLES:
            started = time.perf_counter()
            per_image[folder, n] = nll_per_image(Population([model]), [config.seed], test, n, 1000, "auto")[0]
            cells.append(f"{n} draws {mean_and_se(per_image[folder, n])} in {time.perf_counter() - started:.1f} s")
        fifth = per_image[folder, SAMPLES[-1]][::5]
        print(f"{config.model.summary()}: {' | '.join(cells)} | every fifth image, {SAMPLES[-1]} draws: "
              f"{mean_and_se(fifth)}", flush=True)
    if len(args.runs) > 1:
        first, second = args.runs[:2]
        for n in SAMPLES:
            print(f"{first} minus {second}, {n} draws, paired over images: "
                  f"{mean_and_se(per_image[first, n] - per_image[second, n])}")


if __name__ == "__main__":
    main()
