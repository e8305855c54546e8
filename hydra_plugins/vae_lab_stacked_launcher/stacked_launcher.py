"""``hydra/launcher=stacked``: a sweep's runs of one architecture trained as one population.

The jobs are grouped by :func:`vae_lab.stacking.stack_key` into populations of at most
``max_members``. Each job of a group is prepared by Hydra's own ``run_job`` (its folder, its
``.hydra/`` files, its callbacks), with the task in enlisting mode, so that it hands over its config
instead of training; the group then trains as one (vae_lab.train.train_together) and every member
writes the run folder a standalone run writes. A job that cannot stack runs as the basic launcher
runs it.
"""

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

log = logging.getLogger(__name__)


@dataclass
class StackedLauncherConf:
    _target_: str = "hydra_plugins.vae_lab_stacked_launcher.stacked_launcher.StackedLauncher"
    max_members: int = 16  # runs per population: what one process trains at once (memory grows with it)


ConfigStore.instance().store(group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="vae-lab")


class StackedLauncher(Launcher):
    def __init__(self, max_members: int = 16) -> None:
        if max_members < 1:
            raise ValueError(f"hydra.launcher.max_members={max_members}: expected a number >= 1")
        self.max_members = max_members
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from vae_lab.stacking import plan_groups

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [(initial_job_idx + i, list(overrides)) for i, overrides in enumerate(job_overrides)]
        configs = [self._sweep_config(idx, overrides) for idx, overrides in jobs]
        groups = plan_groups([_stack_key(c) for c in configs], self.max_members)
        sizes = sorted((len(g) for g in groups), reverse=True)
        log.info(f"Launching {len(jobs)} jobs as {len(groups)} populations (of {', '.join(map(str, sizes))})")
        returns: dict[int, JobReturn] = {}
        for group in groups:
            for i in group:
                log.info(f"\t#{jobs[i][0]} : {' '.join(filter_overrides(jobs[i][1]))}")
            if len(group) == 1:
                returns[group[0]] = self._run(configs[group[0]], self.task_function)
            else:
                returns.update(zip(group, self._run_together([configs[i] for i in group])))
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

    def _run_together(self, sweep_configs: list[DictConfig]) -> list[JobReturn]:
        from vae_lab.stacking import enlisting, member_logs
        from vae_lab.train import train_together

        with enlisting() as enlisted:
            returns = []
            for sweep_config in sweep_configs:
                before = len(enlisted)
                returns.append(self._run(sweep_config, self.task_function))
                if len(enlisted) == before:  # refused before enlisting (a bad value): reported by its task
                    enlisted.append(None)
        members = [(i, job) for i, job in enumerate(enlisted) if job is not None]
        with member_logs([run_dir for _, (_, run_dir) in members]):
            outcomes = train_together([job for _, job in members]) if members else []
        for (i, (config, run_dir)), outcome in zip(members, outcomes):
            returns[i].return_value = _reported(outcome, config, run_dir)
            returns[i].status = JobStatus.COMPLETED  # as the task reports a failed job: in its folder, not here
        return returns


def _stack_key(sweep_config: DictConfig) -> Optional[str]:
    """The job's stack key, or None when its config does not even type (its own run reports why)."""
    from omegaconf.errors import OmegaConfBaseException

    from vae_lab.config import typed
    from vae_lab.errors import UserError
    from vae_lab.stacking import stack_key

    task = copy.deepcopy(sweep_config)
    with read_write(task), open_dict(task):
        del task["hydra"]  # the job's own config, as run_job hands it to the task
    try:
        config = typed(task)
    except (UserError, OmegaConfBaseException):
        return None
    return stack_key(config)


def _reported(outcome, config, run_dir: str):
    """What a member's task would have returned: the optimized metric, or None for a failed run,
    whose error.txt says why (as vae-lab's task records a failed job of a sweep)."""
    from vae_lab.cli import one_line
    from vae_lab.runs import RunDir, record_failure

    if isinstance(outcome, BaseException):
        record_failure(RunDir(run_dir), outcome)
        log.error("job %s failed: %s", Path(run_dir).name, one_line(outcome))
        return None
    print(run_dir, flush=True)
    return outcome[config.optimized_metric] if config.optimized_metric else None
