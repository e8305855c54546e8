"""What JointVAE's released code computes for a fixed encoder and fixed images: the fixture that
tests/test_metrics.py holds examples/score_released_jointvae.py's encoder to.

    git clone https://github.com/Schlumberger/joint-vae && git -C joint-vae checkout 80fa464
    python tools/released_jointvae_outputs.py joint-vae tests/fixtures/released_jointvae_outputs.json

The weights are the scorer's `random_state(0)`, the images 8 of 32 x 32 uniform noise (seed 1); the
outputs are those of the checkout's own `VAE.encode`: each image's 10 category probabilities and its
Gaussian part's means and log-variances. Nothing of the released code is kept, only what it computed.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
IMAGES_SEED, IMAGES = 1, 8


def fixture_images() -> torch.Tensor:
    return torch.rand(IMAGES, 1, 32, 32, generator=torch.Generator().manual_seed(IMAGES_SEED))


def main() -> None:
    checkout, out = Path(sys.argv[1]), Path(sys.argv[2])
    spec = importlib.util.spec_from_file_location("scorer", REPO / "examples" / "score_released_jointvae.py")
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if commit != scorer.RELEASED_COMMIT:
        sys.exit(f"{checkout} is at {commit or 'no commit'}; check out {scorer.RELEASED_COMMIT} first")
    sys.path.insert(0, str(checkout))
    from jointvae.models import VAE  # the released model, as it is

    model = VAE(img_size=(1, 32, 32), latent_spec={"cont": 10, "disc": [10]})
    missing, unexpected = model.load_state_dict(scorer.random_state(0), strict=False)
    assert not unexpected and all(name.startswith(("latent_to_features", "features_to_img")) for name in missing)
    with torch.no_grad():
        latent = model.eval().encode(fixture_images())
    mean, log_var = latent["cont"]
    json.dump({"commit": commit, "weights": "examples/score_released_jointvae.py random_state(0)",
               "images": f"torch.rand({IMAGES}, 1, 32, 32), generator seed {IMAGES_SEED}",
               "probabilities": latent["disc"][0].tolist(), "mean": mean.tolist(), "log_var": log_var.tolist()},
              out.open("w"), indent=1)
    print(out)


if __name__ == "__main__":
    main()
