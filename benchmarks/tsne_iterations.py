"""How many t-SNE iterations latent_scatter.png needs: for each run folder's test codes (the points
and parts the figure projects), t-SNE at each ``--iterations`` side by side in this process, with
its time, its final KL divergence and its trustworthiness (how well the 2-D neighbourhoods keep the
code's own 10 nearest neighbours; 1 is perfect).

    python benchmarks/tsne_iterations.py RUN_DIR [RUN_DIR...] [--iterations 1000,500] [--out summary.csv]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.manifold import trustworthiness

from results_csv import add_out_option, refuse_existing_out, write_results
from vae_lab.api import load_run
from vae_lab.figures.latent import _embed, code_parts
from vae_lab.figures.style import SCATTER_POINTS, has_spread, tsne


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--iterations", default="1000,500", help="comma-separated; the first is the reference")
    parser.add_argument("--data-root", help="read MNIST from here instead of each run's data.root")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)
    iterations = [int(i) for i in args.iterations.split(",")]

    results = []
    print(f"{'run':<40}{'part':<14}{'iterations':>11}{'seconds':>9}{'KL':>8}{'trust':>8}")
    for path in args.runs:
        run = load_run(path, data_root=args.data_root)
        test = run.splits.test
        with torch.no_grad():
            codes = _embed(run.model, test)
        picked = np.random.default_rng(0).permutation(len(codes))[:SCATTER_POINTS][:run.config.eval.tsne_points]
        for part, values in code_parts(run.model.spec, codes):
            values = values[picked]
            if values.shape[1] <= 2 or not has_spread(values):
                continue  # drawn as is, or not at all
            name = "gaussian" if part.startswith("Gaussian") else "categorical"
            for n in iterations:
                started = time.perf_counter()
                mapping = tsne(len(values), iterations=n)  # the figures' own t-SNE, but for its length
                points = mapping.fit_transform(values)
                seconds = time.perf_counter() - started
                trust = trustworthiness(values, points, n_neighbors=10)
                print(f"{str(path):<40}{name:<14}{n:>11}{seconds:>9.2f}{mapping.kl_divergence_:>8.3f}{trust:>8.4f}")
                folder = f"{path.resolve().parent.name}/{path.resolve().name}"
                results.append((f"{folder}-{name}-{n}", {"folder": folder, "part": name, "iterations": str(n)},
                                {"seconds": seconds, "kl_divergence": float(mapping.kl_divergence_),
                                 "trustworthiness": float(trust)}))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
