"""`pip install .` (a real wheel, not the editable install) ships conf/ and runs from any folder."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_config_and_runs_from_another_folder(tmp_path):
    source = tmp_path / "source"  # build from a copy: the build leaves files beside the sources
    for folder in ("vae_lab", "conf", "hydra_plugins"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for file in ("pyproject.toml", "README.md"):
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
