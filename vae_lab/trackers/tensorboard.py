"""TensorBoard: <run folder>/tensorboard/, so that ``tensorboard --logdir outputs`` shows every run.

Scalars: each per-epoch metric under its metrics.jsonl name (step = epoch), the final metrics as
``final/<name>``. Images: reconstructions (originals above) and prior samples each epoch, and the
final figures. Text: the config. HParams: the flattened config against the final metrics. Projector:
the test images' codes with their thumbnails, digit and (color MNIST) hue bin.
"""

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import yaml
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from vae_lab.config import TensorBoardConfig
from vae_lab.trackers.base import Embedding, Tracker, parameters

FOLDER = "tensorboard"
# The final metrics the HParams dashboard sets against the config (those a run reports).
HPARAM_METRICS = ("val/nelbo", "test/nelbo", "test/nll", "test/active_units", "test/probe_acc", "test/knn_acc",
                  "samples/fd")


class TensorBoardTracker(Tracker):
    name = "tensorboard"
    wants_images = True

    def __init__(self, settings: TensorBoardConfig, run_path: Path, config: dict, history: list[dict]):
        self.settings, self.config = settings, config
        self.wants_embedding = settings.projector_images > 0
        # A resumed run starts at the epoch after its checkpoint: TensorBoard hides what a killed
        # process logged from that step on, so no epoch shows twice.
        self.writer = SummaryWriter(str(run_path / FOLDER), purge_step=len(history) + 1 if history else None)
        if not history:
            text = yaml.safe_dump(config, sort_keys=False)
            self.writer.add_text("config", "".join("    " + line for line in text.splitlines(True)), 0)

    def epoch(self, row: dict, images: dict[str, torch.Tensor]) -> None:
        step = row["epoch"]
        for name, value in row.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, step)
        for name, grid in images.items():
            self.writer.add_image(f"epoch/{name}", grid, step)
        self.writer.flush()

    def finish(self, metrics: dict, figures: list[Path], embedding: Optional[Embedding]) -> None:
        step = int(metrics.get("epochs", 0))
        finals = {f"final/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        for name, value in finals.items():
            self.writer.add_scalar(name, value, step)
        shown = {name: finals[name] for name in (f"final/{m}" for m in HPARAM_METRICS) if name in finals}
        for summary in hparams(parameters(self.config), shown or finals):
            self.writer.file_writer.add_summary(summary)
        for figure in figures:
            if figure.suffix == ".png":
                with Image.open(figure) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(f"figures/{figure.stem}", pixels, step, dataformats="HWC")
        if embedding is not None:
            self.writer.add_embedding(embedding.codes, metadata=[list(r) for r in zip(*embedding.labels.values())],
                                      metadata_header=list(embedding.labels), label_img=embedding.images,
                                      global_step=step, tag="test_latents")
        self.writer.flush()

    def close(self, finished: bool) -> None:
        self.writer.close()

