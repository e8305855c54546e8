"""Open a finished run in Python, as in a notebook: its numbers, its model, a traversal, some codes.

    python examples/open_a_run.py RUN_FOLDER [OUT_FOLDER]

RUN_FOLDER is any `vae-lab train` run folder (a sweep's run too). Writes OUT_FOLDER/traversal.png
(default: RUN_FOLDER/notebook/): the first test image decoded as its most active latent dimension
moves from -3 to 3.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import vae_lab  # noqa: E402

run = vae_lab.load_run(sys.argv[1])  # best weights, on the CPU
out = Path(sys.argv[2]) if len(sys.argv) > 2 else run.path / "notebook"
print(f"{run.config.model.summary()}: best epoch {run.epoch} of {len(run.history)}, "
      f"test NELBO {run.metrics.get('test/nelbo', float('nan')):.2f} nats")

# Encode a few test images: the posterior means, one row per image.
images = run.splits.test.batch(torch.arange(8)).images
with torch.no_grad():
    codes = run.model.embed(images)
print("codes of 8 test images:", tuple(codes.shape))

# A traversal: the first image's code, its most active dimension swept from -3 to 3.
with torch.no_grad():
    test = run.splits.test
    active = run.model.embed(test.batch(torch.arange(min(1000, len(test)))).images).var(0).argmax().item()
    steps = torch.linspace(-3, 3, 9)
    path = codes[:1].repeat(len(steps), 1)
    path[:, active] = steps
    decoded = run.model.decode(path).cpu()

fig, axes = plt.subplots(1, len(steps), figsize=(1.2 * len(steps), 1.8), constrained_layout=True)
for ax, image, value in zip(axes, decoded, steps.tolist()):
    ax.imshow(image.permute(1, 2, 0).squeeze(-1).clamp(0, 1), cmap="gray")
    ax.set_title(f"{value:g}", fontsize=8)
    ax.axis("off")
fig.suptitle(f"dimension {active + 1} of the code, swept over (-3, 3)", fontsize=9)
out.mkdir(parents=True, exist_ok=True)
fig.savefig(out / "traversal.png", dpi=120)
print(out / "traversal.png")
