"""Online updating: feedback moves the posterior over each LLM's values, items held.

The update rule
---------------
An LLM's values ``phi_j`` (abilities, dataset offsets, LLM slopes: every per-LLM term,
:func:`~irt_bayes.onboarding.llm_blocks`) enter the linear predictor linearly, and the
router holds S posterior draws of them. An outcome ``y`` of LLM j on query i is
folded in by assumed-density filtering (ADF, Minka 2001): the posterior of ``phi_j`` is
taken as Gaussian with the draws' mean ``m`` and covariance ``S``; the linear predictor
``t = eta_ij`` of that (query, LLM) -- item parameters drawn from their posterior, or
from the new-query predictive for a query the fit never saw -- is taken as jointly
Gaussian with ``phi_j`` (moments from the same draws, so the item uncertainty is in
``Var t``); then the exact tilted moments of ``t`` under the model's own likelihood
(:func:`~irt_bayes.components.likelihood.log_likelihood`, the 3PL's asymptote
included), ``E[t | y]`` and ``Var[t | y]`` by Gauss-Hermite quadrature, give the
Gaussian nearest the posterior::

    g = Cov(phi_j, t)
    m' = m + g (E[t | y] - E t) / Var t
    S' = S - g g^T (Var t - Var[t | y]) / (Var t)^2

The draws are then moved by the affine map ``phi' = m' + A (phi - m)`` with
``A S A^T = S'`` (a rank-one change ``A = I - beta g g^T S^+``), so they keep their
pairing with the item parameters and every other variable: prediction, routing and
Thompson sampling read the updated draws exactly as they read a fitted posterior.
Item parameters do not learn from feedback (a refit does that:
``irt-bayes refit``).

With a forgetting factor ``lambda < 1`` the LLM's covariance is first widened to
``S / lambda`` (its draws spread about their mean by ``lambda^-1/2``) at each of its
outcomes: old evidence decays geometrically, so an LLM whose accuracy drifts is
tracked with about ``1 / (1 - lambda)`` outcomes of memory.

The updates are deterministic: replaying the same feedback in the same order gives the
same posterior, which is how a restarted service and every replica agree
(:mod:`irt_bayes.service`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from irt_bayes.components import NUMPY, log_likelihood
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.onboarding import (
    _append_llm,
    _set_llms,
    llm_blocks,
    llm_values,
    prior_draws,
    prior_sd,
    query_design,
    structure_with,
)

__all__ = ["OnlinePosterior", "Observation", "QUADRATURE_NODES", "feedback_responses"]

QUADRATURE_NODES = 48
"""Gauss-Hermite nodes of the tilted moments (exact to 1e-8 for the logistic)."""
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass(frozen=True)
class Observation:
    """One outcome with its query's design (:func:`~irt_bayes.onboarding.query_design`).

    ``o`` (S,), ``z`` (S, P), ``c`` (S,) or None: the linear predictor of any LLM on the
    query is ``o + z . phi`` in each posterior draw.
    """

    llm: str
    score: float
    o: np.ndarray
    z: np.ndarray
    c: np.ndarray | None = None


def tilted_moments(
    mean: float, var: float, y: float, c: float | None, n: float = 1.0
) -> tuple[float, float]:
    """Mean and variance of ``t ~ N(mean, var)`` reweighted by the likelihood of ``y``."""
    sd = np.sqrt(max(var, 0.0))
    t = mean + sd * _NODES
    ll = log_likelihood(y, t, c, None if n == 1.0 else n, NUMPY)
    w = _WEIGHTS * np.exp(ll - ll.max())
    w /= w.sum()
    m = float(w @ t)
    return m, float(w @ (t - m) ** 2)


def adf_update(
    phi: np.ndarray, t: np.ndarray, y: float, c: float | None, n: float = 1.0
) -> np.ndarray:
    """Draws (S, P) of ``phi`` moved to the ADF posterior given ``y`` (module docstring).

    Parameters
    ----------
    phi : numpy.ndarray
        (S, P) draws of the LLM's values.
    t : numpy.ndarray
        (S,) the linear predictor of the observed (query, LLM) in the same draws.
    y, c, n
        The outcome, the mean lower asymptote (None without one) and the trials.
    """
    m = phi.mean(axis=0)
    d = phi - m
    dt = t - t.mean()
    v_t = float(dt @ dt) / len(t)
    if v_t <= 1e-12:  # nothing about phi is learned from a linear predictor it does not move
        return phi
    g = d.T @ dt / len(t)  # Cov(phi, t)
    m_t, v_post = tilted_moments(float(t.mean()), v_t, y, c, n)
    new_m = m + g * (m_t - t.mean()) / v_t
    k = (v_t - v_post) / v_t**2
    cov = d.T @ d / len(t)
    h = np.linalg.pinv(cov, hermitian=True, rcond=1e-10) @ g  # S^+ g
    q = float(g @ h)
    if q <= 1e-15:
        return phi + (new_m - m)
    kq = min(k * q, 1.0 - 1e-9)
    beta = (1.0 - np.sqrt(1.0 - kq)) / q
    return new_m + d - beta * np.outer(d @ h, g)


class OnlinePosterior:
    """A fitted router whose per-LLM posterior follows the feedback it is given.

    Parameters
    ----------
    router : IRTRouter
        A fitted router (not modified).
    forgetting : float, default 1.0
        ``lambda`` in (0, 1]: 1 keeps every outcome; below 1 old outcomes of an LLM
        fade geometrically (drift).

    Attributes
    ----------
    router_ : IRTRouter
        The current view: a shallow copy of ``router`` whose prediction draws hold the
        updated values (and LLMs added with :meth:`add_llm`).
    n_updates_ : int
        Outcomes folded in so far.

    Examples
    --------
    >>> online = OnlinePosterior(router)  # doctest: +SKIP
    >>> obs = online.observations(["What is 2 + 2?"], ["llm-0"], [1.0])  # doctest: +SKIP
    >>> online.update(obs).router_.predict(["What is 3 + 3?"])  # doctest: +SKIP
    """

    def __init__(self, router, forgetting: float = 1.0) -> None:
        router._check_fitted()
        if not 0.0 < forgetting <= 1.0:  # also False for NaN
            raise IrtBayesError(f"forgetting must be in (0, 1], got {forgetting}")
        self.forgetting = float(forgetting)
        self._lock = threading.Lock()
        self._base = router
        draws = dict(router.draws_)
        self._blocks = llm_blocks(router.components_, draws)
        self._phi = llm_values(draws, self._blocks)  # (S, J, P)
        self.router_ = self._view(router, draws)
        self.n_updates_ = 0

    @staticmethod
    def _view(router, draws: dict[str, np.ndarray]):
        view = copy.copy(router)
        view._draws = draws
        return view

    @property
    def llms(self) -> list[str]:
        """The pool, in order."""
        return list(self.router_.llms_)

    def observations(
        self,
        queries: pd.DataFrame | Sequence[str],
        llms: Sequence[str],
        scores: Sequence[float],
        *,
        embeddings: np.ndarray | None = None,
        first_row: int = 0,
    ) -> list[Observation]:
        """Outcomes with their queries' designs, ready for :meth:`update`.

        Parameters
        ----------
        queries : DataFrame or sequence of str
            The queries (``query_id``, ``query``); ids of training queries use their
            fitted item parameters, any other query the new-query predictive.
        llms, scores : sequence
            The LLM that answered each query and its score in [0, 1].
        embeddings : numpy.ndarray, optional
            (n, dim) embeddings of the queries, instead of encoding the texts.
        first_row : int, default 0
            Position of the first new query in a longer stream
            (:func:`~irt_bayes.onboarding.query_design`): a service passes the feedback
            row's number, so replaying the same rows in other batches designs them alike.
        """
        from irt_bayes.router import as_query_frame

        q = as_query_frame(queries).reset_index(drop=True)
        llms, scores = list(llms), np.asarray(scores, dtype=float)
        if not len(q) == len(llms) == len(scores):
            raise DataError(
                f"{len(q)} queries, {len(llms)} LLMs and {len(scores)} scores: "
                "give one of each per outcome"
            )
        bad = ~np.isfinite(scores) | (scores < 0) | (scores > 1)
        if bad.any():
            raise DataError(f"score {scores[bad][0]!r} is not in [0, 1]")
        unknown = [m for m in llms if m not in self.router_.llms_]
        if unknown:
            raise DataError(f"unknown LLM {unknown[0]!r}; the pool is {self.llms}")
        if len(q) == 0:
            return []
        view = self.router_
        o, z, c, _ = query_design(view, view.draws_, self._blocks, q, embeddings, first_row)
        return [
            Observation(m, float(s), o[:, i], z[:, i], None if c is None else c[:, i])
            for i, (m, s) in enumerate(zip(llms, scores, strict=True))
        ]

    def update(self, observations: Sequence[Observation]) -> OnlinePosterior:
        """Fold outcomes in, in order (the module docstring's rule); returns self."""
        with self._lock:
            phi = self._phi.copy()
            llms = self.llms
            for ob in observations:
                if ob.llm not in llms:
                    raise DataError(f"unknown LLM {ob.llm!r}; the pool is {llms}")
                j = llms.index(ob.llm)
                x = phi[:, j]
                if self.forgetting < 1.0:
                    m = x.mean(axis=0)
                    x = m + (x - m) / np.sqrt(self.forgetting)
                t = ob.o + np.einsum("sp,sp->s", ob.z, x)
                c = None if ob.c is None else float(np.mean(ob.c))
                phi[:, j] = adf_update(x, t, ob.score, c)
            self._commit(phi)
            self.n_updates_ += len(observations)
        return self

    def _commit(self, phi: np.ndarray) -> None:
        draws = _set_llms(self.router_.draws_, self._blocks, phi)
        self._phi = phi
        # one assignment: a request routing meanwhile sees the old view or the new one
        self.router_ = self._view(self.router_, draws)

    def add_llm(self, name: str, price: float, *, seed: int | None = None) -> OnlinePosterior:
        """Add an LLM with the population prior of a new LLM (no outcomes yet); returns self.

        Its values are drawn as :func:`~irt_bayes.onboarding.add_llms` draws them before
        any probe; its outcomes then update it like any other LLM's, and Thompson
        sampling explores it as far as its wide posterior warrants.
        """
        with self._lock:
            if name in self.llms:
                raise DataError(f"LLM {name!r} is already in the pool")
            if not (np.isfinite(price) and price >= 0):
                raise DataError(f"the price of {name!r} must be a finite USD amount >= 0")
            base = self.router_
            draws = dict(base.draws_)
            rng = np.random.default_rng(base.seed if seed is None else seed)
            phi_new, _ = prior_draws(prior_sd(self._blocks, draws), rng)
            draws = _append_llm(draws, self._blocks, phi_new)
            view = self._view(base, draws)
            view.llms_ = [*base.llms_, name]
            prices = base.prices_.reindex(view.llms_).copy()
            prices[name] = float(price)
            view.prices_ = prices
            view.structure_ = structure_with(base.structure_, view.llms_)
            self._phi = llm_values(draws, self._blocks)
            self.router_ = view
        return self

    def abilities(self) -> pd.DataFrame:
        """Posterior mean and sd of each LLM's abilities now (columns per skill)."""
        theta = self.router_.draws_["theta"]  # (S, J, K)
        rows = []
        for j, m in enumerate(self.llms):
            for k in range(theta.shape[2]):
                rows.append(
                    {
                        "llm": m,
                        "skill": k,
                        "mean": float(theta[:, j, k].mean()),
                        "sd": float(theta[:, j, k].std()),
                    }
                )
        return pd.DataFrame(rows)


def feedback_responses(router, store, data) -> pd.DataFrame:
    """A service's stored feedback as tidy responses to fit beside ``data`` (a refit).

    Each row becomes a query ``feedback-<seq>`` with its text; the columns ``data`` has
    are filled the way the router reads them: ``cost`` from the router's prices,
    ``dataset`` from the router's most probable dataset for the text (feedback carries
    no label), ``trials`` 1. Rows of LLMs outside the router's pool are left out.
    """
    fb = store.feedback_since(0)
    fb = fb[fb["llm"].isin(router.llms_)].reset_index(drop=True)
    out = pd.DataFrame(
        {
            "query_id": [f"feedback-{s}" for s in fb["seq"]],
            "query": fb["query"].astype(str),
            "llm": fb["llm"].astype(str),
            "score": fb["score"].astype(float),
        }
    )
    if out.empty:
        return out
    cols = data.responses.columns
    if "cost" in cols:
        out["cost"] = router.prices_.reindex(out["llm"]).to_numpy(float)
    if "trials" in cols:
        out["trials"] = 1
    if "dataset" in cols and router.datasets_:
        emb = np.stack(fb["embedding"].to_list())
        probs, _ = router._dataset_probs(out, emb, use_labels=False)
        out["dataset"] = [router.domain_.label_of(int(d)) for d in probs.argmax(axis=1)]
    return out
