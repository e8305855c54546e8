"""How fast the reference classifier judges a large batch at once and in pieces of PIECE images.

Traversal control sends it 2,304 images per Gaussian coordinate (256 codes x 9 positions) and sample
quality 1,000 at a time. Both ways are timed side by side on the same images, alternating, and the
median of the repeats is reported with the largest difference between their logits. With --run, traversal
control of that run's model is timed too, everything at once against in pieces (the classifier's and
the decoder's), with whether its numbers are the same.

    python benchmarks/reference_pieces.py [--images 2304] [--data color_mnist] [--run RUN] [--out summary.csv]
"""

import argparse
import os
import statistics
import time

import torch
from results_csv import add_out_option, refuse_existing_out, write_results

from vae_lab.api import load_run
from vae_lab.compose import train_config
from vae_lab.data import load_splits
from vae_lab.metrics import traversal
from vae_lab.metrics.reference import PIECE, ReferenceClassifier, reference_classifier


def side_by_side(ways: dict, repeats: int) -> tuple[dict[str, float], dict]:
    """Each way's median seconds over ``repeats`` rounds, the ways taking turns within each round
    (a machine that drifts in speed affects all alike), and what each returned last."""
    seconds, found = {name: [] for name in ways}, {}
    with torch.no_grad():
        for _ in range(repeats):
            for name, way in ways.items():
                started = time.perf_counter()
                found[name] = way()
                seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) for name, times in seconds.items()}, found


def time_traversal_control(folder: str, data_root: str, repeats: int) -> list:
    """Traversal control of the run's model with no pieces, then with the defaults', alternating."""
    device = torch.device("cpu")
    run = load_run(folder, device=device, data_root=data_root)
    config, model, splits = run.config, run.model, run.splits
    classifier = reference_classifier(config.data, splits, device)

    def control(classifier_piece: int, decode_piece: int):
        def run():
            classifier.piece = classifier_piece
            return traversal.traversal_control(model, classifier, splits.test, 256, decode_piece)
        return run

    median, found = side_by_side({"at once": control(10**9, 10**9),
                                  "in pieces": control(PIECE, traversal.DECODE_PIECE)}, repeats)
    once = median["at once"]
    print(f"traversal control of {folder} ({config.model.summary()}): the same numbers both ways: "
          f"{found['at once'] == found['in pieces']}")
    results = []
    for name, seconds in median.items():
        print(f"{name:<16}{seconds:>10.1f} s{once / seconds:>8.2f}x at once")
        results.append((f"traversal control, {name}", {"measured": "traversal-control", "data": config.data.name,
                                                       "way": name},
                        {"seconds": seconds, "x_at_once": once / seconds}))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2304)
    parser.add_argument("--data", default="color_mnist", help="mnist | color_mnist")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--run", help="a run folder whose traversal control to time as well")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)
    config = train_config([f"data={args.data}", f"data.root={args.data_root}"])
    device = torch.device("cpu")
    splits = load_splits(config.data, device)
    classifier = reference_classifier(config.data, splits, device)
    images = splits.test.batch(torch.arange(args.images) % len(splits.test)).images.float()
    at_once = ReferenceClassifier(splits.image_shape, piece=len(images))
    at_once.load_state_dict(classifier.state_dict())
    at_once.eval()
    ways = {"at once": lambda: at_once(images), f"pieces of {classifier.piece}": lambda: classifier(images)}
    median, logits = side_by_side(ways, args.repeats)
    once = median["at once"]
    difference = (logits["at once"] - logits[f"pieces of {classifier.piece}"]).abs().max().item()
    print(f"{args.images} {args.data} images, {torch.get_num_threads()} threads; largest logit difference {difference:.2g}")
    results = []
    for name, seconds in median.items():
        print(f"{name:<16}{args.images / seconds:>10,.0f} images/s{once / seconds:>8.2f}x at once")
        results.append((name, {"measured": "classifier", "data": args.data,
                                  "images": str(args.images), "way": name},
                        {"images_per_s": args.images / seconds, "x_at_once": once / seconds}))
    if args.run:
        results += time_traversal_control(args.run, args.data_root, max(1, args.repeats // 2))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
