"""Figures of a trained model, drawn only through its public interface (``embed``, ``encode``,
``reconstruct``, ``decode``, ``sample``, ``sample_posterior``, ``sample_with_label``) and its latent
``spec``. Every figure names its model in its title, labels its axes, and colors by digit (a fixed
qualitative palette) and, on color_mnist, by each image's own tint."""

from pathlib import Path
from typing import Any

import torch

from vae_lab.data import Splits
from vae_lab.evaluate import evaluating
from vae_lab.figures import animations, curves, images, latent


def describe(config: Any) -> str:
    """A caption naming the model, e.g. 'continuous VAE (latent 20, beta 1), mlp backbone, mnist'."""
    data = config.data.name + (f", {config.data.n_labels} labels" if config.data.n_labels else "")
    losses = [name for name, on in (("PatchGAN", config.loss.adversarial.enabled),
                                    ("VGG16 perceptual", config.loss.perceptual.enabled)) if on]
    extra = f" + {' + '.join(losses)} loss" if losses else ""
    return f"{config.model.name} VAE ({config.model.summary()}){extra}, {config.backbone.name} backbone, {data}"


def draw_figures(model, splits: Splits, history: list[dict], snapshots: list[dict], out_dir: Path,
                 config: Any) -> list[Path]:
    """Every figure of a finished run into ``out_dir`` (the model in eval mode, without gradients);
    the same pictures for the same seed. Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    caption, test, seed = describe(config), splits.test, config.seed
    cuda = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), evaluating(model):
        torch.manual_seed(seed)
        paths = [
            images.reconstructions(model, test, out_dir / "reconstructions.png", caption),
            images.samples(model, out_dir / "samples.png", caption, seed),
            images.samples_posterior(model, splits.train, out_dir / "samples_posterior.png", caption, seed),
            latent.latent_scatter(model, test, out_dir / "latent_scatter.png", caption, config.eval.tsne_points),
            latent.latent_ranges(model, test, out_dir / "latent_ranges.png", caption),
            latent.latent_traversal(model, test, out_dir / "latent_traversal.png", caption),
            animations.interpolation(model, test, out_dir / "interpolation.gif", caption),
        ]
        if history:
            paths.append(curves.training_curves(history, out_dir / "training_curves.png", caption))
        if model.conditional:
            paths.append(images.conditional_samples(model, out_dir / "conditional_samples.png", caption, seed))
        if snapshots:
            paths.append(animations.training_evolution(snapshots, model.spec, test,
                                                       out_dir / "training_evolution.gif", caption))
    return paths
