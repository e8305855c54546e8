"""``hydra/launcher=stacked``: a sweep's runs of one architecture trained as one population.

The jobs are typed here and grouped by :func:`vae_lab.population.stack_key` into populations of at
most ``max_members``. Each job of a group is prepared by Hydra's own ``run_job`` (its folder, its
``.hydra/`` files, its callbacks) with a task that only notes its folder; the group then trains as
one (vae_lab.training.train_population) and every member writes the run folder a standalone run
writes. A job that does not type (a bad value) or cannot stack runs vae-lab's own task, which
trains it alone or reports why not.

``executor=local`` trains the populations here, one after another, and runs a job that cannot stack
as the basic launcher runs it. ``executor=submitit_local`` or ``submitit_slurm`` makes every
population (and every job that cannot stack) one submitit job, with ``submitit`` as its parameters
(submitit.AutoExecutor's: ``timeout_min``, ``gpus_per_node``, ``slurm_partition``, ...): a sweep of
hundreds of runs becomes a handful of cluster jobs.
"""

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

from vae_lab.progress import result

log = logging.getLogger(__name__)


EXECUTORS = ("local", "submitit_local", "submitit_slurm")


@dataclass
class StackedLauncherConf:
    _target_: str = "hydra_plugins.vae_lab_stacked_launcher.stacked_launcher.StackedLauncher"
    max_members: int = 16  # runs per population: what one process trains at once (memory grows with it)
    executor: str = "local"  # local | submitit_local | submitit_slurm (a submitit job per population)
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    submitit: dict[str, Any] = field(default_factory=lambda: {"timeout_min": 60})  # submitit.AutoExecutor's


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="vae-lab")


class StackedLauncher(Launcher):
    def __init__(self, max_members: int = 16, executor: str = "local", submitit_folder: str = ".submitit/%j",
                 submitit: Optional[dict] = None) -> None:
        from vae_lab.errors import UserError

        if max_members < 1:
            raise UserError(f"hydra.launcher.max_members={max_members}: expected a number >= 1")
        if executor not in EXECUTORS:
            raise UserError(f"hydra.launcher.executor={executor}: expected one of {', '.join(EXECUTORS)}")
        self.max_members, self.executor = max_members, executor
        self.submitit_folder, self.submitit = submitit_folder, dict(submitit or {})
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from vae_lab.population import plan_groups, stack_key

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [(initial_job_idx + i, list(overrides)) for i, overrides in enumerate(job_overrides)]
        configs = [self._sweep_config(idx, overrides) for idx, overrides in jobs]
        typed = [_typed(c) for c in configs]
        groups = plan_groups([None if t is None else stack_key(t) for t in typed], self.max_members)
        sizes = sorted((len(g) for g in groups), reverse=True)
        log.info(f"Launching {len(jobs)} jobs as {len(groups)} population{'s' * (len(groups) != 1)} "
                 f"(of {', '.join(map(str, sizes))})")
        returns: dict[int, JobReturn] = {}
        submitted = []
        for group in groups:
            for i in group:
                log.info(f"\t#{jobs[i][0]} : {' '.join(filter_overrides(jobs[i][1]))}")
            if self.executor == "local" and len(group) == 1:
                returns[group[0]] = self._run(configs[group[0]], self.task_function)
                continue
            group_returns, members = self._prepare([(configs[i], typed[i]) for i in group])
            returns.update(zip(group, group_returns))
            if self.executor == "local":
                self._report(group_returns, members, _train_here(members))
            elif members:
                submitted.append((group_returns, members, self._submit(members)))
        if submitted:
            from vae_lab.cluster import wait_for

            for (group_returns, members, _), ended in zip(submitted, wait_for([job for _, _, job in submitted])):
                self._report(group_returns, members, ended.value if ended.failure is None else
                             _died(members, ended.failure))
        return [returns[i] for i in range(len(jobs))]

    def _sweep_config(self, idx: int, overrides: list[str]) -> DictConfig:
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        return sweep_config

    def _run(self, sweep_config: DictConfig, task_function: TaskFunction) -> JobReturn:
        return run_job(hydra_context=self.hydra_context, task_function=task_function, config=sweep_config,
                       job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")

    def _prepare(self, jobs: list[tuple[DictConfig, Any]]) -> tuple[list[JobReturn], list[tuple[int, Any, str]]]:
        """Hydra prepares each job's folder; returns the jobs' JobReturns and each member's
        (position, config, run folder)."""
        from hydra.core.hydra_config import HydraConfig

        from vae_lab.compose import job_config

        returns, members = [], []
        for i, (sweep_config, _) in enumerate(jobs):
            prepared: list[tuple[Any, str]] = []
            noted = lambda cfg: prepared.append((job_config(cfg, HydraConfig.get()),  # noqa: E731
                                                 HydraConfig.get().runtime.output_dir))
            returns.append(self._run(sweep_config, noted))
            members += [(i, *member) for member in prepared]
        return returns, members

    def _submit(self, members: list[tuple[int, Any, str]]):
        """One submitit job that trains these members."""
        import submitit

        from vae_lab.cluster import ClusterJob
        from vae_lab.training import train_population

        cluster = {"submitit_local": "local", "submitit_slurm": "slurm"}[self.executor]
        parameters = dict(self.submitit)
        requeues = parameters.pop("max_num_timeout", 5)  # after the time limit: each resumes its runs
        executor = submitit.AutoExecutor(folder=self.submitit_folder, cluster=cluster, slurm_max_num_timeout=requeues)
        executor.update_parameters(**parameters)
        job = executor.submit(ClusterJob(train_population, [(config, run_dir) for _, config, run_dir in members]))
        log.info(f"Submitted {len(members)} runs as job {job.job_id}; its log: {job.paths.stderr}")
        return job

    @staticmethod
    def _report(returns: list[JobReturn], members: list[tuple[int, Any, str]], outcomes: list) -> None:
        """Each member's return value: the optimized metric, or None for a failed run (its
        error.txt and the log line say why, as vae-lab's task reports a failed job of a sweep)."""
        for (i, config, run_dir), outcome in zip(members, outcomes):
            if isinstance(outcome, str):
                log.error("job %s failed: %s", Path(run_dir).name, outcome)
                returns[i].return_value = None
            else:
                result(run_dir)
                returns[i].return_value = outcome[config.optimized_metric] if config.optimized_metric else None
            returns[i].status = JobStatus.COMPLETED


def _died(members: list[tuple[int, Any, str]], failure: str) -> list[str]:
    """The outcome of each member of a job that died without a result: its run folder says why."""
    from vae_lab.runs import RunDir, record_dead_job

    for _, _, run_dir in members:
        record_dead_job(RunDir(run_dir), failure)
    return [failure] * len(members)


def _train_here(members: list[tuple[int, Any, str]]) -> list:
    from vae_lab.training import train_population

    return train_population([(config, run_dir) for _, config, run_dir in members]) if members else []


def _typed(sweep_config: DictConfig) -> Optional[Any]:
    """The job's typed config, or None when it does not type (its own run reports why)."""
    from omegaconf.errors import OmegaConfBaseException

    from vae_lab.compose import typed
    from vae_lab.errors import UserError

    task = copy.deepcopy(sweep_config)
    with read_write(task), open_dict(task):
        del task["hydra"]  # the job's own config, as run_job hands it to the task
    try:
        return typed(task)
    except (UserError, OmegaConfBaseException):
        return None
