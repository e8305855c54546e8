"""Every check of one run before its first write: the folder (another run in it, a resume that
matches), the data, the model's memory, the trackers' packages, the VGG weights, the metric a
sweeper asks for. The command line's own checks come first, in vae_lab/plan.py.

What a check refuses is a :class:`vae_lab.errors.UserError`; the CLI prints it as one line.
"""

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from vae_lab.compose import train_config_from_dict
from vae_lab.config import as_dict
from vae_lab.errors import ConfigError, DamagedFile, UserError
from vae_lab.evaluate import final_metric_names
from vae_lab.image_losses import PatchDiscriminator, imagenet_vgg16
from vae_lab.models import parameter_count
from vae_lab.runs import SAME_RUN, differences, refuse_other_data, refuse_other_settings

BYTES_PER_PARAMETER = 16  # float32 weight, its gradient and Adam's two moments


@dataclass
class PreviousRun:
    """What an earlier run left in the folder, found only when it may be continued."""

    data: Optional[dict]  # the data fingerprint it was trained on (None: not recorded)
    checkpoint: Optional[dict]  # checkpoints/last.pt, or None when no epoch had finished
    final_metrics: Optional[dict]  # metrics.json when the run is complete with these very settings
    found: str = ""  # what was found, for the run's log
    damaged: str = ""  # a damaged file passed over, for the run's log as a warning

    @property
    def finished(self) -> bool:
        return self.final_metrics is not None


def check_run(config, run, splits, device) -> Optional[PreviousRun]:
    """Every check of one run before its first write (but the metric a sweeper asks for, which needs
    the model: :func:`refuse_unknown_metric`). Returns what an earlier run left in the folder (None:
    nothing); one that is ``finished`` is complete already, with nothing to train."""
    previous = previous_run(run, config, device)
    if previous is not None:
        refuse_other_data(run, previous.data, splits.fingerprint, config.data.root)
        if previous.finished:
            return previous
    refuse_what_does_not_fit(config, splits.image_shape, len(splits.info.class_names), device)
    refuse_missing_packages(config.logger)
    if config.loss.perceptual.enabled and config.loss.perceptual.weights == "imagenet":
        imagenet_vgg16()  # offline without them: stop now, with what to do, before writing anything
    return previous


def previous_run(run, config, device) -> Optional[PreviousRun]:
    """What an earlier run left in ``run``; None for a folder with no run in it. Refuses a folder
    that holds a run unless ``trainer.resume`` is on, and a resume with other settings."""
    if not run.holds_a_run:
        return None
    if not config.trainer.resume:
        found = ", ".join(p.name for p in run.written_files)
        raise ConfigError("trainer.resume", False,
                          f"the folder {run.path} already holds a run ({found}); set trainer.resume=true "
                          "to continue it, or choose another hydra.run.dir")
    now = as_dict(config)
    damaged = ""  # metrics.json of a complete run that cannot be read: the run is evaluated again
    if run.is_complete and run.config.is_file():
        saved = saved_config(run.read_config(), run.config)
        if not differences(saved, now, SAME_RUN):
            try:
                metrics = run.final_metrics()
                return PreviousRun(run.load_best(device).get("data"), None, metrics,
                                   f"{run.path} is already complete: nothing to train "
                                   "(vae-lab eval recomputes its metrics)")
            except DamagedFile as error:
                damaged = f"{error}: evaluating the run again"
    if run.last_checkpoint.is_file():
        checkpoint = run.load_last(device)
        refuse_other_settings(run, saved_config(checkpoint["config"], run.last_checkpoint), now)
        return PreviousRun(checkpoint.get("data"), checkpoint, None, damaged=damaged)
    finished = [p.name for p in (run.best_checkpoint, run.metrics) if p.is_file()] + (
        ["metrics.jsonl"] if run.metrics_per_epoch.is_file() and run.metrics_per_epoch.stat().st_size else [])
    if finished:  # epochs finished, but what would continue them is gone: never trained over
        raise UserError(f"the run in {run.path} has finished epochs ({', '.join(finished)}) but no "
                        "checkpoints/last.pt to continue them from; evaluate its best weights with "
                        f"`vae-lab eval run_dir={run.path}`, or start a new run in another folder")
    if run.config.is_file():  # stopped before its first epoch ended: start it again, same settings
        refuse_other_settings(run, saved_config(run.read_config(), run.config), now)
    return PreviousRun(None, None, None, f"no finished epoch in {run.path}: starting its run again", damaged)


def saved_config(values: dict, source: Path) -> dict:
    """A run's saved config (read from ``source``) with today's defaults for keys added since (so an
    older run still matches)."""
    return as_dict(train_config_from_dict(values, source))


def refuse_what_does_not_fit(config, image_shape: tuple[int, int, int], classes: int, device) -> None:
    """Refuse a model whose weights, gradients and optimizer state alone exceed the free memory."""
    needed = parameter_count(config.model, config.backbone, image_shape, classes) * BYTES_PER_PARAMETER
    if config.loss.adversarial.enabled:  # the discriminator trains beside the model, with its own Adam

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
    for name, package in (("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        if getattr(settings, name) is not None and importlib.util.find_spec(package) is None:
            raise ConfigError("logger", name, f"the {package} package is not installed; "
                                              f"pip install 'vae-lab[{name}]', or leave logger={name} out")


def refuse_unknown_metric(config, model, splits) -> None:
    """``optimized_metric`` must be one the run will report (checked now, not after training)."""
    if config.optimized_metric is None:
        return
    names = final_metric_names(model, splits, config)
    if config.optimized_metric not in names:
        raise ConfigError("optimized_metric", config.optimized_metric,
                          f"this run reports no such metric; expected one of {', '.join(sorted(names))}")
