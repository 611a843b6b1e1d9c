"""Held-out model choice (``model="auto"``) and the held-out check behind every fit.

The training queries are split once (stratified by dataset): a share (``holdout``,
20% by default) is held out, each candidate spec is fitted to the rest and predicts
the held-out queries from their text alone, as it will route. Among the candidates
whose predictive check (:mod:`irt_bayes.checks`) passes -- no LLM's mean predicted
P(correct) off its held-out accuracy beyond tolerance and sampling error -- the one
with the lowest held-out log loss is chosen (among all of them, with a warning, when
none passes) and refitted on all the training queries; its check is kept with the
router. The default (the first candidate, the 2PL) is kept, when its check passes,
unless the winner's log loss is lower by more than one standard error of the
difference (per-query paired; the one-standard-error rule): on RouterBench the
candidates differ by less than their noise and the bare minimum changed with the seed.
An explicit spec gets the same check, with itself as the only candidate.

Why the check is part of the choice: log loss alone can prefer a model whose marginal
predictions are off. On the position-bias simulation (LLMs that lean towards one answer
position) the 2PL's held-out log loss ties with mirt-2's while its mean P(correct) is
0.16 above an LLM's accuracy: a one-skill 2PL with a >= 0 cannot say that half the
queries favour one group of LLMs and half the other, gives those queries a ~ 0, and
its abilities then answer for the other half only.

Beside the candidates, the table reports the per-LLM training accuracy (per dataset,
mixed by the dataset classifier, when the data is labelled) as a reference: the
``llm-mean`` candidate is that reference as a Bayesian model (abilities and LLM x
dataset offsets, no per-query terms), so ``auto`` can always fall back to it.

How the candidates were chosen: see ``AUTO_CANDIDATES``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from irt_bayes.checks import (
    PredictiveCheck,
    pointwise_log_loss,
    predictive_check,
)
from irt_bayes.data import ResponseData
from irt_bayes.spec import ModelSpec, load_spec

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter

__all__ = [
    "AUTO_CANDIDATES",
    "CLUSTER_CANDIDATE",
    "SMALL_DATA_SPEC",
    "candidate_label",
    "choose_model",
    "holdout_split",
    "one_se_choice",
]

# Specs ``model="auto"`` compares by held-out log loss on the training queries, each
# with the router's ``domains``. How they were chosen (benchmarks/selection.py, 3-fold
# CV on the training files): the 2PL is best or within noise on RouterBench and the
# RouterDC set; mirt-2 and the 3PL win on response-style simulations (two answer habits,
# a near-chance task); llm-mean is the floor auto can always fall back to.
AUTO_CANDIDATES = ("2pl", "mirt-2", "3pl", "llm-mean")
# With dataset labels, auto also tries the first candidate on latent clusters alone:
# on the RouterDC training folds clusters beat labels (log loss 0.6376 vs 0.6418), on
# RouterBench they tie (0.5130 vs 0.5129), so the data decides.
CLUSTER_CANDIDATE = ("2pl", "clusters")
# Spec used by ``auto`` when there are too few training queries to hold any out.
SMALL_DATA_SPEC = "2pl"


def holdout_split(data: ResponseData, share: float, seed: int) -> tuple[list[str], list[str]]:
    """Query ids to fit on and to hold out, stratified by dataset when labelled."""
    q = data.queries
    rng = np.random.default_rng(seed)
    strata = q["dataset"].astype(str).to_numpy() if data.has_dataset else np.zeros(len(q))
    hold = np.zeros(len(q), dtype=bool)
    for s in pd.unique(strata):
        rows = np.flatnonzero(strata == s)
        k = int(round(share * len(rows)))
        if 0 < k < len(rows):
            hold[rng.choice(rows, k, replace=False)] = True
    ids = q["query_id"].to_numpy()
    return list(ids[~hold]), list(ids[hold])


def candidate_label(spec: str, domains: str, default: str) -> str:
    """How a (spec, domain mode) candidate is named in the selection table."""
    return spec if domains == default else f"{spec} ({domains})"


def _candidates(router: IRTRouter, data: ResponseData) -> list[tuple[str, str]]:
    """(spec, domains) pairs ``model="auto"`` compares on this data."""
    out = [(name, router.domains) for name in AUTO_CANDIDATES]
    if data.has_dataset and router.domains != CLUSTER_CANDIDATE[1]:
        out.insert(1, CLUSTER_CANDIDATE)
    return out


def _say(router: IRTRouter, msg: str) -> None:
    if router.progress:
        print(msg, file=sys.stderr, flush=True)


def _reference_log_loss(
    fit: ResponseData,
    hold: ResponseData,
    emb_fit: np.ndarray,
    emb_hold: np.ndarray,
    llms: list[str],
    score: np.ndarray,
    weight: np.ndarray,
    seed: int,
) -> float:
    """Held-out log loss of per-LLM (per-dataset, mixed by a classifier) training accuracy."""
    from irt_bayes.domains import DomainModel
    from irt_bayes.router import response_grid

    s_fit, w_fit = response_grid(fit, llms)
    if fit.has_dataset and fit.queries["dataset"].nunique() >= 2:
        dom, labels = DomainModel.fit(
            emb_fit, fit.queries["dataset"].astype(str).to_numpy(), seed=seed
        )
        onehot = (labels[:, None] == np.array(dom.names)[None, :]).astype(float)
        rates = (onehot.T @ (w_fit * s_fit) + 1.0) / (onehot.T @ w_fit + 2.0)  # (D, J)
        p = dom.predict_proba(emb_hold) @ rates
    else:
        p = np.broadcast_to(((w_fit * s_fit).sum(0) + 1) / (w_fit.sum(0) + 2), score.shape)
    pc = np.clip(p, 1e-9, 1 - 1e-9)
    ll = weight * (score * np.log(pc) + (1 - score) * np.log1p(-pc))
    return float(-ll.sum() / weight.sum())


def one_se_choice(table: pd.DataFrame, default: str) -> tuple[str, str]:
    """The candidate to fit by the one-standard-error rule, and the lowest-loss one.

    Parameters
    ----------
    table : pandas.DataFrame
        Indexed by candidate, with ``log_loss``, ``check`` (``"ok"`` when it passes),
        ``vs_default`` and ``se`` (the paired difference to ``default`` and its error).
    default : str
        The candidate kept unless another beats it clearly.

    Returns
    -------
    best, lowest : str
        ``lowest`` has the lowest log loss among the passing candidates (among all when
        none passes); ``best`` is ``default`` instead when the default passes and
        ``lowest`` beats it by no more than one standard error.

    Examples
    --------
    >>> t = pd.DataFrame({"log_loss": [0.510, 0.509, 0.530], "check": ["ok"] * 3,
    ...                   "vs_default": [0.0, -0.001, 0.02], "se": [0.0, 0.002, 0.004]},
    ...                  index=["2pl", "mirt-2", "llm-mean"])
    >>> one_se_choice(t, "2pl")
    ('2pl', 'mirt-2')
    """
    passing = table[table["check"] == "ok"]
    lowest = str((passing if len(passing) else table)["log_loss"].idxmin())
    # a candidate must beat the default by more than the noise of the difference, or the
    # choice between equally good models is a coin toss (routing.md: auto chose 3pl,
    # mirt-2 and 2pl at three seeds on RouterBench)
    within = -float(table.loc[lowest, "vs_default"]) <= float(table.loc[lowest, "se"])
    if lowest != default and default in passing.index and within:
        return default, lowest
    return lowest, lowest


def _difference(
    per_query: dict[str, np.ndarray], model: str, default: str, total: float
) -> tuple[float, float]:
    """Held-out log loss of ``model`` minus the default's, and its standard error.

    Queries are the unit: the loss differences of one query's LLMs are correlated (one
    difficulty), so the error comes from the per-query sums.
    """
    d = per_query[model] - per_query[default]
    if len(d) < 2 or model == default:
        return 0.0, 0.0
    return float(d.sum() / total), float(np.sqrt(len(d)) * d.std(ddof=1) / total)


def _heldout_summaries(
    sub: Any,
    hold: ResponseData,
    embeddings: np.ndarray,
    llms: list[str],
    weight: np.ndarray,
    datasets: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(n, J) posterior mean and the check's (G, S, J) draw sums of the held-out queries.

    Reduced block by block as ``evaluate`` does (the (S, n, J) draws, 1.6 GB for 2,000
    held-out queries x 100 LLMs, are never held whole), from the text alone; columns
    in ``llms`` order, NaN for LLMs the sub-fit lacks.
    """
    from irt_bayes.evaluation import _router_scores

    col = pd.Index(llms).get_indexer([str(m) for m in sub.llms_])
    m, _, s = _router_scores(
        sub, hold, weight[:, col], datasets, None, False, "expected-utility", 0.5, embeddings
    )
    mean = np.full((m.shape[0], len(llms)), np.nan)
    mean[:, col] = m
    sums = np.zeros((*s.shape[:2], len(llms)))
    sums[:, :, col] = s
    return mean, sums


def choose_model(
    router: IRTRouter,
    data: ResponseData,
    emb: np.ndarray,
    groups: dict[str, str] | None,
) -> tuple[ModelSpec, str, PredictiveCheck | None, pd.DataFrame | None, str]:
    """The spec and domain mode to fit, its held-out check, the candidates' table, a note.

    Parameters
    ----------
    router : IRTRouter
        Its ``model``, ``holdout``, ``seed`` and inference settings are used.
    data : ResponseData
        All training responses.
    emb : numpy.ndarray
        (Q, dim) embeddings in ``data.query_ids`` order.
    groups : dict, optional
        LLM groups passed to every fit.

    Returns
    -------
    spec : ModelSpec
    domains : str
        The domain mode to fit it with (the router's, or ``"clusters"`` when auto's
        cluster candidate won).
    check : PredictiveCheck or None
        None when nothing was held out.
    table : pandas.DataFrame or None
        Per candidate (``"2pl"``, ``"2pl (clusters)"``...): held-out ``log_loss``,
        ``max_gap``, ``check`` (ok / flagged), ``vs_default`` (log loss minus the
        default's), its standard error ``se`` and ``chosen``.
    note : str
        Why this spec, in one line.
    """
    from irt_bayes.router import MIN_HOLDOUT_QUERIES, response_grid

    auto = isinstance(router.model, str) and router.model == "auto"
    if router.holdout <= 0 or data.n_queries < MIN_HOLDOUT_QUERIES:
        spec = load_spec(SMALL_DATA_SPEC if auto else router.model)
        why = "holdout=0" if router.holdout <= 0 else f"only {data.n_queries} training queries"
        note = (
            f"model auto: {spec.name} ({why}: nothing held out to choose by)"
            if auto
            else f"no held-out check ({why})"
        )
        return spec, router.domains, None, None, note
    fit_ids, hold_ids = holdout_split(data, router.holdout, router.seed)
    pos = pd.Index(data.query_ids)
    fit, hold = data.select(queries=fit_ids), data.select(queries=hold_ids)
    emb_fit = emb[pos.get_indexer(fit.query_ids)]
    emb_hold = emb[pos.get_indexer(hold.query_ids)]
    llms = list(data.llms)
    score, weight = response_grid(hold, llms)
    true_ds = hold.queries["dataset"].astype(str).to_numpy() if hold.has_dataset else None

    candidates = _candidates(router, data) if auto else [(router.model, router.domains)]
    rows, checks, specs, per_query = {}, {}, {}, {}
    for name, domains in candidates:
        spec = load_spec(name)
        label = candidate_label(spec.name, domains, router.domains)
        _say(
            router,
            f"checking {label} on {fit.n_queries} training queries, {hold.n_queries} held out ...",
        )
        params = {**router.get_params(), "model": spec, "holdout": 0.0, "domains": domains}
        sub = type(router)(**params)
        sub._encoder = getattr(router, "_encoder", None)
        sub._fit_core(spec, fit, emb_fit, groups)
        sub.encoder_id_ = "precomputed"
        mean, sums = _heldout_summaries(sub, hold, emb_hold, llms, weight, true_ds)
        w = np.where(np.isnan(mean), 0.0, weight)
        mean = np.nan_to_num(mean, nan=0.5)
        chk = predictive_check(mean, score, w, llms, true_ds, draw_sums=sums)
        checks[label], specs[label] = chk, (spec, domains)
        per_query[label] = pointwise_log_loss(mean, score, w).sum(axis=1)
        rows[label] = {
            "log_loss": chk.log_loss,
            "max_gap": chk.max_gap,
            "check": "ok" if chk.ok else f"{len(chk.flagged)} flagged",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    ref = _reference_log_loss(fit, hold, emb_fit, emb_hold, llms, score, weight, router.seed)
    table.attrs["reference_log_loss"] = ref
    passing = table[table["check"] == "ok"]
    total = float(weight.sum())
    default = next(iter(rows))
    paired = [_difference(per_query, m, default, total) for m in rows]
    table["vs_default"] = [d for d, _ in paired]
    table["se"] = [e for _, e in paired]
    best, lowest = one_se_choice(table, default)  # one candidate unless auto
    keep_default = best != lowest
    diff, se = table.loc[lowest, ["vs_default", "se"]]
    chosen = table.loc[best]
    table["chosen"] = table.index == best
    if auto:
        others = ", ".join(
            f"{m} {v:.4f}" for m, v in table["log_loss"].drop(best).sort_values().items()
        )
        if keep_default:
            why = (
                f"the default; {lowest} is lower by {-diff:.4f}, within one standard error "
                f"of the difference ({se:.4f})"
            )
        elif best == str(table["log_loss"].idxmin()):
            why = "lowest held-out log loss"
        else:
            why = "lowest held-out log loss among those that pass the predictive check"
        note = (
            f"model auto: chose {best}, {why}, {chosen.log_loss:.4f} on "
            f"{hold.n_queries} training queries (others: {others}; per-LLM training "
            f"accuracy {ref:.4f})"
        )
        if not len(passing):
            note += "; WARNING: no candidate passes the predictive check"
    else:
        note = (
            f"{best}: held-out log loss {chosen.log_loss:.4f} (per-LLM training accuracy {ref:.4f})"
        )
    if chosen.log_loss > ref:
        note += "; WARNING: worse than per-LLM training accuracy"
    return (*specs[best], checks[best], table, note)
