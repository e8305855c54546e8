"""MIG, SAP and DCI (vae_lab/metrics/disentanglement.py) on hand-built codes whose answer is known,
and MIG's mutual information against a count by hand."""

import math

import numpy as np
import pytest

from vae_lab.metrics.disentanglement import dci, mig, sap

N = 3000


@pytest.fixture(scope="module")
def data():
    """Two independent factors like color MNIST's: a digit of 10 classes and a hue bin of 6."""
    rng = np.random.default_rng(0)
    return rng, {"digit": rng.integers(0, 10, N), "hue": rng.integers(0, 6, N)}


def halves(codes: np.ndarray, factors: dict) -> tuple:
    """Fit on the first half, score on the second."""
    h = len(codes) // 2
    return codes[:h], {k: v[:h] for k, v in factors.items()}, codes[h:], {k: v[h:] for k, v in factors.items()}


def test_a_code_that_copies_the_factors_scores_one(data):
    rng, factors = data
    codes = np.stack([factors["digit"], factors["hue"]], 1).astype(float)
    assert mig(codes, factors) > 0.98  # less only by the chance information between independent samples
    assert sap(*halves(codes, factors)) == pytest.approx(1, abs=0.01)
    scores = dci(*halves(codes, factors))
    assert scores["disentanglement"] > 0.97 and scores["completeness"] > 0.97
    assert scores["informativeness"] == 1.0


def test_a_code_independent_of_the_factors_scores_about_zero(data):
    rng, factors = data
    codes = rng.normal(size=(N, 4))
    assert mig(codes, factors) < 0.03
    assert sap(*halves(codes, factors)) < 0.05
    scores = dci(*halves(codes, factors))
    assert scores["informativeness"] < 0.25  # chance: about 0.10 for the digit and 0.17 for the hue
    assert scores["disentanglement"] < 0.2  # every dimension's importance spread over both factors


def test_a_code_that_mixes_two_factors_in_one_coordinate_is_informative_but_not_disentangled(data):
    rng, factors = data
    mixed = 6 * factors["digit"] + factors["hue"]  # one coordinate holds both
    codes = np.stack([mixed, rng.normal(size=N)], 1).astype(float)
    scores = dci(*halves(codes, factors))
    assert scores["informativeness"] > 0.97
    assert scores["disentanglement"] < 0.1
    copied = dci(*halves(np.stack([factors["digit"], factors["hue"]], 1).astype(float), factors))
    assert copied["disentanglement"] - scores["disentanglement"] > 0.85


def test_a_factor_spread_over_two_coordinates_is_disentangled_but_not_complete(data):
    """Half the digit in one coordinate, the other half in another: each coordinate serves one factor
    (disentangled), the digit is not in one place (incomplete), and MIG sees no gap for the digit."""
    rng, factors = data
    digit = factors["digit"]
    codes = np.stack([digit // 2, digit % 2, factors["hue"]], 1).astype(float)
    scores = dci(*halves(codes, factors))
    assert scores["disentanglement"] > 0.95 and scores["informativeness"] == 1.0
    assert scores["completeness"] < 0.8
    assert mig(codes, {"digit": digit}) < 0.4  # 0.7 of H(digit) in one coordinate, 0.3 in the other


def test_the_lasso_estimator_reads_one_hot_codes(data):
    """The lasso (a linear readout) needs codes that hold a class per dimension, like a categorical
    code's probabilities."""
    rng, factors = data
    codes = np.concatenate([np.eye(10)[factors["digit"]], np.eye(6)[factors["hue"]]], 1)
    scores = dci(*halves(codes, factors), estimator="lasso")
    assert scores["informativeness"] == 1.0 and scores["disentanglement"] > 0.95
    assert scores["completeness"] < 0.5  # each factor spread over its classes' dimensions


def test_mig_is_the_information_gap_over_the_entropy_counted_by_hand():
    """A code of three already-discrete dimensions (fewer values than bins, so binning keeps them)."""
    rng = np.random.default_rng(1)
    factor = rng.integers(0, 4, 4000)
    noise = rng.integers(0, 2, 4000)
    codes = np.stack([factor, factor // 2, noise], 1).astype(float)

    def information(a, b):
        joint = np.zeros((a.max() + 1, b.max() + 1))
        np.add.at(joint, (a, b), 1)
        joint /= joint.sum()
        outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
        nonzero = joint > 0
        return float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())

    entropy = information(factor, factor)
    assert entropy == pytest.approx(math.log(4), rel=0.01)
    expected = (information(factor, factor) - information(factor // 2, factor)) / entropy  # about 1 - 1/2
    assert mig(codes, {"factor": factor}) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("estimator", ["gbt", "lasso"])
def test_dci_fits_its_factors_side_by_side_with_the_numbers_of_one_after_another(data, estimator):
    import torch

    rng, factors = data
    codes = np.column_stack([factors["digit"] + rng.normal(0, 2, N), factors["hue"] + rng.normal(0, 1, N),
                             rng.normal(size=(N, 3))])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = dci(*halves(codes, factors), estimator)
        torch.set_num_threads(2)
        together = dci(*halves(codes, factors), estimator)
    finally:
        torch.set_num_threads(threads)
    assert together == alone
