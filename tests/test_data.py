import colorsys
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchvision.datasets import MNIST

from conftest import N_TRAIN
from vae_lab.config import ConfigError
from vae_lab.data import load_split, load_splits
from vae_lab.data.color import hash32, hsv_to_rgb, sample_tints, tint
from vae_lab.data.mnist import read_mnist


def test_reads_the_idx_files_as_torchvision_does(data_root):
    images, labels = read_mnist(data_root, train=True, download=False)
    assert images.shape == (N_TRAIN, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (N_TRAIN,) and labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(10))
    assert images.float().std() > 20  # real strokes, not an empty canvas
    theirs = MNIST(str(data_root), train=True)
    assert torch.equal(images, theirs.data) and torch.equal(labels, theirs.targets)


def test_gzipped_files_read_the_same_and_a_damaged_one_is_named(data_root, tmp_path):
    """MNIST as it is distributed (.gz), each file either way; torchvision alone would refuse a .gz
    whose checksum is not the official set's, as any subset's is."""
    import gzip
    import shutil

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for number, path in enumerate(sorted((data_root / "MNIST" / "raw").iterdir())):
        if number % 2:
            shutil.copy(path, raw)
        else:
            (raw / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    for train in (True, False):
        mine, plain = read_mnist(tmp_path, train, download=False), read_mnist(data_root, train, download=False)
        assert all(torch.equal(a, b) for a, b in zip(mine, plain))
    gzipped = next(raw.glob("*.gz"))
    gzipped.write_bytes(gzipped.read_bytes()[:100])
    with pytest.raises(ConfigError) as error:
        for train in (True, False):
            read_mnist(tmp_path, train, download=False)
    assert f"{gzipped.name} is not an MNIST file: it cannot be decompressed" in str(error.value)


def test_missing_data_offline_names_the_files_and_the_folder(tmp_path):
    with pytest.raises(ConfigError) as error:
        read_mnist(tmp_path, train=True, download=False)
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "VAE_LAB_DATA" in message and "data.download=true" in message
    assert "download=True" not in message  # torchvision's advice, in its spelling, is not repeated


def test_a_failed_download_becomes_the_same_clear_error(tmp_path, monkeypatch):
    """The real download path, pointed at a closed local port, as it fails without internet."""
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(ConfigError) as error:
        read_mnist(tmp_path, train=True, download=True)
    message = str(error.value)
    assert "could not be downloaded. Put train-images-idx3-ubyte" in message
    assert "Error downloading" not in message and ":)" not in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # the folders made for the download are gone with it


def _reference_hash32(x: int) -> int:
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_tensor_hash_matches_plain_python_integers():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1, 0xDEADBEEF, 7 * 10**9]
    got = hash32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [_reference_hash32(v) for v in values]


def test_hsv_to_rgb_matches_colorsys():
    hsv = torch.rand(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.tensor([colorsys.hsv_to_rgb(*row) for row in hsv.tolist()], dtype=torch.float64)
    torch.testing.assert_close(hsv_to_rgb(hsv), expected)


def test_a_samples_tint_depends_only_on_seed_split_and_index():
    everything, bins = sample_tints(0, "train", torch.arange(1000), hue_bins=6)
    some, some_bins = sample_tints(0, "train", torch.tensor([999, 3, 500]), hue_bins=6)
    torch.testing.assert_close(some, everything[[999, 3, 500]])
    assert some_bins.tolist() == bins[[999, 3, 500]].tolist()
    assert not torch.equal(sample_tints(1, "train", torch.arange(1000), 6)[0], everything)
    assert not torch.equal(sample_tints(0, "test", torch.arange(1000), 6)[0], everything)


def test_tints_are_bright_varied_and_their_hue_bins_cover_the_wheel():
    rgb, bins = sample_tints(0, "train", torch.arange(5000), hue_bins=6)
    assert rgb.max(dim=1).values.min() >= 0.75 - 1e-6  # value >= 0.75: visible on black
    assert torch.bincount(bins, minlength=6).min() > 5000 / 6 * 0.8  # hues spread evenly
    hue = torch.tensor([colorsys.rgb_to_hsv(*c)[0] for c in rgb[:200].tolist()])
    assert torch.equal((hue * 6).long().clamp_max(5), bins[:200])


def test_tinting_multiplies_the_grey_image_by_its_color():
    grey = torch.tensor([[[0, 128], [255, 64]]], dtype=torch.uint8)
    rgb = torch.tensor([[1.0, 0.5, 0.25]])
    colored = tint(grey, rgb)
    assert colored.shape == (1, 3, 2, 2)
    assert colored[0, :, 1, 0].tolist() == [255, 128, 64]
    assert colored[0, :, 0, 0].tolist() == [0, 0, 0]


def test_colors_are_identical_in_separate_processes(data_root, train_config):
    """Hash seeds, thread counts and process state must not change a sample's color."""
    config = train_config("data=color_mnist")
    script = (
        "import sys, torch; from vae_lab.data import load_split; from vae_lab.config import DataConfig;"
        f"c = DataConfig(name='color_mnist', root=r'{data_root}', download=False, binarize='none',"
        "val_fraction=0.1, seed=0, hue_bins=6);"
        "d = load_split(c, 'train'); print(d.colors[[0, 7, 1000]].tolist(), d.hue_bins[[0, 7, 1000]].tolist())"
    )
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "OMP_NUM_THREADS": str(threads)}).stdout
            for seed, threads in ((1, 1), (2, 2))]
    assert runs[0] == runs[1]
    here = load_split(config.data, "train")
    assert runs[0].strip() == f"{here.colors[[0, 7, 1000]].tolist()} {here.hue_bins[[0, 7, 1000]].tolist()}"


def test_color_mnist_keeps_each_samples_tint(train_config):
    data = load_split(train_config("data=color_mnist").data, "train")
    assert data.images.shape == (N_TRAIN, 3, 28, 28)
    grey, _ = read_mnist(train_config().data.root, train=True, download=False)
    torch.testing.assert_close(data.images, tint(grey, data.colors))
    batch = data.batch(torch.tensor([5, 6]))
    torch.testing.assert_close(batch.colors, data.colors[[5, 6]])
    assert batch.hue_bins.tolist() == data.hue_bins[[5, 6]].tolist()


def test_image_size_resizes_as_the_jointvae_papers_pil_loader_does(train_config, data_root):
    """data.image_size=32 against torchvision's Resize(32) on PIL images, the paper's own loader."""
    from torchvision import transforms

    resized = load_split(train_config("data.image_size=32").data, "train")
    assert resized.images.shape == (N_TRAIN, 1, 32, 32) and resized.images.dtype == torch.uint8
    pil = MNIST(str(data_root), train=True, download=False, transform=transforms.Resize(32))
    for row in (0, 7, 1000):
        expected = torch.from_numpy(np.asarray(pil[row][0], dtype=np.int16))
        assert (resized.images[row, 0].short() - expected).abs().max() <= 2  # rounding of two implementations
    native = load_split(train_config().data, "train")
    assert torch.equal(load_split(train_config("data.image_size=28").data, "train").images, native.images)
    color = load_split(train_config("data=color_mnist", "data.image_size=32").data, "train")
    assert color.images.shape == (N_TRAIN, 3, 32, 32)
    torch.testing.assert_close(color.images, tint(resized.images[:, 0], color.colors))  # tinted after resizing


def test_validation_is_carved_from_training_reproducibly(train_config):
    config = train_config("data.val_fraction=0.25")
    splits = load_splits(config.data)
    train, val = set(splits.train.index.tolist()), set(splits.val.index.tolist())
    assert not train & val and len(train | val) == N_TRAIN
    assert len(val) == round(0.25 * N_TRAIN)
    assert torch.equal(load_splits(config.data).val.index, splits.val.index)
    assert not torch.equal(load_splits(train_config("data.val_fraction=0.25", "data.seed=1").data).val.index,
                           splits.val.index)



def test_n_train_keeps_a_random_subset_of_the_training_images_fixed_by_the_data_seed(train_config):
    every = load_splits(train_config().data)
    few = load_splits(train_config("data.n_train=300").data)
    assert len(few.train) == 300 and set(few.train.index.tolist()) < set(every.train.index.tolist())
    assert torch.equal(few.val.index, every.val.index) and torch.equal(few.test.images, every.test.images)
    assert torch.equal(load_splits(train_config("data.n_train=300").data).train.index, few.train.index)
    assert not torch.equal(load_splits(train_config("data.n_train=300", "data.seed=1").data).train.index,
                           few.train.index)
    assert not torch.equal(few.train.index, every.train.index[:300])  # drawn at random, not the file's first

def test_static_binarization_is_fixed_and_dynamic_resamples_training_pixels(train_config):
    static = load_splits(train_config("data.binarize=static").data)
    assert set(static.train.images.unique().tolist()) <= {0, 255}
    assert torch.equal(static.train.images, load_splits(train_config("data.binarize=static").data).train.images)

    dynamic = load_splits(train_config("data.binarize=dynamic").data)
    rows = torch.arange(64)
    first, second = dynamic.train.batch(rows).images, dynamic.train.batch(rows).images
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)
    assert torch.equal(dynamic.test.batch(rows).images, dynamic.test.batch(rows).images)
    grey = load_splits(train_config().data).train.batch(rows).images
    # Resampled pixels keep the grey value as their mean.
    means = torch.stack([dynamic.train.batch(rows).images for _ in range(200)]).mean(0)
    assert (means - grey).abs().mean() < 0.02


def test_shuffled_batches_are_one_random_permutation_of_the_split(train_config):
    data = load_splits(train_config().data).train
    batches = list(data.shuffled_batches(100, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [100] * (len(data) // 100) + [len(data) % 100] * (len(data) % 100 > 0)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.cat([b.images for b in batches]), data.images[order].float() / 255)
    assert torch.equal(torch.cat([b.labels for b in batches]), data.labels[order])
