"""The hierarchical Bayesian IRT model, assembled in PyMC from a :class:`ModelSpec`.

For LLM j and query i, with K skills::

    eta_ij = a_i . (theta_j + gamma_{d(i), j}) - b_i    (logit of P(correct))
    theta_j = sigma_theta * (sqrt(rho) g_group(j) + sqrt(1 - rho) z_j), centred over LLMs
    b_i = mu_b + mu_dataset(i) + x_i . beta_b + sigma_b delta_i
    a_ik = softplus(c + x_i . beta_a[:, k] + sigma_a epsilon_ik),  softplus(c) = 1
    gamma ~ ZeroSumNormal(tau_gamma) over datasets and LLMs  (LLM x dataset offsets)

``x_i`` are standardised principal components of the query embedding
(:class:`~irt_bayes.features.EmbeddingFeatures`). Every residual is non-centred
(``noncentered = false`` in the spec switches to the centred form).

Identifiability
---------------
* Location: abilities sum to zero over LLMs in every skill (``ZeroSumNormal``), so
  an ability is relative to the average LLM of the pool and ``mu_b`` carries the
  overall difficulty.
* Scale: the discrimination intercept is fixed so that a query with average
  embedding has a = 1; the population spread ``sigma_theta`` is then learned, in
  logits for a typical query.
* Sign: a >= 0 (softplus), so a skill cannot flip.
* Rotation / relabelling for K > 1: positivity leaves only permutations of skills;
  chains are aligned after sampling by :func:`irt_bayes.inference.align_skills`.

Likelihoods
-----------
All are written on the logit scale with ``log1pexp`` so that large |eta| gives
finite values and gradients (``pm.Bernoulli(logit_p=...)`` produced NaN gradients in
ADVI on RouterBench):

* ``bernoulli`` (0/1 scores): ``y eta - log1pexp(eta)``;
* ``binomial`` (k of n, with ``trials``): ``k eta - n log1pexp(eta) + log C(n, k)``;
* ``fractional`` (scores in [0, 1] without trials): the same expression as Bernoulli
  with fractional y, the quasi-likelihood of the fractional logit model (Papke and
  Wooldridge, 1996). Its maximiser is consistent for E[score] = sigmoid(eta) without
  assuming a distribution for the score; as a quasi-likelihood its LOO values compare
  models fitted to the same scores, not to other likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError
from irt_bayes.spec import ModelSpec

__all__ = ["IRTDesign", "make_design", "build_model", "resolve_likelihood", "llm_groups"]

# Share of observed (query, LLM) pairs above which the likelihood is built on the dense grid.
DENSE_MIN_DENSITY = 0.5
# softplus(C_DISCRIMINATION) == 1: pins the scale of abilities (see module docstring).
C_DISCRIMINATION = float(np.log(np.expm1(1.0)))


@dataclass(frozen=True)
class IRTDesign:
    """Arrays the model is built from: observations flattened to index form.

    Attributes
    ----------
    y : numpy.ndarray
        (n_obs,) score, or success count k for the binomial likelihood.
    trials : numpy.ndarray or None
        (n_obs,) n of k-of-n scores.
    query_idx, llm_idx : numpy.ndarray
        (n_obs,) integer positions into ``queries`` / ``llms``.
    features : numpy.ndarray
        (n_queries, n_features) standardised embedding components.
    dataset_idx : numpy.ndarray or None
        (n_queries,) position into ``datasets``.
    group_idx : numpy.ndarray or None
        (n_llms,) position into ``groups``.
    """

    y: np.ndarray
    trials: np.ndarray | None
    query_idx: np.ndarray
    llm_idx: np.ndarray
    features: np.ndarray
    llms: list[str]
    queries: list[str]
    skills: list[str]
    likelihood: str
    dataset_idx: np.ndarray | None = None
    datasets: list[str] | None = None
    group_idx: np.ndarray | None = None
    groups: list[str] | None = None

    @property
    def n_obs(self) -> int:
        """Number of observed responses."""
        return int(self.y.shape[0])

    @property
    def density(self) -> float:
        """Share of the (query, LLM) grid that is observed."""
        return self.n_obs / (len(self.queries) * len(self.llms))

    def dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(query, llm) grids of y, the observed mask and trials (0 where missing)."""
        shape = (len(self.queries), len(self.llms))
        y, mask = np.zeros(shape), np.zeros(shape)
        y[self.query_idx, self.llm_idx] = self.y
        mask[self.query_idx, self.llm_idx] = 1.0
        n = None
        if self.trials is not None:
            n = np.ones(shape)
            n[self.query_idx, self.llm_idx] = self.trials
        return y, mask, n

    @property
    def coords(self) -> dict[str, list[str]]:
        """Named dims for PyMC and ArviZ."""
        coords = {
            "llm": self.llms,
            "query": self.queries,
            "skill": self.skills,
            "feature": [f"pc{i}" for i in range(self.features.shape[1])],
        }
        if self.datasets is not None:
            coords["dataset"] = self.datasets
        if self.groups is not None:
            coords["group"] = self.groups
        return coords


def resolve_likelihood(spec: ModelSpec, data: ResponseData) -> str:
    """Pick the likelihood for ``spec.likelihood == "auto"`` and check explicit choices."""
    kind = data.score_kind
    auto = {"binary": "bernoulli", "binomial": "binomial", "fraction": "fractional"}[kind]
    if spec.likelihood == "auto":
        return auto
    if spec.likelihood == "binomial" and not data.has_trials:
        raise DataError("the binomial likelihood needs a 'trials' column", source=data.source)
    if spec.likelihood == "bernoulli" and kind != "binary":
        raise DataError(
            "the bernoulli likelihood needs 0/1 scores; use 'fractional'", source=data.source
        )
    return spec.likelihood


def llm_groups(llms: list[str]) -> dict[str, str]:
    """Provider group of each LLM from an ``org/model`` prefix (own name when none)."""
    return {m: m.split("/", 1)[0] if "/" in m else m for m in llms}


def make_design(
    spec: ModelSpec, data: ResponseData, features: np.ndarray, groups: dict[str, str] | None = None
) -> IRTDesign:
    """Turn validated data and query features into the model's arrays.

    Parameters
    ----------
    spec : ModelSpec
    data : ResponseData
    features : numpy.ndarray
        (n_queries, n_features), rows in the order of ``data.query_ids``.
    groups : dict, optional
        LLM name to group label; defaults to the ``org/`` prefix when
        ``spec.llm_groups``. Ignored unless it yields 2 or more groups with at least
        one group of 2+ LLMs.

    Returns
    -------
    IRTDesign
    """
    r = data.responses
    llms, queries = data.llms, data.query_ids
    if features.shape[0] != len(queries):
        raise DataError(
            f"got features for {features.shape[0]} queries, the data has {len(queries)}",
            source=data.source,
        )
    likelihood = resolve_likelihood(spec, data)
    qi = pd.Index(queries).get_indexer(r["query_id"])
    li = pd.Index(llms).get_indexer(r["llm"])
    y = r["score"].to_numpy(float)
    trials = None
    if likelihood == "binomial":
        trials = r["trials"].to_numpy(np.int64)
        y = np.round(y * trials)

    dataset_idx = datasets = None
    if spec.dataset_level and data.has_dataset:
        ds = data.queries.set_index("query_id").loc[queries, "dataset"].to_numpy(str)
        datasets = list(pd.unique(ds))
        if len(datasets) >= 2:
            dataset_idx = pd.Index(datasets).get_indexer(ds)
        else:
            datasets = None

    group_idx = group_names = None
    if spec.llm_groups or groups is not None:
        mapping = groups if groups is not None else llm_groups(llms)
        missing = [m for m in llms if m not in mapping]
        if missing:
            raise DataError(f"no group given for LLM {missing[0]!r}")
        labels = [str(mapping[m]) for m in llms]
        names = list(pd.unique(pd.Series(labels)))
        sizes = pd.Series(labels).value_counts()
        # Groups only help when some provider has several LLMs to pool.
        if 2 <= len(names) < len(llms) and sizes.max() >= 2:
            group_names = names
            group_idx = pd.Index(names).get_indexer(labels)

    return IRTDesign(
        y=y,
        trials=trials,
        query_idx=qi.astype(np.int64),
        llm_idx=li.astype(np.int64),
        features=np.asarray(features, float),
        llms=llms,
        queries=queries,
        skills=[f"s{k}" for k in range(spec.skills)],
        likelihood=likelihood,
        dataset_idx=dataset_idx,
        datasets=datasets,
        group_idx=group_idx,
        groups=group_names,
    )


def _bernoulli_logp(value: pt.TensorVariable, eta: pt.TensorVariable) -> pt.TensorVariable:
    return value * eta - pt.log1pexp(eta)


def _binomial_logp(
    value: pt.TensorVariable, eta: pt.TensorVariable, n: pt.TensorVariable
) -> pt.TensorVariable:
    log_choose = pt.gammaln(n + 1) - pt.gammaln(value + 1) - pt.gammaln(n - value + 1)
    return value * eta - n * pt.log1pexp(eta) + log_choose


def _bernoulli_logp_masked(
    value: pt.TensorVariable, eta: pt.TensorVariable, mask: pt.TensorVariable
) -> pt.TensorVariable:
    return mask * _bernoulli_logp(value, eta)


def _binomial_logp_masked(
    value: pt.TensorVariable, eta: pt.TensorVariable, n: pt.TensorVariable, mask: pt.TensorVariable
) -> pt.TensorVariable:
    return mask * _binomial_logp(value, eta, n)


def _scaled_normal(
    name: str, scale: pt.TensorVariable, dims: tuple[str, ...], noncentered: bool
) -> pt.TensorVariable:
    """A zero-mean normal with learned scale, non-centred or centred."""
    if noncentered:
        return scale * pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
    return pm.Normal(f"{name}_c", 0.0, scale, dims=dims)


def build_model(
    spec: ModelSpec, design: IRTDesign, *, minibatch_size: int | None = None
) -> pm.Model:
    """Assemble the PyMC model.

    Parameters
    ----------
    spec : ModelSpec
        What to build (skills, discrimination, levels, priors).
    design : IRTDesign
        Observations and features, from :func:`make_design`.
    minibatch_size : int, optional
        Build the likelihood on random minibatches of this many responses (for
        minibatch ADVI); the full data otherwise.

    Returns
    -------
    pymc.Model
        With deterministics ``theta`` (llm, skill), ``difficulty`` (query),
        ``discrimination`` (query, skill), ``beta_b`` (feature), ``beta_a``
        (feature, skill) and, with datasets, ``mu_dataset`` (dataset). The
        observed variable is ``y``.

    Examples
    --------
    >>> from irt_bayes.simulate import simulate_pool  # doctest: +SKIP
    """
    p = spec.priors
    nc = spec.noncentered
    K = spec.skills
    X = design.features
    n_feat = X.shape[1]
    with pm.Model(coords=design.coords) as model:
        # --- abilities: zero-sum over LLMs, learned population scale per skill
        sigma_theta = pm.HalfNormal("sigma_theta", p.ability_scale, dims="skill")
        z = pm.ZeroSumNormal("theta_z", sigma=1.0, dims=("skill", "llm"))
        if design.group_idx is not None:
            rho = pm.Beta("rho_group", 2.0, 2.0)
            g = pm.ZeroSumNormal("group_z", sigma=1.0, dims=("skill", "group"))
            raw = pt.sqrt(rho) * g[:, design.group_idx] + pt.sqrt(1.0 - rho) * z
            raw = raw - raw.mean(axis=1, keepdims=True)
        else:
            raw = z
        theta = pm.Deterministic("theta", (sigma_theta[:, None] * raw).T, dims=("llm", "skill"))

        # --- difficulty: intercept + dataset level + embedding slopes + residual
        mu_b = pm.Normal("mu_b", 0.0, p.difficulty_intercept)
        fixed_b = mu_b + pt.zeros(len(design.queries))
        if design.dataset_idx is not None:
            # Zero-sum offsets: mu_b is the average dataset, so it cannot drift against them.
            # With two datasets a spread cannot be learned: fix it at its prior scale then.
            if len(design.datasets) >= 3:
                sigma_d = pm.HalfNormal("sigma_dataset", p.dataset_scale)
            else:
                sigma_d = p.dataset_scale
            off = pm.ZeroSumNormal("dataset_z", sigma=1.0, dims="dataset")
            mu_d = pm.Deterministic("mu_dataset", mu_b + sigma_d * off, dims="dataset")
            fixed_b = mu_d[design.dataset_idx]
        if n_feat:
            tau_b = pm.HalfNormal("tau_b", p.slope_scale)
            beta_b = pm.Deterministic(
                "beta_b", _scaled_normal("beta_b", tau_b, ("feature",), nc), dims="feature"
            )
            fixed_b = fixed_b + pt.dot(X, beta_b)
        sigma_b = pm.HalfNormal("sigma_b", p.difficulty_residual)
        b = pm.Deterministic(
            "difficulty", fixed_b + _scaled_normal("delta_b", sigma_b, ("query",), nc), dims="query"
        )

        # --- discrimination: softplus of a linear map of the embedding, per skill
        if spec.discrimination == "free":
            lin_a = C_DISCRIMINATION + pt.zeros((len(design.queries), K))
            if n_feat:
                tau_a = pm.HalfNormal("tau_a", p.slope_scale)
                beta_a = pm.Deterministic(
                    "beta_a",
                    _scaled_normal("beta_a", tau_a, ("feature", "skill"), nc),
                    dims=("feature", "skill"),
                )
                lin_a = lin_a + pt.dot(X, beta_a)
            sigma_a = pm.HalfNormal("sigma_a", p.discrimination_residual)
            lin_a = lin_a + _scaled_normal("delta_a", sigma_a, ("query", "skill"), nc)
            a = pm.Deterministic("discrimination", pt.softplus(lin_a), dims=("query", "skill"))
        else:
            a = None

        # --- LLM x dataset ability offsets, shrunk towards 0 by a learned scale. They are
        # abilities, so the query's discrimination scales them: within a dataset a 2PL then
        # ranks LLMs the same on every query (added outside a, the ranking flipped with a_i
        # and RouterDC routing lost 0.3 points to the per-dataset prior).
        gamma = None
        if spec.dataset_abilities and design.dataset_idx is not None:
            tau_g = pm.HalfNormal("tau_gamma", p.dataset_ability_scale)
            # zero-sum over LLMs *and* datasets: an LLM's average offset would otherwise
            # duplicate its ability (NUTS R-hat 1.05; ADVI moved the abilities into gamma)
            g_z = pm.ZeroSumNormal("gamma_z", sigma=1.0, dims=("dataset", "llm"), n_zerosum_axes=2)
            gamma = pm.Deterministic("gamma", tau_g * g_z, dims=("dataset", "llm"))

        # --- LLM-specific embedding slopes: the full-rank version of the MIRT term
        # x_i W_a theta_j, zero-sum over LLMs so they cannot move the difficulty slopes.
        slopes = None
        if spec.llm_slopes and n_feat:
            tau_w = pm.HalfNormal("tau_w", p.slope_scale)
            w_z = pm.ZeroSumNormal("w_z", sigma=1.0, dims=("feature", "llm"))
            slopes = pm.Deterministic("llm_slopes", tau_w * w_z, dims=("feature", "llm"))

        # --- likelihood
        qi, li, y, n = design.query_idx, design.llm_idx, design.y, design.trials
        if minibatch_size is None and design.density >= DENSE_MIN_DENSITY:
            # Nearly every (query, LLM) pair observed: a dense grid with a mask avoids the
            # scatter-adds of indexed gathers, which took ~60% of each gradient.
            y, mask, n = design.dense()
            if a is None:
                eta = theta[:, 0][None, :] - b[:, None]
            else:
                eta = pt.dot(a, theta.T) - b[:, None]
            if gamma is not None:
                off = gamma[design.dataset_idx]
                eta = eta + (off if a is None else a.sum(axis=1)[:, None] * off)
            if slopes is not None:
                eta = eta + pt.dot(X, slopes)
            if design.likelihood == "binomial":
                pm.CustomDist("y", eta, n, mask, logp=_binomial_logp_masked, observed=y)
            else:
                pm.CustomDist("y", eta, mask, logp=_bernoulli_logp_masked, observed=y)
            return model
        total = None
        if minibatch_size is not None and minibatch_size < design.n_obs:
            if n is None:
                y, qi, li = pm.Minibatch(y, qi, li, batch_size=minibatch_size)
            else:
                y, qi, li, n = pm.Minibatch(y, qi, li, n, batch_size=minibatch_size)
            total = design.n_obs
        if a is None:
            eta = theta[li, 0] - b[qi]
        else:
            eta = (a[qi] * theta[li]).sum(axis=-1) - b[qi]
        if gamma is not None:
            off = gamma[pt.as_tensor(design.dataset_idx)[qi], li]
            eta = eta + (off if a is None else a[qi].sum(axis=-1) * off)
        if slopes is not None:
            eta = eta + (pt.as_tensor(X)[qi] * slopes.T[li]).sum(axis=-1)
        if design.likelihood == "binomial":
            pm.CustomDist("y", eta, n, logp=_binomial_logp, observed=y, total_size=total)
        else:
            pm.CustomDist("y", eta, logp=_bernoulli_logp, observed=y, total_size=total)
    return model


def log_choose(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Log C(n, k) elementwise; the constant of the binomial log-likelihood."""
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
