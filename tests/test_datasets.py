"""Datasets beyond MNIST, through one seam (vae_lab/data/sources.py): dSprites drawn from its factors'
definitions and checked against them, your own images as a folder or a tensor file, and
Fashion-MNIST in MNIST's layout (a stand-in: tests/conftest.py). Every model type trains on each."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from test_cli import QUICK_EVAL
from test_model_types import SMALL
from vae_lab.data import check_data, dsprites, load_splits, sources
from vae_lab.errors import ConfigError, UserError
from vae_lab.evaluate import final_metric_names
from vae_lab.models import MODELS, build_model
from vae_lab.training import train

PIXEL = 1 / dsprites.SIZE


# --- dSprites against its factors' definitions ---------------------------------------------------

def test_dsprites_has_every_combination_of_its_factors_once_in_the_released_order():
    assert dsprites.COUNT == 737_280 == 3 * 6 * 40 * 32 * 32
    factors = dsprites.factors_of(torch.arange(dsprites.COUNT))
    place = torch.tensor([6 * 40 * 32 * 32, 40 * 32 * 32, 32 * 32, 32, 1])  # position y varies fastest
    assert torch.equal((factors * place).sum(1), torch.arange(dsprites.COUNT))
    assert factors.min(0).values.tolist() == [0] * 5 and factors.max(0).values.tolist() == [2, 5, 39, 31, 31]
    assert dsprites.SCALES.tolist() == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert (dsprites.ORIENTATIONS[0], dsprites.ORIENTATIONS[-1]) == (0, pytest.approx(2 * math.pi))
    assert (dsprites.POSITIONS[0], dsprites.POSITIONS[-1], len(dsprites.POSITIONS)) == (0, 1, 32)


def moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Area (the image's is 1) and centre of area (x right, y down, in image units) of binary images."""
    mask = images.double() / 255
    pixel = (torch.arange(dsprites.SIZE, dtype=torch.float64) + 0.5) / dsprites.SIZE
    area = mask.sum((-2, -1))
    return (area / dsprites.SIZE ** 2, (mask * pixel).sum((-2, -1)) / area,
            (mask * pixel[:, None]).sum((-2, -1)) / area)


@pytest.mark.parametrize("shape", range(3))
@pytest.mark.parametrize("scale", [0, 3, 5])
def test_each_sprite_has_its_scales_area_and_its_positions_centre(shape, scale):
    images = dsprites.draw(shape, scale, orientation=7)  # [x, y, rows, columns]
    area, x, y = moments(images)
    expected = dsprites.area(shape, dsprites.SCALES[scale].item())
    # Pixel centres sample the shape; positions a pixel apart shift it by another fraction of a pixel
    # each time, so over the 1,024 positions the mean pixel count is the area.
    assert area.mean().item() == pytest.approx(expected, rel=0.02)
    assert ((area - expected).abs() / expected).max() < 0.2
    centres = dsprites.centre(dsprites.POSITIONS)
    assert (x - centres[:, None]).abs().max() < 0.5 * PIXEL
    assert (y - centres[None, :]).abs().max() < 0.5 * PIXEL


@pytest.mark.parametrize("orientation", [0, 5, 12, 27])
def test_an_orientation_turns_the_sprite_counter_clockwise_by_its_angle(orientation):
    turn = dsprites.ORIENTATIONS[orientation].item()
    # The ellipse's long axis lies at the angle (up to a half turn), measured counter-clockwise.
    ellipse = dsprites.draw(1, 5, orientation)[16, 16].double()
    rows, columns = ellipse.nonzero(as_tuple=True)
    points = torch.stack([columns.double(), -rows.double()], 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(points.T))
    long_axis = eigenvectors[:, eigenvalues.argmax()]
    measured = math.atan2(long_axis[1].item(), long_axis[0].item()) % math.pi
    assert min(abs(measured - turn % math.pi), math.pi - abs(measured - turn % math.pi)) < math.radians(3)
    # The heart is not symmetric under a half turn: its lopsidedness (a third moment) turns with it.
    def lopsided(image):
        rows, columns = image.nonzero(as_tuple=True)
        points = torch.stack([columns.double(), -rows.double()], 1)
        points = points - points.mean(0)
        return (points * points.square().sum(1, keepdim=True)).mean(0)
    upright, turned = lopsided(dsprites.draw(2, 5, 0)[16, 16]), lopsided(dsprites.draw(2, 5, orientation)[16, 16])
    assert abs(upright[0]) < 0.1 * upright[1]  # upright: lopsided along the vertical axis
    angle = lambda v: math.atan2(v[1].item(), v[0].item())  # noqa: E731
    difference = (angle(turned) - angle(upright) - turn + math.pi) % (2 * math.pi) - math.pi
    assert abs(difference) < math.radians(5)  # pixels: a step between orientations is 9.2 degrees


def test_the_largest_sprites_stay_inside_the_image_whichever_way_they_turn():
    for shape in range(3):
        for orientation in range(0, 40, 3):
            images = dsprites.draw(shape, 5, orientation)
            border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., 0], images[..., -1]], -1)
            assert not border.any(), (dsprites.SHAPES[shape], orientation)


@pytest.fixture
def small_dsprites(monkeypatch):
    """dSprites on a coarser grid (3 shapes, 2 scales, 4 orientations, 8 x 8 positions: 1,536
    images), drawn and read by the same code as the full set."""
    grids = {"SCALES": torch.linspace(0.5, 1, 2, dtype=torch.float64),
             "ORIENTATIONS": torch.linspace(0, 2 * math.pi, 4, dtype=torch.float64),
             "POSITIONS": torch.linspace(0, 1, 8, dtype=torch.float64)}
    for name, values in grids.items():
        monkeypatch.setattr(dsprites, name, values)
    monkeypatch.setattr(dsprites, "FACTOR_SIZES", (3, 2, 4, 8, 8))
    monkeypatch.setattr(dsprites, "COUNT", 1536)
    monkeypatch.setattr(dsprites, "VERSION", "small-grid")  # its own cache file
    dsprites.images.cache_clear()
    sources._dsprites_images.cache_clear()
    yield
    dsprites.images.cache_clear()
    sources._dsprites_images.cache_clear()


def test_dsprites_splits_carry_the_shape_as_label_and_the_five_factors(small_dsprites, train_config, cache):
    config = train_config("data=dsprites", "data.val_fraction=0.1").data
    splits = load_splits(config)
    assert splits.image_shape == (1, 64, 64) and splits.info.class_names == ("square", "ellipse", "heart")
    assert splits.info.factor_names == ("shape", "scale", "orientation", "position_x", "position_y")
    assert len(splits.test) == math.ceil(0.1 * 1536) and len(splits.train) + len(splits.val) + len(splits.test) == 1536
    for split in (splits.train, splits.val, splits.test):
        assert torch.equal(split.factors, dsprites.factors_of(split.index)) and torch.equal(split.labels, split.factors[:, 0])
        assert torch.equal(split.images[:, 0], dsprites.images()[split.index, 0])
    assert not set(splits.test.index.tolist()) & set(splits.train.index.tolist())
    # The test split does not move with data.seed (the validation split does); the packed cache reads back.
    other = load_splits(train_config("data=dsprites", "data.seed=3").data)
    assert torch.equal(other.test.index, splits.test.index) and not torch.equal(other.val.index, splits.val.index)
    assert (cache / "dsprites" / "dsprites-vsmall-grid.npy").is_file()
    sources._dsprites_images.cache_clear()
    assert torch.equal(load_splits(config).train.images, splits.train.images)
    assert load_splits(train_config("data=dsprites", "data.image_size=32").data).image_shape == (1, 32, 32)


# --- your own images ------------------------------------------------------------------------------

def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 [N, 8, 8] and their labels."""
    digits = load_digits()
    return (digits.images * 255 / 16).round().astype(np.uint8), digits.target


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Class folders of PNGs of several sizes, grey ('L') and grey stored as RGB."""
    root = tmp_path_factory.mktemp("folder")
    images, labels = digit_images()
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for i, (image, label) in enumerate(zip(images[:600], labels[:600])):
        picture = Image.fromarray(image).resize((12 + i % 3 * 4, 12), Image.NEAREST)
        folder = root / names[label]
        folder.mkdir(exist_ok=True)
        (picture.convert("RGB") if i % 2 else picture).save(folder / f"{i}.png")
    return root


def test_a_folder_of_class_folders_is_read_as_torchvision_reads_it(image_folder, train_config):
    from torchvision.datasets import ImageFolder

    config = train_config("data=folder", f"data.path={image_folder}", "data.image_size=16").data
    splits = load_splits(config)
    reference = ImageFolder(str(image_folder))
    assert splits.info.class_names == tuple(reference.classes)
    assert splits.image_shape == (1, 16, 16)  # grey images, also where stored as RGB, stay grey
    everything = torch.cat([splits.train.labels, splits.val.labels, splits.test.labels])
    assert sorted(everything.tolist()) == sorted(reference.targets)
    assert len(splits.test) == 60 and splits.test.factors is None


def test_a_folder_with_train_and_test_folders_keeps_its_split_and_colors(tmp_path, train_config):
    images, labels = digit_images()
    for split, rows in (("train", range(0, 300)), ("test", range(300, 400))):
        for i in rows:
            folder = tmp_path / split / f"class_{labels[i]}"
            folder.mkdir(parents=True, exist_ok=True)
            rgb = np.stack([images[i], images[i] // 2, np.zeros_like(images[i])], -1)
            Image.fromarray(rgb).save(folder / f"{i}.png")
    splits = load_splits(train_config("data=folder", f"data.path={tmp_path}", "data.image_size=8",
                                      "data.val_fraction=0").data)
    assert (len(splits.train), len(splits.test), splits.image_shape) == (300, 100, (3, 8, 8))
    in_folder_order = sorted(range(300, 400), key=lambda i: (labels[i], f"{i}.png"))  # class, then file name
    shown = torch.from_numpy(images[in_folder_order])[splits.test.index]  # index: the place in the folder
    assert torch.equal(splits.test.images[:, 0], shown) and torch.equal(splits.test.images[:, 1], shown // 2)
    assert len(set(splits.test.labels[:20].tolist())) > 1  # in a drawn order, not one class first


def test_a_folder_that_cannot_be_used_is_one_line_naming_it(tmp_path, train_config):
    with pytest.raises(ConfigError, match="data.path=null: data=folder reads data.path"):
        check_data(train_config("data=folder").data)
    with pytest.raises(ConfigError, match="expected a folder of class folders"):
        check_data(train_config("data=folder", f"data.path={tmp_path / 'nowhere'}").data)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ConfigError, match="has no class folder with an image in it"):
        check_data(train_config("data=folder", f"data.path={tmp_path}").data)
    (tmp_path / "empty_class" / "broken.png").write_bytes(b"not a picture")
    with pytest.raises(ConfigError, match=r"broken.png cannot be read as an image"):
        load_splits(train_config("data=folder", f"data.path={tmp_path}").data)


@pytest.fixture(scope="module")
def tensor_file(tmp_path_factory):
    """An .npz of [N, H, W, C] float images in [0, 1] with labels and two named factors."""
    images, labels = digit_images()
    path = tmp_path_factory.mktemp("tensors") / "digits.npz"
    ink = (images.reshape(len(images), -1).mean(1) > np.median(images.reshape(len(images), -1).mean(1)))
    np.savez(path, images=images[..., None] / 255.0, labels=labels,
             factors=np.stack([labels, ink.astype(np.int64)], 1), factor_names=np.array(["digit", "ink"]))
    return path


def test_a_tensor_file_gives_images_labels_and_factors(tensor_file, tmp_path, train_config):
    splits = load_splits(train_config("data=tensors", f"data.path={tensor_file}", "data.image_size=8").data)
    images, labels = digit_images()
    assert splits.image_shape == (1, 8, 8) and splits.info.factor_names == ("digit", "ink")
    assert splits.info.class_names == tuple(str(d) for d in range(10))
    for split in (splits.train, splits.test):
        assert torch.equal(split.images[:, 0], torch.from_numpy(images)[split.index])
        assert torch.equal(split.labels, torch.from_numpy(labels)[split.index])
        assert torch.equal(split.factors[:, 0], split.labels)
    # A .pt file of [N, C, H, W] uint8 with its own split and no labels: unlabelled.
    unlabelled = tmp_path / "own.pt"
    torch.save({"train_images": torch.from_numpy(images[:100, None]), "test_images": torch.from_numpy(images[100:150, None])},
               unlabelled)
    splits = load_splits(train_config("data=tensors", f"data.path={unlabelled}", "data.image_size=8").data)
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (100, 50) and not splits.info.labelled


@pytest.mark.parametrize("content, problem", [
    ({"pictures": np.zeros((4, 8, 8))}, "has no 'images' .found: pictures."),
    ({"images": np.zeros((4, 8))}, r"images is \[4, 8\]; expected \[N, H, W\]"),
    ({"images": np.full((4, 8, 8), 2.0)}, "holds floats outside"),
    ({"images": np.zeros((4, 8, 8), np.int32)}, "is torch.int32; expected uint8"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.zeros(3, np.int64)}, r"labels is \[3\]"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.full(4, 0.5)}, "whole numbers"),
])
def test_a_tensor_file_that_cannot_be_used_is_one_line_naming_what_is_wrong(tmp_path, train_config, content, problem):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    sources._tensor_file.cache_clear()
    with pytest.raises(ConfigError, match=f"data.path=.*bad.npz.*{problem}"):
        check_data(train_config("data=tensors", f"data.path={path}", "data.image_size=8").data)
    with pytest.raises(ConfigError, match="expected a .pt or .npz file"):
        check_data(train_config("data=tensors", f"data.path={tmp_path / 'x.csv'}").data)


def test_fashion_mnist_reads_its_own_folder_with_its_class_names(train_config, data_root):
    splits = load_splits(train_config("data=fashion_mnist").data)
    assert splits.info.class_names[0] == "T-shirt" and splits.info.label == "item"
    assert len(splits.test) == 597  # the stand-in's test split (tests/conftest.py)


# --- every model type trains on each -----------------------------------------------------------

DATASETS = {
    "fashion_mnist": lambda request: ["data=fashion_mnist"],
    "dsprites": lambda request: (request.getfixturevalue("small_dsprites"),
                                 ["data=dsprites", "data.image_size=32"])[1],
    "folder": lambda request: ["data=folder", f"data.path={request.getfixturevalue('image_folder')}",
                               "data.image_size=16"],
    "tensors": lambda request: ["data=tensors", f"data.path={request.getfixturevalue('tensor_file')}",
                                "data.image_size=8"],
}
FACTORS = {"dsprites", "tensors"}  # the data with two or more known factors: disentanglement runs


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_type_trains_on_each_dataset(request, train_config, tmp_path, model, data):
    semi = ["data.n_labels=60"] if model == "semi" else []  # as many of each of 10 or 3 classes
    config = train_config(f"model={model}", "backbone=mlp", "backbone.hidden=[64]", *DATASETS[data](request),
                          "trainer.epochs=1", "trainer.batch_size=64", *QUICK_EVAL, *SMALL.get(model, []), *semi,
                          "eval.figures=false")
    metrics = train(config, str(tmp_path))
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert all(np.isfinite(value).all() for value in metrics.values() if not isinstance(value, (str, dict)))
    phases = {"loss_terms", "image_quality", "latent_statistics", "probes", "reference_classifier", "sample_quality",
              "traversal_control", "importance_sampled_nll", *(["disentanglement"] if data in FACTORS else [])}
    assert set(metrics["eval_s"]) == phases
    splits = load_splits(config.data)
    model_built = build_model(config.model, config.backbone, splits.image_shape, len(splits.info.class_names))
    assert {k for k, v in metrics.items() if isinstance(v, (int, float))} == final_metric_names(model_built, splits, config)


IMAGE_BACKBONES = {"conv": ["backbone=conv", "backbone.channels=[8,16]", "backbone.hidden=64"],
                   "unet": ["backbone=unet", "backbone.channels=[8,16]", "backbone.groups=4", "backbone.heads=2",
                            "backbone.hidden=32"]}


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("backbone", IMAGE_BACKBONES)
def test_the_image_backbones_train_and_draw_on_each_dataset(request, train_config, tmp_path, backbone, data):
    from test_cli import FIGURES, assert_figure_is_not_blank

    config = train_config("model=combined", *IMAGE_BACKBONES[backbone], *DATASETS[data](request), "trainer.epochs=1",
                          "trainer.batch_size=64", *QUICK_EVAL, *SMALL["combined"])
    train(config, str(tmp_path))
    for name in FIGURES:
        assert_figure_is_not_blank(tmp_path / "figures" / name)


def test_unlabelled_data_trains_without_what_needs_labels_and_semi_is_refused(tmp_path, train_config):
    images, _ = digit_images()
    path = tmp_path / "unlabelled.npz"
    np.savez(path, images=images)
    data = ["data=tensors", f"data.path={path}", "data.image_size=8"]
    config = train_config("backbone.hidden=[32]", *data, "trainer.epochs=1", *QUICK_EVAL)
    metrics = train(config, str(tmp_path / "run"))
    assert set(metrics["eval_s"]) == {"loss_terms", "importance_sampled_nll", "image_quality", "latent_statistics",
                                      "figures"}
    from test_cli import FIGURES, assert_figure_is_not_blank
    for name in FIGURES:
        assert_figure_is_not_blank(tmp_path / "run" / "figures" / name)
    with pytest.raises(UserError, match="model=semi learns from labels, and this data has none"):
        train(train_config("model=semi", *data, "trainer.epochs=1"), str(tmp_path / "semi"))
    assert not (tmp_path / "semi").exists()  # refused before its first write: its folder is removed again
    assert not (tmp_path / "run" / ".lock").exists()  # a finished run holds only what it wrote


def test_the_explorer_names_each_datasets_classes_and_maps_unlabelled_data(train_config, image_folder, tmp_path):
    from pathlib import Path

    from vae_lab.explore.latent import Explorer
    from vae_lab.reporting import Run

    def explorer(*overrides):
        config = train_config("backbone.hidden=[32]", *overrides)
        splits = load_splits(config.data)
        model = build_model(config.model, config.backbone, splits.image_shape, len(splits.info.class_names)).eval()
        return Explorer(Run(Path("/nowhere"), config, [], {}, model, 0, torch.device("cpu"), splits), 100)

    layout = explorer("data=folder", f"data.path={image_folder}", "data.image_size=16").layout()
    assert (layout["classes"], layout["label"]) == (sorted(["zero", "one", "two", "three", "four", "five", "six",
                                                            "seven", "eight", "nine"]), "class")
    assert explorer("data=fashion_mnist").layout()["label"] == "item"
    path = tmp_path / "unlabelled.npz"
    np.savez(path, images=digit_images()[0])
    unlabelled = explorer("data=tensors", f"data.path={path}", "data.image_size=8")
    assert unlabelled.layout()["classes"] == [] and unlabelled.map("pca")[0].shape == (100, 2)
    # A label-conditioned model goes to each class's mean code: one per class of the data.
    semi = explorer("model=semi", "model.variant=latent_classifier", "model.latent_dim=2", "data=folder",
                    f"data.path={image_folder}", "data.image_size=16")
    assert len(semi.digit_codes()) == 10


def test_mig_sap_and_dci_score_a_code_that_is_dsprites_factors_near_one_and_a_turned_one_lower():
    """The metrics take dSprites' five factors, with their 32 and 40 classes (SAP's trees grow to fit):
    a code made of the factors themselves (plus noise dimensions) is disentangled; the same code turned
    by a random rotation is as informative and far less disentangled."""
    from vae_lab.metrics.disentanglement import dci, mig, sap

    rng = np.random.default_rng(0)
    factors = dsprites.factors_of(torch.from_numpy(rng.choice(dsprites.COUNT, 3000, replace=False))).numpy()
    code = np.concatenate([factors + rng.normal(0, 0.1, factors.shape), rng.normal(size=(3000, 3))], 1)
    turned = code @ np.linalg.qr(rng.normal(size=(8, 8)))[0]
    named = lambda rows: {name: factors[rows, i] for i, name in enumerate(dsprites.FACTOR_NAMES)}  # noqa: E731
    train, test = slice(0, 1000), slice(1000, 3000)
    scores = {}
    for name, values in (("factors", code), ("turned", turned)):
        scores[name] = {"mig": mig(values[test], named(test)),
                        "sap": sap(values[train], named(train), values[test], named(test)),
                        **dci(values[train], named(train), values[test], named(test), "lasso")}
    assert scores["factors"]["mig"] > 0.8 and scores["factors"]["sap"] > 0.9
    # Lasso's linear read of 32- and 40-class factors is weak (informativeness about 0.26 either way),
    # but its weights still say which dimension holds which factor.
    assert scores["factors"]["disentanglement"] > 0.8 and scores["factors"]["completeness"] > 0.8
    assert scores["turned"]["mig"] < 0.2 * scores["factors"]["mig"] and scores["turned"]["sap"] < 0.1
    assert scores["turned"]["disentanglement"] < 0.6 * scores["factors"]["disentanglement"]
