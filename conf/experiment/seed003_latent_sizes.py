"""seeds/003 as `vae-lab reproduce` reports it (the recipe: seed003_latent_sizes.yaml, its U-Net with
the PatchGAN; seed003_latent_sizes_conv is the same write-up on the cheap conv backbone)."""

from vae_lab.reproduce import Figure, Runs, WriteUp

SIZES = ("2", "4", "16")


def verdict(runs: Runs) -> str:
    mse = [runs.get("test/mse", latent_dim=s) for s in SIZES]
    ssim = [runs.get("test/ssim", latent_dim=s) for s in SIZES]
    psnr = [runs.get("test/psnr", latent_dim=s) for s in SIZES]
    improves = all(b.below(a) for a, b in zip(mse, mse[1:])) and all(b.above(a) for a, b in zip(ssim, ssim[1:]))
    return (f"{'Holds' if improves else 'Does not hold'}: a larger latent reconstructs better at every step, "
            f"beyond the spread over seeds (latent 2 / 4 / 16: MSE {' / '.join(f'{v:.4f}' for v in mse)}, SSIM "
            f"{' / '.join(f'{v:.3f}' for v in ssim)}, PSNR {' / '.join(f'{v:.1f}' for v in psnr)} dB).")


WRITE_UP = WriteUp(
    "seeds/003: latent size 2, 4 and 16, and image-quality metrics",
    "A larger latent gives sharper reconstructions: MSE, SSIM and PSNR improve from 2 to 16.",
    ("test/nelbo", "test/mse", "test/psnr", "test/ssim", "test/active_units"),
    (Figure("Test metrics against latent size", "metrics_vs_latent_dim.png"),
     Figure("Prior samples and test reconstructions by latent size", "montage.png"),
     Figure("Latent 2: loss, KL, MSE, PSNR and SSIM by epoch", "training_curves.png", {"latent_dim": "2"}),
     Figure("Latent 16: loss, KL, MSE, PSNR and SSIM by epoch", "training_curves.png", {"latent_dim": "16"}),
     Figure("Latent 2: the latent space and reconstructions over training", "training_evolution.gif",
            {"latent_dim": "2"})),
    verdict,
)
