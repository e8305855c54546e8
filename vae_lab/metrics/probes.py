"""Latent quality: how well simple classifiers read the digit (and, on color_mnist, the tint) off
the latent codes. Fit on the training split, scored on the test split, with scikit-learn."""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vae_lab.data import ImageSet
from vae_lab.metrics.codes import categorical_code_metrics
from vae_lab.progress import progress


def _codes(model, data: ImageSet, batch_size: int, limit: int) -> np.ndarray:
    # float64: category probabilities saturate to values whose float32 variance rounds to 0, and
    # the scaler would then divide by it.
    return torch.cat([model.embed(b.images).double() for b in data.batches(batch_size, limit)]).cpu().numpy()


def probe_accuracies(model, train: ImageSet, test: ImageSet, batch_size: int, train_images: int
                     ) -> dict[str, float]:
    """``probe_acc`` (logistic regression on standardised codes), ``knn_acc`` (5 nearest neighbours),
    on color_mnist ``color_probe_acc`` (logistic regression for the hue bin), and for a categorical
    latent ``cluster_acc`` and ``code_mi`` (vae_lab/metrics/codes.py)."""
    n = min(train_images, len(train))
    targets = {"probe_acc": (train.labels, test.labels)}
    if train.hue_bins is not None:
        targets["color_probe_acc"] = (train.hue_bins, test.hue_bins)
    bar = progress(desc="probes", total=len(targets) + 2, unit="step")
    bar.set_postfix_str("encoding")
    x_train, x_test = _codes(model, train, batch_size, n), _codes(model, test, batch_size, len(test))
    bar.update()
    scores = {}
    if model.spec.discrete:
        scores.update(categorical_code_metrics(torch.from_numpy(x_train), train.labels[:n], torch.from_numpy(x_test),
                                               test.labels, model.spec))
    varies = x_train.std(0) > 1e-12  # a constant unit (a dead dimension, an unused category) says nothing
    varies[0] |= not varies.any()  # a fully collapsed code: the probes score chance, not an error
    x_train, x_test = x_train[:, varies], x_test[:, varies]
    linear = lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))  # noqa: E731
    with bar:
        for name, (y_train, y_test) in targets.items():
            bar.set_postfix_str(f"{name}: logistic regression")
            scores[name] = linear().fit(x_train, y_train[:n].cpu().numpy()).score(x_test, y_test.cpu().numpy())
            bar.update()
        bar.set_postfix_str("knn_acc: 5 nearest neighbours")
        knn = KNeighborsClassifier(n_neighbors=5).fit(x_train, train.labels[:n].cpu().numpy())
        scores["knn_acc"] = knn.score(x_test, test.labels.cpu().numpy())
        bar.update()
    return {name: value if isinstance(value, list) else float(value) for name, value in scores.items()}
