"""The report's numbers: tables (pandas) and posterior draws (xarray) of a fitted router.

Each table has a figure in :mod:`irt_bayes.report.figures` that takes it (or the router).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy import sparse, stats

from irt_bayes.components import NUMPY
from irt_bayes.components.likelihood import response
from irt_bayes.predict import sample_index
from irt_bayes.report.posterior import (
    DataLike,
    _ability_grid,
    _as_router,
    _free_discrimination,
    _group_means,
    _items,
    _observations,
    _p_grid,
    _p_observed,
    _query_datasets,
    _query_ids,
    _quiet_arviz,
    _skills,
)
from irt_bayes.report.texts import _display_texts, _query_texts
from irt_bayes.stats import HDI_PROB, calibration_bins, expected_calibration_error, hdi

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter


# ---------------------------------------------------------------------------- abilities


def ability_table(router: IRTRouter, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Posterior abilities per LLM and skill with their HDI, best first.

    Parameters
    ----------
    router : IRTRouter
        A fitted router (or the path of a saved one).
    hdi_prob : float, default 0.94
        Probability mass of the highest density interval.

    Returns
    -------
    pandas.DataFrame
        ``llm, skill, mean, sd, hdi_low, hdi_high, price`` (mean USD per query in the
        training data, NaN without costs), sorted by skill then by mean, descending.

    See Also
    --------
    IRTRouter.abilities : the same numbers without prices, in posterior order.
    plot_abilities : the forest plot of these intervals.

    Examples
    --------
    >>> from irt_bayes.report import ability_table
    >>> ability_table(router).head(3)  # doctest: +SKIP
    """
    router = _as_router(router)
    with _quiet_arviz():
        df = router.abilities(hdi_prob=hdi_prob)
    df["price"] = router.prices_.reindex(df["llm"]).to_numpy(float)
    return df.sort_values(["skill", "mean"], ascending=[True, False]).reset_index(drop=True)


def dataset_ability_table(router: IRTRouter, hdi_prob: float = HDI_PROB) -> pd.DataFrame:
    """Each LLM's ability on each dataset, with its HDI.

    The ability of LLM j on dataset d is the logit it adds, on average over the
    dataset's training queries, before the difficulty is subtracted: every term of the
    linear predictor but the difficulty (``a_i . (theta_j + gamma_{d, j})``, plus the
    LLM slopes where the spec has them). Unlike ``theta`` alone it is pinned down by
    the data whether or not the model has LLM x dataset offsets, and it is what
    separates an LLM that is weak on one dataset but strong on another.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    hdi_prob : float, default 0.94
        Probability mass of the HDI.

    Returns
    -------
    pandas.DataFrame
        ``dataset, llm, mean, sd, hdi_low, hdi_high, offset`` (posterior mean of the
        logit ``gamma`` adds, 0 without offsets), datasets in posterior order.

    See Also
    --------
    plot_dataset_abilities, ability_table

    Examples
    --------
    >>> dataset_ability_table(router).query("dataset == 'mbpp'")  # doctest: +SKIP
    """
    router = _as_router(router)
    ds = _query_datasets(router)
    datasets = list(pd.unique(ds))
    w = _group_means(ds, datasets)
    idx = sample_index(router.idata_, None)
    parts = [
        (np.einsum("sql,qg->sgl", ab, w), np.einsum("sql,qg->sgl", off, w))
        for ab, off in _ability_grid(router, idx)
    ]
    ability = np.concatenate([a for a, _ in parts])
    offset = np.concatenate([o for _, o in parts])
    interval = hdi(ability, hdi_prob)
    D, L = ability.shape[1:]
    return pd.DataFrame(
        {
            "dataset": np.repeat(datasets, L),
            "llm": np.tile(router.llms_, D),
            "mean": ability.mean(axis=0).ravel(),
            "sd": ability.std(axis=0).ravel(),
            "hdi_low": interval[..., 0].ravel(),
            "hdi_high": interval[..., 1].ravel(),
            "offset": offset.mean(axis=0).ravel(),
        }
    )


# --------------------------------------------------------------------- who beats whom


def expected_accuracy(
    router: IRTRouter, *, by_dataset: bool = False, max_draws: int | None = None
) -> xr.DataArray:
    """Posterior draws of each LLM's expected accuracy on the training queries.

    For each posterior draw, the mean of P(correct) over every training query (also the
    ones an LLM did not answer): the accuracy the model expects on a new query drawn
    from the training distribution with the same difficulty.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    by_dataset : bool, default False
        Average within each dataset instead of over all queries.
    max_draws : int, optional
        Use this many evenly spaced draws (all by default).

    Returns
    -------
    xarray.DataArray
        Dims (``sample``, ``llm``), or (``sample``, ``dataset``, ``llm``).

    See Also
    --------
    beat_probability, accuracy_check

    Examples
    --------
    >>> expected_accuracy(router).mean("sample").to_series()  # doctest: +SKIP
    """
    router = _as_router(router)
    idx = sample_index(router.idata_, max_draws)
    ds = _query_datasets(router)
    groups = list(pd.unique(ds)) if by_dataset else ["all"]
    w = _group_means(ds, groups) if by_dataset else np.full((len(ds), 1), 1.0 / len(ds))
    parts = [np.einsum("sql,qg->sgl", p, w) for p in _p_grid(router, idx)]
    out = xr.DataArray(
        np.concatenate(parts, axis=0),
        dims=("sample", "dataset", "llm"),
        coords={"sample": idx, "dataset": groups, "llm": router.llms_},
        name="expected_accuracy",
    )
    return out if by_dataset else out.isel(dataset=0, drop=True)


def beat_probability(router: IRTRouter, *, max_draws: int | None = None) -> xr.DataArray:
    """Probability that each LLM beats each other LLM on the training query distribution.

    ``P[i, j]`` is the posterior probability that LLM i's expected accuracy on the
    training queries is higher than LLM j's (ties count half), so that
    ``P[i, j] + P[j, i] = 1``; the diagonal is NaN.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    max_draws : int, optional
        Use this many evenly spaced draws (all by default).

    Returns
    -------
    xarray.DataArray
        Dims (``llm``, ``opponent``), LLMs ordered from best to worst by posterior mean
        expected accuracy.

    See Also
    --------
    expected_accuracy, plot_beat_probability

    Examples
    --------
    >>> p = beat_probability(router)  # doctest: +SKIP
    >>> float(p.sel(llm="gpt-4-1106-preview", opponent="claude-v2"))  # doctest: +SKIP
    """
    router = _as_router(router)
    acc = expected_accuracy(router, max_draws=max_draws)
    order = acc.mean("sample").sortby(acc.mean("sample"), ascending=False)["llm"].to_numpy()
    x = acc.sel(llm=order).to_numpy()  # (S, L)
    gt = (x[:, :, None] > x[:, None, :]).sum(axis=0)
    eq = (x[:, :, None] == x[:, None, :]).sum(axis=0)
    p = (gt + 0.5 * eq) / x.shape[0]
    np.fill_diagonal(p, np.nan)
    return xr.DataArray(
        p,
        dims=("llm", "opponent"),
        coords={"llm": order, "opponent": order},
        name="p_beats",
        attrs={"n_draws": int(x.shape[0])},
    )


# ------------------------------------------------------------ posterior predictive check


def accuracy_check(
    router: IRTRouter,
    hdi_prob: float = HDI_PROB,
    *,
    max_draws: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Observed accuracy beside its posterior: a posterior predictive check.

    For each LLM, over all its training responses and within each dataset: the observed
    mean score, the posterior of the expected mean score on the same (query, LLM) pairs
    (``expected`` and its HDI) and the HDI of the mean score of replicated responses
    (``pred_low``, ``pred_high``), which adds sampling noise. An observed accuracy
    outside the predictive interval points at misfit.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    hdi_prob : float, default 0.94
        Probability mass of the intervals.
    max_draws : int, optional
        Use this many evenly spaced draws (all by default).
    seed : int, default 0
        Seed of the replicated responses.

    Returns
    -------
    pandas.DataFrame
        ``dataset, llm, n, observed, expected, hdi_low, hdi_high, pred_low, pred_high,
        inside``; ``dataset`` is ``"all"`` for the rows over every dataset (first).
        Replicates need a generative likelihood: with fractional scores the predictive
        interval is NaN.

    See Also
    --------
    plot_accuracy, calibration_table

    Examples
    --------
    >>> accuracy_check(router).query("dataset == 'all'")  # doctest: +SKIP
    """
    router = _as_router(router)
    o = _observations(router)
    ds_q = _query_datasets(router)
    ds_obs = ds_q[o["qi"]]
    datasets = list(pd.unique(ds_q))
    labels = [("all", m) for m in router.llms_]
    gi_all = o["li"]
    if len(datasets) > 1:
        labels += [(d, m) for d in datasets for m in router.llms_]
        gi_ds = len(router.llms_) * (1 + pd.Index(datasets).get_indexer(ds_obs)) + o["li"]
    n_obs, n_grp = len(o["y"]), len(labels)
    rows = np.arange(n_obs)
    mats = [sparse.csr_matrix((np.ones(n_obs), (rows, gi_all)), shape=(n_obs, n_grp))]
    if len(datasets) > 1:
        mats.append(sparse.csr_matrix((np.ones(n_obs), (rows, gi_ds)), shape=(n_obs, n_grp)))
    g = mats[0] + (mats[1] if len(mats) > 1 else 0)
    count = np.asarray(g.sum(axis=0)).ravel()
    keep = count > 0
    gm = g.multiply(1.0 / np.where(count > 0, count, 1.0)).tocsc()  # group means
    observed = o["score"] @ gm
    generative = router.likelihood_ in ("bernoulli", "binomial")
    rng = np.random.default_rng(seed)
    exp_parts, rep_parts = [], []
    idx = sample_index(router.idata_, max_draws)
    for p in _p_observed(router, idx):
        exp_parts.append(np.asarray((gm.T @ p.T).T))
        if generative:
            rep = rng.binomial(o["n"].astype(np.int64), p) / o["n"]
            rep_parts.append(np.asarray((gm.T @ rep.T).T))
    expected = np.concatenate(exp_parts)
    hdi_e = hdi(expected, hdi_prob)
    if generative:
        hdi_r = hdi(np.concatenate(rep_parts), hdi_prob)
    else:
        hdi_r = np.full((n_grp, 2), np.nan)
    out = pd.DataFrame(
        {
            "dataset": [d for d, _ in labels],
            "llm": [m for _, m in labels],
            "n": count.astype(int),
            "observed": observed,
            "expected": expected.mean(axis=0),
            "hdi_low": hdi_e[:, 0],
            "hdi_high": hdi_e[:, 1],
            "pred_low": hdi_r[:, 0],
            "pred_high": hdi_r[:, 1],
        }
    )
    out["inside"] = (out["observed"] >= out["pred_low"]) & (out["observed"] <= out["pred_high"])
    return out[keep].reset_index(drop=True)


def calibration_table(
    router: IRTRouter, n_bins: int = 10, *, max_draws: int | None = 500
) -> pd.DataFrame:
    """Reliability of P(correct) on the training responses.

    Each observed (query, LLM) pair gets its posterior mean P(correct); pairs are binned
    by it and each bin's mean prediction is set against its observed mean score, with a
    94% Jeffreys interval. In-sample, so somewhat optimistic. Bins and the calibration
    error are :func:`irt_bayes.stats.calibration_bins` and
    :func:`irt_bayes.stats.expected_calibration_error`, the ones ``irt-bayes evaluate``
    reports on held-out pairs: every pair counts once, a k-of-n response at its score
    k / n (its interval then counts it as one trial, which is conservative).

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    n_bins : int, default 10
        Equal-width bins on [0, 1].
    max_draws : int, optional, default 500
        Draws averaged into each pair's prediction.

    Returns
    -------
    pandas.DataFrame
        ``bin_low, bin_high, n, predicted, observed, ci_low, ci_high`` per non-empty
        bin; ``attrs["ece"]`` holds the expected calibration error (mean of
        ``|observed - predicted|`` weighted by ``n``, the pairs in each bin).

    See Also
    --------
    plot_calibration, accuracy_check

    Examples
    --------
    >>> calibration_table(router).attrs["ece"]  # doctest: +SKIP
    """
    router = _as_router(router)
    o = _observations(router)
    idx = sample_index(router.idata_, max_draws)
    p_sum = np.zeros(len(o["y"]))
    for p in _p_observed(router, idx):
        p_sum += p.sum(axis=0)
    p_mean = p_sum / len(idx)
    # One definition with the held-out evaluation: every pair counts once, at its score.
    out = calibration_bins(p_mean, o["score"], n_bins).drop(columns="bin")
    n = out["n"].to_numpy()
    k = out["observed"].to_numpy() * n  # the bin's summed scores
    tail = (1 - HDI_PROB) / 2
    # Jeffreys interval, closed at 0 / 1 when no / every response is correct
    out["ci_low"] = np.where(k <= 0, 0.0, stats.beta.ppf(tail, k + 0.5, n - k + 0.5))
    out["ci_high"] = np.where(k >= n, 1.0, stats.beta.ppf(1 - tail, k + 0.5, n - k + 0.5))
    out.attrs["ece"] = expected_calibration_error(p_mean, o["score"], n_bins)
    return out


# ------------------------------------------------------------------------------ queries


def query_table(
    router: IRTRouter, data: DataLike = None, hdi_prob: float = HDI_PROB
) -> pd.DataFrame:
    """Posterior difficulty and discrimination of every training query.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    data : ResponseData or path(s), optional
        The training responses, for the query texts of a loaded router (a saved router
        keeps ids, not texts). Without texts, ``text`` is empty.
    hdi_prob : float, default 0.94
        Probability mass of the difficulty HDI.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``query_id``: ``dataset``, ``n`` (responses), ``observed`` (mean
        score), ``difficulty`` (posterior mean), ``difficulty_sd``, ``difficulty_low``,
        ``difficulty_high``, ``p_average`` (posterior mean P(correct) of the average
        LLM, sigmoid(-b)), ``discrimination`` (posterior mean; the norm of the vector
        for K > 1, 1 for the Rasch model), ``discrimination_<skill>`` for K > 1, and
        ``text`` (the full text) and ``display`` (shortened for tables).

    See Also
    --------
    extreme_queries, plot_query_parameters, plot_icc

    Examples
    --------
    >>> query_table(router, data="train.csv").sort_values("difficulty").tail()  # doctest: +SKIP
    """
    router = _as_router(router)
    ids = _query_ids(router)
    ds = _query_datasets(router)
    o = _observations(router)
    items = _items(router)
    b = items["b"]
    interval = hdi(b, hdi_prob)
    n = np.bincount(o["qi"], minlength=len(ids))
    score_sum = np.bincount(o["qi"], weights=o["score"], minlength=len(ids))
    out = pd.DataFrame(
        {
            "dataset": ds,
            "n": n,
            "observed": score_sum / np.where(n > 0, n, 1),
            "difficulty": b.mean(axis=0),
            "difficulty_sd": b.std(axis=0),
            "difficulty_low": interval[:, 0],
            "difficulty_high": interval[:, 1],
            "p_average": response(-b, items.get("c"), NUMPY).mean(axis=0),
        },
        index=pd.Index(ids, name="query_id"),
    )
    if _free_discrimination(router):
        a = items["a"]
        skills = _skills(router)
        out["discrimination"] = np.linalg.norm(a, axis=2).mean(axis=0)
        if len(skills) > 1:
            for k, s in enumerate(skills):
                out[f"discrimination_{s}"] = a[:, :, k].mean(axis=0)
    else:
        out["discrimination"] = 1.0
    texts = _query_texts(router, data)
    if texts is None:
        out["text"] = ""
        out["display"] = ""
    else:
        out["text"] = texts.to_numpy()
        out["display"] = _display_texts(texts, ds).to_numpy()
    return out


def extreme_queries(
    source: IRTRouter | pd.DataFrame, n: int = 5, *, data: DataLike = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hardest and the easiest training queries by posterior mean difficulty.

    Parameters
    ----------
    source : IRTRouter or pandas.DataFrame
        A fitted router, or the table from :func:`query_table`.
    n : int, default 5
        Queries in each table.
    data : ResponseData or path(s), optional
        Training responses for the texts of a loaded router (see :func:`query_table`).

    Returns
    -------
    hardest, easiest : pandas.DataFrame
        Rows of :func:`query_table`, hardest first / easiest first.

    See Also
    --------
    query_table

    Examples
    --------
    >>> hardest, easiest = extreme_queries(router, 3)  # doctest: +SKIP
    """
    q = source if isinstance(source, pd.DataFrame) else query_table(source, data)
    q = q.sort_values("difficulty")
    return q.iloc[::-1].head(n), q.head(n)


# ------------------------------------------------------------------------------- skills


def skill_loadings(router: IRTRouter) -> pd.DataFrame:
    """Mean discrimination of each dataset's queries on each skill.

    Parameters
    ----------
    router : IRTRouter
        A fitted router with a discrimination (2PL or MIRT).

    Returns
    -------
    pandas.DataFrame
        Index ``dataset``, one column per skill: the average posterior mean loading
        ``a_ik`` of the dataset's queries; ``share_<skill>`` columns give each skill's
        share of the total loading. Empty for the Rasch model.

    See Also
    --------
    skill_top_queries, plot_skill_loadings

    Examples
    --------
    >>> skill_loadings(mirt_router)  # doctest: +SKIP
    """
    router = _as_router(router)
    if not _free_discrimination(router):
        return pd.DataFrame()
    skills = _skills(router)
    a = _items(router)["a"].mean(axis=0)  # (Q, K)
    df = pd.DataFrame(a, columns=skills)
    df["dataset"] = _query_datasets(router)
    out = df.groupby("dataset", sort=False)[skills].mean()
    shares = out.div(out.sum(axis=1), axis=0).add_prefix("share_")
    return pd.concat([out, shares], axis=1)


def skill_top_queries(router: IRTRouter, n: int = 5, *, data: DataLike = None) -> pd.DataFrame:
    """The queries that load most on each skill.

    Queries are ranked by their share of loading on the skill, ``a_ik / sum_k a_ik``
    (posterior means), which singles out what is specific to a skill rather than
    queries that discriminate strongly on all of them.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    n : int, default 5
        Queries per skill.
    data : ResponseData or path(s), optional
        Training responses for the texts of a loaded router.

    Returns
    -------
    pandas.DataFrame
        ``skill, query_id, dataset, loading, share, display``.

    See Also
    --------
    skill_loadings

    Examples
    --------
    >>> skill_top_queries(mirt_router, 3)  # doctest: +SKIP
    """
    router = _as_router(router)
    if not _free_discrimination(router):
        return pd.DataFrame(columns=["skill", "query_id", "dataset", "loading", "share", "display"])
    skills = _skills(router)
    a = _items(router)["a"].mean(axis=0)
    share = a / a.sum(axis=1, keepdims=True)
    ids = _query_ids(router)
    ds = _query_datasets(router)
    texts = _query_texts(router, data)
    disp = (
        pd.Series([""] * len(ids))
        if texts is None
        else _display_texts(texts, ds).reset_index(drop=True)
    )
    rows = []
    for k, s in enumerate(skills):
        for i in np.argsort(-share[:, k], kind="stable")[:n]:
            rows.append((s, ids[i], ds[i], a[i, k], share[i, k], disp.iloc[i]))
    return pd.DataFrame(
        rows, columns=["skill", "query_id", "dataset", "loading", "share", "display"]
    )


# -------------------------------------------------------------------------- convergence


def convergence_table(router: IRTRouter) -> pd.DataFrame:
    """Worst-case R-hat and ESS of every posterior variable.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.

    Returns
    -------
    pandas.DataFrame
        Indexed by variable: ``size`` (number of scalars), ``max_r_hat``,
        ``min_ess_bulk``, ``min_ess_tail``. R-hat is NaN for a single chain (ADVI).

    See Also
    --------
    convergence_verdict, plot_convergence, arviz.summary

    Examples
    --------
    >>> convergence_table(router)  # doctest: +SKIP
    """
    from irt_bayes.inference import diagnose

    router = _as_router(router)
    if not router.diagnostics_.variables.empty:
        return router.diagnostics_.variables  # NUTS: of every fitted draw, not the thinned
    with _quiet_arviz():  # single-chain R-hat and small-ESS notices
        return diagnose(router.idata_, method=router.diagnostics_.method).variables


def convergence_verdict(router: IRTRouter) -> str:
    """One line saying whether the posterior can be trusted.

    NUTS fits report R-hat, ESS and divergences of every fitted draw (recorded at fit
    time and saved with the router, so a compact router's thinned draws do not
    understate the ESS; re-diagnosed from the draws when a router lacks them); ADVI
    fits report the ELBO convergence recorded at fit time.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.

    Returns
    -------
    str

    See Also
    --------
    irt_bayes.inference.Diagnostics.verdict

    Examples
    --------
    >>> convergence_verdict(router)  # doctest: +SKIP
    'ADVI converged after 1249 iterations in 4.9 s (...)'
    """
    from irt_bayes.inference import diagnose

    router = _as_router(router)
    diag = router.diagnostics_
    if diag.method == "nuts" and diag.variables.empty:
        with _quiet_arviz():
            diag = diagnose(router.idata_, method="nuts", seconds=diag.seconds)
    return diag.verdict()
