"""Hydra wiring: every schema into Hydra's ConfigStore (every model and backbone registered with
its own), the config folder, and composing typed configs. config.py below it holds the schemas and
their checks, and knows neither Hydra nor any model.
"""

import os
import re
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from vae_lab.backbones import BACKBONES
from vae_lab.config import (DataConfig, EvalConfig, EvalRunConfig, LossConfig, TrainConfig, TrainerConfig,
                            validate)
from vae_lab.models import MODELS  # every model type, registered as its module is imported


def store_schemas() -> None:
    """Put every schema into Hydra's ConfigStore, each registered model's and backbone's too (under
    ``schema/<group>/<name>``, which ``conf/<group>/<name>.yaml`` extends); must run before composing."""
    store = ConfigStore.instance()
    for group, schema in (("data", DataConfig), ("trainer", TrainerConfig), ("eval", EvalConfig),
                          ("loss", LossConfig)):
        store.store(group=f"schema/{group}", name="base", node=schema)
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="evaluate_schema", node=EvalRunConfig)
    for registry in (MODELS, BACKBONES):
        for name in registry.names():
            store.store(group=f"schema/{registry.group}", name=name, node=registry.schema(name))


def config_dir() -> Path:
    """Where the YAML configs are: inside the installed package, or conf/ in a source checkout."""
    packaged = Path(__file__).with_name("conf")
    return packaged if (packaged / "train.yaml").is_file() else Path(__file__).parents[1] / "conf"


def typed(cfg: DictConfig) -> Any:
    """The composed config as typed dataclasses, every declared check passed. A key the schemas do
    not have (``+model.foo=1``: Hydra adds it, and typing would silently drop it) is refused."""
    from vae_lab.config import as_dict
    from vae_lab.errors import ConfigError, no_such_key
    from vae_lab.runs import flatten

    config = OmegaConf.to_object(cfg)
    given, known = flatten(OmegaConf.to_container(cfg, resolve=False)), list(flatten(as_dict(config)))
    for key in given.keys() - set(known):
        raise ConfigError(key, given[key], no_such_key(key, known))
    validate(config)
    return config


def job_config(cfg: DictConfig, hydra_config: Any) -> TrainConfig:
    """The typed config of one training job Hydra runs: threads shared out among the jobs a
    launcher runs side by side, and in a sweep the sweep's folder (trackers nest its runs under it)."""
    from hydra.types import RunMode

    config = typed(cfg)
    if config.trainer.threads is None:
        config.trainer.threads = threads_per_job(hydra_config.launcher)
    if hydra_config.mode == RunMode.MULTIRUN:
        config.logger.sweep = str(Path(hydra_config.sweep.dir).resolve())
    return config


def threads_per_job(launcher: Any) -> Optional[int]:
    """Torch threads for one job, so that parallel jobs x threads never exceed the cores: the joblib
    launcher's jobs share this machine's cores; a submitit job gets its cpus_per_task, and a SLURM
    job the cores SLURM gave it (a node may run other jobs on the rest)."""
    if launcher.get("n_jobs"):
        return max(1, (os.cpu_count() or 1) // jobs_at_once(launcher))
    given = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE")
    return launcher.get("cpus_per_task") or (int(given) if given and given.isdigit() else None)


def jobs_at_once(launcher) -> int:
    """How many jobs the launcher runs side by side on this machine: joblib's n_jobs (-1: one per core)."""
    if not launcher.get("n_jobs"):
        return 1
    cores = os.cpu_count() or 1
    return max(1, launcher.n_jobs if launcher.n_jobs > 0 else cores + 1 + launcher.n_jobs)


def train_config_from_dict(values: dict, source: Optional[Path] = None) -> TrainConfig:
    """Re-type a training config saved by :func:`as_dict` (a run folder's config.yaml, or a
    checkpoint's record of it: ``source``, named if it no longer makes a config). Keys added to
    vae-lab after the run was made take today's defaults for the same model, backbone and data."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vae_lab.errors import DamagedFile, one_line

    values = _renamed_keys(values)
    choices = [f"{group}={values[group]['name']}" for group in ("model", "backbone", "data")]
    try:
        if GlobalHydra.instance().is_initialized():  # inside a vae-lab command: the search path is set
            defaults = compose("train", overrides=choices)
        else:
            store_schemas()
            with initialize_config_dir(str(config_dir()), version_base="1.3"):
                defaults = compose("train", overrides=choices)
        return OmegaConf.to_object(OmegaConf.merge(defaults, values))  # checked when it was trained
    except (HydraException, OmegaConfBaseException) as error:
        if source is None:
            raise
        raise DamagedFile(source, f"it no longer makes a vae-lab config: {one_line(error)}",
                          "it was edited; the run's checkpoints hold the config it was trained with") from None


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


# Overrides whose value is a folder: a path may hold anything a filesystem takes (letters of any script,
# spaces, `=`), which Hydra's grammar reads only when quoted; vae-lab quotes them for the user.
PATH_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "run_dir", "data.root", "data_root")


def quote_paths(args: list[str]) -> list[str]:
    """``args`` with every folder-valued override (:data:`PATH_KEYS`) that Hydra's grammar cannot
    read as typed quoted for it; one it reads (plain, already quoted, or a list to sweep) is kept."""
    def quoted(arg: str) -> str:
        key, _, value = arg.partition("=")
        if key not in PATH_KEYS or not value:
            return arg
        try:
            OverridesParser.create().parse_override(arg)
            return arg
        except Exception:  # noqa: BLE001  the grammar's own errors
            return f"{key}={hydra_value(value)}"

    return [quoted(arg) for arg in args]


def hydra_value(value: str) -> str:
    """``value`` as Hydra's override grammar reads it back unchanged: as it is where it can, else
    single-quoted, with quotes, the backslashes before them and ``${`` escaped (a folder may be named
    with anything a filesystem takes: letters of any script, ``=``, ``,``, quotes, brackets)."""
    try:
        if OverridesParser.create().parse_override(f"key={value}").value() == value and "${" not in value:
            return value
    except Exception:  # noqa: BLE001  the grammar's own errors: quote it
        pass
    escaped = re.sub(r"(\\+)(?='|$)", r"\1\1", value).replace("'", "\\'").replace("${", "\\${")
    return f"'{escaped}'"
