"""Training throughput of vae-lab's loop against the classic PyTorch way, measured in one process.

Each trains the classic 784-400-20 VAE (Bernoulli decoder, batch 128, Adam 1e-3) on the same training
images (vae-lab's training split) for the same number of epochs:

* classic: ``torchvision.datasets.MNIST`` with ``ToTensor`` per sample, a ``DataLoader``, the loss
  summed over the batch, in the manner of pytorch/examples' vae/main.py;
* vae-lab K=n: vae-lab's loop training a population of n such models at once (seeds 0..n-1), the
  whole split as one tensor on the device, shuffled index batches, fused Adam. K=1 is a single run.

Neither loop flushes subnormal floats, as vae-lab's commands do (``benchmarks/subnormals.py`` measures
that), so that both run alike.

Printed: the median aggregate images/s of each over the epochs (training passes only; the loops take
turns epoch by epoch), the ratio to the classic loop, and the test loss (nats per image) of the first
model of each after training, so that speed is not bought with worse results. ``--out`` also writes
them as a summary.csv (a row per loop, as ``vae-lab sweep`` writes a row per run), the form
docs/findings/ generates its tables from.

    python benchmarks/throughput.py --epochs 3 --members 1,4,12 [--data-root PATH] [--device cpu|cuda]
                                    [--compile] [--precision fp32|bf16] [--seed 0] [--out summary.csv]
"""

import argparse
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from vae_lab.compose import train_config
from vae_lab.data import load_splits
from vae_lab.evaluate import loss_terms
from vae_lab.models import build_model
from vae_lab import device as threads
from vae_lab.loop import Loop
from vae_lab.member import Member
from vae_lab.population import Population
from vae_lab.runs import RunDir
from vae_lab.device import resolve_device, resolve_precision
from vae_lab.member import seed_everything
from results_csv import add_out_option, refuse_existing_out, write_results


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
    """vae-lab's own loop, training ``len(configs)`` models as one population."""

    def __init__(self, configs, splits, device, tick):
        members = []
        for config in configs:
            seed_everything(config.seed)
            # Left at PyTorch's default initialisation, as the classic model is (no start_at_mean_image),
            # so that both loops train the same thing and their test losses agree.
            model = build_model(config.model, config.backbone, splits.image_shape).to(device)
            members.append(Member(config, RunDir(os.devnull), model))
        self.trainer = Loop(members, splits, callbacks=[], tick=tick)
        self.splits, self.device, self.members = splits, device, members

    def epoch(self) -> float:
        started = time.perf_counter()
        self.trainer.train_epoch()
        _sync(self.device)
        return len(self.members) * len(self.splits.train) / (time.perf_counter() - started)

    def test_loss(self) -> float:
        self.trainer.population.hand_back()
        first = self.members[0]
        return loss_terms(Population([first.model]), [first.config.seed], self.splits.test, 1000)[0]["loss"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-root", default=os.environ.get("VAE_LAB_DATA", "./data"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile vae-lab's model (K=1)")
    parser.add_argument("--members", default="1,4,12", help="population sizes to measure, comma-separated")
    parser.add_argument("--seed", type=int, default=0,
                        help="the classic model's seed and the first of vae-lab's (a population of n takes n seeds)")
    parser.add_argument("--precision", default=None, help="trainer.precision (default: the config's)")
    parser.add_argument("--skip-classic", action="store_true", help="measure vae-lab's loop only")
    parser.add_argument("--free-cores", action="store_true",
                        help="threads kept to the cores other processes leave free (trainer.threads=null)")
    add_out_option(parser)
    args = parser.parse_args()
    refuse_existing_out(parser, args.out)

    overrides = [f"data.root={args.data_root}", f"trainer.device={args.device}", f"trainer.compile={args.compile}",
                 *([f"trainer.precision={args.precision}"] if args.precision else [])]
    configs = [train_config([*overrides, f"seed={seed}"])
               for seed in range(args.seed, args.seed + max(int(k) for k in args.members.split(",")))]
    config = configs[0]
    device = resolve_device(config.trainer.device)
    governor = threads.ThreadGovernor(args.free_cores and threads.free_to_choose(None, device))
    splits = load_splits(config.data, device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}; "
          f"{len(splits.train):,} training images, {args.epochs} epochs each")

    loops = {} if args.skip_classic else {
        "classic": ClassicLoop(config.data.root, splits.train.index.tolist(), device, config.seed)}
    for k in (int(k) for k in args.members.split(",")):
        loops[f"vae-lab K={k}"] = VaeLabLoop(configs[:k], splits, device, governor.tick)
    # Epochs alternate between the loops, so a machine that speeds up or slows down (shared VMs do)
    # affects both alike; the median epoch is reported.
    speeds = {name: [] for name in loops}
    for _ in range(args.epochs):
        for name, loop in loops.items():
            speeds[name].append(loop.epoch())
    classic = statistics.median(speeds["classic"]) if "classic" in speeds else math.nan
    precision = resolve_precision(config.trainer.precision, device)
    results = []
    print(f"{'loop':<16}{'images/s (median)':>20}{'x classic':>11}{'test loss (nats)':>20}  images/s per epoch")
    for name, loop in loops.items():
        per_epoch = " ".join(f"{s / 1000:.1f}k" for s in speeds[name])
        median, test_loss = statistics.median(speeds[name]), loop.test_loss()
        print(f"{name:<16}{median:>20,.0f}{median / classic:>10.1f}x{test_loss:>20.2f}  {per_epoch}")
        numbers = {"images_per_s": median, "test_loss": test_loss,
                   **({} if math.isnan(classic) else {"x_classic": median / classic})}
        results.append((name, {"precision": precision, "loop": name, "seed": str(args.seed)}, numbers))
    write_results(args.out, results)


if __name__ == "__main__":
    main()
