"""The figures of a run: present, legible, not blank, and animations with the right frames."""

import pytest
from PIL import Image

from test_cli import FIGURES, QUICK_EVAL, assert_figure_is_not_blank, gif_frames
from vae_lab.train import train


@pytest.fixture(scope="session")  # once per test worker, shared by its group
def color_run(tmp_path_factory, data_root):
    """Three epochs of a continuous model on color MNIST, with t-SNE panels."""
    from vae_lab.compose import train_config

    config = train_config([f"data.root={data_root}", "data=color_mnist", "trainer.epochs=3", "model.latent_dim=6",
                           *QUICK_EVAL, "eval.tsne_points=300"])
    run_dir = tmp_path_factory.mktemp("color_run")
    train(config, str(run_dir))
    return run_dir / "figures"


@pytest.mark.parametrize("name", FIGURES)
@pytest.mark.xdist_group("color_run")
def test_every_figure_is_written_and_not_blank(color_run, name):
    assert_figure_is_not_blank(color_run / name)


@pytest.mark.xdist_group("color_run")
def test_the_training_evolution_has_one_frame_per_epoch(color_run):
    assert gif_frames(color_run / "training_evolution.gif") == 3


@pytest.mark.xdist_group("color_run")
def test_the_interpolation_visits_several_digits(color_run):
    assert gif_frames(color_run / "interpolation.gif") >= 3 * 16


@pytest.mark.xdist_group("color_run")
def test_the_scatter_has_pca_and_tsne_rows_with_a_tint_column(color_run):
    width, height = Image.open(color_run / "latent_scatter.png").size
    assert width > height * 1.1  # two columns: digit and tint; two rows: PCA and t-SNE
    assert height > 1000


def test_a_two_dimensional_latent_gets_the_full_decoded_grid(train_config, tmp_path):
    config = train_config("model.latent_dim=2", "trainer.epochs=1", *QUICK_EVAL)
    train(config, str(tmp_path))
    width, height = Image.open(tmp_path / "figures" / "latent_traversal.png").size
    assert abs(width - height) < 0.1 * width  # a square grid over (z1, z2)
    assert_figure_is_not_blank(tmp_path / "figures" / "latent_scatter.png")
