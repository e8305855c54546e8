"""The write-ups' experiment configs compose into what they say, and `vae-lab reproduce` judges each
write-up's observation from the numbers (so a verdict can come out either way)."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vae_lab.compose import config_dir, store_schemas
from vae_lab.reproduce import WRITE_UPS, Missing, Runs, section, verdict_seed003, verdict_seed004
from vae_lab.sweep import RunSummary


def sweep_jobs(experiment: str) -> list[list[str]]:
    """Every job of `vae-lab sweep experiment=NAME`: the base overrides times the config's sweep."""
    from itertools import product

    store_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        base = compose("train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = base.hydra.sweeper.params
    choices = [[f"{key}={value}" for value in str(values).split(",")] for key, values in params.items()]
    return [[f"experiment={experiment}", *job] for job in product(*choices)]


LITERATURE_RECIPES = ("jointvae",)  # experiment configs from papers, not from a write-up


def test_every_experiment_config_has_a_write_up_and_the_other_way_round():
    configs = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
    assert configs == sorted([w.experiment for w in WRITE_UPS] + list(LITERATURE_RECIPES))
    specialized = {p.stem.rsplit("_", 1)[0] for p in (config_dir() / "experiment_model").glob("*.yaml")}
    assert specialized <= set(configs), "experiment_model/ files are named <experiment>_<model>"


@pytest.mark.parametrize("write_up", WRITE_UPS, ids=lambda w: w.experiment)
def test_every_job_of_every_write_up_composes_into_a_valid_config(train_config, write_up):
    jobs = sweep_jobs(write_up.experiment)
    assert len(jobs) >= 2
    for job in jobs:
        train_config(*job)
    for overrides in write_up.extra_runs.values():
        train_config(f"experiment={write_up.experiment}", *overrides)


def test_seed002_sets_the_write_ups_hyperparameters_for_each_model(train_config):
    for model in ("continuous", "discrete", "both"):
        config = train_config("experiment=seed002_fc_color", f"model={model}")
        assert (config.data.name, config.trainer.lr, config.trainer.epochs, config.trainer.batch_size) == (
            "color_mnist", 1e-3, 20, 28)
        if model != "continuous":
            assert (config.model.n_vars, config.model.n_cats, config.model.temperature,
                    config.model.anneal_rate) == (3, 20, 1.0, 0.0)
        if model != "discrete":
            assert config.model.latent_dim == 2
    assert train_config("experiment=seed002_fc_color", "model=discrete").backbone.hidden == [512, 256]


def test_seed001s_semi_model_is_the_classifier_on_the_latent(train_config):
    config = train_config("experiment=seed001_conv_semi", "model=semi")
    assert (config.model.variant, config.model.latent_dim, len(config.backbone.channels)) == (
        "latent_classifier", 2, 3)


def run(name: str, metrics: dict, **overrides: str) -> RunSummary:
    return RunSummary(name, Path("/nowhere") / name, {f"model.{k}": v for k, v in overrides.items()},
                      "complete", metrics)


def latent_sizes(mse: tuple, ssim: tuple) -> Runs:
    return Runs([run(str(i), {"test/mse": m, "test/ssim": s, "test/psnr": 20.0}, latent_dim=d)
                 for i, (d, m, s) in enumerate(zip(("2", "4", "16"), mse, ssim))])


def test_a_verdict_follows_the_numbers():
    assert verdict_seed003(latent_sizes((0.05, 0.03, 0.01), (0.6, 0.7, 0.9))).startswith("Holds")
    assert verdict_seed003(latent_sizes((0.05, 0.06, 0.01), (0.6, 0.7, 0.9))).startswith("Does not hold")


def test_seed004s_verdict_judges_each_of_its_three_claims():
    def runs(beta0_fd: float) -> Runs:
        metrics = {("2", "1"): (0.05, 500, 2.0), ("64", "0"): (0.01, beta0_fd, 2.2),
                   ("64", "1"): (0.02, 200, 2.2), ("64", "10"): (0.06, 300, 1.5)}
        return Runs([run(f"{d}-{b}", {"test/mse": m, "samples/fd": fd, "samples/class_entropy": h,
                                      "test/knn_acc": 0.9 if d == "64" else 0.7}, latent_dim=d, beta=b)
                     for (d, b), (m, fd, h) in metrics.items()])

    assert verdict_seed004(runs(beta0_fd=900)).startswith("Holds:")
    assert verdict_seed004(runs(beta0_fd=100)).startswith("Holds in part")


def test_a_missing_run_is_reported_not_judged(tmp_path):
    runs = latent_sizes((0.05, 0.03, 0.01), (0.6, 0.7, 0.9))
    runs.all.pop()
    with pytest.raises(Missing):
        verdict_seed003(runs)
    write_up = next(w for w in WRITE_UPS if w.experiment == "seed003_latent_sizes")
    text = "\n".join(section(write_up, tmp_path, [], tmp_path / "docs"))
    assert "Not measured" in text and "not drawn" in text


def test_reproduce_only_rewrites_its_own_section_and_figures(tmp_path):
    """`vae-lab reproduce --only X` leaves the other write-ups' sections and figures as they were."""
    from vae_lab.reproduce import write_results

    docs = tmp_path / "docs"
    first, second = WRITE_UPS[0], WRITE_UPS[4]
    kept_figure = docs / "results" / first.experiment / "sweep_montage.png"
    kept_figure.parent.mkdir(parents=True)
    kept_figure.write_bytes(b"an earlier figure")
    stale_figure = docs / "results" / second.experiment / "old.png"
    stale_figure.parent.mkdir(parents=True)
    stale_figure.write_bytes(b"replaced")
    kept = [f"## {first.title}", "", "**Here:** holds, as measured last week.", "", "![m](results/x.png)", ""]
    (docs / "results.md").write_text("\n".join(["# The write-ups, rerun", "", "old header", "", *kept,
                                                f"## {second.title}", "", "old verdict", ""]))
    empty = tmp_path / "outputs" / second.experiment
    empty.mkdir(parents=True)
    write_results(docs, {second.experiment: empty}, [], quick=True, only={second.experiment})
    text = (docs / "results.md").read_text()
    assert "\n".join(kept) in text and "old verdict" not in text and "Not measured" in text
    assert text.index(first.title) < text.index(second.title)
    assert kept_figure.read_bytes() == b"an earlier figure" and not stale_figure.exists()


def test_the_jointvae_recipe_is_dupont_2018(train_config):
    config = train_config("experiment=jointvae")
    model, capacity = config.model, config.model.capacity
    assert (model.name, model.latent_dim, model.n_vars, model.n_cats) == ("combined", 10, 1, 10)
    assert (capacity.enabled, capacity.gamma, capacity.continuous_max, capacity.discrete_max, capacity.steps) == (
        True, 30.0, 5.0, 5.0, 25000)
    assert (config.trainer.lr, config.trainer.batch_size) == (5e-4, 64)
    assert model.temperature == model.temperature_min == 0.67
