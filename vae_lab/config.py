"""Typed configuration: the schemas Hydra composes into, and the checks made before any work.

Each config group has a dataclass schema (stored in Hydra's ConfigStore under ``schema/<group>`` by
vae_lab/compose.py); the YAML files in ``conf/`` extend a schema and give its values. OmegaConf
enforces the types while composing. Allowed values and ranges are declared beside each field
(``at_least(1)``, ``one_of(...)``) and :func:`validate` checks them all, naming the first bad key,
its value and what is allowed. Pluggable parts (models, backbones) keep their schema next to their code and register both
in a :class:`Registry`, so a new one is one module plus one YAML file.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Optional, TypeVar

from omegaconf import MISSING, OmegaConf

from vae_lab.errors import ConfigError, UserError  # noqa: F401  (re-exported)

DATA_ROOT_ENV = "VAE_LAB_DATA"
"""Environment variable that ``data.root`` defaults to (else ``./data``)."""


# ---- declarative field checks ----------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    accepts: Callable[[Any], bool]
    expected: str  # completes "expected ...", e.g. "a number >= 1"
    why_not: Optional[Callable[[Any], str]] = None  # a reason more precise than `expected`

    def problem(self, value: Any) -> str:
        return self.why_not(value) if self.why_not is not None else f"expected {self.expected}"


def checked(check: Check, default: Any = MISSING) -> Any:
    return field(default=default, metadata={"check": check})


def _finite_number(accepts: Callable[[Any], bool], expected: str) -> Check:
    return Check(lambda v: math.isfinite(v) and accepts(v), expected,
                 why_not=lambda v: f"expected {expected}" if math.isfinite(v) else f"expected a finite number, {expected}")


def at_least(low: float, default: Any = MISSING) -> Any:
    return checked(_finite_number(lambda v: v >= low, f"a number >= {low}"), default)


def greater_than(low: float, default: Any = MISSING) -> Any:
    return checked(_finite_number(lambda v: v > low, f"a number > {low}"), default)


SEED_LIMIT = 2**32  # NumPy's seeds are 32-bit


def seed_value(default: Any = MISSING) -> Any:
    return checked(Check(lambda v: 0 <= v < SEED_LIMIT, f"an integer from 0 to {SEED_LIMIT - 1}"), default)


def fraction(default: Any = MISSING) -> Any:
    """A number in [0, 1)."""
    return checked(Check(lambda v: 0 <= v < 1, "a number in [0, 1)"), default)


def one_of(*choices: str, default: Any = MISSING) -> Any:
    return checked(Check(lambda v: v in choices, "one of " + ", ".join(choices)), default)


def positive_ints(default: Any = MISSING) -> Any:
    return checked(Check(lambda v: len(v) > 0 and all(n >= 1 for n in v),
                         "a non-empty list of integers >= 1"), default)


def optional_positive(default: Any = None) -> Any:
    return checked(Check(lambda v: v is None or (math.isfinite(v) and v > 0), "null (off) or a finite number > 0"),
                   default)


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def device_choice(default: Any = MISSING) -> Any:
    return checked(Check(
        lambda v: v in ("auto", "cpu") or (v == "cuda" and _cuda_visible()), "one of auto, cpu, cuda",
        why_not=lambda v: ("no CUDA GPU is visible on this machine; use auto or cpu" if v == "cuda"
                           else "expected one of auto, cpu, cuda")), default)


def validate(node: Any, prefix: str = "") -> None:
    """Check every declared field of a typed config, depth first; raise the first ConfigError.

    A schema may also define ``cross_check()`` for rules that involve several of its fields.
    """
    for f in dataclasses.fields(node):
        key, value = prefix + f.name, getattr(node, f.name)
        check = f.metadata.get("check")
        if check is not None and not check.accepts(value):
            raise ConfigError(key, value, check.problem(value))
        if dataclasses.is_dataclass(value):
            validate(value, key + ".")
    cross_check = getattr(node, "cross_check", None)
    if cross_check is not None:
        try:
            cross_check()
        except ConfigError as error:
            raise error.under(prefix.rstrip(".")) from None


# ---- schemas of the fixed groups ---------------------------------------------------------------


@dataclass
class ModelConfig:
    """What every model type has; each model module extends it with its own fields."""

    name: str = MISSING
    beta: float = at_least(0)
    beta_warmup_steps: int = at_least(0, default=0)  # beta rises linearly from 0 over these training steps
    likelihood: str = one_of("bernoulli", "gaussian")
    obs_std: float = greater_than(0)  # standard deviation of the Gaussian decoder (likelihood=gaussian)

    def reconstructs_each_image(self) -> bool:
        """Whether training yields one reconstruction per image (what image-space losses compare)."""
        return True

    def stackable(self) -> bool:
        """Whether runs of this model can train as one stacked population (vae_lab/population.py)."""
        return True

    def code_starts_empty(self) -> bool:
        """Whether the objective holds the code near 0 nats at the start (capacity control, whose
        targets rise from 0), so that at first the decoder can only learn to ignore it."""
        return False

    def summary(self) -> str:
        """The settings that tell runs apart, for captions; subclasses put theirs in front."""
        return self.kl_weighting()

    def kl_weighting(self) -> str:
        """How the objective weighs the KL, for captions."""
        return f"beta {self.beta:g}"


@dataclass
class BackboneConfig:
    """What every backbone has; each backbone extends it with its own fields."""

    name: str = MISSING


@dataclass
class DataConfig:
    name: str = one_of("mnist", "color_mnist", "fashion_mnist", "dsprites", "folder", "tensors")
    root: str = checked(Check(lambda v: v != "", "a folder path"))  # holds MNIST/raw/ (FashionMNIST/raw/)
    path: Optional[str] = None  # data=folder: a folder of class folders; data=tensors: a .pt or .npz file
    test_fraction: float = checked(Check(lambda v: 0 < v < 1, "a number in (0, 1)"), 0.1)  # held out as the test split where the data has none
    download: bool = MISSING  # fetch MNIST with torchvision when it is not under root
    binarize: str = one_of("none", "dynamic", "static")
    image_size: int = at_least(8, default=28)  # pixels per side; MNIST's 28, or each image resized to it as it loads
    val_fraction: float = fraction()  # share of the training split held out for validation
    seed: int = seed_value()  # fixes the dataset: validation split, colors, static binarization
    hue_bins: int = at_least(2)  # color_mnist: number of hue classes kept as each sample's color label
    n_train: Optional[int] = None  # training images kept, a random subset fixed by seed (null: all not held out)
    n_labels: Optional[int] = None  # training labels a semi-supervised model may use (null: all)
    labelled_per_batch: int = at_least(0)  # labelled images added to every training batch

    def cross_check(self) -> None:
        if self.n_train is not None and self.n_train < 1:
            raise ConfigError("n_train", self.n_train, "expected null (every training image) or a number >= 1")
        if self.n_labels is not None and self.n_labels < 1:
            raise ConfigError("n_labels", self.n_labels,
                              "expected null (every label) or a multiple of the classes (as many of each)")


@dataclass
class TrainerConfig:
    epochs: int = at_least(1)
    batch_size: int = at_least(1)
    lr: float = greater_than(0)
    start_at_mean_image: bool = MISSING  # decoder's per-pixel bias = logit of the training set's mean image
    device: str = device_choice()
    precision: str = one_of("auto", "fp32", "bf16")  # bf16: autocast the forward pass; auto: bf16 where native
    compile: bool = MISSING  # torch.compile the model
    grad_clip: Optional[float] = optional_positive()  # max gradient norm
    resume: bool = MISSING  # continue the run in hydra.run.dir from checkpoints/last.pt
    threads: Optional[int] = checked(Check(lambda v: v is None or v >= 1,
                                           "null (automatic: the cores other processes leave free) or a number >= 1"),
                                     default=None)  # CPU threads for torch


@dataclass
class EvalConfig:
    batch_size: int = at_least(1)
    is_samples: int = at_least(0)
    is_rows: int = at_least(1)
    precision: str = one_of("auto", "fp32", "bf16")  # importance sampling's, and traversal control's classifier
    epoch_images: int = at_least(1)
    probe_images: int = at_least(10)
    sample_images: int = at_least(0)
    traversal_images: int = at_least(0)  # test codes swept for traversal control (0: skip)
    tsne_points: int = at_least(0)
    disentanglement_train: int = at_least(0, default=2000)  # training images SAP and DCI fit on (0: skip)
    disentanglement_test: int = at_least(10, default=5000)  # test images MIG, SAP and DCI score
    dci_estimator: str = one_of("gbt", "lasso", default="gbt")
    figures: bool = MISSING


@dataclass
class AdversarialConfig:
    enabled: bool = MISSING
    kind: str = one_of("hinge", "non_saturating")
    weight: float = at_least(0)    # of the generator's term (see adaptive)
    adaptive: bool = MISSING       # weight relative to the likelihood's gradient (VQGAN), or per pixel position
    start_step: int = at_least(0)  # optimizer step from which the discriminator trains and is listened to
    lr: float = greater_than(0)    # the discriminator's Adam
    channels: int = at_least(1)    # width of the discriminator's first layer
    layers: int = at_least(1)      # its stride-2 convolutions


@dataclass
class PerceptualConfig:
    enabled: bool = MISSING
    weight: float = at_least(0)
    weights: str = one_of("imagenet", "none")  # none: an untrained VGG16 (tests; no download)
    layers: list[str] = checked(Check(lambda v: len(v) > 0 and set(v) <= {"relu1_2", "relu2_2", "relu3_3", "relu4_3"},
                                      "a non-empty list of relu1_2, relu2_2, relu3_3, relu4_3"))


@dataclass
class LossConfig:
    """Image-space losses beside the VAE's likelihood (vae_lab/image_losses.py)."""

    name: str = MISSING
    adversarial: AdversarialConfig = MISSING
    perceptual: PerceptualConfig = MISSING

    @property
    def enabled(self) -> bool:
        return self.adversarial.enabled or self.perceptual.enabled


@dataclass
class TensorBoardConfig:
    projector_images: int = at_least(0)  # test images whose latents go to the embedding projector
    sample_images: int = at_least(0)  # prior samples drawn each epoch (the same noise every epoch)


@dataclass
class MlflowConfig:
    tracking_uri: Optional[str] = None  # null: $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db
    experiment: str = checked(Check(lambda v: v != "", "an experiment name"))


@dataclass
class CsvConfig:
    file: str = checked(Check(lambda v: v != "" and "/" not in v, "a file name (no folder)"))


@dataclass
class LoggerConfig:
    """The experiment trackers a run mirrors its metrics to (vae_lab/trackers/); null: not used."""

    tensorboard: Optional[TensorBoardConfig] = None
    mlflow: Optional[MlflowConfig] = None
    csv: Optional[CsvConfig] = None
    sweep: Optional[str] = None  # set by `vae-lab sweep`: the sweep folder (MLflow nests the run under it)


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    backbone: BackboneConfig = MISSING
    data: DataConfig = MISSING
    trainer: TrainerConfig = MISSING
    eval: EvalConfig = MISSING
    loss: LossConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = seed_value()  # training randomness: initialisation, shuffling, sampling
    optimized_metric: Optional[str] = None  # the final metric `train` returns to a sweeper (Optuna)

    def cross_check(self) -> None:
        if self.loss.enabled and not self.model.reconstructs_each_image():
            key = "loss.adversarial.enabled" if self.loss.adversarial.enabled else "loss.perceptual.enabled"
            raise ConfigError(key, True, f"model={self.model.name} ({self.model.summary()}) has no single "
                                         "reconstruction per image for image-space losses to compare")
        if self.trainer.start_at_mean_image and self.model.code_starts_empty():
            raise ConfigError("trainer.start_at_mean_image", True,
                              "with capacity control the code starts out holding nothing, and a decoder that "
                              "already draws the mean image then learns to shut the code out for good (docs/findings/"
                              "jointvae.md); set trainer.start_at_mean_image=false")
        adversarial, size = self.loss.adversarial, self.data.image_size
        if adversarial.enabled and size // 2 ** adversarial.layers < 3:
            most = max(layers for layers in range(1, 32) if size // 2 ** layers >= 3)
            raise ConfigError("loss.adversarial.layers", adversarial.layers,
                              f"a {size}x{size} image allows at most {most}: each stride-2 layer halves it, and "
                              "the two layers after them need 3 pixels")
        if self.trainer.compile and self.loss.adversarial.enabled and self.loss.adversarial.adaptive:
            # Measured with torch 2.15 on CPU: after a retain_graph=True gradient through a compiled
            # model, the step's backward gave the output layer a gradient of norm 2.2 instead of 48.
            raise ConfigError("trainer.compile", True,
                              "the adaptive adversarial weight differentiates the model twice per step, and "
                              "torch.compile's backward then returns wrong gradients; set trainer.compile=false "
                              "or loss.adversarial.adaptive=false")


@dataclass
class EvalRunConfig:
    """`vae-lab eval`: which run to reload, and how to evaluate it."""

    run_dir: str = checked(Check(lambda v: v != "", "the path of a run folder"))
    device: str = device_choice()
    data_root: Optional[str] = None  # read the data from here instead of the run's data.root
    out_dir: Optional[str] = None  # where the metrics and figures go (default: RUN_DIR/eval)
    eval: EvalConfig = MISSING


# ---- registries of pluggable parts -------------------------------------------------------------

T = TypeVar("T")


class Registry(Generic[T]):
    """The named implementations of one config group, each stored with its schema.

    ``@MODELS.register("continuous", ContinuousConfig)`` on a class makes ``model=continuous`` (with
    ``conf/model/continuous.yaml`` extending ``/schema/model/continuous``) build that class.
    """

    def __init__(self, group: str):
        self.group = group
        self._entries: dict[str, tuple[T, type]] = {}

    def register(self, name: str, schema: type) -> Callable[[T], T]:
        def add(entry: T) -> T:
            self._entries[name] = (entry, schema)
            return entry

        return add

    def __getitem__(self, name: str) -> T:
        return self._entry(name)[0]

    def schema(self, name: str) -> type:
        return self._entry(name)[1]

    def _entry(self, name: str) -> tuple[T, type]:
        if name not in self._entries:
            raise ConfigError(f"{self.group}.name", name, "expected one of " + ", ".join(self.names()))
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)


def as_dict(config: Any) -> dict:
    """A typed config as plain Python containers (for checkpoints and the run folder). Its values are
    taken as they are: a string that looks like ``${...}`` is data here, never resolved again."""
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return OmegaConf.to_container(config, resolve=True)
