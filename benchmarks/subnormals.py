"""What flushing subnormal floats to zero buys training on the CPU, measured in one process.

Two copies of one model (the same config and seed) train side by side, taking turns epoch by epoch:
one as vae-lab trains (its epochs flush subnormals, ``vae_lab.device.subnormals_flushed``), one with
the flush left out. Adam's running squared gradients of the pixels a decoder has settled fall below
fp32's smallest normal number (1.2e-38) within a few epochs, and x86 cores compute on such numbers
many times slower. Printed: each copy's images/s epoch by epoch, the median over the epochs after
the first ``--settle`` ones, their ratio, each copy's test loss at the end, which says whether
the flush changed what was learned, and how many subnormal numbers each copy's Adam state and weights
hold then.

    python benchmarks/subnormals.py --epochs 10 [--data-root PATH] [--out summary.csv] [OVERRIDES...]
"""

import argparse
import contextlib
import os
import statistics

import torch

import vae_lab.loop
from results_csv import add_out_option, refuse_existing_out, write_results
from throughput import VaeLabLoop
from vae_lab.compose import train_config
from vae_lab.data import load_splits
from vae_lab.device import resolve_device, resolve_precision


def subnormal_count(value) -> int:
    """How many numbers in a (nested) state lie strictly between zero and fp32's smallest normal one."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return 0
        magnitude = value.detach().float().abs()
        return int(((magnitude > 0) & (magnitude < torch.finfo(torch.float32).tiny)).sum())
    if isinstance(value, dict):
        return sum(subnormal_count(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(subnormal_count(v) for v in value)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--settle", type=int, default=4, help="epochs left out of the later median")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the trained model")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)

    config = train_config([f"data.root={args.data_root}", "trainer.device=cpu", *args.overrides])
    device = resolve_device("cpu")
    splits = load_splits(config.data, device)
    precision = resolve_precision(config.trainer.precision, device)
    loops = {"flushed": VaeLabLoop([config], splits, device, lambda: None),
             "kept": VaeLabLoop([config], splits, device, lambda: None)}
    flush = vae_lab.loop.subnormals_flushed
    speeds = {name: [] for name in loops}
    print(f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, {len(splits.train):,} training "
          f"images, precision {precision}")
    for epoch in range(1, args.epochs + 1):
        for name, loop in loops.items():
            vae_lab.loop.subnormals_flushed = flush if name == "flushed" else contextlib.nullcontext
            speeds[name].append(loop.epoch())
        vae_lab.loop.subnormals_flushed = flush
        print(f"epoch {epoch:>3}: " + "   ".join(f"{name} {speeds[name][-1]:>8,.0f} img/s" for name in loops),
              flush=True)
    later = {name: statistics.median(s[args.settle:]) for name, s in speeds.items()}
    losses = {name: loop.test_loss() for name, loop in loops.items()}
    state = {name: loop.trainer.population.optimizer_state(0) for name, loop in loops.items()}
    weights = {name: dict(loop.members[0].model.state_dict()) for name, loop in loops.items()}
    print("subnormal numbers at the end: " + ", ".join(
        f"{name} {subnormal_count(state[name])} in Adam's state and {subnormal_count(weights[name])} in the weights"
        for name in loops))
    print(f"epochs {args.settle + 1}-{args.epochs}, median: flushed {later['flushed']:,.0f} img/s, kept "
          f"{later['kept']:,.0f} img/s, {later['flushed'] / later['kept']:.2f}x; test loss flushed "
          f"{losses['flushed']:.4f}, kept {losses['kept']:.4f} nats")
    write_results(args.out, [(name, {"subnormals": name, "precision": precision}, {
        "images_per_s_first": statistics.median(speeds[name][:args.settle]), "images_per_s_later": later[name],
        "x_kept_later": later[name] / later["kept"], "test_loss": losses[name],
        "subnormals_in_adam": subnormal_count(state[name]), "subnormals_in_weights": subnormal_count(weights[name])}) for name in loops])


if __name__ == "__main__":
    main()
