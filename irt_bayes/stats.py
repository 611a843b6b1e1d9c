"""One definition of the statistics that the report, the router and the evaluation share.

==================================  =======================================================
:data:`HDI_PROB`                    probability mass of every interval by default (0.94,
                                    ArviZ's default)
:func:`hdi`                         highest density interval of draws along an axis, in
                                    numpy (the narrowest interval, as :func:`arviz.hdi`)
:func:`calibration_bins`            reliability table: pairs binned by predicted P(correct)
:func:`expected_calibration_error`  the share-weighted gap between observed and predicted
                                    in those bins
==================================  =======================================================

The calibration error is the one number ``irt-bayes evaluate`` (held-out pairs) and
``irt-bayes report`` (training pairs) both print, so it has one definition here: ``bins``
equal-width bins over [0, 1], a prediction ``p`` in the bin ``[lo, hi)`` that holds it (1
in the last), each (query, LLM) pair weighted equally:
``ECE = sum_b (n_b / n) * |mean(y in b) - mean(p in b)|``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["HDI_PROB", "calibration_bins", "expected_calibration_error", "hdi"]

HDI_PROB = 0.94


def hdi(values: np.ndarray, hdi_prob: float = HDI_PROB, axis: int = 0) -> np.ndarray:
    """Highest density interval of draws along one axis: the narrowest one.

    The same interval as :func:`arviz.hdi` (for unimodal, non-circular draws): of the
    intervals between sorted draws ``i`` and ``i + floor(hdi_prob * n)``, the narrowest,
    the first of equal ones.

    Parameters
    ----------
    values : array_like
        Draws, with the samples along ``axis``.
    hdi_prob : float, default 0.94
        Probability mass of the interval, in (0, 1).
    axis : int, default 0
        The axis of the samples.

    Returns
    -------
    numpy.ndarray
        ``values``' shape without ``axis`` and with a last axis of 2: lower, higher.
        Both are NaN where a draw is NaN (ArviZ returns a half-NaN interval there).

    Raises
    ------
    ValueError
        ``hdi_prob`` outside (0, 1), or no draws.

    Examples
    --------
    >>> hdi(np.arange(11.0), 0.5)
    array([0., 5.])
    """
    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
    x = np.sort(np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0), axis=0)
    n = x.shape[0]
    inc = int(np.floor(hdi_prob * n))
    if n == 0:  # with hdi_prob < 1, any draw makes an interval
        raise ValueError(f"too few draws ({n}) for a {hdi_prob:.0%} interval")
    width = x[inc:] - x[: n - inc]
    nan = np.isnan(x).any(axis=0)
    lo = np.argmin(np.where(np.isnan(width), np.inf, width), axis=0)[None]
    out = np.stack(
        [np.take_along_axis(x, lo, 0)[0], np.take_along_axis(x, lo + inc, 0)[0]], axis=-1
    )
    out[nan] = np.nan
    return out


def calibration_bins(p: np.ndarray, y: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Pairs binned by predicted P(correct): the reliability table behind the ECE.

    Parameters
    ----------
    p : array_like
        Predicted P(correct) in [0, 1], one per (query, LLM) pair.
    y : array_like
        Observed scores in [0, 1] of the same pairs (a k-of-n score as k / n).
    bins : int, default 10
        Equal-width bins over [0, 1]; a prediction on an inner edge goes to the bin
        above it, 1 to the last.

    Returns
    -------
    pandas.DataFrame
        One row per non-empty bin: ``bin`` (its number from 0), ``bin_low``,
        ``bin_high``, ``n`` (pairs), ``predicted`` (mean ``p``), ``observed`` (mean
        ``y``).

    See Also
    --------
    expected_calibration_error
    """
    p, y = np.asarray(p, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} scores")
    edges = np.linspace(0.0, 1.0, bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    n = np.bincount(b, minlength=bins)
    keep = np.flatnonzero(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(b, weights=p, minlength=bins) / n
        observed = np.bincount(b, weights=y, minlength=bins) / n
    return pd.DataFrame(
        {
            "bin": keep,
            "bin_low": edges[keep],
            "bin_high": edges[keep + 1],
            "n": n[keep],
            "predicted": predicted[keep],
            "observed": observed[keep],
        }
    )


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the pair-weighted mean gap of :func:`calibration_bins`.

    ``sum_b (n_b / n) * |observed_b - predicted_b|`` over ``bins`` equal-width bins of
    the predicted P(correct), every pair weighted equally.

    Parameters
    ----------
    p : array_like
        Predicted P(correct) in [0, 1], one per pair.
    y : array_like
        Observed scores in [0, 1].
    bins : int, default 10
        Equal-width bins over [0, 1].

    Returns
    -------
    float
        In [0, 1]; NaN without pairs.

    Examples
    --------
    >>> expected_calibration_error([0.25, 0.25, 0.75, 0.75], [0, 1, 1, 1])
    0.25
    """
    tab = calibration_bins(p, y, bins)
    if tab.empty:
        return float("nan")
    gap = (tab["observed"] - tab["predicted"]).abs().to_numpy()
    return float(np.sum(tab["n"].to_numpy() * gap) / tab["n"].sum())
