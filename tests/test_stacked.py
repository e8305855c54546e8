"""Populations: members trained as one stacked computation, each exactly as it would train alone;
the stacked launcher that groups a sweep into populations."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import EXACT
from test_cli import QUICK_EVAL
from test_sweep import read_summary, stamps, sweep_runner
from vae_lab.models import build_model
from vae_lab.population import Population, index_maps, pad, unpad
from vae_lab.checkpoints import load_checkpoint
from vae_lab.runs import RunDir

QUICK = ("trainer.epochs=2", "backbone.hidden=[64]", *QUICK_EVAL, "eval.sample_images=0", "eval.figures=false",
         *EXACT)
# Members that differ in everything a population allows: seed, latent size, beta, learning rate,
# KL warm-up and gradient clipping.
MEMBERS = [("seed=1", "model.latent_dim=2", "model.beta=0.5"),
           ("seed=2", "model.latent_dim=5", "trainer.lr=0.002", "trainer.grad_clip=5"),
           ("seed=3", "model.latent_dim=16", "model.beta=4", "model.beta_warmup_steps=5")]


def history(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def together_and_alone(tmp_path_factory, data_root):
    """The same three runs trained as one population and each alone."""
    from vae_lab.compose import train_config
    from vae_lab.training import train_together

    def config(*overrides):
        return train_config([f"data.root={data_root}", *QUICK, *overrides])

    root = tmp_path_factory.mktemp("population")
    together = train_together([(config(*m), str(root / f"together{i}")) for i, m in enumerate(MEMBERS)])
    alone = [train_together([(config(*m), str(root / f"alone{i}"))])[0] for i, m in enumerate(MEMBERS)]
    return root, together, alone


@pytest.mark.xdist_group("population")
def test_a_member_trains_in_a_population_exactly_as_alone(together_and_alone):
    root, together, alone = together_and_alone
    for i in range(len(MEMBERS)):
        # Same initial weights, batches and noise: the stacked computation differs from the single
        # one only in the order of floating-point sums.
        for stacked, single in zip(history(root / f"together{i}"), history(root / f"alone{i}")):
            assert stacked["train/members"] == 3 and single["train/members"] == 1
            for key in ("train/loss", "train/kl", "val/nelbo", "test/nelbo", "test/mse"):
                assert stacked[key] == pytest.approx(single[key], rel=1e-5), (i, key)
        assert together[i]["test/nelbo"] == pytest.approx(alone[i]["test/nelbo"], rel=1e-5)
        assert together[i]["test/nll"] == pytest.approx(alone[i]["test/nll"], rel=1e-5)


@pytest.mark.xdist_group("population")
def test_a_members_cost_is_its_share_of_the_population(together_and_alone):
    """cost_s counts each epoch once over the population (a member pays its share), where train_s is
    the population's own time; alone, a run pays all of its epochs and its evaluation."""
    root, together, alone = together_and_alone
    for i in range(len(MEMBERS)):
        shares = sum(row["epoch_s"] / 3 for row in history(root / f"together{i}"))
        assert together[i]["train_s"] == pytest.approx(3 * shares)
        assert shares < together[i]["cost_s"] < together[i]["train_s"] + 60  # plus evaluation and figures
        assert alone[i]["cost_s"] > alone[i]["train_s"]


@pytest.mark.xdist_group("population")
def test_a_padded_member_is_saved_in_its_own_shapes_and_evaluates_alone(together_and_alone, train_config):
    from vae_lab.reporting import evaluate_run

    root, together, _ = together_and_alone
    run = RunDir(root / "together0")  # latent 2, trained padded into latent 16
    best = load_checkpoint(run.best_checkpoint)
    assert best["model"]["head.weight"].shape == (64, 4) and best["model"]["decoder.0.weight"].shape == (2, 64)
    config = train_config(*QUICK, *MEMBERS[0])
    _, metrics = evaluate_run(str(run.path), "cpu", config.eval)
    assert metrics["test/nelbo"] == pytest.approx(together[0]["test/nelbo"], rel=1e-6)


def test_a_padded_latent_gets_no_gradient_and_no_share_of_any_term(train_config):
    configs = [train_config("model.latent_dim=2", "backbone.hidden=[32]"), train_config("model.latent_dim=6",
                                                                                       "backbone.hidden=[32]")]
    models = []
    for seed, config in enumerate(configs):
        torch.manual_seed(seed)
        models.append(build_model(config.model, config.backbone, (1, 28, 28)))
    population = Population.of(models, [1e-3, 1e-3])
    images = torch.rand(2, 8, 1, 28, 28).round()
    noise = population.pad_noise([m.draw_noise((8,)) for m in models])
    for _ in range(3):
        terms = population.run("forward", {"images": images, "labels": torch.zeros(2, 8, dtype=torch.long),
                                           "noise": torch.stack(noise)}, {})
        population.zero_grad()
        population.objectives(terms).mean(-1).sum().backward()
        head, decoder = population.params["head.weight"], population.params["decoder.0.weight"]
        # The latent-2 member's head columns for means and log-variances 3-6, and its decoder rows 3-6.
        padded_head = torch.tensor([2, 3, 4, 5, 8, 9, 10, 11])
        assert torch.count_nonzero(head.grad[0][:, padded_head]) == 0
        assert torch.count_nonzero(decoder.grad[0][2:]) == 0
        assert torch.count_nonzero(head.grad[1]) > 0 and torch.count_nonzero(decoder.grad[1][2:]) > 0
        population.step()
    assert torch.count_nonzero(head[0][:, padded_head]) == 0 and torch.count_nonzero(decoder[0][2:]) == 0
    # Its importance weights see two dimensions only: the same as the latent-2 model's own.
    population.hand_back()
    alone = models[0].eval()
    with torch.no_grad():
        draws = models[0].draw_noise((5, 8))
        own = alone.log_importance_weights(images[0], 5, draws)
        noises = population.pad_noise([draws, models[1].draw_noise((5, 8))])
        padded = population.run("log_importance_weights", {"noise": torch.stack(noises)},
                                {"images": images[0]}, build=lambda images, noise: (images, 5, noise))[0]
    assert torch.allclose(own, padded, rtol=1e-5, atol=1e-3)


def test_padding_maps_a_gaussian_and_a_joint_latent_by_their_layout():
    from vae_lab.latents import CategoricalLatent, GaussianLatent, JointLatent, TemperatureSchedule

    schedule = TemperatureSchedule(1.0, 1.0, 0.0)
    small = JointLatent(GaussianLatent(2), CategoricalLatent(1, 3, schedule))
    large = JointLatent(GaussianLatent(4), CategoricalLatent(1, 3, schedule))
    maps = index_maps(small, large)
    params = torch.arange(1.0, 8.0)  # mean 1-2, log-variance 3-4, logits 5-7
    padded = pad(params, torch.Size([11]), maps, "params")
    assert padded.tolist() == [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 7]
    assert torch.equal(unpad(padded, torch.Size([7]), maps, "params"), params)
    code = torch.arange(1.0, 6.0)  # z 1-2, one-hot 3-5
    assert pad(code, torch.Size([7]), maps, "code").tolist() == [1, 2, 0, 0, 3, 4, 5]


def test_members_saved_at_different_epochs_resume_to_the_uninterrupted_numbers(tmp_path, data_root):
    """A kill between two members' saves leaves them an epoch apart; the one behind catches up alone,
    then they train together again. The member of the largest latent computes exactly what it did
    uninterrupted; a smaller one is padded in the population and not when alone, which changes the
    order of its sums, by far less than the 1e-5 the guide promises."""
    from vae_lab.compose import train_config
    from vae_lab.training import train_together

    def config(latent: int, epochs: int):
        return train_config([f"data.root={data_root}", *QUICK, f"model.latent_dim={latent}", f"trainer.epochs={epochs}",
                             "trainer.resume=true"])

    whole = train_together([(config(2, 4), str(tmp_path / "whole2")), (config(3, 4), str(tmp_path / "whole3"))])
    train_together([(config(2, 3), str(tmp_path / "resumed2"))])
    train_together([(config(3, 2), str(tmp_path / "resumed3"))])
    resumed = train_together([(config(2, 4), str(tmp_path / "resumed2")), (config(3, 4), str(tmp_path / "resumed3"))])
    assert [row["train/members"] for row in history(tmp_path / "resumed3")] == [1, 1, 1, 2]  # caught up, then together
    numbers = lambda metrics: {k: v for k, v in metrics.items() if not k.endswith("_s")}  # noqa: E731
    assert numbers(resumed[1]) == numbers(whole[1])
    for key, value in numbers(whole[0]).items():
        if isinstance(value, float):
            assert resumed[0][key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


# ---- the launcher ---------------------------------------------------------------------------------


STACKED = ("hydra/launcher=stacked", "model.latent_dim=2,3", "model.beta=0.5,1", *QUICK)


@pytest.fixture(scope="session")
def stacked_sweep(tmp_path_factory, vae_lab_command, data_root):
    sweep_dir = tmp_path_factory.mktemp("stacked") / "grid"
    run = sweep_runner(vae_lab_command, data_root, sweep_dir, *STACKED)
    return sweep_dir, run, run()


@pytest.mark.xdist_group("stacked_sweep")
def test_the_stacked_launcher_trains_a_grid_as_one_population(stacked_sweep):
    sweep_dir, _, first = stacked_sweep
    assert "Launching 4 jobs as 1 population (of 4)" in first.stdout + first.stderr
    rows = read_summary(sweep_dir)
    assert len(rows) == 4 and all(r["status"] == "complete" for r in rows)
    assert {(r["model.latent_dim"], r["model.beta"]) for r in rows} == {("2", "0.5"), ("2", "1"), ("3", "0.5"), ("3", "1")}
    for r in rows:
        run = RunDir(sweep_dir / r["run"])
        assert history(run.path)[0]["train/members"] == 4
        assert (run.path / ".hydra" / "overrides.yaml").is_file() and "epoch 2/2" in (run.path / "train.log").read_text()
        latent = int(r["model.latent_dim"])
        assert load_checkpoint(run.last_checkpoint)["model"]["decoder.0.weight"].shape == (latent, 64)
    assert first.stdout.strip().splitlines()[-1] == str(sweep_dir.resolve())


@pytest.mark.xdist_group("stacked_sweep")
def test_a_stacked_sweep_rerun_trains_nothing(stacked_sweep):
    sweep_dir, run, _ = stacked_sweep
    checkpoints, results = stamps(sweep_dir, "last.pt"), stamps(sweep_dir, "metrics.json")
    run()
    assert stamps(sweep_dir, "last.pt") == checkpoints and stamps(sweep_dir, "metrics.json") == results


@pytest.mark.xdist_group("stacked_sweep")
def test_a_killed_stacked_sweep_resumes_to_the_same_results(stacked_sweep, vae_lab_command, data_root, tmp_path):
    sweep_dir, run, _ = stacked_sweep
    broken = tmp_path / "broken"
    env = {**os.environ, "VAE_LAB_DATA": str(data_root)}
    process = subprocess.Popen([*vae_lab_command, "sweep", *STACKED, f"hydra.sweep.dir={broken}"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (broken / "3" / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # mid-training: no chance to tidy up
    process.wait()
    assert not all((broken / str(n) / "metrics.json").exists() for n in range(4)), "finished before the kill"
    run(directory=broken)
    for n in range(4):
        resumed = json.loads((broken / str(n) / "metrics.json").read_text())
        whole = json.loads((sweep_dir / str(n) / "metrics.json").read_text())
        for key in ("test/nelbo", "test/nll", "test/mse", "best_epoch"):
            assert resumed[key] == pytest.approx(whole[key], rel=1e-6), (n, key)


def test_runs_that_cannot_stack_run_alone_beside_a_population(vae_lab, tmp_path):
    sweep_dir = tmp_path / "mixed"
    result = vae_lab("sweep", "hydra/launcher=stacked", "model=continuous,semi", "seed=0,1", "model.latent_dim=2",
                     "data.n_labels=50", f"hydra.sweep.dir={sweep_dir}", *QUICK, "trainer.epochs=1")
    assert "as 3 populations (of 2, 1, 1)" in result.stdout + result.stderr  # two continuous runs; M2 cannot stack
    rows = read_summary(sweep_dir)
    assert len(rows) == 4 and all(r["status"] == "complete" for r in rows)


def test_stacked_evaluation_gives_each_model_its_own_numbers(train_config, monkeypatch):
    """On a GPU a population is evaluated in one stacked pass; here, forced, it must give what
    evaluating the models one by one gives."""
    import vae_lab.evaluate as evaluate
    from vae_lab.data import load_splits

    configs = [train_config(*QUICK, *member) for member in MEMBERS]
    splits = load_splits(configs[0].data)
    models = []
    for config in configs:
        torch.manual_seed(config.seed)
        models.append(build_model(config.model, config.backbone, splits.image_shape))
    alone = evaluate.final_metrics(models, splits, configs)
    monkeypatch.setattr(evaluate, "stack_evaluation", lambda device: True)
    stacked = evaluate.final_metrics(models, splits, configs)
    for mine, theirs in zip(stacked, alone):
        for key in ("test/nelbo", "test/kl", "test/nll", "test/mse", "test/ssim"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key


def test_a_population_runs_as_one_submitit_job(vae_lab, tmp_path):
    sweep_dir = tmp_path / "cluster"
    result = vae_lab("sweep", "hydra/launcher=stacked", "hydra.launcher.executor=submitit_local",
                     "hydra.launcher.submitit.timeout_min=10", "model.latent_dim=2,3", f"hydra.sweep.dir={sweep_dir}",
                     *QUICK, "trainer.epochs=1")
    jobs = [p for p in (sweep_dir / ".submitit").iterdir() if p.is_dir() and p.name.isdigit()]  # and its own "%j"
    assert len(jobs) == 1, "the two runs should be one submitit job"
    rows = read_summary(sweep_dir)
    assert len(rows) == 2 and all(r["status"] == "complete" for r in rows)
    assert all(history(sweep_dir / r["run"])[0]["train/members"] == 2 for r in rows)
    assert result.stdout.strip().splitlines()[-1] == str(sweep_dir.resolve())
