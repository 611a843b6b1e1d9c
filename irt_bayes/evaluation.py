"""Evaluation of routers on held-out responses: cost-accuracy sweeps and calibration.

Every router is reduced to a score matrix (n_queries, n_llms) — its predicted
P(correct) — and routed by ``argmax_j score_ij - lam * cost_ij`` for a sweep of
``lam``; each ``lam`` gives a point (mean cost, mean accuracy) measured on the true
outcomes. Only LLMs with an observed outcome for a query can be chosen for it.

By default :func:`evaluate` keeps only the queries that every LLM answered, so that
the routers and each single LLM are scored on the same queries: otherwise a single
LLM is scored on the queries it answered while a router is charged for the rest.

Metrics (costs in USD per query, accuracy = mean score): ``auc`` (RouterBench's AIQ),
``apgr`` and ``cpt50``/``cpt80`` (RouteLLM's), ``match_cost_share``, ``max_accuracy``,
``log_loss``, ``brier``, ``ece``; each is defined once, in
:data:`irt_bayes.glossary.COLUMNS` (shown by ``irt-bayes evaluate --help`` and in the
README, and written under the table in ``metrics.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from irt_bayes import glossary
from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError
from irt_bayes.stats import expected_calibration_error

__all__ = [
    "EvalSet",
    "sweep",
    "hull",
    "sweep_metrics",
    "calibration",
    "single_llm_points",
    "random_point",
    "evaluate",
    "evaluate_router",
    "display_table",
    "pareto_plot",
    "lambda_grid",
]


@dataclass(frozen=True)
class EvalSet:
    """Held-out outcomes and costs aligned to a list of LLMs.

    Attributes
    ----------
    y : numpy.ndarray
        (n, J) scores, NaN where the pair is missing.
    cost : numpy.ndarray
        (n, J) USD, NaN where missing.
    llms, query_ids : list of str
    datasets : numpy.ndarray or None
        (n,) dataset label per query.
    source : str or None
        Where the outcomes came from, for error messages.
    """

    y: np.ndarray
    cost: np.ndarray
    llms: list[str]
    query_ids: list[str]
    datasets: np.ndarray | None = None
    source: str | None = None

    @classmethod
    def from_data(
        cls,
        data: ResponseData,
        llms: list[str] | None = None,
        prices: Mapping[str, float] | None = None,
    ) -> EvalSet:
        """Align test responses to ``llms`` (default: the data's own order).

        ``prices`` (USD per query per LLM) replaces per-response costs, e.g. for data
        without a ``cost`` column.
        """
        llms = list(llms) if llms is not None else data.llms
        unknown = [m for m in data.llms if m not in llms]
        if unknown:
            raise DataError(f"LLM {unknown[0]!r} is not known to the router", source=data.source)
        ds = data.to_xarray().reindex(llm=llms)
        y = ds["score"].to_numpy()
        if prices is not None:
            cost = np.broadcast_to(np.array([prices[m] for m in llms], float), y.shape).copy()
        elif "cost" in ds:
            cost = ds["cost"].to_numpy()
        else:
            raise DataError("has no 'cost' column; give prices", source=data.source)
        cost = np.where(np.isnan(y), np.nan, cost)
        datasets = ds["dataset"].to_numpy() if "dataset" in ds.coords else None
        return cls(
            y=y,
            cost=cost,
            llms=llms,
            query_ids=list(ds["query"].to_numpy()),
            datasets=datasets,
            source=data.source,
        )

    @property
    def available(self) -> np.ndarray:
        """(n, J) mask of pairs with an observed outcome."""
        return ~np.isnan(self.y)

    @property
    def complete(self) -> np.ndarray:
        """(n,) mask of the queries with an outcome for every LLM the test data covers.

        An LLM without any outcome in the test data is left out of the condition: it
        cannot be chosen, so it does not make a query incomplete.
        """
        avail = self.available
        return avail[:, avail.any(axis=0)].all(axis=1)

    def subset(self, rows: np.ndarray) -> EvalSet:
        """The queries selected by the boolean mask or index array ``rows``."""
        idx = np.arange(self.y.shape[0])[rows]
        return EvalSet(
            y=self.y[idx],
            cost=self.cost[idx],
            llms=self.llms,
            query_ids=[self.query_ids[i] for i in idx],
            datasets=None if self.datasets is None else self.datasets[idx],
            source=self.source,
        )


def lambda_grid(cost: np.ndarray, n: int = 400) -> np.ndarray:
    """Willingness-to-pay values spanning 'always the most accurate' to 'always cheapest'."""
    c = cost[np.isfinite(cost)]
    diffs = np.abs(np.diff(np.sort(np.unique(c))))
    small = diffs[diffs > 0].min() if (diffs > 0).any() else 1e-6
    hi = 1e2 / max(small, 1e-12)
    lo = 1e-3 / max(float(c.max()), 1e-12)
    return np.concatenate([[0.0], np.geomspace(lo, hi, n)])


def sweep(scores: np.ndarray, test: EvalSet, lambdas: np.ndarray | None = None) -> pd.DataFrame:
    """Route by ``argmax score - lam * cost`` for every ``lam``; measure the outcomes.

    Parameters
    ----------
    scores : numpy.ndarray
        (n, J) predicted P(correct) (or any accuracy score) in ``test.llms`` order.
    test : EvalSet
    lambdas : numpy.ndarray, optional
        Default :func:`lambda_grid`.

    Returns
    -------
    pandas.DataFrame
        ``lam, cost, accuracy`` per sweep value.
    """
    if scores.shape != test.y.shape:
        raise DataError(f"scores have shape {scores.shape}, the test set {test.y.shape}")
    lambdas = lambda_grid(test.cost) if lambdas is None else lambdas
    avail = test.available
    cost = np.where(avail, test.cost, 0.0)
    y = np.where(avail, test.y, 0.0)
    rows = np.arange(y.shape[0])
    out = []
    for lam in lambdas:
        u = np.where(avail, scores - lam * cost, -np.inf)
        ch = u.argmax(axis=1)
        out.append((lam, cost[rows, ch].mean(), y[rows, ch].mean()))
    return pd.DataFrame(out, columns=["lam", "cost", "accuracy"])


def hull(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing upper concave hull of (cost, accuracy) points.

    Mixing two routing settings at random reaches any point on the segment between
    them, so the concave hull is achievable; beyond the most accurate point the curve
    stays flat.
    """
    pts = points[["cost", "accuracy"]].drop_duplicates().sort_values(["cost", "accuracy"])
    xs, ys = pts["cost"].to_numpy(), pts["accuracy"].to_numpy()
    upper: list[tuple[float, float]] = []
    for x, y in zip(xs, ys, strict=True):
        while len(upper) >= 2:
            (x1, y1), (x2, y2) = upper[-2], upper[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:
                upper.pop()
            else:
                break
        upper.append((x, y))
    hx = np.array([p[0] for p in upper])
    hy = np.maximum.accumulate(np.array([p[1] for p in upper]))
    return hx, hy


def _hull_at(hx: np.ndarray, hy: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.interp(c, hx, hy, left=hy[0], right=hy[-1])


def single_llm_points(test: EvalSet) -> pd.DataFrame:
    """Accuracy and mean cost of always choosing each LLM (on the pairs it answered)."""
    n = test.available.sum(axis=0)
    # an LLM absent from the test data gets NaN, without numpy's empty-slice warning
    acc = np.where(n > 0, np.nansum(test.y, axis=0) / np.maximum(n, 1), np.nan)
    cost = np.where(n > 0, np.nansum(test.cost, axis=0) / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"llm": test.llms, "cost": cost, "accuracy": acc})


def random_point(test: EvalSet) -> tuple[float, float]:
    """Expected (cost, accuracy) of choosing uniformly among the available LLMs."""
    avail = test.available
    w = avail / avail.sum(axis=1, keepdims=True)
    return (
        float(np.nansum(w * np.nan_to_num(test.cost), axis=1).mean()),
        float(np.nansum(w * np.nan_to_num(test.y), axis=1).mean()),
    )


def sweep_metrics(points: pd.DataFrame, singles: pd.DataFrame) -> dict[str, float]:
    """AUC (AIQ), APGR, CPT(50%), CPT(80%), match-cost share and max accuracy."""
    hx, hy = hull(points)
    c_lo, c_hi = float(singles["cost"].min()), float(singles["cost"].max())
    if c_hi > c_lo:
        grid = np.linspace(c_lo, c_hi, 2001)
        auc = float(np.trapezoid(_hull_at(hx, hy, grid), grid) / (c_hi - c_lo))
    else:  # every LLM costs the same: the range is a point
        auc = float(_hull_at(hx, hy, np.array([c_lo]))[0])
    weak = singles.loc[singles["cost"].idxmin()]
    strong = singles.loc[singles["accuracy"].idxmax()]
    gap = float(strong.accuracy - weak.accuracy)
    out = {"auc": auc, "max_accuracy": float(points["accuracy"].max())}
    if gap > 0 and strong.cost > weak.cost:
        g = np.linspace(weak.cost, strong.cost, 2001)
        pgr = (_hull_at(hx, hy, g) - weak.accuracy) / gap
        out["apgr"] = float(np.trapezoid(np.clip(pgr, None, None), g) / (strong.cost - weak.cost))
        for x in (0.5, 0.8):
            hit = np.flatnonzero(pgr >= x)
            out[f"cpt{int(x * 100)}"] = (
                float((g[hit[0]] - weak.cost) / (strong.cost - weak.cost) * 100)
                if hit.size
                else float("nan")
            )
    else:
        out.update(apgr=float("nan"), cpt50=float("nan"), cpt80=float("nan"))
    out["match_cost_share"] = _hull_cost_at(hx, hy, float(strong.accuracy)) / float(strong.cost)
    return out


def _hull_cost_at(hx: np.ndarray, hy: np.ndarray, accuracy: float) -> float:
    """Lowest cost at which the hull reaches ``accuracy`` (NaN when it never does)."""
    hit = np.flatnonzero(hy >= accuracy - 1e-12)
    if not hit.size:
        return float("nan")
    k = int(hit[0])
    if k == 0:
        return float(hx[0])
    # on the segment before it, by mixing the two settings at its ends
    return float(np.interp(accuracy, hy[k - 1 : k + 1], hx[k - 1 : k + 1]))


def calibration(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Log loss, Brier score and expected calibration error over observed pairs.

    The ECE is :func:`irt_bayes.stats.expected_calibration_error` (``bins`` equal-width
    bins, every pair weighted equally), the one ``irt-bayes report`` gives in-sample.
    """
    m = ~np.isnan(y)
    y = y[m]
    ece = expected_calibration_error(p[m], y, bins)
    p = np.clip(p[m], 1e-6, 1 - 1e-6)  # for the logarithms
    ll = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    brier = float(np.mean((p - y) ** 2))
    return {"log_loss": ll, "brier": brier, "ece": ece}


def evaluate(
    predictions: Mapping[str, np.ndarray],
    test: EvalSet,
    lambdas: np.ndarray | None = None,
    *,
    complete_cases: bool = True,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Sweep and score every router, with single LLMs, random and oracle for reference.

    Parameters
    ----------
    predictions : mapping
        Router name to (n, J) predicted P(correct) in ``test.llms`` order.
    test : EvalSet
    lambdas : numpy.ndarray, optional
    complete_cases : bool, default True
        Score everything on the queries that every LLM answered (see the module
        docstring). With False, every query counts: routers choose among the LLMs
        that answered it and each single LLM is scored on the queries it answered.

    Returns
    -------
    table : pandas.DataFrame
        One row per router (and ``oracle``, ``random``, and each single LLM), columns
        ``auc, apgr, cpt50, cpt80, match_cost_share, max_accuracy, log_loss, brier,
        ece`` (calibration only for routers with probabilities).
        ``table.attrs`` holds ``n_queries`` (scored) and ``n_dropped`` (incomplete).
    points : dict
        Router name to its sweep points (``lam, cost, accuracy``).

    Raises
    ------
    DataError
        With ``complete_cases`` when no query has an outcome for every LLM.
    """
    n_all = test.y.shape[0]
    if complete_cases:
        keep = test.complete
        if not keep.any():
            raise DataError(
                "no test query has an outcome for every LLM the test data covers; "
                "evaluate with complete_cases=False (CLI: --all-queries)",
                source=test.source,
            )
        test = test.subset(keep)
        predictions = {k: np.asarray(v)[keep] for k, v in predictions.items()}
    singles = single_llm_points(test)
    lambdas = lambda_grid(test.cost) if lambdas is None else lambdas
    rows, points = {}, {}
    oracle = sweep(np.nan_to_num(test.y), test, lambdas)
    points["oracle"] = oracle
    rows["oracle"] = sweep_metrics(oracle, singles)
    for name, p in predictions.items():
        pts = sweep(p, test, lambdas)
        points[name] = pts
        rows[name] = {**sweep_metrics(pts, singles), **calibration(p, test.y)}
    rc, ra = random_point(test)
    rows["random"] = {"auc": ra, "max_accuracy": ra}
    for _, s in singles.iterrows():
        rows[f"single: {s.llm}"] = {
            "auc": float(s.accuracy),
            "max_accuracy": float(s.accuracy),
            "mean_cost": float(s.cost),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.attrs.update(n_queries=test.y.shape[0], n_dropped=n_all - test.y.shape[0])
    cols = [
        "auc",
        "apgr",
        "cpt50",
        "cpt80",
        "match_cost_share",
        "max_accuracy",
        "log_loss",
        "brier",
        "ece",
        "mean_cost",
    ]
    out = table.reindex(columns=[c for c in cols if c in table.columns])
    out.attrs.update(table.attrs)
    return out, points


def display_table(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """:func:`evaluate`'s table as text, with ``never`` and ``-`` for its empty cells.

    ``never``: a router's curve never reaches that target (CPT, match cost); ``-``: the
    metric is not defined for the row (see :data:`irt_bayes.glossary.COLUMNS`).

    Examples
    --------
    >>> t = pd.DataFrame({"auc": [0.8, 0.7], "apgr": [0.9, np.nan], "cpt80": [np.nan, np.nan]},
    ...                  index=["router", "single: a"])
    >>> display_table(t, 2).to_dict("index")["router"]
    {'auc': '0.80', 'apgr': '0.90', 'cpt80': 'never'}
    """
    targets = [c for c in ("cpt50", "cpt80", "match_cost_share") if c in table]
    curve = table["apgr"].notna() if "apgr" in table else pd.Series(False, index=table.index)
    out = table.map(lambda v: "-" if pd.isna(v) else f"{v:.{digits}f}")
    for c in targets:
        out.loc[curve & table[c].isna(), c] = "never"
    return out


def pareto_plot(
    points: Mapping[str, pd.DataFrame],
    singles: pd.DataFrame,
    *,
    title: str = "Accuracy vs cost",
    log_cost: bool = True,
):
    """Figure with each router's hull and every single LLM as a labelled point.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.5), constrained_layout=True)
    for name, pts in points.items():
        hx, hy = hull(pts)
        style = {"ls": "--", "color": "0.5"} if name == "oracle" else {}
        ax.step(hx, hy, where="post", label=name, lw=1.8, **style)
    ax.scatter(singles["cost"], singles["accuracy"], color="black", zorder=5, s=25)
    for _, s in singles.iterrows():
        ax.annotate(
            str(s.llm).split("/")[-1],
            (s.cost, s.accuracy),
            fontsize=8,
            xytext=(4, -10),
            textcoords="offset points",
        )
    if log_cost:
        ax.set_xscale("log")
    ax.set_xlabel("mean cost per query (USD" + (", log scale)" if log_cost else ")"))
    ax.set_ylabel("accuracy on test queries")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def _router_scores(
    router,
    test: ResponseData,
    weight: np.ndarray,
    datasets: np.ndarray | None,
    warmup: str | None,
    use_labels: bool,
    policy: str,
    quantile: float,
    embeddings: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean, the policy's score and the check's draw sums, block by block.

    The (draw, query, LLM) predictive of the test queries is never held whole: each
    block that fits the router's ``memory_budget`` is reduced to its (query, LLM)
    summaries and to its share of :func:`~irt_bayes.checks.weighted_draw_sums`.

    Returns
    -------
    mean, score : numpy.ndarray
        (n, J) posterior mean and the swept accuracy term (the mean, or the lower
        ``quantile`` for ``risk-averse``), in ``test.queries`` and ``router.llms_`` order.
    sums : numpy.ndarray
        (G, S, J) weighted draw sums of the check's groups (held throughout, like the
        results: G x S x J x 8 bytes).
    """
    from irt_bayes.checks import check_groups, weighted_draw_sums
    from irt_bayes.predict import SUMMARY_CELL_BYTES, summarise

    pred = router.predictive(
        test.queries, warmup=warmup, use_labels=use_labels, embeddings=embeddings
    )
    n, J, S = pred.n_queries, pred.n_llms, pred.n_draws
    groups = check_groups(n, datasets)
    mean, score = np.empty((n, J)), np.empty((n, J))
    sums = np.zeros((len(groups), S, J))
    # per LLM of a block, its (G, S) share of the sums: at most that much per cell
    plan = pred.plan(router.memory_budget, cell=(SUMMARY_CELL_BYTES + 8 * len(groups)) * S)
    qs = [quantile] if policy == "risk-averse" else []
    for rows, llms, p in pred.blocks(plan):
        m, _, q = summarise(p, qs) if qs else (p.mean(axis=0), None, None)
        mean[rows, llms] = m
        score[rows, llms] = m if q is None else q[0]
        block_groups = [(g, sel[rows]) for g, sel in groups]
        sums[:, :, llms] += weighted_draw_sums(p, weight[rows, llms], block_groups)
        del p  # before the next block is made
    return mean, score, sums


def evaluate_router(
    router,
    test: ResponseData,
    out_dir: str | None = None,
    *,
    warmup: str | None = None,
    use_labels: bool = False,
    policy: str = "expected-utility",
    quantile: float = 0.1,
    complete_cases: bool = True,
    force: bool = False,
    embeddings: Any = None,
) -> pd.DataFrame:
    """Evaluate a fitted :class:`~irt_bayes.router.IRTRouter` on held-out responses.

    Parameters
    ----------
    router : IRTRouter
        Fitted router; its training prices stand in when ``test`` has no costs.
    test : ResponseData
        Held-out responses of the router's LLMs.
    out_dir : str, optional
        Directory to write ``metrics.csv``, ``metrics.md``, ``points.csv`` and
        ``pareto.png`` into (replaced atomically when it holds an earlier evaluation,
        refused when it holds anything else; see :mod:`irt_bayes.outputs`).
    warmup : str, optional
        Warm-up passed to :meth:`IRTRouter.predict_proba`.
    use_labels : bool, default False
        Give the router the test queries' ``dataset`` labels. By default it routes
        from the text alone, as with real traffic; a table made with labels is not
        comparable with published routers.
    policy : {"expected-utility", "risk-averse"}
        Accuracy term swept: the posterior mean, or the lower ``quantile``.
    quantile : float
        Quantile of the risk-averse sweep.
    complete_cases : bool, default True
        Score only the queries every LLM answered (see :func:`evaluate`).
    force : bool, default False
        Replace an existing ``out_dir`` that is not an irt-bayes evaluation.
    embeddings : numpy.ndarray or EmbeddingTable, optional
        Precomputed embeddings of the test queries (see :meth:`IRTRouter.predictive`).

    Returns
    -------
    pandas.DataFrame
        The table of :func:`evaluate`; ``attrs["check"]`` holds the
        :class:`~irt_bayes.checks.PredictiveCheck` of predicted against observed accuracy
        per LLM and per dataset on the test queries (also written as ``check.csv``).
    """
    from irt_bayes.checks import predictive_check
    from irt_bayes.errors import IrtBayesError
    from irt_bayes.outputs import atomic_directory, check_output_dir

    if policy not in ("expected-utility", "risk-averse"):
        raise IrtBayesError(f"evaluate sweeps 'expected-utility' or 'risk-averse', not {policy!r}")
    if out_dir is not None:
        check_output_dir(out_dir, "evaluation", force=force)
    prices = None if test.has_cost else dict(router.prices_)
    evalset = EvalSet.from_data(test, router.llms_, prices=prices)
    obs = ~np.isnan(evalset.y)
    mean, score, sums = _router_scores(
        router,
        test,
        obs.astype(float),
        evalset.datasets,
        warmup,
        use_labels,
        policy,
        quantile,
        embeddings,
    )
    check = predictive_check(
        mean,
        np.nan_to_num(evalset.y),
        obs.astype(float),
        router.llms_,
        evalset.datasets,
        what="test queries",
        draw_sums=sums,
    )
    name = f"irt-bayes {router.spec_.name}" + (
        f" ({policy})" if policy != "expected-utility" else ""
    )
    table, points = evaluate({name: score}, evalset, complete_cases=complete_cases)
    table.attrs["check"] = check
    if complete_cases:
        evalset = evalset.subset(evalset.complete)
    if out_dir is not None:
        with atomic_directory(out_dir, "evaluation", force=force) as tmp:
            table.to_csv(tmp / "metrics.csv", index_label="router")
            (tmp / "metrics.md").write_text(
                f"Scored on {table.attrs['n_queries']} test queries"
                + (
                    f" ({table.attrs['n_dropped']} left out: not every LLM answered them)"
                    if table.attrs["n_dropped"]
                    else ""
                )
                + ".\n\n"
                + display_table(table).to_markdown()
                + "\n\n"
                + glossary.markdown_table("evaluate")
            )
            pd.concat(dict(points), names=["router", "i"]).to_csv(tmp / "points.csv")
            check.table.to_csv(tmp / "check.csv", index=False)
            fig = pareto_plot(
                points, single_llm_points(evalset), title=f"{name} on {test.source}"[:120]
            )
            fig.savefig(tmp / "pareto.png", dpi=110)
    return table
