"""The shape of vae_lab/ holds: its layer contracts (import-linter, pyproject.toml), no import cycle,
no mutable module state, and docs/architecture.md's list of the files a run executes, from a trace."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layer_contracts_hold():
    checked = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=REPO,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "0 broken" in checked.stdout and " kept" in checked.stdout


def test_a_layer_contract_fails_when_a_loss_imports_the_loop(tmp_path):
    """The contracts can fail: the same check over a copy of the package where image_losses.py
    imports the loop (as it once did) breaks two of them."""
    copy = tmp_path / "tree"
    copy.mkdir()
    subprocess.run(["cp", "-r", str(REPO / "vae_lab"), str(REPO / "pyproject.toml"), str(copy)], check=True)
    losses = copy / "vae_lab" / "image_losses.py"
    losses.write_text(losses.read_text().replace("from vae_lab.hooks import LossHook",
                                                 "from vae_lab.hooks import LossHook\nimport vae_lab.loop  # noqa"))
    checked = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=copy,
                             capture_output=True, text=True, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert checked.returncode == 1, checked.stdout[-3000:]
    assert "Losses and models never reach the loop BROKEN" in checked.stdout
    assert "vae_lab.image_losses -> vae_lab.loop" in checked.stdout


def test_a_sweeps_tables_load_neither_hydra_nor_matplotlib():
    """Reading a sweep's runs and writing its tables (tools, the explorer's sweep picker) waits for
    neither: the figures and the Hydra callback are vae_lab/sweep.py's."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, vae_lab.summary; "
                             "print(sorted({m.split('.')[0] for m in sys.modules} & {'hydra', 'matplotlib'}))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_no_import_cycle_and_no_mutable_module_state():
    shape = tool("shape")
    known = shape.modules()
    assert shape.cycles(list(known), shape.arrows(known)) == []
    assert shape.mutable_globals(known) == []


def test_the_shape_counts_a_cycle_and_module_state_it_is_shown(tmp_path, monkeypatch):
    shape = tool("shape")
    (tmp_path / "vae_lab").mkdir()
    (tmp_path / "vae_lab" / "__init__.py").write_text("")
    (tmp_path / "vae_lab" / "a.py").write_text("from vae_lab import b\nseen = {}\n")
    (tmp_path / "vae_lab" / "b.py").write_text("def f():\n    from vae_lab.a import seen\n    global count\n")
    (tmp_path / "vae_lab" / "c.py").write_text("import vae_lab.a\n")
    monkeypatch.setattr(shape, "ROOT", tmp_path)
    known = shape.modules()
    edges = shape.arrows(known)
    assert edges == {("vae_lab.a", "vae_lab.b"), ("vae_lab.b", "vae_lab.a"), ("vae_lab.c", "vae_lab.a")}
    assert shape.cycles(list(known), edges) == [["vae_lab.a", "vae_lab.b"]]
    assert shape.floors(list(known), edges) == 2  # the cycle shares one floor; c stands on it
    assert shape.mutable_globals(known) == ["vae_lab.a.seen", "vae_lab.b.count"]
    assert shape.imports_in_functions(known) == {"vae_lab.b": 1}


@pytest.mark.xdist_group("run_files")
def test_the_architecture_page_lists_the_files_a_traced_run_executes(data_root):
    """docs/architecture.md's table is what a traced default run (one epoch, figures on) enters, in
    order; `python tools/run_files.py --write` makes it so after a change."""
    run_files = tool("run_files")
    traced = run_files.traced_run(str(data_root))
    listed = [name for name, _ in run_files.page_rows(run_files.PAGE.read_text())]
    assert listed == traced, ("docs/architecture.md lists other files than a run executes; run "
                              f"`python tools/run_files.py --write`.\n page: {listed}\n trace: {traced}")
    assert all(what and not what.startswith("TODO") for _, what in run_files.page_rows(run_files.PAGE.read_text()))
    assert {"vae_lab/training.py", "vae_lab/loop.py", "vae_lab/metrics/", "vae_lab/figures/"} <= set(traced)
    assert "vae_lab/cli.py" not in traced  # from the composed config on: the command line is before it


def test_a_file_the_page_leaves_out_is_named(tmp_path):
    run_files = tool("run_files")
    text = run_files.table(["vae_lab/a.py", "vae_lab/metrics/"], {"vae_lab/a.py": "first"})
    assert run_files.page_rows(text) == [("vae_lab/a.py", "first"), ("vae_lab/metrics/", "TODO: what happens here")]
    assert run_files.step(str(REPO / "vae_lab" / "metrics" / "codes.py")) == "vae_lab/metrics/"
    assert run_files.step(str(REPO / "vae_lab" / "data" / "splits.py")) == "vae_lab/data/splits.py"
    assert run_files.step("/usr/lib/python3/json/__init__.py") is None


def test_the_module_list_names_every_module_of_vae_lab():
    """docs/architecture.md's module list once left out explore/ and trackers/: each module and
    package directly under vae_lab/ has its line there."""
    text = (REPO / "docs" / "architecture.md").read_text()
    listed = text[text.index("## Modules"):text.index("## The shape, guarded")]
    named = {line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line.split()}
    package = REPO / "vae_lab"
    modules = {p.name if p.suffix == ".py" else p.name + "/" for p in package.iterdir()
               if (p.suffix == ".py" and not p.name.startswith("__")) or (p / "__init__.py").is_file()}
    assert modules - named == set(), sorted(modules - named)

