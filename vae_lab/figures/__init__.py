"""Figures of a trained model, drawn only through its public interface (``embed``, ``encode``,
``reconstruct``, ``decode``, ``sample``, ``sample_posterior``, ``sample_with_label``) and its latent
``spec``. Every figure names its model in its title, labels its axes, and colors by digit (a fixed
qualitative palette) and, on color_mnist, by each image's own tint."""

import logging
from pathlib import Path
from typing import Any, Optional

import torch

from vae_lab.data import Splits
from vae_lab.errors import one_line
from vae_lab.data.mnist import IMAGE_SIZE
from vae_lab.evaluate import evaluating
from vae_lab.figures import animations, curves, images, latent
from vae_lab.progress import progress

log = logging.getLogger(__name__)


def describe(config: Any) -> str:
    """A caption naming the model, e.g. 'continuous VAE (latent 20, beta 1), mlp backbone, mnist'."""
    data, size = config.data, config.data.image_size
    dataset = [data.name]
    if (size, size) != IMAGE_SIZE:
        dataset.append(f"{size}x{size}")
    if data.n_train:
        dataset.append(f"{data.n_train:,} training images")
    if data.n_labels:
        dataset.append(f"{data.n_labels} labels")
    losses = [name for name, on in (("PatchGAN", config.loss.adversarial.enabled),
                                    ("VGG16 perceptual", config.loss.perceptual.enabled)) if on]
    extra = f" + {' + '.join(losses)} loss" if losses else ""
    tinted = " (tinted decoder)" if getattr(config.backbone, "tint", False) else ""
    model = f"{config.model.name} VAE ({config.model.summary()}){extra}"
    return f"{model}, {config.backbone.name} backbone{tinted}, {', '.join(dataset)}"


def draw_figures(model, splits: Splits, history: list[dict], snapshots: list[dict], out_dir: Path,
                 config: Any, metrics: Optional[dict] = None) -> list[Path]:
    """Every figure of a finished run into ``out_dir`` (the model in eval mode, without gradients);
    the same pictures for the same seed. ``metrics`` (the final ones) add their numbers to the
    figures that show them. Returns the paths written. A figure that cannot be drawn is skipped with
    a warning naming it and why (the run's metrics and its other figures do not depend on it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    caption, test, seed = describe(config), splits.test, config.seed
    cuda = [model.device] if model.device.type == "cuda" else []
    drawings = [
        ("reconstructions.png", lambda path: images.reconstructions(model, test, path, caption)),
        ("samples.png", lambda path: images.samples(model, path, caption, seed)),
        ("samples_posterior.png", lambda path: images.samples_posterior(model, splits.train, path, caption, seed)),
        ("latent_scatter.png", lambda path: latent.latent_scatter(model, test, path, caption, config.eval.tsne_points)),
        ("latent_ranges.png", lambda path: latent.latent_ranges(model, test, path, caption)),
        ("latent_traversal.png", lambda path: latent.latent_traversal(
            model, test, path, caption, (metrics or {}).get("test/traversal_control"), config.eval.traversal_images)),
        ("interpolation.gif", lambda path: animations.interpolation(model, test, path, caption)),
    ]
    if history:
        drawings.append(("training_curves.png", lambda path: curves.training_curves(history, path, caption)))
    if model.conditional:
        drawings.append(("conditional_samples.png",
                         lambda path: images.conditional_samples(model, splits.info, path, caption, seed)))
    if snapshots:
        drawings.append(("training_evolution.gif", lambda path: animations.training_evolution(
            snapshots, model.spec, test, path, caption)))
    paths = []
    with torch.random.fork_rng(devices=cuda), evaluating(model), \
            progress(desc="figures", total=len(drawings), unit="figure") as bar:
        torch.manual_seed(seed)
        for name, draw in drawings:
            bar.set_postfix_str(name)
            try:
                paths.append(draw(out_dir / name))
            except Exception as error:  # noqa: BLE001  one picture is never worth the run's numbers
                log.warning("%s could not be drawn: %s", name, one_line(error))
            bar.update()
    return paths
