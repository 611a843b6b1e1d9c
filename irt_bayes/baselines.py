"""Baseline predictors of P(correct) for the routing evaluation.

Every router in :mod:`irt_bayes.evaluation`, ours and the baselines, is used through
one interface, so that all of them see the same data, embeddings and costs::

    predictor.fit(data, embeddings)            # -> predictor; sets predictor.llms_
    predictor.predict_proba(queries, embeddings)  # -> (n_queries, n_llms) in llms_ order

``embeddings`` are (n, dim) sentence embeddings, L2-normalised, in ``data.query_ids``
order at fit time and in row order of ``queries`` at prediction time; ``queries`` is a
frame with ``query_id``, ``query`` and optionally ``dataset``.

=============================  ==========================================================
predictor                      P(correct) of query ``q`` and LLM ``m``
=============================  ==========================================================
:class:`PerLLMAccuracy`        Beta(1, 1)-smoothed training accuracy of ``m``
:class:`PerDatasetPrior`       the same on ``q``'s dataset (**uses the test label**)
:class:`KNNRouter`             mean score of ``m`` over the k nearest training queries
:class:`LogisticRouter`        one L2-penalised logistic regression per LLM on ``e_q``
:class:`MatrixFactorizationRouter`  RouteLLM-style ``w2 . (v_m * W1 e_q) + b_m``
:class:`IRTRouterMIRT`         IRT-Router's MIRT (Song et al., 2025), point estimate
:class:`BayesianIRT`           posterior mean of :class:`~irt_bayes.router.IRTRouter`
=============================  ==========================================================

Every predictor routes from the query text (its embedding) alone, except
:class:`PerDatasetPrior`, which reads the ``dataset`` label of each new query: tables
must mark it as using the label (``uses_labels = True``), and it is not comparable with
published routers, which see only the text.

Scores may be fractions (or k-of-n with ``trials``): every predictor fits the expected
score with a cross-entropy that accepts soft targets, and k-of-n responses weigh
``trials`` times as much as a 0/1 one. Missing (query, LLM) pairs are left out of every
fit, never filled.

Examples
--------
>>> import numpy as np
>>> from irt_bayes import simulate_pool
>>> from irt_bayes.data import ResponseData
>>> data = ResponseData.from_frame(simulate_pool(n_queries=60, n_llms=3).responses)
>>> emb = np.random.default_rng(0).normal(size=(data.n_queries, 8))
>>> emb /= np.linalg.norm(emb, axis=1, keepdims=True)
>>> p = KNNRouter(k=5).fit(data, emb).predict_proba(data.queries, emb)
>>> p.shape
(60, 3)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.features import EmbeddingFeatures
from irt_bayes.predict import knn
from irt_bayes.router import IRTRouter

__all__ = [
    "BayesianIRT",
    "IRTRouterMIRT",
    "KNNRouter",
    "LogisticRouter",
    "MatrixFactorizationRouter",
    "PerDatasetPrior",
    "PerLLMAccuracy",
]

_EPS = 1e-6  # keeps probabilities off exactly 0 and 1, where log loss is infinite
_KNN_CHUNK = 2048  # rows of the (n_new, n_train) similarity matrix held at once


# ----------------------------------------------------------------------------- shared
@dataclass(frozen=True)
class _Train:
    """Training responses as dense (query, LLM) arrays in ``data.query_ids`` order."""

    emb: np.ndarray  # (Q, dim) float32, unit rows
    score: np.ndarray  # (Q, J), 0 where missing
    weight: np.ndarray  # (Q, J), 0 where missing, else 1 (or trials)
    dataset: np.ndarray | None  # (Q,) labels, "" where unlabelled

    @property
    def global_rate(self) -> np.ndarray:
        """(J,) Beta(1, 1)-smoothed accuracy of each LLM over all training queries."""
        return _beta_rate((self.weight * self.score).sum(axis=0), self.weight.sum(axis=0))


def _beta_rate(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Posterior mean of a rate under a Beta(1, 1) prior."""
    return (successes + 1.0) / (trials + 2.0)


def _unit_rows(emb: np.ndarray, n: int, what: str) -> np.ndarray:
    """Check shape (n, dim) and finiteness; return float32 with unit-norm rows."""
    arr = np.asarray(emb, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise DataError(f"{what} embeddings have shape {arr.shape}, expected ({n}, dim)")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} embeddings contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


def _neighbours(emb: np.ndarray, train_emb: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of the k most cosine-similar training queries, chunked for memory."""
    k = min(k, train_emb.shape[0])
    if emb.shape[0] == 0:
        return np.zeros((0, k), dtype=np.intp)
    parts = [knn(emb[s : s + _KNN_CHUNK], train_emb, k)[0] for s in range(0, len(emb), _KNN_CHUNK)]
    return np.concatenate(parts)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


class _Predictor:
    """Shared validation: subclasses implement ``_fit(train)`` and ``_predict(q, emb)``.

    Attributes
    ----------
    name : str
        Label of the predictor in evaluation tables and plots.
    uses_labels : bool
        Whether it reads the new queries' ``dataset`` labels.
    llms_ : list of str
        LLM names in the order of the columns of :meth:`predict_proba`.
    """

    name: str
    uses_labels: bool = False

    def fit(self, data: ResponseData, embeddings: np.ndarray) -> Self:
        """Fit on training responses.

        Parameters
        ----------
        data : ResponseData
            Training responses.
        embeddings : numpy.ndarray
            (n_queries, dim) embeddings of ``data.query_ids``, in that order.

        Returns
        -------
        Self
            The fitted predictor.
        """
        if not isinstance(data, ResponseData):
            raise DataError(f"expected ResponseData, got {type(data).__name__}")
        ds = data.to_xarray()
        observed = ds["observed"].to_numpy()
        weight = observed.astype(np.float64)
        if "trials" in ds:
            weight = np.where(observed, np.nan_to_num(ds["trials"].to_numpy()), 0.0)
        dataset = ds["dataset"].to_numpy().astype(str) if "dataset" in ds.coords else None
        train = _Train(
            emb=_unit_rows(embeddings, data.n_queries, "training"),
            score=np.where(observed, np.nan_to_num(ds["score"].to_numpy()), 0.0),
            weight=weight,
            dataset=dataset,
        )
        self.llms_ = list(data.llms)
        self.train_embeddings_ = train.emb
        self.global_rate_ = train.global_rate
        self._fit(train)
        return self

    def predict_proba(self, queries: pd.DataFrame, embeddings: np.ndarray) -> np.ndarray:
        """P(correct) of every (query, LLM) pair.

        Parameters
        ----------
        queries : pandas.DataFrame
            New queries, one per row: ``query_id``, ``query`` and optionally ``dataset``.
        embeddings : numpy.ndarray
            (len(queries), dim) embeddings of the queries, in row order.

        Returns
        -------
        numpy.ndarray
            (n_queries, n_llms) float64 in [0, 1], columns in :attr:`llms_` order.
        """
        if not hasattr(self, "llms_"):
            raise IrtBayesError(f"this {type(self).__name__} is not fitted yet: call fit()")
        if not isinstance(queries, pd.DataFrame):
            raise DataError(f"queries must be a DataFrame, got {type(queries).__name__}")
        emb = _unit_rows(embeddings, len(queries), "query")
        if emb.shape[1] != self.train_embeddings_.shape[1]:
            raise DataError(
                f"query embeddings have dimension {emb.shape[1]}, the predictor was fitted "
                f"with {self.train_embeddings_.shape[1]}"
            )
        p = np.asarray(self._predict(queries.reset_index(drop=True), emb), dtype=np.float64)
        return np.clip(p, 0.0, 1.0)

    def _fit(self, train: _Train) -> None:
        raise NotImplementedError

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ------------------------------------------------------------------ per-LLM accuracy
class PerLLMAccuracy(_Predictor):
    """Each LLM's Beta(1, 1)-smoothed training accuracy, the same for every query.

    The reference a router must beat: it ignores the query entirely. Routing by it
    sends every query to the LLM with the best accuracy-for-money on average.

    Parameters
    ----------
    name : str, default "per-llm-accuracy"
    """

    def __init__(self, name: str = "per-llm-accuracy") -> None:
        self.name = name

    def _fit(self, train: _Train) -> None:
        pass

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.global_rate_, (len(queries), len(self.llms_))).copy()


# ------------------------------------------------------------------ per-dataset prior
class PerDatasetPrior(_Predictor):
    """Per-LLM accuracy on the query's dataset, ignoring everything else about the query.

    P(correct) = (successes + 1) / (responses + 2) of the LLM on the training queries of
    the same ``dataset`` (a Beta(1, 1) posterior mean). It reads the new query's
    ``dataset`` label, which real traffic does not carry: ``uses_labels`` is True.

    Parameters
    ----------
    fallback : {"neighbours", "global"}, default "neighbours"
        For a query whose dataset is missing (no column, or ``""``) or was not seen in
        training. ``"neighbours"``: the average of the dataset rates of its ``k`` most
        similar training queries (a soft guess of which dataset it resembles; for a
        new dataset, the closest ones). ``"global"``: the LLM's overall training accuracy.
    k : int, default 10
        Neighbours used by the ``"neighbours"`` fallback.
    name : str, default "per-dataset-prior"

    Attributes
    ----------
    datasets_ : list of str
        Training datasets, rows of ``rates_`` (``""`` for unlabelled training queries).
    rates_ : numpy.ndarray
        (n_datasets, n_llms) smoothed accuracies.
    """

    uses_labels = True

    def __init__(
        self,
        fallback: Literal["neighbours", "global"] = "neighbours",
        k: int = 10,
        name: str = "per-dataset-prior",
    ) -> None:
        if fallback not in ("neighbours", "global"):
            raise IrtBayesError(f"unknown fallback {fallback!r}; use 'neighbours' or 'global'")
        self.fallback = fallback
        self.k = k
        self.name = name

    def _fit(self, train: _Train) -> None:
        labels = train.dataset if train.dataset is not None else np.full(len(train.emb), "")
        self.datasets_ = list(pd.unique(labels))
        idx = pd.Index(self.datasets_).get_indexer(labels)
        onehot = np.eye(len(self.datasets_))[idx]  # (Q, D)
        self.rates_ = _beta_rate(onehot.T @ (train.weight * train.score), onehot.T @ train.weight)
        self.train_dataset_idx_ = idx

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        if "dataset" in queries.columns:
            labels = queries["dataset"].fillna("").astype(str).to_numpy()
        else:
            labels = np.full(len(queries), "")
        idx = pd.Index(self.datasets_).get_indexer(labels)
        idx[labels == ""] = -1  # a missing label never matches unlabelled training queries
        out = np.empty((len(queries), len(self.llms_)))
        known = idx >= 0
        out[known] = self.rates_[idx[known]]
        if (~known).any():
            if self.fallback == "global":
                out[~known] = self.global_rate_
            else:
                nb = _neighbours(emb[~known], self.train_embeddings_, self.k)
                out[~known] = self.rates_[self.train_dataset_idx_[nb]].mean(axis=1)
        return out


# --------------------------------------------------------------------------------- kNN
class KNNRouter(_Predictor):
    """Mean score of each LLM over the k most similar training queries.

    ``P = (sum of scores + alpha * global accuracy) / (n answered + alpha)`` over the k
    nearest training queries by cosine similarity; a neighbour that the LLM did not
    answer is skipped for that LLM, so that missing pairs never count as failures.

    Parameters
    ----------
    k : int, default 10
        Number of neighbours.
    alpha : float or "loo", default "loo"
        Pseudo-count of the shrinkage toward the LLM's global training accuracy: keeps
        ``P`` off 0 and 1 (where log loss is unbounded) and handles LLMs that none of
        the neighbours answered. ``"loo"``: the value of ``alphas`` with the smallest
        leave-one-out cross-entropy on the training queries (each query predicted from
        its k nearest *other* training queries), which costs one kNN pass.
    alphas : tuple of float
        Grid searched when ``alpha="loo"``.
    name : str, optional
        Default ``"knn-{k}"``.

    Attributes
    ----------
    alpha_ : float
        The pseudo-count used.
    loo_loss_ : dict of float to float
        Leave-one-out cross-entropy per alpha (empty when alpha was given).
    """

    def __init__(
        self,
        k: int = 10,
        alpha: float | Literal["loo"] = "loo",
        alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0),
        name: str | None = None,
    ) -> None:
        if k < 1:
            raise IrtBayesError(f"k must be at least 1, got {k}")
        grid = alphas if alpha == "loo" else (alpha,)
        if not all(isinstance(a, int | float) and a > 0 for a in grid):
            # alpha = 0 would divide by zero for an LLM that no neighbour answered
            raise IrtBayesError(f"alpha must be 'loo' or positive, got {alpha!r}")
        self.k = k
        self.alpha = alpha
        self.alphas = alphas
        self.name = name if name is not None else f"knn-{k}"

    def _fit(self, train: _Train) -> None:
        self._wscore = train.weight * train.score
        self._weight = train.weight
        self.loo_loss_: dict[float, float] = {}
        if self.alpha == "loo":
            self.loo_loss_ = self._leave_one_out(train)
            self.alpha_ = min(self.loo_loss_, key=self.loo_loss_.__getitem__)
        else:
            self.alpha_ = float(self.alpha)

    def _leave_one_out(self, train: _Train) -> dict[float, float]:
        q = len(train.emb)
        nb = _neighbours(train.emb, train.emb, self.k + 1)
        # Drop each query from its own neighbours (the last one if a duplicate text
        # outranked it), leaving its k nearest others.
        is_self = nb == np.arange(q)[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), nb.shape[1] - 1)
        keep = np.ones(nb.shape, dtype=bool)
        keep[np.arange(q), drop] = False
        hits, n = self._pool(nb[keep].reshape(q, -1))
        total = train.weight.sum()
        return {
            float(a): _cross_entropy(
                (hits + a * self.global_rate_) / (n + a), train.score, train.weight
            )
            / total
            for a in self.alphas
        }

    def _pool(self, nb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Summed (weighted) scores and responses of each LLM over the neighbours."""
        return self._wscore[nb].sum(axis=1), self._weight[nb].sum(axis=1)

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        hits, n = self._pool(_neighbours(emb, self.train_embeddings_, self.k))
        return (hits + self.alpha_ * self.global_rate_) / (n + self.alpha_)


# ---------------------------------------------------------------------------- logistic
class LogisticRouter(_Predictor):
    """One L2-penalised logistic regression per LLM on the query embedding.

    Fractional scores ``s`` enter as two weighted rows, ``y=1`` with weight ``s`` and
    ``y=0`` with weight ``1 - s``, which is exactly the soft-target cross-entropy.
    Fitted by scikit-learn's exact Newton solver (``newton-cholesky``): L-BFGS at its
    default tolerance stops early on unit-norm embeddings, whose coordinates are small.

    Parameters
    ----------
    C : float or "cv", default "cv"
        Inverse regularisation strength. ``"cv"``: one C for all LLMs, the value of
        ``Cs`` with the smallest cross-entropy in ``cv``-fold cross-validation over
        training *queries* (both rows of a query stay in the same fold).
    Cs : tuple of float
        Grid searched when ``C="cv"``.
    cv : int, default 3
        Folds of the internal cross-validation.
    seed : int, default 0
        Seed of the fold assignment.
    name : str, default "logistic"

    Attributes
    ----------
    C_ : float
        The C used for the final fit.
    cv_loss_ : dict of float to float
        Cross-validated cross-entropy per C (empty when C was given).
    coef_, intercept_ : numpy.ndarray
        (n_llms, dim) and (n_llms,); an LLM with a single outcome class in training gets
        zero slopes and the logit of its smoothed accuracy.
    """

    def __init__(
        self,
        C: float | Literal["cv"] = "cv",
        Cs: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
        cv: int = 3,
        seed: int = 0,
        name: str = "logistic",
    ) -> None:
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.seed = seed
        self.name = name

    def _fit(self, train: _Train) -> None:
        self.cv_loss_: dict[float, float] = {}
        if self.C == "cv":
            self.cv_loss_ = self._cross_validate(train)
            self.C_ = min(self.cv_loss_, key=self.cv_loss_.__getitem__)
        else:
            self.C_ = float(self.C)
        self.coef_, self.intercept_ = self._fit_all(train, np.arange(len(train.emb)), self.C_)

    def _cross_validate(self, train: _Train) -> dict[float, float]:
        from sklearn.model_selection import KFold

        folds = KFold(self.cv, shuffle=True, random_state=self.seed).split(train.emb)
        loss = dict.fromkeys(map(float, self.Cs), 0.0)
        for fit_idx, val_idx in folds:
            for C in loss:
                coef, icpt = self._fit_all(train, fit_idx, C)
                p = _sigmoid(train.emb[val_idx] @ coef.T + icpt)
                loss[C] += _cross_entropy(p, train.score[val_idx], train.weight[val_idx])
        total = train.weight.sum()
        return {C: v / total for C, v in loss.items()}

    def _fit_all(self, train: _Train, rows: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        x = train.emb[rows].astype(np.float64)
        J = train.score.shape[1]
        coef, icpt = np.zeros((J, x.shape[1])), np.zeros(J)
        for j in range(J):
            s, w = train.score[rows, j], train.weight[rows, j]
            sw = np.concatenate([w * s, w * (1.0 - s)])
            y = np.repeat([1, 0], len(rows))
            keep = sw > 0
            if len(np.unique(y[keep])) < 2:  # one class only: nothing to separate
                rate = _beta_rate((w * s).sum(), w.sum())
                icpt[j] = np.log(rate / (1.0 - rate))
                continue
            model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200)
            model.fit(np.concatenate([x, x])[keep], y[keep], sample_weight=sw[keep])
            coef[j], icpt[j] = model.coef_[0], model.intercept_[0]
        return coef, icpt

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        return _sigmoid(emb.astype(np.float64) @ self.coef_.T + self.intercept_)


def _cross_entropy(p: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    """Summed weighted soft-target cross-entropy."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-(weight * (score * np.log(p) + (1.0 - score) * np.log1p(-p))).sum())


# ------------------------------------------------------------------------------ torch
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch inside the block without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _train_full_batch(
    module: nn.Module,
    x: np.ndarray,
    train: _Train,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
) -> list[float]:
    """Minimise the weighted soft-target BCE of ``module(x)`` (Q, J logits) with Adam.

    Full batch: the whole (query, LLM) matrix fits in memory and full-batch steps make
    the fit deterministic and independent of a shuffling seed. Returns the loss curve.
    """
    xt = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(train.score, dtype=torch.float32)
    w = torch.as_tensor(train.weight, dtype=torch.float32)
    total = w.sum()
    # Decay only the slopes on the query features: shrinking intercepts or abilities
    # would pull every prediction toward 1/2 instead of toward the LLM's base rate.
    keep = set(getattr(module, "no_decay", ()))
    named = list(module.named_parameters())
    groups = [
        {"params": [p for n, p in named if n not in keep], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n in keep], "weight_decay": 0.0},
    ]
    opt = torch.optim.Adam(groups, lr=lr)
    curve = []
    module.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(module(xt), y, reduction="none") * w).sum()
        loss = loss / total
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
    module.eval()
    return curve


def _predict_torch(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = module(torch.as_tensor(x, dtype=torch.float32))
    return torch.sigmoid(logits).double().numpy()


class _MFNet(nn.Module):
    """RouteLLM's matrix factorisation, pointwise: ``w2 . (v_m * W1 e) + b_m``."""

    no_decay = ("bias",)

    def __init__(self, in_dim: int, n_llms: int, dim: int, llm_bias: torch.Tensor) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim, bias=False)  # W1
        self.llm = nn.Parameter(torch.randn(n_llms, dim))  # v_m
        self.head = nn.Parameter(torch.randn(dim) / dim**0.5)  # w2
        self.bias = nn.Parameter(llm_bias.clone())  # b_m

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        v = F.normalize(self.llm, dim=1)  # as RouteLLM: LLM embeddings on the unit sphere
        return (self.proj(e) * self.head) @ v.T + self.bias


class MatrixFactorizationRouter(_Predictor):
    """Matrix factorisation of (query, LLM) outcomes in the style of RouteLLM.

    ``logit P(q, m) = w2 . (v_m * (W1 e_q)) + b_m`` with ``v_m`` a unit-norm LLM
    embedding, ``W1`` a linear projection of the query embedding; trained full-batch
    with Adam on the cross-entropy of the observed pairs. RouteLLM's version is pairwise
    (win rates of a strong against a weak model); this is its pointwise analogue.

    Parameters
    ----------
    dim : int, default 128
        Latent dimension.
    epochs : int, default 300
    lr : float, default 0.01
    weight_decay : float, default 3e-3
        Adam's L2 penalty on ``W1``, ``v`` and ``w2`` (not on ``b_m``), the guard
        against over-fitting; the defaults had the best 3-fold cross-validated log
        loss on RouterBench's training queries (arc-challenge + mbpp).
    seed : int, default 0
        Seed of the initialisation; fits are deterministic given it.
    name : str, default "matrix-factorization"

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network.
    loss_curve_ : list of float
        Training loss per epoch.
    """

    def __init__(
        self,
        dim: int = 128,
        epochs: int = 300,
        lr: float = 0.01,
        weight_decay: float = 3e-3,
        seed: int = 0,
        name: str = "matrix-factorization",
    ) -> None:
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.name = name

    def _fit(self, train: _Train) -> None:
        rate = self.global_rate_
        bias = torch.as_tensor(np.log(rate / (1.0 - rate)), dtype=torch.float32)
        with _seeded(self.seed):
            self.module_ = _MFNet(train.emb.shape[1], len(self.llms_), self.dim, bias)
            self.loss_curve_ = _train_full_batch(
                self.module_,
                train.emb,
                train,
                epochs=self.epochs,
                lr=self.lr,
                weight_decay=self.weight_decay,
            )

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        return _predict_torch(self.module_, emb)


class _MIRTNet(nn.Module):
    """``sigmoid(a . theta_m - b)`` with ``a = softplus(x W_a + c_a)``, ``b = x w_b + c_b``."""

    no_decay = ("disc.bias", "diff.bias", "theta")

    def __init__(self, n_features: int, n_llms: int, n_skills: int) -> None:
        super().__init__()
        self.disc = nn.Linear(n_features, n_skills)  # W_a, c_a
        self.diff = nn.Linear(n_features, 1)  # w_b, c_b
        self.theta = nn.Parameter(0.1 * torch.randn(n_llms, n_skills))
        with torch.no_grad():
            self.disc.weight.mul_(0.1)
            self.disc.bias.fill_(np.log(np.e - 1.0))  # softplus(c_a) = 1 at the start
            self.diff.weight.mul_(0.1)
            self.diff.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.softplus(self.disc(x))
        return a @ self.theta.T - self.diff(x)


class IRTRouterMIRT(_Predictor):
    """The MIRT of IRT-Router (Song et al., ACL 2025) as a point estimate.

    The same functional form as our Bayesian model, without priors or residuals:
    features ``x_i`` = 25 standardised principal components of the embedding
    (:class:`~irt_bayes.features.EmbeddingFeatures`), discrimination
    ``a_i = softplus(x_i W_a + c_a)`` (K skills), difficulty ``b_i = x_i w_b + c_b``,
    free abilities ``theta_j`` and ``P = sigmoid(a_i . theta_j - b_i)``, fitted by
    full-batch Adam on the cross-entropy.

    Parameters
    ----------
    n_skills : int, default 25
        K, the number of latent skills: 25 as in the paper (``knowledge_n``). By 3-fold
        cross-validation on the training files K = 2 and K = 25 tie (RouterBench 0.5137
        and 0.5140, RouterDC's 7-LLM set 0.6466 and 0.6463); the whole 384-d embedding
        instead of 25 components over-fits (0.5262 with 64, 1.39 with 384).
    n_features : int, default 25
        Principal components of the embedding.
    epochs : int, default 300
    lr : float, default 0.02
    weight_decay : float, default 0.01
        Adam's L2 penalty on the slopes ``W_a`` and ``w_b`` only (intercepts and
        abilities stay free). 0 gives plain maximum likelihood, which over-fits small
        datasets: discriminations of mbpp queries grew past 20 and the 3-fold
        cross-validated log loss on RouterBench's training queries was 0.03 worse
        than with this default, which was the best of that cross-validation.
    warmup : bool, default True
        The paper's cold-start warm-up at prediction: a new query's embedding is
        blended with the mean embedding of its ``k`` nearest training queries,
        ``(1 - lam) e + lam mean(e_knn)``, before it is mapped to features.
    k : int, default 5
    lam : float, default 0.3
    seed : int, default 0
    name : str, default "irt-router-mirt"

    Attributes
    ----------
    features_ : EmbeddingFeatures
    module_ : torch.nn.Module
    loss_curve_ : list of float
    """

    def __init__(
        self,
        n_skills: int = 25,
        n_features: int = 25,
        epochs: int = 300,
        lr: float = 0.02,
        weight_decay: float = 0.01,
        warmup: bool = True,
        k: int = 5,
        lam: float = 0.3,
        seed: int = 0,
        name: str = "irt-router-mirt",
    ) -> None:
        self.n_skills = n_skills
        self.n_features = n_features
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup = warmup
        self.k = k
        self.lam = lam
        self.seed = seed
        self.name = name

    def _fit(self, train: _Train) -> None:
        self.features_ = EmbeddingFeatures.fit(train.emb, self.n_features)
        x = self.features_.transform(train.emb)
        with _seeded(self.seed):
            self.module_ = _MIRTNet(x.shape[1], len(self.llms_), self.n_skills)
            self.loss_curve_ = _train_full_batch(
                self.module_,
                x,
                train,
                epochs=self.epochs,
                lr=self.lr,
                weight_decay=self.weight_decay,
            )

    def _predict(self, queries: pd.DataFrame, emb: np.ndarray) -> np.ndarray:
        if self.warmup:
            nb = _neighbours(emb, self.train_embeddings_, self.k)
            emb = (1.0 - self.lam) * emb + self.lam * self.train_embeddings_[nb].mean(axis=1)
        return _predict_torch(self.module_, self.features_.transform(emb))


# ---------------------------------------------------------------------- Bayesian IRT
class BayesianIRT(_Predictor):
    """Our hierarchical Bayesian :class:`~irt_bayes.router.IRTRouter` behind this interface.

    Parameters
    ----------
    model : str, default "auto"
        Model spec (``"auto"``, named or a TOML path), passed to :class:`IRTRouter`.
    warmup : {None, "irt-router"}, default None
        Warm-up of new queries at prediction, see :mod:`irt_bayes.predict`.
    use_labels : bool, default False
        Pass the new queries' ``dataset`` labels to the router (by default it routes
        from the text alone).
    k, lam : int, float
        Warm-up neighbours and ``"irt-router"`` blend weight.
    name : str, optional
        Default ``"bayes-{model}"`` (plus ``"+{warmup}"``).
    **router_kwargs
        Passed to :class:`IRTRouter` (``method``, ``draws``, ``max_iter``, ``seed``...);
        ``progress`` defaults to False.

    Attributes
    ----------
    router_ : IRTRouter
        The fitted router.
    """

    def __init__(
        self,
        model: str = "auto",
        *,
        warmup: Literal["irt-router"] | None = None,
        use_labels: bool = False,
        k: int = 5,
        lam: float = 0.3,
        name: str | None = None,
        **router_kwargs: Any,
    ) -> None:
        self.model = model
        self.warmup = warmup
        self.use_labels = self.uses_labels = use_labels
        self.k = k
        self.lam = lam
        self.router_kwargs = {"progress": False, **router_kwargs}
        self.name = (
            name if name is not None else f"bayes-{model}" + (f"+{warmup}" if warmup else "")
        )

    def fit(self, data: ResponseData, embeddings: np.ndarray) -> Self:
        """Fit the posterior; see :meth:`IRTRouter.fit`.

        Parameters
        ----------
        data : ResponseData
        embeddings : numpy.ndarray
            (n_queries, dim) embeddings of ``data.query_ids``.

        Returns
        -------
        Self
        """
        if not isinstance(data, ResponseData):
            raise DataError(f"expected ResponseData, got {type(data).__name__}")
        emb = _unit_rows(embeddings, data.n_queries, "training")
        self.router_ = IRTRouter(self.model, **self.router_kwargs).fit(data, embeddings=emb)
        self.llms_ = list(self.router_.llms_)
        self.train_embeddings_ = emb
        return self

    def predict_draws(self, queries: pd.DataFrame, embeddings: np.ndarray) -> np.ndarray:
        """Posterior draws of P(correct), shape (n_draws, n_queries, n_llms).

        Parameters
        ----------
        queries : pandas.DataFrame
            ``query_id``, ``query`` and optionally ``dataset``.
        embeddings : numpy.ndarray
            (len(queries), dim) embeddings in row order.

        Returns
        -------
        numpy.ndarray
            Columns in :attr:`llms_` order.
        """
        if not hasattr(self, "router_"):
            raise IrtBayesError("this BayesianIRT is not fitted yet: call fit()")
        emb = _unit_rows(embeddings, len(queries), "query")
        # Positional ids: IRTRouter keeps one row per query_id, and rows must stay aligned
        # with the embeddings even if an id repeats.
        q = queries.reset_index(drop=True).assign(query_id=[str(i) for i in range(len(queries))])
        p = self.router_.predict_proba(
            q,
            embeddings=emb,
            warmup=self.warmup,
            use_labels=self.use_labels,
            k=self.k,
            lam=self.lam,
        )
        return p.transpose("draw", "query", "llm").to_numpy()

    def predict_proba(self, queries: pd.DataFrame, embeddings: np.ndarray) -> np.ndarray:
        """Posterior mean P(correct), (n_queries, n_llms) in :attr:`llms_` order.

        Parameters
        ----------
        queries : pandas.DataFrame
        embeddings : numpy.ndarray

        Returns
        -------
        numpy.ndarray
        """
        return self.predict_draws(queries, embeddings).mean(axis=0)
