"""What a categorical code says about the images before any training: the mutual information between
image and code on the test split, and how much the encoder's logits differ between images, for the
model a run would start from (built and seeded as `vae-lab train` builds it).

A code whose logits barely differ between images is nearly the same distribution for every image, so
it carries almost nothing at the start, far less than the Gumbel noise (sd pi / sqrt(6) = 1.28) that
each training draw adds to those logits.

    python benchmarks/untrained_code.py --seeds 0,1,2 [--out summary.csv] model=discrete data=color_mnist backbone=conv
"""

import argparse

import torch

from results_csv import add_out_option, add_training_options, refuse_existing_out, seeds, write_results
from vae_lab.compose import train_config
from vae_lab.data import load_splits
from vae_lab.metrics.codes import categorical_probabilities, mutual_information
from vae_lab.models import build_model
from vae_lab.member import seed_everything


@torch.no_grad()
def untrained_code(model, images, batch_size: int) -> dict[str, float]:
    """``code_mi`` (nats, mean over variables) and ``logit_sd`` (sd over images of each categorical
    logit, mean over logits), centred per image as softmax sees them."""
    model.eval()
    codes = torch.cat([model.embed(batch.images).float() for batch in images.batches(batch_size)])
    variables = categorical_probabilities(codes, model.spec)
    log_probs = [v.clamp_min(1e-30).log() for v in variables]  # logits less a per-image constant
    centred = torch.cat([lp - lp.mean(1, keepdim=True) for lp in log_probs], 1)
    return {"code_mi": sum(mutual_information(v) for v in variables) / len(variables),
            "logit_sd": float(centred.std(0).mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_options(parser, "Hydra overrides, as `vae-lab train` takes them")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)

    results = []
    print(f"{'seed':>5}{'code_mi (nats)':>18}{'logit sd':>12}")
    for seed in seeds(args):
        config = train_config([*args.overrides, f"data.root={args.data_root}", f"seed={seed}"])
        splits = load_splits(config.data)
        seed_everything(config.seed)
        model = build_model(config.model, config.backbone, splits.image_shape)
        if not model.spec.discrete:
            parser.error("the model has no categorical latent: give model=discrete, combined or both")
        numbers = untrained_code(model, splits.test, config.eval.batch_size)
        print(f"{seed:>5}{numbers['code_mi']:>18.2e}{numbers['logit_sd']:>12.4f}")
        results.append((f"seed{seed}", {"seed": str(seed)}, numbers))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
