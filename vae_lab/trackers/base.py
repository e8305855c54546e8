"""What every experiment tracker is (vae_lab/trackers/): the moments it is fed at, and what it is fed."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from vae_lab.runs import flatten


@dataclass
class Embedding:
    """What the embedding projector shows: codes of test images, the images and their labels."""

    codes: torch.Tensor  # float [N, D]
    images: torch.Tensor  # float [N, C, H, W] in [0, 1]
    labels: dict[str, list]  # column name: one value per image (at least two columns: TensorBoard's rule)


class Tracker:
    """One tracker; each moment does nothing unless the tracker needs it."""

    name = "tracker"
    wants_images = False  # whether epoch() needs the epoch's images (drawn only then)
    wants_embedding = False  # whether finish() needs the projector's points (computed only then)

    def epoch(self, row: dict, images: dict[str, torch.Tensor]) -> None:
        """``row`` is the epoch's line of metrics.jsonl; ``images`` grids float [C, H, W] in [0, 1] by name."""

    def finish(self, metrics: dict, figures: list[Path], embedding: Optional[Embedding]) -> None:
        """The final metrics (metrics.json), the figures drawn and the projector's points."""

    def close(self, finished: bool) -> None:
        """Flush; ``finished`` is False for a run that failed or was interrupted."""


def parameters(config: dict) -> dict:
    """The config as {dotted key: value}, each value a number, string or bool (what trackers'
    parameter tables show); None and lists as their text."""
    return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in flatten(config).items()}
