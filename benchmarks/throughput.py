"""Training throughput of vae-lab's loop against the classic PyTorch way, measured in one process.

Both train the classic 784-400-20 VAE (Bernoulli decoder, batch 128, Adam 1e-3) on the same training
images (vae-lab's training split) for the same number of epochs:

* classic: ``torchvision.datasets.MNIST`` with ``ToTensor`` per sample, a ``DataLoader``, the loss
  summed over the batch, in the manner of pytorch/examples' vae/main.py;
* vae-lab: the whole split as one tensor on the device, shuffled index batches, fused Adam.

Printed: the median images/s of each over the epochs (training passes only; the loops take turns
epoch by epoch), their ratio, and each model's test loss (nats per image) after training, so that
speed is not bought with worse results.

    python benchmarks/throughput.py --epochs 3 [--data-root PATH] [--device cpu|cuda] [--compile]
"""

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from vae_lab.config import config_dir, store_schemas, typed
from vae_lab.data import load_splits
from vae_lab.evaluate import loss_terms
from vae_lab.models import build_model
from vae_lab.runs import RunDir
from vae_lab.train import Trainer, resolve_device, seed_everything


class ClassicVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def classic_loss(x, recon, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class ClassicLoop:
    """The classic way: a Dataset that converts each sample with ToTensor, batched by a DataLoader."""

    def __init__(self, root, train_indices, device, seed):
        seed_everything(seed)
        train = Subset(datasets.MNIST(root, train=True, transform=transforms.ToTensor()), train_indices)
        self.test = datasets.MNIST(root, train=False, transform=transforms.ToTensor())
        self.loader = DataLoader(train, batch_size=128, shuffle=True)
        self.device = device
        self.model = ClassicVAE().to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def epoch(self) -> float:
        """Train one epoch; return its images per second."""
        self.model.train()
        started = time.perf_counter()
        for x, _ in self.loader:
            x = x.to(self.device)
            self.optimizer.zero_grad()
            classic_loss(x, *self.model(x)).backward()
            self.optimizer.step()
        _sync(self.device)
        return len(self.loader.dataset) / (time.perf_counter() - started)

    def test_loss(self) -> float:
        self.model.eval()
        with torch.no_grad():
            total = sum(classic_loss(x.to(self.device), *self.model(x.to(self.device))).item()
                        for x, _ in DataLoader(self.test, batch_size=1000))
        return total / len(self.test)


class VaeLabLoop:
    """vae-lab's own Trainer on its in-memory splits."""

    def __init__(self, config, splits, device):
        seed_everything(config.seed)
        # Left at PyTorch's default initialisation, as the classic model is (no start_at_mean_image),
        # so that both loops train the same thing and their test losses agree.
        model = build_model(config.model, config.backbone, splits.image_shape).to(device)
        self.trainer = Trainer(model, splits, config, RunDir(os.devnull))
        self.splits, self.device = splits, device

    def epoch(self) -> float:
        started = time.perf_counter()
        self.trainer.train_epoch()
        _sync(self.device)
        return len(self.splits.train) / (time.perf_counter() - started)

    def test_loss(self) -> float:
        return loss_terms(self.trainer.model, self.splits.test, 1000)["loss"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile vae-lab's model")
    args = parser.parse_args()

    store_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        config = typed(compose("train", overrides=[
            f"data.root={args.data_root}", f"trainer.device={args.device}", f"trainer.compile={args.compile}"]))
    device = resolve_device(config.trainer.device)
    splits = load_splits(config.data, device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
          f"{len(splits.train):,} training images, {args.epochs} epochs each")

    loops = {"classic": ClassicLoop(config.data.root, splits.train.index.tolist(), device, config.seed),
             "vae-lab": VaeLabLoop(config, splits, device)}
    # Epochs alternate between the loops, so a machine that speeds up or slows down (shared VMs do)
    # affects both alike; the median epoch is reported.
    speeds = {name: [] for name in loops}
    for _ in range(args.epochs):
        for name, loop in loops.items():
            speeds[name].append(loop.epoch())
    print(f"{'loop':<10}{'images/s (median)':>20}{'per epoch':>34}{'test loss (nats)':>20}")
    for name, loop in loops.items():
        per_epoch = " ".join(f"{s / 1000:.1f}k" for s in speeds[name])
        print(f"{name:<10}{statistics.median(speeds[name]):>20,.0f}{per_epoch:>34}{loop.test_loss():>20.2f}")
    ratio = statistics.median(speeds["vae-lab"]) / statistics.median(speeds["classic"])
    print(f"vae-lab / classic: {ratio:.1f}x")


if __name__ == "__main__":
    main()
