"""Posterior prediction: P(correct) for new queries and the training responses, in numpy.

Everything here evaluates the model's components (:mod:`irt_bayes.components`) on
posterior draws; no formula of the linear predictor is written in this module.

A new query's predictive
------------------------
A new query ``x`` has no responses, so its own latent values are unknown: the
difficulty and discrimination residuals (``delta_b``, ``delta_a``) and, without a
label, its dataset. In posterior draw ``s`` it takes those of a training query ``m``
drawn from the *empirical posterior of the training queries*, with weights::

    w_m(x) = P(d(m) | x) * k_tau(x, x_m) / sum_{m' in d(m)} k_tau(x, x_m')
    k_tau(x, x_m) = exp(cos(x, x_m) / tau)

``P(d | x)`` is the calibrated dataset classifier of :mod:`irt_bayes.domains` (one-hot
on the label when labels are used, and the whole training set for an unseen label,
whose dataset terms then draw from their hierarchical prior); ``tau`` is chosen by
leave-one-out on the training queries (:func:`select_tau`; ``inf`` gives each
dataset's plain empirical distribution). Draws of ``m`` are spread over the posterior
draws by systematic resampling, so the posterior mean of P(correct) is a low-noise
average over both the parameters and the plausible values of the query's residuals.

So the draws of :func:`predict_draws` are joint predictive draws: draw ``s`` is the
posterior draw ``s`` of every parameter together with one plausible set of latent values
of the new query. Their spread is the predictive uncertainty of the query's P(correct):
what the model does not know about the LLMs and about this query.

Warm-up (``warmup="irt-router"``, Song et al., 2025): the embedding is blended with the
mean embedding of its k nearest training queries, ``(1 - lam) e + lam mean(e_knn)``,
before it is mapped to features.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import xarray as xr

from irt_bayes.components import (
    NUMPY,
    Component,
    Grid,
    Inputs,
    Pairs,
    linear_predictor,
    log_likelihood,
    posterior_variables,
    probability,
)

__all__ = [
    "QueryPrior",
    "RESIDUALS",
    "TAU_GRID",
    "extract_draws",
    "knn",
    "predict_draws",
    "sample_atoms",
    "sample_index",
    "select_tau",
    "training_logit",
    "training_log_likelihood",
]

# Kernel temperatures compared by leave-one-out (cosine similarities of MiniLM vectors
# within a dataset spread over about 0.2-0.7; inf = no kernel).
TAU_GRID = (float("inf"), 0.3, 0.1, 0.05)
# Training queries scored in the leave-one-out choice of tau, and draws used for it.
_LOO_QUERIES = 1500
_LOO_DRAWS = 100
# New queries predicted per block: bounds the (draw, query, LLM) arrays held at once.
_QUERY_BLOCK = 1000


def stack_draws(post: xr.Dataset, name: str, dims: tuple[str, ...], idx: np.ndarray) -> np.ndarray:
    """Draws ``idx`` of the (chain, draw)-stacked, chain-major samples, as (len(idx), *dims)."""
    # index (chain, draw) directly: stacking first would copy every draw on each call
    var = post[name].transpose("chain", "draw", *dims).to_numpy()
    n_draw = var.shape[1]
    return np.asarray(var[idx // n_draw, idx % n_draw], dtype=np.float64)


def sample_index(idata: az.InferenceData, max_draws: int | None) -> np.ndarray:
    """Evenly spaced positions into the (chain, draw)-stacked draws, at most ``max_draws``."""
    post = idata.posterior
    total = post.sizes["chain"] * post.sizes["draw"]
    if max_draws is None or total <= max_draws:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, max_draws).round().astype(int))


def extract_draws(
    idata: az.InferenceData, components: list[Component], idx: np.ndarray
) -> dict[str, np.ndarray]:
    """The components' posterior variables at draws ``idx``, as (len(idx), *dims) arrays."""
    post = idata.posterior
    return {
        name: stack_draws(post, name, dims, idx)
        for name, dims in posterior_variables(components).items()
    }


def knn(query_emb: np.ndarray, train_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine similarities of the k nearest training queries.

    Embeddings are L2-normalised, so the dot product is the cosine similarity.
    """
    k = min(k, train_emb.shape[0])
    sim = query_emb @ train_emb.T
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return idx, np.take_along_axis(sim, idx, axis=1)


@dataclass(frozen=True)
class QueryPrior:
    """Weights of the training queries whose latent values a new query may take.

    Attributes
    ----------
    train_embeddings : numpy.ndarray
        (Q, dim) unit-norm embeddings of the training queries.
    train_dataset_idx : numpy.ndarray or None
        (Q,) dataset of each training query (None for a model without datasets).
    tau : float
        Kernel temperature; ``inf`` weights every query of a dataset equally.
    """

    train_embeddings: np.ndarray
    train_dataset_idx: np.ndarray | None
    tau: float = float("inf")

    def weights(
        self,
        emb: np.ndarray,
        dataset_probs: np.ndarray | None,
        *,
        exclude: np.ndarray | None = None,
        tau: float | None = None,
    ) -> np.ndarray:
        """(n, Q) weights ``P(d(m) | x) k(x, x_m) / sum_{m' in d(m)} k(x, x_m')``.

        Parameters
        ----------
        emb : numpy.ndarray
            (n, dim) unit-norm embeddings of the new queries.
        dataset_probs : numpy.ndarray or None
            (n, D) probability of each dataset; None pools every training query.
        exclude : numpy.ndarray, optional
            (n,) a training position to give weight 0 per row (leave-one-out).
        tau : float, optional
            Overrides :attr:`tau`.
        """
        tau = self.tau if tau is None else tau
        n, Q = emb.shape[0], self.train_embeddings.shape[0]
        if np.isfinite(tau):
            logk = (emb @ self.train_embeddings.T).astype(np.float64) / tau
        else:
            logk = np.zeros((n, Q))
        if exclude is not None:
            logk[np.arange(n), exclude] = -np.inf
        d = self.train_dataset_idx
        if dataset_probs is None or d is None:
            return _normalise_rows(logk)
        out = np.zeros((n, Q))
        for j in range(dataset_probs.shape[1]):
            cols = np.flatnonzero(d == j)
            if cols.size == 0:
                continue
            within = _normalise_rows(logk[:, cols])
            out[:, cols] = dataset_probs[:, j : j + 1] * within
        total = out.sum(axis=1, keepdims=True)
        return out / np.where(total > 0, total, 1.0)


def _normalise_rows(logw: np.ndarray) -> np.ndarray:
    top = logw.max(axis=1, keepdims=True)
    w = np.exp(logw - np.where(np.isfinite(top), top, 0.0))
    total = w.sum(axis=1, keepdims=True)
    return w / np.where(total > 0, total, 1.0)


def sample_atoms(weights: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n) training positions, S per query by systematic resampling of its weights.

    Systematic resampling puts ``round(S w_m)`` draws on training query ``m`` (give or
    take one), which makes the posterior mean over draws an almost noise-free average
    over the weights; the draws are then shuffled per query so that atoms are not tied
    to the order of the posterior draws.
    """
    n, Q = weights.shape
    cum = np.cumsum(weights, axis=1)
    cum[:, -1] = 1.0  # absorb rounding so every position lands on a query
    u = (rng.random((n, 1)) + np.arange(n_draws)[None, :]) / n_draws  # (n, S)
    offset = np.arange(n)[:, None]
    flat = np.searchsorted((cum + offset).ravel(), (u + offset).ravel(), side="right")
    atoms = np.minimum(flat.reshape(n, n_draws) - offset * Q, Q - 1)
    return rng.permuted(atoms, axis=1).T


RESIDUALS = ("empirical", "normal")


def new_query_values(
    draws: dict[str, np.ndarray],
    components: list[Component],
    atoms: np.ndarray,
    *,
    residuals: str = "empirical",
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Parameter values for new queries.

    ``residuals="empirical"`` (the default): each per-query variable is taken at the
    atoms, jointly. ``"normal"``: each is drawn independently from its prior,
    ``N(0, scale^2)`` -- the predictive of irt-bayes 0.1, kept for comparison: it
    misses whenever the training residuals are neither normal nor independent.
    """
    values = dict(draws)
    for comp in components:
        for name, dims in comp.variables.items():
            if not dims or dims[0] != "query":
                continue
            arr = draws[name]
            if residuals == "normal":
                rng = rng if rng is not None else np.random.default_rng(0)
                scale = draws[comp.residual_scales[name]]
                shape = atoms.shape + arr.shape[2:]
                values[name] = scale.reshape((-1,) + (1,) * (len(shape) - 1)) * (
                    rng.standard_normal(shape)
                )
            else:
                take = atoms.reshape(atoms.shape + (1,) * (arr.ndim - 2))
                values[name] = np.take_along_axis(arr, take, axis=1)
    return values


def predict_draws(
    components: list[Component],
    draws: dict[str, np.ndarray],
    features: np.ndarray,
    atoms: np.ndarray,
    dataset: np.ndarray | None,
    *,
    unseen: np.ndarray | None = None,
    residuals: str = "empirical",
    seed: int = 0,
) -> np.ndarray:
    """P(correct) draws for new queries, (S, n, J).

    Parameters
    ----------
    components : list of Component
    draws : dict
        Posterior draws from :func:`extract_draws`.
    features : numpy.ndarray
        (n, F) standardised features of the new queries.
    atoms : numpy.ndarray
        (S, n) training position whose latent values each new query takes per draw
        (:func:`sample_atoms`).
    dataset : numpy.ndarray or None
        (S, n) dataset position per draw and query (the atom's dataset, or the label).
    unseen : numpy.ndarray, optional
        (n,) queries from a dataset the model has not seen: their dataset terms draw
        from the hierarchical prior.
    residuals : {"empirical", "normal"}
        How a new query's own latent values are drawn (:func:`new_query_values`).
    seed : int
        Seed of the prior draws.
    """
    rng = np.random.default_rng(seed)
    values = new_query_values(draws, components, atoms, residuals=residuals, rng=rng)
    if unseen is not None and unseen.any() and dataset is not None:
        n_known = None
        for comp in components:
            for name in comp.dataset_variables:
                n_known = values[name].shape[1]
            comp.new_dataset(values, rng)
        if n_known is not None:
            dataset = np.where(unseen[None, :], n_known, dataset)
    inp = Inputs(features, dataset, sample_ndim=1)
    return probability(components, values, inp, Grid(), NUMPY)


def training_logit(
    components: list[Component],
    draws: dict[str, np.ndarray],
    features: np.ndarray,
    dataset_idx: np.ndarray | None,
    query_idx: np.ndarray,
    llm_idx: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Linear predictor of observed training pairs, (S, n_obs), and the guessing rate."""
    inp = Inputs(features, dataset_idx, sample_ndim=1)
    layout = Pairs(query_idx, llm_idx)
    eta, items = linear_predictor(components, draws, inp, layout, NUMPY)
    c = items.get("c")
    return eta, None if c is None else layout.query(c)


def training_log_likelihood(
    components: list[Component],
    draws: dict[str, np.ndarray],
    features: np.ndarray,
    dataset_idx: np.ndarray | None,
    query_idx: np.ndarray,
    llm_idx: np.ndarray,
    y: np.ndarray,
    trials: np.ndarray | None,
) -> np.ndarray:
    """Pointwise log-likelihood (S, n_obs) of the training responses."""
    eta, c = training_logit(components, draws, features, dataset_idx, query_idx, llm_idx)
    return log_likelihood(y, eta, c, trials, NUMPY)


def select_tau(
    components: list[Component],
    draws: dict[str, np.ndarray],
    prior: QueryPrior,
    features: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray,
    *,
    grid: tuple[float, ...] = TAU_GRID,
    seed: int = 0,
) -> tuple[float, dict[float, float]]:
    """Kernel temperature with the best leave-one-query-out predictive log loss.

    Each scored training query is predicted as a new query would be (its dataset
    known), from the latent values of the *other* training queries.

    Parameters
    ----------
    components, draws
        The fitted model.
    prior : QueryPrior
        Training embeddings and datasets.
    features : numpy.ndarray
        (Q, F) training features.
    score, weight : numpy.ndarray
        (Q, J) observed score (in [0, 1]) and its weight (0 where missing, trials for
        k-of-n scores).
    grid : tuple of float
        Temperatures compared.
    seed : int

    Returns
    -------
    tau : float
    losses : dict
        Mean log loss per temperature.
    """
    rng = np.random.default_rng(seed)
    Q = features.shape[0]
    rows = np.arange(Q) if Q <= _LOO_QUERIES else np.sort(rng.choice(Q, _LOO_QUERIES, False))
    S = next(iter(draws.values())).shape[0]
    sub = np.unique(np.linspace(0, S - 1, min(S, _LOO_DRAWS)).round().astype(int))
    small = {k: v[sub] for k, v in draws.items()}
    d = prior.train_dataset_idx
    probs = None
    if d is not None:
        probs = np.zeros((len(rows), int(d.max()) + 1))
        probs[np.arange(len(rows)), d[rows]] = 1.0
    emb = prior.train_embeddings[rows]
    losses = {}
    for tau in grid:
        w = prior.weights(emb, probs, exclude=rows, tau=tau)
        atoms = sample_atoms(w, len(sub), rng)
        ds = None if d is None else d[atoms]
        p = predict_draws(components, small, features[rows], atoms, ds).mean(axis=0)
        p = np.clip(p, 1e-9, 1 - 1e-9)
        s, wt = score[rows], weight[rows]
        ll = wt * (s * np.log(p) + (1 - s) * np.log1p(-p))
        losses[float(tau)] = float(-ll.sum() / wt.sum())
    best = min(losses, key=losses.__getitem__)
    return best, losses
