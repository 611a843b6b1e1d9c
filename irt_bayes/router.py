"""``IRTRouter``: the estimator that ties data, encoder, model, inference and prediction.

It follows scikit-learn's conventions: ``fit`` returns ``self``, fitted attributes
end in ``_``, ``predict_proba`` gives probabilities (here as posterior draws with
named dims), and the object saves to / loads from a directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from irt_bayes.data import ResponseData
from irt_bayes.encoding import QueryEncoder, as_embeddings
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.features import EmbeddingFeatures
from irt_bayes.inference import fit_advi, sample_nuts, warn_if_needed
from irt_bayes.model import IRTDesign, build_model, make_design
from irt_bayes.predict import (
    PosteriorParams,
    knn,
    knn_residual_weights,
    observed_logit,
    predict_draws,
)
from irt_bayes.spec import ModelSpec, load_spec

__all__ = ["IRTRouter", "as_query_frame"]

Warmup = Literal["irt-router", "knn-residual"] | None
HDI_PROB = 0.94


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
        out = queries[cols].drop_duplicates("query_id").reset_index(drop=True)
        out["query_id"] = out["query_id"].astype(str)
        return out
    if isinstance(queries, str):
        queries = [queries]
    texts = list(queries)
    return pd.DataFrame({"query_id": [f"q{i}" for i in range(len(texts))], "query": texts})


class IRTRouter:
    """Hierarchical Bayesian IRT router over a pool of LLMs.

    Parameters
    ----------
    model : str, pathlib.Path or ModelSpec, default "2pl"
        A named spec (``rasch``, ``2pl``, ``mirt-2`` ...), a TOML path, or a spec.
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
    seed : int
        Makes fits and predictions reproducible.
    progress : bool
        Progress bars during encoding and fitting.
    cache_dir : path or False, optional
        Embedding cache location (``False`` disables it).

    Attributes
    ----------
    spec_ : ModelSpec
    llms_ : list of str
    prices_ : pandas.Series
        Mean cost per query of each LLM in the training data (NaN without costs).
    features_ : EmbeddingFeatures
    idata_ : arviz.InferenceData
    diagnostics_ : Diagnostics
    encoder_id_ : str

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
        model: str | os.PathLike | ModelSpec = "2pl",
        *,
        encoder: str | QueryEncoder = "default",
        method: str = "advi",
        draws: int = 500,
        tune: int = 500,
        chains: int = 4,
        max_iter: int = 8000,
        minibatch_size: int | None = None,
        seed: int = 0,
        progress: bool = True,
        cache_dir: str | os.PathLike | bool | None = None,
    ) -> None:
        if method not in ("advi", "nuts"):
            raise IrtBayesError(f"unknown method {method!r}; use 'advi' or 'nuts'")
        self.model = model
        self.encoder = encoder
        self.method = method
        self.draws, self.tune, self.chains, self.max_iter = draws, tune, chains, max_iter
        self.minibatch_size = minibatch_size
        self.seed = seed
        self.progress = progress
        self.cache_dir = cache_dir
        self._encoder: QueryEncoder | None = encoder if isinstance(encoder, QueryEncoder) else None
        self._params: PosteriorParams | None = None

    # ------------------------------------------------------------------------ encoding
    def _get_encoder(self) -> QueryEncoder:
        if self._encoder is None:
            self._encoder = QueryEncoder(
                self.encoder if isinstance(self.encoder, str) else "default",
                cache_dir=self.cache_dir,
                show_progress=None if self.progress else False,
            )
        return self._encoder

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
        """Fit the posterior to observed responses.

        Parameters
        ----------
        data : ResponseData or pandas.DataFrame
            Training responses (a frame is validated with :meth:`ResponseData.from_frame`).
        embeddings : numpy.ndarray, optional
            (n_queries, dim) precomputed embeddings in ``data.query_ids`` order;
            skips the encoder.
        llm_groups : mapping, optional
            LLM name to group (provider, family) for the ability hierarchy.

        Returns
        -------
        IRTRouter
            ``self``, fitted.
        """
        if isinstance(data, pd.DataFrame):
            data = ResponseData.from_frame(data)
        spec = load_spec(self.model)
        q = data.queries
        emb = self._embed(q["query"].tolist(), embeddings)
        feats = EmbeddingFeatures.fit(emb, spec.embedding_dims)
        design = make_design(
            spec, data, feats.transform(emb), dict(llm_groups) if llm_groups is not None else None
        )
        if self.method == "nuts":
            model = build_model(spec, design)
            idata, diag = sample_nuts(
                model,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=self.seed,
                progress=self.progress,
            )
        else:
            model = build_model(spec, design, minibatch_size=self.minibatch_size)
            idata, diag = fit_advi(
                model,
                max_iter=self.max_iter,
                draws=max(self.draws, 1000),
                seed=self.seed,
                progress=self.progress,
            )
        warn_if_needed(diag)
        _attach_observations(idata, design)

        self.spec_ = spec
        self.llms_ = list(design.llms)
        self.prices_ = data.prices().reindex(self.llms_)
        self.datasets_ = list(design.datasets) if design.datasets else []
        self.features_ = feats
        self.train_queries_ = q.reset_index(drop=True)
        self.train_embeddings_ = emb.astype(np.float32)
        self.train_dataset_idx_ = design.dataset_idx
        self.likelihood_ = design.likelihood
        self.idata_ = idata
        self.diagnostics_ = diag
        self.encoder_id_ = (
            self._get_encoder().encoder_id
            if embeddings is None
            else getattr(self._encoder, "encoder_id", "precomputed")
        )
        self.embedding_dim_ = int(emb.shape[1])
        self._params = None
        self._set_warmup_weights()
        return self

    def _set_warmup_weights(self, k: int = 5) -> None:
        params = self.params_
        self.warmup_weights_ = {"k": k}
        rb = params.resid_b.mean(axis=0)
        self.warmup_weights_["w_b"], self.warmup_weights_["f_b"] = knn_residual_weights(
            rb, self.train_embeddings_, k
        )
        if params.resid_a is not None:
            ra = params.resid_a.mean(axis=0).mean(axis=1)
            self.warmup_weights_["w_a"], _ = knn_residual_weights(ra, self.train_embeddings_, k)

    # ---------------------------------------------------------------------- prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "idata_"):
            raise IrtBayesError("this IRTRouter is not fitted yet: call fit() or IRTRouter.load()")

    @property
    def params_(self) -> PosteriorParams:
        """Posterior draws as flat arrays (cached), for vectorised prediction."""
        self._check_fitted()
        if self._params is None:
            scale = self.spec_.priors.dataset_scale
            self._params = PosteriorParams.from_idata(
                self.idata_,
                self.features_.transform(self.train_embeddings_),
                self.train_dataset_idx_,
                scale,
                max_draws=1000,
            )
        return self._params

    def _dataset_index(self, q: pd.DataFrame, emb: np.ndarray) -> np.ndarray | None:
        if not self.datasets_:
            return None
        S = self.params_.n_samples
        known = pd.Index(self.datasets_)
        if "dataset" in q.columns:
            labels = q["dataset"].fillna("").astype(str).to_numpy()
        else:
            labels = np.array([""] * len(q))
        idx = known.get_indexer(labels)  # -1: unseen label, a new dataset
        out = np.broadcast_to(idx, (S, len(q))).copy()
        unlabeled = np.flatnonzero(labels == "")
        if unlabeled.size:
            # no label: take a neighbour's dataset, one neighbour per posterior draw
            nb, _ = knn(emb[unlabeled], self.train_embeddings_, 10)
            nb_ds = self.train_dataset_idx_[nb]  # (u, 10)
            pick = np.random.default_rng(self.seed + 1).integers(
                0, nb.shape[1], (S, unlabeled.size)
            )
            out[:, unlabeled] = nb_ds[np.arange(unlabeled.size)[None, :], pick]
        return out

    def predict_proba(
        self,
        queries: pd.DataFrame | Sequence[str] | ResponseData,
        *,
        embeddings: np.ndarray | None = None,
        warmup: Warmup = None,
        k: int = 5,
        lam: float = 0.3,
    ) -> xr.DataArray:
        """Posterior draws of P(correct) for each (query, LLM).

        Parameters
        ----------
        queries : DataFrame, ResponseData or sequence of str
            New queries (``query_id``, ``query`` and optionally ``dataset``).
        embeddings : numpy.ndarray, optional
            Precomputed embeddings instead of encoding the texts.
        warmup : {None, "irt-router", "knn-residual"}
            How the k nearest training queries inform a new query; see
            :mod:`irt_bayes.predict`.
        k : int, default 5
            Neighbours used by the warm-up.
        lam : float, default 0.3
            Blend weight of the ``"irt-router"`` warm-up.

        Returns
        -------
        xarray.DataArray
            Dims (``draw``, ``query``, ``llm``), values in (0, 1).
        """
        self._check_fitted()
        if warmup not in (None, "irt-router", "knn-residual"):
            raise IrtBayesError(f"unknown warmup {warmup!r}; use 'irt-router' or 'knn-residual'")
        q = as_query_frame(queries)
        if len(q) == 0:
            raise DataError("no queries to predict")
        emb = self._embed(q["query"].tolist(), embeddings)
        if emb.shape[1] != self.embedding_dim_:
            raise DataError(
                f"embeddings have dimension {emb.shape[1]}, the router was fitted "
                f"with {self.embedding_dim_} ({self.encoder_id_})"
            )
        params = self.params_
        resid_prior = resid_a_mean = None
        if warmup == "irt-router":
            nb, _ = knn(emb, self.train_embeddings_, k)
            blend = (1 - lam) * emb + lam * self.train_embeddings_[nb].mean(axis=1)
            feats = self.features_.transform(blend)
        else:
            feats = self.features_.transform(emb)
        if warmup == "knn-residual":
            nb, _ = knn(emb, self.train_embeddings_, k)
            w, f = self.warmup_weights_["w_b"], self.warmup_weights_["f_b"]
            m = params.resid_b[:, nb].mean(axis=2)  # (S, n)
            resid_prior = (w * m, f * params.sigma_b[:, None] ** 2)
            if params.resid_a is not None:
                resid_a_mean = self.warmup_weights_.get("w_a", 0.0) * params.resid_a[:, nb].mean(
                    axis=2
                )
        p = predict_draws(
            params,
            feats,
            dataset_idx=self._dataset_index(q, emb),
            resid_prior=resid_prior,
            resid_a_mean=resid_a_mean,
            seed=self.seed,
        )
        return xr.DataArray(
            p,
            dims=("draw", "query", "llm"),
            coords={
                "draw": np.arange(p.shape[0]),
                "query": q["query_id"].to_numpy(),
                "llm": self.llms_,
            },
            name="p_correct",
        )

    def predict(
        self,
        queries: pd.DataFrame | Sequence[str] | ResponseData,
        *,
        hdi_prob: float = HDI_PROB,
        **kwargs: Any,
    ) -> pd.DataFrame:
        """Posterior summary of P(correct): one row per (query, LLM).

        Returns
        -------
        pandas.DataFrame
            ``query_id, llm, p_mean, p_sd, p_low, p_high`` (equal-tailed ``hdi_prob``
            interval).
        """
        p = self.predict_proba(queries, **kwargs)
        lo, hi = (1 - hdi_prob) / 2, 1 - (1 - hdi_prob) / 2
        q = p.quantile([lo, hi], dim="draw")
        out = pd.DataFrame(
            {
                "query_id": np.repeat(p["query"].to_numpy(), p.sizes["llm"]),
                "llm": np.tile(p["llm"].to_numpy(), p.sizes["query"]),
                "p_mean": p.mean("draw").to_numpy().ravel(),
                "p_sd": p.std("draw").to_numpy().ravel(),
                "p_low": q.isel(quantile=0).to_numpy().ravel(),
                "p_high": q.isel(quantile=1).to_numpy().ravel(),
            }
        )
        return out

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

    def _train_dataset_positions(self) -> np.ndarray | None:
        """Dataset position of each training query (None without a dataset level)."""
        const = self.idata_.constant_data
        if "dataset_idx" in const:
            return const["dataset_idx"].to_numpy().astype(np.int64)
        return self.train_dataset_idx_

    def _slope_features(self) -> np.ndarray | None:
        """Training features for a model with LLM-specific slopes, else None."""
        if "llm_slopes" not in self.idata_.posterior:
            return None
        return self.features_.transform(self.train_embeddings_)

    def _observed_logit(self, sample_idx: np.ndarray) -> np.ndarray:
        """Logit of every training response under draws ``sample_idx``, (S, n_obs)."""
        return observed_logit(
            self.idata_, sample_idx, self._train_dataset_positions(), self._slope_features()
        )

    def log_likelihood(self) -> xr.DataArray:
        """Pointwise log-likelihood (chain, draw, obs) of the training responses."""
        self._check_fitted()
        post, const = self.idata_.posterior, self.idata_.constant_data
        y = self.idata_.observed_data["y"].to_numpy()
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        eta = self._observed_logit(np.arange(n_chain * n_draw)).reshape(n_chain, n_draw, -1)
        if "trials" in const:
            from irt_bayes.model import log_choose

            n = const["trials"].to_numpy()
            ll = y * eta - n * np.logaddexp(0.0, eta) + log_choose(n, y)
        else:
            ll = y * eta - np.logaddexp(0.0, eta)
        return xr.DataArray(ll, dims=("chain", "draw", "obs"), name="y")

    def loo(self) -> az.ELPDData:
        """PSIS-LOO of the training responses (see :func:`arviz.loo`)."""
        self._check_fitted()
        idata = az.InferenceData(
            posterior=self.idata_.posterior, log_likelihood=xr.Dataset({"y": self.log_likelihood()})
        )
        return az.loo(idata)

    # ---------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save to a directory; see :func:`irt_bayes.persistence.save_router`."""
        from irt_bayes.persistence import save_router

        return save_router(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> IRTRouter:
        """Load a saved router; see :func:`irt_bayes.persistence.load_router`."""
        from irt_bayes.persistence import load_router

        return load_router(path, **kwargs)

    def __repr__(self) -> str:
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
