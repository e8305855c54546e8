import dataclasses

import pytest
from omegaconf import OmegaConf

from vae_lab.backbones import BACKBONES
from vae_lab.config import DATA_ROOT_ENV, ConfigError, TrainConfig, as_dict, validate
from vae_lab.compose import config_dir, train_config_from_dict
from vae_lab.models import MODELS


def test_every_group_option_has_a_yaml_and_every_yaml_an_implementation():
    for group, registry in (("model", MODELS), ("backbone", BACKBONES)):
        files = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
        assert files == registry.names(), group


@pytest.mark.parametrize("model", MODELS.names())
@pytest.mark.parametrize("backbone", BACKBONES.names())
@pytest.mark.parametrize("data", ["mnist", "color_mnist"])
def test_every_combination_composes_into_typed_configs(train_config, model, backbone, data):
    config = train_config(f"model={model}", f"backbone={backbone}", f"data={data}")
    assert isinstance(config, TrainConfig)
    assert (config.model.name, config.backbone.name, config.data.name) == (model, backbone, data)
    assert type(config.model) is MODELS.schema(model)


@pytest.mark.parametrize("override, key", [
    ("model.latent_dim=0", "model.latent_dim"),
    ("model.beta=-1", "model.beta"),
    ("model.obs_std=0", "model.obs_std"),
    ("model.likelihood=laplace", "model.likelihood"),
    ("trainer.batch_size=0", "trainer.batch_size"),
    ("trainer.epochs=0", "trainer.epochs"),
    ("trainer.lr=-0.1", "trainer.lr"),
    ("trainer.grad_clip=0", "trainer.grad_clip"),
    ("data.val_fraction=1.0", "data.val_fraction"),
    ("data.binarize=yes", "data.binarize"),
    ("data.hue_bins=1", "data.hue_bins"),
    ("data.image_size=4", "data.image_size"),
    ("data.n_train=0", "data.n_train"),
    ("backbone.hidden=[400,0]", "backbone.hidden"),
])
def test_each_bad_value_is_named_by_its_key(train_config, override, key):
    with pytest.raises(ConfigError) as error:
        train_config(override)
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}=")


def test_data_root_defaults_to_the_environment_variable_then_to_a_local_folder(monkeypatch):
    from hydra import compose, initialize_config_dir

    monkeypatch.setenv(DATA_ROOT_ENV, "/somewhere/mnist")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        assert compose("train").data.root == "/somewhere/mnist"
        monkeypatch.delenv(DATA_ROOT_ENV)
        assert compose("train").data.root == "./data"


def test_a_saved_config_types_back_to_the_same_config(train_config):
    config = train_config("data=color_mnist", "backbone=conv", "model.latent_dim=3")
    again = train_config_from_dict(as_dict(config))
    assert again == config and type(again.model) is type(config.model)


def test_cross_checks_are_reported_under_their_group():
    @dataclasses.dataclass
    class Part:
        low: int = 1
        high: int = 0

        def cross_check(self):
            if self.high < self.low:
                raise ConfigError("high", self.high, f"must be >= low ({self.low})")

    @dataclasses.dataclass
    class Whole:
        part: Part = dataclasses.field(default_factory=Part)

    with pytest.raises(ConfigError, match=r"^part.high=0: must be >= low \(1\)$"):
        validate(Whole())


def test_the_yaml_configs_are_complete():
    """No value left MISSING in a default composition (every key has a documented default)."""
    from hydra import compose, initialize_config_dir

    from vae_lab.compose import store_schemas

    store_schemas()  # the schemas the yaml files extend; registered here too, for a run of this test alone
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["data.root=/x"])
    assert OmegaConf.missing_keys(cfg) == set()


def test_eval_estimates_the_likelihood_with_ten_times_the_samples_of_training():
    """100 importance samples after `train` (cheap, docs/findings/performance.md), 1000 in `vae-lab eval`."""
    from hydra import compose, initialize_config_dir

    from vae_lab.compose import store_schemas

    store_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        after_training = compose("train", overrides=["data.root=/x"]).eval.is_samples
        in_eval = compose("evaluate", overrides=["run_dir=/x"]).eval.is_samples
    assert (after_training, in_eval) == (100, 1000)
