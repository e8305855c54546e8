"""``hydra/sweeper=vae_lab_optuna`` (what ``hparams_search=optuna`` selects): an Optuna study that
lives in the sweep folder and survives the process that runs it.

- **Persistent.** The study is stored in ``sqlite:///<sweep dir>/optuna.db`` unless ``storage`` names
  another, so rerunning the same command with the same ``hydra.sweep.dir`` continues the study:
  ``n_trials`` is the study's total, not a number of new trials.
- **Resumable.** Trial *k* runs in job folder *k*. A trial a killed sweep left running is run again in
  its own folder, with its own parameters, and so resumes from its last finished epoch.
- **Robust.** A trial whose job failed (a diverged loss: see its error.txt) or whose metric is NaN or
  infinite is told to Optuna as pruned, with one line saying so, and the search goes on: the sampler
  learns that region is bad instead of crashing the study.

The search space uses Hydra's override grammar, as ``hydra.sweeper.params`` or on the command line:
``choice(2, 8, 32)``, ``interval(0.25, 4.0)``, ``tag(log, interval(1e-4, 1e-2))``, ``range(1, 10)``.

Hydra's own Optuna sweeper plugin keeps Optuna below 3.0, whose SQLite storage fails on SQLAlchemy
2, and starts a new study (and job folder 0) on every rerun; hence this one.
"""

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class OptunaStudySweeperConf:
    _target_: str = "hydra_plugins.vae_lab_optuna_sweeper.optuna_sweeper.OptunaStudySweeper"
    _recursive_: bool = False  # the sampler is made when the study is open (its seed depends on it)
    direction: Any = "minimize"  # minimize | maximize, or a list of them for several objectives
    n_trials: int = 20  # the study's total number of trials (a rerun adds only what is missing)
    n_jobs: int = 1  # trials launched at once (to a parallel launcher)
    storage: Optional[str] = None  # an Optuna storage URL; null: sqlite:///<sweep dir>/optuna.db
    study_name: Optional[str] = None  # null: the sweep folder's path
    # Any optuna.samplers class with its arguments.
    sampler: dict[str, Any] = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": 0})
    params: Optional[dict[str, str]] = None  # the search space, in Hydra's override grammar


ConfigStore.instance().store(group="hydra/sweeper", name="vae_lab_optuna", node=OptunaStudySweeperConf,
                             provider="vae-lab")


class OptunaStudySweeper(Sweeper):
    def __init__(self, direction: Any, n_trials: int, n_jobs: int, storage: Optional[str], study_name: Optional[str],
                 sampler: DictConfig, params: Optional[DictConfig]) -> None:
        from vae_lab.errors import UserError

        if n_trials < 1 or n_jobs < 1:
            bad, value = ("n_trials", n_trials) if n_trials < 1 else ("n_jobs", n_jobs)
            raise UserError(f"hydra.sweeper.{bad}={value}: expected a number >= 1")
        directions = list(direction) if isinstance(direction, Sequence) and not isinstance(direction, str) else [direction]
        for d in directions:
            if d not in ("minimize", "maximize"):
                raise UserError(f"hydra.sweeper.direction={d}: expected minimize or maximize (or a list of them)")
        self.directions, self.n_trials, self.n_jobs = directions, n_trials, n_jobs
        self.storage, self.study_name = storage, study_name
        self.sampler_settings = OmegaConf.to_container(sampler, resolve=True)
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                               task_function=task_function)
        self.sweep_dir = Path(config.hydra.sweep.dir).resolve()

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # this sweeper says what happens, once
        space, fixed = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = self.storage or f"sqlite:///{self.sweep_dir / 'optuna.db'}"
        study = optuna.create_study(storage=storage, study_name=self.study_name or str(self.sweep_dir),
                                    directions=self.directions, load_if_exists=True)
        study.sampler = make_sampler(self.sampler_settings, len(study.trials))
        running = optuna.trial.TrialState.RUNNING
        interrupted = [t for t in study.trials if t.state == running and (self.sweep_dir / str(t.number) / ".hydra").is_dir()]
        log.info("Optuna study %r in %s: %d of %d trials done%s", study.study_name, storage,
                 len(started(study)) - len(interrupted), self.n_trials,
                 f", {len(interrupted)} to finish where it stopped" if interrupted else "")
        for stopped in interrupted:  # each in its own folder, where it resumes
            self.run_trials(study, [optuna.trial.Trial(study, stopped._trial_id)], fixed)
        while len(started(study)) < self.n_trials:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - len(started(study))))]
            self.run_trials(study, batch, fixed)
        self.save_results(study)

    def run_trials(self, study: Any, trials: list, fixed: dict[str, str]) -> None:
        """Launch consecutive trials as jobs numbered as the trials are; tell Optuna each outcome."""
        from optuna.trial import TrialState

        overrides = [tuple(f"{k}={v}" for k, v in {**trial.params, **fixed}.items()) for trial in trials]
        returns = self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        for trial, job in zip(trials, returns):
            values, problem = objective_values(job, len(self.directions))
            if problem is None:
                study.tell(trial, values if len(values) > 1 else values[0])
            else:
                log.warning("trial %d (%s) %s; Optuna counts it as pruned and the search goes on", trial.number,
                            " ".join(f"{k}={v}" for k, v in trial.params.items()), problem)
                study.tell(trial, state=TrialState.PRUNED)

    def save_results(self, study: Any) -> None:
        from vae_lab.files import atomic_write

        if len(self.directions) == 1:
            try:
                best = study.best_trial
            except ValueError:
                log.error("no trial of the study has ended with a finite value: see each job's error.txt")
                return
            results = {"name": "optuna", "study": study.study_name, "best_trial": best.number,
                       "best_params": best.params, "best_value": best.value}
            log.info("best of %d trials: trial %d, %s, value %g", len(study.trials), best.number,
                     " ".join(f"{k}={v}" for k, v in best.params.items()), best.value)
        else:
            results = {"name": "optuna", "study": study.study_name,
                       "solutions": [{"trial": t.number, "params": t.params, "values": t.values}
                                     for t in study.best_trials]}
        atomic_write(self.sweep_dir / "optimization_results.yaml",
                     lambda f: f.write(OmegaConf.to_yaml(OmegaConf.create(results))))


def started(study: Any) -> list:
    """The study's trials but those waiting in its queue (``study.enqueue_trial``)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]


def make_sampler(settings: dict, trials_so_far: int) -> Any:
    """The configured sampler. A seeded one continuing a study is seeded past it (seed + its number
    of trials): a fresh sampler with the first run's seed would draw the first trials' parameters again."""
    settings = dict(settings)
    if trials_so_far and settings.get("seed") is not None:
        settings["seed"] += trials_so_far
    return instantiate(settings)


def objective_values(job: Any, objectives: int) -> tuple[list[float], Optional[str]]:
    """A job's objective values, or why it has none (a failed job, a value that is not finite)."""
    try:
        returned = job.return_value
    except Exception as error:  # noqa: BLE001  the job raised: Hydra re-raises it here
        return [], f"failed: {error}"
    if returned is None:
        error = Path(job.hydra_cfg.hydra.runtime.output_dir) / "error.txt"  # vae-lab's record of why
        text = error.read_text().strip() if error.is_file() else ""
        return [], f"failed: {text.splitlines()[0] if text else 'returned no value'}"
    values = [float(v) for v in (returned if isinstance(returned, (list, tuple)) else [returned])]
    if len(values) != objectives:
        return [], f"returned {len(values)} values for {objectives} objectives"
    if not all(math.isfinite(v) for v in values):
        return [], f"ended with a value that is not finite ({', '.join(f'{v:g}' for v in values)})"
    return values, None


def search_space(overrides: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Optuna distributions for the sweeps among ``overrides``, and the plain ones as fixed values."""
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override():
            space[override.get_key_element()] = distribution(override)
        else:
            fixed[override.get_key_element()] = override.get_value_element_as_str()
    return space, fixed


def distribution(override: Override) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from vae_lab.errors import UserError

    sweep: Union[ChoiceSweep, IntervalSweep, RangeSweep] = override.value()
    log_scale = "log" in sweep.tags
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(override.sweep_iterator()))
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return IntDistribution(sweep.start, sweep.end, log=log_scale)
        return FloatDistribution(float(sweep.start), float(sweep.end), log=log_scale)
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(sweep.step or 1))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(sweep.step))
    raise UserError(f"{override.input_line}: expected choice(...), interval(a, b) or range(a, b[, step])")
