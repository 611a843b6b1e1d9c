"""Model comparison: fitted variants (1PL, 2PL, MIRT...) ranked by PSIS-LOO or WAIC."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from irt_bayes.errors import IrtBayesError
from irt_bayes.report.figures import _new_figure
from irt_bayes.report.posterior import _as_router, _observations, _query_ids, _quiet_arviz

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter


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
