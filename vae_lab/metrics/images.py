"""Image quality of reconstructions (from the posterior mean code): MSE, PSNR and SSIM."""

from typing import Optional

import torch
import torch.nn.functional as F

from vae_lab.data import ImageSet
from vae_lab.progress import counting, progress


def image_quality(rebuilt: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image [N]: ``mse`` per pixel on the [0, 1] scale, ``psnr`` in dB (torchmetrics) and ``ssim``
    (:func:`ssim`)."""
    # Imported here: torchmetrics imports torchvision (about 1.5 s), which commands that only check a
    # config or summarise a sweep should not pay for.
    from torchmetrics.functional.image import peak_signal_noise_ratio

    rebuilt = rebuilt.float().clamp(0, 1)
    return {
        "mse": (rebuilt - target).square().flatten(1).mean(1),
        "psnr": peak_signal_noise_ratio(rebuilt, target, data_range=1.0, reduction="none", dim=(1, 2, 3)),
        "ssim": ssim(rebuilt, target),
    }


SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03  # Wang et al. (2004), as torchmetrics' defaults


def ssim(rebuilt: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image [N]: torchmetrics' structural similarity on the [0, 1] scale (an 11 x 11 Gaussian
    window of sigma 1.5 over reflected borders, averaged over every pixel and channel), with the
    window applied as two matrix products, one per axis (a Gaussian is separable): a CPU runs those
    several times faster than the grouped 2-D convolution torchmetrics uses, with its numbers up to
    rounding (tests/test_metrics.py)."""
    half = int(3.5 * SSIM_SIGMA + 0.5)
    offsets = torch.arange(-half, half + 1, dtype=target.dtype, device=target.device)
    weights = torch.exp(-0.5 * (offsets / SSIM_SIGMA) ** 2)
    weights = weights / weights.sum()

    def window(size: int) -> torch.Tensor:  # [size + 2 half, size]: output j weighs padded rows j .. j + 2 half
        bands = torch.zeros(size + 2 * half, size, dtype=target.dtype, device=target.device)
        for j in range(size):
            bands[j:j + 2 * half + 1, j] = weights
        return bands

    x, y = rebuilt, target
    maps = F.pad(torch.cat([x, y, x * x, y * y, x * y]), (half,) * 4, mode="reflect")
    mean_x, mean_y, mean_xx, mean_yy, mean_xy = (window(x.shape[-2]).T @ maps @ window(x.shape[-1])).split(len(x))
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    var_x, var_y = (mean_xx - mean_x.square()).clamp_min(0), (mean_yy - mean_y.square()).clamp_min(0)
    covariance = mean_xy - mean_x * mean_y
    index = ((2 * mean_x * mean_y + c1) * (2 * covariance + c2)
             / ((mean_x.square() + mean_y.square() + c1) * (var_x + var_y + c2)))
    return index.flatten(1).mean(1)


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
