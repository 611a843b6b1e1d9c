"""Routing policies: pick an LLM per query by posterior expected utility.

Utility trades accuracy against cost in one of two forms:

* RouterBench's willingness-to-pay form with cost weight ``lam`` (per USD):
  ``U = A - lam * cost``; a larger ``lam`` buys cheaper LLMs, and ``1 / lam`` is the
  USD one is willing to pay for one unit of accuracy;
* IRT-Router's form with ``alpha`` in [0, 1]:
  ``U = alpha * A - (1 - alpha) * cost / max_cost`` (max over the LLMs for that query).

``A`` comes from the posterior draws of P(correct) according to the policy:

``expected-utility`` (default)
    the posterior mean;
``risk-averse``
    a lower posterior quantile (``quantile``, default 0.1): prefers LLMs whose
    accuracy is known to be good over ones that might be;
``prob-best``
    the LLM with the highest probability of having the best utility, across draws;
``thompson``
    one posterior draw per query (Thompson sampling), for exploration.

A ``budget`` (total USD over the batch) turns any policy into budget-constrained
batch routing: the cost weight is raised by a Lagrange multiplier ``mu >= 0``, found
by bisection as the smallest that keeps the batch within budget.

The draws are never held whole: every policy is computed in one pass (two with a
budget) over blocks of queries and LLMs that fit the memory budget
(:mod:`irt_bayes.memory`), the probability of being best by a running argmax over a
row's LLM blocks. ``prob-best`` with a budget makes one pass per bisection step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.memory import Blocks, plan_blocks
from irt_bayes.predict import SUMMARY_CELL_BYTES, summarise
from irt_bayes.stats import HDI_PROB

__all__ = [
    "ArrayDraws",
    "CHOICE_COLUMNS",
    "POLICIES",
    "Decisions",
    "RoutingResult",
    "decide",
    "QueryCostModel",
    "token_costs",
    "route",
    "choose",
    "budget_multiplier",
]

POLICIES = ("expected-utility", "risk-averse", "prob-best", "thompson")
CHOICE_COLUMNS = (
    "query_id",
    "llm",
    "expected_accuracy",
    "accuracy_used",
    "expected_cost",
    "cost_weight",
    "utility",
)
"""Columns of :attr:`RoutingResult.choices` (and of ``irt-bayes route``'s file).

``utility = accuracy_used - cost_weight * expected_cost`` (``alpha * accuracy_used``
in the ``alpha`` form), where ``accuracy_used`` is what the policy decides on: the
posterior mean of P(correct) (``expected-utility``), its ``quantile`` (``risk-averse``),
one posterior draw (``thompson``); ``cost_weight`` is the willingness to pay, raised by
the budget's multiplier when a budget binds. For ``prob-best``, ``accuracy_used`` is
empty and ``utility`` is the probability that the LLM has the highest utility.
"""


class QueryCostModel:
    """Per-query cost prediction: per-LLM linear fit of cost on query length.

    RouterBench's costs scale with the prompt's token count, so
    ``cost ~ c0 + c1 * n_chars`` per LLM (least squares, clipped at 0) predicts a new
    query's cost better than the LLM's mean price.

    Examples
    --------
    >>> from irt_bayes import simulate_pool, ResponseData
    >>> data = ResponseData.from_frame(simulate_pool(n_queries=100, n_llms=4).responses)
    >>> model = QueryCostModel().fit(data)
    >>> model.predict(["What is 2 + 2?"]).shape
    (1, 4)
    """

    def fit(self, data: ResponseData) -> QueryCostModel:
        """Fit one line per LLM on the training responses (needs a ``cost`` column)."""
        if not data.has_cost:
            raise DataError("has no 'cost' column to fit a cost model on", source=data.source)
        r = data.responses
        n = r["query"].str.len().to_numpy(float)
        self.llms_ = data.llms
        coef = []
        for m in self.llms_:
            sel = (r["llm"] == m).to_numpy()
            X = np.column_stack([np.ones(sel.sum()), n[sel]])
            beta, *_ = np.linalg.lstsq(X, r.loc[sel, "cost"].to_numpy(float), rcond=None)
            coef.append(beta)
        self.coef_ = np.asarray(coef)  # (J, 2)
        return self

    def predict(self, queries: pd.DataFrame | Sequence[str]) -> np.ndarray:
        """(n_queries, n_llms) predicted USD per query, in ``llms_`` order."""
        texts = queries["query"].tolist() if isinstance(queries, pd.DataFrame) else list(queries)
        n = np.array([len(t) for t in texts], float)
        pred = self.coef_[:, 0][None, :] + n[:, None] * self.coef_[:, 1][None, :]
        return np.maximum(pred, 0.0)


def token_costs(
    queries: pd.DataFrame | Sequence[str],
    input_price: Mapping[str, float],
    output_price: Mapping[str, float],
    *,
    output_tokens: float | Mapping[str, float] = 256.0,
    chars_per_token: float = 4.0,
) -> pd.DataFrame:
    """Cost per (query, LLM) from per-token prices.

    Parameters
    ----------
    queries : DataFrame or sequence of str
        The queries (their text length gives the input tokens).
    input_price, output_price : mapping
        USD per token for each LLM.
    output_tokens : float or mapping
        Expected completion length in tokens (per LLM if a mapping).
    chars_per_token : float
        Characters per input token (4 is typical for English with BPE tokenisers).

    Returns
    -------
    pandas.DataFrame
        (n_queries, n_llms) USD, columns named by LLM.
    """
    texts = queries["query"].tolist() if isinstance(queries, pd.DataFrame) else list(queries)
    n_in = np.array([len(t) for t in texts], float) / chars_per_token
    llms = list(input_price)
    missing = [m for m in llms if m not in output_price]
    if missing:
        raise DataError(f"no output price for LLM {missing[0]!r}")
    out_tok = np.array(
        [output_tokens[m] if isinstance(output_tokens, Mapping) else output_tokens for m in llms],
        float,
    )
    cost = (
        n_in[:, None] * np.array([input_price[m] for m in llms])[None, :]
        + (out_tok * np.array([output_price[m] for m in llms]))[None, :]
    )
    return pd.DataFrame(cost, columns=llms)


@dataclass(frozen=True, eq=False)  # arrays: no field-wise == or hash
class Decisions:
    """A batch's routing decisions as arrays (:func:`decide`).

    Attributes
    ----------
    query_ids : numpy.ndarray
        (n,) the queries, in order.
    llms : list of str
        (J,) the LLMs, in order.
    columns : dict of str to numpy.ndarray
        (n, J) per (query, LLM): the columns of :attr:`RoutingResult.table` but
        ``query_id``, ``llm`` and ``chosen``.
    choice : numpy.ndarray
        (n,) position in ``llms`` of each query's choice.
    policy : str
    settings : dict
    multiplier : float
        Extra cost weight found by the budget search (0 without a budget).
    """

    query_ids: np.ndarray
    llms: list[str]
    columns: dict[str, np.ndarray]
    choice: np.ndarray
    policy: str
    settings: dict[str, Any]
    multiplier: float = 0.0

    def result(self) -> RoutingResult:
        """The decisions as a :class:`RoutingResult` (one table row per query and LLM)."""
        n, J = len(self.query_ids), len(self.llms)
        chosen = np.zeros((n, J), bool)
        chosen[np.arange(n), self.choice] = True
        table = pd.DataFrame(
            {
                "query_id": np.repeat(self.query_ids, J),
                "llm": np.tile(np.asarray(self.llms, dtype=object), n),
                **{c: np.asarray(v).ravel() for c, v in self.columns.items()},
                "chosen": chosen.ravel(),
            },
            copy=False,  # no second copy: the table shares the columns' memory
        )
        choices = table[table["chosen"]][list(CHOICE_COLUMNS)].reset_index(drop=True)
        return RoutingResult(
            table=table,
            choices=choices,
            policy=self.policy,
            settings=self.settings,
            multiplier=self.multiplier,
        )


@dataclass
class RoutingResult:
    """Decisions and everything needed to explain them.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (query, LLM): ``query_id, llm, expected_accuracy, accuracy_sd,
        accuracy_low, accuracy_high`` (94% equal-tailed interval), ``prob_best,
        accuracy_used, expected_cost, cost_weight, utility, chosen``.
    choices : pandas.DataFrame
        One row per query, the chosen LLM's row: :data:`CHOICE_COLUMNS`.
    policy : str
    multiplier : float
        Extra cost weight found by the budget search (0 without a budget).
    """

    table: pd.DataFrame
    choices: pd.DataFrame
    policy: str
    settings: dict[str, Any] = field(default_factory=dict)
    multiplier: float = 0.0

    @property
    def total_cost(self) -> float:
        """Expected USD of the whole batch."""
        return float(self.choices["expected_cost"].sum())

    @property
    def mean_accuracy(self) -> float:
        """Mean posterior expected accuracy of the chosen LLMs."""
        return float(self.choices["expected_accuracy"].mean())

    def to_xarray(self) -> xr.Dataset:
        """The per-(query, LLM) table as a Dataset with dims (``query``, ``llm``)."""
        return (
            self.table.rename(columns={"query_id": "query"}).set_index(["query", "llm"]).to_xarray()
        )

    def __repr__(self) -> str:
        return (
            f"RoutingResult({len(self.choices)} queries, policy={self.policy!r}, "
            f"mean expected accuracy {self.mean_accuracy:.3f}, "
            f"total cost ${self.total_cost:.4f})"
        )


def _cost_matrix(
    costs: Any,
    llms: list[str],
    query_ids: np.ndarray,
    queries: pd.DataFrame | None,
    default: pd.Series | None,
) -> np.ndarray:
    n = len(query_ids)
    if costs is None:
        if default is None or default.isna().any():
            raise IrtBayesError(
                "the router has no prices (its training data had no 'cost'); pass costs="
            )
        costs = default
    if isinstance(costs, QueryCostModel):
        if queries is None:
            raise IrtBayesError("a QueryCostModel needs the query texts")
        pred = pd.DataFrame(costs.predict(queries), columns=costs.llms_)
        costs = pred
    if isinstance(costs, Mapping) and not isinstance(costs, pd.Series):
        costs = pd.Series(costs, dtype=float)
    if isinstance(costs, pd.Series):
        unknown = [m for m in llms if m not in costs.index]
        if unknown:
            raise DataError(f"no price for LLM {unknown[0]!r}")
        c = np.broadcast_to(costs.reindex(llms).to_numpy(float)[None, :], (n, len(llms)))
    elif isinstance(costs, pd.DataFrame):
        unknown = [m for m in llms if m not in costs.columns]
        if unknown:
            raise DataError(f"no cost column for LLM {unknown[0]!r}")
        c = costs[llms].to_numpy(float)
    else:
        c = np.asarray(costs, float)
    if c.shape != (n, len(llms)):
        raise DataError(f"costs have shape {c.shape}, expected ({n}, {len(llms)})")
    if not np.all(np.isfinite(c)) or (c < 0).any():
        raise DataError("costs must be finite and >= 0")
    return np.array(c)


def _cost_weight(
    cost: np.ndarray, willingness_to_pay: float | None, alpha: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy weight (n, 1) and cost weight (n, 1) of the utility."""
    if (willingness_to_pay is None) == (alpha is None):
        raise IrtBayesError("give exactly one of willingness_to_pay (USD) or alpha (0..1)")
    n = cost.shape[0]
    if willingness_to_pay is not None:
        # NaN compares False with everything: it would make every utility NaN and argmax
        # pick the first LLM listed, so non-finite weights are refused here
        if not np.isfinite(willingness_to_pay) or willingness_to_pay < 0:
            raise IrtBayesError(
                f"willingness_to_pay must be a finite number >= 0, got {willingness_to_pay}"
            )
        return np.ones((n, 1)), np.full((n, 1), float(willingness_to_pay))
    if not 0.0 <= alpha <= 1.0:
        raise IrtBayesError(f"alpha must be in [0, 1], got {alpha}")
    max_c = cost.max(axis=1, keepdims=True)
    return np.full((n, 1), alpha), (1.0 - alpha) / np.where(max_c > 0, max_c, 1.0)


class ArrayDraws:
    """Precomputed (S, n, J) draws of P(correct), served in the blocks of a plan.

    The counterpart, for draws already in memory, of
    :class:`~irt_bayes.predict.NewQueryPredictive`: blocks are views, so only the
    temporaries of what is done with them count against the budget.

    Parameters
    ----------
    draws : numpy.ndarray
        (S, n, J) P(correct).
    """

    def __init__(self, draws: np.ndarray) -> None:
        self.draws = draws
        self.n_draws, self.n_queries, self.n_llms = (int(v) for v in draws.shape)

    def plan(self, budget: int | None, *, cell: int = 0, row: int = 0) -> Blocks:
        """Blocks whose consumer's arrays (``cell`` per cell, ``row`` per query) fit."""
        return plan_blocks(
            self.n_queries, self.n_llms, cell_bytes=cell, row_bytes=row, budget=budget
        )

    def blocks(self, plan: Blocks) -> Iterator[tuple[slice, slice, np.ndarray]]:
        """(query slice, LLM slice, (S, r, l) view) of every block of ``plan``."""
        for rows, llms in plan:
            yield rows, llms, self.draws[:, rows, llms]


# Bytes per draw and query a pass keeps for the LLM blocks of a row: the best utility
# so far and its LLM (8 B each), and the argmax / max of the current block (16 B).
_PASS_ROW_BYTES = 32


def _route_pass(
    source: Any,
    plan: Blocks,
    cost: np.ndarray,
    acc_weight: np.ndarray,
    cost_weight: np.ndarray,
    *,
    summaries: bool = False,
    quantiles: Sequence[float] = (),
    pick: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One pass over the blocks of ``source``: the probability of being best, and stats.

    Parameters
    ----------
    source : NewQueryPredictive or ArrayDraws
        Where the (S, r, l) blocks come from.
    plan : Blocks
        Query blocks outermost, each row's LLM blocks in order.
    cost : numpy.ndarray
        (n, J) USD.
    acc_weight, cost_weight : numpy.ndarray
        (n, 1) weights of accuracy and cost in the utility.
    summaries : bool
        Also the draws' mean, sd and ``quantiles`` per (query, LLM).
    quantiles : sequence of float
        Quantile probabilities of the summaries.
    pick : numpy.ndarray, optional
        (n,) one draw per query (Thompson sampling): its P(correct) as ``sampled``.

    Returns
    -------
    dict
        ``prob_best`` (n, J): share of draws in which each LLM has the highest utility
        (the first such LLM on ties, as ``argmax``); with ``summaries``: ``mean``,
        ``sd`` (n, J), ``quantiles`` (len, n, J); with ``pick``: ``sampled`` (n, J).
    """
    S, n, J = source.n_draws, source.n_queries, source.n_llms
    out = {"prob_best": np.empty((n, J))}
    if summaries:
        out["mean"], out["sd"] = np.empty((n, J)), np.empty((n, J))
        out["quantiles"] = np.empty((len(quantiles), n, J))
    if pick is not None:
        out["sampled"] = np.empty((n, J))
    best_val = best_idx = None
    for rows, llms, p in source.blocks(plan):
        if summaries:
            mean, sd, qs = summarise(p, quantiles)
            out["mean"][rows, llms], out["sd"][rows, llms] = mean, sd
            out["quantiles"][:, rows, llms] = qs
            del mean, sd, qs
        if pick is not None:
            out["sampled"][rows, llms] = p[pick[rows], np.arange(p.shape[1])]
        # utilities of this block, in place on one temporary
        u = p * acc_weight[None, rows]
        u -= (cost_weight[rows] * cost[rows, llms])[None]
        del p
        top = u.argmax(axis=2)
        val = np.take_along_axis(u, top[..., None], axis=2)[..., 0]
        del u
        top += llms.start
        if llms.start == 0:
            best_val, best_idx = val, top
        else:  # a later block wins only when strictly better: argmax keeps the first
            better = val > best_val
            best_val = np.where(better, val, best_val)
            best_idx = np.where(better, top, best_idx)
        if llms.stop == J:
            r = best_idx.shape[1]
            flat = (best_idx + J * np.arange(r)[None, :]).ravel()
            out["prob_best"][rows] = np.bincount(flat, minlength=r * J).reshape(r, J) / S
            best_val = best_idx = None
    return out


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise IrtBayesError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")


class _Router:
    """A policy's choices over a source of draws, pass by pass within a memory budget."""

    def __init__(
        self,
        source: Any,
        cost: np.ndarray,
        acc_weight: np.ndarray,
        cost_weight: np.ndarray,
        *,
        policy: str,
        quantile: float,
        seed: int,
        memory_budget: int | None,
        stats: bool,
    ) -> None:
        _check_policy(policy)
        self.source, self.cost, self.policy = source, cost, policy
        self.acc_weight, self.cost_weight = acc_weight, cost_weight
        S = source.n_draws
        self.plan = source.plan(memory_budget, cell=SUMMARY_CELL_BYTES * S, row=_PASS_ROW_BYTES * S)
        pick = None
        if policy == "thompson":
            # drawn for the whole batch at once, as one generator call: any blocks agree
            pick = np.random.default_rng(seed).integers(0, S, source.n_queries)
        qs = [(1 - HDI_PROB) / 2, 1 - (1 - HDI_PROB) / 2] if stats else []
        if policy == "risk-averse":
            qs.append(quantile)
        summaries = stats or policy in ("expected-utility", "risk-averse")
        first = _route_pass(
            source,
            self.plan,
            cost,
            acc_weight,
            cost_weight,
            summaries=summaries,
            quantiles=qs,
            pick=pick,
        )
        self.stats = first
        self.prob_best0 = first["prob_best"]
        # the accuracy term of the utility (None for prob-best, which has none)
        if policy == "risk-averse":
            self.score = first["quantiles"][-1]
        elif policy == "thompson":
            self.score = first["sampled"]
        else:
            self.score = first.get("mean")

    def prob_best(self, mu: float) -> np.ndarray:
        """(n, J) probability of being best with the cost weight raised by ``mu``."""
        if mu == 0.0:
            return self.prob_best0
        return _route_pass(
            self.source, self.plan, self.cost, self.acc_weight, self.cost_weight + mu
        )["prob_best"]

    def utility(self, mu: float) -> np.ndarray:
        """(n, J) what the policy maximises (for ``prob-best``: the probability)."""
        if self.policy == "prob-best":
            return self.prob_best(mu)
        return self.acc_weight * self.score - (self.cost_weight + mu) * self.cost

    def spend(self, mu: float) -> float:
        """USD of the batch's choices at extra cost weight ``mu``."""
        ch = self.utility(mu).argmax(axis=1)
        return float(self.cost[np.arange(len(ch)), ch].sum())

    def multiplier(self, budget: float, iters: int = 60) -> float:
        """Smallest extra cost weight whose choices fit within ``budget`` (bisection)."""
        cost = self.cost
        floor = float(cost.min(axis=1).sum())
        if budget < floor:
            raise IrtBayesError(
                f"budget ${budget:.6g} is below the cheapest possible batch (${floor:.6g})"
            )
        if self.spend(0.0) <= budget:
            return 0.0
        spread = float(np.ptp(cost, axis=1).max()) or 1.0
        lo, hi = 0.0, 1.0 / spread
        while self.spend(hi) > budget:
            hi *= 4.0
            if hi > 1e12:
                break
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if self.spend(mid) <= budget else (mid, hi)
        return hi


def choose(
    draws: np.ndarray,
    cost: np.ndarray,
    acc_weight: np.ndarray,
    cost_weight: np.ndarray,
    *,
    policy: str = "expected-utility",
    quantile: float = 0.1,
    rng: np.random.Generator | None = None,
    memory_budget: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply a policy to posterior draws.

    Parameters
    ----------
    draws : numpy.ndarray
        (S, n, J) P(correct) draws.
    cost : numpy.ndarray
        (n, J) USD.
    acc_weight, cost_weight : numpy.ndarray
        (n, 1) weights of accuracy and cost in the utility.
    policy : str
        One of :data:`POLICIES`.
    quantile : float
        Lower quantile used by ``risk-averse``.
    rng : numpy.random.Generator, optional
        Randomness of ``thompson``.
    memory_budget : int, optional
        Bytes the temporaries of one block of draws may take (:mod:`irt_bayes.memory`).

    Returns
    -------
    choice : numpy.ndarray
        (n,) chosen LLM positions.
    score : numpy.ndarray
        (n, J) accuracy term the policy used.
    utility : numpy.ndarray
        (n, J) utility that was maximised (for ``prob-best``: the probability of
        being best).
    """
    _check_policy(policy)
    src = ArrayDraws(draws)
    plan = src.plan(
        memory_budget, cell=SUMMARY_CELL_BYTES * src.n_draws, row=_PASS_ROW_BYTES * src.n_draws
    )
    pick = None
    if policy == "thompson":
        rng = rng or np.random.default_rng(0)
        pick = rng.integers(0, src.n_draws, src.n_queries)
    qs = [quantile] if policy == "risk-averse" else []
    res = _route_pass(
        src,
        plan,
        cost,
        acc_weight,
        cost_weight,
        summaries=policy != "thompson",
        quantiles=qs,
        pick=pick,
    )
    score = res["sampled"] if policy == "thompson" else res["quantiles"][0] if qs else res["mean"]
    if policy == "prob-best":
        return res["prob_best"].argmax(axis=1), score, res["prob_best"]
    util = acc_weight * score - cost_weight * cost
    return util.argmax(axis=1), score, util


def budget_multiplier(
    draws: np.ndarray,
    cost: np.ndarray,
    acc_weight: np.ndarray,
    cost_weight: np.ndarray,
    budget: float,
    *,
    policy: str,
    quantile: float,
    seed: int,
    iters: int = 60,
    memory_budget: int | None = None,
) -> float:
    """Smallest extra cost weight ``mu`` whose choices fit within ``budget`` (bisection).

    The batch cost of the argmax of ``A - (w + mu) c`` does not increase with ``mu``,
    so bisection on ``mu`` finds the Lagrangian solution of max sum A s.t. sum c <= B.
    The accuracy term ``A`` does not depend on ``mu`` except for ``prob-best``, whose
    every step is a pass over the draws.

    Parameters
    ----------
    draws : numpy.ndarray
        (S, n, J) P(correct) draws.
    cost : numpy.ndarray
        (n, J) USD.
    acc_weight, cost_weight : numpy.ndarray
        (n, 1) weights of accuracy and cost in the utility.
    budget : float
        USD for the batch.
    policy, quantile, seed
        As for :func:`decide`.
    iters : int
        Bisection steps.
    memory_budget : int, optional
        Bytes the temporaries of one block of draws may take.

    Returns
    -------
    float
    """
    router = _Router(
        ArrayDraws(draws),
        cost,
        acc_weight,
        cost_weight,
        policy=policy,
        quantile=quantile,
        seed=seed,
        memory_budget=memory_budget,
        stats=False,
    )
    return router.multiplier(budget, iters)


def decide(
    router: Any,
    queries: pd.DataFrame | Sequence[str] | ResponseData,
    *,
    costs: Any = None,
    willingness_to_pay: float | None = None,
    alpha: float | None = None,
    policy: str = "expected-utility",
    budget: float | None = None,
    quantile: float = 0.1,
    seed: int = 0,
    embeddings: np.ndarray | None = None,
    warmup: str | None = None,
    use_labels: bool = False,
    draws: xr.DataArray | None = None,
    memory_budget: int | None = None,
    first_row: int = 0,
) -> Decisions:
    """Route queries to LLMs by posterior expected utility: the decisions as arrays.

    The posterior draws are worked through in blocks of queries (and of LLMs) that fit
    the memory budget, never all at once; the decisions do not depend on the blocks.

    Parameters
    ----------
    router : IRTRouter
        A fitted router (its ``prices_`` are the default costs).
    queries : DataFrame, ResponseData or sequence of str
        Queries to route.
    costs : optional
        USD per query: a mapping or Series per LLM, a (n, J) array or DataFrame per
        (query, LLM) (see :func:`token_costs`), or a fitted :class:`QueryCostModel`.
        Default: the LLMs' mean cost per query in the training data.
    willingness_to_pay : float, optional
        Cost weight ``lam`` of RouterBench's utility ``A - lam * cost`` (larger is
        thriftier; ``1 / lam`` USD buys one unit of accuracy).
    alpha : float, optional
        IRT-Router trade-off: utility ``alpha * A - (1 - alpha) * cost / max_cost``.
    policy : str
        One of :data:`POLICIES`.
    budget : float, optional
        Total USD for the batch; the cost weight is raised until it fits. With
        ``prob-best`` each bisection step is a pass over the draws: predicted again,
        block by block, unless they fit in one block.
    quantile : float
        Lower quantile of accuracy used by ``risk-averse``.
    seed : int
        Randomness of ``thompson``.
    embeddings, warmup, use_labels
        Passed to :meth:`IRTRouter.predict_proba`: by default a query is routed from
        its text alone, and a ``dataset`` column is ignored.
    draws : xarray.DataArray, optional
        Precomputed (draw, query, llm) P(correct); skips prediction.
    memory_budget : int, optional
        Bytes the arrays of one block may take; default the router's
        ``memory_budget`` (:data:`irt_bayes.memory.MEMORY_BUDGET` without a router).
    first_row : int, default 0
        Position of the first query in a larger batch routed in parts (a log's
        partitions, :mod:`irt_bayes.batch`): each query's predictive then draws what it
        would in the whole batch, so the parts decide as the whole would.

    Returns
    -------
    Decisions
        What :func:`route` tabulates, without the table (the service's per-request
        path: building the frames was a quarter of a routing pass).

    See Also
    --------
    route : the same decisions as a :class:`RoutingResult` of data frames.

    Examples
    --------
    >>> from irt_bayes import IRTRouter, simulate_pool
    >>> router = IRTRouter(progress=False).fit(simulate_pool(200, 6).responses)  # doctest: +SKIP
    >>> decide(router, ["What is 2 + 2?"], willingness_to_pay=50).choice  # doctest: +SKIP
    """
    from irt_bayes.router import as_query_frame

    _check_policy(policy)
    if budget is not None and not (np.isfinite(budget) and budget > 0):
        raise IrtBayesError(f"budget must be a finite number of USD > 0, got {budget}")
    if not 0.0 < quantile < 1.0:  # also False for NaN
        raise IrtBayesError(f"quantile must be in (0, 1), got {quantile}")
    q = as_query_frame(queries)
    if memory_budget is None:
        memory_budget = getattr(router, "memory_budget", None)
    if draws is None:
        source = router.predictive(
            q, embeddings=embeddings, warmup=warmup, use_labels=use_labels, first_row=first_row
        )
        llms = [str(m) for m in router.llms_]
        qids = q["query_id"].to_numpy()
    else:
        llms = [str(m) for m in draws["llm"].to_numpy()]
        qids = draws["query"].to_numpy()
        source = ArrayDraws(draws.transpose("draw", "query", "llm").to_numpy())
    cost = _cost_matrix(costs, llms, qids, q, getattr(router, "prices_", None))
    acc_w, cost_w = _cost_weight(cost, willingness_to_pay, alpha)
    chooser = _Router(
        source,
        cost,
        acc_w,
        cost_w,
        policy=policy,
        quantile=quantile,
        seed=seed,
        memory_budget=memory_budget,
        stats=True,
    )
    mu = 0.0 if budget is None else chooser.multiplier(budget)
    util = chooser.utility(mu)
    n, J = cost.shape
    # what the utility was computed from, so a reader can redo the sum row by row
    score = np.full((n, J), np.nan) if policy == "prob-best" else chooser.score
    stats = chooser.stats
    columns = {
        "expected_accuracy": stats["mean"],
        "accuracy_sd": stats["sd"],
        "accuracy_low": stats["quantiles"][0],
        "accuracy_high": stats["quantiles"][1],
        "prob_best": chooser.prob_best(mu),
        "accuracy_used": score,
        "expected_cost": cost,
        "cost_weight": np.broadcast_to(chooser.cost_weight + mu, (n, J)),
        "utility": util,
    }
    settings = {
        "willingness_to_pay": willingness_to_pay,
        "alpha": alpha,
        "budget": budget,
        "quantile": quantile,
        "seed": seed,
        "warmup": warmup,
        "use_labels": use_labels,
    }
    return Decisions(qids, llms, columns, util.argmax(axis=1), policy, settings, mu)


def route(
    router: Any,
    queries: pd.DataFrame | Sequence[str] | ResponseData,
    *,
    costs: Any = None,
    willingness_to_pay: float | None = None,
    alpha: float | None = None,
    policy: str = "expected-utility",
    budget: float | None = None,
    quantile: float = 0.1,
    seed: int = 0,
    embeddings: np.ndarray | None = None,
    warmup: str | None = None,
    use_labels: bool = False,
    draws: xr.DataArray | None = None,
    memory_budget: int | None = None,
    first_row: int = 0,
) -> RoutingResult:
    """Route queries to LLMs by posterior expected utility.

    Parameters
    ----------
    router, queries, costs, willingness_to_pay, alpha, policy, budget, quantile, seed
        As for :func:`decide`.
    embeddings, warmup, use_labels, draws, memory_budget, first_row
        As for :func:`decide`.

    Returns
    -------
    RoutingResult

    See Also
    --------
    decide : the same decisions as arrays.

    Examples
    --------
    >>> from irt_bayes import IRTRouter, simulate_pool
    >>> router = IRTRouter(progress=False).fit(simulate_pool(200, 6).responses)  # doctest: +SKIP
    >>> route(router, ["What is 2 + 2?"], willingness_to_pay=50).choices  # doctest: +SKIP
    """
    return decide(
        router,
        queries,
        costs=costs,
        willingness_to_pay=willingness_to_pay,
        alpha=alpha,
        policy=policy,
        budget=budget,
        quantile=quantile,
        seed=seed,
        embeddings=embeddings,
        warmup=warmup,
        use_labels=use_labels,
        draws=draws,
        memory_budget=memory_budget,
        first_row=first_row,
    ).result()
