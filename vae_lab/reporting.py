"""What a trained model leaves behind: final test metrics and figures, at the end of training and
again, from the run folder alone, in `vae-lab eval`; and the one reader of a trained run
(:func:`load_run`), for `vae-lab eval`, the explorer and the Python API."""

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from vae_lab.compose import train_config_from_dict
from vae_lab.config import EvalConfig, TrainConfig, as_dict
from vae_lab.data import Splits, load_splits
from vae_lab.data.mnist import DataMissing
from vae_lab.device import Stopwatch, govern_threads, resolve_device
from vae_lab.errors import DamagedFile, RunFailed, UserError, show
from vae_lab.evaluate import EVAL_SECONDS, evaluating, final_metrics
from vae_lab.figures import draw_figures
from vae_lab.files import write_json
from vae_lab.member import Member
from vae_lab.models import VAE, build_model
from vae_lab.runs import SAME_RUN, RunDir, differences, record_failure
from vae_lab.trackers import Embedding

log = logging.getLogger(__name__)


def report(model: VAE, splits: Splits, config: TrainConfig, history: list[dict], snapshots: list[dict],
           metrics_path: Path, figures_dir: Path, extra: Optional[dict] = None,
           metrics: Optional[dict] = None, tick: Callable[[], None] = lambda: None) -> dict:
    """Every metric (``metrics`` when computed already, with the rest of a population) and, unless
    ``eval.figures`` is off, every figure of ``model``; metrics.json is written last (its presence
    means done). A ``cost_s`` in ``extra`` grows by the time the figures took. ``tick``: the thread
    governor's (vae_lab/device.py)."""
    metrics = {**(metrics if metrics is not None else final_metrics([model], splits, [config], tick)[0]),
               **(extra or {})}
    if config.eval.figures:
        with Stopwatch() as clock:  # less any time the process was stopped, as an epoch's time
            drawn = draw_figures(model, splits, history, snapshots, figures_dir, config, metrics)
        seconds = clock.now() - clock.started
        log.info("figures (%d): %.1f s", len(drawn), seconds)
        metrics.setdefault(EVAL_SECONDS, {})["figures"] = seconds
        if "cost_s" in metrics:
            metrics["cost_s"] += seconds
    write_json(metrics_path, metrics)
    return metrics


def load_model(run: RunDir, config: TrainConfig, device: torch.device, weights: str = "best"
                    ) -> tuple[VAE, dict]:
    """The run's model with its best (or last) weights, and the checkpoint they came from. A
    config.yaml that no longer says what the weights were trained with is refused, naming both."""
    best = run.load_best(device)  # it records the image shape the model was built for
    checkpoint = best if weights == "best" else run.load_last(device)
    if "config" in checkpoint:
        trained = train_config_from_dict(checkpoint["config"], run.best_checkpoint)
        for key, said, was in differences(as_dict(config), as_dict(trained), SAME_RUN):
            raise DamagedFile(run.config, f"it says {key}={show(said)}, but checkpoints/{weights}.pt was trained "
                                          f"with {key}={show(was)}", "it was edited; restore what the checkpoint says")
    # A checkpoint from before other datasets did not say its classes: MNIST's ten.
    model = build_model(config.model, config.backbone, tuple(best["image_shape"]), best.get("classes", 10)).to(device)
    model.load_state_dict(checkpoint["model"])
    return model, checkpoint


WEIGHTS = ("best", "last")
API_DATA_OPTION = "load_run(..., data_root=PATH)"


@dataclass
class Run:
    """A run folder, read: its config, per-epoch history and final metrics (empty until the run is
    complete), and its model with the chosen weights, in eval mode on ``device``. The model keeps its
    public ``encode``, ``embed``, ``decode``, ``sample`` and ``reconstruct``."""

    path: Path
    config: TrainConfig
    history: list[dict]
    metrics: dict
    model: VAE
    epoch: int  # of the weights loaded
    device: torch.device
    _splits: Optional[Splits] = field(default=None, repr=False)
    data_option: str = API_DATA_OPTION  # how its reader gives the data's new folder, for a message

    @property
    def splits(self) -> Splits:
        """The run's train, validation and test splits (its data config, on its device), loaded
        on first use."""
        if self._splits is None:
            self._splits = trained_data(self.config, self.device, self.data_option)
        return self._splits


def trained_data(config: TrainConfig, device: torch.device, option: str) -> Splits:
    """The splits a run was trained on, read where its config says. Where they are not (the data
    moved), the error says how to give their folder now: ``option`` (data.root and $VAE_LAB_DATA,
    which training takes, do not reach a trained run's saved config)."""
    try:
        return load_splits(config.data, device)
    except DataMissing as missing:
        raise UserError(f"data.root={missing.value}: the MNIST this run was trained on is not in "
                        f"{Path(missing.value) / 'MNIST' / 'raw'}; give the folder that holds it now with {option}") from None


def load_run(path: str | Path, weights: str = "best", device: str | torch.device = "cpu",
             data_root: Optional[str] = None, key: Optional[str] = None, data_option: str = API_DATA_OPTION) -> Run:
    """Open the run folder at ``path`` with its ``best`` (lowest validation loss) or ``last`` weights:
    the one way a trained run is read (`vae-lab eval`, the explorer, the Python API, the benchmarks).
    ``data_root``: read MNIST from there instead of the run's data.root; ``key``: the option that
    named the folder, and ``data_option`` the way to give ``data_root``, for messages about them."""
    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    run, config, model, checkpoint = open_weights(path, weights, device, data_root, key)
    return Run(run.path, config, run.history(), run.final_metrics() if run.is_complete else {},
               model.eval(), int(checkpoint["epoch"]), device, data_option=data_option)


def open_weights(path: str | Path, weights: str, device: torch.device, data_root: Optional[str] = None,
                 key: Optional[str] = None) -> tuple[RunDir, TrainConfig, VAE, dict]:
    """A run folder's config and its model with its best or last weights, and their checkpoint: what
    :func:`load_run` and `vae-lab eval` share (eval reads no history or final metrics, so a damaged
    metrics.jsonl or metrics.json does not stop it)."""
    if weights not in WEIGHTS:
        raise UserError(f"weights={weights!r}: expected one of {', '.join(WEIGHTS)}")
    run = RunDir.open(path, weights, key)
    config = train_config_from_dict(run.read_config(), run.config)
    if data_root is not None:
        config.data.root = str(Path(data_root).expanduser().resolve())
    model, checkpoint = load_model(run, config, device, weights)
    return run, config, model, checkpoint


def evaluate_run(run_dir: str, device_name: str, eval_config: EvalConfig, data_root: Optional[str] = None,
                 out_dir: Optional[str] = None) -> tuple[Path, dict[str, float]]:
    """Reload a finished (or interrupted) run and recompute its metrics and figures into ``out_dir``
    (default <run>/eval); returns that folder and the metrics."""
    device = resolve_device(device_name)
    run, config, model, best = open_weights(run_dir, "best", device, data_root, key="run_dir")
    config.eval = eval_config
    splits = trained_data(config, device, "data_root=PATH")
    log.info("evaluating %s (best epoch %d) on %s", run.path, best["epoch"], device)
    history, snapshots = training_record(run)  # a damaged one costs only its figure
    governor = govern_threads(config.trainer.threads, device)  # as the run was trained
    started = time.perf_counter()
    out = Path(out_dir).expanduser().resolve() if out_dir else run.eval
    metrics = report(model, splits, config, history, snapshots, out / "metrics.json", out,
                     extra={"best_epoch": best["epoch"]}, tick=governor.tick)
    log.info("evaluation took %.1f s", time.perf_counter() - started)
    return out, metrics


def training_record(run: RunDir) -> tuple[list[dict], list[dict]]:
    """The per-epoch metrics and figure snapshots of a run, for its curves and training GIF. Neither
    is needed to evaluate the best weights: a missing or damaged file costs only its figure."""
    history: list[dict] = []
    snapshots: list[dict] = []
    try:
        history = run.history()
    except DamagedFile as damaged:
        log.warning("%s: no training curves", damaged)
    if run.last_checkpoint.is_file():
        try:
            last = run.load_last()
            snapshots = last.get("snapshots", [])  # runs from before snapshots were kept have none
            history = history or last.get("history", [])
        except DamagedFile as damaged:
            log.warning("%s: no training animation", damaged)
    return history, snapshots


# ---- the end of training ------------------------------------------------------------------------


def conclude(members: list[Member], splits: Splits, logs=None,
             tick: Callable[[], None] = lambda: None) -> dict[Member, object]:
    """Each trained member's final metrics, or the failure that ended it (recorded in error.txt).
    The best weights of every member that finished are evaluated together; each then draws its
    figures and writes its metrics.json. ``logs``: a population's MemberLogs (vae_lab/progress.py),
    so that each member's report goes to its own train.log."""
    outcomes: dict[Member, object] = {}
    finished: list[tuple[Member, VAE, dict]] = []
    for member in members:
        try:
            if member.failure is not None:
                raise member.failure
            finished.append((member, *load_model(member.run, member.config, member.model.device)))
        except RunFailed as failure:
            record_failure(member.run, failure)
            outcomes[member] = failure
        except Exception as error:  # noqa: BLE001  reported by the caller (the CLI, or the launcher)
            outcomes[member] = error
    if not finished:
        return outcomes
    try:
        with Stopwatch() as clock:
            metrics = final_metrics([model for _, model, _ in finished], splits, [m.config for m, _, _ in finished],
                                    tick)
        evaluation_share = (clock.now() - clock.started) / len(finished)
    except Exception as error:  # noqa: BLE001
        return {**outcomes, **{member: error for member, _, _ in finished}}
    for (member, model, best), mine in zip(finished, metrics):
        with logs.working_for(member.run.path) if logs is not None else contextlib.nullcontext():
            try:
                outcomes[member] = finish(member, splits, model, best, mine, evaluation_share)
            except Exception as error:  # noqa: BLE001
                outcomes[member] = error
    return outcomes


def finish(member: Member, splits: Splits, model: VAE, best: dict, metrics: dict, evaluation_s: float = 0.0) -> dict:
    """The figures of the best weights, then metrics.json. ``cost_s`` is the compute the run took: its
    share of each epoch of its population (of all its attempts), of the final evaluation
    (``evaluation_s``) and its figures."""
    config, run, history = member.config, member.run, member.history
    # The best epoch's validation numbers: what a hyperparameter search may select on (never test/).
    validation = next(({k: v for k, v in row.items() if k.startswith("val/")}
                       for row in history if row["epoch"] == best["epoch"]), {})
    metrics = report(model, splits, config, history, member.snapshots, run.metrics, run.figures, metrics=metrics, extra={
        **validation,
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "train/images_per_s": float(np.mean([row["train/images_per_s"] for row in history])),
        "train_s": float(sum(row["epoch_s"] for row in history)),
        "cost_s": float(sum(row["epoch_s"] / row.get("train/members", 1) for row in history)) + evaluation_s,
    })
    member.log("test/nelbo %.2f nats (best epoch %d of %d)", metrics["test/nelbo"], best["epoch"], len(history))
    for warning in unused_parts(model.spec, metrics):
        log.warning("%s", warning, extra={"run": run.path})
    figures = sorted(run.figures.glob("*.*")) if run.figures.is_dir() else []
    member.trackers.finish(metrics, figures, lambda: projector_points(model, splits, config))
    return metrics


# Nats per image below which a latent part is said to be unused: its traversal rows change nothing.
UNUSED_NATS = 0.5


def unused_parts(spec, metrics: dict) -> list[str]:
    """A line for each part of the code (Gaussian, categorical) that carries almost nothing on the
    test split, with what usually brings it in (docs/findings/model-types.md)."""
    found = []
    for part, present, term, remedy in (
            ("Gaussian", spec.continuous, "test/kl", "a lower model.beta, or more epochs"),
            ("categorical", spec.discrete, "test/kl_disc",
             "fewer Gaussian dimensions (model.latent_dim), which the decoder otherwise relies on alone, bring it "
             "in; JointVAE's capacity control (model.capacity.enabled=true) makes it carry its target, at a cost "
             "in NELBO (docs/findings/model-types.md)")):
        nats = metrics.get(term)
        if present and isinstance(nats, (int, float)) and nats < UNUSED_NATS:
            found.append(f"the {part} part of the code carries {nats:.2f} nats per image (test/{term[5:]}): almost "
                         f"unused, so its traversal rows change nothing; {remedy}")
    return found


def projector_points(model: VAE, splits: Splits, config: TrainConfig) -> Embedding:
    """The first test images' codes for an embedding projector, with their digit (and hue bin)."""
    test = splits.test
    count = min(len(test), config.logger.tensorboard.projector_images)
    batch = test.batch(torch.arange(count, device=test.device))
    with evaluating(model):
        codes = torch.cat([model.embed(batch.images[i:i + config.eval.batch_size]).float()
                           for i in range(0, count, config.eval.batch_size)])
    labels = {"digit": batch.labels.tolist(), "test image": list(range(count))}
    if batch.hue_bins is not None:
        labels["hue bin"] = batch.hue_bins.tolist()
    return Embedding(codes.cpu(), batch.images.cpu(), labels)
