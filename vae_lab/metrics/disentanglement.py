"""How a code separates the factors that made the data, by the field's standard numbers.

Random-color MNIST has two known factors per image, its digit and its hue bin. The code of an image
is what ``model.embed`` gives (Gaussian posterior means; a categorical variable as its category
probabilities, one dimension per category). Each metric is in [0, 1], 1 the best:

- **MIG** (Chen et al. 2018): per factor, the mutual information of its most informative code
  dimension minus that of the second, over the factor's entropy; averaged over factors. Each
  dimension is discretised into ``bins`` equal-width bins, as in disentanglement_lib.
- **SAP** (Kumar et al. 2018): per factor, each code dimension alone predicts it (a decision tree on
  that one dimension, so that an interval of values can stand for a class); its test accuracy above
  chance, over what is possible above chance; the best dimension's score minus the second's,
  averaged over factors.
- **DCI** (Eastwood & Williams 2018): per factor, gradient-boosted trees (``gbt``, as in
  disentanglement_lib; each split considers at most ``GBT_SPLIT_DIMENSIONS`` dimensions, so that
  a code of hundreds of dimensions is measured in well under a minute) or a lasso on the factor's one-hot
  classes (``lasso``, as in the paper) predict it from the whole standardised code. Their feature
  importances (the lasso's absolute weights) make a matrix R of code dimensions by factors.
  *Disentanglement*: each dimension's importance concentrated on one factor, 1 - its entropy over
  factors (log base the number of factors), weighted by the dimension's share of the importance.
  *Completeness*: each factor's importance concentrated on one dimension, 1 - its entropy over
  dimensions (log base their number), averaged over factors. *Informativeness*: the predictors' test
  accuracy, averaged over factors (chance is about 1 / classes).

The estimators are fit on training images and scored on test images (MIG on the test images);
their sample sizes are ``eval.disentanglement_train`` and ``eval.disentanglement_test``.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import Lasso
from sklearn.metrics import mutual_info_score
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from vae_lab.data import ImageSet
from vae_lab.progress import progress

MIG_BINS = 20
SAP_TREE_LEAVES = 32  # at least: enough intervals for a factor of 10 or 12 classes along one dimension
GBT_SPLIT_DIMENSIONS = 32  # dimensions a split chooses among (all of a smaller code)
LASSO_ALPHA = 0.01  # on standardised codes and one-hot targets
ESTIMATORS = ("gbt", "lasso")


def factors(data: ImageSet, count: int) -> dict[str, np.ndarray]:
    """The known factors of the first ``count`` images, by name (color MNIST: the digit and the hue
    bin; dSprites: shape, scale, orientation and position)."""
    if data.factors is None:
        return {}
    values = data.factors[:count].cpu().numpy()
    return {name: values[:, i] for i, name in enumerate(data.info.factor_names)}


def disentanglement_metrics(model, train: ImageSet, test: ImageSet, batch_size: int, train_images: int,
                            test_images: int, estimator: str = "gbt") -> dict[str, float]:
    """``mig``, ``sap``, ``dci_disentanglement``, ``dci_completeness`` and ``dci_informativeness`` of
    the model's codes against the data's known factors (at least two are needed; else {})."""
    n_train, n_test = min(train_images, len(train)), min(test_images, len(test))
    train_factors, test_factors = factors(train, n_train), factors(test, n_test)
    if len(test_factors) < 2:
        return {}
    with progress(desc="disentanglement", total=4, unit="step") as bar:
        codes = [torch.cat([model.embed(b.images).double() for b in data.batches(batch_size, n)]).cpu().numpy()
                 for data, n in ((train, n_train), (test, n_test))]
        bar.update()
        scores = {"mig": mig(codes[1], test_factors)}
        bar.update()
        scores["sap"] = sap(codes[0], train_factors, codes[1], test_factors)
        bar.update()
        scores.update({f"dci_{k}": v for k, v in dci(codes[0], train_factors, codes[1], test_factors,
                                                      estimator).items()})
        bar.update()
    return scores


def mig(codes: np.ndarray, factors: dict[str, np.ndarray], bins: int = MIG_BINS) -> float:
    """The mutual information gap, averaged over factors."""
    discrete = [_binned(column, bins) for column in codes.T]
    gaps = []
    for values in factors.values():
        information = sorted((mutual_info_score(values, column) for column in discrete), reverse=True)
        entropy = mutual_info_score(values, values)
        second = information[1] if len(information) > 1 else 0.0
        gaps.append((information[0] - second) / entropy if entropy > 0 else 0.0)
    return float(np.mean(gaps))


def _binned(column: np.ndarray, bins: int) -> np.ndarray:
    edges = np.histogram_bin_edges(column, bins)
    return np.digitize(column, edges[1:-1])


def sap(train_codes: np.ndarray, train_factors: dict[str, np.ndarray], test_codes: np.ndarray,
        test_factors: dict[str, np.ndarray]) -> float:
    """The separated attribute predictability, averaged over factors."""
    gaps = []
    for name, y_train in train_factors.items():
        y_test = test_factors[name]
        chance = np.bincount(y_test).max() / len(y_test)  # always guessing the commonest class
        scores = []
        for d in range(train_codes.shape[1]):
            leaves = max(SAP_TREE_LEAVES, 2 * (int(y_train.max()) + 1))  # dSprites' 40 orientations: 80
            tree = DecisionTreeClassifier(max_leaf_nodes=leaves, random_state=0)
            accuracy = tree.fit(train_codes[:, d:d + 1], y_train).score(test_codes[:, d:d + 1], y_test)
            scores.append(max(0.0, (accuracy - chance) / (1 - chance)))
        scores.sort(reverse=True)
        gaps.append(scores[0] - (scores[1] if len(scores) > 1 else 0.0))
    return float(np.mean(gaps))


def dci(train_codes: np.ndarray, train_factors: dict[str, np.ndarray], test_codes: np.ndarray,
        test_factors: dict[str, np.ndarray], estimator: str = "gbt") -> dict[str, float]:
    """Disentanglement, completeness and informativeness. The factors' predictors are fit side by
    side, one thread each (a tree is grown without holding Python's lock), up to the threads torch may
    use: the same predictors as one after another."""
    scaler = StandardScaler().fit(train_codes)
    x_train, x_test = scaler.transform(train_codes), scaler.transform(test_codes)
    fit = lambda name: _predict(x_train, train_factors[name], x_test, estimator)  # noqa: E731
    with ThreadPoolExecutor(max(1, min(len(train_factors), torch.get_num_threads()))) as threads:
        fitted = list(threads.map(fit, train_factors))
    importance = [weights / weights.sum() if weights.sum() > 0 else weights for weights, _ in fitted]
    accuracy = [float(np.mean(predicted == test_factors[name])) for name, (_, predicted) in zip(train_factors, fitted)]
    r = np.stack(importance, axis=1)  # [dimensions, factors]
    return {"disentanglement": _disentanglement(r), "completeness": _completeness(r),
            "informativeness": float(np.mean(accuracy))}


def _predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, estimator: str
             ) -> tuple[np.ndarray, np.ndarray]:
    """One factor's predictor from the whole code: each dimension's importance, and its test predictions."""
    if estimator == "gbt":
        model = GradientBoostingClassifier(max_features=min(x_train.shape[1], GBT_SPLIT_DIMENSIONS),
                                           random_state=0).fit(x_train, y_train)
        return model.feature_importances_, model.predict(x_test)
    classes = np.unique(y_train)
    model = Lasso(alpha=LASSO_ALPHA).fit(x_train, (y_train[:, None] == classes).astype(float))
    return np.abs(model.coef_).sum(0), classes[model.predict(x_test).argmax(1)]


def _entropy(p: np.ndarray, base: int) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(base)) if base > 1 else 0.0


def _disentanglement(r: np.ndarray) -> float:
    per_dimension = r.sum(1)
    if per_dimension.sum() == 0:
        return 0.0
    scores = [1 - _entropy(row / total, r.shape[1]) if total > 0 else 0.0 for row, total in zip(r, per_dimension)]
    return float(np.dot(scores, per_dimension / per_dimension.sum()))


def _completeness(r: np.ndarray) -> float:
    scores = [1 - _entropy(column / column.sum(), r.shape[0]) if column.sum() > 0 else 0.0 for column in r.T]
    return float(np.mean(scores))
