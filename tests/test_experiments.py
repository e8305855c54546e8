"""The write-ups' experiment configs compose into what they say, and `vae-lab reproduce` judges each
write-up's observation from the numbers (so a verdict can come out either way)."""

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vae_lab.compose import config_dir, store_schemas
from vae_lab.reproduce import QUICK_OVERRIDES, Measured, Missing, Runs, load_write_up, section, write_ups
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


LITERATURE_RECIPES = ("burda2016", "jointvae", "kingma2014_m2")  # experiment configs from papers, not from a write-up
WRITE_UPS = write_ups()
verdict_seed003 = load_write_up("seed003_latent_sizes").verdict
verdict_seed004 = load_write_up("seed004_latent_and_beta").verdict


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


def run(name: str, metrics: dict, seed: int = 0, **overrides: str) -> RunSummary:
    return RunSummary(name, Path("/nowhere") / name, {"seed": str(seed), **{f"model.{k}": v for k, v in overrides.items()}},
                      "complete", metrics)


def latent_sizes(mse: tuple, ssim: tuple, noise: float = 0.0) -> Runs:
    """Three seeds per latent size, each metric the given value plus -noise, 0, +noise."""
    return Runs([run(f"{d}-{seed}", {"test/mse": m + (seed - 1) * noise, "test/ssim": s, "test/psnr": 20.0}, seed,
                     latent_dim=d)
                 for seed in range(3) for d, m, s in zip(("2", "4", "16"), mse, ssim)])


def test_a_verdict_follows_the_numbers():
    assert verdict_seed003(latent_sizes((0.05, 0.03, 0.01), (0.6, 0.7, 0.9))).startswith("Holds")
    assert verdict_seed003(latent_sizes((0.05, 0.06, 0.01), (0.6, 0.7, 0.9))).startswith("Does not hold")


def test_a_verdict_holds_only_beyond_the_spread_over_seeds():
    assert verdict_seed003(latent_sizes((0.05, 0.03, 0.01), (0.6, 0.7, 0.9), noise=0.005)).startswith("Holds")
    assert verdict_seed003(latent_sizes((0.05, 0.03, 0.01), (0.6, 0.7, 0.9), noise=0.02)).startswith("Does not hold")


def test_measured_compares_beyond_both_standard_deviations():
    low, high = Measured((1.0, 2.0, 3.0)), Measured((2.5, 3.5, 4.5))  # means 2 and 3.5, sd 1 each
    assert not low.below(high) and not high.above(low)
    assert Measured((0.9, 1.0, 1.1)).below(Measured((1.9, 2.0, 2.1)))
    assert Measured((1.0,)).below(Measured((1.5,))) and Measured((1.0,)).sd == 0
    assert f"{Measured((0.5, 0.7)):%}" == "60.0 ± 14.1%" and f"{Measured((2.0, 4.0)):.1f}" == "3.0 ± 1.4"
    assert f"{Measured((0.5,)):%}" == "50.0%"


def test_a_selector_that_matches_two_configurations_is_missing_not_mixed():
    runs = Runs([run("a", {"test/mse": 0.1}, latent_dim="2", beta="1"),
                 run("b", {"test/mse": 0.2}, latent_dim="2", beta="4")])
    with pytest.raises(Missing):
        runs.get("test/mse", latent_dim="2")
    assert runs.get("test/mse", latent_dim="2", beta="4").values == (0.2,)


def test_quick_mode_runs_one_seed_of_each_configuration():
    """`seed=0` on the command line replaces the seeds an experiment's sweep lists."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from vae_lab.preflight import grid

    params = ["seed=0,1,2", "model.latent_dim=2,4,16"]
    overrides = OverridesParser.create().parse_overrides([*params, *QUICK_OVERRIDES])
    jobs = grid(overrides)
    assert len(jobs) == 3 and all("seed=0" in job for job in jobs)


def test_quick_mode_keeps_each_recipes_importance_samples(train_config):
    """The U-Net recipe skips the NLL (a million U-Net passes per run); quick mode must not bring it back."""
    assert train_config("experiment=seed003_latent_sizes", *QUICK_OVERRIDES).eval.is_samples == 0
    for write_up in WRITE_UPS:
        assert train_config(f"experiment={write_up.experiment}", *QUICK_OVERRIDES).eval.is_samples <= 100


def test_seed000s_verdict_names_the_coordinates_that_control_hue_and_digit(tmp_path):
    import json

    def model_runs(model: str, probe: float, nelbo: float, **extra: str) -> list[RunSummary]:
        found = []
        for seed in range(3):
            metrics = {"test/probe_acc": 0.95, "test/color_probe_acc": probe + 0.01 * seed, "test/nelbo": nelbo,
                       "test/hue_control": 90.0, "test/hue_control_digit_change": 0.05,
                       "test/digit_control": 0.6, "test/digit_control_hue_change": 4.0}
            path = tmp_path / f"{model}{''.join(extra.values())}-{seed}"
            path.mkdir(exist_ok=True)
            (path / "metrics.json").write_text(json.dumps({**metrics, "test/hue_control_by": "z7",
                                                           "test/digit_control_by": "z2"}))
            found.append(RunSummary(path.name, path, {"seed": str(seed), "model": model, **extra}, "complete", metrics))
        return found

    verdict = load_write_up("seed000_three_latents").verdict
    for probe, holds in ((0.95, "Holds"), (0.5, "Does not hold")):
        runs = Runs([*model_runs("continuous", probe, 270.0), *model_runs("discrete", probe, 300.0),
                     *model_runs("combined", probe, 260.0), *model_runs("combined", probe, 262.0,
                                                                         **{"model.share_encoder": "False"})])
        text = verdict(runs)
        assert text.startswith(holds), text
        assert "(z7 in the first seed) turns the hue by 90 ± 0 degrees" in text and "(z2)" in text
        assert "the combined model beats the continuous one" in text


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
    unfinished = runs.all[-1]
    runs.all[-1] = RunSummary(unfinished.name, unfinished.path, unfinished.overrides, "incomplete (3/10 epochs)", {})
    with pytest.raises(Missing, match="incomplete"):  # one seed short: not judged on the other two
        verdict_seed003(runs)
    runs.all.pop()
    with pytest.raises(Missing):  # a configuration with no run at all
        verdict_seed003(Runs([r for r in runs.all if r.overrides["model.latent_dim"] != "16"]))
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
    assert (config.trainer.lr, config.trainer.batch_size, config.trainer.start_at_mean_image) == (5e-4, 64, False)
    assert model.temperature == model.temperature_min == 0.67
    # Captions name what weighs the KL: the capacity targets, not beta, which they replace.
    assert "capacity control to 5 and 5 nats, gamma 30" in model.summary() and "beta" not in model.summary()


def test_the_burda_recipe_is_their_one_layer_vae_on_dynamically_binarized_mnist(train_config):
    config = train_config("experiment=burda2016")
    assert (config.model.name, config.model.latent_dim, list(config.backbone.hidden)) == ("continuous", 50, [200, 200])
    assert (config.data.name, config.data.binarize) == ("mnist", "dynamic")
    assert (config.trainer.batch_size, config.trainer.lr, config.eval.is_samples) == (20, 1e-3, 5000)


def test_reproduce_checks_its_overrides_before_anything_trains(tmp_path, capsys):
    """An override for every sweep (`vae-lab reproduce hydra/launcher=joblib`) is composed into every
    job first: a bad one ends the command with one line and exit 2, and nothing is written."""
    from vae_lab.reproduce import main

    with pytest.raises(SystemExit) as stopped:
        main(["model.beta=-1", "--only", "seed001_conv_semi", "--outputs", str(tmp_path / "outputs"),
              "--docs", str(tmp_path / "docs")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == "vae-lab: error: model.beta=-1.0: expected a number >= 0"
    assert list(tmp_path.iterdir()) == []


def test_the_kingma_recipe_is_m2_with_100_labels_on_the_mlp(train_config):
    config = train_config("experiment=kingma2014_m2")
    assert (config.model.name, config.model.variant, config.backbone.name) == ("semi", "m2", "mlp")
    assert (config.data.n_labels, config.model.beta, config.model.alpha, config.trainer.epochs) == (100, 2.0, 50.0, 100)


@pytest.mark.parametrize("complete_before, complete_after, counted", [(9, 9, False), (7, 9, True)])
def test_reproduce_counts_its_time_only_when_it_finished_runs(tmp_path, monkeypatch, complete_before,
                                                              complete_after, counted):
    """A rerun over finished sweeps re-reads them; its seconds are not the write-up's cost."""
    from vae_lab import reproduce

    counts = iter([complete_before, complete_after])
    monkeypatch.setattr(reproduce, "_complete_runs", lambda write_up, folder: next(counts))
    monkeypatch.setattr(reproduce.subprocess, "run", lambda *args, **kwargs: None)
    monkeypatch.setattr(reproduce, "summarize", lambda folder: folder)
    clock = itertools.count(step=30.0)  # every reading of the clock half a minute after the last
    monkeypatch.setattr(reproduce.time, "perf_counter", lambda: next(clock))
    folder = tmp_path / "seed004"
    folder.mkdir()
    (folder / reproduce.SPENT_FILE).write_text("600.0\n")
    reproduce.run_write_up(load_write_up("seed004_latent_and_beta"), folder, [])
    assert (reproduce.seconds_spent(folder) > 600.0) == counted
