"""The report's figures: one function per figure, each a :class:`matplotlib.figure.Figure`.

Every ``plot_*`` takes a fitted router, or the table of its :mod:`irt_bayes.report.summaries`
function so that a figure and its table come from the same draws. Figures are built with
matplotlib's object-oriented API on the Agg canvas: nothing here touches pyplot's global
state or needs a display, and a notebook still shows a returned figure inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from irt_bayes.components import NUMPY, has
from irt_bayes.components.likelihood import response
from irt_bayes.errors import IrtBayesError
from irt_bayes.predict import sample_index
from irt_bayes.report.posterior import (
    DataLike,
    _ability_grid,
    _as_router,
    _free_discrimination,
    _items,
    _observations,
    _query_datasets,
    _query_ids,
    _quiet_arviz,
    _skills,
)
from irt_bayes.report.summaries import (
    accuracy_check,
    beat_probability,
    calibration_table,
    convergence_verdict,
    dataset_ability_table,
    query_table,
    skill_loadings,
)
from irt_bayes.report.texts import _display_texts, _query_texts, _wrap
from irt_bayes.stats import HDI_PROB

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter

FIGURE_DPI = 100
# boxplot's ``vert`` is deprecated from matplotlib 3.10, which added ``orientation``.
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)
_BLUE, _ORANGE, _GREY, _RED = "#1f5f99", "#d9822b", "#9a9a9a", "#c0392b"


def _new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas; sizes are whole half-inches so pixel sizes are exact."""
    width, height = np.ceil(2 * width) / 2, np.ceil(2 * height) / 2
    return Figure(figsize=(width, height), dpi=FIGURE_DPI, layout="constrained")


def _label_cells(ax: Axes, vals: np.ndarray, dark: np.ndarray, fontsize: float) -> None:
    """Write each heat-map cell's value in it (two decimals), white where ``dark``.

    Cells with a NaN value (the diagonal of the beat matrix) stay blank.
    """
    for i, j in zip(*np.nonzero(np.isfinite(vals)), strict=True):
        ax.text(
            j,
            i,
            f"{vals[i, j]:.2f}",
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if dark[i, j] else "black",
        )


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
    _label_cells(ax, vals, dark=np.abs(centred) > 0.6 * lim, fontsize=9)
    ax.set_xticks(range(len(datasets)), datasets, rotation=20, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(llms)), llms)
    ax.set_title("Ability on each dataset (logits, posterior mean)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="vs the dataset's average LLM")
    return fig


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
        _label_cells(ax, vals, dark=np.abs(vals - 0.5) > 0.3, fontsize=8)  # NaN diagonal: blank
    ax.set_xticks(range(n), names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("opponent")
    ax.set_title("P(row LLM has the higher expected accuracy)", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8, label="P(row beats column)")
    return fig


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
    items = _items(router)
    b_all = items["b"]
    if query_ids is None:
        bm = b_all.mean(axis=0)
        order = np.argsort(bm)
        picks = [int(order[round(f * (len(order) - 1))]) for f in (0.1, 0.5, 0.9)]
        if _free_discrimination(router):
            a_m = np.linalg.norm(items["a"], axis=2)
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
    sidx = sample_index(router.idata_, n_draws)
    has_a = _free_discrimination(router)
    a_all = items["a"] if has_a else None
    texts = _query_texts(router, data)
    ds = _query_datasets(router)
    disp = None if texts is None else _display_texts(texts, ds)
    o = _observations(router)
    # Every term but the difficulty, per (draw, query, LLM): where each LLM sits on a
    # query, straight from the model's linear predictor (offsets and slopes included).
    ability = np.concatenate(
        [ab[:, picks, :] for ab, _ in _ability_grid(router, sample_index(router.idata_, None))]
    )
    guess = items.get("c")
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
    _label_cells(ax, vals, dark=vals > 0.6, fontsize=9)
    ax.set_xticks(range(len(skills)), skills)
    ax.set_yticks(range(len(datasets)), datasets)
    ax.set_xlabel("skill")
    ax.set_title("Share of discrimination per skill", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


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
