"""Prediction and routing in blocks that fit a memory budget (irt_bayes.memory).

Three claims: (a) the budget changes nothing but the blocks -- predictions, summaries
and every policy's decisions agree with the default budget's, down to blocks of one
query and one LLM; (b) the peak of what numpy allocates (traced by ``tracemalloc``)
stays within ``PEAK_FACTOR`` times a small budget, where one (draw, query, LLM) array
alone is several times that budget; (c) a real router over 10,000 LLMs routes within
its budget.
"""

from __future__ import annotations

import copy
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from irt_bayes import IRTRouter
from irt_bayes.errors import IrtBayesError
from irt_bayes.inference import ConvergenceWarning
from irt_bayes.memory import MEMORY_BUDGET, Blocks, check_budget, plan_blocks
from irt_bayes.routing import POLICIES, route
from irt_bayes.simulate import wide_pool

# Traced peak allowed, as a multiple of the budget: the estimates of a block's arrays
# are measured ones, and what the budget does not cover (the (query, LLM) results, the
# queries' embeddings and features) is small next to the budget in these tests.
PEAK_FACTOR = 1.5
SMALL_BUDGET = 2**20  # 1 MiB: a few queries per block for the 10-LLM router
TINY_BUDGET = 2**15  # 32 KiB: blocks of one query and one LLM


def with_budget(router: IRTRouter, budget: int, **attrs: Any) -> IRTRouter:
    """A shallow copy of a session router with another budget (the original is shared)."""
    out = copy.copy(router).set_params(memory_budget=budget)
    for k, v in attrs.items():
        setattr(out, k, v)
    return out


def traced_peak(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Peak bytes traced by tracemalloc while ``fn`` runs, above what was held before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, out


@pytest.fixture(scope="module")
def queries(new_queries: pd.DataFrame, advi_router: IRTRouter) -> tuple[pd.DataFrame, np.ndarray]:
    """The new queries and their embeddings (so that the encoder stays out of the traces),
    half of them labelled with a dataset the router has never seen."""
    q = new_queries.copy()
    q.loc[q.index[::2], "dataset"] = "a dataset never seen"
    emb = advi_router._embed(q["query"].tolist(), None)
    _ = advi_router.draws_  # the posterior draws are cached before any trace
    return q, emb


# ------------------------------------------------------------------------ the planner
def test_plan_blocks_keeps_rows_whole_until_one_does_not_fit() -> None:
    assert plan_blocks(10, 4, cell_bytes=100, row_bytes=50, budget=10_000) == Blocks(10, 4, 10, 4)
    assert plan_blocks(10, 4, cell_bytes=100, row_bytes=50, budget=1_000) == Blocks(10, 4, 2, 4)
    assert plan_blocks(10, 40, cell_bytes=100, row_bytes=50, budget=1_000) == Blocks(10, 40, 1, 9)
    # never less than one query and one LLM, whatever the budget
    blocks = plan_blocks(3, 5, cell_bytes=100, row_bytes=50, budget=1)
    assert (blocks.rows, blocks.cols, len(blocks)) == (1, 1, 15)
    cells = [(r, c) for rows, llms in blocks for r in range(3)[rows] for c in range(5)[llms]]
    assert sorted(cells) == [(r, c) for r in range(3) for c in range(5)]


def test_budget_is_a_constructor_parameter() -> None:
    assert check_budget(None) == MEMORY_BUDGET == 2**30
    router = IRTRouter("2pl", memory_budget=12345)
    assert router.get_params()["memory_budget"] == 12345
    assert clone(router).memory_budget == 12345
    assert IRTRouter().memory_budget == MEMORY_BUDGET
    for bad in (0, -1, 1.5, "1GB", True):
        with pytest.raises(IrtBayesError, match="memory_budget"):
            IRTRouter(memory_budget=bad)


# ---------------------------------------------------- (a) the same results in any blocks
def test_tiny_budget_predicts_as_the_default(advi_router: IRTRouter, queries) -> None:
    q, emb = queries
    for attrs in ({}, {"residuals": "normal"}):
        big = with_budget(advi_router, MEMORY_BUDGET, **attrs)
        tiny = with_budget(advi_router, TINY_BUDGET, **attrs)
        assert len(tiny.predictive(q, embeddings=emb).plan(TINY_BUDGET)) == len(q) * len(
            advi_router.llms_
        )
        for kw in ({}, {"use_labels": True}, {"warmup": "irt-router"}):
            want = big.predict_proba(q, embeddings=emb, **kw)
            got = tiny.predict_proba(q, embeddings=emb, **kw)
            # equal up to float rounding (BLAS sums in another order for other shapes)
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=1e-15)
            assert got.dims == want.dims and (got["query"] == want["query"]).all()
        want, got = big.predict(q, embeddings=emb), tiny.predict(q, embeddings=emb)
        pd.testing.assert_frame_equal(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("budget", [None, 0.6])
def test_tiny_budget_routes_as_the_default(advi_router: IRTRouter, queries, policy, budget):
    q, emb = queries
    kw = {"willingness_to_pay": 2.0, "policy": policy, "seed": 4, "embeddings": emb}
    if budget is not None:  # binding: the multiplier search runs
        kw["budget"] = budget * float(advi_router.prices_.sum()) * len(q) / len(advi_router.llms_)
    want = route(advi_router, q, **kw)
    got = route(with_budget(advi_router, TINY_BUDGET), q, **kw)
    assert got.choices["llm"].tolist() == want.choices["llm"].tolist()
    assert got.multiplier == pytest.approx(want.multiplier, rel=1e-9)
    pd.testing.assert_frame_equal(got.table, want.table, rtol=1e-12, atol=1e-15)
    if budget is not None:
        assert want.multiplier > 0 and got.total_cost <= kw["budget"] + 1e-12


# ------------------------------------------------------- (b) the peak stays in the budget
def test_peak_memory_stays_within_a_small_budget(advi_router: IRTRouter, queries) -> None:
    q, emb = queries
    small = with_budget(advi_router, SMALL_BUDGET)
    S, n, J = small.n_draws_, len(q), len(small.llms_)
    # one (draw, query, LLM) array is several budgets: all at once could not fit
    assert S * n * J * 8 > 4 * SMALL_BUDGET
    peaks = {}
    peak, p = traced_peak(lambda: small.predict_proba(q, embeddings=emb))
    peaks["predict_proba"] = peak - p.nbytes  # the result itself is what was asked for
    del p
    peaks["predict"], _ = traced_peak(lambda: small.predict(q, embeddings=emb))
    for policy in POLICIES:
        peaks[policy], _ = traced_peak(
            lambda policy=policy: route(
                small, q, embeddings=emb, willingness_to_pay=2.0, policy=policy
            )
        )
    over = {
        k: round(v / SMALL_BUDGET, 2) for k, v in peaks.items() if v > PEAK_FACTOR * SMALL_BUDGET
    }
    assert not over, f"peak / budget above {PEAK_FACTOR}: {over}"


# ----------------------------------------------------- (c) a real router over 10,000 LLMs
N_LLMS = 10_000


@pytest.fixture(scope="module")
def wide_router() -> IRTRouter:
    """llm-mean fitted by ADVI to 10,000 LLMs x 6 queries (a hand-built Rasch pool)."""
    frame, emb = wide_pool(N_LLMS, seed=7)
    router = IRTRouter(
        "llm-mean",
        progress=False,
        holdout=0.0,
        n_clusters=1,
        max_iter=300,
        memory_budget=32 * 2**20,
    )
    with warnings.catch_warnings():
        # with 6 queries many LLMs score the same on all (a data note) and ADVI's short
        # run may not converge: neither matters to how much memory routing takes
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        return router.fit(frame, embeddings=emb)


@pytest.mark.slow  # a 10,000-LLM fit
def test_routing_over_10000_llms_stays_within_the_budget(wide_router: IRTRouter) -> None:
    n = 12
    emb = np.random.default_rng(8).standard_normal((n, 16)).astype(np.float32)
    budget, S = wide_router.memory_budget, wide_router.n_draws_
    assert len(wide_router.llms_) == N_LLMS and S * n * N_LLMS * 8 > 25 * budget  # ~0.9 GiB
    _ = wide_router.draws_  # cached before the trace
    peak, res = traced_peak(
        lambda: route(wide_router, [f"query {i}" for i in range(n)], embeddings=emb, alpha=0.5)
    )
    assert len(res.choices) == n and len(res.table) == n * N_LLMS
    # the (query, LLM) results -- the table's columns and the arrays behind them -- are
    # what was asked for: allowed on top of the budget
    results = 12 * n * N_LLMS * 8
    assert peak <= PEAK_FACTOR * budget + results, f"peak {peak / 2**20:.1f} MiB"
