"""A reference classifier for judging generated images, without downloading any weights.

A small CNN trained by vae-lab on the training split of the same data (same dataset, tint, binarization
and validation split; every training image, whatever data.n_train a model was given), once: it is
cached in the user's cache folder (:func:`cache_folder`), never beside the data, which may be shared or
read-only, and reused by every run on that data. Where the cache cannot be written it is trained for
each run and not kept: a cache must never cost a run.

It is an instrument, so it must be the same for every run: it trains on one CPU thread (a thread count
changes the order of the gradients' sums, and after a few epochs the weights are another classifier's,
whose features give other Frechet distances), and its cache is named by its recipe, which changes
whenever the way it is trained does.
"""

import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vae_lab.config import DataConfig
from vae_lab.data import ImageSet, Splits, load_splits
from vae_lab.data.mnist import IMAGE_SIZE
from vae_lab.device import one_thread
from vae_lab.errors import DamagedFile
from vae_lab.progress import counting, progress
from vae_lab.checkpoints import load_checkpoint
from vae_lab.files import atomic_write, cache_folder

log = logging.getLogger(__name__)
FEATURES = 128
EPOCHS = 3
TRAINING_IMAGES = 60_000  # at most: all of MNIST's training split, a fixed draw of a larger one
RECIPE = 2  # a new number whenever the classifier or its training changes: a cache of another is not used
# Images the classifier judges at once. A hundred-odd images' activations stay in a CPU's cache, a
# thousand do not; on a GPU it costs nothing (benchmarks/reference_pieces.py measures both).
PIECE = 128
# Two bfloat16 logits this close may be ordered otherwise in float32, so such images are judged again
# there: several times the largest difference between the two precisions' logits that decoded images
# show (docs/findings/performance.md#evaluation).
RECHECK_MARGIN = 0.5


class ReferenceClassifier(nn.Module):
    """Trained in the usual (channels-first) layout; :meth:`for_judging` then keeps its kernels
    channels-last, which oneDNN's convolutions run about twice as fast on a CPU, with the same
    numbers up to rounding (benchmarks/eval_cost.py)."""

    def __init__(self, image_shape: tuple[int, int, int], classes: int = 10, piece: int = PIECE):
        super().__init__()
        channels, height, width = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (height // 4) * (width // 4), FEATURES), nn.ReLU())
        self.classify = nn.Linear(FEATURES, classes)
        self.piece = piece  # images judged at once
        # Features of the data's test images, which every sample-quality score compares with: computed
        # once with the classifier and cached beside it (see reference_classifier).
        self.test_features: Optional[torch.Tensor] = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[N, FEATURES]: the features that the Frechet distance compares and :attr:`classify` reads,
        for at most ``piece`` images at a time (an image's features do not depend on those beside it,
        so these are one pass's numbers up to rounding)."""
        # The second convolution's kernels say the layout: the first's, of one input channel on grey
        # data, pass for both.
        judging = self.features[3].weight.is_contiguous(memory_format=torch.channels_last)
        layout = torch.channels_last if judging else torch.contiguous_format
        pieces = [self.features(part.contiguous(memory_format=layout)) for part in images.split(self.piece)]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def digits(self, images: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """[N] the digit read in each image, float32's reading in either precision. With ``precision``
        bf16 every image is judged in bfloat16 (about twice as fast on a CPU with native bf16) and
        those whose two highest logits lie within :data:`RECHECK_MARGIN` are judged again in float32:
        rounding moves a logit far less than that, so no other image's reading can differ."""
        if precision != "bf16":
            return self(images).argmax(-1)
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            logits = self(images).float()
        top = logits.topk(2, -1).values
        close = (top[:, 0] - top[:, 1] < RECHECK_MARGIN).nonzero().squeeze(-1)
        found = logits.argmax(-1)
        if len(close):
            found[close] = self(images[close]).argmax(-1)
        return found

    @torch.no_grad()
    def features_of(self, images: ImageSet, batch_size: int = 1000) -> torch.Tensor:
        """[N, FEATURES] :meth:`embed` of every image of a split."""
        return torch.cat([self.embed(batch.images.float()) for batch in images.batches(batch_size)])

    def for_judging(self) -> "ReferenceClassifier":
        return self.eval().to(memory_format=torch.channels_last)


def cache_path(config: DataConfig, data_hash: str) -> Path:
    """Where the classifier for this data is kept: named by its recipe, the data's settings and the
    content of its images (``data_hash``, as in Splits.fingerprint), so that two data folders of the
    same name never share one."""
    size = "" if (config.image_size,) * 2 == IMAGE_SIZE else f"-size{config.image_size}"
    name = (f"{config.name}{size}-binarize_{config.binarize}-seed{config.seed}-val{config.val_fraction:g}"
            f"-data{data_hash[:12]}-recipe{RECIPE}.pt")
    return cache_folder() / "reference" / name


def reference_classifier(config: DataConfig, splits: Splits, device: torch.device) -> ReferenceClassifier:
    """The cached classifier for this data, trained now if there is none yet."""
    path = cache_path(config, splits.fingerprint["sha256"])
    if path.is_file():
        try:
            cached = load_checkpoint(path, device)
            model = ReferenceClassifier(splits.image_shape, len(splits.info.class_names)).to(device)
            model.load_state_dict(cached["model"])
        except (DamagedFile, RuntimeError) as damaged:  # RuntimeError: weights of another shape
            log.warning("%s: training the reference classifier again", damaged)
        else:
            model.for_judging()
            model.test_features = cached.get("test_features")
            if model.test_features is None or len(model.test_features) != len(splits.test):
                model.test_features = model.features_of(splits.test)
                _cache(path, model, cached["test_acc"])
            return model
    if config.n_train is not None:  # the instrument is the same whatever share of the data a model saw
        splits = load_splits(replace(config, n_train=None), device)
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.enable_grad(), one_thread():
        torch.manual_seed(config.seed)  # its start is the data's seed's, not what the run drew before
        model = ReferenceClassifier(splits.image_shape, len(splits.info.class_names)).to(device)
        accuracy = _train(model, splits.train, splits.test)
    log.info("reference classifier for %s: test accuracy %.4f", config.name, accuracy)
    model.for_judging()
    model.test_features = model.features_of(splits.test)
    if _cache(path, model, accuracy):
        log.info("cached in %s", path)
    return model


def _cache(path: Path, model: ReferenceClassifier, accuracy: float) -> bool:
    """Keeps the classifier and its features of the test images in the cache; False where it cannot
    (said once: what is not kept is computed again next time)."""
    state = {"model": model.state_dict(), "test_acc": accuracy, "test_features": model.test_features.cpu()}
    try:
        atomic_write(path, lambda f: torch.save(state, f), binary=True)
        return True
    except OSError as error:
        log.warning("could not cache the reference classifier (%s): it is made again next time", error)
        return False


def _train(model: ReferenceClassifier, train: ImageSet, test: ImageSet) -> float:
    if len(train) > TRAINING_IMAGES:  # a fixed share of a large set (dSprites): as good an instrument, sooner
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        train = train.subset(order[:TRAINING_IMAGES].sort().values)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=train.device).manual_seed(0)
    model.train()
    bar = progress(desc="training the reference classifier (once per dataset)", total=EPOCHS * len(train),
                   unit="image")
    for _ in range(EPOCHS):
        for batch in counting(train.shuffled_batches(128, generator), bar):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(batch.images), batch.labels).backward()
            optimizer.step()
    bar.close()
    model.eval()
    with torch.no_grad():
        correct = sum((model(b.images).argmax(-1) == b.labels).sum().item() for b in test.batches(1000))
    return correct / len(test)
