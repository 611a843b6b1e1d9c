"""The hierarchical Bayesian IRT model, assembled in PyMC from a spec's components.

For LLM j and query i, with K skills::

    eta_ij = a_i . (theta_j + gamma_{d(i), j}) + x_i . w_j - b_i    (logit of P(correct))
    theta_j = sigma_theta * (sqrt(rho) g_group(j) + sqrt(1 - rho) z_j), centred over LLMs
    b_i = mu_b + dataset_effect_{d(i)} + x_i . beta_b + delta_b_i
    a_ik = softplus(c + x_i . beta_a[:, k] + delta_a_ik),  softplus(c) = 1
    gamma ~ ZeroSumNormal(tau_gamma) over datasets and LLMs  (LLM x dataset offsets)
    P_ij = c_{d(i)} + (1 - c_{d(i)}) sigmoid(eta_ij)        (3PL; c = 0 otherwise)

Each line is one component of :mod:`irt_bayes.components`, which builds its own
variables and its part of the linear predictor; this module turns data into arrays
(:func:`make_design`) and puts the components into one ``pm.Model``
(:func:`build_model`). ``x_i`` are standardised principal components of the query
embedding (:class:`~irt_bayes.features.EmbeddingFeatures`); ``d(i)`` is the query's
dataset: its label, or its latent cluster when the training data has no labels
(:mod:`irt_bayes.domains`). Every residual is non-centred (``noncentered = false`` in
the spec switches to the centred form).

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

A new query's predictive
------------------------
A new query has no responses, so its own latent values -- the difficulty residual
``delta_b`` and the discrimination residuals ``delta_a``, and its dataset when it has
no label -- are unknown. :mod:`irt_bayes.predict` integrates over them *jointly* with
the empirical posterior of the training queries' values: in posterior draw ``s`` the
new query takes the ``(delta_b, delta_a)`` of a training query ``m`` drawn with
weights ``P(d | x) * k_tau(x, x_m)`` (a calibrated classifier of its dataset times a
similarity kernel within that dataset, ``tau`` chosen by leave-one-out on the
training queries; ``tau = inf`` is the dataset's plain empirical distribution).

Why not independent normals (the previous design): the residuals of real items are
neither normal nor independent. On a two-option task where LLMs lean towards one
answer position, a query's difficulty and discrimination are both set by where its
answer sits, so the residuals are bimodal and correlated; integrating over
independent normals put one LLM's mean P(correct) 0.25 above what it scored. The
empirical distribution reproduces whatever shape the training items have, so each
LLM's mean prediction over in-distribution queries matches its training accuracy to
the degree the model fits its training data (tested on simulations with response
styles in ``tests/test_predictive.py``). The similarity kernel lets close
neighbours inform a query's residuals where they do (a sharper ``tau`` wins the
leave-one-out comparison) and falls back to the whole dataset where they do not.

Likelihoods
-----------
See :mod:`irt_bayes.components.likelihood`: Bernoulli (0/1), binomial (``trials``) and
the fractional-logit quasi-likelihood for scores in [0, 1], all with ``log1pexp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from irt_bayes.components import (
    PYTENSOR,
    BuildContext,
    Grid,
    Inputs,
    Pairs,
    Structure,
    components_for,
    item_quantities,
    linear_predictor,
    log_likelihood,
)
from irt_bayes.components.likelihood import log_choose
from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError
from irt_bayes.spec import ModelSpec

__all__ = [
    "IRTDesign",
    "build_model",
    "llm_groups",
    "log_choose",
    "make_design",
    "resolve_likelihood",
    "uses_datasets",
]

# Share of observed (query, LLM) pairs above which the likelihood is built on the dense grid.
DENSE_MIN_DENSITY = 0.5


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

    @property
    def structure(self) -> Structure:
        """What the components may build from this data (saved with the router)."""
        return Structure(
            llms=list(self.llms),
            skills=list(self.skills),
            n_features=int(self.features.shape[1]),
            likelihood=self.likelihood,
            datasets=None if self.datasets is None else list(self.datasets),
            groups=None if self.groups is None else list(self.groups),
            group_idx=None if self.group_idx is None else [int(g) for g in self.group_idx],
        )

    def dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(query, llm) grids of y, the observed mask and trials (1 where missing)."""
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


def uses_datasets(spec: ModelSpec) -> bool:
    """Whether any component of the spec is indexed by the query's dataset."""
    return spec.dataset_level or spec.dataset_abilities or spec.guessing == "learned"


def make_design(
    spec: ModelSpec,
    data: ResponseData,
    features: np.ndarray,
    groups: dict[str, str] | None = None,
    datasets: np.ndarray | None = None,
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
    datasets : numpy.ndarray, optional
        (n_queries,) domain of each query (labels or latent clusters, see
        :mod:`irt_bayes.domains`); by default the data's ``dataset`` column.

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

    dataset_idx = names = None
    if datasets is None and data.has_dataset:
        datasets = data.queries.set_index("query_id").loc[queries, "dataset"].to_numpy(str)
    if uses_datasets(spec) and datasets is not None:
        datasets = np.asarray(datasets, dtype=str)
        names = list(pd.unique(datasets))
        if len(names) >= 2:
            dataset_idx = pd.Index(names).get_indexer(datasets)
        else:
            names = None

    group_idx = group_names = None
    if spec.llm_groups or groups is not None:
        mapping = groups if groups is not None else llm_groups(llms)
        missing = [m for m in llms if m not in mapping]
        if missing:
            raise DataError(f"no group given for LLM {missing[0]!r}")
        labels = [str(mapping[m]) for m in llms]
        gnames = list(pd.unique(pd.Series(labels)))
        sizes = pd.Series(labels).value_counts()
        # Groups only help when some provider has several LLMs to pool.
        if 2 <= len(gnames) < len(llms) and sizes.max() >= 2:
            group_names = gnames
            group_idx = pd.Index(gnames).get_indexer(labels)

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
        datasets=names,
        group_idx=group_idx,
        groups=group_names,
    )


def build_model(
    spec: ModelSpec, design: IRTDesign, *, minibatch_size: int | None = None
) -> pm.Model:
    """Assemble the PyMC model from the spec's components.

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
        With the components' variables (``theta``, ``delta_b``, ...), deterministics
        ``difficulty`` (query) and ``discrimination`` (query, skill), and the observed
        variable ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from irt_bayes import simulate_pool
    >>> from irt_bayes.data import ResponseData
    >>> from irt_bayes.spec import load_spec
    >>> data = ResponseData.from_frame(simulate_pool(n_queries=30, n_llms=3).responses)
    >>> spec = load_spec("2pl")
    >>> design = make_design(spec, data, np.zeros((30, 0)))
    >>> model = build_model(spec, design)
    >>> sorted(model.named_vars)[:3]
    ['dataset_effect', 'dataset_z', 'delta_b']
    """
    components = components_for(spec, design.structure)
    with pm.Model(coords=design.coords) as model:
        x = pt.as_tensor(design.features)
        ctx = BuildContext(spec, design.structure, x, design.dataset_idx)
        values = {}
        for comp in components:
            values.update(comp.build(ctx))
        inp = Inputs(x, design.dataset_idx)
        items = item_quantities(components, values, inp, PYTENSOR)
        pm.Deterministic("difficulty", items["b"], dims="query")
        pm.Deterministic("discrimination", items["a"], dims=("query", "skill"))
        _observe(components, values, inp, items, design, minibatch_size)
    return model


def _observe(components, values, inp, items, design, minibatch_size) -> None:
    """Add the likelihood of the training responses, as ``y``."""
    c = items.get("c")
    qi, li, y, n = design.query_idx, design.llm_idx, design.y, design.trials
    total = mask = None
    if minibatch_size is None and design.density >= DENSE_MIN_DENSITY:
        # Nearly every (query, LLM) pair observed: a dense grid with a mask avoids the
        # scatter-adds of indexed gathers, which took ~60% of each gradient.
        layout = Grid()
        y, mask, n = design.dense()
    else:
        if minibatch_size is not None and minibatch_size < design.n_obs:
            if n is None:
                y, qi, li = pm.Minibatch(y, qi, li, batch_size=minibatch_size)
            else:
                y, qi, li, n = pm.Minibatch(y, qi, li, n, batch_size=minibatch_size)
            total = design.n_obs
        layout = Pairs(qi, li)
    eta, _ = linear_predictor(components, values, inp, layout, PYTENSOR, items)
    # Everything the logp reads is passed as a parameter of the distribution: a free
    # variable captured from outside would stay a random node in the logp graph.
    params = {"eta": eta}
    if c is not None:
        params["c"] = layout.query(c)
    if n is not None:
        params["n"] = pt.as_tensor(n)
    if mask is not None:
        params["mask"] = pt.as_tensor(mask)
    names = list(params)

    def logp(value, *args):
        p = dict(zip(names, args, strict=True))
        ll = log_likelihood(value, p["eta"], p.get("c"), p.get("n"), PYTENSOR)
        return ll if "mask" not in p else p["mask"] * ll

    pm.CustomDist("y", *params.values(), logp=logp, observed=y, total_size=total)
