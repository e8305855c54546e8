"""Score the JointVAE that Dupont released for MNIST with vae-lab's own metrics, on vae-lab's splits.

    python examples/score_released_jointvae.py MODEL_PT [DATA_ROOT]

MODEL_PT is `trained_models/mnist/model.pt` of github.com/Schlumberger/joint-vae (the paper's model:
10 Gaussian dimensions and one categorical variable of 10, trained on 60,000 images resized to 32 x 32).
DATA_ROOT defaults to $VAE_LAB_DATA. Only the encoder is needed to read the categorical code: it is
rebuilt here layer by layer, in the layout of that file (three stride-2 convolutions of kernel 4 with
32, 64 and 64 channels, a dense layer of 256, then one softmax head per categorical variable).

Prints test/cluster_acc (each category read as the digit most of vae-lab's training images in it
have, scored on the test split), test/code_mi and the KL of the code from the uniform prior, as
`vae-lab train experiment=jointvae` reports them, so that the paper's 88.7% can be checked against
the metric before a trained run is compared with it.
"""

import os
import sys

import torch
from torch import nn

from vae_lab.compose import train_config
from vae_lab.data import load_splits
from vae_lab.metrics.codes import cluster_accuracy, mutual_information

CATEGORIES = 10


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


def main() -> None:
    model_file = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("VAE_LAB_DATA", "./data")
    # A PyTorch 0.3 pickle of tensors only: weights_only loading refuses its legacy format.
    encoder = released_encoder(torch.load(model_file, map_location="cpu", weights_only=False))
    splits = load_splits(train_config([f"data.root={root}", "data.image_size=32", "data.download=false"]).data)
    with torch.no_grad():
        train, test = (torch.cat([encoder(b.images) for b in split.batches(1000)]) for split in (splits.train, splits.test))
    kl = torch.log(torch.tensor(float(CATEGORIES))) + (test * test.clamp_min(1e-12).log()).sum(1).mean()
    print(f"{len(splits.train):,} training images map categories to digits; {len(splits.test):,} test images")
    print(f"test/cluster_acc {cluster_accuracy(train, splits.train.labels, test, splits.test.labels):.4f}")
    print(f"test/code_mi {mutual_information(test):.3f} nats; kl_disc {kl:.3f} nats (at most ln 10 = 2.303)")


if __name__ == "__main__":
    main()
