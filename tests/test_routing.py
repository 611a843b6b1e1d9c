"""Routing policies on hand-made posterior draws, where the right choice is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.routing import QueryCostModel, decide, route, token_costs
from irt_bayes.simulate import simulate_pool

LLMS = ["cheap", "mid", "pricey"]
PRICES = pd.Series({"cheap": 0.001, "mid": 0.01, "pricey": 0.1})


def make_draws(
    means: np.ndarray, sds: np.ndarray, n_draws: int = 4000, seed: int = 0
) -> xr.DataArray:
    """Normal draws clipped to (0, 1) with given per-(query, llm) means and sds."""
    rng = np.random.default_rng(seed)
    d = rng.normal(means[None], sds[None], size=(n_draws, *means.shape))
    d = np.clip(d, 1e-4, 1 - 1e-4)
    return xr.DataArray(
        d,
        dims=("draw", "query", "llm"),
        coords={"query": [f"q{i}" for i in range(means.shape[0])], "llm": LLMS[: means.shape[1]]},
    )


@pytest.fixture
def draws() -> xr.DataArray:
    means = np.array([[0.50, 0.70, 0.90], [0.85, 0.855, 0.87], [0.20, 0.60, 0.61]])
    return make_draws(means, np.full_like(means, 0.01))


def test_zero_willingness_picks_most_accurate(draws: xr.DataArray) -> None:
    res = route(None, list("abc"), draws=draws, costs=PRICES, willingness_to_pay=0.0)
    assert res.choices["llm"].tolist() == ["pricey", "pricey", "pricey"]


def test_high_willingness_trades_accuracy_for_cost(draws: xr.DataArray) -> None:
    # lam = 1 USD per unit accuracy: +0.2 accuracy is worth 0.2 USD > 0.09 USD extra.
    res = route(None, list("abc"), draws=draws, costs=PRICES, willingness_to_pay=1.0)
    assert res.choices["llm"].tolist() == ["pricey", "cheap", "mid"]
    res = route(None, list("abc"), draws=draws, costs=PRICES, willingness_to_pay=1e6)
    assert set(res.choices["llm"]) == {"cheap"}


@pytest.mark.parametrize("policy", ["expected-utility", "risk-averse", "prob-best"])
def test_decide_holds_the_table_as_query_by_llm_arrays(draws: xr.DataArray, policy) -> None:
    kw = dict(draws=draws, costs=PRICES, willingness_to_pay=1.0, policy=policy)
    d = decide(None, list("abc"), **kw)
    res = route(None, list("abc"), **kw)
    assert d.llms == LLMS and list(d.query_ids) == ["q0", "q1", "q2"]
    assert [d.llms[j] for j in d.choice] == res.choices["llm"].tolist()
    for name, values in d.columns.items():
        assert values.shape == (3, 3)
        np.testing.assert_array_equal(values.ravel(), res.table[name].to_numpy())
    np.testing.assert_array_equal(d.choice, d.columns["utility"].argmax(axis=1))


def test_alpha_extremes(draws: xr.DataArray) -> None:
    best = route(None, list("abc"), draws=draws, costs=PRICES, alpha=1.0)
    assert set(best.choices["llm"]) == {"pricey"}
    cheap = route(None, list("abc"), draws=draws, costs=PRICES, alpha=0.0)
    assert set(cheap.choices["llm"]) == {"cheap"}


def test_table_explains_every_decision(draws: xr.DataArray) -> None:
    res = route(None, list("abc"), draws=draws, costs=PRICES, willingness_to_pay=1.0)
    t = res.table
    assert len(t) == 9
    assert t.groupby("query_id")["chosen"].sum().eq(1).all()
    chosen = t[t.chosen].set_index("query_id")["utility"]
    assert (t.groupby("query_id")["utility"].max() == chosen).all()
    np.testing.assert_allclose(t.utility, t.expected_accuracy - 1.0 * t.expected_cost)
    assert (t.accuracy_low <= t.expected_accuracy).all()
    assert (t.expected_accuracy <= t.accuracy_high).all()
    np.testing.assert_allclose(t.groupby("query_id")["prob_best"].sum(), 1.0)
    ds = res.to_xarray()
    assert ds["utility"].dims == ("query", "llm")


def test_risk_averse_prefers_the_surer_llm() -> None:
    means = np.array([[0.80, 0.78, 0.10]])
    sds = np.array([[0.15, 0.01, 0.01]])
    d = make_draws(means, sds)
    costs = pd.Series({"cheap": 0.0, "mid": 0.0, "pricey": 0.0})
    eu = route(None, ["x"], draws=d, costs=costs, willingness_to_pay=0.0)
    ra = route(None, ["x"], draws=d, costs=costs, willingness_to_pay=0.0, policy="risk-averse")
    assert eu.choices["llm"].item() == "cheap"
    assert ra.choices["llm"].item() == "mid"


def test_prob_best_and_thompson() -> None:
    means = np.array([[0.70, 0.68, 0.10]] * 200)
    sds = np.array([[0.10, 0.10, 0.01]] * 200)
    d = make_draws(means, sds)
    costs = pd.Series({"cheap": 0.0, "mid": 0.0, "pricey": 0.0})
    pb = route(
        None,
        [str(i) for i in range(200)],
        draws=d,
        costs=costs,
        willingness_to_pay=0,
        policy="prob-best",
    )
    assert set(pb.choices["llm"]) == {"cheap"}
    ts = route(
        None,
        [str(i) for i in range(200)],
        draws=d,
        costs=costs,
        willingness_to_pay=0,
        policy="thompson",
        seed=1,
    )
    share = ts.choices["llm"].value_counts(normalize=True)
    # exploration: both plausible LLMs get traffic, the hopeless one none
    assert 0.3 < share["cheap"] < 0.75 and 0.25 < share["mid"] < 0.7
    assert "pricey" not in share
    again = route(
        None,
        [str(i) for i in range(200)],
        draws=d,
        costs=costs,
        willingness_to_pay=0,
        policy="thompson",
        seed=1,
    )
    assert again.choices["llm"].tolist() == ts.choices["llm"].tolist()


def test_budget_is_respected_and_monotone() -> None:
    rng = np.random.default_rng(3)
    means = np.sort(rng.uniform(0.3, 0.95, size=(50, 3)), axis=1)
    d = make_draws(means, np.full_like(means, 0.02))
    qs = [str(i) for i in range(50)]
    last = -1.0
    for budget in (0.06, 0.5, 1.0, 2.0, 6.0):
        res = route(None, qs, draws=d, costs=PRICES, willingness_to_pay=0.0, budget=budget)
        assert res.total_cost <= budget + 1e-12
        assert res.mean_accuracy >= last - 1e-12
        last = res.mean_accuracy
    unconstrained = route(None, qs, draws=d, costs=PRICES, willingness_to_pay=0.0)
    assert res.mean_accuracy == pytest.approx(unconstrained.mean_accuracy)
    assert res.multiplier == 0.0
    with pytest.raises(IrtBayesError, match="below the cheapest"):
        route(None, qs, draws=d, costs=PRICES, willingness_to_pay=0.0, budget=0.01)


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 5.0), st.integers(0, 10_000))
def test_budget_property(budget: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.1, 0.95, size=(30, 3))
    d = make_draws(means, np.full_like(means, 0.02), n_draws=200, seed=seed)
    if budget < 30 * 0.001:
        return
    res = route(
        None,
        [str(i) for i in range(30)],
        draws=d,
        costs=PRICES,
        willingness_to_pay=0.0,
        budget=budget,
    )
    assert res.total_cost <= budget + 1e-12


def test_bad_knobs(draws: xr.DataArray) -> None:
    with pytest.raises(IrtBayesError, match="exactly one"):
        route(None, list("abc"), draws=draws, costs=PRICES)
    with pytest.raises(IrtBayesError, match="exactly one"):
        route(None, list("abc"), draws=draws, costs=PRICES, alpha=0.5, willingness_to_pay=1)
    with pytest.raises(IrtBayesError, match="alpha"):
        route(None, list("abc"), draws=draws, costs=PRICES, alpha=1.5)
    with pytest.raises(IrtBayesError, match="unknown policy"):
        route(None, list("abc"), draws=draws, costs=PRICES, alpha=0.5, policy="greedy")
    with pytest.raises(DataError, match="'pricey'"):
        route(None, list("abc"), draws=draws, costs=PRICES.drop("pricey"), alpha=0.5)
    with pytest.raises(DataError, match=">= 0"):
        route(None, list("abc"), draws=draws, costs=PRICES * -1, alpha=0.5)


@pytest.mark.parametrize(
    "knob",
    [
        {"willingness_to_pay": float("nan")},  # sent every query to the first LLM listed
        {"willingness_to_pay": float("inf")},
        {"alpha": float("nan")},
        {"alpha": 0.5, "budget": float("nan")},  # was ignored, with a multiplier reported
        {"alpha": 0.5, "budget": 0.0},
        {"alpha": 0.5, "policy": "risk-averse", "quantile": float("nan")},
        {"alpha": 0.5, "policy": "risk-averse", "quantile": 1.5},
    ],
)
def test_non_finite_knobs_are_refused(draws: xr.DataArray, knob: dict) -> None:
    with pytest.raises(IrtBayesError):
        route(None, list("abc"), draws=draws, costs=PRICES, **knob)


def test_per_query_costs(draws: xr.DataArray) -> None:
    cost = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    res = route(None, list("abc"), draws=draws, costs=cost, willingness_to_pay=1.0)
    assert res.choices["llm"].tolist() == ["pricey", "pricey", "pricey"]
    assert res.choices["expected_cost"].tolist() == [0.0, 0.0, 0.0]


def test_token_costs() -> None:
    c = token_costs(
        ["abcd" * 100, "ab"], {"m1": 1e-6, "m2": 1e-5}, {"m1": 2e-6, "m2": 3e-5}, output_tokens=10
    )
    assert c.shape == (2, 2)
    assert c.loc[0, "m1"] == pytest.approx(100 * 1e-6 + 10 * 2e-6)
    assert c.loc[1, "m2"] == pytest.approx(0.5 * 1e-5 + 10 * 3e-5)
    with pytest.raises(DataError, match="m2"):
        token_costs(["x"], {"m1": 1.0, "m2": 1.0}, {"m1": 1.0})


def test_query_cost_model_tracks_length() -> None:
    pool = simulate_pool(n_queries=300, n_llms=4, seed=2)
    data = ResponseData.from_frame(pool.responses)
    model = QueryCostModel().fit(data)
    short, long = "x" * 20, "x" * 400
    pred = model.predict([short, long])
    assert (pred[1] > pred[0]).all()
    # the fitted lines reproduce the mean price per LLM at the mean length
    mean_len = data.queries["query"].str.len().mean()
    np.testing.assert_allclose(
        model.predict(["x" * round(mean_len)])[0], data.prices().to_numpy(), rtol=0.1
    )
    no_cost = ResponseData.from_frame(pool.responses.drop(columns="cost"))
    with pytest.raises(DataError, match="cost"):
        QueryCostModel().fit(no_cost)


@pytest.mark.parametrize(
    ("policy", "budget", "alpha"),
    [
        ("expected-utility", None, None),
        ("risk-averse", None, None),
        ("risk-averse", 0.05, None),
        ("thompson", None, None),
        ("expected-utility", 0.05, None),
        ("risk-averse", None, 0.7),
        ("risk-averse", 0.05, 0.7),
    ],
)
def test_utility_is_the_sum_its_columns_state(
    draws: xr.DataArray, policy: str, budget: float | None, alpha: float | None
) -> None:
    # a reader redoes the sum from the file: utility = w * accuracy_used - cost_weight * cost
    knob = {"alpha": alpha} if alpha is not None else {"willingness_to_pay": 0.5}
    res = route(None, list("abc"), draws=draws, costs=PRICES, policy=policy, budget=budget, **knob)
    c = res.choices
    w = 1.0 if alpha is None else alpha
    np.testing.assert_allclose(
        c["utility"], w * c["accuracy_used"] - c["cost_weight"] * c["expected_cost"], rtol=1e-12
    )
    if alpha is None:
        np.testing.assert_allclose(c["cost_weight"], 0.5 + res.multiplier)
    if budget is not None:
        assert res.total_cost <= budget
        assert res.multiplier > 0 or alpha is not None  # binds at X = 0.5
    if policy == "risk-averse":  # the 10% quantile, below the mean
        assert (c["accuracy_used"] < c["expected_accuracy"]).all()
    elif policy == "expected-utility":
        np.testing.assert_allclose(c["accuracy_used"], c["expected_accuracy"])


def test_prob_best_utility_is_a_probability(draws: xr.DataArray) -> None:
    res = route(
        None, list("abc"), draws=draws, costs=PRICES, willingness_to_pay=0.5, policy="prob-best"
    )
    assert res.choices["accuracy_used"].isna().all()
    assert res.choices["utility"].between(0, 1).all()
