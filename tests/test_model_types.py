"""Every model type x backbone x dataset trains one short epoch end to end and fills its run folder
(in-process: the command line around train() is tested in test_cli.py). Figures depend on the model
type and the data, not on the backbone: the mlp runs skip them (``eval.figures=false``), which tests
that switch, and the conv runs draw and check them."""

import json

import numpy as np
import pytest

from test_cli import FIGURES, QUICK_EVAL, assert_figure_is_not_blank
from vae_lab.data import load_splits
from vae_lab.evaluate import final_metric_names
from vae_lab.models import MODELS, build_model
from vae_lab.training import train

SMALL_BACKBONES = {"mlp": ["backbone.hidden=[64]"], "conv": ["backbone.channels=[8,16]", "backbone.hidden=64"]}
SMALL = {"discrete": ["model.n_vars=3", "model.n_cats=5"],
         "combined": ["model.latent_dim=4", "model.n_vars=3", "model.n_cats=5", "model.share_encoder=false"],
         "both": ["model.latent_dim=4", "model.n_vars=3", "model.n_cats=5"],
         "semi": ["model.latent_dim=4", "data.n_labels=50", "data.labelled_per_batch=16"]}


@pytest.mark.parametrize("data", ["mnist", "color_mnist"])
@pytest.mark.parametrize("backbone", ["mlp", "conv"])
@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_type_trains_one_epoch_and_writes_its_run_folder(train_config, tmp_path, model,
                                                                       backbone, data):
    draw = backbone == "conv"
    config = train_config(f"model={model}", f"backbone={backbone}", f"data={data}", "trainer.epochs=1",
                          "trainer.batch_size=128", *QUICK_EVAL, *SMALL.get(model, []), *SMALL_BACKBONES[backbone],
                          f"eval.figures={str(draw).lower()}")
    metrics = train(config, str(tmp_path))
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert all(np.isfinite(value).all() for value in metrics.values() if not isinstance(value, (str, dict)))
    assert metrics["test/digit_control_by"] in metrics["test/traversal_control"]
    assert metrics["test/nelbo"] > 0
    phases = {"loss_terms", "image_quality", "latent_statistics", "probes", "reference_classifier", "sample_quality",
              "traversal_control", *(["importance_sampled_nll"] if config.eval.is_samples else []),
              *(["disentanglement"] if data == "color_mnist" and config.eval.disentanglement_train else []),
              *(["figures"] if draw else [])}
    assert set(metrics["eval_s"]) == phases and all(seconds >= 0 for seconds in metrics["eval_s"].values())
    row = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert {"train/loss", "train/nelbo", "train/recon", "val/nelbo", "test/nelbo", "test/recon"} <= set(row)
    if model == "semi":
        assert 0 <= metrics["test/class_acc"] <= 1
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    if not draw:
        assert not list(tmp_path.glob("figures/*")), "eval.figures=false draws nothing"
        # What optimized_metric is checked against before training is exactly what a run reports.
        splits = load_splits(config.data)
        declared = final_metric_names(build_model(config.model, config.backbone, splits.image_shape), splits, config)
        assert {k for k, v in metrics.items() if isinstance(v, (int, float))} == declared
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        best = next(r for r in rows if r["epoch"] == metrics["best_epoch"])
        assert metrics["val/nelbo"] == best["val/nelbo"]  # a search selects on validation, not test
        return
    figures = [*FIGURES, *(["conditional_samples.png"] if model == "semi" else [])]
    for name in figures:
        assert_figure_is_not_blank(tmp_path / "figures" / name)


def test_a_latent_part_that_carries_almost_nothing_is_said_with_what_brings_it_in():
    """seeds/000's combined model (20 Gaussian dimensions, 5 x 65 categories) leaves its categorical
    part at 0.13 nats (docs/findings/model-types.md): its traversal rows are one image repeated, which a
    run should say rather than leave to be seen."""
    from vae_lab.latents import LatentSpec
    from vae_lab.reporting import unused_parts

    combined = LatentSpec(continuous=20, discrete=((5, 10),))
    said = unused_parts(combined, {"test/kl": 28.4, "test/kl_disc": 0.13})
    assert len(said) == 1 and said[0].startswith("the categorical part of the code carries 0.13 nats per image")
    assert "model.latent_dim" in said[0] and "model.capacity.enabled=true" in said[0]
    assert unused_parts(combined, {"test/kl": 28.4, "test/kl_disc": 2.3}) == []
    collapsed = unused_parts(LatentSpec(continuous=20), {"test/kl": 0.02})
    assert len(collapsed) == 1 and "Gaussian part" in collapsed[0]
    assert unused_parts(LatentSpec(continuous=20), {"test/kl": 0.02, "test/kl_disc": 0.0}) == collapsed  # no such part
