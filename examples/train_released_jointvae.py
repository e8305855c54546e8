"""Train JointVAE with its authors' released code on vae-lab's training images, for a side-by-side
with `vae-lab sweep experiment=jointvae`.

    git clone https://github.com/Schlumberger/joint-vae            # their code, used as it is
    git -C joint-vae checkout 80fa464                              # the commit the findings used
    pip install imageio                                            # their trainer imports it
    python examples/train_released_jointvae.py --code joint-vae --seed 0 --out released_seed0.pt
    python examples/score_released_jointvae.py released_seed0.pt --summary released/summary.csv --run released-0 --seed 0

The model and trainer are `jointvae/models.py` and `jointvae/training.py` of that checkout, unchanged
(they run on PyTorch 2 as they are), with the settings of its MNIST example: 10 Gaussian dimensions
and one categorical variable of 10, temperature 0.67, capacities [0, 5, 25000, 30] for both parts,
Adam at 5e-4, batches of 64, fp32. What this script sets is the data, as its own MNIST loader does
(torchvision's Resize(32) then ToTensor, shuffled), but on vae-lab's training split: the same 22,212
images a vae-lab run trains on, not the 60,000 of the paper. The number of epochs defaults to the
recipe's 80 (27,840 steps here). The model of the last epoch is saved, as the released code keeps it.
"""

import argparse
import os
import subprocess
import sys
import time

import torch
from torch import optim
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from score_released_jointvae import RELEASED_COMMIT  # beside this script
from vae_lab.compose import train_config
from vae_lab.data import load_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", required=True, help="a checkout of github.com/Schlumberger/joint-vae")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--out", required=True, help="where the trained state dict goes")
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", args.code, "rev-parse", "--short=7", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if commit != RELEASED_COMMIT:
        sys.exit(f"{args.code} is at {commit or 'no git commit'}: check out {RELEASED_COMMIT}, the released code "
                 "the findings' side-by-side used")
    sys.path.insert(0, args.code)
    from jointvae.models import VAE
    from jointvae.training import Trainer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    config = train_config([f"data.root={args.data_root}", "data.image_size=32", "data.download=false"])
    indices = load_splits(config.data).train.index.tolist()
    mnist = datasets.MNIST(args.data_root, train=True, download=False,
                           transform=transforms.Compose([transforms.Resize(32), transforms.ToTensor()]))
    loader = DataLoader(Subset(mnist, indices), batch_size=64, shuffle=True)
    model = VAE(img_size=(1, 32, 32), latent_spec={"cont": 10, "disc": [10]}, use_cuda=False)
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=5e-4), cont_capacity=[0.0, 5.0, 25000, 30],
                      disc_capacity=[0.0, 5.0, 25000, 30], use_cuda=False, print_loss_every=10**9)
    started = time.time()
    trainer.train(loader, args.epochs)
    torch.save(trainer.model.state_dict(), args.out)
    print(f"seed {args.seed}: {len(indices):,} images, {trainer.num_steps:,} steps, "
          f"{time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
