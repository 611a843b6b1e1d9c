"""Posterior prediction of P(correct) for new queries, vectorised over draws.

For a new query with features x and posterior draw s::

    b_s  = mu_dataset_s[d] + x . beta_b_s          (+ residual delta ~ N(m_s, v_s))
    a_s  = softplus(c + x . beta_a_s + sigma_a_s eps),   eps ~ N(0, 1)
    P_s  = E_delta[ sigmoid(a_s . theta_s - b_s - delta) ]

The expectation over the difficulty residual is taken analytically: the logistic
function is written as a three-term scale mixture of normal CDFs,
``sigmoid(x) ~ sum_k w_k Phi(x / s_k)`` (Monahan & Stefanski, 1992), so that
``E[sigmoid(m + sqrt(v) u)] ~ sum_k w_k Phi(m / sqrt(s_k^2 + v))`` with an error
below 5e-5 for every ``v`` (see :func:`logistic_normal_mean`); the
discrimination residual is drawn once per posterior draw with a fixed seed, so the
same router gives the same numbers every time. Draw-to-draw spread of ``P_s`` is
the posterior uncertainty about the expected score on queries like this one.

Dataset level: a query whose ``dataset`` label was seen in training uses that
dataset's mean; an unseen label draws a new dataset mean from the hierarchical prior
(wider intervals for a new domain); no label takes the label of a nearest training
neighbour, drawn per posterior draw from the 10 nearest neighbours' labels.

Warm-up for new queries (``warmup=``):

* ``"irt-router"`` (Song et al., 2025): the embedding is blended with the mean
  embedding of its k nearest training queries, ``(1 - lam) e + lam mean(e_knn)``;
* ``"knn-residual"`` (ours): the residuals of the k nearest training queries, draw by
  draw, inform the new query's residuals. A regression of each training query's
  posterior-mean residual on its neighbours' (leave-one-out) gives weight ``w`` and
  the share ``f`` of residual variance left, so that
  ``delta ~ N(w mean_knn(delta_s), f sigma_b_s^2)``. Where neighbours carry no
  information w ~ 0 and it falls back to the prior; where they do the interval
  narrows.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import ndtr

from irt_bayes.model import C_DISCRIMINATION

__all__ = [
    "PosteriorParams",
    "knn",
    "knn_residual_weights",
    "logistic_normal_mean",
    "observed_logit",
    "predict_draws",
]

# sigmoid(x) ~ sum_k w_k Phi(x / s_k): weights and scales fitted by least squares on
# x in [-25, 25], largest error 4.8e-5. The one-term probit approximation
# (s = sqrt(8 / pi)) is off by up to 0.013 where P(correct) is high and the
# residual wide, which made confident predictions underconfident.
_MIX_W = np.array([0.2557890684064004, 0.583135829372935, 0.16107510222066446])
_MIX_S2 = np.array([1.1044586638245641, 1.735001974822893, 2.7501402024866968]) ** 2


def _stack(post: xr.Dataset, name: str, dims: tuple[str, ...], idx: np.ndarray) -> np.ndarray:
    """Draws ``idx`` of the (chain, draw)-stacked, chain-major samples, as (len(idx), *dims)."""
    # index (chain, draw) directly: stacking first would copy every draw on each call
    var = post[name].transpose("chain", "draw", *dims).to_numpy()
    n_draw = var.shape[1]
    return np.asarray(var[idx // n_draw, idx % n_draw], dtype=np.float64)


def observed_logit(
    idata: az.InferenceData,
    sample_idx: np.ndarray,
    dataset_idx: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> np.ndarray:
    """Logit of P(correct) of every training response under some posterior draws.

    ``a_i . theta_j - b_i``, plus the LLM x dataset offset ``gamma_{d(i), j} sum_k a_ik``
    and the LLM-specific embedding slopes ``x_i . w_j`` where the model has them.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fitted router's posterior with ``query_idx``/``llm_idx`` in ``constant_data``.
    sample_idx : numpy.ndarray
        Positions into the draws stacked over (chain, draw), chain-major.
    dataset_idx : numpy.ndarray, optional
        (n_queries,) dataset position of each training query; the offsets need it.
    features : numpy.ndarray, optional
        (n_queries, n_features) training features; the LLM-specific slopes need them.

    Returns
    -------
    numpy.ndarray
        (len(sample_idx), n_obs).
    """
    post, const = idata.posterior, idata.constant_data
    qi = const["query_idx"].to_numpy().astype(np.int64)
    li = const["llm_idx"].to_numpy().astype(np.int64)
    theta = _stack(post, "theta", ("llm", "skill"), sample_idx)[:, li, :]
    b = _stack(post, "difficulty", ("query",), sample_idx)[:, qi]
    a = None
    if "discrimination" in post:
        a = _stack(post, "discrimination", ("query", "skill"), sample_idx)[:, qi, :]
        eta = np.einsum("sok,sok->so", a, theta) - b
    else:
        eta = theta[:, :, 0] - b
    if "gamma" in post and dataset_idx is not None:
        off = _stack(post, "gamma", ("dataset", "llm"), sample_idx)[:, dataset_idx[qi], li]
        eta = eta + (off if a is None else off * a.sum(axis=2))
    if "llm_slopes" in post and features is not None:
        w = _stack(post, "llm_slopes", ("feature", "llm"), sample_idx)
        eta = eta + np.einsum("of,sfo->so", features[qi], w[:, :, li])
    return eta


def logistic_normal_mean(m: np.ndarray, v: np.ndarray | float) -> np.ndarray:
    """``E[sigmoid(m + sqrt(v) u)]`` for ``u ~ N(0, 1)``, elementwise.

    Parameters
    ----------
    m : numpy.ndarray
        Mean of the logit.
    v : numpy.ndarray or float
        Variance of the logit, broadcastable against ``m``; 0 gives ``sigmoid(m)``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``m`` broadcast with ``v``; absolute error below 5e-5.

    Examples
    --------
    >>> import numpy as np
    >>> from irt_bayes.predict import logistic_normal_mean
    >>> round(float(logistic_normal_mean(np.array(0.0), 4.0)), 4)
    0.5
    >>> round(float(logistic_normal_mean(np.array(4.0), 4.0)), 3)
    0.932
    """
    m = np.asarray(m, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(m.shape, np.shape(v)))
    for w, s2 in zip(_MIX_W, _MIX_S2, strict=True):
        out += w * ndtr(m / np.sqrt(s2 + v))
    return out


def knn(query_emb: np.ndarray, train_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k nearest training queries.

    Embeddings are L2-normalised, so the dot product is the cosine similarity.
    """
    k = min(k, train_emb.shape[0])
    sim = query_emb @ train_emb.T
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return idx, np.take_along_axis(sim, idx, axis=1)


@dataclass(frozen=True)
class PosteriorParams:
    """Posterior draws flattened to (sample, ...) numpy arrays for fast prediction."""

    theta: np.ndarray  # (S, J, K)
    mu_b: np.ndarray  # (S,)
    sigma_b: np.ndarray  # (S,)
    mu_dataset: np.ndarray | None  # (S, D)
    sigma_dataset: np.ndarray | None  # (S,)
    beta_b: np.ndarray | None  # (S, F)
    beta_a: np.ndarray | None  # (S, F, K)
    sigma_a: np.ndarray | None  # (S,)
    resid_b: np.ndarray  # (S, Q) training residuals of difficulty
    resid_a: np.ndarray | None  # (S, Q, K) training residuals of the discrimination's logit
    gamma: np.ndarray | None = None  # (S, D, J) LLM x dataset ability offsets
    tau_gamma: np.ndarray | None = None  # (S,)
    llm_slopes: np.ndarray | None = None  # (S, F, J) LLM-specific embedding slopes

    @property
    def n_samples(self) -> int:
        """Number of posterior draws kept."""
        return int(self.theta.shape[0])

    @classmethod
    def from_idata(
        cls,
        idata: az.InferenceData,
        train_features: np.ndarray,
        train_dataset_idx: np.ndarray | None,
        fixed_dataset_scale: float,
        max_draws: int | None = 1000,
        seed: int = 0,
    ) -> PosteriorParams:
        """Extract and thin draws from a fitted posterior.

        Parameters
        ----------
        idata : arviz.InferenceData
            Posterior with the model's deterministics.
        train_features : numpy.ndarray
            (Q, F) features of the training queries (to recover residuals).
        train_dataset_idx : numpy.ndarray or None
            (Q,) dataset positions of the training queries.
        fixed_dataset_scale : float
            Spread of dataset means when it was not learned (fewer than 3 datasets).
        max_draws : int or None
            Keep at most this many draws, evenly spaced.
        seed : int
            Unused for now; thinning is deterministic.
        """
        post = idata.posterior
        total = post.sizes["chain"] * post.sizes["draw"]
        idx = np.arange(total)
        if max_draws is not None and total > max_draws:
            idx = np.linspace(0, total - 1, max_draws).round().astype(int)

        def get(name: str, dims: tuple[str, ...] = ()) -> np.ndarray | None:
            return _stack(post, name, dims, idx) if name in post else None

        theta = get("theta", ("llm", "skill"))
        mu_b = get("mu_b")
        sigma_b = get("sigma_b")
        mu_d = get("mu_dataset", ("dataset",))
        sig_d = get("sigma_dataset")
        if mu_d is not None and sig_d is None:
            sig_d = np.full(len(idx), fixed_dataset_scale)
        beta_b = get("beta_b", ("feature",))
        beta_a = get("beta_a", ("feature", "skill"))
        sigma_a = get("sigma_a")
        difficulty = get("difficulty", ("query",))
        fixed = (
            mu_d[:, train_dataset_idx]
            if mu_d is not None and train_dataset_idx is not None
            else mu_b[:, None] + np.zeros(train_features.shape[0])
        )
        if beta_b is not None:
            fixed = fixed + beta_b @ train_features.T
        resid_b = difficulty - fixed
        resid_a = None
        if "discrimination" in post and sigma_a is not None:
            a = get("discrimination", ("query", "skill"))
            # inverse softplus, stable for large a
            logit_a = a + np.log(-np.expm1(-np.maximum(a, 1e-12)))
            lin = C_DISCRIMINATION + (
                np.einsum("qf,sfk->sqk", train_features, beta_a) if beta_a is not None else 0.0
            )
            resid_a = logit_a - lin
        return cls(
            theta=theta,
            mu_b=mu_b,
            sigma_b=sigma_b,
            mu_dataset=mu_d,
            sigma_dataset=sig_d,
            beta_b=beta_b,
            beta_a=beta_a,
            sigma_a=sigma_a,
            resid_b=resid_b,
            resid_a=resid_a,
            gamma=get("gamma", ("dataset", "llm")),
            tau_gamma=get("tau_gamma"),
            llm_slopes=get("llm_slopes", ("feature", "llm")),
        )


def knn_residual_weights(
    resid_mean: np.ndarray, train_emb: np.ndarray, k: int
) -> tuple[float, float]:
    """Weight ``w`` of the neighbours' mean residual and remaining variance share ``f``.

    Leave-one-out on the training queries: each query's posterior-mean residual is
    regressed (through the origin) on the mean residual of its k nearest *other*
    training queries.
    """
    q = train_emb.shape[0]
    if q <= k + 1:
        return 0.0, 1.0
    sim = train_emb @ train_emb.T
    np.fill_diagonal(sim, -np.inf)  # leave each query out of its own neighbours
    nb = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    m = resid_mean[nb].mean(axis=1)
    denom = float(m @ m)
    if denom <= 0:
        return 0.0, 1.0
    w = float(np.clip((m @ resid_mean) / denom, 0.0, 1.0))
    var_total = float(np.var(resid_mean))
    f = float(np.clip(np.var(resid_mean - w * m) / var_total, 0.05, 1.0)) if var_total else 1.0
    return w, f


def predict_draws(
    params: PosteriorParams,
    features: np.ndarray,
    *,
    dataset_idx: np.ndarray | None = None,
    resid_prior: tuple[np.ndarray, np.ndarray] | None = None,
    resid_a_mean: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """P(correct) draws for new queries, shape (S, n_queries, n_llms).

    Parameters
    ----------
    params : PosteriorParams
    features : numpy.ndarray
        (n, F) standardised features of the new queries.
    dataset_idx : numpy.ndarray, optional
        (S, n) or (n,) dataset position per query; -1 means an unseen dataset (a new
        dataset mean is drawn from the hierarchical prior). Ignored without a
        dataset level.
    resid_prior : (mean, var), optional
        (S, n) mean and variance of the difficulty residual; default N(0, sigma_b^2).
    resid_a_mean : numpy.ndarray, optional
        (S, n, K) mean of the discrimination residual (warm-up); default 0.
    seed : int
        Seed of the discrimination-residual draws.

    Returns
    -------
    numpy.ndarray
    """
    rng = np.random.default_rng(seed)
    S, n = params.n_samples, features.shape[0]
    offset = None
    if params.mu_dataset is not None and dataset_idx is not None:
        d = np.broadcast_to(dataset_idx, (S, n))
        known = np.take_along_axis(params.mu_dataset, np.maximum(d, 0), axis=1)
        new = params.mu_b[:, None] + params.sigma_dataset[:, None] * rng.standard_normal((S, n))
        loc_b = np.where(d >= 0, known, new)
        if params.gamma is not None:
            # seen dataset: its LLM offsets; unseen: fresh offsets from the prior
            offset = params.gamma[np.arange(S)[:, None], np.maximum(d, 0)]  # (S, n, J)
            unseen = d < 0
            if unseen.any():
                s_idx, q_idx = np.nonzero(unseen)
                offset[s_idx, q_idx] = params.tau_gamma[s_idx, None] * rng.standard_normal(
                    (s_idx.size, offset.shape[2])
                )
    else:
        loc_b = np.broadcast_to(params.mu_b[:, None], (S, n))
    if params.beta_b is not None:
        loc_b = loc_b + params.beta_b @ features.T
    if resid_prior is None:
        m_res, v_res = 0.0, params.sigma_b[:, None] ** 2
    else:
        m_res, v_res = resid_prior
    loc_b = loc_b + m_res

    K = params.theta.shape[2]
    if params.sigma_a is None:
        lin = None
        ability = params.theta[:, :, 0][:, None, :]  # (S, 1, J)
        eta = ability - loc_b[:, :, None]
    else:
        lin = np.full((S, n, K), C_DISCRIMINATION)
        if params.beta_a is not None:
            lin = lin + np.einsum("nf,sfk->snk", features, params.beta_a)
        eps = rng.standard_normal((S, n, K))
        if resid_a_mean is not None:
            lin = lin + resid_a_mean
            eps = eps * np.sqrt(0.5)  # neighbours explain part of the residual
        lin = lin + params.sigma_a[:, None, None] * eps
        a = np.logaddexp(0.0, lin)
        eta = np.einsum("snk,sjk->snj", a, params.theta) - loc_b[:, :, None]
    if offset is not None:
        eta = eta + (offset if params.sigma_a is None else a.sum(axis=2)[:, :, None] * offset)
    if params.llm_slopes is not None:
        eta = eta + np.einsum("nf,sfj->snj", features, params.llm_slopes)
    v = np.broadcast_to(v_res, (S, n))[:, :, None]
    return logistic_normal_mean(eta, v)
