"""`vae-lab` as a user runs it: a subprocess from a scratch folder, on the tiny offline dataset."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import EXACT
from vae_lab.checkpoints import load_checkpoint

FIGURES = ("reconstructions.png", "samples.png", "samples_posterior.png", "latent_scatter.png",
           "latent_ranges.png", "latent_traversal.png", "training_curves.png", "interpolation.gif",
           "training_evolution.gif")
QUICK_EVAL = ("eval.is_samples=16", "eval.sample_images=200", "eval.traversal_images=16", "eval.probe_images=500",
              "eval.epoch_images=200", "eval.tsne_points=0", "eval.disentanglement_train=300",
              "eval.disentanglement_test=200")
FAST = ("trainer.batch_size=64", *QUICK_EVAL)


def gif_frames(path: Path) -> int:
    return Image.open(path).n_frames


def assert_figure_is_not_blank(path: Path) -> None:
    image = Image.open(path)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(image.n_frames - 1)  # the last frame of an animation
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.shape[0] > 150 and pixels.shape[1] > 150, path
    assert pixels.std() > 10, f"{path.name} is nearly blank"


@pytest.fixture(scope="session")  # once per test worker, shared by its group
def finished_run(tmp_path_factory, vae_lab_command, data_root):
    """One short training run shared by the tests that only read its folder."""
    run_dir = tmp_path_factory.mktemp("run") / "first"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    result = subprocess.run([*vae_lab_command, "train", "trainer.epochs=1", *FAST,
                             f"hydra.run.dir={run_dir}"], cwd=tmp_path_factory.mktemp("cwd"),
                            env=env, text=True, capture_output=True, timeout=240)
    assert result.returncode == 0, result.stderr
    return run_dir, result


@pytest.mark.xdist_group("finished_run")
def test_train_prints_the_absolute_run_folder_last(finished_run):
    run_dir, result = finished_run
    last_line = result.stdout.strip().splitlines()[-1]
    assert Path(last_line).is_absolute() and Path(last_line) == run_dir.resolve()
    assert "Warning" not in result.stderr, result.stderr  # a user reads every line: none from the libraries


@pytest.mark.xdist_group("finished_run")
def test_train_writes_the_whole_run_folder(finished_run):
    run_dir, _ = finished_run
    for name in ("config.yaml", "metrics.jsonl", "metrics.json", "train.log",
                 "checkpoints/last.pt", "checkpoints/best.pt", *(f"figures/{f}" for f in FIGURES)):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("*.tmp")), "a temporary file was left behind"
    for figure in FIGURES:
        assert_figure_is_not_blank(run_dir / "figures" / figure)


@pytest.mark.xdist_group("finished_run")
def test_metrics_follow_the_documented_keys_and_convention(finished_run):
    run_dir, _ = finished_run
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["epoch"] == 1
    for split in ("train", "val", "test"):
        for term in ("loss", "recon", "kl", "nelbo"):
            assert np.isfinite(rows[0][f"{split}/{term}"]), f"{split}/{term}"
    assert rows[0]["epoch_s"] > 0 and rows[0]["train/images_per_s"] > 0
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["test/loss"] == pytest.approx(final["test/nelbo"])  # beta = 1
    assert final["best_epoch"] == 1 and final["epochs"] == 1


@pytest.mark.xdist_group("finished_run")
def test_the_reported_test_terms_are_those_torch_distributions_gives(finished_run, data_root):
    """test/kl is KL(N(mu, sigma) || N(0, I)) exactly; test/recon, one posterior draw per image, agrees
    with an estimate from 20 draws of torch.distributions' Bernoulli within its standard error; and
    test/nelbo is -log p(x | z) + KL with nothing else in it."""
    from torch.distributions import Bernoulli, Normal, kl_divergence

    import vae_lab

    run_dir, _ = finished_run
    final = json.loads((run_dir / "metrics.json").read_text())
    run = vae_lab.load_run(run_dir, data_root=str(data_root))
    images = run.splits.test.batch(torch.arange(len(run.splits.test))).images
    with torch.no_grad():
        mean, logvar = run.model.encode(images).chunk(2, dim=-1)
        posterior = Normal(mean, torch.exp(0.5 * logvar))
        kl = kl_divergence(posterior, Normal(0.0, 1.0)).sum(-1)
        recon = torch.stack([-Bernoulli(logits=run.model.decoder(posterior.sample()), validate_args=False)
                             .log_prob(images).sum((1, 2, 3)) for _ in range(20)])  # [draws, images]
    assert final["test/kl"] == pytest.approx(kl.mean().item(), rel=1e-4)
    one_draw_se = recon.std(0).mean().item() / len(images) ** 0.5
    assert abs(final["test/recon"] - recon.mean().item()) < 4 * one_draw_se + 1e-3
    assert final["test/nelbo"] == pytest.approx(final["test/recon"] + final["test/kl"], rel=1e-6)


@pytest.mark.xdist_group("finished_run")
def test_checkpoints_load_with_weights_only(finished_run):
    run_dir, _ = finished_run
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "rng", "history", "config", "epoch"} <= set(last)
    assert last["epoch"] == 1 and last["config"]["model"]["latent_dim"] == 20
    assert "model" in load_checkpoint(run_dir / "checkpoints" / "best.pt")


@pytest.mark.xdist_group("finished_run")
def test_config_yaml_records_the_resolved_absolute_data_root(finished_run, data_root):
    run_dir, _ = finished_run
    text = (run_dir / "config.yaml").read_text()
    assert f"root: {data_root.resolve()}" in text and "${" not in text


@pytest.mark.xdist_group("finished_run")
def test_eval_reloads_the_run_and_recomputes_the_same_numbers(finished_run, vae_lab, tmp_path):
    run_dir, _ = finished_run
    result = vae_lab("eval", str(run_dir), *QUICK_EVAL)  # as the findings pages write it: a plain path
    assert Path(result.stdout.strip().splitlines()[-1]) == run_dir / "eval"
    recomputed = json.loads((run_dir / "eval" / "metrics.json").read_text())
    original = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/loss", "test/recon", "test/kl", "test/nelbo"):
        assert recomputed[key] == pytest.approx(original[key], rel=1e-6), key
    assert recomputed["test/nll_samples"] == original["test/nll_samples"] == 16  # eval.is_samples as given
    assert original["test/nll_se"] > 0
    for figure in FIGURES:
        assert_figure_is_not_blank(run_dir / "eval" / figure)


@pytest.mark.parametrize("override, message", [
    ("model=gumbel", "model=gumbel: no such model; expected one of"),
    ("data=fashion", "data=fashion: no such data; expected one of color_mnist, dsprites, fashion_mnist, folder, mnist, tensors"),
    ("model.latent_dim=0", "model.latent_dim=0: expected a number >= 1"),
    ("model.beta=-1", "model.beta=-1.0: expected a number >= 0"),
    ("trainer.batch_size=0", "trainer.batch_size=0: expected a number >= 1"),
    ("model.beta=abc", "model.beta=abc: expected a number\n"),  # not OmegaConf's "could not be converted to Float"
    ("trainer.epochs=1.5", "trainer.epochs=1.5: expected a whole number\n"),
    ("eval.figures=maybe", "eval.figures=maybe: expected true or false\n"),
    pytest.param("trainer.device=cuda", "trainer.device=cuda: no CUDA GPU is visible",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_a_bad_value_exits_2_with_one_line_before_any_work(vae_lab, tmp_path, override, message):
    result = vae_lab("train", override, f"hydra.run.dir={tmp_path / 'never'}", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("vae-lab: error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "never").exists(), "work started before the check"


@pytest.mark.xdist_group("finished_run")
def test_an_existing_run_is_never_overwritten(finished_run, vae_lab):
    run_dir, _ = finished_run
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    result = vae_lab("train", "trainer.epochs=1", f"hydra.run.dir={run_dir}", check=False)
    assert result.returncode == 2 and "already holds a run" in result.stderr
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before


def test_a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(vae_lab, vae_lab_command,
                                                                          data_root, tmp_path):
    settings = ("trainer.epochs=6", *FAST, *EXACT)
    whole = tmp_path / "whole"
    vae_lab("train", *settings, "eval.figures=false", f"hydra.run.dir={whole}")

    # Start the same run and kill it (SIGKILL: no chance to tidy up) once an epoch is saved.
    broken = tmp_path / "broken"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    process = subprocess.Popen([*vae_lab_command, "train", *settings, f"hydra.run.dir={broken}"],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (broken / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (broken / "metrics.json").exists(), "the run finished before it could be interrupted"
    saved = load_checkpoint(broken / "checkpoints" / "last.pt")["epoch"]
    assert 1 <= saved < 6
    # metrics.jsonl is rewritten just after last.pt each epoch, so a kill between the two leaves it
    # an epoch behind; the resumed run rewrites it from the checkpoint's history.
    assert saved - 1 <= len((broken / "metrics.jsonl").read_text().splitlines()) <= saved

    vae_lab("train", *settings, f"hydra.run.dir={broken}", "trainer.resume=true")
    final_whole = json.loads((whole / "metrics.json").read_text())
    final_resumed = json.loads((broken / "metrics.json").read_text())
    for key in ("test/loss", "test/recon", "test/kl", "test/nelbo", "best_epoch"):
        assert final_resumed[key] == final_whole[key], key

    def losses(run):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if "/loss" in k or "/kl" in k} for row in rows]

    assert losses(broken) == losses(whole)
    assert gif_frames(broken / "figures" / "training_evolution.gif") == 6  # one frame per epoch, resumed too


@pytest.mark.xdist_group("finished_run")
def test_resume_refuses_a_changed_model(finished_run, vae_lab):
    run_dir, _ = finished_run
    result = vae_lab("train", f"hydra.run.dir={run_dir}", "trainer.resume=true", "model.latent_dim=3",
                     check=False)
    assert result.returncode == 2
    assert "model.latent_dim=3: the run in" in result.stderr and "latent_dim=20" in result.stderr


def test_help_lists_the_user_groups_and_the_main_keys_with_their_defaults(vae_lab):
    shown = vae_lab("train", "--help").stdout
    assert "schema" not in shown and "experiment_model" not in shown and "backbone_data" not in shown  # internal
    assert "continuous*" in shown and "mlp*" in shown
    assert "model.latent_dim=20" in shown and "trainer.epochs=10" in shown
    assert "eval.is_samples=100" in shown
    evaluating = vae_lab("eval", "--help").stdout
    assert "run_dir=???" in evaluating and "eval.is_samples=1000" in evaluating  # the composed value


def test_a_sweep_prints_every_jobs_config_with_hydras_options_and_trains_nothing(vae_lab, tmp_path):
    """Hydra's --cfg and --info take no --multirun: `vae-lab sweep --cfg job` shows each job instead."""
    from omegaconf import OmegaConf

    shown = vae_lab("sweep", "--cfg", "job", "model.latent_dim=2,4").stdout
    jobs = shown.split("# job ")[1:]
    assert [job.split(":")[0] for job in jobs] == ["0", "1"]
    assert [OmegaConf.create(job.split("\n", 1)[1]).model.latent_dim for job in jobs] == [2, 4]
    assert "hydra:" not in shown
    assert "Defaults List" in vae_lab("sweep", "--info", "defaults").stdout
    assert list(tmp_path.iterdir()) == []



def test_a_reader_that_stops_early_gets_no_traceback(vae_lab_command, data_root, tmp_path):
    """`vae-lab sweep --cfg job | head -2`: the pipe closes while vae-lab still prints (80 jobs are
    about 100 KB, more than a pipe holds)."""
    process = subprocess.Popen([*vae_lab_command, "sweep", "--cfg", "job", "seed=" + ",".join(map(str, range(80)))],
                               cwd=tmp_path, env={**os.environ, "VAE_LAB_DATA": str(data_root)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("# job 0:")
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141 and "Traceback" not in stderr and "Broken pipe" not in stderr, stderr

def test_the_python_api_trains_and_opens_a_run_as_a_notebook_would(data_root, tmp_path, monkeypatch):
    """vae_lab.train and vae_lab.load_run, and the example script built on them."""
    import subprocess
    import sys

    import torch

    import vae_lab

    run = vae_lab.train([f"data.root={data_root}", "trainer.epochs=2", "model.latent_dim=3", *QUICK_EVAL,
                         "eval.figures=false"], run_dir=tmp_path / "run")
    assert run.path == (tmp_path / "run").resolve() and (run.path / "metrics.json").is_file()
    assert len(run.history) == 2 and run.metrics["test/nelbo"] > 0 and run.epoch == run.metrics["best_epoch"]
    assert run.config.model.latent_dim == 3 and not run.model.training
    images = run.splits.test.batch(torch.arange(4)).images
    with torch.no_grad():
        assert run.model.embed(images).shape == (4, 3)
        assert run.model.reconstruct(images).shape == images.shape
    last = vae_lab.load_run(run.path, weights="last")
    assert last.epoch == 2
    with pytest.raises(vae_lab.errors.UserError, match="weights='worst'"):
        vae_lab.load_run(run.path, weights="worst")
    with pytest.raises(vae_lab.errors.UserError, match="model.latent_dim=0"):
        vae_lab.train([f"data.root={data_root}", "model.latent_dim=0"], run_dir=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before any work: nothing left behind

    example = Path(__file__).resolve().parents[1] / "examples" / "open_a_run.py"
    shown = subprocess.run([sys.executable, str(example), str(run.path), str(tmp_path / "out")],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "codes of 8 test images: (8, 3)" in shown.stdout
    assert_figure_is_not_blank(tmp_path / "out" / "traversal.png")
