"""The shared statistics: the HDI is ArviZ's, and one ECE serves evaluation and report."""

from __future__ import annotations

import logging
import warnings

import arviz as az
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irt_bayes import evaluation, report, router, routing
from irt_bayes.stats import HDI_PROB, calibration_bins, expected_calibration_error, hdi


def _az_hdi(x: np.ndarray, prob: float) -> np.ndarray:
    """ArviZ's HDI over the first axis of (sample, ...) draws."""
    logger = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its one-chain shape notice
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return az.hdi(x, hdi_prob=prob) if x.ndim == 1 else az.hdi(x[None], hdi_prob=prob)
    finally:
        logger.setLevel(level)


def test_one_hdi_prob_everywhere() -> None:
    assert HDI_PROB == 0.94
    assert report.HDI_PROB is router.HDI_PROB is routing.HDI_PROB is HDI_PROB


# ---------------------------------------------------------------------------------- HDI
@pytest.mark.parametrize("shape", [(500,), (7,), (400, 3), (333, 2, 4), (50, 1)])
@pytest.mark.parametrize("prob", [0.5, 0.8, HDI_PROB, 0.99])
def test_hdi_is_arviz_hdi(shape: tuple[int, ...], prob: float) -> None:
    x = np.random.default_rng(len(shape) * 100 + shape[0]).gamma(2.0, size=shape)  # skewed
    got = hdi(x, prob)
    assert got.shape == shape[1:] + (2,)
    np.testing.assert_array_equal(got, _az_hdi(x, prob))


def test_hdi_along_another_axis_and_with_ties() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 200))
    np.testing.assert_array_equal(hdi(x, 0.9, axis=1), hdi(x.T, 0.9))
    np.testing.assert_array_equal(hdi(x, 0.9, axis=1), _az_hdi(x.T, 0.9))
    ties = rng.integers(0, 3, size=(100, 4)).astype(float)
    np.testing.assert_array_equal(hdi(ties), _az_hdi(ties, HDI_PROB))


def test_hdi_known_values() -> None:
    np.testing.assert_array_equal(hdi(np.arange(11.0), 0.5), [0.0, 5.0])
    # 3 of 5 draws: [1, 4] is narrower than [2, 100]; the long tail is left out
    np.testing.assert_array_equal(hdi(np.array([4.0, 100.0, 2.0, 1.0, 3.0]), 0.6), [1.0, 4.0])
    x = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 3.0]])
    out = hdi(x, 0.5)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_hdi_refuses_what_has_no_interval() -> None:
    with pytest.raises(ValueError, match="hdi_prob"):
        hdi(np.arange(10.0), 1.0)
    with pytest.raises(ValueError, match="too few draws"):
        hdi(np.zeros((0, 3)), 0.5)
    np.testing.assert_array_equal(hdi(np.array([2.0]), 0.5), [2.0, 2.0])  # one draw


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=60),
    st.floats(0.05, 0.95),
)
def test_hdi_is_the_narrowest_interval_with_its_mass(values: list[float], prob: float) -> None:
    x = np.sort(np.array(values))
    lo, hi = hdi(x, prob)
    k = int(np.floor(prob * len(x)))  # the interval spans k + 1 draws
    assert ((x >= lo) & (x <= hi)).sum() >= k + 1
    assert hi - lo == min(x[i + k] - x[i] for i in range(len(x) - k))


# ---------------------------------------------------------------------------------- ECE
def test_ece_known_values() -> None:
    assert expected_calibration_error([0.25, 0.25, 0.75, 0.75], [0, 1, 1, 1]) == 0.25
    assert expected_calibration_error([0.25, 0.75], [0.25, 0.75]) == 0.0
    assert np.isnan(expected_calibration_error([], []))
    tab = calibration_bins([0.0, 0.05, 0.1, 0.95, 1.0], [0, 0, 1, 1, 1], bins=10)
    assert tab["bin"].tolist() == [0, 1, 9]  # 0.1 opens the second bin, 1 is in the last
    assert tab["n"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(tab["bin_low"], [0.0, 0.1, 0.9])
    np.testing.assert_allclose(tab["predicted"], [0.025, 0.1, 0.975])


def test_evaluation_ece_is_the_shared_one() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(400, 5))
    y = (rng.uniform(size=p.shape) < p**1.5).astype(float)
    y[rng.uniform(size=y.shape) < 0.2] = np.nan  # unobserved pairs do not count
    m = ~np.isnan(y)
    ece = evaluation.calibration(p, y)["ece"]
    assert ece == expected_calibration_error(p[m], y[m])
    # the loop evaluation had before: the same number away from the bin edges
    idx = np.minimum((p[m] * 10).astype(int), 9)
    old = sum(
        (idx == b).mean() * abs(y[m][idx == b].mean() - p[m][idx == b].mean())
        for b in range(10)
        if (idx == b).any()
    )
    assert ece == pytest.approx(old, rel=1e-12)
