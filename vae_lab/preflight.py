"""Every check made before a command writes anything.

Two levels, both before the first write:

- the command line (:func:`check_command`): every job a command asks for is composed and typed, the
  folder it will write is resolved (and for a sweep, checked against the grid that made it), the data
  is there or fetched once, so a bad value ends the command with one line and exit status 2, with
  nothing written;
- one run (:func:`check_run`): the folder (another run in it, a resume that matches), the data, the
  model's memory, the trackers' packages, the VGG weights, the metric a sweeper asked for.

What a check refuses is a :class:`vae_lab.errors.UserError`; the CLI prints it as one line.
"""

import dataclasses
import itertools
import logging
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vae_lab.errors import ConfigError, DamagedFile, UserError

log = logging.getLogger(__name__)

BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and Adam's two moments


# ---- the command line ---------------------------------------------------------------------------


@dataclass
class Plan:
    """What a command will do, checked: its Hydra arguments, and the folder it writes, if known
    before Hydra starts (given by ``folder_key``, which the arguments then set to that very path)."""

    args: list[str]
    folder: Optional[Path] = None
    folder_key: Optional[str] = None
    jobs: int = 0  # a sweep's jobs, when known before it starts (the basic sweeper's grid)
    epochs: int = 0  # of each job
    at_once: int = 1  # jobs the launcher runs side by side (joblib's n_jobs)
    grid: list[list[str]] = dataclasses.field(default_factory=list)  # a basic sweep's jobs' overrides

    @property
    def sweep(self) -> bool:
        return self.folder_key == "hydra.sweep.dir"


def parse_hydra_arguments(args: list[str]):
    # Hydra 1.3 has no public parser for its own command line; hydra.main uses this one.
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_args(args)


def check_command(config_name: str, args: list[str]) -> Plan:
    """Compose and check every job the command line asks for, and the folder it will write; raise a
    UserError on the first problem.

    In a multirun the jobs are those of the basic sweeper: the command line's own sweeps together
    with any ``hydra.sweeper.params`` a config defines (``sweep=...``). Other sweepers (Optuna) choose
    their jobs as they go: their base configuration is checked.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from vae_lab.compose import config_dir, jobs_at_once, typed
    from vae_lab.errors import closest, missing_key, one_line

    parsed = parse_hydra_arguments(args)
    if parsed.help or parsed.hydra_help or parsed.info or parsed.shell_completion:
        return Plan([a for a in args if a != "--multirun"])  # Hydra takes one mode at a time
    if parsed.config_path or parsed.config_dir or parsed.config_name:
        return Plan(args)  # a config tree of the user's own: the jobs check themselves as they start
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            jobs = [parsed.overrides]
            parser = OverridesParser.create()
            given = parser.parse_overrides(parsed.overrides)
            plain = [o.input_line for o in given if not o.is_sweep_override()]
            base = compose(config_name, overrides=plain, return_hydra_config=True)
            basic_sweeper = base.hydra.sweeper._target_.endswith("BasicSweeper")
            optuna_study = base.hydra.sweeper._target_.endswith("OptunaStudySweeper")
            refuse_hydras_slurm_launcher(base.hydra.launcher)
            if parsed.multirun:
                jobs = [plain]
                if basic_sweeper:
                    named = {o.key_or_group for o in given}
                    from_config = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items()
                                   if key not in named]
                    jobs = grid(given + parser.parse_overrides(from_config))
            configs = [typed(compose(config_name, overrides=job)) for job in jobs]
            if parsed.cfg and parsed.multirun:
                print_jobs(config_name, jobs, parsed.cfg, parsed.resolve)
                sys.exit(0)
            if parsed.cfg:
                return Plan(args)  # prints the config; writes nothing
            refuse_missing_data(configs)
            plan = folder_plan(config_name, args, parsed.multirun, base)
            if parsed.multirun and basic_sweeper:
                plan.grid = jobs
            if parsed.multirun and basic_sweeper and plan.folder is not None:
                refuse_another_grid(plan.folder, jobs)
                plan.jobs, plan.epochs = len(jobs), int(base.trainer.epochs)
                plan.at_once = jobs_at_once(base.hydra.launcher)
            elif parsed.multirun and optuna_study and plan.folder is not None:
                plan.jobs, plan.epochs = int(base.hydra.sweeper.n_trials), int(base.trainer.epochs)  # trial k: folder k
            return plan
    except (HydraException, OmegaConfBaseException) as error:
        unknown = missing_key(error)
        if unknown is None:
            raise UserError(one_line(error)) from None
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            known = known_keys(config_name, parsed.overrides)
        raise UserError(f"{unknown}: no such key; the closest is {closest(unknown, known)}") from None


def refuse_hydras_slurm_launcher(launcher) -> None:
    """Hydra's own SLURM launcher lets a dead job end the sweep in a traceback, trains on after
    SIGTERM and never requeues; vae-lab's takes the same settings and does neither."""
    if str(launcher.get("_target_", "")).startswith("hydra_plugins.hydra_submitit_launcher.submitit_launcher.Slurm"):
        raise UserError("hydra/launcher=submitit_slurm: use hydra/launcher=slurm, vae-lab's SLURM launcher, which "
                        "takes the same settings and also stops a cancelled job at once, requeues one at its time "
                        "limit and reports one that died (docs/guide/sweeps.md)")


def refuse_missing_data(configs: list) -> None:
    """MNIST is under every job's data.root, or is fetched there now, once: otherwise each job of a
    sweep would fail on its own after its folder was written, and jobs downloading side by side
    would write the same files."""
    from vae_lab.data.mnist import RAW_FILES, read_mnist

    data = [c.data for c in configs if hasattr(c, "data")]  # eval's come from its run folder
    for root, download in sorted({(str(d.root), bool(d.download)) for d in data}):
        raw = Path(root).expanduser().resolve() / "MNIST" / "raw"
        if not all((raw / name).is_file() for name in RAW_FILES):
            for train in (True, False):
                read_mnist(root, train=train, download=download)


def known_keys(config_name: str, overrides: list[str]) -> list[str]:
    """Every dotted key of the config that the command line's group choices (model=..., data=...,
    experiment=...) compose, for naming the closest to one that does not exist."""
    from hydra import compose
    from omegaconf import OmegaConf

    from vae_lab.runs import flatten

    choices = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0] and not o.startswith(("+", "~"))
               and "," not in o]
    try:
        config = compose(config_name, overrides=choices)
    except Exception:  # noqa: BLE001  a choice that does not compose either: the defaults' keys
        config = compose(config_name)
    return list(flatten(OmegaConf.to_container(config, resolve=False)))


def grid(overrides: list) -> list[list[str]]:
    """The jobs of Hydra's basic sweeper: every combination of the swept values, in its order (the
    last value given for a key wins, as the basic sweeper has it)."""
    from hydra.errors import HydraException

    choices: dict[str, list[str]] = {}
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise HydraException(f"the basic sweeper does not sweep {override.input_line}: give a list of "
                                     "values (a range or an interval needs hydra/sweeper=optuna)")
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*choices.values())]


def print_jobs(config_name: str, jobs: list[list[str]], part: str, resolve: bool) -> None:
    """``vae-lab sweep --cfg job|hydra|all``: the config of every job the sweep would run (Hydra's own
    --cfg takes no --multirun)."""
    from hydra import compose
    from omegaconf import OmegaConf

    for number, job in enumerate(jobs):
        config = compose(config_name, overrides=job, return_hydra_config=part != "job")
        if part == "hydra":
            config = OmegaConf.create({"hydra": config.hydra})
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(OmegaConf.to_yaml(config, resolve=resolve and part == "job"))


def folder_plan(config_name: str, args: list[str], multirun: bool, base) -> Plan:
    """The folder the command writes, resolved now and handed to Hydra as the same absolute path
    (so a timestamped default names one folder, claimed before Hydra writes into it)."""
    from vae_lab.runs import RunDir

    if config_name == "evaluate":
        return Plan([*args], RunDir.open(base.run_dir, key="run_dir").path, "run_dir")
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = Path(str(base.hydra.sweep.dir if multirun else base.hydra.run.dir)).expanduser().resolve()
    except Exception:  # noqa: BLE001  a folder named by runtime values (${hydra.job.num}, ...): the job claims it
        return Plan(args)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{key}={folder} is a file, not a folder: choose a folder for the "
                        f"{'sweep' if multirun else 'run'}")
    return Plan([a for a in args if not a.startswith(f"{key}=")] + [f"{key}={hydra_value(str(folder))}"], folder, key)


def hydra_value(value: str) -> str:
    """``value`` as Hydra's override grammar reads it back unchanged: as it is where it can, else
    single-quoted, with quotes, the backslashes before them and ``${`` escaped (a folder may be named
    with anything a filesystem takes: letters of any script, ``=``, ``,``, quotes, brackets)."""
    import re

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        if OverridesParser.create().parse_override(f"key={value}").value() == value and "${" not in value:
            return value
    except Exception:  # noqa: BLE001  the grammar's own errors: quote it
        pass
    escaped = re.sub(r"(\\+)(?='|$)", r"\1\1", value).replace("'", "\\'").replace("${", "\\${")
    return f"'{escaped}'"


def refuse_another_grid(sweep_dir: Path, jobs: list[list[str]]) -> None:
    """A sweep folder is rerun with the grid that made it (to resume it), never with another one:
    its job folders are numbered by position in the grid, so another grid would put new settings
    into old runs' folders. What a resume may change (vae_lab/runs.py, RESUMABLE) may differ."""
    from omegaconf import OmegaConf

    from vae_lab.runs import RESUMABLE, differences

    def settings(overrides: list[str]) -> dict[str, str]:
        return dict(o.split("=", 1) for o in overrides if "=" in o)

    for number, job in enumerate(jobs):
        saved = sweep_dir / str(number) / ".hydra" / "overrides.yaml"
        if not saved.is_file():
            continue
        try:
            before = settings(OmegaConf.to_container(OmegaConf.load(saved)))
        except Exception:  # noqa: BLE001
            raise UserError(f"{saved} cannot be read: the sweep in {sweep_dir} cannot be resumed; "
                            "give a new hydra.sweep.dir") from None
        now = settings(job)
        found = differences(before, now, RESUMABLE)
        if found:
            show = lambda side: " ".join(f"{key}={value}" if value is not None else f"{key} unset"  # noqa: E731
                                         for key, value in side)
            raise UserError(f"hydra.sweep.dir={sweep_dir} holds a sweep over another grid: its job {number} ran with "
                            f"{show((k, b) for k, b, _ in found)}, this command's job {number} has "
                            f"{show((k, n) for k, _, n in found)}. Rerun that folder with "
                            "its own grid to resume it, or give a new hydra.sweep.dir")


# ---- one run ------------------------------------------------------------------------------------


@dataclass
class PreviousRun:
    """What an earlier run left in the folder, found only when it may be continued."""

    data: Optional[dict]  # the data fingerprint it was trained on (None: not recorded)
    checkpoint: Optional[dict]  # checkpoints/last.pt, or None when no epoch had finished
    final_metrics: Optional[dict]  # metrics.json when the run is complete with these very settings

    @property
    def finished(self) -> bool:
        return self.final_metrics is not None


@dataclass
class Ready:
    """A run that passed every check: its model, built as a standalone run builds it, and the
    checkpoint it continues from (None: it starts afresh)."""

    model: object
    checkpoint: Optional[dict]


def check_run(config, run, splits, device) -> "dict | Ready":
    """Every check of one run before its first write. Returns the final metrics of a run that is
    complete already (nothing to train), else the run made :class:`Ready`."""
    from vae_lab.models import build_model
    from vae_lab.runs import refuse_other_data

    previous = previous_run(run, config, device)
    if previous is not None:
        refuse_other_data(run, previous.data, splits.fingerprint, config.data.root)
        if previous.finished:
            log.info("%s is already complete: nothing to train (vae-lab eval recomputes its metrics)", run.path)
            return previous.final_metrics
    refuse_what_does_not_fit(config, splits.image_shape, device)
    refuse_missing_packages(config.logger)
    if config.loss.perceptual.enabled and config.loss.perceptual.weights == "imagenet":
        from vae_lab.image_losses import imagenet_vgg16

        imagenet_vgg16()  # offline without them: stop now, with what to do, before writing anything
    seed_everything(config.seed)
    model = build_model(config.model, config.backbone, splits.image_shape).to(device)
    refuse_unknown_metric(config, model, splits)
    return Ready(model, previous.checkpoint if previous is not None else None)


def previous_run(run, config, device) -> Optional[PreviousRun]:
    """What an earlier run left in ``run``; None for a folder with no run in it. Refuses a folder
    that holds a run unless ``trainer.resume`` is on, and a resume with other settings."""
    from vae_lab.config import as_dict
    from vae_lab.runs import SAME_RUN, differences, refuse_other_settings

    if not run.holds_a_run:
        return None
    if not config.trainer.resume:
        found = ", ".join(p.name for p in run.written_files)
        raise ConfigError("trainer.resume", False,
                          f"the folder {run.path} already holds a run ({found}); set trainer.resume=true "
                          "to continue it, or choose another hydra.run.dir")
    now = as_dict(config)
    if run.is_complete and run.config.is_file():
        saved = saved_config(run.read_config(), run.config)
        if not differences(saved, now, SAME_RUN):
            try:
                metrics = run.final_metrics()
                return PreviousRun(run.load_best(device).get("data"), None, metrics)
            except DamagedFile as damaged:
                log.warning("%s: evaluating the run again", damaged)
    if run.last_checkpoint.is_file():
        checkpoint = run.load_last(device)
        refuse_other_settings(run, saved_config(checkpoint["config"], run.last_checkpoint), now)
        return PreviousRun(checkpoint.get("data"), checkpoint, None)
    finished = [p.name for p in (run.best_checkpoint, run.metrics) if p.is_file()] + (
        ["metrics.jsonl"] if run.metrics_per_epoch.is_file() and run.metrics_per_epoch.stat().st_size else [])
    if finished:  # epochs finished, but what would continue them is gone: never trained over
        raise UserError(f"the run in {run.path} has finished epochs ({', '.join(finished)}) but no "
                        "checkpoints/last.pt to continue them from; evaluate its best weights with "
                        f"`vae-lab eval run_dir={run.path}`, or start a new run in another folder")
    if run.config.is_file():  # stopped before its first epoch ended: start it again, same settings
        refuse_other_settings(run, saved_config(run.read_config(), run.config), now)
    log.info("no finished epoch in %s: starting its run again", run.path)
    return PreviousRun(None, None, None)


def saved_config(values: dict, source: Path) -> dict:
    """A run's saved config (read from ``source``) with today's defaults for keys added since (so an
    older run still matches)."""
    from vae_lab.compose import train_config_from_dict
    from vae_lab.config import as_dict

    return as_dict(train_config_from_dict(values, source))


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every device


def refuse_what_does_not_fit(config, image_shape: tuple[int, int, int], device) -> None:
    """Refuse a model whose weights, gradients and optimizer state alone exceed the free memory."""
    from vae_lab.models import parameter_count

    needed = parameter_count(config.model, config.backbone, image_shape) * BYTES_PER_PARAMETER
    if config.loss.adversarial.enabled:  # the discriminator trains beside the model, with its own Adam
        import torch

        from vae_lab.image_losses import PatchDiscriminator

        with torch.device("meta"):
            settings = config.loss.adversarial
            discriminator = PatchDiscriminator(image_shape[0], settings.channels, settings.layers)
        needed += sum(p.numel() for p in discriminator.parameters()) * BYTES_PER_PARAMETER
    free = available_memory(device)
    if needed > free:
        with_discriminator = " with its discriminator" if config.loss.adversarial.enabled else ""
        raise UserError(f"model={config.model.name} ({config.model.summary()}) on backbone={config.backbone.name}"
                        f"{with_discriminator} would need {needed / 2**30:,.1f} GiB for its weights, gradients and optimizer state, "
                        f"more than the {free / 2**30:,.1f} GiB free on {device}; choose smaller sizes")


def available_memory(device) -> int:
    """Bytes free for a new allocation on ``device``."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_missing_packages(settings) -> None:
    """Each tracker asked for must be installed."""
    from importlib.util import find_spec

    for name, package in (("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        if getattr(settings, name) is not None and find_spec(package) is None:
            raise ConfigError("logger", name, f"the {package} package is not installed; "
                                              f"pip install 'vae-lab[{name}]', or leave logger={name} out")


def refuse_unknown_metric(config, model, splits) -> None:
    """``optimized_metric`` must be one the run will report (checked now, not after training)."""
    from vae_lab.evaluate import final_metric_names

    if config.optimized_metric is None:
        return
    names = final_metric_names(model, splits, config)
    if config.optimized_metric not in names:
        raise ConfigError("optimized_metric", config.optimized_metric,
                          f"this run reports no such metric; expected one of {', '.join(sorted(names))}")

