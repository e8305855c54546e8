"""Shared fixtures: an offline MNIST-format dataset and a way to run the `vae-lab` command."""

import contextlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F


# Debian's Chromium, driven by Playwright: nothing downloaded, and nothing asked of the network.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_CHROMIUM = "Debian's chromium is not installed (.ci/run installs it)"


@contextlib.contextmanager
def launched_chromium():
    """A headless Chromium for a browser test (skip the test with NO_CHROMIUM where it is missing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            yield browser
        finally:
            browser.close()
from sklearn.datasets import load_digits

N_TRAIN = 1200  # of scikit-learn's 1,797 bundled 8x8 digits; the rest are the test split
# What a test that compares two runs to the last bit pins: the CPU (on a GPU machine device=auto would
# take CUDA, whose sums are not ordered alike from run to run) and one thread (a count that follows
# the load changes the order of sums; xdist's one thread per worker is not there when a file runs alone).
EXACT = ("trainer.device=cpu", "trainer.threads=1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel test workers share the cores: one thread each (also in the `vae-lab` they start), or
    # OpenMP's spinning threads slow everything down many times over.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0x08 = unsigned byte, then the rank), sizes, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_tiny_mnist(root: Path) -> Path:
    """scikit-learn's handwritten digits, upscaled to 20x20 and centred in 28x28 as MNIST is."""
    digits = load_digits()
    small = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    big = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False)
    images = (F.pad(big, (4, 4, 4, 4)).squeeze(1).clamp(0, 1) * 255).round().numpy()
    labels = digits.target
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    write_idx(raw / "train-images-idx3-ubyte", images[:N_TRAIN])
    write_idx(raw / "train-labels-idx1-ubyte", labels[:N_TRAIN])
    write_idx(raw / "t10k-images-idx3-ubyte", images[N_TRAIN:])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[N_TRAIN:])
    # Fashion-MNIST's stand-in: the same files in its folder (the format and layout are what is tested)
    shutil.copytree(raw, root / "FashionMNIST" / "raw", dirs_exist_ok=True)
    return root


@pytest.fixture(scope="session", autouse=True)
def cache(tmp_path_factory) -> Path:
    """The tests' own cache folder (the reference classifier's), not the user's; shared by the
    `vae-lab` commands they start."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["VAE_LAB_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


@pytest.fixture(scope="session")
def vae_lab_command() -> list[str]:
    """The installed console script (falling back to the module when run from a bare checkout)."""
    script = shutil.which("vae-lab", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "vae_lab"]


@pytest.fixture
def vae_lab(vae_lab_command, data_root, tmp_path):
    """Run `vae-lab ARGS...` as a user would, from a scratch folder, on the tiny dataset."""

    def run(*args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
        env = {**os.environ, "VAE_LAB_DATA": str(data_root), "PYTHONHASHSEED": "random"}
        result = subprocess.run([*vae_lab_command, *args], cwd=tmp_path, env=env, text=True,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"vae-lab {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def train_config(data_root):
    """The typed config that `vae-lab train OVERRIDES...` would use (on the tiny data), in-process."""
    from vae_lab.compose import train_config

    def make(*overrides: str):
        return train_config([f"data.root={data_root}", *overrides])

    return make
