"""The response function and the likelihoods, on the logit scale with ``log1pexp``.

``P = sigmoid(eta)``, or ``c + (1 - c) sigmoid(eta)`` with a lower asymptote ``c``
(:mod:`~irt_bayes.components.guessing`). Every likelihood is the same expression
``y log P + (n - y) log(1 - P)`` (+ ``log C(n, y)`` for the binomial) written with
``log1pexp`` so that large ``|eta|`` gives finite values and gradients:
``pm.Bernoulli(logit_p=...)`` produced NaN gradients in ADVI on RouterBench.

* ``bernoulli`` (0/1 scores), n = 1;
* ``binomial`` (k of n, with ``trials``);
* ``fractional`` (scores in [0, 1] without trials), n = 1 and fractional y: the
  quasi-likelihood of the fractional logit model (Papke and Wooldridge, 1996), whose
  maximiser is consistent for E[score] = P without assuming a distribution for the
  score; its LOO values compare models fitted to the same scores only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import gammaln

from irt_bayes.components.base import Backend

__all__ = ["LIKELIHOODS", "log_response", "response", "log_likelihood", "log_choose"]

LIKELIHOODS = ("bernoulli", "binomial", "fractional")

Array = Any


def log_response(eta: Array, c: Array | None, backend: Backend) -> tuple[Array, Array]:
    """``(log P, log(1 - P))`` of the response function."""
    log_p, log_q = backend.log_sigmoid(eta), backend.log_sigmoid(-eta)
    if c is None:
        return log_p, log_q
    log_1mc = backend.log1m(c)
    return backend.logaddexp(backend.log(c), log_1mc + log_p), log_1mc + log_q


def response(eta: Array, c: Array | None, backend: Backend) -> Array:
    """P(correct) from the linear predictor (and the lower asymptote)."""
    p = backend.sigmoid(eta)
    return p if c is None else c + (1.0 - c) * p


def log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Log C(n, k) elementwise; the constant of the binomial log-likelihood."""
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def log_likelihood(
    y: Array, eta: Array, c: Array | None, n: Array | None, backend: Backend
) -> Array:
    """Pointwise log-likelihood ``y log P + (n - y) log(1 - P)``, ``+ log C(n, y)`` with trials.

    Without trials (``n`` None) it is the Bernoulli log-likelihood, or the fractional
    quasi-likelihood when ``y`` is a fraction.
    """
    if c is None:  # y log P + (n - y) log(1 - P) = y eta - n log(1 + e^eta): one log1pexp
        ll = y * eta - (1.0 if n is None else n) * backend.log1pexp(eta)
    else:
        log_p, log_q = log_response(eta, c, backend)
        ll = y * log_p + ((1.0 if n is None else n) - y) * log_q
    if n is None:
        return ll
    g = backend.gammaln
    return ll + g(n + 1.0) - g(y + 1.0) - g(n - y + 1.0)
