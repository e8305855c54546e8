"""`pip install .` (a real wheel, not the editable install) ships conf/ and runs from any folder, and
Hydra finds vae-lab's plugins in every way of installing it."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_config_and_runs_from_another_folder(tmp_path):
    source = tmp_path / "source"  # build from a copy: the build leaves files beside the sources
    for folder in ("vae_lab", "conf", "hydra_plugins"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / file, source / file)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    # A quiet build: setuptools' warnings (a config folder missing from pyproject's packages, for one)
    # would scroll past every user's install. "byte-compiling is disabled" is the environment's choice.
    warnings = [line for line in (built.stdout + built.stderr).splitlines()
                if "warning" in line.lower() and "byte-compiling is disabled" not in line]
    assert not warnings, "\n".join(warnings)
    wheel = next((tmp_path / "dist").glob("vae_lab-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"vae_lab/conf/{p.relative_to(REPO / 'conf').as_posix()}"
               for pattern in ("*.yaml", "*.yml") for p in (REPO / "conf").rglob(pattern)}  # .yml: write-up claims
    assert configs and configs <= shipped, sorted(configs - shipped)
    assert "vae_lab/cli.py" in shipped and "vae_lab/models/continuous.py" in shipped
    assert "vae_lab/explore/static/index.html" in shipped  # the explorer's page
    assert "hydra_plugins/vae_lab_stacked_launcher/stacked_launcher.py" in shipped  # hydra/launcher=stacked
    assert any(name.endswith("entry_points.txt") for name in shipped)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in shipped)  # MIT, with every copy

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", "import vae_lab, sys; print(vae_lab.__file__, file=sys.stderr); "
                               "from vae_lab.cli import main; main(['train', '--cfg', 'job'])"],
        cwd=elsewhere, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().startswith(str(site))  # the installed copy, not the checkout
    assert "latent_dim: 20" in result.stdout and "hidden:" in result.stdout
    found = subprocess.run(  # Hydra's plugin scan finds the launcher in the installed copy
        [sys.executable, "-c", "from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
                               "import sys; print([sys.modules[p.__module__].__file__ for p in Plugins.instance().discover(Launcher)])"],
        cwd=elsewhere, env={"PYTHONPATH": f"{site}:{':'.join(p for p in sys.path[1:] if p != str(REPO))}",
                            "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert f"{site}/hydra_plugins/vae_lab_stacked_launcher/stacked_launcher.py" in found.stdout, found.stdout + found.stderr


@pytest.mark.parametrize("mode", ["default", "compat", "strict"])
def test_hydra_finds_the_plugins_in_every_editable_install(tmp_path, mode):
    """`pip install -e .` in setuptools' default mode, the way most researchers install a checkout,
    once left hydra/launcher=stacked and hydra/sweeper=vae_lab_optuna unknown: only compat mode
    (the Makefile's) put the plugins where Hydra's scan looks."""
    source = tmp_path / "source"
    for folder in ("vae_lab", "conf", "hydra_plugins"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / file, source / file)
    venv = tmp_path / "venv"  # an environment of its own, with this one's packages (not its vae-lab) as a path
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "dependencies.pth").write_text("\n".join(p for p in sys.path if p.endswith("site-packages")) + "\n")
    python = str(venv / "bin" / "python")
    settings = [] if mode == "default" else ["--config-settings", f"editable_mode={mode}"]
    installed = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "--ignore-installed", "-e", str(source), *settings],
                               cwd=tmp_path, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run(
        [python, "-c", "import sys; from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
                       "from hydra.plugins.sweeper import Sweeper; print('\\n'.join(sys.modules[p.__module__].__file__ "
                       "for kind in (Launcher, Sweeper) for p in Plugins.instance().discover(kind)))"],
        cwd=elsewhere, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-3000:]
    files = found.stdout.split()
    for plugin in ("vae_lab_stacked_launcher/stacked_launcher.py", "vae_lab_slurm_launcher/slurm_launcher.py",
                   "vae_lab_optuna_sweeper/optuna_sweeper.py"):
        assert any(f.endswith(f"hydra_plugins/{plugin}") and str(REPO) not in f for f in files), (plugin, files)


CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def torch_index(*variables: str) -> str:
    """The index the Makefile takes PyTorch from with these variables set ("" for PyPI's)."""
    shown = subprocess.run(["make", "-s", "--eval=show: ; @echo [$(TORCH_INDEX)]", "show", *variables],
                           cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()[1:-1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_takes_pytorchs_cpu_build_only_where_no_nvidia_driver_is(tmp_path):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: 550\n")
    assert torch_index(f"NVIDIA_DRIVER={tmp_path / 'absent'}") == CPU_INDEX
    assert torch_index(f"NVIDIA_DRIVER={driver}") == ""  # PyPI's build, with CUDA
    assert torch_index(f"NVIDIA_DRIVER={tmp_path / 'absent'}", "TORCH_INDEX=") == ""  # the override beside it


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_an_index_that_does_not_answer_leaves_pytorch_to_pypi_and_says_so(tmp_path):
    """Offline, or where PyTorch's index is blocked, `make train` goes on with PyPI's build."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    index = "http://127.0.0.1:9/simple"  # the discard port: nothing listens
    result = subprocess.run(["make", "--no-print-directory", "torch", f"VENV={venv}", f"TORCH_INDEX={index}"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (f"make: {index} does not answer: PyTorch comes from PyPI instead "
                                     "(TORCH_INDEX= skips this check)")
    assert "pip" not in result.stdout
