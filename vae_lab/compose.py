"""Hydra wiring, at the top of vae-lab: every schema into Hydra's ConfigStore (which needs every
model and backbone imported), the config folder, and composing typed configs. config.py below it
holds the schemas and their checks and imports nothing that knows a model.
"""

from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from vae_lab.config import (DataConfig, EvalConfig, EvalRunConfig, LossConfig, TrainConfig, TrainerConfig,
                            validate)


def store_schemas() -> None:
    """Put every schema into Hydra's ConfigStore; must run before composing."""
    store = ConfigStore.instance()
    for group, schema in (("data", DataConfig), ("trainer", TrainerConfig), ("eval", EvalConfig),
                          ("loss", LossConfig)):
        store.store(group=f"schema/{group}", name="base", node=schema)
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="evaluate_schema", node=EvalRunConfig)
    # Models and backbones register their own schemas when imported.
    import vae_lab.backbones  # noqa: F401
    import vae_lab.models  # noqa: F401


def config_dir() -> Path:
    """Where the YAML configs are: inside the installed package, or conf/ in a source checkout."""
    packaged = Path(__file__).with_name("conf")
    return packaged if (packaged / "train.yaml").is_file() else Path(__file__).parents[1] / "conf"


def typed(cfg: DictConfig) -> Any:
    """The composed config as typed dataclasses, every declared check passed."""
    config = OmegaConf.to_object(cfg)
    validate(config)
    return config


def train_config_from_dict(values: dict) -> TrainConfig:
    """Re-type a training config saved by :func:`as_dict` (a run folder's config.yaml). Keys added to
    vae-lab after the run was made take today's defaults for the same model, backbone and data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    values = _renamed_keys(values)
    choices = [f"{group}={values[group]['name']}" for group in ("model", "backbone", "data")]
    if GlobalHydra.instance().is_initialized():  # inside a vae-lab command: the search path is set
        defaults = compose("train", overrides=choices)
    else:
        store_schemas()
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            defaults = compose("train", overrides=choices)
    return OmegaConf.to_object(OmegaConf.merge(defaults, values))  # checked when it was trained


def _renamed_keys(values: dict) -> dict:
    """A saved config with keys renamed since it was made: ``trainer.amp`` (bf16 autocast, on CUDA
    only) became ``trainer.precision``."""
    trainer = dict(values.get("trainer", {}))
    if "amp" in trainer:
        amp = trainer.pop("amp")
        trainer.setdefault("precision", "bf16" if amp and trainer.get("device") == "cuda" else "fp32")
        values = {**values, "trainer": trainer}
    return values


def train_config(overrides: list[str] = ()) -> TrainConfig:
    """The typed, checked config that `vae-lab train OVERRIDES...` would use (outside a command)."""
    from hydra import compose, initialize_config_dir

    store_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return typed(compose("train", overrides=list(overrides)))
