"""Numerics of posterior prediction that do not need a fitted router."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from irt_bayes.predict import logistic_normal_mean


@pytest.mark.parametrize("v", [0.0, 0.25, 1.0, 4.0, 9.0, 25.0])
def test_logistic_normal_mean_matches_quadrature(v):
    m = np.linspace(-10, 10, 401)
    nodes, weights = np.polynomial.hermite_e.hermegauss(300)
    exact = expit(m[:, None] + np.sqrt(v) * nodes) @ (weights / weights.sum())
    assert np.abs(logistic_normal_mean(m, v) - exact).max() < 1e-4


def test_logistic_normal_mean_beats_the_probit_approximation_where_confident():
    # m = 4, v = 4: quadrature gives 0.9323, the probit approximation 0.9238
    m, v = np.array(4.0), 4.0
    probit = expit(m / np.sqrt(1 + np.pi * v / 8))
    nodes, weights = np.polynomial.hermite_e.hermegauss(300)
    exact = expit(m + np.sqrt(v) * nodes) @ (weights / weights.sum())
    ours = logistic_normal_mean(m, v)
    assert abs(ours - exact) < 1e-4 < abs(probit - exact)


def test_logistic_normal_mean_broadcasts_per_query_variance():
    m = np.zeros((3, 2, 4)) + np.arange(4)
    v = np.array([[0.0], [100.0]])[None, :, :]
    out = logistic_normal_mean(m, v)
    assert out.shape == (3, 2, 4)
    np.testing.assert_allclose(out[:, 0], expit(m[:, 0]), atol=5e-5)
    # a huge residual variance pulls every probability toward 1/2
    assert np.all(np.abs(out[:, 1] - 0.5) < np.abs(out[:, 0] - 0.5) + 1e-12)
