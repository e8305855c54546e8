"""``hydra/launcher=slurm``: every job of a sweep a SLURM job (one job array), as Hydra's
``submitit_slurm`` launcher submits them and with all of its settings, and what a sweep on a cluster
needs besides (vae_lab/cluster.py):

- a job stops at once on SIGTERM (``scancel``, the time limit, preemption), with its finished epochs
  saved, where Hydra's launcher trained on until SIGKILL;
- a job near its time limit is requeued and resumes its run (``max_num_timeout`` times; Hydra's
  launcher defaults to none, for code that cannot resume);
- a job that dies without a result (cancelled, out of memory, its node lost) is a failed run of the
  sweep, named with what SLURM reports, and the sweep ends with its summary (exit 1), where Hydra's
  launcher raised a traceback; the wait for jobs is bounded even without SLURM's accounting;
- Ctrl-C cancels every job the sweep submitted, and says which.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf, open_dict

log = logging.getLogger(__name__)

try:  # the `cluster` extra: without it, hydra/launcher=slurm is not offered
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
except ImportError:
    SubmititSlurmLauncher = None


if SubmititSlurmLauncher is not None:

    @dataclass
    class SlurmLauncherConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.vae_lab_slurm_launcher.slurm_launcher.SlurmLauncher"
        max_num_timeout: int = 5  # requeues after the time limit: each resumes its run where it stopped
        # A job that has left SLURM's queue without a result, and of which SLURM's accounting (sacct)
        # has no record either, is given up as failed this long after it was last seen.
        lost_after_s: int = 180

    ConfigStore.instance().store(group="hydra/launcher", name="slurm", node=SlurmLauncherConf, provider="vae-lab")

    class SlurmLauncher(SubmititSlurmLauncher):
        def __init__(self, lost_after_s: int = 180, **params: Any) -> None:
            super().__init__(**params)
            self.lost_after_s = lost_after_s

        def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
            """One job, on its node."""
            from vae_lab.cluster import stopping_on_sigterm

            with stopping_on_sigterm():
                return super().__call__(*args, **kwargs)

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            import submitit

            from vae_lab.cluster import wait_for

            executor = submitit.AutoExecutor(folder=self.params["submitit_folder"], cluster="slurm",
                                             slurm_max_num_timeout=self.params["max_num_timeout"])
            shared = set(OmegaConf.structured(BaseQueueConf).keys())  # submitit's names for every cluster
            executor.update_parameters(**{key if key in shared else f"slurm_{key}": value
                                          for key, value in self.params.items()
                                          if key not in ("submitit_folder", "max_num_timeout")})
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            numbers = [initial_job_idx + i for i in range(len(job_overrides))]
            for number, overrides in zip(numbers, job_overrides):
                log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            arguments = [(list(overrides), "hydra.sweep.dir", number, f"job_id_for_{number}", Singleton.get_state())
                         for number, overrides in zip(numbers, job_overrides)]
            jobs = executor.map_array(self, *zip(*arguments))
            log.info(f"Submitted {len(jobs)} SLURM jobs ({jobs[0].job_id.split('_')[0]}_0-{len(jobs) - 1}); "
                     f"their logs: {sweep_dir / '.submitit'}")
            returns = []
            for number, overrides, ended in zip(numbers, job_overrides, wait_for(jobs, lost_after_s=self.lost_after_s)):
                if ended.failure is None:
                    returns.append(ended.value)
                    continue
                log.error("job %d failed: %s", number, ended.failure)
                returns.append(self._failed(number, list(overrides), ended.failure))
            return returns

        def _failed(self, number: int, overrides: list[str], failure: str) -> JobReturn:
            """The return of a job that died without one: its run folder says why (error.txt), as a
            job that failed by itself does, so that the sweep's summary lists it."""
            from vae_lab.runs import RunDir, record_dead_job

            config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(config):
                config.hydra.job.num = number
            run = RunDir(Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir))
            record_dead_job(run, failure, list(config.hydra.overrides.task))
            return JobReturn(overrides=overrides, working_dir=str(run.path), task_name="train",
                             status=JobStatus.COMPLETED, _return_value=None)
