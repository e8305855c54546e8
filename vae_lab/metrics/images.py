"""Image quality of reconstructions (from the posterior mean code): MSE, PSNR and SSIM."""

from typing import Optional

import torch

from vae_lab.data import ImageSet
from vae_lab.progress import counting, progress


def image_quality(rebuilt: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image [N]: ``mse`` per pixel on the [0, 1] scale, ``psnr`` in dB and ``ssim`` (11x11
    Gaussian window), both from torchmetrics."""
    # Imported here: torchmetrics imports torchvision (about 1.5 s), which commands that only check a
    # config or summarise a sweep should not pay for.
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    rebuilt = rebuilt.float().clamp(0, 1)
    return {
        "mse": (rebuilt - target).square().flatten(1).mean(1),
        "psnr": peak_signal_noise_ratio(rebuilt, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
        "ssim": structural_similarity_index_measure(rebuilt, target, data_range=1.0, reduction="none"),
    }


def reconstruction_quality(model, data: ImageSet, batch_size: int, limit: Optional[int] = None
                           ) -> dict[str, float]:
    """Per-image means of :func:`image_quality` over ``data`` (or its first ``limit`` images)."""
    totals = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    count = 0
    for batch in data.batches(batch_size, limit):
        target = batch.images.float()
        for name, values in image_quality(model.reconstruct(target), target).items():
            totals[name] += values.sum().item()
        count += len(batch)
    return {name: total / count for name, total in totals.items()}


def population_reconstruction_quality(population, data: ImageSet, batch_size: int, limit: Optional[int] = None
                                      ) -> list[dict[str, float]]:
    """:func:`reconstruction_quality` for every member of a population (vae_lab/population.py) in
    one stacked pass."""
    population.train(False)
    totals: dict[str, torch.Tensor] = {}
    count = 0
    images = min(len(data), limit or len(data))
    with torch.no_grad(), progress(desc="image quality", total=images, unit="image") as bar:
        for batch in counting(data.batches(batch_size, limit), bar):
            target = batch.images.float()
            rebuilt = population.run("reconstruct", {}, {"images": target}, build=lambda images: (images,))
            for name, values in image_quality(rebuilt.flatten(0, 1), target.repeat(len(population), 1, 1, 1)).items():
                total = values.view(len(population), -1).sum(1)
                totals[name] = totals[name] + total if name in totals else total
            count += len(batch)
    population.train(True)
    table = {name: (total / count).tolist() for name, total in totals.items()}
    return [{name: values[k] for name, values in table.items()} for k in range(len(population))]
