"""The command line's plan, checked before anything is written: every job a command asks for composed
and typed, the folder it will write resolved and (for a sweep) checked against the grid that made
it, and the data there or fetched once. A bad value ends the command with one line and exit status
2, with nothing written. Each run's own checks come later, in vae_lab/preflight.py.
"""

import dataclasses
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vae_lab.compose import config_dir, hydra_value, jobs_at_once, quote_paths, typed
from vae_lab.data import check_data
from vae_lab.errors import UserError, missing_key, no_such_key, one_line
from vae_lab.runs import RESUMABLE, RunDir, differences, flatten


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
    return get_args_parser().parse_args(args)


def check_command(config_name: str, args: list[str]) -> Plan:
    """Compose and check every job the command line asks for, and the folder it will write; raise a
    UserError on the first problem.

    In a multirun the jobs are those of the basic sweeper: the command line's own sweeps together
    with any ``hydra.sweeper.params`` a config defines (``sweep=...``). Other sweepers (Optuna) choose
    their jobs as they go: their base configuration is checked.
    """
    args = quote_paths(args)
    parsed = parse_hydra_arguments(args)
    if parsed.help or parsed.hydra_help or parsed.info or parsed.shell_completion:
        return Plan([a for a in args if a != "--multirun"])  # Hydra takes one mode at a time
    if parsed.config_path or parsed.config_dir or parsed.config_name:
        return Plan(args)  # a config tree of the user's own: the jobs check themselves as they start
    try:
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            base, swept = sweep_jobs(config_name, parsed.overrides)
            jobs = swept if parsed.multirun else [parsed.overrides]
            basic_sweeper = base.hydra.sweeper._target_.endswith("BasicSweeper")
            optuna_study = base.hydra.sweeper._target_.endswith("OptunaStudySweeper")
            refuse_hydras_slurm_launcher(base.hydra.launcher)
            refuse_no_jobs_at_once(base.hydra.launcher)
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
        raise UserError(f"{unknown}: {no_such_key(unknown, known)}") from None


def sweep_jobs(config_name: str, overrides: list[str]) -> tuple[DictConfig, list[list[str]]]:
    """The base config (Hydra's part too) and the jobs a multirun of ``overrides`` runs: the basic
    sweeper's grid of the command line's sweeps and any ``hydra.sweeper.params`` a config defines;
    for another sweeper, the plain overrides once. Inside ``initialize_config_dir``."""
    parser = OverridesParser.create()
    given = parser.parse_overrides(overrides)
    plain = [o.input_line for o in given if not o.is_sweep_override()]
    base = compose(config_name, overrides=plain, return_hydra_config=True)
    if not base.hydra.sweeper._target_.endswith("BasicSweeper"):
        return base, [plain]
    named = {o.key_or_group for o in given}
    from_config = [f"{key}={value}" for key, value in (base.hydra.sweeper.params or {}).items() if key not in named]
    return base, grid(given + parser.parse_overrides(from_config))


def refuse_hydras_slurm_launcher(launcher) -> None:
    """Hydra's own SLURM launcher lets a dead job end the sweep in a traceback, trains on after
    SIGTERM and never requeues; vae-lab's takes the same settings and does neither."""
    if str(launcher.get("_target_", "")).startswith("hydra_plugins.hydra_submitit_launcher.submitit_launcher.Slurm"):
        raise UserError("hydra/launcher=submitit_slurm: use hydra/launcher=slurm, vae-lab's SLURM launcher, which "
                        "takes the same settings and also stops a cancelled job at once, requeues one at its time "
                        "limit and reports one that died (docs/guide/sweeps.md)")


def refuse_no_jobs_at_once(launcher) -> None:
    """joblib runs n_jobs jobs at once, or all cores but -n_jobs - 1 of them; 0 means nothing."""
    if launcher.get("n_jobs", None) == 0:
        raise UserError("hydra.launcher.n_jobs=0: expected how many jobs run at once: 1 or more, or -1 for one "
                        "per core (-2: all cores but one)")


def refuse_missing_data(configs: list) -> None:
    """Each job's data is there (MNIST under data.root, or fetched there now, once; your folder or
    file readable) and fits its settings: otherwise each job of a sweep would fail on its own after
    its folder was written, and jobs downloading side by side would write the same files."""
    checked = set()
    for config in configs:
        if not hasattr(config, "data"):  # eval's come from its run folder
            continue
        key = repr(sorted(dataclasses.asdict(config.data).items()))
        if key not in checked:
            check_data(config.data)
            checked.add(key)


def known_keys(config_name: str, overrides: list[str]) -> list[str]:
    """Every dotted key of the config that the command line's group choices (model=..., data=...,
    experiment=...) compose, for naming the closest to one that does not exist."""
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
    for number, job in enumerate(jobs):
        config = compose(config_name, overrides=job, return_hydra_config=part != "job")
        if part == "hydra":
            config = OmegaConf.create({"hydra": config.hydra})
        print(f"# job {number}: {' '.join(job) or '(no overrides)'}")
        print(OmegaConf.to_yaml(config, resolve=resolve and part == "job"))


def folder_plan(config_name: str, args: list[str], multirun: bool, base) -> Plan:
    """The folder the command writes, resolved now and handed to Hydra as the same absolute path
    (so a timestamped default names one folder, claimed before Hydra writes into it)."""
    if config_name == "evaluate":
        run = RunDir.open(base.run_dir, key="run_dir").path
        if base.out_dir is None:
            return Plan([*args], run, "run_dir")
        out = Path(str(base.out_dir)).expanduser().resolve()
        if out == run or out.is_file():
            raise UserError(f"out_dir={out}: expected a folder of its own for the evaluation (the default is "
                            f"{run / 'eval'})")
        return Plan([*args, f"hydra.run.dir={hydra_value(str(out))}"], out, "out_dir")
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = Path(str(base.hydra.sweep.dir if multirun else base.hydra.run.dir)).expanduser().resolve()
    except Exception:  # noqa: BLE001  a folder named by runtime values (${hydra.job.num}, ...): the job claims it
        return Plan(args)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{key}={folder} is a file, not a folder: choose a folder for the "
                        f"{'sweep' if multirun else 'run'}")
    return Plan([a for a in args if not a.startswith(f"{key}=")] + [f"{key}={hydra_value(str(folder))}"], folder, key)


def refuse_another_grid(sweep_dir: Path, jobs: list[list[str]]) -> None:
    """A sweep folder is rerun with the grid that made it (to resume it), never with another one:
    its job folders are numbered by position in the grid, so another grid would put new settings
    into old runs' folders. What a resume may change (vae_lab/runs.py, RESUMABLE) may differ."""

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
