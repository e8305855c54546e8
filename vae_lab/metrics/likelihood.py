"""The test log-likelihood, estimated by importance sampling with the encoder as proposal."""

import copy
import math
from typing import Callable

import torch

from vae_lab.data import ImageSet
from vae_lab.device import precision_context, resolve_precision
from vae_lab.population import Population
from vae_lab.progress import counting, progress


def importance_sampled_nll(population, seeds: list[int], data: ImageSet, n_samples: int, rows_per_pass: int,
                           precision: str = "fp32", tick: Callable[[], None] = lambda: None) -> list[dict[str, float]]:
    """For each member of a population (vae_lab/population.py; one model is a population of one):
    mean -log p(x) over ``data`` in nats, its standard error over images, the number of importance
    samples per image, and the mean in bits per dimension (see :func:`nll_per_image`)."""
    nll = nll_per_image(population, seeds, data, n_samples, rows_per_pass, precision, tick)
    dimensions = math.prod(data.image_shape) * math.log(2)
    return [{"nll": float(mine.mean()), "nll_se": float(mine.std() / math.sqrt(len(mine))),
             "nll_samples": n_samples, "bits_per_dim": float(mine.mean()) / dimensions} for mine in nll]


def nll_per_image(population, seeds: list[int], data: ImageSet, n_samples: int, rows_per_pass: int,
                  precision: str = "fp32", tick: Callable[[], None] = lambda: None) -> torch.Tensor:
    """-log p(x) of each image of ``data`` for each member, float64 [K, images], estimated from
    ``n_samples`` posterior draws per image (log-mean-exp of the importance weights; an upper bound
    on -log p(x) in expectation that tightens as ``n_samples`` grows).

    Each member's draws come from a generator seeded by its seed, image by image, so its estimate
    does not depend on how images are batched or which population it is computed in.
    ``rows_per_pass`` bounds the decoder passes made at once per member. With ``precision`` bf16
    (or auto, where bf16 is native) the networks run in bfloat16; the log-weights are summed and
    averaged in float32. ``tick`` is called at every batch (vae_lab/device.py).
    """
    chunk = min(n_samples, rows_per_pass)
    images_at_once = max(1, rows_per_pass // chunk)
    if resolve_precision(precision, population.device) == "bf16":
        population = matrices_in_bf16(population)
    models = population.models
    generators = [torch.Generator(device=population.device).manual_seed(seed) for seed in seeds]
    autocast = precision_context(precision, population.device)
    population.train(False)
    per_image = []
    bar = progress(desc="importance-sampled NLL", total=len(data), unit="image")
    with torch.no_grad(), bar:
        for batch in counting(data.batches(images_at_once), bar):
            tick()
            images = batch.images
            draws = [model.draw_noise((len(images), n_samples), g) for model, g in zip(models, generators)]
            log_weights = []
            for start in range(0, n_samples, chunk):
                size = min(chunk, n_samples - start)
                batched = {}
                if draws[0] is not None:  # [n, B, noise_size] for this chunk, in the population's layout
                    batched["noise"] = torch.stack(population.pad_noise(
                        [d[:, start:start + size].transpose(0, 1) for d in draws]))
                with autocast:
                    weights = population.run("log_importance_weights", batched, {"images": images},
                                             build=lambda images, noise=None: (images, size, noise))
                log_weights.append(weights.float())  # [K, B, size]
            per_image.append(torch.logsumexp(torch.cat(log_weights, -1), -1) - math.log(n_samples))
    population.train(True)
    return -torch.cat(per_image, -1).double()


def matrices_in_bf16(population):
    """A copy of the population whose weight matrices and kernels are bfloat16, cast once: autocast
    would cast them again at every pass (for 12 stacked MLPs, 7.8M numbers per decoder pass). Biases
    and norms stay float32, as under autocast."""
    models = [copy.deepcopy(model) for model in population.models]
    for model in models:
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.data = parameter.data.to(torch.bfloat16)
    return Population.of(models)
