"""Posterior reports of a fitted router: tables, figures, an HTML/Markdown report, LOO.

Every piece of ``irt-bayes report`` is a function here, returning a pandas or xarray
object (numbers) or a :class:`matplotlib.figure.Figure` (pictures), so that a notebook
can show any of them on its own:

==============================  ===========================================================
numbers                         figure
==============================  ===========================================================
:func:`ability_table`           :func:`plot_abilities` (ArviZ forest plot, 94% HDI)
:func:`dataset_ability_table`   :func:`plot_dataset_abilities` (heat map)
:func:`beat_probability`        :func:`plot_beat_probability` (heat map)
:func:`accuracy_check`          :func:`plot_accuracy` (posterior predictive check)
:func:`calibration_table`       :func:`plot_calibration`
:func:`query_table`,            :func:`plot_query_parameters`, :func:`plot_icc`
:func:`extreme_queries`
:func:`skill_loadings`,         :func:`plot_skill_loadings` (K > 1)
:func:`skill_top_queries`
:func:`convergence_table`,      :func:`plot_convergence`
:func:`convergence_verdict`
:func:`compare_routers`         (returns its figure too)
==============================  ===========================================================

:func:`build_report` writes them all to a directory: ``report.html`` (no external
resources; the PNG figures sit beside it and are referenced by relative path, so the
folder can be zipped, moved or served as it is), ``report.md`` and one CSV per table.

Figures are built with matplotlib's object-oriented API on the Agg canvas: nothing here
touches pyplot's global state or needs a display, and a notebook still shows a returned
figure inline.

Quantities
----------
* Abilities are relative to the pool's average LLM (zero-sum), in logits for a query of
  typical discrimination. The ability *on a dataset* adds the LLM x dataset offset (when
  the spec has them) and scales by the dataset's mean discrimination.
* P(correct) of a training (query, LLM) pair is ``sigmoid(a . (theta + gamma) - b)``
  for each posterior draw, the same expression as the model's likelihood.
* *Expected accuracy on the training distribution* of an LLM, for one posterior draw,
  is its mean P(correct) over every training query (answered by it or not). The
  probability that LLM i *beats* LLM j is the share of draws in which i's expected
  accuracy is higher (ties count half), so ``P[i, j] + P[j, i] = 1``.
* The posterior predictive check compares each LLM's observed accuracy on the pairs it
  answered with the posterior of the same mean (``expected``, its HDI) and with the
  accuracy of replicated responses drawn from the model (``pred_low``/``pred_high``),
  which adds the sampling noise of a finite set of queries. It is an in-sample check.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import textwrap
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure
from scipy import sparse, stats

from irt_bayes.components import (
    NUMPY,
    Grid,
    Inputs,
    Pairs,
    contributions,
    has,
    item_quantities,
    probability,
)
from irt_bayes.components.likelihood import response
from irt_bayes.data import ResponseData, load_responses
from irt_bayes.errors import IrtBayesError
from irt_bayes.outputs import atomic_directory, check_output_dir
from irt_bayes.predict import extract_draws

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter

__all__ = [
    "FIGURE_DPI",
    "HDI_PROB",
    "ability_table",
    "plot_abilities",
    "dataset_ability_table",
    "plot_dataset_abilities",
    "expected_accuracy",
    "beat_probability",
    "plot_beat_probability",
    "accuracy_check",
    "plot_accuracy",
    "calibration_table",
    "plot_calibration",
    "query_table",
    "extreme_queries",
    "plot_query_parameters",
    "plot_icc",
    "skill_loadings",
    "skill_top_queries",
    "plot_skill_loadings",
    "convergence_table",
    "convergence_verdict",
    "plot_convergence",
    "compare_routers",
    "build_report",
]

FIGURE_DPI = 100
HDI_PROB = 0.94
# Posterior draws per block when computing P(correct) for every (query, LLM): bounds memory
# at roughly _CHUNK * n_queries * n_llms floats (about 60 MB on RouterBench).
_CHUNK = 250
# Texts in tables and queries.csv are shortened to this many characters.
_TEXT_CHARS = 240
_MIN_AFFIX = 30  # shared prefixes/suffixes shorter than this are kept in display texts
# boxplot's ``vert`` is deprecated from matplotlib 3.10, which added ``orientation``.
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)
_BLUE, _ORANGE, _GREY, _RED = "#1f5f99", "#d9822b", "#9a9a9a", "#c0392b"

DataLike = ResponseData | str | os.PathLike | Sequence[str | os.PathLike] | None


# ------------------------------------------------------------------------------ helpers
def _as_router(router: Any) -> IRTRouter:
    """A fitted router, loading it when given a path."""
    from irt_bayes.router import IRTRouter

    if isinstance(router, IRTRouter):
        router._check_fitted()
        return router
    if isinstance(router, str | os.PathLike):
        return IRTRouter.load(router, progress=False)
    raise IrtBayesError(f"expected a fitted IRTRouter or a router directory, got {router!r}")


def _as_data(data: DataLike) -> ResponseData | None:
    if data is None or isinstance(data, ResponseData):
        return data
    if isinstance(data, str | os.PathLike):
        return load_responses(data)
    return load_responses(*data)


def _new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas; sizes are whole half-inches so pixel sizes are exact."""
    width, height = np.ceil(2 * width) / 2, np.ceil(2 * height) / 2
    return Figure(figsize=(width, height), dpi=FIGURE_DPI, layout="constrained")


def _draws(router: IRTRouter, name: str, *dims: str) -> np.ndarray:
    """Posterior draws of a variable as (sample, *dims) with chains stacked."""
    var = router.idata_.posterior[name].stack(sample=("chain", "draw"))
    return np.asarray(var.transpose("sample", *dims).to_numpy(), dtype=np.float64)


def _n_samples(router: IRTRouter) -> int:
    post = router.idata_.posterior
    return int(post.sizes["chain"] * post.sizes["draw"])


def _sample_index(router: IRTRouter, max_draws: int | None) -> np.ndarray:
    """Evenly thinned positions into the stacked draws (all of them without a cap)."""
    n = _n_samples(router)
    if max_draws is None or max_draws >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_draws).round().astype(int))


@contextlib.contextmanager
def _quiet_arviz() -> Iterator[None]:
    """Silence ArviZ's single-chain shape notices (logged, not warned) and warnings."""
    # ArviZ logs through its own Logger instance, not the one logging.getLogger returns.
    logger = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _hdi(values: np.ndarray, hdi_prob: float) -> np.ndarray:
    """HDI over the first axis of (sample, ...) draws, as (..., 2) lower/higher."""
    values = np.asarray(values, dtype=np.float64)
    with _quiet_arviz():
        return az.hdi(values[None, ...], hdi_prob=hdi_prob)


def _query_ids(router: IRTRouter) -> np.ndarray:
    return router.idata_.posterior["query"].to_numpy().astype(str)


def _query_datasets(router: IRTRouter) -> np.ndarray:
    """Dataset label of each training query, in posterior order (``"all"`` without labels)."""
    tq = router.train_queries_
    ids = _query_ids(router)
    if "dataset" not in tq.columns:
        return np.full(len(ids), "all", dtype=object)
    ds = tq.set_index(tq["query_id"].astype(str))["dataset"].reindex(ids)
    return ds.fillna("").replace("", "(none)").astype(str).to_numpy(object)


def _skills(router: IRTRouter) -> list[str]:
    return [str(s) for s in router.idata_.posterior["skill"].to_numpy()]


def _group_means(labels: np.ndarray, groups: list[str]) -> np.ndarray:
    """(query, group) averaging matrix: one matmul per block instead of a loop."""
    w = (np.asarray(labels)[:, None] == np.asarray(groups, dtype=object)[None, :]).astype(float)
    return w / w.sum(axis=0, keepdims=True)


def _free_discrimination(router: IRTRouter) -> bool:
    """Whether queries have their own discrimination (2PL / MIRT), from the spec."""
    return router.spec_.discrimination == "free"


def _guessing(router: IRTRouter) -> np.ndarray | None:
    """(sample, query) lower asymptote of each training query, None without guessing."""
    comps = router.components_
    if not has(comps, "guessing"):
        return None
    draws = extract_draws(router.idata_, comps, _sample_index(router, None))
    return item_quantities(comps, draws, _training_inputs(router), NUMPY)["c"]


def _training_inputs(router: IRTRouter) -> Inputs:
    t = router.training_inputs()
    return Inputs(t["features"], t["dataset_idx"], sample_ndim=1)


def _blocks(router: IRTRouter, idx: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """The components' posterior draws at ``idx``, in blocks of ``_CHUNK`` samples."""
    comps = router.components_
    for lo in range(0, len(idx), _CHUNK):
        yield extract_draws(router.idata_, comps, idx[lo : lo + _CHUNK])


def _p_grid(router: IRTRouter, idx: np.ndarray) -> Iterator[np.ndarray]:
    """Blocks of P(correct) draws (block, Q, L) of every training (query, LLM) pair."""
    comps, inp = router.components_, _training_inputs(router)
    for draws in _blocks(router, idx):
        yield probability(comps, draws, inp, Grid())


def _ability_grid(router: IRTRouter, idx: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (LLM-dependent logit, LLM x dataset offset part), each (block, Q, L).

    The LLM-dependent logit is every term of the linear predictor but the difficulty:
    what an LLM brings to a query.
    """
    comps, inp = router.components_, _training_inputs(router)
    for draws in _blocks(router, idx):
        parts, _ = contributions(comps, draws, inp, Grid(), NUMPY)
        ability = sum(v for k, v in parts.items() if k != "difficulty")
        yield ability, parts.get("dataset_offsets", np.zeros_like(ability))


def _observations(router: IRTRouter) -> dict[str, np.ndarray]:
    """Training responses: indices, score in [0, 1] and trials (1 without)."""
    const, obs = router.idata_.constant_data, router.idata_.observed_data
    y = obs["y"].to_numpy().astype(float)
    n = const["trials"].to_numpy().astype(float) if "trials" in const else np.ones_like(y)
    return {
        "qi": const["query_idx"].to_numpy().astype(np.int64),
        "li": const["llm_idx"].to_numpy().astype(np.int64),
        "y": y,
        "n": n,
        "score": y / n,
    }


def _p_observed(router: IRTRouter, idx: np.ndarray) -> Iterator[np.ndarray]:
    """Blocks of P(correct) draws (block, n_obs) for the observed pairs."""
    comps, inp = router.components_, _training_inputs(router)
    o = _observations(router)
    for draws in _blocks(router, idx):
        yield probability(comps, draws, inp, Pairs(o["qi"], o["li"]))


def _query_texts(router: IRTRouter, data: DataLike) -> pd.Series | None:
    """Training query texts by query id: the router's own, or looked up in ``data``."""
    tq = router.train_queries_
    ids = _query_ids(router)
    if "query" in tq.columns and (tq["query"].astype(str).str.strip() != "").all():
        return tq.set_index(tq["query_id"].astype(str))["query"].reindex(ids).fillna("")
    rd = _as_data(data)
    if rd is None:
        return None
    texts = rd.queries.set_index("query_id")["query"].reindex(ids)
    if texts.notna().sum() == 0:
        raise IrtBayesError(
            f"{rd.source}: none of the router's {len(ids)} training query ids are in this data"
        )
    return texts.fillna("")


def _display_texts(texts: pd.Series, datasets: np.ndarray) -> pd.Series:
    """Short one-line texts: a dataset's shared few-shot prefix and suffix are cut.

    RouterBench's ARC prompts, for one, all start with the same five worked examples, so
    the first characters say nothing about the query itself.
    """
    out = texts.astype(str).copy()
    for ds in pd.unique(datasets):
        mask = datasets == ds
        group = out[mask]
        if len(group) < 2:
            continue
        vals = group.tolist()
        prefix = os.path.commonprefix(vals)
        suffix = os.path.commonprefix([v[::-1] for v in vals])[::-1]
        # Cut only at whitespace so that no word is split.
        cut_p = prefix.rfind("\n") + 1 if "\n" in prefix else prefix.rfind(" ") + 1
        cut_s = len(suffix) - (suffix.find("\n") if "\n" in suffix else suffix.find(" "))
        if cut_p < _MIN_AFFIX:
            cut_p = 0
        if cut_s < _MIN_AFFIX or suffix.find("\n") < 0 and suffix.find(" ") < 0:
            cut_s = 0
        shortest = min(len(v) for v in vals)
        if cut_p + cut_s >= shortest:  # one text is (nearly) the shared part itself
            cut_s = 0
            cut_p = cut_p if cut_p < shortest else 0
        if cut_p == 0 and cut_s == 0:
            continue
        out[mask] = [
            ("… " if cut_p else "")
            + v[cut_p : len(v) - cut_s if cut_s else None].strip()
            + (" …" if cut_s else "")
            for v in vals
        ]
    return out.map(lambda t: _shorten(t, _TEXT_CHARS))


def _shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _wrap(text: str, width: int, lines: int) -> str:
    """Wrap to at most ``lines`` lines, ending with an ellipsis when cut."""
    parts = textwrap.wrap(text, width)
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1].rstrip() + "…"
    return "\n".join(parts)


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


def plot_abilities(router: IRTRouter, hdi_prob: float = HDI_PROB) -> Figure:
    """ArviZ forest plot of each LLM's abilities, one panel per skill.

    LLMs are sorted by posterior mean (of the first skill for K > 1) with the best at
    the top; the thick bar is the interquartile range, the thin one the HDI.

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    hdi_prob : float, default 0.94
        Probability mass of the drawn interval.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    arviz.plot_forest, ability_table

    Examples
    --------
    >>> plot_abilities(router).savefig("abilities.png")  # doctest: +SKIP
    """
    router = _as_router(router)
    theta = router.idata_.posterior["theta"]
    skills = _skills(router)
    order = (
        theta.isel(skill=0)
        .mean(("chain", "draw"))
        .sortby(theta.isel(skill=0).mean(("chain", "draw")))["llm"]
        .to_numpy()
    )
    n_llm = theta.sizes["llm"]
    fig = _new_figure(max(6.0, 3.6 + 3.2 * len(skills)), 1.2 + 0.36 * n_llm)
    axes = fig.subplots(1, len(skills), sharey=True, squeeze=False)[0]
    for k, (ax, skill) in enumerate(zip(axes, skills, strict=True)):
        # plot_forest draws the first coordinate at the top: reverse so the best is on top.
        ds = xr.Dataset({"ability": theta.sel(skill=skill, llm=order[::-1])})
        az.plot_forest(
            ds,
            combined=True,
            hdi_prob=hdi_prob,
            labeller=az.labels.NoVarLabeller(),
            colors=_BLUE,
            ax=ax,
            textsize=10,
        )
        ax.axvline(0.0, color=_GREY, lw=0.8, ls="--", zorder=0)
        ax.set_xlabel("ability (logits vs the average LLM)")
        title = f"skill {skill}" if len(skills) > 1 else "ability"
        ax.set_title(f"{title}: posterior mean, 50% and {hdi_prob:.0%} HDI", fontsize=10)
        if k:
            ax.tick_params(labelleft=False)
    return fig


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
    idx = _sample_index(router, None)
    parts = [
        (np.einsum("sql,qg->sgl", ab, w), np.einsum("sql,qg->sgl", off, w))
        for ab, off in _ability_grid(router, idx)
    ]
    ability = np.concatenate([a for a, _ in parts])
    offset = np.concatenate([o for _, o in parts])
    hdi = _hdi(ability, hdi_prob)
    D, L = ability.shape[1:]
    return pd.DataFrame(
        {
            "dataset": np.repeat(datasets, L),
            "llm": np.tile(router.llms_, D),
            "mean": ability.mean(axis=0).ravel(),
            "sd": ability.std(axis=0).ravel(),
            "hdi_low": hdi[..., 0].ravel(),
            "hdi_high": hdi[..., 1].ravel(),
            "offset": offset.mean(axis=0).ravel(),
        }
    )


def plot_dataset_abilities(source: IRTRouter | pd.DataFrame) -> Figure:
    """Heat map of each LLM's ability on each dataset (posterior means, logits).

    LLMs are sorted by their mean over datasets, best on top.

    Parameters
    ----------
    source : IRTRouter or pandas.DataFrame
        A fitted router, or the table from :func:`dataset_ability_table`.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    dataset_ability_table

    Examples
    --------
    >>> plot_dataset_abilities(router)  # doctest: +SKIP
    """
    tab = source if isinstance(source, pd.DataFrame) else dataset_ability_table(source)
    datasets = list(pd.unique(tab["dataset"]))
    mean = tab.pivot(index="llm", columns="dataset", values="mean")[datasets]
    mean = mean.loc[mean.mean(axis=1).sort_values(ascending=False).index]
    llms = [str(m) for m in mean.index]
    longest = max(len(m) for m in llms)
    fig = _new_figure(0.08 * longest + 2.6 + 1.3 * len(datasets), 1.4 + 0.42 * len(llms))
    ax = fig.add_subplot()
    vals = mean.to_numpy(float)
    # centred on each dataset's average LLM, so the colour shows rank within a dataset
    centred = vals - vals.mean(axis=0, keepdims=True)
    lim = max(float(np.nanmax(np.abs(centred))), 0.1)
    im = ax.imshow(centred, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(
                j,
                i,
                f"{vals[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if abs(centred[i, j]) > 0.6 * lim else "black",
            )
    ax.set_xticks(range(len(datasets)), datasets, rotation=20, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(llms)), llms)
    ax.set_title("Ability on each dataset (logits, posterior mean)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="vs the dataset's average LLM")
    return fig


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
    idx = _sample_index(router, max_draws)
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


def plot_beat_probability(source: IRTRouter | xr.DataArray) -> Figure:
    """Heat map of :func:`beat_probability`: P(row LLM beats column LLM).

    Parameters
    ----------
    source : IRTRouter or xarray.DataArray
        A fitted router, or the matrix from :func:`beat_probability`.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    beat_probability

    Examples
    --------
    >>> plot_beat_probability(router)  # doctest: +SKIP
    """
    p = source if isinstance(source, xr.DataArray) else beat_probability(source)
    names = [str(m) for m in p["llm"].to_numpy()]
    n = len(names)
    longest = max(len(m) for m in names)
    side = 1.2 + 0.55 * n
    fig = _new_figure(side + 0.075 * longest + 1.4, side + 0.06 * longest)
    ax = fig.add_subplot()
    vals = p.to_numpy()
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee")  # grey diagonal
    im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=0, vmax=1)
    if n <= 16:  # beyond that the numbers no longer fit their cells
        for i in range(n):
            for j in range(n):
                if i != j:
                    v = vals[i, j]
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if abs(v - 0.5) > 0.3 else "black",
                    )
    ax.set_xticks(range(n), names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("opponent")
    ax.set_title("P(row LLM has the higher expected accuracy)", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8, label="P(row beats column)")
    return fig


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
    idx = _sample_index(router, max_draws)
    for p in _p_observed(router, idx):
        exp_parts.append(np.asarray((gm.T @ p.T).T))
        if generative:
            rep = rng.binomial(o["n"].astype(np.int64), p) / o["n"]
            rep_parts.append(np.asarray((gm.T @ rep.T).T))
    expected = np.concatenate(exp_parts)
    hdi_e = _hdi(expected, hdi_prob)
    if generative:
        hdi_r = _hdi(np.concatenate(rep_parts), hdi_prob)
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


def plot_accuracy(source: IRTRouter | pd.DataFrame) -> Figure:
    """Observed accuracy against its posterior, per LLM and per dataset.

    One panel for all queries and one per dataset. The dark bar is the HDI of the
    expected accuracy, the light bar the HDI of replicated accuracy; the red diamond is
    the observed accuracy.

    Parameters
    ----------
    source : IRTRouter or pandas.DataFrame
        A fitted router, or the table from :func:`accuracy_check`.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    accuracy_check

    Examples
    --------
    >>> plot_accuracy(router)  # doctest: +SKIP
    """
    df = source if isinstance(source, pd.DataFrame) else accuracy_check(source)
    groups = list(pd.unique(df["dataset"]))
    overall = df[df["dataset"] == "all"].sort_values("expected")
    order = overall["llm"].tolist()
    n_llm = len(order)
    ncols = min(3, len(groups))
    nrows = int(np.ceil(len(groups) / ncols))
    longest = max(len(m) for m in order)
    fig = _new_figure(0.075 * longest + 3.4 * ncols + 0.5, 0.8 + nrows * (0.9 + 0.3 * n_llm))
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    y = np.arange(n_llm)
    vals = df[["observed", "hdi_low", "hdi_high", "pred_low", "pred_high"]].to_numpy(float)
    lo, hi = np.nanmin(vals), np.nanmax(vals)
    pad = 0.05 * max(hi - lo, 0.1)
    xlim = (max(0.0, lo - pad), min(1.0, hi + pad))
    for ax, grp in zip(axes, groups, strict=False):
        d = df[df["dataset"] == grp].set_index("llm").reindex(order)
        ax.hlines(y, d["pred_low"], d["pred_high"], color="#b9cfe6", lw=7, label="replicated")
        ax.hlines(y, d["hdi_low"], d["hdi_high"], color=_BLUE, lw=2.5, label="expected")
        ax.plot(d["expected"], y, "o", color=_BLUE, ms=4)
        ax.plot(d["observed"], y, "D", color=_RED, ms=5, label="observed")
        n = d["n"].dropna()
        n_txt = f"{int(n.min())}" if n.min() == n.max() else f"{int(n.min())}–{int(n.max())}"
        ax.set_title(grp if grp != "all" else "all datasets", fontsize=10)
        ax.set_xlabel(f"accuracy ({n_txt} responses per LLM)")
        ax.set_yticks(y, order)
        ax.set_xlim(*xlim)  # one scale for every panel, so that panels compare
        ax.grid(axis="x", color="#e5e5e5")
        ax.set_axisbelow(True)
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    fig.suptitle("Posterior predictive check of accuracy (94% HDI)", fontsize=11)
    return fig


def calibration_table(
    router: IRTRouter, n_bins: int = 10, *, max_draws: int | None = 500
) -> pd.DataFrame:
    """Reliability of P(correct) on the training responses.

    Each observed (query, LLM) pair gets its posterior mean P(correct); pairs are binned
    by it and each bin's mean prediction is set against its observed mean score, with a
    94% Jeffreys interval. In-sample, so somewhat optimistic.

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
        bin; ``attrs["ece"]`` holds the expected calibration error (weighted mean of
        ``|observed - predicted|``).

    See Also
    --------
    plot_calibration, accuracy_check

    Examples
    --------
    >>> calibration_table(router).attrs["ece"]  # doctest: +SKIP
    """
    router = _as_router(router)
    o = _observations(router)
    idx = _sample_index(router, max_draws)
    p_sum = np.zeros(len(o["y"]))
    for p in _p_observed(router, idx):
        p_sum += p.sum(axis=0)
    p_mean = p_sum / len(idx)
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.digitize(p_mean, edges[1:-1]), 0, n_bins - 1)
    df = pd.DataFrame({"bin": b, "p": p_mean, "y": o["y"], "n": o["n"]})
    g = df.groupby("bin")
    k, n = g["y"].sum(), g["n"].sum()
    out = pd.DataFrame(
        {
            "bin_low": edges[k.index],
            "bin_high": edges[k.index + 1],
            "n": g.size(),
            "predicted": g["p"].mean(),
            "observed": k / n,
            # Jeffreys interval, closed at 0 / 1 when no / every response is correct
            "ci_low": np.where(k <= 0, 0.0, stats.beta.ppf(0.03, k + 0.5, n - k + 0.5)),
            "ci_high": np.where(k >= n, 1.0, stats.beta.ppf(0.97, k + 0.5, n - k + 0.5)),
        }
    ).reset_index(drop=True)
    out.attrs["ece"] = float(
        (out["n"] * (out["observed"] - out["predicted"]).abs()).sum() / out["n"].sum()
    )
    return out


def plot_calibration(source: IRTRouter | pd.DataFrame) -> Figure:
    """Reliability diagram of P(correct) with the number of responses per bin.

    Parameters
    ----------
    source : IRTRouter or pandas.DataFrame
        A fitted router, or the table from :func:`calibration_table`.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    calibration_table

    Examples
    --------
    >>> plot_calibration(router)  # doctest: +SKIP
    """
    cal = source if isinstance(source, pd.DataFrame) else calibration_table(source)
    fig = _new_figure(6.0, 6.5)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=1, label="perfect calibration")
    ax.errorbar(
        cal["predicted"],
        cal["observed"],
        yerr=[cal["observed"] - cal["ci_low"], cal["ci_high"] - cal["observed"]],
        fmt="o-",
        color=_BLUE,
        capsize=3,
        label="observed (94% interval)",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("auto")
    ax.set_ylabel("observed share correct")
    ece = cal.attrs.get("ece", np.nan)
    ax.set_title(f"Calibration on the training responses (ECE {ece:.3f})", fontsize=11)
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(color="#eeeeee")
    width = (cal["bin_high"] - cal["bin_low"]).to_numpy()
    ax_n.bar(cal["bin_low"], cal["n"], width=width * 0.9, align="edge", color=_GREY)
    ax_n.set_ylabel("responses")
    ax_n.set_xlabel("posterior mean P(correct)")
    return fig


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
    b = _draws(router, "difficulty", "query")
    hdi = _hdi(b, hdi_prob)
    n = np.bincount(o["qi"], minlength=len(ids))
    score_sum = np.bincount(o["qi"], weights=o["score"], minlength=len(ids))
    out = pd.DataFrame(
        {
            "dataset": ds,
            "n": n,
            "observed": score_sum / np.where(n > 0, n, 1),
            "difficulty": b.mean(axis=0),
            "difficulty_sd": b.std(axis=0),
            "difficulty_low": hdi[:, 0],
            "difficulty_high": hdi[:, 1],
            "p_average": response(-b, _guessing(router), NUMPY).mean(axis=0),
        },
        index=pd.Index(ids, name="query_id"),
    )
    if _free_discrimination(router):
        a = _draws(router, "discrimination", "query", "skill")
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


def plot_query_parameters(source: IRTRouter | pd.DataFrame) -> Figure:
    """Distributions of posterior mean difficulty and discrimination per dataset.

    Parameters
    ----------
    source : IRTRouter or pandas.DataFrame
        A fitted router, or the table from :func:`query_table`.

    Returns
    -------
    matplotlib.figure.Figure
        Box plots with every query as a dot; the discrimination panel is left out for
        the Rasch model (discrimination fixed at 1).

    See Also
    --------
    query_table, plot_icc

    Examples
    --------
    >>> plot_query_parameters(router)  # doctest: +SKIP
    """
    q = source if isinstance(source, pd.DataFrame) else query_table(source)
    datasets = list(pd.unique(q["dataset"]))
    cols = ["difficulty"]
    if q["discrimination"].nunique() > 1:
        cols.append("discrimination")
    labels = {
        "difficulty": "difficulty b (logits; higher = harder)",
        "discrimination": "discrimination" + (" ‖a‖" if "discrimination_s1" in q else " a"),
    }
    longest = max(len(d) for d in datasets)
    fig = _new_figure(0.08 * longest + 4.2 * len(cols) + 0.5, 1.5 + 0.55 * len(datasets))
    axes = fig.subplots(1, len(cols), sharey=True, squeeze=False)[0]
    rng = np.random.default_rng(0)
    for ax, col in zip(axes, cols, strict=True):
        vals = [q.loc[q["dataset"] == d, col].to_numpy() for d in datasets]
        ax.boxplot(
            vals,
            **_HORIZONTAL,
            widths=0.6,
            showfliers=False,
            medianprops={"color": _ORANGE, "lw": 2},
        )
        for i, v in enumerate(vals):
            ax.plot(v, i + 1 + rng.uniform(-0.22, 0.22, len(v)), ".", color=_BLUE, alpha=0.35, ms=3)
        ax.set_yticks(
            np.arange(1, len(datasets) + 1),
            [f"{d} ({len(v)})" for d, v in zip(datasets, vals, strict=True)],
        )
        ax.set_xlabel(labels[col])
        ax.grid(axis="x", color="#eeeeee")
    axes[0].set_title("Posterior mean per query, by dataset (n queries)", fontsize=10, loc="left")
    return fig


def plot_icc(
    router: IRTRouter,
    query_ids: Sequence[str] | None = None,
    *,
    data: DataLike = None,
    n_draws: int = 100,
) -> Figure:
    """Item characteristic curves: P(correct) against ability for a few queries.

    Each panel shows the posterior mean curve and ``n_draws`` posterior curves, with each
    LLM placed at its posterior mean ability and drawn at its observed score on that
    query. For K > 1 the ability axis is the direction of the query's mean
    discrimination vector, ``theta . a / |a|``; with LLM x dataset offsets an LLM sits at
    its ability plus its offset on the query's dataset (divided by the discrimination).

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    query_ids : sequence of str, optional
        Queries to draw; by default four: the 10%, 50% and 90% difficulty quantiles and
        the most discriminating query (or the 30% quantile for the Rasch model).
    data : ResponseData or path(s), optional
        Training responses for the texts of a loaded router.
    n_draws : int, default 100
        Posterior curves drawn per panel.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    query_table, plot_query_parameters

    Examples
    --------
    >>> plot_icc(router, ["arc-challenge-1042"])  # doctest: +SKIP
    """
    router = _as_router(router)
    ids = _query_ids(router)
    pos = pd.Index(ids)
    b_all = _draws(router, "difficulty", "query")
    if query_ids is None:
        bm = b_all.mean(axis=0)
        order = np.argsort(bm)
        picks = [int(order[round(f * (len(order) - 1))]) for f in (0.1, 0.5, 0.9)]
        if _free_discrimination(router):
            a_m = np.linalg.norm(_draws(router, "discrimination", "query", "skill"), axis=2)
            # the most discriminating query not picked yet
            extra = [int(i) for i in np.argsort(-a_m.mean(axis=0))[:4] if int(i) not in picks]
        else:
            extra = [int(order[round(0.3 * (len(order) - 1))])]
        picks = list(dict.fromkeys(picks + extra[:1]))
    else:
        picks = pos.get_indexer([str(q) for q in query_ids]).tolist()
        unknown = [q for q, i in zip(query_ids, picks, strict=True) if i < 0]
        if unknown:
            raise IrtBayesError(f"query {unknown[0]!r} is not a training query of this router")
    sidx = _sample_index(router, n_draws)
    has_a = _free_discrimination(router)
    a_all = _draws(router, "discrimination", "query", "skill") if has_a else None
    texts = _query_texts(router, data)
    ds = _query_datasets(router)
    disp = None if texts is None else _display_texts(texts, ds)
    o = _observations(router)
    # Every term but the difficulty, per (draw, query, LLM): where each LLM sits on a
    # query, straight from the model's linear predictor (offsets and slopes included).
    ability = np.concatenate(
        [ab[:, picks, :] for ab, _ in _ability_grid(router, _sample_index(router, None))]
    )
    guess = _guessing(router)
    has_offsets = has(router.components_, "dataset_offsets")
    ncols = 2 if len(picks) > 1 else 1
    nrows = int(np.ceil(len(picks) / ncols))
    fig = _new_figure(5.0 * ncols + 0.5, 3.6 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, q in zip(axes, picks, strict=False):
        b = b_all[:, q]
        if a_all is None:
            u = np.ones(1)
            slope = np.ones(len(b))
        else:
            a_q = a_all[:, q, :]
            u = a_q.mean(axis=0) / np.linalg.norm(a_q.mean(axis=0))
            slope = a_q @ u
        # median: a draw with a discrimination near 0 sends ability / slope far away
        t_llm = np.median(ability[:, picks.index(q), :] / slope[:, None], axis=0)
        c = None if guess is None else guess[:, q]
        centre = float(np.median(b / slope))
        lo = max(min(t_llm.min(), centre) - 1.5, -10.0)
        hi = min(max(t_llm.max(), centre) + 1.5, 10.0)
        t = np.linspace(lo, hi, 200)
        c_s = None if c is None else c[sidx, None]
        curves = response(slope[sidx, None] * t[None, :] - b[sidx, None], c_s, NUMPY)
        ax.plot(t, curves.T, color=_BLUE, alpha=0.06, lw=0.8)
        ax.plot(
            t,
            response(
                slope[:, None] * t[None, :] - b[:, None], None if c is None else c[:, None], NUMPY
            ).mean(axis=0),
            color=_BLUE,
            lw=2,
            label="posterior mean",
        )
        sel = np.flatnonzero(o["qi"] == q)
        ax.scatter(
            t_llm[o["li"][sel]],
            o["score"][sel],
            s=22,
            color=_RED,
            zorder=3,
            edgecolor="white",
            lw=0.5,
            label="LLMs' observed scores",
        )
        ax.set_ylim(-0.08, 1.08)
        ax.set_xlim(lo, hi)
        ax.set_xlabel(
            "ability"
            + (" along the query's direction" if a_all is not None and a_all.shape[2] > 1 else " θ")
            + (" + dataset offset" if has_offsets else "")
        )
        ax.set_ylabel("P(correct)")
        head = f"{ids[q]} ({ds[q]}): b = {b.mean():.2f}, |a| = {slope.mean():.2f}"
        body = "" if disp is None else _wrap(disp.iloc[q], 62, 2)
        ax.set_title(head + ("\n" + body if body else ""), fontsize=8.5, loc="left")
        ax.grid(color="#eeeeee")
    for ax in axes[len(picks) :]:
        ax.set_visible(False)
    axes[0].legend(loc="upper left", fontsize=8)
    return fig


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
    a = _draws(router, "discrimination", "query", "skill").mean(axis=0)  # (Q, K)
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
    a = _draws(router, "discrimination", "query", "skill").mean(axis=0)
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


def plot_skill_loadings(source: IRTRouter | pd.DataFrame) -> Figure:
    """Heat map of each dataset's share of loading on each skill.

    Parameters
    ----------
    source : IRTRouter or pandas.DataFrame
        A fitted router, or the table from :func:`skill_loadings`.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    skill_loadings

    Examples
    --------
    >>> plot_skill_loadings(mirt_router)  # doctest: +SKIP
    """
    tab = source if isinstance(source, pd.DataFrame) else skill_loadings(source)
    if tab.empty:
        raise IrtBayesError("this model has no discrimination, so no skill loadings")
    share = tab[[c for c in tab.columns if str(c).startswith("share_")]]
    skills = [c[len("share_") :] for c in share.columns]
    datasets = [str(d) for d in share.index]
    longest = max(len(d) for d in datasets)
    fig = _new_figure(0.08 * longest + 1.6 + 1.1 * len(skills), 1.4 + 0.45 * len(datasets))
    ax = fig.add_subplot()
    vals = share.to_numpy()
    im = ax.imshow(vals, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            ax.text(
                j,
                i,
                f"{vals[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if vals[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(skills)), skills)
    ax.set_yticks(range(len(datasets)), datasets)
    ax.set_xlabel("skill")
    ax.set_title("Share of discrimination per skill", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


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
    with _quiet_arviz():  # single-chain R-hat and small-ESS notices
        return diagnose(router.idata_, method=router.diagnostics_.method).variables


def convergence_verdict(router: IRTRouter) -> str:
    """One line saying whether the posterior can be trusted.

    NUTS fits are re-diagnosed from the saved draws (R-hat, ESS of the abilities,
    divergences); ADVI fits report the ELBO convergence recorded at fit time.

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
    if diag.method == "nuts":
        with _quiet_arviz():
            diag = diagnose(router.idata_, method="nuts", seconds=diag.seconds)
    return diag.verdict()


def plot_convergence(router: IRTRouter) -> Figure:
    """Convergence at a glance: ELBO trace (ADVI) or R-hat and ESS per ability (NUTS).

    Parameters
    ----------
    router : IRTRouter
        A fitted router.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    convergence_table, convergence_verdict, arviz.plot_ess

    Examples
    --------
    >>> plot_convergence(router)  # doctest: +SKIP
    """
    from irt_bayes.inference import ESS_MIN, RHAT_MAX

    router = _as_router(router)
    idata = router.idata_
    if router.diagnostics_.method != "nuts" or idata.posterior.sizes["chain"] < 2:
        fig = _new_figure(8.0, 3.5)
        ax = fig.add_subplot()
        if "sample_stats" in idata.groups() and "loss" in idata.sample_stats:
            loss = idata.sample_stats["loss"].to_numpy()
            it = np.arange(1, len(loss) + 1)
            ax.plot(it, loss, color=_GREY, lw=0.6, label="loss (−ELBO)")
            win = max(1, len(loss) // 50)
            smooth = pd.Series(loss).rolling(win, min_periods=1).mean()
            ax.plot(it, smooth, color=_BLUE, lw=1.8, label=f"running mean ({win} steps)")
            # The first steps are orders of magnitude above the rest: scale to the tail.
            tail = loss[len(loss) // 10 :]
            lo, hi = np.percentile(tail, [0.5, 99.5])
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.3 * (hi - lo))
            ax.set_xlabel("ADVI iteration")
            ax.set_ylabel("−ELBO")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no ELBO trace saved", ha="center", va="center")
            ax.set_axis_off()
        ax.set_title(_wrap(convergence_verdict(router), 100, 2), fontsize=9, loc="left")
        return fig
    with _quiet_arviz():
        s = az.summary(idata, var_names=["theta"], kind="diagnostics")
    labels = [i.replace("theta[", "").rstrip("]") for i in s.index]
    n = len(labels)
    longest = max(len(x) for x in labels)
    fig = _new_figure(0.075 * longest + 8.0, 1.2 + 0.3 * n)
    ax_r, ax_e = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)
    ax_r.plot(s["r_hat"], y, "o", color=_BLUE)
    ax_r.axvline(RHAT_MAX, color=_RED, ls="--", lw=1, label=f"{RHAT_MAX}")
    ax_r.set_yticks(y, labels)
    ax_r.set_xlabel("R-hat of the abilities")
    ax_r.legend(fontsize=8)
    ax_e.plot(s["ess_bulk"], y, "o", color=_BLUE, label="bulk")
    ax_e.plot(s["ess_tail"], y, "s", color=_ORANGE, label="tail", mfc="none")
    ax_e.axvline(ESS_MIN, color=_RED, ls="--", lw=1)
    ax_e.set_xlabel("effective sample size")
    ax_e.legend(fontsize=8)
    fig.suptitle(_wrap(convergence_verdict(router), 120, 2), fontsize=9)
    return fig


# ----------------------------------------------------------------------- model comparison
def _same_responses(ref: IRTRouter, other: IRTRouter) -> str | None:
    """What differs between the training responses of two routers (None if nothing)."""
    if list(ref.llms_) != list(other.llms_):
        return "different LLMs"
    if not np.array_equal(_query_ids(ref), _query_ids(other)):
        return "different training queries"
    a, b = _observations(ref), _observations(other)
    if len(a["y"]) != len(b["y"]):
        return f"{len(b['y'])} responses instead of {len(a['y'])}"
    for key, what in (
        ("qi", "query indices"),
        ("li", "LLM indices"),
        ("y", "scores"),
        ("n", "trials"),
    ):
        if not np.array_equal(a[key], b[key]):
            return f"different {what}"
    return None


def compare_routers(
    routers: Sequence[Any] | Mapping[str, Any],
    *,
    ic: str = "loo",
    names: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, Figure]:
    """Compare fitted variants (1PL, 2PL, MIRT...) by PSIS-LOO with :func:`arviz.compare`.

    Parameters
    ----------
    routers : sequence or mapping
        Fitted routers or saved router directories (two or more), all fitted on the same
        responses; a mapping gives them names.
    ic : {"loo", "waic"}, default "loo"
        Information criterion.
    names : sequence of str, optional
        Model names; by default each router's spec name (``2pl``, ``mirt-3``...),
        made unique.

    Returns
    -------
    table : pandas.DataFrame
        ``az.compare``'s table (``rank, elpd_loo, p_loo, elpd_diff, weight, se, dse,
        warning, scale``) plus ``k_high``, the share of responses whose Pareto k is above
        ArviZ's threshold (0.7, or less for fewer than 2200 draws).
    figure : matplotlib.figure.Figure
        ``az.plot_compare`` of the table.

    Raises
    ------
    IrtBayesError
        Fewer than two routers, or routers fitted on different responses.

    Notes
    -----
    The pointwise log-likelihood comes from :meth:`IRTRouter.log_likelihood` (one value
    per observed response, dim ``obs``). LOO of an ADVI fit uses draws from the
    variational approximation; many high Pareto k values then say the approximation,
    not just the model, is off.

    See Also
    --------
    arviz.compare, arviz.plot_compare, IRTRouter.loo

    Examples
    --------
    >>> table, fig = compare_routers(["fits/rasch", "fits/2pl", "fits/mirt-2"])  # doctest: +SKIP
    """
    if ic not in ("loo", "waic"):
        raise IrtBayesError(f"unknown information criterion {ic!r}; use 'loo' or 'waic'")
    if isinstance(routers, Mapping):
        names, items = [str(k) for k in routers], list(routers.values())
    else:
        items = list(routers)
    if len(items) < 2:
        raise IrtBayesError("model comparison needs two or more routers")
    loaded = [_as_router(r) for r in items]
    if names is None:
        names = []
        for r, src in zip(loaded, items, strict=True):
            base = r.spec_.name
            if base in names and isinstance(src, str | os.PathLike):
                base = f"{base} ({Path(src).name})"
            k = 2
            cand = base
            while cand in names:
                cand, k = f"{base}#{k}", k + 1
            names.append(cand)
    names = list(names)
    if len(names) != len(loaded) or len(set(names)) != len(names):
        raise IrtBayesError("give one distinct name per router")
    for name, r in zip(names[1:], loaded[1:], strict=True):
        diff = _same_responses(loaded[0], r)
        if diff is not None:
            raise IrtBayesError(
                f"cannot compare {name!r} with {names[0]!r}: fitted on different responses "
                f"({diff}); LOO compares models fitted to the same data"
            )
    elpds, k_high = {}, {}
    for name, r in zip(names, loaded, strict=True):
        idata = az.InferenceData(
            posterior=r.idata_.posterior,
            log_likelihood=xr.Dataset({"y": r.log_likelihood()}),
        )
        with _quiet_arviz():  # high Pareto k: reported in k_high instead
            elpd = az.loo(idata, pointwise=True) if ic == "loo" else az.waic(idata, pointwise=True)
        elpds[name] = elpd
        k = getattr(elpd, "pareto_k", None)
        # ArviZ's own threshold, min(1 - 1/log10(S), 0.7), so k_high matches its warning
        good_k = float(getattr(elpd, "good_k", 0.7))
        k_high[name] = float((np.asarray(k) > good_k).mean()) if k is not None else np.nan
        del idata
    with _quiet_arviz():
        table = az.compare(elpds, ic=ic)
    table["k_high"] = pd.Series(k_high).reindex(table.index)
    table.index.name = "model"
    longest = max(len(n) for n in names)
    fig = _new_figure(0.08 * longest + 7.0, 1.6 + 0.55 * len(names))
    ax = fig.add_subplot()
    with _quiet_arviz():  # pandas deprecation notices from inside ArviZ
        az.plot_compare(table, ax=ax, textsize=10, legend=True, plot_ic_diff=True)
    ax.set_title(f"Model comparison by {ic.upper()} (higher ELPD is better)", fontsize=10)
    return table, fig


# ------------------------------------------------------------------------------ report
def _fmt(value: Any, col: str) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "–"
        if col in ("price",):
            return f"{value:.3g}"
        if col.startswith(("min_ess", "size")):
            return f"{value:.0f}"
        return f"{value:.3f}"
    return str(value)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [_fmt(v, c).replace("|", "\\|") for v, c in zip(row, cols, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v, c in zip(row, cols, strict=True):
            num = isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v, c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0 1.2em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
.verdict{padding:.6em .9em;border-left:4px solid #1f5f99;background:#f3f7fb;font-weight:600}
.note{color:#555;font-size:.92em}code{background:#f4f4f4;padding:0 .2em}
"""


class _Doc:
    """Builds the Markdown and the HTML report side by side."""

    def __init__(self) -> None:
        self.md: list[str] = []
        self.html: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str, cls: str | None = None) -> None:
        self.md.append(f"{'**' + text + '**' if cls == 'verdict' else text}\n")
        attr = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{attr}>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame) -> None:
        self.md.append(_md_table(df) + "\n")
        self.html.append(_html_table(df))

    def figure(self, name: str, alt: str) -> None:
        self.md.append(f"![{alt}]({name})\n")
        self.html.append(f'<img src="{html.escape(name)}" alt="{html.escape(alt)}">')


def _save_fig(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=FIGURE_DPI, facecolor="white")


def build_report(
    router: Any,
    out_dir: str | os.PathLike,
    data: DataLike = None,
    *,
    n_queries: int = 5,
    hdi_prob: float = HDI_PROB,
    force: bool = False,
) -> Path:
    """Write the posterior report of a router to a directory.

    The directory gets ``report.html`` (self-contained apart from the PNG figures beside
    it, which it references by relative path), ``report.md`` (the same content), the
    figures (``abilities.png``, ``beat_probability.png``, ``accuracy.png``,
    ``calibration.png``, ``query_parameters.png``, ``icc.png``, ``convergence.png``,
    ``dataset_abilities.png`` with two or more datasets and ``skills.png`` for K > 1) and
    one CSV per table. It is written under a temporary name beside ``out_dir`` and
    swapped into place (:func:`irt_bayes.outputs.atomic_directory`): an earlier report
    there is replaced, any other non-empty folder is refused unless ``force``.

    Parameters
    ----------
    router : IRTRouter or path
        A fitted router or a saved router directory.
    out_dir : str or os.PathLike
        Target directory.
    data : ResponseData or path(s), optional
        The training responses, for the query texts of a saved router (which keeps only
        ids). Without them the query tables show ids only, and say so.
    n_queries : int, default 5
        Hardest / easiest queries listed, and example queries per skill.
    hdi_prob : float, default 0.94
        Probability mass of every interval.
    force : bool, default False
        Replace an existing folder that is not an irt-bayes report.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    See Also
    --------
    ability_table, beat_probability, accuracy_check, query_table, convergence_table

    Examples
    --------
    >>> from irt_bayes.report import build_report
    >>> build_report("fits/2pl", "fits/2pl-report", data="train.csv")  # doctest: +SKIP
    PosixPath('fits/2pl-report')
    """
    t0 = time.perf_counter()
    out = check_output_dir(out_dir, "report", force=force)
    router = _as_router(router)
    data = _as_data(data)  # read files once, not once per table
    texts = _query_texts(router, data)
    has_text = texts is not None

    ab = ability_table(router, hdi_prob)
    by_ds = dataset_ability_table(router, hdi_prob)
    beat = beat_probability(router)
    acc = accuracy_check(router, hdi_prob)
    cal = calibration_table(router)
    qt = query_table(router, data, hdi_prob)
    hardest, easiest = extreme_queries(qt, n_queries)
    conv = convergence_table(router)
    verdict = convergence_verdict(router)
    skills = _skills(router)
    multi = len(skills) > 1 and _free_discrimination(router)

    with atomic_directory(out, "report", force=force) as tmp:
        figures: dict[str, Figure] = {
            "abilities.png": plot_abilities(router, hdi_prob),
            "beat_probability.png": plot_beat_probability(beat),
            "accuracy.png": plot_accuracy(acc),
            "calibration.png": plot_calibration(cal),
            "query_parameters.png": plot_query_parameters(qt),
            "icc.png": plot_icc(router, data=data if has_text else None),
            "convergence.png": plot_convergence(router),
        }
        tables: dict[str, pd.DataFrame] = {
            "abilities.csv": ab,
            "beat_probability.csv": beat.to_pandas()
            .rename_axis(index="llm", columns=None)
            .reset_index(),
            "accuracy.csv": acc,
            "calibration.csv": cal,
            # the shortened texts: full prompts repeat few-shot examples (2.4 MB on RouterBench)
            "queries.csv": qt.drop(columns="text")
            .rename(columns={"display": "text"})
            .reset_index(),
            "convergence.csv": conv.reset_index(),
        }
        if by_ds["dataset"].nunique() > 1:
            figures["dataset_abilities.png"] = plot_dataset_abilities(by_ds)
            tables["dataset_abilities.csv"] = by_ds
        if multi:
            loads = skill_loadings(router)
            tops = skill_top_queries(router, n_queries, data=data if has_text else None)
            figures["skills.png"] = plot_skill_loadings(loads)
            tables["skill_loadings.csv"] = loads.reset_index()
            tables["skill_queries.csv"] = tops
        for name, fig in figures.items():
            _save_fig(fig, tmp / name)
        for name, df in tables.items():
            df.to_csv(tmp / name, index=False)

        parts = {
            "ab": ab,
            "by_ds": by_ds,
            "beat": beat,
            "acc": acc,
            "cal": cal,
            "conv": conv,
            "hardest": hardest,
            "easiest": easiest,
            "verdict": verdict,
            "skills": skills,
            "hdi_prob": hdi_prob,
            "has_text": has_text,
            "multi": multi,
            "t0": t0,
            "tables": list(tables),
            "figures": list(figures),
            "loads": loads if multi else None,
            "tops": tops if multi else None,
        }
        doc = _doc(router, parts)
        (tmp / "report.md").write_text("\n".join(doc.md))
        title = f"irt-bayes report: {router.spec_.name}"
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(doc.html)
            + "\n</body></html>\n"
        )
        (tmp / "report.html").write_text(page, encoding="utf-8")
    return out


def _query_rows(df: pd.DataFrame, has_text: bool) -> pd.DataFrame:
    cols = [
        "dataset",
        "difficulty",
        "difficulty_low",
        "difficulty_high",
        "p_average",
        "discrimination",
        "observed",
        "n",
    ]
    out = df[cols].rename(columns={"observed": "share_correct"}).reset_index()
    if has_text:
        out["text"] = df["display"].to_numpy()
    return out


def _doc(router: IRTRouter, v: dict[str, Any]) -> _Doc:
    """Lay out the report from the pieces computed in :func:`build_report`."""
    ab, beat, acc, cal = v["ab"], v["beat"], v["acc"], v["cal"]
    hdi_prob, has_text, multi = v["hdi_prob"], v["has_text"], v["multi"]
    o = _observations(router)
    d = _Doc()
    d.heading(f"irt-bayes report: {router.spec_.name}", 1)
    ds = router.datasets_ or sorted(set(_query_datasets(router)))
    d.para(
        f"{len(router.llms_)} LLMs, {len(_query_ids(router))} training queries, "
        f"{len(o['y'])} responses ({router.likelihood_} likelihood), datasets: "
        f"{', '.join(map(str, ds))}. Model {router.spec_.name} with {len(v['skills'])} "
        f"skill(s), fitted by {router.diagnostics_.method.upper()} "
        f"({_n_samples(router)} posterior draws); intervals are {hdi_prob:.0%} HDIs."
    )
    d.para(f"Convergence: {v['verdict']}", "verdict")
    emb = router.train_embeddings_
    n_dup = len(emb) - len(np.unique(np.round(emb, 5), axis=0))
    if n_dup > 0.05 * len(emb):
        d.para(
            f"Warning: {n_dup} of {len(emb)} training queries share their embedding with "
            "another query (texts longer than the encoder's window that start alike?), "
            "so the model cannot tell them apart by their text.",
            "verdict",
        )

    d.heading("Abilities")
    d.para(
        "Abilities are relative to the pool's average LLM (they sum to zero per skill), "
        "in logits for a query of typical discrimination; price is the mean USD per query "
        "in the training data."
        + (
            " This model also has LLM x dataset offsets: theta is then only the part of an "
            "LLM's ability shared across datasets, and the abilities per dataset below are "
            "the numbers to read."
            if (v["by_ds"]["offset"].abs().max() > 0)
            else ""
        )
    )
    d.table(ab)
    d.figure("abilities.png", "Forest plot of LLM abilities")
    by_ds = v["by_ds"]
    if by_ds["dataset"].nunique() > 1:
        d.heading("Abilities per dataset", 3)
        d.para(
            "The logit each LLM adds on an average query of each dataset: its ability times "
            "the dataset's mean discrimination"
            + (
                ", plus its LLM x dataset offset (offsets and abilities trade off against "
                "each other, this sum is what the data pin down)"
                if by_ds["offset"].abs().max() > 0
                else ""
            )
            + ". Colours compare LLMs within a dataset; intervals in dataset_abilities.csv."
        )
        d.figure("dataset_abilities.png", "Ability of each LLM on each dataset")

    d.heading("Who beats whom")
    d.para(
        "P(row beats column): the posterior probability that the row LLM's expected "
        "accuracy over the training queries is higher than the column LLM's "
        f"({beat.attrs['n_draws']} draws; ties count half)."
    )
    d.table(beat.to_pandas().round(3).rename_axis(index="llm", columns=None).reset_index())
    d.figure("beat_probability.png", "Heat map of the probability that one LLM beats another")

    d.heading("Expected and observed accuracy")
    n_out = int((~acc["inside"]).sum()) if acc["pred_low"].notna().any() else None
    d.para(
        "Posterior predictive check on the training responses: expected is the posterior "
        "mean accuracy on the pairs each LLM answered (with its HDI), pred_low/pred_high "
        "the HDI of the accuracy of replicated responses."
        + (
            f" {n_out} of {len(acc)} observed accuracies fall outside their predictive interval."
            if n_out is not None
            else ""
        )
    )
    d.table(
        acc[acc["dataset"] == "all"]
        .drop(columns="dataset")
        .sort_values("expected", ascending=False)
    )
    if (acc["dataset"] != "all").any():
        d.para("Per dataset: accuracy.csv and the figure.", "note")
    d.figure("accuracy.png", "Expected against observed accuracy")
    d.para(
        f"Calibration of the posterior mean P(correct) on the training responses: expected "
        f"calibration error {cal.attrs['ece']:.3f} (in-sample)."
    )
    d.figure("calibration.png", "Calibration plot")

    d.heading("Queries: difficulty and discrimination")
    d.para(
        "Difficulty b is in logits (the average LLM answers correctly with probability "
        "p_average = sigmoid(−b)); share_correct is the observed mean score over the "
        "n responses."
        + (
            " Texts are shortened, with each dataset's shared few-shot prefix and suffix cut "
            "(…); queries.csv holds the same shortened texts."
            if has_text
            else " The router was loaded from disk without its query texts: ids only "
            "(pass the training data, --data DATA, to show the texts)."
        )
    )
    d.figure("query_parameters.png", "Distributions of query difficulty and discrimination")
    d.heading("Hardest queries", 3)
    d.table(_query_rows(v["hardest"], has_text))
    d.heading("Easiest queries", 3)
    d.table(_query_rows(v["easiest"], has_text))
    d.heading("Item characteristic curves", 3)
    d.para(
        "P(correct) against ability for example queries (10%, 50%, 90% difficulty "
        "quantiles and the most discriminating one): thin lines are posterior draws, dots "
        "the LLMs at their posterior mean ability and their observed score."
    )
    d.figure("icc.png", "Item characteristic curves")

    d.heading("What the skills mean")
    if multi:
        d.para(
            "Average loading (posterior mean discrimination) of each dataset's queries on "
            "each skill, and each skill's share of it; then the queries with the largest "
            "share on each skill."
        )
        d.table(v["loads"].reset_index())
        d.figure("skills.png", "Share of discrimination per skill and dataset")
        tops = v["tops"] if has_text else v["tops"].drop(columns="display")
        d.table(tops)
    else:
        d.para("This model has a single skill (K = 1): nothing to interpret.")

    d.heading("Convergence")
    d.para(f"{v['verdict']}", "verdict")
    d.para(
        "Worst R-hat and smallest effective sample sizes per variable (R-hat needs "
        "two or more chains: it is empty for ADVI's single set of draws)."
    )
    d.table(v["conv"].reset_index())
    d.figure("convergence.png", "Convergence diagnostics")

    d.heading("Files")
    d.para(
        "Tables as CSV: "
        + ", ".join(v["tables"])
        + ". Figures: "
        + ", ".join(v["figures"])
        + f". Built by irt-bayes in {time.perf_counter() - v['t0']:.1f} s."
    )
    return d
