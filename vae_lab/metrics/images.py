"""Image quality of reconstructions (from the posterior mean code): MSE, PSNR and SSIM."""

from typing import Optional

import torch

from vae_lab.data import ImageSet


def reconstruction_quality(model, data: ImageSet, batch_size: int, limit: Optional[int] = None
                           ) -> dict[str, float]:
    """Per-image means over ``data`` (or its first ``limit`` images): ``mse`` per pixel on the [0, 1]
    scale, ``psnr`` in dB and ``ssim`` (11x11 Gaussian window), both from torchmetrics."""
    # Imported here: torchmetrics imports torchvision (about 1.5 s), which commands that only check a
    # config or summarise a sweep should not pay for.
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    totals = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    count = 0
    for batch in data.batches(batch_size, limit):
        target = batch.images.float()
        rebuilt = model.reconstruct(target).float().clamp(0, 1)
        totals["mse"] += (rebuilt - target).square().flatten(1).mean(1).sum().item()
        psnr = peak_signal_noise_ratio(rebuilt, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
        totals["psnr"] += psnr.sum().item()
        ssim = structural_similarity_index_measure(rebuilt, target, data_range=1.0, reduction="none")
        totals["ssim"] += ssim.sum().item()
        count += len(batch)
    return {name: total / count for name, total in totals.items()}
