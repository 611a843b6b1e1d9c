"""``IRTRouter``: the estimator that ties data, encoder, model, inference and prediction.

It follows scikit-learn's conventions: ``fit`` returns ``self``, fitted attributes
end in ``_``, ``get_params``/``clone`` work, ``predict_proba`` gives probabilities (here
as posterior draws with named dims), and the object saves to / loads from a directory.

Every fit also checks itself: a share of the training queries (``holdout``) is held
out, the model is fitted to the rest and predicts them from their text alone, and
:mod:`irt_bayes.checks` compares predicted with observed accuracy per LLM and per
dataset (``check_``). With ``model="auto"`` (the default) the same split picks the
spec (:mod:`irt_bayes.selection`). The router that is kept is then fitted on all the
training data.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator

from irt_bayes import interrupts
from irt_bayes.checks import PredictiveCheckWarning
from irt_bayes.components import Component, components_for
from irt_bayes.data import ResponseData
from irt_bayes.domains import DOMAIN_MODES, DomainModel
from irt_bayes.encoding import QueryEncoder, as_embeddings
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.features import EmbeddingFeatures
from irt_bayes.inference import SAMPLERS, fit_advi, sample_nuts, warn_if_needed
from irt_bayes.memory import MEMORY_BUDGET, check_budget
from irt_bayes.model import IRTDesign, build_model, make_design, uses_datasets
from irt_bayes.predict import (
    PREDICT_DRAWS,
    RESIDUALS,
    SUMMARY_CELL_BYTES,
    NewQueryPredictive,
    QueryPrior,
    extract_draws,
    knn,
    sample_index,
    select_tau,
    summarise,
    training_log_likelihood,
)
from irt_bayes.spec import ModelSpec
from irt_bayes.stats import HDI_PROB

__all__ = ["IRTRouter", "as_query_frame", "response_grid", "HDI_PROB"]

Warmup = Literal["irt-router"] | None
# Fewest training queries for a held-out check (and for model="auto").
MIN_HOLDOUT_QUERIES = 40


def as_query_frame(queries: pd.DataFrame | Sequence[str]) -> pd.DataFrame:
    """Normalise queries to a frame with ``query_id``, ``query`` (and ``dataset``).

    A plain list of strings gets ids ``q0``, ``q1``...; a :class:`ResponseData` or a
    frame with those columns is taken as it is (one row per query id).
    """
    if isinstance(queries, ResponseData):
        return queries.queries
    if isinstance(queries, pd.DataFrame):
        missing = [c for c in ("query_id", "query") if c not in queries.columns]
        if missing:
            raise DataError(f"queries lack column {missing[0]!r}")
        cols = [c for c in ("query_id", "query", "dataset") if c in queries.columns]
        ids = queries["query_id"]
        if (  # already in shape (every service batch): skip 0.3 ms of copies a call
            list(queries.columns) == cols
            and isinstance(queries.index, pd.RangeIndex)
            and queries.index.start == 0
            and queries.index.step == 1
            and ids.is_unique
            and all(type(v) is str for v in ids)
        ):
            return queries.copy(deep=False)
        out = queries[cols].drop_duplicates("query_id").reset_index(drop=True)
        out["query_id"] = out["query_id"].astype(str)
        return out
    if isinstance(queries, str):
        queries = [queries]
    texts = list(queries)
    return pd.DataFrame({"query_id": [f"q{i}" for i in range(len(texts))], "query": texts})


def response_grid(data: ResponseData, llms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(Q, J) observed score (0 where missing) and weight (0 missing, 1 or trials)."""
    ds = data.to_xarray().reindex(llm=llms)
    observed = ds["observed"].fillna(False).to_numpy().astype(bool)
    score = np.where(observed, np.nan_to_num(ds["score"].to_numpy()), 0.0)
    weight = observed.astype(float)
    if "trials" in ds:
        weight = np.where(observed, np.nan_to_num(ds["trials"].to_numpy()), 0.0)
    return score, weight


class IRTRouter(BaseEstimator):
    """Hierarchical Bayesian IRT router over a pool of LLMs.

    Parameters
    ----------
    model : str, pathlib.Path or ModelSpec, default "auto"
        ``"auto"`` picks a spec among :data:`irt_bayes.selection.AUTO_CANDIDATES` (and,
        with dataset labels, the 2PL on latent clusters) by held-out log loss on the
        training queries; or a named spec (``rasch``,
        ``2pl``, ``3pl``, ``mirt-2`` ...), a TOML path, or a spec.
    encoder : str or QueryEncoder, default "default"
        Sentence-transformers model name/path, or a ready encoder.
    method : {"advi", "nuts"}, default "advi"
        Inference method.
    draws, tune, chains : int
        NUTS settings per chain; ADVI keeps ``max(draws, 1000)`` draws of its approximation.
    max_iter : int
        ADVI iteration cap.
    minibatch_size : int, optional
        Use minibatch ADVI with batches of this many responses.
    holdout : float, default 0.2
        Share of the training queries held out for the predictive check (and the
        choice of ``model="auto"``); 0 skips the check.
    domains : {"labels", "clusters", "labels+clusters"}, default "labels+clusters"
        What the model's dataset terms are indexed by: the ``dataset`` labels, latent
        clusters of the embeddings (always the case without labels), or clusters within
        each labelled dataset (see :mod:`irt_bayes.domains`).
    n_clusters : int, optional
        Latent clusters (per dataset with ``"labels+clusters"``); default
        :func:`irt_bayes.domains.cluster_count`; 1 for none.
    residuals : {"empirical", "normal"}, default "empirical"
        How a new query's own latent values (difficulty and discrimination residuals)
        are integrated over: jointly from the training queries' posterior
        (:mod:`irt_bayes.predict`), or from independent normals (irt-bayes 0.1).
    seed : int
        Makes fits and predictions reproducible.
    progress : bool
        Progress bars during encoding and fitting.
    cache_dir : path or False, optional
        Embedding cache location (``False`` disables it).
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}, default "nutpie"
        NUTS implementation (``method="nuts"``); numpyro and blackjax need the
        ``jax`` extra (see :data:`irt_bayes.inference.SAMPLERS`).
    memory_budget : int, default :data:`irt_bayes.memory.MEMORY_BUDGET` (1 GiB)
        Bytes the (draw, query, LLM) arrays of prediction and routing may take at once:
        they are worked through in blocks of queries (and of LLMs) that fit. Results do
        not depend on it; the router's posterior draws and the results asked for are
        not counted (see :mod:`irt_bayes.memory`).

    Attributes
    ----------
    spec_ : ModelSpec
        The spec fitted (the one chosen when ``model="auto"``).
    structure_ : Structure
        What the data let the spec build (datasets, features, groups).
    components_ : list of Component
        The model's terms (:func:`irt_bayes.components.components_for`).
    llms_ : list of str
    prices_ : pandas.Series
        Mean cost per query of each LLM in the training data (NaN without costs).
    domain_ : DomainModel or None
        Classifier of a query's dataset (or latent cluster) from its embedding.
    features_ : EmbeddingFeatures
    idata_ : arviz.InferenceData
    diagnostics_ : Diagnostics
    tau_ : float
        Kernel temperature of the new-query predictive (see :mod:`irt_bayes.predict`).
    check_ : PredictiveCheck or None
        Held-out predictive check of the spec (None with ``holdout=0``).
    selection_ : pandas.DataFrame or None
        Held-out log loss, largest gap, check and ``chosen`` of every candidate
        (``model="auto"``; a spec on latent clusters is named e.g. ``"2pl (clusters)"``).
    encoder_id_ : str
    onboarded_ : pandas.DataFrame or None
        LLMs added after the fit by :meth:`add_llms` (``llm, probes, new_queries,
        probe_accuracy, price``); None when every LLM was fitted.

    Examples
    --------
    >>> from irt_bayes import IRTRouter, simulate_pool
    >>> pool = simulate_pool(n_queries=200, n_llms=6, seed=1)
    >>> router = IRTRouter("2pl", progress=False).fit(pool.responses)  # doctest: +SKIP
    >>> router.predict_proba(["What is 17 + 25?"]).dims  # doctest: +SKIP
    ('draw', 'query', 'llm')
    """

    def __init__(
        self,
        model: str | os.PathLike | ModelSpec = "auto",
        *,
        encoder: str | QueryEncoder = "default",
        method: str = "advi",
        draws: int = 500,
        tune: int = 500,
        chains: int = 4,
        max_iter: int = 8000,
        minibatch_size: int | None = None,
        holdout: float = 0.2,
        domains: str = "labels+clusters",
        n_clusters: int | None = None,
        residuals: str = "empirical",
        seed: int = 0,
        progress: bool = True,
        cache_dir: str | os.PathLike | bool | None = None,
        memory_budget: int = MEMORY_BUDGET,
        sampler: str = "nutpie",
    ) -> None:
        if method not in ("advi", "nuts"):
            raise IrtBayesError(f"unknown method {method!r}; use 'advi' or 'nuts'")
        if not 0.0 <= holdout < 1.0:
            raise IrtBayesError(f"holdout must be in [0, 1), got {holdout!r}")
        self.model = model
        self.encoder = encoder
        self.method = method
        self.draws, self.tune, self.chains, self.max_iter = draws, tune, chains, max_iter
        self.minibatch_size = minibatch_size
        self.holdout = holdout
        if domains not in DOMAIN_MODES:
            raise IrtBayesError(f"unknown domains {domains!r}; use one of {DOMAIN_MODES}")
        self.domains = domains
        self.n_clusters = n_clusters
        if residuals not in RESIDUALS:
            raise IrtBayesError(f"unknown residuals {residuals!r}; use one of {RESIDUALS}")
        self.residuals = residuals
        self.seed = seed
        self.progress = progress
        self.cache_dir = cache_dir
        check_budget(memory_budget)
        self.memory_budget = memory_budget
        if sampler not in SAMPLERS:
            raise IrtBayesError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
        self.sampler = sampler

    # ------------------------------------------------------------------------ encoding
    def _get_encoder(self) -> QueryEncoder:
        enc = getattr(self, "_encoder", None)
        if enc is None:
            if isinstance(self.encoder, QueryEncoder):
                enc = self.encoder
            else:
                enc = QueryEncoder(
                    self.encoder if isinstance(self.encoder, str) else "default",
                    cache_dir=self.cache_dir,
                    show_progress=None if self.progress else False,
                )
            self._encoder = enc
        return enc

    def _embedding_array(
        self, ids: Sequence[str], embeddings: Any, *, fitting: bool = False
    ) -> np.ndarray | None:
        """Embeddings of the queries ``ids`` as an array (looked up in a table), or None.

        A table must hold the kind of embedding the router was fitted on, and a router
        fitted on precomputed embeddings cannot embed texts itself.
        """
        from irt_bayes.embeddings import EmbeddingTable, is_precomputed

        if isinstance(embeddings, EmbeddingTable):
            if not fitting and embeddings.encoder_id != self.encoder_id_:
                raise DataError(
                    f"holds {embeddings.encoder_id!r} embeddings, the router was fitted on "
                    f"{self.encoder_id_!r}: another kind (use the fit's file, or give every "
                    "file of the same encoder the same --embeddings-label)",
                    source=embeddings.source,
                )
            return embeddings.lookup(ids, "training queries" if fitting else "queries")
        if embeddings is None and not fitting and is_precomputed(self.encoder_id_):
            raise DataError(
                f"the router was fitted on precomputed embeddings ({self.encoder_id_}): "
                "give the queries' embeddings (--embeddings FILE)"
            )
        return embeddings

    def _query_embeddings(self, q: pd.DataFrame, embeddings: Any) -> np.ndarray:
        """Unit-norm embeddings of new queries ``q``, of the dimension the router was fitted on."""
        embeddings = self._embedding_array(q["query_id"].tolist(), embeddings)
        emb = self._embed(q["query"].tolist(), embeddings)
        if emb.shape[1] != self.embedding_dim_:
            raise DataError(
                f"embeddings have dimension {emb.shape[1]}, the router was fitted "
                f"with {self.embedding_dim_} ({self.encoder_id_})"
            )
        return emb

    def _embed(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        if embeddings is not None:
            emb = as_embeddings(embeddings, n=len(texts))
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            return (emb / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return self._get_encoder().encode(list(texts))

    # ----------------------------------------------------------------------------- fit
    def fit(
        self,
        data: ResponseData | pd.DataFrame,
        *,
        embeddings: np.ndarray | None = None,
        llm_groups: Mapping[str, str] | None = None,
    ) -> IRTRouter:
        """Fit the posterior to observed responses, after a held-out check.

        A :class:`~irt_bayes.checks.PredictiveCheckWarning` (one line) says when the
        held-out check flags an LLM.

        Parameters
        ----------
        data : ResponseData or pandas.DataFrame
            Training responses (a frame is validated with :meth:`ResponseData.from_frame`).
        embeddings : numpy.ndarray or EmbeddingTable, optional
            (n_queries, dim) precomputed embeddings in ``data.query_ids`` order, or a
            table looked up by query id (:mod:`irt_bayes.embeddings`; the router then
            records ``precomputed:<label>`` and predicts only from that kind); skips
            the encoder.
        llm_groups : mapping, optional
            LLM name to group (provider, family) for the ability hierarchy.

        Returns
        -------
        IRTRouter
            ``self``, fitted.
        """
        from irt_bayes.embeddings import EmbeddingTable
        from irt_bayes.selection import choose_model

        if isinstance(data, pd.DataFrame):
            data = ResponseData.from_frame(data)
        data.require_fittable()
        table = embeddings
        embeddings = self._embedding_array(data.query_ids, embeddings, fitting=True)
        emb = self._embed(data.queries["query"].tolist(), embeddings)
        groups = dict(llm_groups) if llm_groups is not None else None
        spec, domains, self.check_, self.selection_, self.selection_note_ = choose_model(
            self, data, emb, groups
        )
        if self.progress and self.selection_ is not None:
            label = str(self.selection_.index[self.selection_["chosen"]][0])
            print(f"fitting {label} on all {data.n_queries} training queries ...", file=sys.stderr)
        self._fit_core(spec, data, emb, groups, domains=domains)
        if self.check_ is not None and not self.check_.ok:
            warnings.warn(self.check_.verdict(), PredictiveCheckWarning, stacklevel=2)
        if isinstance(table, EmbeddingTable):
            self.encoder_id_ = table.encoder_id  # precomputed:<label>
        elif embeddings is None:
            self.encoder_id_ = self._get_encoder().encoder_id
        else:
            enc = getattr(self, "_encoder", None) or (
                self.encoder if isinstance(self.encoder, QueryEncoder) else None
            )
            self.encoder_id_ = getattr(enc, "encoder_id", "precomputed")
        return self

    def _fit_core(
        self,
        spec: ModelSpec,
        data: ResponseData,
        emb: np.ndarray,
        groups: dict[str, str] | None,
        domains: str | None = None,
    ) -> None:
        """Fit one spec on all of ``data`` (``domains``: the router's unless given)."""
        domains = self.domains if domains is None else domains
        # PyMC returns what it has when interrupted; a recorded signal must stop the next fit
        interrupts.raise_if_received()
        q = data.queries
        domain = labels = None
        if uses_datasets(spec):
            labels = q["dataset"].fillna("").astype(str).to_numpy() if data.has_dataset else None
            if labels is not None and len(set(labels) - {""}) < 2:
                labels = None  # one label is no domain structure: find clusters instead
            if labels is not None and (labels == "").any():
                raise DataError(
                    "some training queries have a dataset label and others none; label "
                    "every query or none",
                    source=data.source,
                )
            if labels is not None or self.n_clusters != 1:
                domain, labels = DomainModel.fit(
                    emb, labels, mode=domains, n_clusters=self.n_clusters, seed=self.seed
                )
                if domain.n_domains < 2:
                    domain, labels = None, None
        feats = EmbeddingFeatures.fit(emb, spec.embedding_dims)
        x = feats.transform(emb)
        design = make_design(spec, data, x, groups, datasets=labels)
        idata, diag = self._infer(spec, design)
        warn_if_needed(diag)
        _attach_observations(idata, design)

        self.spec_ = spec
        self.structure_ = design.structure
        self.llms_ = list(design.llms)
        self.prices_ = data.prices().reindex(self.llms_)
        self.datasets_ = list(design.datasets) if design.datasets else []
        self.domain_ = domain if design.datasets else None
        self.features_ = feats
        self.train_queries_ = q.reset_index(drop=True)
        self.train_embeddings_ = emb.astype(np.float32)
        self.train_dataset_idx_ = design.dataset_idx
        self.likelihood_ = design.likelihood
        self.idata_ = idata
        self.diagnostics_ = diag
        self.embedding_dim_ = int(emb.shape[1])
        self.onboarded_ = None
        self._draws = None
        score, weight = response_grid(data, self.llms_)
        self.tau_, self.tau_losses_ = select_tau(
            self.components_,
            self.draws_,
            self.query_prior_,
            x,
            score,
            weight,
            seed=self.seed,
            memory_budget=self.memory_budget,
        )

    def _infer(self, spec: ModelSpec, design: IRTDesign) -> tuple[az.InferenceData, Any]:
        if self.method == "nuts":
            model = build_model(spec, design)
            return sample_nuts(
                model,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=self.seed,
                progress=self.progress,
                sampler=self.sampler,
            )
        model = build_model(spec, design, minibatch_size=self.minibatch_size)
        return fit_advi(
            model,
            max_iter=self.max_iter,
            draws=max(self.draws, 1000),
            seed=self.seed,
            progress=self.progress,
        )

    # ---------------------------------------------------------------------- prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "idata_"):
            raise IrtBayesError("this IRTRouter is not fitted yet: call fit() or IRTRouter.load()")

    @property
    def components_(self) -> list[Component]:
        """The model's terms, from the spec and the data's structure."""
        self._check_fitted()
        return components_for(self.spec_, self.structure_)

    @property
    def draws_(self) -> dict[str, np.ndarray]:
        """Thinned posterior draws of the components' variables (cached), for prediction."""
        self._check_fitted()
        if getattr(self, "_draws", None) is None:
            idx = sample_index(self.idata_, PREDICT_DRAWS)
            self._draws = extract_draws(self.idata_, self.components_, idx)
        return self._draws

    @property
    def n_draws_(self) -> int:
        """Posterior draws used by prediction."""
        return int(next(iter(self.draws_.values())).shape[0])

    @property
    def query_prior_(self) -> QueryPrior:
        """Training queries whose latent values a new query may take (see predict.py)."""
        self._check_fitted()
        tau = getattr(self, "tau_", np.inf)
        prior = getattr(self, "_query_prior", None)
        # kept while it holds these very arrays: its float64 copy of the embeddings was
        # remade for every routing pass of the service otherwise (0.6 ms of 11)
        if (
            prior is None
            or prior.train_embeddings is not self.train_embeddings_
            or prior.train_dataset_idx is not self.train_dataset_idx_
            or prior.tau != tau
        ):
            prior = QueryPrior(self.train_embeddings_, self.train_dataset_idx_, tau)
            self._query_prior = prior
        return prior

    def _dataset_probs(
        self, q: pd.DataFrame, emb: np.ndarray, use_labels: bool
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """(n, D) posterior over datasets of each query, and which are from unseen ones."""
        n = len(q)
        unseen = np.zeros(n, dtype=bool)
        if not self.datasets_:
            return None, unseen
        probs = self.domain_.predict_proba(emb)
        if use_labels and "dataset" in q.columns:
            labels = q["dataset"].fillna("").astype(str).to_numpy()
            parent = np.array([self.domain_.label_of(d) for d in range(len(self.datasets_))])
            member = labels[:, None] == parent[None, :]  # (n, D): domains of the label
            has, known = labels != "", member.any(axis=1)
            # a known label keeps the classifier's odds among that label's domains only
            within = np.where(member, probs, 0.0)
            probs[known] = within[known] / within[known].sum(axis=1, keepdims=True)
            unseen = has & ~known
        return probs, unseen

    def predict_proba(
        self,
        queries: pd.DataFrame | Sequence[str] | ResponseData,
        *,
        embeddings: np.ndarray | None = None,
        use_labels: bool = False,
        warmup: Warmup = None,
        k: int = 5,
        lam: float = 0.3,
    ) -> xr.DataArray:
        """Predictive draws of P(correct) for each (query, LLM), from the query text.

        Parameters
        ----------
        queries : DataFrame, ResponseData or sequence of str
            New queries (``query_id``, ``query``, optionally ``dataset``).
        embeddings : numpy.ndarray or EmbeddingTable, optional
            Precomputed embeddings instead of encoding the texts (in query order, or a
            table by query id; required for a router fitted on a table).
        use_labels : bool, default False
            Use the queries' ``dataset`` labels: a known label fixes the dataset, an
            unknown one is a new dataset drawn from the hierarchy. By default a query's
            dataset is inferred from its embedding, as for real traffic.
        warmup : {None, "irt-router"}
            Blend each embedding with its k nearest training queries' (IRT-Router's
            cold-start warm-up) before mapping it to features.
        k : int, default 5
            Neighbours used by the warm-up.
        lam : float, default 0.3
            Blend weight of the warm-up.

        Returns
        -------
        xarray.DataArray
            Dims (``draw``, ``query``, ``llm``), values in (0, 1): joint draws of the
            parameters and of the query's latent values (see :mod:`irt_bayes.predict`).
            Computed in blocks that fit ``memory_budget``; the result itself is
            draws x queries x LLMs x 8 bytes (:meth:`predict` and
            :func:`~irt_bayes.routing.route` summarise block by block instead).
        """
        q = as_query_frame(queries)
        pred = self.predictive(
            q, embeddings=embeddings, use_labels=use_labels, warmup=warmup, k=k, lam=lam
        )
        p = pred.draws_array(pred.plan(self.memory_budget))
        return xr.DataArray(
            p,
            dims=("draw", "query", "llm"),
            coords={
                "draw": np.arange(pred.n_draws),
                "query": q["query_id"].to_numpy(),
                "llm": self.llms_,
            },
            name="p_correct",
        )

    def predictive(
        self,
        queries: pd.DataFrame | Sequence[str] | ResponseData,
        *,
        embeddings: np.ndarray | None = None,
        use_labels: bool = False,
        warmup: Warmup = None,
        k: int = 5,
        lam: float = 0.3,
        first_row: int = 0,
    ) -> NewQueryPredictive:
        """The predictive of new queries, to evaluate block by block.

        Takes the arguments of :meth:`predict_proba`, whose (S, n, J) draws are the
        blocks of :meth:`NewQueryPredictive.blocks
        <irt_bayes.predict.NewQueryPredictive.blocks>` put together, and ``first_row``:
        the position of the first query when a larger batch is predicted in parts.

        Returns
        -------
        NewQueryPredictive
            In the order of the queries and of ``llms_``.
        """
        self._check_fitted()
        if warmup not in (None, "irt-router"):
            raise IrtBayesError(f"unknown warmup {warmup!r}; use 'irt-router' or none")
        q = as_query_frame(queries)
        if len(q) == 0:
            raise DataError("no queries to predict")
        emb = self._query_embeddings(q, embeddings)
        if warmup == "irt-router":
            nb, _ = knn(emb, self.train_embeddings_, k)
            feats = self.features_.transform(
                (1 - lam) * emb + lam * self.train_embeddings_[nb].mean(axis=1)
            )
        else:
            feats = self.features_.transform(emb)
        probs, unseen = self._dataset_probs(q, emb, use_labels)
        return NewQueryPredictive(
            self.components_,
            self.draws_,
            self.query_prior_,
            emb,
            feats,
            probs,
            unseen,
            residuals=self.residuals,
            seed=self.seed,
            first_row=first_row,
        )

    def dataset_proba(
        self, queries: pd.DataFrame | Sequence[str], *, embeddings: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Posterior probability of each training dataset (or cluster) for each query.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``query_id``, one column per dataset; empty columns for a model
            without datasets.
        """
        self._check_fitted()
        q = as_query_frame(queries)
        emb = self._query_embeddings(q, embeddings)
        probs, _ = self._dataset_probs(q, emb, use_labels=False)
        cols = self.datasets_
        data = np.zeros((len(q), 0)) if probs is None else probs
        return pd.DataFrame(data, index=pd.Index(q["query_id"], name="query_id"), columns=cols)

    def predict(
        self,
        queries: pd.DataFrame | Sequence[str] | ResponseData,
        *,
        hdi_prob: float = HDI_PROB,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Predictive summary of P(correct): one row per (query, LLM).

        Parameters
        ----------
        queries : DataFrame, ResponseData or sequence of str
            New queries.
        hdi_prob : float, default 0.94
            Probability of the interval.
        **kwargs
            Passed to :meth:`predict_proba`.

        Returns
        -------
        pandas.DataFrame
            ``query_id, llm, p_mean, p_sd, p_low, p_high`` (equal-tailed ``hdi_prob``
            interval), summarised block by block (never all the draws at once).
        """
        q = as_query_frame(queries)
        pred = self.predictive(q, **kwargs)
        lo, hi = (1 - hdi_prob) / 2, 1 - (1 - hdi_prob) / 2
        n, J = pred.n_queries, pred.n_llms
        out = {k: np.empty((n, J)) for k in ("p_mean", "p_sd", "p_low", "p_high")}
        # a block, its draws-last copy and std's deviations (SUMMARY_CELL_BYTES)
        plan = pred.plan(self.memory_budget, cell=SUMMARY_CELL_BYTES * pred.n_draws)
        for rows, llms, p in pred.blocks(plan):
            mean, sd, qs = summarise(p, [lo, hi])
            out["p_mean"][rows, llms], out["p_sd"][rows, llms] = mean, sd
            out["p_low"][rows, llms], out["p_high"][rows, llms] = qs
            del p  # before the next block is made
        return pd.DataFrame(
            {
                "query_id": np.repeat(q["query_id"].to_numpy(), J),
                "llm": np.tile(np.asarray(self.llms_, dtype=object), n),
                **{k: v.ravel() for k, v in out.items()},
            }
        )

    # ------------------------------------------------------------------------ new LLMs
    def suggest_probes(
        self, n: int, *, after: ResponseData | pd.DataFrame | None = None, **kwargs: Any
    ) -> pd.DataFrame:
        """The ``n`` training queries that teach most about a new LLM (its accuracy, by default).

        See :func:`irt_bayes.onboarding.suggest_probes` (``after``: its answers so far).
        """
        from irt_bayes.onboarding import suggest_probes

        return suggest_probes(self, n, after=after, **kwargs)

    def add_llms(self, responses: ResponseData | pd.DataFrame, **kwargs: Any) -> IRTRouter:
        """A copy of the router with the LLMs of ``responses`` added, items held.

        See :func:`irt_bayes.onboarding.add_llms`.
        """
        from irt_bayes.onboarding import add_llms

        return add_llms(self, responses, **kwargs)

    def suggest_labels(
        self, queries: pd.DataFrame | Sequence[str], n: int, **kwargs: Any
    ) -> pd.DataFrame:
        """The ``n`` (query, LLM) pairs whose outcomes would most improve routing.

        See :func:`irt_bayes.onboarding.suggest_labels`.
        """
        from irt_bayes.onboarding import suggest_labels

        return suggest_labels(self, queries, n, **kwargs)

    # ----------------------------------------------------------------------- summaries
    def abilities(self, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
        """Posterior abilities: ``llm, skill, mean, sd, hdi_low, hdi_high``.

        Abilities are relative to the pool's average LLM (they sum to zero per skill),
        in logits for a query of typical discrimination.
        """
        self._check_fitted()
        theta = self.idata_.posterior["theta"]
        hdi = az.hdi(self.idata_, var_names=["theta"], hdi_prob=hdi_prob)["theta"]
        df = pd.DataFrame(
            {
                "mean": theta.mean(("chain", "draw")).to_series(),
                "sd": theta.std(("chain", "draw")).to_series(),
                "hdi_low": hdi.sel(hdi="lower").to_series(),
                "hdi_high": hdi.sel(hdi="higher").to_series(),
            }
        ).reset_index()
        return df[["llm", "skill", "mean", "sd", "hdi_low", "hdi_high"]]

    def training_inputs(self) -> dict[str, np.ndarray | None]:
        """Training features, dataset positions and observed pairs, for the components."""
        self._check_fitted()
        const = self.idata_.constant_data
        return {
            "features": self.features_.transform(self.train_embeddings_),
            "dataset_idx": self.train_dataset_idx_,
            "query_idx": const["query_idx"].to_numpy().astype(np.int64),
            "llm_idx": const["llm_idx"].to_numpy().astype(np.int64),
            "trials": const["trials"].to_numpy() if "trials" in const else None,
        }

    def log_likelihood(self) -> xr.DataArray:
        """Pointwise log-likelihood (chain, draw, obs) of the training responses."""
        self._check_fitted()
        post = self.idata_.posterior
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        y = self.idata_.observed_data["y"].to_numpy()
        t = self.training_inputs()
        comps = self.components_
        idx = np.arange(n_chain * n_draw)
        parts = []
        for lo in range(0, len(idx), 250):
            draws = extract_draws(self.idata_, comps, idx[lo : lo + 250])
            parts.append(
                training_log_likelihood(
                    comps,
                    draws,
                    t["features"],
                    t["dataset_idx"],
                    t["query_idx"],
                    t["llm_idx"],
                    y,
                    t["trials"],
                )
            )
        ll = np.concatenate(parts, axis=0)
        return xr.DataArray(
            ll.reshape(n_chain, n_draw, -1), dims=("chain", "draw", "obs"), name="y"
        )

    def loo(self) -> az.ELPDData:
        """PSIS-LOO of the training responses (see :func:`arviz.loo`)."""
        self._check_fitted()
        idata = az.InferenceData(
            posterior=self.idata_.posterior, log_likelihood=xr.Dataset({"y": self.log_likelihood()})
        )
        return az.loo(idata)

    # ---------------------------------------------------------------------- persistence
    def save(
        self, path: str | os.PathLike, *, force: bool = False, full_posterior: bool = False
    ) -> Path:
        """Save to a directory, compact unless ``full_posterior``.

        See :func:`irt_bayes.persistence.save_router`.
        """
        from irt_bayes.persistence import save_router

        return save_router(self, path, force=force, full_posterior=full_posterior)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> IRTRouter:
        """Load a saved router; see :func:`irt_bayes.persistence.load_router`."""
        from irt_bayes.persistence import load_router

        return load_router(path, **kwargs)

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:  # BaseEstimator's signature
        if not hasattr(self, "idata_"):
            return f"IRTRouter(model={self.model!r}, method={self.method!r}, unfitted)"
        return (
            f"IRTRouter({self.spec_.name}, {len(self.llms_)} LLMs, "
            f"{len(self.train_queries_)} training queries, {self.diagnostics_.method})"
        )


def _attach_observations(idata: az.InferenceData, design: IRTDesign) -> None:
    """Keep the training responses beside the posterior (for LOO and reports)."""
    obs = xr.Dataset({"y": ("obs", design.y)})
    const = {"query_idx": ("obs", design.query_idx), "llm_idx": ("obs", design.llm_idx)}
    if design.trials is not None:
        const["trials"] = ("obs", design.trials)
    if design.dataset_idx is not None:
        const["dataset_idx"] = ("query", design.dataset_idx)
    for grp in ("observed_data", "constant_data"):
        if grp in idata.groups():
            del idata[grp]
    idata.add_groups({"observed_data": obs, "constant_data": xr.Dataset(const)})
