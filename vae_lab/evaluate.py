"""Evaluation: loss terms over a split, and every final metric of trained models."""

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from vae_lab.data import ImageSet, Splits
from vae_lab.metrics import (disentanglement_metrics, importance_sampled_nll, latent_statistics,
                             population_reconstruction_quality, probe_accuracies, reference_classifier, sample_quality,
                             traversal_control)
from vae_lab.models import VAE
from vae_lab.device import resolve_precision
from vae_lab.hooks import TermMeans
from vae_lab.population import Population, can_stack
from vae_lab.progress import counting, progress

log = logging.getLogger(__name__)
# Where metrics.json keeps what each phase of the evaluation cost, in seconds (a model's share where a
# population was evaluated at once): {"loss_terms": 0.1, ..., "figures": 3.2}.
EVAL_SECONDS = "eval_s"


def with_totals(model: VAE, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loss terms plus the training objective (``loss``) and the negative ELBO (``nelbo``)."""
    return {"loss": model.objective(terms), "nelbo": model.nelbo(terms), **terms}


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the block; the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def loss_terms(population, seeds: list[int], data: ImageSet, batch_size: int) -> list[dict[str, float]]:
    """Each member's mean loss, negative ELBO and loss terms over a split, with one posterior draw per
    image from a generator seeded by its seed (so the numbers depend only on the weights, in any
    population), in full precision. ``population``: a vae_lab.population.Population (one model: a
    population of one)."""
    models = population.models
    generators = [torch.Generator(device=population.device).manual_seed(seed) for seed in seeds]
    population.train(False)
    means = TermMeans()
    with torch.no_grad(), progress(desc="loss terms", total=len(data), unit="image") as bar:
        for batch in counting(data.batches(batch_size), bar):
            noise = [model.draw_noise((len(batch),), g) for model, g in zip(models, generators)]
            batched = {"noise": torch.stack(population.pad_noise(noise))} if noise[0] is not None else {}
            terms = population.run("forward", batched, {"images": batch.images, "labels": batch.labels})
            means.add({"loss": population.objectives(terms), "nelbo": population.nelbos(terms), **terms})
    population.train(True)
    return means.per_member(len(models))


def stack_evaluation(device: torch.device) -> bool:
    """Whether evaluating many models is faster stacked than one by one: on a GPU, where one small
    model leaves most of the device idle. On a CPU each model's evaluation already keeps the cores
    busy, and stacked it was slower (docs/findings/performance.md)."""
    return device.type == "cuda"


def each_model(models: list[VAE], seeds: list[int], compute) -> list[dict]:
    """``compute(population, seeds)`` for every model: all at once where that pays (see
    :func:`stack_evaluation`) and the models stack, else one population of one after another."""
    if len(models) > 1 and stack_evaluation(models[0].device) and can_stack(models):
        return compute(Population.of(models), seeds)
    return [result for model, seed in zip(models, seeds) for result in compute(Population.of([model]), [seed])]


@dataclass(frozen=True)
class Section:
    """One phase of the final evaluation of a model: its key in metrics.json's ``eval_s``, its log
    title, the prefix of its numbers and the numbers it reports (scalars; some sections add lists)."""

    phase: str
    title: str
    prefix: str
    names: tuple[str, ...]


def sections(model: VAE, splits: Splits, settings) -> list[Section]:
    """The phases :func:`final_metrics` runs for this model, data and eval settings, in order, with
    the names of the numbers each reports: the one place both the evaluation and the names a
    sweeper may optimise (:func:`final_metric_names`) are read from. The loss terms are read off one
    forward pass on two training images; the caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []), evaluating(model):
        terms = with_totals(model, model(splits.train.batch(torch.arange(min(2, len(splits.train)),
                                                                         device=splits.train.device))))
    color = splits.train.hue_bins is not None
    labelled = splits.info.labelled  # what the probes and the reference classifier learn from
    found = [Section("loss_terms", "loss terms", "test", tuple(terms))]
    if settings.is_samples:
        precision = resolve_precision(settings.precision, model.device)
        found.append(Section("importance_sampled_nll", f"importance-sampled NLL ({settings.is_samples} samples, "
                             f"{precision})", "test", ("nll", "nll_se", "nll_samples", "bits_per_dim")))
    found += [Section("image_quality", "image quality", "test", ("mse", "psnr", "ssim")),
              Section("latent_statistics", "latent statistics", "test",
                      ("active_units",) * bool(model.spec.continuous)
                      + ("code_perplexity",) * bool(model.spec.discrete)
                      + ("cluster_acc", "code_mi") * (bool(model.spec.discrete) and labelled))]
    if labelled:
        found.append(Section("probes", "probes", "test", ("probe_acc", "knn_acc") + ("color_probe_acc",) * color))
    if settings.disentanglement_train and len(splits.info.factor_names) >= 2:
        found.append(Section("disentanglement", "disentanglement", "test",
                             ("mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness")))
    if settings.sample_images and labelled:
        found += [Section("reference_classifier", "reference classifier", "samples", ()),
                  Section("sample_quality", "sample quality", "samples",
                          ("confidence", "class_entropy", "fd") + ("label_acc",) * model.conditional
                          + ("stroke_chroma",) * color)]
        if settings.traversal_images:
            found.append(Section("traversal_control", "traversal control", "test", ("digit_control",) + (
                "hue_control", "hue_control_digit_change", "digit_control_hue_change") * color))
    return found


def final_metrics(models: list[VAE], splits: Splits, configs: list,
                  tick: Callable[[], None] = lambda: None) -> list[dict]:
    """Every metric of each trained model: the same numbers for the same seed, at the end of training
    (for a whole population at once) and in `vae-lab eval` (for one), phase by phase as
    :func:`sections` lists them. Loss terms, likelihood and reconstruction quality are computed in
    one stacked pass where that pays (:func:`each_model`); the rest model by model. Test-split
    metrics are named ``test/...``, sample metrics ``samples/...``. The caller's random state is left
    as it was. ``tick``: see vae_lab/device.py."""
    settings = configs[0].eval  # the same for every member of a population
    seeds = [config.seed for config in configs]
    cuda = [models[0].device] if models[0].device.type == "cuda" else []
    metrics: list[dict] = [{} for _ in models]
    count = f" of {len(models)} models" if len(models) > 1 else ""
    precision = resolve_precision(settings.precision, models[0].device)
    found: dict = {}  # what one section hands the next: the reference classifier

    def each(compute):  # model by model
        return lambda: [compute(model, config) for model, config in zip(models, configs)]

    def stacked(compute):  # in one pass where that pays
        return lambda: each_model(models, seeds, compute)

    def reference():
        found["reference"] = reference_classifier(configs[0].data, splits, models[0].device)
        return [{} for _ in models]

    computes = {
        "loss_terms": stacked(lambda population, s: loss_terms(population, s, splits.test, settings.batch_size)),
        "importance_sampled_nll": stacked(lambda population, s: importance_sampled_nll(
            population, s, splits.test, settings.is_samples, settings.is_rows, precision, tick)),
        "image_quality": stacked(lambda population, s: population_reconstruction_quality(
            population, splits.test, settings.batch_size)),
        "latent_statistics": each(lambda m, c: latent_statistics(m, splits.test, settings.batch_size)),
        "probes": each(lambda m, c: probe_accuracies(m, splits.train, splits.test, settings.batch_size,
                                                     settings.probe_images)),
        "disentanglement": each(lambda m, c: disentanglement_metrics(
            m, splits.train, splits.test, settings.batch_size, settings.disentanglement_train,
            settings.disentanglement_test, settings.dci_estimator)),
        "reference_classifier": reference,
        "sample_quality": each(lambda m, c: sample_quality(m, found["reference"], splits.test, settings.sample_images,
                                                          settings.batch_size, c.seed)),
        "traversal_control": each(lambda m, c: traversal_control(m, found["reference"], splits.test,
                                                                  settings.traversal_images, precision=precision)),
    }
    with torch.random.fork_rng(devices=cuda), contextlib.ExitStack() as modes:
        planned = sections(models[0], splits, settings)
        for model in models:
            modes.enter_context(evaluating(model))
        torch.manual_seed(seeds[0])
        for section in planned:
            tick()
            started = time.perf_counter()
            for mine, values in zip(metrics, computes[section.phase]()):
                mine.update({f"{section.prefix}/{key}": value for key, value in values.items()})
            seconds = time.perf_counter() - started
            for mine in metrics:
                mine.setdefault(EVAL_SECONDS, {})[section.phase] = seconds / len(models)
            log.info("%s%s: %.1f s", section.title, count, seconds)
    return metrics


# What `finish` adds to the metrics of final_metrics.
RUN_METRICS = ("best_epoch", "epochs", "train/images_per_s", "train_s", "cost_s")


def final_metric_names(model: VAE, splits: Splits, config) -> set[str]:
    """The names of the numbers :func:`final_metrics` and the end of training will report for this
    model and config, known before training (to check ``optimized_metric`` before any work)."""
    planned = sections(model, splits, config.eval)
    validation = [f"val/{name}" for name in planned[0].names] if len(splits.val) else []  # the best epoch's
    return {*(f"{s.prefix}/{name}" for s in planned for name in s.names), *validation, *RUN_METRICS}
