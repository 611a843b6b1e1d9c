"""Posterior predictive check on queries a fit did not see: predicted vs observed accuracy.

A router is only as good as its predictive on *new* queries. After every fit,
:class:`~irt_bayes.router.IRTRouter` holds out a share of the training queries, fits
the same model to the rest, predicts the held-out queries from their text alone (as it
will route) and compares, for every LLM and for every (dataset, LLM) cell, the mean
predicted P(correct) with the observed accuracy. :func:`predictive_check` does the
comparison; :meth:`PredictiveCheck.verdict` says it in one line.

A gap is *flagged* when it is larger than the tolerance (0.03 by default) **and**
beyond its sampling error: its z-score exceeds the Bonferroni bound for a 5% family-wise
error over all the cells checked. The standard error adds the sampling error of an
observed mean if the predictions were right (``sqrt(sum p (1 - p)) / n`` over the
held-out responses) and the posterior uncertainty of the predicted mean (its spread over
the predictive draws). With a few hundred held-out queries a gap of 0.03 is within
sampling noise, and a check that cries wolf on every fit would be ignored. A
(dataset, LLM) cell needs ``MIN_CELL`` responses to be flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "TOLERANCE",
    "PredictiveCheck",
    "PredictiveCheckWarning",
    "check_groups",
    "pointwise_log_loss",
    "predictive_check",
    "weighted_draw_sums",
]

TOLERANCE = 0.03
# A (dataset, LLM) cell is flagged only with this many held-out responses: smaller cells
# are a handful of queries whose difficulty varies more than any sampling error says.
MIN_CELL = 30
_COLUMNS = ["dataset", "llm", "n", "observed", "predicted", "gap", "se", "flagged"]


class PredictiveCheckWarning(UserWarning):
    """Some LLM's mean predicted P(correct) is off its held-out accuracy."""


@dataclass(frozen=True)
class PredictiveCheck:
    """Predicted against observed mean accuracy per LLM and per (dataset, LLM).

    Attributes
    ----------
    table : pandas.DataFrame
        ``dataset`` (``"all"`` for the per-LLM rows), ``llm``, ``n`` (responses),
        ``observed``, ``predicted`` (mean P(correct)), ``gap`` (predicted - observed),
        ``se`` (its standard error) and ``flagged``.
    n_queries : int
        Queries the check was made on.
    log_loss : float
        Mean log loss of the predictions on those queries' responses.
    tolerance : float
        Gaps above it (and above 2 se) are flagged.
    what : str
        Where the queries came from, for the verdict (``"held-out training queries"``).
    """

    table: pd.DataFrame
    n_queries: int
    log_loss: float
    tolerance: float = TOLERANCE
    what: str = "held-out training queries"

    @property
    def per_llm(self) -> pd.DataFrame:
        """The per-LLM rows, indexed by LLM."""
        return self.table[self.table["dataset"] == "all"].set_index("llm")

    @property
    def flagged(self) -> pd.DataFrame:
        """Rows whose gap exceeds the tolerance beyond sampling error."""
        return self.table[self.table["flagged"]]

    @property
    def ok(self) -> bool:
        """No LLM is flagged, overall or on any dataset."""
        return not bool(self.table["flagged"].any())

    @property
    def max_gap(self) -> float:
        """Largest absolute per-LLM gap."""
        return float(self.per_llm["gap"].abs().max())

    def verdict(self) -> str:
        """One line saying whether each LLM's predicted accuracy is where it was observed."""
        head = f"predictive check on {self.n_queries} {self.what}"
        per = self.per_llm
        worst = per["gap"].abs().idxmax()
        if self.ok:
            gap, se = per.loc[worst, "gap"], per.loc[worst, "se"]
            z = f", {abs(gap) / se:.1f} standard errors" if se > 0 and np.isfinite(se) else ""
            return (
                f"{head}: ok, every LLM's mean P(correct) within {self.tolerance:.2f} of its "
                f"accuracy or within sampling error (largest gap {gap:+.3f}, {worst}{z}); "
                f"log loss {self.log_loss:.4f}"
            )
        bad = self.flagged.sort_values("gap", key=np.abs, ascending=False)
        parts = [
            f"{r.llm}{'' if r.dataset == 'all' else ' on ' + r.dataset} predicted "
            f"{r.predicted:.2f}, observed {r.observed:.2f}"
            for r in bad.head(3).itertuples()
        ]
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return (
            f"{head}: WARNING, {len(bad)} off by more than {self.tolerance:.2f} beyond "
            f"sampling error: " + "; ".join(parts) + more
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for router.json)."""
        return {
            "n_queries": int(self.n_queries),
            "log_loss": float(self.log_loss),
            "tolerance": float(self.tolerance),
            "what": self.what,
            "table": {c: self.table[c].tolist() for c in _COLUMNS},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PredictiveCheck:
        """Inverse of :meth:`to_dict`."""
        table = pd.DataFrame({c: raw["table"][c] for c in _COLUMNS})
        for c in ("observed", "predicted", "gap", "se"):
            table[c] = pd.to_numeric(table[c], errors="coerce").fillna(
                np.inf if c == "se" else np.nan
            )
        table["flagged"] = table["flagged"].astype(bool)
        return cls(
            table,
            int(raw["n_queries"]),
            float(raw["log_loss"]),
            float(raw["tolerance"]),
            str(raw.get("what", "held-out training queries")),
        )


def pointwise_log_loss(p: np.ndarray, score: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(n, J) weighted log loss of each pair: 0 where ``weight`` is 0 (missing).

    ``p`` is clipped to [1e-9, 1 - 1e-9]; a fractional score counts as that share of a
    correct answer (the fractional-logit loss).
    """
    s = np.where(weight > 0, score, 0.0)
    pc = np.clip(p, 1e-9, 1 - 1e-9)
    return -weight * (s * np.log(pc) + (1 - s) * np.log1p(-pc))


def predictive_check(
    p: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray,
    llms: list[str],
    datasets: np.ndarray | None = None,
    *,
    tolerance: float = TOLERANCE,
    what: str = "held-out training queries",
    draw_sums: np.ndarray | None = None,
) -> PredictiveCheck:
    """Compare mean predicted P(correct) with observed accuracy, per LLM and dataset.

    Parameters
    ----------
    p : numpy.ndarray
        (S, n, J) predictive draws of P(correct), or (n, J) point predictions (the
        posterior mean when ``draw_sums`` is given).
    score : numpy.ndarray
        (n, J) observed scores in [0, 1], anything where missing.
    weight : numpy.ndarray
        (n, J) 0 where missing, 1 (or trials) where observed.
    llms : list of str
        Column names.
    datasets : numpy.ndarray, optional
        (n,) true dataset of each query, for the per-dataset rows.
    tolerance : float, default 0.03
    what : str
        Description of the queries for the verdict.
    draw_sums : numpy.ndarray, optional
        (G, S, J) :func:`weighted_draw_sums` of the draws, accumulated block by block,
        for the posterior uncertainty of each group's predicted mean when ``p`` is the
        (n, J) posterior mean (the draws need not be held at once).

    Returns
    -------
    PredictiveCheck

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    >>> chk = predictive_check(np.full((3, 2), 0.5), y, np.ones((3, 2)), ["a", "b"])
    >>> chk.per_llm["gap"].round(3).tolist()
    [-0.167, 0.167]
    """
    from scipy.stats import norm

    draws = p if p.ndim == 3 else p[None]
    pm_ = draws.mean(axis=0)
    if draw_sums is None and draws.shape[0] > 1:
        draw_sums = weighted_draw_sums(draws, weight, check_groups(len(pm_), datasets))
    s = np.where(weight > 0, score, 0.0)
    log_loss = float(pointwise_log_loss(pm_, score, weight).sum() / weight.sum())
    groups = check_groups(len(pm_), datasets)
    rows = []
    for g, (name, sel) in enumerate(groups):
        for j, m in enumerate(llms):
            w = weight[sel, j]
            if w.sum() <= 0:
                continue
            pj, total = pm_[sel, j], w.sum()
            # sampling error of the observed mean if the predictions were right, plus the
            # posterior uncertainty of the predicted mean
            var = (w * pj * (1 - pj)).sum() / total**2
            if draw_sums is not None:
                var += float((draw_sums[g, :, j] / total).var())
            rows.append(
                {
                    "dataset": name,
                    "llm": m,
                    "n": int((w > 0).sum()),
                    "observed": float((w * s[sel, j]).sum() / total),
                    "predicted": float((w * pj).sum() / total),
                    "se": float(np.sqrt(var)),
                }
            )
    table = pd.DataFrame(rows)
    table["gap"] = table["predicted"] - table["observed"]
    z_crit = float(norm.isf(0.025 / max(len(table), 1)))
    big = table["gap"].abs() > tolerance
    beyond = table["gap"].abs() > z_crit * table["se"]
    enough = (table["dataset"] == "all") | (table["n"] >= MIN_CELL)
    table["flagged"] = big & beyond & enough
    return PredictiveCheck(table[_COLUMNS], int(len(pm_)), log_loss, tolerance, what)


def check_groups(n: int, datasets: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """The query groups of the check: ``("all", every query)`` and one per dataset."""
    groups = [("all", np.ones(n, dtype=bool))]
    if datasets is not None:
        groups += [(str(d), np.asarray(datasets) == d) for d in pd.unique(datasets)]
    return groups


def weighted_draw_sums(
    p: np.ndarray, weight: np.ndarray, groups: list[tuple[str, np.ndarray]]
) -> np.ndarray:
    """(G, S, J) per-draw sums of ``weight * p`` over each group's queries.

    Sums over disjoint sets of queries add up, so blocks of queries can be summed one at
    a time (with the matching rows of ``weight`` and of each group's mask).

    Parameters
    ----------
    p : numpy.ndarray
        (S, n, J) predictive draws.
    weight : numpy.ndarray
        (n, J) 0 where missing, 1 (or trials) where observed.
    groups : list
        From :func:`check_groups`.
    """
    out = np.empty((len(groups), p.shape[0], p.shape[2]))
    for g, (_, sel) in enumerate(groups):
        # no (S, n, J) temporary: the mask zeroes the weights of other groups' queries
        np.einsum("sij,ij->sj", p, weight * sel[:, None], out=out[g])
    return out
