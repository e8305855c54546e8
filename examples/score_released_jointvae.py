"""Score a JointVAE trained by Dupont's released code with vae-lab's own metrics, on vae-lab's splits.

    python examples/score_released_jointvae.py MODEL_PT [DATA_ROOT] [--summary CSV --run NAME --seed N]

MODEL_PT is `trained_models/mnist/model.pt` of github.com/Schlumberger/joint-vae at commit 80fa464
(sha256 6bb4cef31bdc19e36e725d57d98c91901a390dbfa11bb0c5e79a95b3d2dbd8da; the paper's model: 10
Gaussian dimensions and one categorical variable of 10, trained on 60,000 images resized to 32 x 32),
or a state dict saved from that code's `VAE` after training it yourself. DATA_ROOT defaults to
$VAE_LAB_DATA. Only the encoder is needed: it is rebuilt here layer by layer, in the layout of that
file (three stride-2 convolutions of kernel 4 with 32, 64 and 64 channels, a dense layer of 256, then
the Gaussian heads and one softmax head per categorical variable).

Prints test/cluster_acc (each category read as the digit most of vae-lab's training images in it
have, scored on the test split), test/code_mi, and the KL of each part from its prior, as `vae-lab
train experiment=jointvae` reports them, so that the paper's 88.7% can be checked against the metric
and models trained by the released code compared with vae-lab's runs. With --summary the numbers are
also added to that summary.csv as run NAME (replacing an earlier row of that name), in the layout
`vae-lab sweep` writes, so that tables of the two side by side are generated from data.
"""

import argparse
import os
from pathlib import Path

import torch
from torch import nn

from vae_lab.compose import train_config
from vae_lab.data import load_splits
from vae_lab.metrics.codes import cluster_accuracy, mutual_information
from vae_lab.summary import RunSummary, read_summary_csv, write_summary_csv

CATEGORIES = 10


RELEASED_COMMIT = "80fa464"  # github.com/Schlumberger/joint-vae, the code and model file this reads
# The encoder's parameters in that code's layout (its `VAE` for 10 Gaussian dimensions and one
# categorical variable of 10, on 32 x 32 grey images).
ENCODER_SHAPES = {"img_to_features.0": (32, 1, 4, 4), "img_to_features.2": (64, 32, 4, 4),
                  "img_to_features.4": (64, 64, 4, 4), "features_to_hidden.0": (256, 1024),
                  "fc_mean": (10, 256), "fc_log_var": (10, 256), "fc_alphas.0": (10, 256)}


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Encoder weights in the released layout, random (N(0, 0.1^2), biases N(0, 0.1^2) too), to check
    the encoder rebuilt here against the released code's own forward pass."""
    generator = torch.Generator().manual_seed(seed)
    return {f"{name}.{part}": torch.randn(shape if part == "weight" else shape[:1], generator=generator) * 0.1
            for name, shape in ENCODER_SHAPES.items() for part in ("weight", "bias")}


def released_encoder(state: dict) -> nn.Module:
    """Image [B, 1, 32, 32] -> probabilities of the first categorical variable [B, 10]."""
    encoder = nn.ModuleDict({
        "img_to_features": nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 4, stride=2, padding=1), nn.ReLU()),
        "features_to_hidden": nn.Sequential(nn.Linear(64 * 4 * 4, 256), nn.ReLU()),
        "head": nn.Linear(256, CATEGORIES),
    })
    wanted = {key: value for key, value in state.items() if key.split(".")[0] in encoder}
    wanted["head.weight"], wanted["head.bias"] = state["fc_alphas.0.weight"], state["fc_alphas.0.bias"]
    encoder.load_state_dict(wanted)
    return nn.Sequential(encoder["img_to_features"], nn.Flatten(), encoder["features_to_hidden"],
                         encoder["head"], nn.Softmax(dim=1)).eval()


def released_gaussian(state: dict):
    """Image [B, 1, 32, 32] -> (mean, log-variance) of the Gaussian part [B, 10] each."""
    features = released_encoder(state)[:3]
    mean, log_var = nn.Linear(256, 10), nn.Linear(256, 10)
    mean.load_state_dict({"weight": state["fc_mean.weight"], "bias": state["fc_mean.bias"]})
    log_var.load_state_dict({"weight": state["fc_log_var.weight"], "bias": state["fc_log_var.bias"]})

    def gaussian(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = features(images)
        return mean(hidden), log_var(hidden)

    return gaussian


def score(model_file: str, root: str) -> dict[str, float]:
    # A PyTorch 0.3 pickle of tensors only: weights_only loading refuses its legacy format.
    state = torch.load(model_file, map_location="cpu", weights_only=False)
    encoder, gaussian = released_encoder(state), released_gaussian(state)
    splits = load_splits(train_config([f"data.root={root}", "data.image_size=32", "data.download=false"]).data)
    with torch.no_grad():
        train, test = (torch.cat([encoder(b.images) for b in split.batches(1000)]) for split in (splits.train, splits.test))
        kl_cont = torch.cat([-0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum(1)
                             for mean, log_var in (gaussian(b.images) for b in splits.test.batches(1000))]).mean()
    kl_disc = torch.log(torch.tensor(float(CATEGORIES))) + (test * test.clamp_min(1e-12).log()).sum(1).mean()
    print(f"{len(splits.train):,} training images map categories to digits; {len(splits.test):,} test images")
    return {"test/cluster_acc": cluster_accuracy(train, splits.train.labels, test, splits.test.labels),
            "test/code_mi": float(mutual_information(test)), "test/kl_disc": float(kl_disc),
            "test/kl": float(kl_cont)}  # the Gaussian part's KL, named as vae-lab's combined model names it


def add_to_summary(path: Path, run: str, seed: str, metrics: dict[str, float]) -> None:
    runs = [r for r in read_summary_csv(path) if r.name != run] if path.is_file() else []
    overrides = {"seed": seed} if seed is not None else {}
    write_summary_csv(path, [*runs, RunSummary(run, path.parent / run, overrides, "complete", metrics)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_file")
    parser.add_argument("data_root", nargs="?", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("--summary", type=Path, help="a summary.csv to add the numbers to")
    parser.add_argument("--run", help="the run's name in that summary (default: the model file's name)")
    parser.add_argument("--seed", help="the seed it was trained with, as the summary's seed column")
    args = parser.parse_args()
    metrics = score(args.model_file, args.data_root)
    print(f"test/cluster_acc {metrics['test/cluster_acc']:.4f}")
    print(f"test/code_mi {metrics['test/code_mi']:.3f} nats; kl_disc {metrics['test/kl_disc']:.3f} nats "
          f"(at most ln 10 = 2.303); kl {metrics['test/kl']:.3f} nats (the Gaussian part)")
    if args.summary:
        add_to_summary(args.summary, args.run or Path(args.model_file).stem, args.seed, metrics)


if __name__ == "__main__":
    main()
