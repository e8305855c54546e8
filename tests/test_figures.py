"""The figures of a run: present, legible, not blank, and animations with the right frames."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_cli import FIGURES, QUICK_EVAL, assert_figure_is_not_blank
from vae_lab.data import load_splits
from vae_lab.metrics.traversal import coordinates
from vae_lab.training import train


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


def gif(path) -> list[np.ndarray]:
    """Every frame of an animation as an RGB array."""
    image = Image.open(path)
    frames = []
    for number in range(image.n_frames):
        image.seek(number)
        frames.append(np.asarray(image.convert("RGB"), dtype=np.float64))
    return frames


@pytest.mark.xdist_group("color_run")
def test_the_training_evolution_has_one_frame_per_epoch_and_each_shows_its_own(color_run):
    frames = gif(color_run / "training_evolution.gif")
    assert len(frames) == 3
    for earlier, later in zip(frames, frames[1:]):  # the codes and reconstructions move from epoch to epoch
        assert np.abs(later - earlier).mean() > 0.5


@pytest.mark.parametrize("epochs", [1, 2, 39, 40, 41, 160, 1000])
def test_a_long_runs_evolution_shows_at_most_40_epochs_evenly_spaced_first_and_last_among_them(epochs):
    from vae_lab.figures.animations import EVOLUTION_FRAMES, evenly_spaced

    shown = evenly_spaced(epochs, EVOLUTION_FRAMES)
    assert len(shown) == min(epochs, 40) and shown[0] == 0 and shown[-1] == epochs - 1
    gaps = np.diff(shown)
    assert (gaps > 0).all() and (len(gaps) == 0 or gaps.max() - gaps.min() <= 1)


@pytest.mark.xdist_group("color_run")
def test_the_interpolation_is_a_path_through_several_digits(color_run):
    """A segment of INTERPOLATION_STEPS frames per pair of digits: within one, the decoded image moves
    by small steps; from one segment to the next, the pair shown changes at once."""
    from vae_lab.figures.animations import INTERPOLATION_STEPS

    frames = gif(color_run / "interpolation.gif")
    assert len(frames) >= 3 * INTERPOLATION_STEPS and len(frames) % INTERPOLATION_STEPS == 0
    change = [np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]
    boundaries = set(range(INTERPOLATION_STEPS - 1, len(frames) - 1, INTERPOLATION_STEPS))
    within = [c for i, c in enumerate(change) if i not in boundaries]
    between = [c for i, c in enumerate(change) if i in boundaries]
    assert 0 < max(within) < min(between)
    assert sum(c > 0 for c in within) > 0.9 * len(within)  # the decoded image moves at nearly every step


def drawn(monkeypatch, module) -> list:
    """The figures a module draws, kept open for inspection instead of saved."""
    figures = []
    monkeypatch.setattr(module, "save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_the_scatter_has_pca_and_tsne_rows_by_digit_and_by_each_images_own_tint(train_config, monkeypatch):
    import matplotlib.pyplot as plt

    from vae_lab.figures import latent
    from vae_lab.models import build_model

    config = train_config("data=color_mnist", "model.latent_dim=6")
    test = load_splits(config.data).test
    model = build_model(config.model, config.backbone, test.image_shape).eval()
    figures = drawn(monkeypatch, latent)
    with torch.no_grad():
        latent.latent_scatter(model, test, Path("unused.png"), "caption", tsne_points=200)
    axes = np.array(figures[0].axes).reshape(2, -1)
    assert axes.shape == (2, 2)
    assert "PCA" in axes[0, 0].get_title() and "t-SNE" in axes[1, 0].get_title()
    assert all("by digit" in ax.get_title() for ax in axes[:, 0])
    assert all("tint" in ax.get_title() for ax in axes[:, 1])
    tinted = axes[0, 1].collections[0]
    shown = len(tinted.get_offsets())
    colors = tinted.get_facecolors()[:, :3]
    order = np.random.default_rng(0).permutation(len(test))[:shown]  # the points the figure shows
    np.testing.assert_allclose(colors, test.colors[order].numpy(), atol=1e-6)
    assert sum(len(c.get_offsets()) for c in axes[1, 0].collections) == 200
    plt.close("all")


def test_a_two_dimensional_latent_gets_the_full_decoded_grid(train_config, monkeypatch):
    """The grid over (-2, 2)^2: its top-left image is the decoding of (-2, 2), its bottom-right of (2, -2)."""
    import matplotlib.pyplot as plt

    from vae_lab.figures import latent
    from vae_lab.models import build_model

    config = train_config("model.latent_dim=2")
    test = load_splits(config.data).test
    model = build_model(config.model, config.backbone, test.image_shape).eval()
    figures = drawn(monkeypatch, latent)
    with torch.no_grad():
        latent.latent_traversal(model, test, Path("unused.png"), "caption")
        corners = model.decode(torch.tensor([[-2.0, 2.0], [2.0, -2.0]]))
    ax = figures[0].axes[0]
    grid = ax.get_images()[0].get_array()
    assert ax.get_images()[0].get_extent() == [-2, 2, -2, 2]
    assert ax.get_xlabel() == "$z_1$" and ax.get_ylabel() == "$z_2$"
    cell = (grid.shape[0] - 2) // 15  # 15 x 15 images of 28 pixels, each with a 2-pixel border
    assert cell == 30 and grid.shape[:2] == (15 * cell + 2, 15 * cell + 2)
    top_left = grid[2:2 + 28, 2:2 + 28, 0]
    bottom_right = grid[-30:-2, -30:-2, 0]
    np.testing.assert_allclose(top_left, corners[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(bottom_right, corners[1, 0].numpy(), atol=1e-6)
    plt.close("all")


def test_points_that_do_not_differ_are_refused_before_pca_or_tsne():
    """scikit-learn's t-SNE crashes the whole process (a segfault, every stacked run's evaluation
    with it) on points that are all the same; PCA reads 0/0 of the variance."""

    from vae_lab.figures.style import has_spread, project

    same = np.tile(np.eye(10)[3], (300, 1))
    assert not has_spread(same)
    assert has_spread(np.eye(10)[np.arange(300) % 10])
    assert has_spread(same + 1e-3 * np.eye(10)[np.arange(300) % 10])
    for method in ("pca", "tsne"):
        with pytest.raises(ValueError, match="same"):
            project(same, method)


def test_a_latent_part_with_one_code_for_every_image_is_said_not_projected(train_config, monkeypatch):
    """A collapsed categorical part (every image on one category) gets a panel that says so; the
    Gaussian part beside it is still projected by PCA and t-SNE."""
    import torch

    from vae_lab.data import load_splits
    from vae_lab.figures import latent
    from vae_lab.models import build_model

    config = train_config("model=combined")  # one categorical variable of 10
    splits = load_splits(config.data, torch.device("cpu"))
    model = build_model(config.model, config.backbone, splits.image_shape).eval()
    embed = model.embed

    def collapsed(images):
        codes = embed(images).clone()
        codes[:, model.spec.discrete_slice] = torch.eye(10)[3]
        return codes

    monkeypatch.setattr(model, "embed", collapsed)
    drawn = {}
    monkeypatch.setattr(latent, "save", lambda fig, path: drawn.setdefault("figure", fig))
    with torch.no_grad():
        latent.latent_scatter(model, splits.test, None, "a model", tsne_points=300)
    titles = [ax.get_title() for ax in drawn["figure"].axes]
    assert sum("one code for every image" in t for t in titles) == 1, titles  # one row, not PCA and t-SNE
    assert sum("t-SNE" in t and t.startswith("Gaussian") for t in titles) == 1, titles

# ---- no text cut at the edge, no titles run into each other ----------------------------------------

LAYOUTS = {  # model configs whose figures differ most in layout and caption length
    "continuous 2-D": ("model.latent_dim=2",),
    "combined 5x65 on color": ("model=combined", "model.latent_dim=20", "model.n_vars=5", "model.n_cats=65",
                               "data=color_mnist"),
    "discrete 3x20": ("model=discrete", "model.n_vars=3", "model.n_cats=20"),
    "semi-supervised": ("model=semi", "data.n_labels=100"),
    "sharp losses, conv": ("backbone=conv", "loss=sharp", "loss.perceptual.weights=none"),
}


def figure_name(fig) -> str:
    heads = [fig._suptitle] if fig._suptitle is not None else [ax.title for ax in fig.axes]
    return next((t.get_text().split("\n")[0] for t in heads if t.get_text()), "untitled")


def text_problems(fig) -> list[str]:
    """Texts of a drawn figure that reach past its edge, titles of axes side by side that overlap, and
    labels of points (annotations) that overlap in one axes."""
    import matplotlib.text

    from vae_lab.figures.style import titles

    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    heads = {id(text) for text, _ in titles(fig)}
    undrawn = set()  # tick labels outside the view limits: they exist, but matplotlib does not draw them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            shown = ax.get_visible() and ax.axison
            drawn = {id(label) for tick in axis._update_ticks() for label in (tick.label1, tick.label2)} if shown else set()
            undrawn |= {id(label) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                        for label in (tick.label1, tick.label2) if id(label) not in drawn}
    problems = []
    for text in fig.findobj(matplotlib.text.Text):
        ax = text.axes
        hidden_axis = ax is not None and (not ax.get_visible() or (not ax.axison and id(text) not in heads))
        if not text.get_visible() or not text.get_text().strip() or hidden_axis or id(text) in undrawn:
            continue
        extent = text.get_window_extent(renderer)
        if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
            problems.append(f"cut at the edge of {figure_name(fig)!r}: {text.get_text()!r}")
    axis_titles = [(text, text.get_window_extent(renderer)) for text, ax in titles(fig) if ax is not None]
    for i, (first, a) in enumerate(axis_titles):
        for second, b in axis_titles[i + 1:]:
            if a.overlaps(b):
                problems.append(f"titles overlap: {first.get_text()!r} and {second.get_text()!r}")
    for ax in fig.axes:
        labels = [(text, text.get_window_extent(renderer)) for text in ax.texts
                  if isinstance(text, matplotlib.text.Annotation) and text.get_visible()]
        for i, (first, a) in enumerate(labels):
            for second, b in labels[i + 1:]:
                if a.overlaps(b):
                    problems.append(f"labels overlap: {first.get_text()!r} and {second.get_text()!r}")
    return problems


class Checked(list):
    """Problems found (a list of lines), and how many figures were checked."""

    figures = 0


@pytest.fixture
def checked_figures(monkeypatch):
    """Every figure, saved or rendered into an animation's frames, is checked by text_problems once
    laid out (style.render, which every figure passes through)."""
    from vae_lab.figures import animations, style

    problems, render = Checked(), style.render

    def checked_render(fig, *args, **kwargs):
        pixels = render(fig, *args, **kwargs)
        problems.extend(text_problems(fig))
        problems.figures += 1
        return pixels

    monkeypatch.setattr(style, "render", checked_render)
    monkeypatch.setattr(animations, "render", checked_render)
    return problems


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_figure_cuts_or_overlaps_its_text(layout, train_config, tmp_path, checked_figures):
    """Every figure of a run, drawn at the sizes used, for models of each layout (untrained: the
    layout does not depend on the weights)."""
    import torch

    from vae_lab.data import load_splits
    from vae_lab.figures import draw_figures
    from vae_lab.figures.animations import snapshot
    from vae_lab.models import build_model

    config = train_config(*LAYOUTS[layout], "eval.tsne_points=0")
    splits = load_splits(config.data, torch.device("cpu"))
    model = build_model(config.model, config.backbone, splits.image_shape).eval()
    history = [{"epoch": e, **{f"{split}/{term}": 100.0 / e for split in ("train", "val", "test")
                               for term in ("loss", "recon", "kl", "nelbo")},
                **{f"{split}/{term}": 0.5 / e for split in ("train", "test") for term in ("mse", "psnr", "ssim")}}
               for e in (1, 2)]
    control = {c.name: {"hue_change": 179.5, "digit_change": 1.0} for c in coordinates(model.spec)}  # widest labels
    with torch.no_grad():
        snapshots = [snapshot(model, splits.test)] * 2
        paths = draw_figures(model, splits, history, snapshots, tmp_path, config,
                             metrics={"test/traversal_control": control})
    assert len(paths) >= 9
    assert checked_figures.figures >= len(paths) - 1  # interpolation.gif's frames are drawn with PIL
    assert not checked_figures, "\n".join(checked_figures)


@pytest.mark.parametrize("data", ["mnist", "color_mnist"])
def test_the_traversal_speaks_of_hue_only_where_the_data_has_color(data, train_config, monkeypatch):
    import torch

    from vae_lab.data import load_splits
    from vae_lab.figures import latent
    from vae_lab.models import build_model

    config = train_config("model=combined", f"data={data}")
    splits = load_splits(config.data, torch.device("cpu"))
    model = build_model(config.model, config.backbone, splits.image_shape).eval()
    hue = {"hue_change": 30.0} if data == "color_mnist" else {}  # as test/traversal_control has it
    control = {c.name: {"digit_change": 0.5, **hue} for c in coordinates(model.spec)}
    drawn = {}
    monkeypatch.setattr(latent, "save", lambda fig, path: drawn.setdefault("figure", fig))
    with torch.no_grad():
        latent.latent_traversal(model, splits.test, None, "a model", control, 256)
    fig = drawn["figure"]
    words = " ".join([fig._suptitle.get_text()] + [ax.get_title() for ax in fig.axes])
    assert ("hue" in words) == bool(hue), words


def test_a_short_row_of_categories_is_left_grey_like_the_lines_between_images(train_config, monkeypatch):
    """25 categories wrap onto two rows of 13: the empty cell is the grid's grey, not a white panel."""
    import torch

    from vae_lab.data import load_splits
    from vae_lab.figures import latent
    from vae_lab.figures.style import GRID_GREY, image_grid
    from vae_lab.models import build_model

    config = train_config("model=discrete", "model.n_vars=1", "model.n_cats=25")
    splits = load_splits(config.data, torch.device("cpu"))
    model = build_model(config.model, config.backbone, splits.image_shape).eval()
    gridded = []
    monkeypatch.setattr(latent, "image_grid", lambda images, columns: gridded.append(images) or image_grid(images, columns))
    monkeypatch.setattr(latent, "save", lambda fig, path: path)
    with torch.no_grad():
        latent.latent_traversal(model, splits.test, None, "a model")
    categories = gridded[0]  # the categorical section (the test image itself is gridded after it)
    assert categories.shape[0] == 26
    assert torch.all(categories[-1] == GRID_GREY)
    assert not torch.any(torch.all(categories[:-1].flatten(1) == GRID_GREY, dim=1))  # every category is drawn


def test_the_traversal_shows_the_dimensions_that_change_hue_and_digit_most():
    """The most active dimensions, in order of activity, the least of them giving way to the
    strongest hue and digit dimensions where those are not already shown."""

    from vae_lab.figures.latent import TRAVERSED_DIMS, _most_active_and_strongest

    by_activity = np.arange(20)[::-1]  # z20 most active, z1 least
    control = {f"z{d + 1}": {"hue_change": 0.0, "digit_change": 0.0} for d in range(20)}
    control["z1"]["hue_change"], control["z2"]["digit_change"] = 40.0, 0.3
    shown = _most_active_and_strongest(by_activity, control)
    assert shown == [*range(19, 19 - TRAVERSED_DIMS + 2, -1), 1, 0]
    control["z1"]["hue_change"], control["z20"]["hue_change"] = 0.0, 50.0  # z20 is shown anyway
    assert _most_active_and_strongest(by_activity, control) == [*range(19, 19 - TRAVERSED_DIMS + 1, -1), 1]
    assert _most_active_and_strongest(by_activity, {}) == list(range(19, 19 - TRAVERSED_DIMS, -1))


def test_no_sweep_figure_cuts_or_overlaps_its_text(train_config, tmp_path, checked_figures):
    """A sweep's montage, metrics and rate-distortion plots, with a key some runs do not have."""
    import torch

    from vae_lab.data import load_splits
    from vae_lab.figures import images
    from vae_lab.models import build_model
    from vae_lab.figures.sweep import grid_top, metrics_against, montage, rate_distortion
    from vae_lab.summary import RunSummary

    config = train_config("model=combined", "data=color_mnist")
    splits = load_splits(config.data, torch.device("cpu"))
    model = build_model(config.model, config.backbone, splits.image_shape).eval()
    figures = tmp_path / "run" / "figures"
    with torch.no_grad():
        images.samples(model, figures / "samples.png", "a caption as long as a real one " * 3, 0)
        images.reconstructions(model, splits.test, figures / "reconstructions.png", "a caption " * 8)
    runs = []
    for k, (latent, share) in enumerate([(2, None), (8, "true"), (20, "false"), (64, None)]):
        overrides = {"model.latent_dim": str(latent), **({"model.share_encoder": share} if share else {})}
        metrics = {"test/nelbo": 100.0 + k, "test/nll": 99.0 + k, "test/recon": 80.0 - k, "test/kl": 20.0 + k,
                   "test/ssim": 0.8, "test/probe_acc": 0.9, "samples/fd": 300.0, "test/active_units": 5.0}
        runs.append(RunSummary(str(k), tmp_path / "run", overrides, "complete", metrics))
    keys = ["model.latent_dim", "model.share_encoder"]
    failed = RunSummary("9", tmp_path / "never", {}, "failed: " + "a reason as long as a traceback " * 6, {})
    montage([*runs, failed], keys, tmp_path / "montage.png")  # no row for a run that drew nothing
    assert montage([failed], keys, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    metrics_against(runs, "model.latent_dim", ["model.share_encoder"], tmp_path / "metrics.png")
    rate_distortion(runs, keys, tmp_path / "rate.png")
    assert checked_figures.figures >= 3
    assert not checked_figures, "\n".join(checked_figures)
    assert "share_encoder=-" not in " ".join(r.name for r in runs)

    import matplotlib.pyplot as plt  # the montage keeps the whole grid: its crop starts at the grid's frame

    saved = plt.imread(figures / "samples.png")
    top = grid_top(saved)
    assert 0 < top < 0.3 * saved.shape[0]
    assert (abs(saved[top + 2, :, :3] - 0.5) < 0.02).all(-1).mean() > 0.5  # the first grid line is kept


def test_rate_distortion_labels_of_nearby_points_do_not_overlap(tmp_path, checked_figures):
    """seeds/004's six configurations (rate, distortion), where two labels ran into each other."""
    from vae_lab.figures.sweep import rate_distortion
    from vae_lab.summary import RunSummary

    measured = {("10", "2"): (2.0, 169.5), ("10", "64"): (2.5, 163.9), ("1", "2"): (5.3, 153.3),
                ("0", "2"): (25.0, 151.8), ("1", "64"): (26.0, 85.2), ("0", "64"): (990.0, 60.7)}
    runs = [RunSummary(f"{beta}-{latent}", tmp_path, {"model.beta": beta, "model.latent_dim": latent}, "complete",
                       {"test/recon": recon, "test/kl": rate}) for (beta, latent), (rate, recon) in measured.items()]
    rate_distortion(runs, ["model.beta", "model.latent_dim"], tmp_path / "rate.png")
    assert checked_figures.figures == 1
    assert not checked_figures, "\n".join(checked_figures)



def test_a_rate_distortion_point_pooling_seeds_is_not_named_after_one_of_them(tmp_path, monkeypatch):
    import matplotlib.text

    from vae_lab.figures import sweep
    from vae_lab.figures.sweep import rate_distortion
    from vae_lab.summary import RunSummary

    drawn = {}
    monkeypatch.setattr(sweep, "save", lambda fig, path: drawn.update(figure=fig))
    runs = [RunSummary(str(seed), tmp_path, {"seed": str(seed)}, "complete",
                       {"test/recon": 100.0 + seed, "test/kl": 20.0 - seed}) for seed in range(3)]
    rate_distortion(runs, ["seed"], tmp_path / "rate.png")
    assert [t.get_text() for t in drawn["figure"].axes[0].findobj(matplotlib.text.Annotation)] == []
    rate_distortion(runs[1:2], ["seed"], tmp_path / "rate.png")  # a lone run keeps its name
    assert [t.get_text() for t in drawn["figure"].axes[0].findobj(matplotlib.text.Annotation)] == ["seed=1"]

@pytest.mark.parametrize("panels", range(1, 13))
def test_training_curves_leave_no_empty_grid_slot(panels):
    from vae_lab.figures.curves import grid_columns

    columns, legend_slot = grid_columns(panels)
    rows = -(-(panels + legend_slot) // columns)
    assert rows * columns == panels + legend_slot, (columns, legend_slot)


def test_the_rate_distortion_plot_shows_a_configuration_over_seeds_as_one_point_with_its_spread(tmp_path, monkeypatch):
    import matplotlib.text

    from vae_lab.figures import sweep
    from vae_lab.figures.sweep import rate_distortion
    from vae_lab.summary import RunSummary

    drawn = {}
    monkeypatch.setattr(sweep, "save", lambda fig, path: drawn.setdefault("figure", fig))
    runs = [RunSummary(f"{beta}{seed}", tmp_path, {"model.beta": beta, "seed": str(seed)}, "complete",
                       {"test/recon": 100.0 + seed + 10 * float(beta), "test/kl": 20.0 - seed})
            for beta in ("1", "4") for seed in range(3)]
    rate_distortion(runs, ["model.beta", "seed"], tmp_path / "rate.png")
    ax = drawn["figure"].axes[0]
    labels = [t.get_text() for t in ax.findobj(matplotlib.text.Annotation)]
    assert labels == ["beta=1", "beta=4"]
    points = np.array([line.get_xydata()[0] for line in ax.lines if line.get_marker() == "o"])
    assert np.allclose(points, [[19.0, 111.0], [19.0, 141.0]])  # means over seeds 0, 1, 2
    assert "mean ± sd over 3 seeds" in ax.get_title()


def test_a_caption_names_the_model_and_says_when_the_decoder_is_tinted(train_config):
    from vae_lab.figures import describe

    plain = describe(train_config("model=discrete", "backbone=conv", "data=color_mnist"))
    tinted = describe(train_config("model=discrete", "backbone=conv", "data=color_mnist", "backbone.tint=true"))
    assert plain.startswith("discrete VAE (") and plain.endswith(", conv backbone, color_mnist")
    assert tinted == plain.replace("conv backbone", "conv backbone (tinted decoder)")
    altered = describe(train_config("data.image_size=32", "data.n_train=1000", "data.n_labels=100"))
    assert altered.endswith(", mlp backbone, mnist, 32x32, 1,000 training images, 100 labels")


def test_the_training_curves_say_why_image_quality_has_no_validation_line(tmp_path, monkeypatch):
    """MSE, PSNR and SSIM are scored on train and test subsets each epoch, never on validation: the
    lower row showed two lines of three without a word."""
    from vae_lab.figures import curves

    drawn = {}
    monkeypatch.setattr(curves, "save", lambda fig, path: drawn.update(figure=fig))
    history = [{"epoch": e, **{f"{s}/{t}": 1.0 + e for s in ("train", "val", "test") for t in ("loss", "recon", "kl")},
                **{f"{s}/{t}": 0.5 + e for s in ("train", "test") for t in ("mse", "psnr", "ssim")}} for e in (1, 2)]
    curves.training_curves(history, tmp_path / "curves.png", "a caption")
    titles = {ax.get_ylabel(): ax.get_title() for ax in drawn["figure"].axes}
    quality = [title for label, title in titles.items() if any(k in label for k in ("MSE", "PSNR", "SSIM"))]
    assert quality == ["on train and test subsets (validation: not scored)"] * 3
    assert all(title == "" for label, title in titles.items() if "nats" in label)
