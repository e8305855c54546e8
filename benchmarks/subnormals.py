"""What flushing subnormal floats to zero buys training on the CPU, measured side by side.

Two processes train one model (the same config and seed) at the same time, one thread each: one as
vae-lab's commands do (``vae_lab.device.flush_subnormals()`` first), one without the flush. The flag
belongs to each thread and torch's worker threads copy it when they start, so the comparison needs
two processes. Adam's running squared gradients of the pixels a decoder has settled fall below fp32's
smallest normal number (1.2e-38) within a few epochs, and x86 cores compute on such numbers many
times slower. Printed: each process's images/s epoch by epoch, the median over the epochs after the
first ``--settle`` ones, their ratio, each one's test loss at the end, which says whether the flush
changed what was learned, and how many subnormal numbers each one's Adam state and weights hold then.

    python benchmarks/subnormals.py --epochs 10 [--data-root PATH] [--out summary.csv] [OVERRIDES...]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

from results_csv import add_out_option, refuse_existing_out, write_results

SIDES = ("flushed", "kept")


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


def train_one(side: str, epochs: int, data_root: str, overrides: list[str]) -> dict:
    """One side's training, in this process; its numbers."""
    from vae_lab.device import flush_subnormals, resolve_device, resolve_precision

    if side == "flushed":
        flush_subnormals()
    torch.set_num_threads(1)
    from throughput import VaeLabLoop
    from vae_lab.compose import train_config
    from vae_lab.data import load_splits

    config = train_config([f"data.root={data_root}", "trainer.device=cpu", *overrides])
    device = resolve_device("cpu")
    splits = load_splits(config.data, device)
    loop = VaeLabLoop([config], splits, device, lambda: None)
    speeds = [loop.epoch() for _ in range(epochs)]
    return {"speeds": speeds, "test_loss": loop.test_loss(),
            "precision": resolve_precision(config.trainer.precision, device),
            "subnormals_in_adam": subnormal_count(loop.trainer.population.optimizer_state(0)),
            "subnormals_in_weights": subnormal_count(loop.members[0].model.state_dict())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--settle", type=int, default=4, help="epochs left out of the later median")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # a child process's part
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the trained model")
    add_out_option(parser)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(train_one(args.side, args.epochs, args.data_root, args.overrides)))
        return
    refuse_existing_out(parser, args.out)

    here = os.path.dirname(os.path.abspath(__file__))
    children = {side: subprocess.Popen(
        [sys.executable, __file__, "--side", side, "--epochs", str(args.epochs), "--data-root", args.data_root,
         *args.overrides], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": here}) for side in SIDES}
    results = {}
    for side, child in children.items():
        out, _ = child.communicate()
        if child.returncode != 0:
            sys.exit(f"the {side} side failed (exit {child.returncode})")
        results[side] = json.loads(out.strip().splitlines()[-1])
    print(f"one thread each, side by side, torch {torch.__version__}, precision {results['flushed']['precision']}")
    for epoch in range(args.epochs):
        print(f"epoch {epoch + 1:>3}: " + "   ".join(
            f"{side} {results[side]['speeds'][epoch]:>8,.0f} img/s" for side in SIDES))
    later = {side: statistics.median(results[side]["speeds"][args.settle:]) for side in SIDES}
    for side in SIDES:
        r = results[side]
        print(f"{side}: epochs {args.settle + 1}-{args.epochs} median {later[side]:,.0f} img/s, test loss "
              f"{r['test_loss']:.4f} nats, subnormal numbers at the end: {r['subnormals_in_adam']:,} in Adam's "
              f"state, {r['subnormals_in_weights']:,} in the weights")
    print(f"flushed / kept: {later['flushed'] / later['kept']:.2f}x")
    write_results(args.out, [(side, {"subnormals": side, "precision": results[side]["precision"]}, {
        "images_per_s_first": statistics.median(results[side]["speeds"][:args.settle]),
        "images_per_s_later": later[side], "x_kept_later": later[side] / later["kept"],
        "test_loss": results[side]["test_loss"], "subnormals_in_adam": results[side]["subnormals_in_adam"],
        "subnormals_in_weights": results[side]["subnormals_in_weights"]}) for side in SIDES])


if __name__ == "__main__":
    main()
