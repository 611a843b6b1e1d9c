"""New LLMs from a few probes: choose the probes, add the LLM, and choose what to label.

A new LLM's values
------------------
Every term with a value per LLM -- abilities ``theta_j``, dataset offsets
``gamma_{., j}``, LLM slopes ``w_j`` -- is linear in it, so for a fixed draw of the
item parameters the linear predictor of LLM j on query i is::

    eta_ij = o_i + z_i . phi_j

with ``phi_j`` the LLM's values stacked and ``o_i``, ``z_i`` depending on the query
only. This module never writes ``o`` or ``z``: :func:`llm_design` reads them off the
components by evaluating their linear predictor at ``phi = 0`` and at the unit vectors,
so a term added later is onboarded as soon as it declares the population scale of its
per-LLM values (:attr:`Component.llm_scales <irt_bayes.components.Component>`).

Onboarding (:func:`add_llms`) holds the item parameters at their posterior. In posterior
draw ``s`` the new LLM's ``phi`` has that draw's population prior -- a scale mixture of
normals about the pool's spread (:func:`fit_new_llm`) -- and the probes' likelihood under
that draw's item values; its conditional posterior is replaced by its Laplace
approximation (mode by Newton steps with a line search, covariance the inverse curvature
at the mode) and one value is drawn from it. The pairs (draw ``s``,
``phi_s``) are draws of ``p(items | training data) p(phi | probes, items)``: the items do
not learn from the new LLM's few probes (a "cut" posterior), the LLM learns from them
with the uncertainty its probes leave. Probes on queries the router never saw use the
new-query predictive (:mod:`irt_bayes.predict`) for their item values.

Choosing probes (:func:`suggest_probes`)
----------------------------------------
A probe's Fisher information about ``phi`` is ``w_i(phi) z_i z_i^T``, rank one, with
``w = n P'(eta)^2 / (P (1 - P))``. Probes are picked greedily (:data:`TARGETS`), by the
expected fall in the variance of the LLM's mean P(correct) over the training queries
(``"accuracy"``, c-optimal: what tinyBenchmarks estimates; the default), by the expected
fall in the mean posterior variance of P(correct) over them (``"predictions"``,
I-optimal), or by the expected gain in log det of the precision of the new LLM's
*abilities* (``"abilities"``, D-optimal, the rule of computerised adaptive testing;
``theta`` and the dataset offsets)::

    gain_i = E_s log(1 + w_si z_si^T M_s^{-1} z_si)

Both average over posterior draws of the items and draws of ``phi`` from the population
prior (or, given answers so far, from the LLM's posterior: sequential adaptive testing),
and ``M_s`` is updated after each pick by Sherman-Morrison.

Choosing labels (:func:`suggest_labels`)
----------------------------------------
The value of observing LLM j's outcome on query i is the expected gain in the utility of
the routing decision for that query (the expected value of sample information)::

    EVSI_ij = sum_y max_k E[U_k 1{y_ij = y}] - max_k E[U_k],   U_k = P_ik - lam c_k

with expectations over the joint predictive draws of the query (the observation
reweights them by ``P^y (1 - P)^(1 - y)``). It is myopic: a label's value for other
queries (through the LLM's ability) is not counted.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import expit

from irt_bayes.components import (
    NUMPY,
    Component,
    Grid,
    Inputs,
    linear_predictor,
    log_likelihood,
    probability,
)
from irt_bayes.components.base import Structure
from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.predict import NewQueryPredictive, extract_draws, sample_index

if TYPE_CHECKING:
    from irt_bayes.embeddings import EmbeddingTable
    from irt_bayes.router import IRTRouter

__all__ = [
    "ABILITY_TERMS",
    "TARGETS",
    "DESIGN_DRAWS",
    "LLMBlock",
    "add_llms",
    "fit_new_llm",
    "prior_draws",
    "prior_sd",
    "llm_blocks",
    "llm_values",
    "query_design",
    "structure_with",
    "llm_design",
    "suggest_labels",
    "suggest_probes",
    "training_accuracy",
]

# Terms whose per-LLM values probes are chosen to learn (slopes are nuisance there).
ABILITY_TERMS = ("ability", "dataset_offsets")
# Posterior draws the expected information of a probe is averaged over.
DESIGN_DRAWS = 200
# Fisher-scoring iterations of the Laplace approximation (it converges in 5-10).
_MAX_ITER = 50
_BACKTRACK = 12  # step halvings per iteration at most
# Multipliers of the population scale in the prior of a new LLM, equally likely: the
# means of the five quintiles of lambda^-1/2, lambda ~ Gamma(2, rate 2): a discrete
# version of the scale mixture that makes a Student-t with 4 degrees of freedom.
PRIOR_SCALES = (0.70, 0.90, 1.09, 1.36, 2.20)


@dataclass(frozen=True)
class LLMBlock:
    """One per-LLM variable of the model, as a slice of the stacked vector ``phi``."""

    name: str
    component: str
    axis: int  # position of the llm axis in the variable's dims (without the sample axis)
    shape: tuple[int, ...]  # per-LLM shape
    scale: str  # posterior variable of the population scale

    @property
    def size(self) -> int:
        """Entries of ``phi`` this variable takes."""
        return int(np.prod(self.shape, dtype=int))


def llm_blocks(components: list[Component], draws: Mapping[str, np.ndarray]) -> list[LLMBlock]:
    """The per-LLM variables of the model, in the order they are stacked into ``phi``."""
    out = []
    for comp in components:
        for name, scale in comp.llm_scales.items():
            dims = comp.variables[name]
            ax = dims.index("llm")
            full = draws[name].shape[1:]
            out.append(LLMBlock(name, comp.name, ax, full[:ax] + full[ax + 1 :], scale))
    return out


def prior_sd(blocks: list[LLMBlock], draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """(S, P) population scale of each entry of ``phi`` per draw.

    The larger of the model's scale and the spread of the pool's own values in that
    draw (their root mean square, corrected for the sum-to-zero over LLMs): ADVI
    shrinks hierarchical scales (on RouterBench ``sigma_theta`` 0.78 while the 11
    abilities have sd 1.05), and a prior narrower than the pool pulled new LLMs towards
    the average with intervals that missed (RouterBench, 10 probes: 0 of 4).
    """
    parts = []
    for b in blocks:
        s = np.asarray(draws[b.scale], dtype=float)  # (S,) or (S, *some of shape)
        v = np.moveaxis(np.asarray(draws[b.name], dtype=float), 1 + b.axis, 1)  # (S, J, ...)
        J = v.shape[1]
        # average over the LLMs and every per-LLM axis the scale does not have
        extra = tuple(range(s.ndim, v.ndim - 1))
        rms = np.sqrt((v**2).mean(axis=(1,) + tuple(a + 1 for a in extra)) * J / max(J - 1, 1))
        s = np.maximum(s, rms)
        s = s.reshape(s.shape + (1,) * (1 + len(b.shape) - s.ndim))
        parts.append(np.broadcast_to(s, (s.shape[0], *b.shape)).reshape(s.shape[0], -1))
    return np.concatenate(parts, axis=1)


def _set_llms(
    values: Mapping[str, np.ndarray], blocks: list[LLMBlock], phi: np.ndarray
) -> dict[str, np.ndarray]:
    """``values`` with every per-LLM variable replaced by the (S, J, P) stacked ``phi``."""
    out, start = dict(values), 0
    S, J = phi.shape[:2]
    for b in blocks:
        part = phi[:, :, start : start + b.size].reshape(S, J, *b.shape)
        out[b.name] = np.moveaxis(part, 1, 1 + b.axis)
        start += b.size
    return out


def llm_values(values: Mapping[str, np.ndarray], blocks: list[LLMBlock]) -> np.ndarray:
    """(S, J, P) stacked per-LLM values: the inverse of :func:`_set_llms`."""
    parts = []
    for b in blocks:
        v = np.moveaxis(np.asarray(values[b.name], dtype=float), 1 + b.axis, 1)
        parts.append(v.reshape(v.shape[0], v.shape[1], -1))
    return np.concatenate(parts, axis=2)


def llm_design(
    components: list[Component],
    values: Mapping[str, np.ndarray],
    inp: Inputs,
    blocks: list[LLMBlock],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``o`` (S, q), ``z`` (S, q, P) and the lower asymptote (S, q) or None, per draw.

    Evaluates the components' linear predictor for P + 1 pseudo-LLMs: ``phi = 0`` and
    the unit vectors; ``eta = o + z . phi`` holds for every ``phi`` because each
    per-LLM term is linear in its values (tested in ``tests/test_onboarding.py``).
    """
    S = next(iter(values.values())).shape[0]
    P = sum(b.size for b in blocks)
    q = inp.features.shape[0]
    o, z, c = np.empty((S, q)), np.empty((S, q, P)), None
    step = max(1, int(4e6 // max(1, (P + 1) * (q + P))))  # draws per chunk
    for lo in range(0, S, step):
        sl = slice(lo, min(S, lo + step))
        part = {k: v[sl] for k, v in values.items()}
        n = sl.stop - sl.start
        basis = np.zeros((n, P + 1, P))
        basis[:, 1:, :] = np.eye(P)
        dataset = inp.dataset
        if dataset is not None and getattr(dataset, "ndim", 1) == 2:
            dataset = dataset[sl]
        sub = Inputs(inp.features, dataset, sample_ndim=1)
        eta, items = linear_predictor(
            components, _set_llms(part, blocks, basis), sub, Grid(), NUMPY
        )
        o[sl] = eta[..., 0]
        z[sl] = eta[..., 1:] - eta[..., :1]
        if items.get("c") is not None:
            if c is None:
                c = np.empty((S, q))
            c[sl] = np.broadcast_to(items["c"], (n, q))
    return o, z, c


def _score_weight(
    eta: np.ndarray, c: np.ndarray | None, y: np.ndarray, n: np.ndarray, observed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Score ``d log-lik / d eta`` and an information weight per probe.

    The weight is Fisher's ``n P'^2 / (P (1 - P))``, or with ``observed`` the observed
    information ``-d^2 log-lik / d eta^2`` (floored at 0).

    With ``P = c + (1 - c) s``, ``s = sigmoid(eta)``, both are written without
    ``1 - P`` in a denominator (``1 - P = (1 - c)(1 - s)`` cancels), so a wrong answer
    at a large ``eta`` keeps its weight. Without ``c`` the two weights are equal.
    """
    s = expit(eta)
    if c is None:
        return y - n * s, n * s * (1 - s)
    p = c + (1 - c) * s
    ratio = (1 - c) * s / p
    score = y * ratio * (1 - s) - (n - y) * s
    if not observed:
        return score, n * ratio * s * (1 - s)
    # d/d eta of y (1-c) s (1-s) / p - (n-y) s, negated
    du = ratio * (1 - s) * (1 - 2 * s)  # (1-c) s (1-s) (1-2s) / p
    obs = -(y * (du - (ratio * (1 - s)) ** 2) - (n - y) * s * (1 - s))
    return score, np.maximum(obs, 0.0)


def _log_post(
    o: np.ndarray,
    z: np.ndarray,
    c: np.ndarray | None,
    y: np.ndarray,
    n: np.ndarray,
    phi: np.ndarray,
    prec: np.ndarray,
    mean: np.ndarray,
) -> np.ndarray:
    """(S,) log-likelihood of the probes (the model's, with log1pexp) plus log prior."""
    eta = o + np.einsum("sqp,sp->sq", z, phi)
    ll = log_likelihood(y, eta, c, n, NUMPY).sum(axis=1)
    return ll - 0.5 * (prec * (phi - mean) ** 2).sum(axis=1)


def _laplace(
    o: np.ndarray,
    z: np.ndarray,
    c: np.ndarray | None,
    y: np.ndarray,
    n: np.ndarray,
    sd: np.ndarray,
    mean: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw mode (S, P) and precision (S, P, P) of ``phi`` given the probes.

    Newton steps on the observed information (floored at 0 where the 3PL's
    log-likelihood is not concave) with a backtracking line search per draw: the log
    posterior never falls, and the precision returned is its curvature at the mode.
    """
    prec = 1.0 / np.clip(sd, 1e-6, None) ** 2
    mean = np.zeros_like(sd) if mean is None else mean
    phi = mean.copy()
    eye = np.eye(sd.shape[1])
    f = _log_post(o, z, c, y, n, phi, prec, mean)
    for _ in range(_MAX_ITER):
        eta = o + np.einsum("sqp,sp->sq", z, phi)
        g, w = _score_weight(eta, c, y, n, observed=True)
        grad = np.einsum("sqp,sq->sp", z, g) - prec * (phi - mean)
        H = np.einsum("sqp,sq,sqr->spr", z, w, z) + prec[:, :, None] * eye
        step = np.linalg.solve(H, grad[..., None])[..., 0]
        t = np.ones(len(phi))
        for _ in range(_BACKTRACK):
            new = phi + t[:, None] * step
            f_new = _log_post(o, z, c, y, n, new, prec, mean)
            worse = f_new < f - 1e-12
            if not worse.any():
                break
            t = np.where(worse, t / 2, t)
        keep = f_new >= f - 1e-12
        phi = np.where(keep[:, None], new, phi)
        f = np.where(keep, f_new, f)
        if np.abs(t[:, None] * step).max() < 1e-6:
            break
    eta = o + np.einsum("sqp,sp->sq", z, phi)
    _, w = _score_weight(eta, c, y, n, observed=True)
    return phi, np.einsum("sqp,sq,sqr->spr", z, w, z) + prec[:, :, None] * eye


def _log_evidence(
    o: np.ndarray,
    z: np.ndarray,
    c: np.ndarray | None,
    y: np.ndarray,
    n: np.ndarray,
    sd: np.ndarray,
    mode: np.ndarray,
    H: np.ndarray,
) -> np.ndarray:
    """(S,) Laplace approximation of log p(probes | prior sd), up to a constant."""
    f = _log_post(o, z, c, y, n, mode, 1.0 / sd**2, np.zeros_like(sd))
    return f - np.log(sd).sum(axis=1) - 0.5 * np.linalg.slogdet(H)[1]


def fit_new_llm(
    o: np.ndarray,
    z: np.ndarray,
    c: np.ndarray | None,
    y: np.ndarray,
    n: np.ndarray,
    sd: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws (S, P) of a new LLM's ``phi`` given its probes, one per posterior draw.

    The prior is a scale mixture: ``sd`` times each of :data:`PRIOR_SCALES` (equally
    likely a priori: about a Student-t with 4 degrees of freedom), so an LLM far
    outside the pool (a new frontier model) is not pulled back to it. Per draw, a
    scale is drawn with its weight times the Laplace evidence of the probes, then
    ``phi`` from that scale's Laplace approximation.

    Parameters
    ----------
    o, z, c : numpy.ndarray
        Design of the probes (:func:`llm_design`).
    y, n : numpy.ndarray
        (q,) score (successes) and trials (1 for 0/1 and fractional scores).
    sd : numpy.ndarray
        (S, P) population scale of ``phi``.
    rng : numpy.random.Generator

    Returns
    -------
    phi : numpy.ndarray
        (S, P) draws from the per-draw Laplace approximations.
    precision : numpy.ndarray
        (S, P, P) their precisions.
    """
    fits = [_laplace(o, z, c, y, n, k * sd) for k in PRIOR_SCALES]
    logz = np.stack(
        [
            _log_evidence(o, z, c, y, n, k * sd, m, H)
            for k, (m, H) in zip(PRIOR_SCALES, fits, strict=True)
        ],
        axis=1,
    )
    w = np.exp(logz - logz.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    pick = (w.cumsum(axis=1) < rng.random((w.shape[0], 1))).sum(axis=1)
    pick = np.minimum(pick, len(PRIOR_SCALES) - 1)
    rows = np.arange(w.shape[0])
    mode = np.stack([m for m, _ in fits], axis=1)[rows, pick]
    H = np.stack([h for _, h in fits], axis=1)[rows, pick]
    L = np.linalg.cholesky(H)
    e = rng.standard_normal(mode.shape)
    # x = L^-T e has covariance H^-1
    x = np.linalg.solve(np.swapaxes(L, -1, -2), e[..., None])[..., 0]
    return mode + x, H


def prior_draws(sd: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws (S, P) of a new LLM's ``phi`` from the scale-mixture prior, and their sd."""
    k = np.asarray(PRIOR_SCALES)[rng.integers(len(PRIOR_SCALES), size=sd.shape[0])]
    scale = sd * k[:, None]
    return rng.standard_normal(sd.shape) * scale, scale


# ------------------------------------------------------------------------------ inputs
def _training_positions(router: IRTRouter, ids: Sequence[str]) -> np.ndarray:
    """Training position of each query id, -1 for a query the router never saw."""
    pos = pd.Series(
        np.arange(len(router.train_queries_)), index=router.train_queries_["query_id"].astype(str)
    )
    return pos.reindex(pd.Index(ids, dtype=object).astype(str)).fillna(-1).to_numpy(int)


def _training_values(
    router: IRTRouter, draws: Mapping[str, np.ndarray], pos: np.ndarray
) -> tuple[dict[str, np.ndarray], Inputs]:
    """Values and inputs of the training queries at ``pos`` (their own residuals)."""
    values = dict(draws)
    for comp in router.components_:
        for name, dims in comp.variables.items():
            if dims and dims[0] == "query":
                values[name] = draws[name][:, pos]
    x = router.features_.transform(router.train_embeddings_[pos])
    d = router.train_dataset_idx_
    return values, Inputs(x, None if d is None else d[pos], sample_ndim=1)


def _new_values(
    router: IRTRouter,
    draws: Mapping[str, np.ndarray],
    queries: pd.DataFrame,
    embeddings: np.ndarray | EmbeddingTable | None,
    first_row: int = 0,
) -> tuple[dict[str, np.ndarray], Inputs]:
    """Values and inputs of queries the router never saw: the new-query predictive."""
    emb = router._query_embeddings(queries, embeddings)
    probs, _ = router._dataset_probs(queries, emb, use_labels=False)
    pred = NewQueryPredictive(
        router.components_,
        dict(draws),
        router.query_prior_,
        emb,
        router.features_.transform(emb),
        probs,
        residuals=router.residuals,
        seed=router.seed,
        first_row=first_row,
    )
    values, dataset = pred.query_values(slice(None))
    return values, Inputs(pred.features, dataset, sample_ndim=1)


def query_design(
    router: IRTRouter,
    draws: Mapping[str, np.ndarray],
    blocks: list[LLMBlock],
    queries: pd.DataFrame,
    embeddings: np.ndarray | EmbeddingTable | None = None,
    first_row: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """``o, z, c`` of ``queries`` (training ones by id, new ones by text) and which were new.

    The i-th new query draws its latent values as row ``first_row + i`` of a batch
    (:class:`~irt_bayes.predict.NewQueryPredictive`), so queries designed in parts get
    the designs they would get together.
    """
    comps = router.components_
    pos = _training_positions(router, queries["query_id"].tolist())
    new = pos < 0
    S = next(iter(draws.values())).shape[0]
    P = sum(b.size for b in blocks)
    o, z = np.empty((S, len(queries))), np.empty((S, len(queries), P))
    c = None
    for mask, make in (
        (~new, lambda m: _training_values(router, draws, pos[m])),
        (
            new,
            lambda m: _new_values(
                router,
                draws,
                queries[m].reset_index(drop=True),
                embeddings[m] if isinstance(embeddings, np.ndarray) else embeddings,
                first_row,
            ),
        ),
    ):
        if not mask.any():
            continue
        values, inp = make(mask)
        oo, zz, cc = llm_design(comps, values, inp, blocks)
        o[:, mask], z[:, mask] = oo, zz
        if cc is not None:
            c = np.zeros((S, len(queries))) if c is None else c
            c[:, mask] = cc
    return o, z, c, new


def _outcomes(
    router: IRTRouter, rows: pd.DataFrame, source: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(successes, trials) of responses, as the router's likelihood reads them."""
    score = rows["score"].to_numpy(float)
    if router.likelihood_ != "binomial":
        return score, np.ones(len(rows))
    if "trials" not in rows or rows["trials"].isna().any():
        raise DataError(
            "the router's binomial likelihood needs a 'trials' column for every row",
            source=source,
        )
    n = rows["trials"].to_numpy(float)
    return np.round(score * n), n


def _as_data(responses: ResponseData | pd.DataFrame) -> ResponseData:
    if isinstance(responses, pd.DataFrame):
        return ResponseData.from_frame(responses)
    return responses


# ------------------------------------------------------------------------------ add_llms
def add_llms(
    router: IRTRouter,
    responses: ResponseData | pd.DataFrame,
    *,
    prices: Mapping[str, float] | None = None,
    replace: bool = False,
    embeddings: np.ndarray | EmbeddingTable | None = None,
    seed: int | None = None,
) -> IRTRouter:
    """A copy of ``router`` with the LLMs of ``responses`` added, item parameters held.

    Parameters
    ----------
    router : IRTRouter
        A fitted router (not modified).
    responses : ResponseData or pandas.DataFrame
        Tidy responses of the new LLMs (``query_id, query, llm, score``, optionally
        ``cost``, ``trials``). Queries the router was fitted on are matched by
        ``query_id``; others are new queries, predicted from their text.
    prices : mapping, optional
        USD per query of each new LLM; default the mean of its ``cost`` column.
    replace : bool, default False
        Re-estimate an LLM already in the pool from these responses alone (it keeps its
        position); without it such an LLM is refused.
    embeddings : numpy.ndarray or EmbeddingTable, optional
        Precomputed embeddings of the responses' queries: a table by query id, or an
        array in ``responses.query_ids`` order (only the new queries' rows are read).
    seed : int, optional
        Seed of the Laplace draws (default the router's).

    Returns
    -------
    IRTRouter
        Predicts and routes to the new LLMs at once; ``onboarded_`` lists them.

    Raises
    ------
    DataError
        An LLM already in the pool (without ``replace``), no query shared with the
        training queries, or an LLM without a price when the pool has prices.

    Examples
    --------
    >>> from irt_bayes import IRTRouter, simulate_pool
    >>> pool = simulate_pool(n_queries=200, n_llms=6, seed=1)  # doctest: +SKIP
    >>> old = pool.responses[pool.responses["llm"] != "llm-5"]  # doctest: +SKIP
    >>> router = IRTRouter("2pl", progress=False).fit(old)  # doctest: +SKIP
    >>> probes = router.suggest_probes(30)  # doctest: +SKIP
    >>> answers = pool.responses[(pool.responses["llm"] == "llm-5")
    ...     & pool.responses["query_id"].isin(probes["query_id"])]  # doctest: +SKIP
    >>> router.add_llms(answers).llms_[-1]  # doctest: +SKIP
    'llm-5'
    """
    router._check_fitted()
    data = _as_data(responses)
    src = data.source
    new_llms = data.llms
    old = [m for m in new_llms if m in router.llms_]
    if old and not replace:
        raise DataError(
            f"LLM {old[0]!r} is already in the router's pool; pass --replace "
            "(replace=True) to re-estimate it from these responses",
            source=src,
        )
    q = data.queries.reset_index(drop=True)
    for m in new_llms:
        ids = data.responses.loc[data.responses["llm"] == m, "query_id"]
        if (_training_positions(router, ids.tolist()) < 0).all():
            raise DataError(
                f"none of the {len(ids)} queries of LLM {m!r} is one the router was fitted "
                "on (matched by query_id); answer probes from 'irt-bayes probe' so the item "
                "parameters are known",
                source=src,
            )
    price = _new_prices(router, data, new_llms, prices)
    comps = router.components_
    post = router.idata_.posterior
    idx = np.arange(post.sizes["chain"] * post.sizes["draw"])
    draws = extract_draws(router.idata_, comps, idx)
    blocks = llm_blocks(comps, draws)
    emb = (
        embeddings
        if embeddings is None or hasattr(embeddings, "lookup")
        else np.asarray(embeddings)
    )
    o, z, c, is_new = query_design(router, draws, blocks, q, emb)
    qpos = pd.Series(np.arange(len(q)), index=q["query_id"].astype(str))
    sd = prior_sd(blocks, draws)
    rng = np.random.default_rng(router.seed if seed is None else seed)
    values = dict(draws)
    llms = list(router.llms_)
    rows_out = []
    for m in new_llms:
        rows = data.responses[data.responses["llm"] == m]
        qi = qpos.reindex(rows["query_id"].astype(str)).to_numpy(int)
        y, n = _outcomes(router, rows, src)
        cc = None if c is None else c[:, qi]
        phi, _ = fit_new_llm(o[:, qi], z[:, qi], cc, y, n, sd, rng)
        if m in llms:
            j = llms.index(m)
            values = _put_llm(values, blocks, phi, j)
        else:
            values = _append_llm(values, blocks, phi)
            llms.append(m)
        rows_out.append(
            {
                "llm": m,
                "probes": len(rows),
                "new_queries": int(is_new[qi].sum()),
                "probe_accuracy": float(rows["score"].mean()),
                "price": price[m],
            }
        )
    return _with_llms(router, values, blocks, llms, price, pd.DataFrame(rows_out))


def _new_prices(
    router: IRTRouter,
    data: ResponseData,
    llms: list[str],
    prices: Mapping[str, float] | None,
) -> dict[str, float]:
    given = dict(prices or {})
    unknown = [m for m in given if m not in llms]
    if unknown:
        raise DataError(f"a price is given for {unknown[0]!r}, which has no responses here")
    from_cost = data.prices() if data.has_cost else pd.Series(dtype=float)
    need = bool(np.isfinite(router.prices_.to_numpy(float)).any())
    if given and not need:
        raise DataError(
            "the router has no prices (its training data had no 'cost'), so a price for a "
            "new LLM could not be compared with the others; drop --price"
        )
    out = {}
    for m in llms:
        v = given.get(m, from_cost.get(m, np.nan))
        v = float(v) if v is not None else np.nan
        if need and not np.isfinite(v):
            raise DataError(
                f"no price for LLM {m!r}: give its cost column or --price {m}=USD",
                source=data.source,
            )
        if np.isfinite(v) and v < 0:
            raise DataError(f"the price of {m!r} is negative ({v:g})", source=data.source)
        out[m] = v
    return out


def _append_llm(
    values: dict[str, np.ndarray], blocks: list[LLMBlock], phi: np.ndarray
) -> dict[str, np.ndarray]:
    out = dict(values)
    new = _set_llms({}, blocks, phi[:, None, :])
    for b in blocks:
        out[b.name] = np.concatenate([values[b.name], new[b.name]], axis=1 + b.axis)
    return out


def _put_llm(
    values: dict[str, np.ndarray], blocks: list[LLMBlock], phi: np.ndarray, j: int
) -> dict[str, np.ndarray]:
    out = dict(values)
    new = _set_llms({}, blocks, phi[:, None, :])
    for b in blocks:
        arr = np.moveaxis(values[b.name].copy(), 1 + b.axis, 1)
        arr[:, j] = np.moveaxis(new[b.name], 1 + b.axis, 1)[:, 0]
        out[b.name] = np.moveaxis(arr, 1, 1 + b.axis)
    return out


def _with_llms(
    router: IRTRouter,
    values: dict[str, np.ndarray],
    blocks: list[LLMBlock],
    llms: list[str],
    price: dict[str, float],
    onboarded: pd.DataFrame,
) -> IRTRouter:
    """A shallow copy of ``router`` whose posterior and pool hold the new LLMs."""
    post = router.idata_.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    per_llm = {b.name for b in blocks}
    keep = {}
    for name, var in post.data_vars.items():
        if "llm" not in var.dims:
            keep[name] = var.drop_vars("llm", errors="ignore")
        elif name in per_llm:
            dims = var.dims
            arr = values[name].reshape(n_chain, n_draw, *values[name].shape[1:])
            keep[name] = (dims, arr)
        # the non-centred raw variables (theta_z ...) have no value for a new LLM: dropped
    coords = {k: v for k, v in post.coords.items() if k != "llm"}
    coords["llm"] = llms
    new_post = xr.Dataset(
        keep, coords=coords, attrs={**post.attrs, "onboarded": ", ".join(onboarded["llm"])}
    )
    idata = copy.copy(router.idata_)
    idata.posterior = new_post
    out = copy.copy(router)
    out.idata_ = idata
    out.llms_ = llms
    prices = router.prices_.reindex(llms).copy()
    for m, v in price.items():
        prices[m] = v
    prices.index.name = "llm"
    out.prices_ = prices
    out.structure_ = structure_with(router.structure_, llms)
    prev = getattr(router, "onboarded_", None)
    if prev is not None:  # a replaced LLM keeps only its latest onboarding
        prev = prev[~prev["llm"].isin(onboarded["llm"])]
        onboarded = pd.concat([prev, onboarded], ignore_index=True)
    out.onboarded_ = onboarded
    out._draws = None
    return out


def structure_with(s: Structure, llms: Sequence[str]) -> Structure:
    """The data's structure with the pool ``llms`` (the old LLMs first, in order)."""
    group_idx = s.group_idx
    if s.groups is not None and group_idx is not None:
        # a new LLM's ability had the population prior, not its group's: a group of its own
        groups = list(s.groups)
        group_idx = list(group_idx)
        for m in llms[len(group_idx) :]:
            label = m
            while label in groups:  # an LLM named like a provider: a label of its own
                label += " (onboarded)"
            groups.append(label)
            group_idx.append(len(groups) - 1)
        s = dataclasses.replace(s, groups=groups)
    return dataclasses.replace(s, llms=list(llms), group_idx=group_idx)


def training_accuracy(router: IRTRouter, llms: Sequence[str] | None = None) -> pd.Series:
    """Posterior mean P(correct) of each LLM averaged over the training queries.

    The training queries keep their own item parameters, so an LLM added from probes is
    compared with the fitted ones on the same queries.
    """
    from irt_bayes.components import probability
    from irt_bayes.predict import take_llms

    router._check_fitted()
    names = list(router.llms_ if llms is None else llms)
    comps, dr = router.components_, router.draws_
    Q = len(router.train_queries_)
    total = np.zeros(len(names))
    cols = [router.llms_.index(m) for m in names]
    for lo in range(0, Q, 256):
        values, inp = _training_values(router, dr, np.arange(lo, min(Q, lo + 256)))
        for k, j in enumerate(cols):
            sub = take_llms(comps, values, slice(j, j + 1))
            total[k] += probability(comps, sub, inp, Grid()).mean(axis=0).sum()
    return pd.Series(total / Q, index=pd.Index(names, name="llm"), name="expected_accuracy")


# ------------------------------------------------------------------------ suggest_probes
def suggest_probes(
    router: IRTRouter,
    n: int,
    *,
    after: ResponseData | pd.DataFrame | None = None,
    exclude: Sequence[str] = (),
    target: str = "accuracy",
    draws: int = DESIGN_DRAWS,
    seed: int | None = None,
) -> pd.DataFrame:
    """The ``n`` training queries that teach most about a new LLM (its accuracy, by default).

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    n : int
        Probes to choose (at most the training queries not yet answered).
    after : ResponseData or DataFrame, optional
        The new LLM's answers so far (one LLM): the information is then averaged over
        its posterior instead of the population prior, and its answered queries are
        not chosen again (sequential adaptive testing).
    exclude : sequence of str, optional
        Query ids not to choose (e.g. ones the new LLM cannot be run on).
    target : {"accuracy", "predictions", "abilities"}, default "accuracy"
        What the probes should teach (:data:`TARGETS`): the LLM's mean P(correct) over
        the training queries (expected fall in that mean's variance, c-optimal), its
        P(correct) on each of them (expected fall in their mean posterior variance,
        I-optimal: the information about the abilities that moves predictions), or its
        abilities themselves (expected gain in log det of their precision, D-optimal).
        The default had the lowest error of the left-out LLM's accuracy on its other
        training queries in ``benchmarks/onboarding.py`` (RouterBench, mean over 10-100
        probes: 0.033, against 0.037 and 0.044).
    draws : int, default :data:`DESIGN_DRAWS`
        Posterior draws the expected information is averaged over.
    seed : int, optional
        Seed of the draws of the new LLM's values (default the router's).

    Returns
    -------
    pandas.DataFrame
        ``query_id``, ``dataset`` (where the training data had labels), ``rank`` and
        ``gain``: what the probe adds to those ranked before it (nats of information
        for ``abilities``, fall in mean variance of P(correct) for ``predictions``,
        fall in the variance of mean P(correct) for ``accuracy``).
    """
    router._check_fitted()
    comps = router.components_
    rng = np.random.default_rng(router.seed if seed is None else seed)
    idx = sample_index(router.idata_, draws)
    dr = extract_draws(router.idata_, comps, idx)
    blocks = llm_blocks(comps, dr)
    sd = prior_sd(blocks, dr)
    ab = _ability_columns(blocks)
    Q = len(router.train_queries_)
    taken = np.zeros(Q, dtype=bool)
    if after is not None:
        data = _as_data(after)
        if len(data.llms) != 1:
            raise DataError(
                f"--after holds {len(data.llms)} LLMs ({', '.join(data.llms[:3])}); "
                "give one new LLM's answers",
                source=data.source,
            )
        if data.llms[0] in router.llms_:
            raise DataError(
                f"LLM {data.llms[0]!r} is already in the router's pool: probes are chosen "
                "for a new LLM (its answers so far)",
                source=data.source,
            )
        q = data.queries.reset_index(drop=True)
        o, z, c, _ = query_design(router, dr, blocks, q)
        rows = data.responses.set_index("query_id").loc[q["query_id"]]
        y, nn = _outcomes(router, rows, data.source)
        phi, H = fit_new_llm(o, z, c, y, nn, sd, rng)
        cov = np.linalg.inv(H)
        pos = _training_positions(router, q["query_id"].tolist())
        taken[pos[pos >= 0]] = True
    else:
        phi, scale = prior_draws(sd, rng)
        cov = np.stack([np.diag(s**2) for s in scale])
    ex = _training_positions(router, [str(e) for e in exclude])
    taken[ex[ex >= 0]] = True
    n_free = int((~taken).sum())
    if n_free == 0:
        raise IrtBayesError("every training query is answered or excluded: no probe is left")
    if not 1 <= n <= n_free:
        raise IrtBayesError(f"n must be between 1 and {n_free} (training queries left), got {n}")
    if target not in TARGETS:
        raise IrtBayesError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    # a binomial probe of the pool's usual k-of-n carries n times a 0/1 probe's information
    t = router.training_inputs()["trials"] if router.likelihood_ == "binomial" else None
    trials = 1.0 if t is None else float(np.median(t))
    # Fisher weights, squared slopes dP/deta, and directions z of every training query
    S = len(idx)
    w, dp2 = np.empty((S, Q)), np.empty((S, Q))
    zz = np.empty((S, Q, sd.shape[1]), dtype=np.float32)
    for lo in range(0, Q, 512):
        pos = np.arange(lo, min(Q, lo + 512))
        values, inp = _training_values(router, dr, pos)
        o, z, c = llm_design(comps, values, inp, blocks)
        eta = o + np.einsum("sqp,sp->sq", z, phi)
        _, w[:, pos] = _score_weight(eta, c, np.zeros_like(eta), trials)
        p0 = expit(eta)
        dp2[:, pos] = (p0 * (1 - p0) * (1.0 if c is None else 1 - c)) ** 2
        zz[:, pos] = z
    picks, gains = TARGETS[target](w, dp2, zz, cov, ab, taken, n)
    tq = router.train_queries_.iloc[picks]
    out = pd.DataFrame({"query_id": tq["query_id"].astype(str).to_numpy()})
    if "dataset" in tq:
        out["dataset"] = tq["dataset"].to_numpy()
    out["rank"] = np.arange(1, n + 1)
    out["gain"] = gains
    return out


def _ability_columns(blocks: list[LLMBlock]) -> np.ndarray:
    """Positions in ``phi`` of the abilities (:data:`ABILITY_TERMS`)."""
    cols, start = [], 0
    for b in blocks:
        if b.component in ABILITY_TERMS:
            cols.extend(range(start, start + b.size))
        start += b.size
    return np.asarray(cols, dtype=int)


def _sherman_morrison(cov: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(S, P, P) inverse of ``cov^-1 + w z z^T`` per draw."""
    v = np.einsum("spr,sr->sp", cov, z)
    denom = 1.0 + w * np.einsum("sp,sp->s", z, v)
    return cov - (w / denom)[:, None, None] * v[:, :, None] * v[:, None, :]


def _pick_abilities(
    w: np.ndarray,
    dp2: np.ndarray,
    z: np.ndarray,
    cov: np.ndarray,
    ab: np.ndarray,
    taken: np.ndarray,
    n: int,
) -> tuple[list[int], list[float]]:
    """Greedy D-optimal picks: ``E_s log(1 + w z_ab^T M_ab^-1 z_ab)``."""
    zab = z[:, :, ab]
    cab = cov[:, ab][:, :, ab]
    u = (np.matmul(zab, cab) * zab).sum(axis=-1)  # z^T M^-1 z per (draw, query)
    picks, gains = [], []
    for _ in range(n):
        gain = np.log1p(w * u).mean(axis=0)
        gain[taken] = -np.inf
        i = int(np.argmax(gain))
        picks.append(i)
        gains.append(float(gain[i]))
        taken[i] = True
        # Sherman-Morrison, applied to u directly: u -= w (z . M^-1 z_i)^2 / (1 + w u_i)
        v = np.einsum("spr,sr->sp", cab, zab[:, i])
        denom = 1.0 + w[:, i] * u[:, i]
        cab = cab - (w[:, i] / denom)[:, None, None] * v[:, :, None] * v[:, None, :]
        u = u - (w[:, i] / denom)[:, None] * np.einsum("sqp,sp->sq", zab, v) ** 2
    return picks, gains


def _pick_predictions(
    w: np.ndarray,
    dp2: np.ndarray,
    z: np.ndarray,
    cov: np.ndarray,
    ab: np.ndarray,
    taken: np.ndarray,
    n: int,
) -> tuple[list[int], list[float]]:
    """Greedy I-optimal picks: the fall in ``mean_i P'_i^2 z_i^T M^-1 z_i``.

    Adding probe j with weight w_j changes ``M^-1`` by ``-w_j v v^T / (1 + w_j u_j)``
    (``v = M^-1 z_j``), so the mean variance falls by ``w_j z_j^T B z_j / (1 + w_j u_j)``
    with ``B = M^-1 A M^-1`` and ``A = mean_i P'_i^2 z_i z_i^T``.
    """
    A = np.einsum("sq,sqp,sqr->spr", dp2, z, z, optimize=True) / z.shape[1]

    def gain(cov: np.ndarray) -> np.ndarray:
        u = (np.matmul(z, cov) * z).sum(axis=-1)
        r = (np.matmul(z, cov @ A @ cov) * z).sum(axis=-1)
        return w * r / (1.0 + w * u)

    return _greedy(gain, w, z, cov, taken, n)


def _greedy(
    gain: Callable[[np.ndarray], np.ndarray],
    w: np.ndarray,
    z: np.ndarray,
    cov: np.ndarray,
    taken: np.ndarray,
    n: int,
) -> tuple[list[int], list[float]]:
    """``n`` greedy picks by ``gain(M^-1)`` (S, Q) averaged over draws, M^-1 updated."""
    picks, gains = [], []
    for _ in range(n):
        g = gain(cov).mean(axis=0)
        g[taken] = -np.inf
        i = int(np.argmax(g))
        picks.append(i)
        gains.append(float(g[i]))
        taken[i] = True
        cov = _sherman_morrison(cov, z[:, i].astype(float), w[:, i])
    return picks, gains


def _pick_accuracy(
    w: np.ndarray,
    dp2: np.ndarray,
    z: np.ndarray,
    cov: np.ndarray,
    ab: np.ndarray,
    taken: np.ndarray,
    n: int,
) -> tuple[list[int], list[float]]:
    """Greedy c-optimal picks: the fall in the variance of the mean P(correct).

    To first order the mean P(correct) over the training queries moves with ``phi``
    along ``c = mean_i P'_i z_i``, so its variance is ``c^T M^-1 c``; probe j lowers
    it by ``w_j (c^T M^-1 z_j)^2 / (1 + w_j u_j)`` (Sherman-Morrison, as above).
    """
    c = np.einsum("sq,sqp->sp", np.sqrt(dp2), z, optimize=True) / z.shape[1]

    def gain(cov: np.ndarray) -> np.ndarray:
        g = np.einsum("sqp,sp->sq", z, np.einsum("spr,sr->sp", cov, c))
        u = (np.matmul(z, cov) * z).sum(axis=-1)
        return w * g**2 / (1.0 + w * u)

    return _greedy(gain, w, z, cov, taken, n)


# What a probe is chosen to teach: the dict is the list of valid targets.
TARGETS = {
    "accuracy": _pick_accuracy,
    "predictions": _pick_predictions,
    "abilities": _pick_abilities,
}


# ------------------------------------------------------------------------ suggest_labels
def _evsi(
    p: np.ndarray, price: np.ndarray, lams: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Value of each (query, LLM) label (module docstring), mean P and the current choice.

    ``p`` is (S, r, J) joint predictive draws of a block of queries.
    """
    S = p.shape[0]
    mean = p.mean(axis=0)
    # E[P_j U_k] for every pair (j observed, k chosen): einsum over the draws
    pp = np.einsum("srj,srk->rjk", p, p) / S
    value = np.zeros_like(mean)
    routed = np.zeros((mean.shape[0], len(lams)), dtype=int)
    for li, lam in enumerate(lams):
        eu = mean - lam * price  # (r, J) E[U_k]
        a1 = pp - lam * price[None, None, :] * mean[:, :, None]  # E[U_k 1{y=1}]
        a0 = eu[:, None, :] - a1
        value += (a1.max(axis=2) + a0.max(axis=2) - eu.max(axis=1)[:, None]) / len(lams)
        routed[:, li] = eu.argmax(axis=1)
    # EVSI >= 0; sums of draws leave +-1e-16 where a label cannot change the decision
    value[value < 1e-12] = 0.0
    return value, mean, routed


def suggest_labels(
    router: IRTRouter,
    queries: pd.DataFrame | Sequence[str],
    n: int,
    *,
    willingness_to_pay: float | Sequence[float] = 0.0,
    embeddings: np.ndarray | EmbeddingTable | None = None,
) -> pd.DataFrame:
    """The ``n`` (query, LLM) pairs whose outcome would most improve routing decisions.

    Parameters
    ----------
    router : IRTRouter
    queries : DataFrame or sequence of str
        Candidate queries (``query_id, query``).
    n : int
        Pairs to return.
    willingness_to_pay : float or sequence of float, default 0
        Cost weight(s) per USD of the utility; with several, the value is averaged
        over them (e.g. the sweep of a routing AUC).
    embeddings : numpy.ndarray, optional
        Precomputed embeddings of ``queries``.

    Returns
    -------
    pandas.DataFrame
        ``query_id, llm, value, p_mean, routed_now``, best first: ``value`` is the
        expected gain in utility of that query's decision (EVSI, see the module
        docstring), ``routed_now`` the LLM chosen before the label. Candidates the
        router was fitted on (matched by ``query_id``) keep their fitted item values,
        and their (query, LLM) pairs with a training response are never suggested.
    """
    from irt_bayes.router import as_query_frame

    router._check_fitted()
    q = as_query_frame(queries)
    lams = np.atleast_1d(np.asarray(willingness_to_pay, dtype=float))
    if not np.isfinite(lams).all() or (lams < 0).any():
        raise IrtBayesError(f"willingness_to_pay must be finite and >= 0, got {lams.tolist()}")
    J = len(router.llms_)
    if not 1 <= n <= len(q) * J:
        raise IrtBayesError(f"n must be between 1 and {len(q) * J} (query, LLM pairs), got {n}")
    price = np.nan_to_num(router.prices_.reindex(router.llms_).to_numpy(float))
    value = np.zeros((len(q), J))
    p_mean = np.zeros((len(q), J))
    routed = np.zeros((len(q), len(lams)), dtype=int)
    # training queries keep their fitted item values; pairs already observed teach nothing
    pos = _training_positions(router, q["query_id"].tolist())
    seen = np.flatnonzero(pos >= 0)
    for lo in range(0, len(seen), 256):
        part = seen[lo : lo + 256]
        values, inp = _training_values(router, router.draws_, pos[part])
        p = probability(router.components_, values, inp, Grid())  # (S, r, J)
        value[part], p_mean[part], routed[part] = _evsi(p, price, lams)
    new = np.flatnonzero(pos < 0)
    if len(new):
        emb = embeddings[new] if isinstance(embeddings, np.ndarray) else embeddings
        pred = router.predictive(q.iloc[new].reset_index(drop=True), embeddings=emb)
        # a row of queries is evaluated for every LLM at once (EVSI compares them), so
        # each cell is charged its whole row; a third of the budget leaves room for einsums
        plan = pred.plan(router.memory_budget // 3, cell=8 * pred.n_draws * J)
        for rows in plan.row_slices():
            values, dataset = pred.query_values(rows)
            p = pred.block(values, dataset, rows, slice(None))  # (S, r, J)
            value[new[rows]], p_mean[new[rows]], routed[new[rows]] = _evsi(p, price, lams)
    if len(seen):
        ti = router.training_inputs()
        row_of = pd.Series(seen, index=pos[seen])  # training position -> candidate row
        hit = np.isin(ti["query_idx"], pos[seen])
        value[row_of.reindex(ti["query_idx"][hit]).to_numpy(), ti["llm_idx"][hit]] = -np.inf
    free = int(np.isfinite(value).sum())
    if free == 0:
        raise IrtBayesError(
            f"every (query, LLM) pair of these {len(q)} queries is a training response "
            "already: nothing to label"
        )
    if n > free:
        raise IrtBayesError(
            f"n must be at most {free}: of the {value.size} (query, LLM) pairs, "
            f"{value.size - free} are training responses already"
        )
    flat = np.argsort(-value, axis=None, kind="stable")[:n]
    qi, jj = np.unravel_index(flat, value.shape)
    llms = np.asarray(router.llms_, dtype=object)
    return pd.DataFrame(
        {
            "query_id": q["query_id"].to_numpy()[qi],
            "llm": llms[jj],
            "value": value[qi, jj],
            "p_mean": p_mean[qi, jj],
            "routed_now": llms[routed[qi, 0]],
        }
    )
