from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import spearmanr

from irt_bayes.simulate import LLM_CATALOGUE, SimulatedPool, simulate_pool

BASE_COLUMNS = ["query_id", "query", "llm", "score", "cost", "dataset"]


@pytest.fixture(scope="module")
def pool() -> SimulatedPool:
    return simulate_pool(seed=0)


@pytest.fixture(scope="module")
def pool12() -> SimulatedPool:
    return simulate_pool(n_llms=12, seed=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_same_seed_gives_identical_output() -> None:
    a, b = simulate_pool(seed=3), simulate_pool(seed=3)
    pd.testing.assert_frame_equal(a.responses, b.responses)
    xr.testing.assert_identical(a.truth, b.truth)


def test_different_seeds_differ() -> None:
    a, b = simulate_pool(seed=0), simulate_pool(seed=1)
    assert not np.allclose(a.truth["ability"], b.truth["ability"])
    assert not np.allclose(a.truth["difficulty"], b.truth["difficulty"])
    assert (a.responses["score"].to_numpy() != b.responses["score"].to_numpy()).any()
    assert set(a.queries["query"]) != set(b.queries["query"])


def test_shapes_and_dtypes(pool: SimulatedPool) -> None:
    r = pool.responses
    assert list(r.columns) == BASE_COLUMNS
    assert len(r) == 600 * 10
    for col in ("query_id", "query", "llm", "dataset"):
        assert pd.api.types.is_string_dtype(r[col]), col
    assert r["score"].dtype == np.float64
    assert r["cost"].dtype == np.float64
    assert not r.isna().any().any()
    assert not r.duplicated(["query_id", "llm"]).any()
    assert all(re.fullmatch(r"sim-\d{6}", q) for q in r["query_id"].unique())

    t = pool.truth
    assert dict(t.sizes) == {"llm": 10, "query": 600, "skill": 1}
    assert t["ability"].dims == ("llm", "skill")
    assert t["difficulty"].dims == ("query",)
    assert t["discrimination"].dims == ("query", "skill")
    assert t["p_correct"].dims == ("query", "llm")
    assert t["price"].dims == ("llm",)
    assert t["cost"].dims == ("query", "llm")
    assert list(t["skill"].values) == ["s0"]
    assert t["dataset"].dims == ("query",)
    assert set(r["query_id"]) == set(t["query"].values)
    assert pool.llms == list(t["llm"].values)
    assert set(r["llm"]) == set(pool.llms)


def test_queries_property(pool: SimulatedPool) -> None:
    q = pool.queries
    assert list(q.columns) == ["query_id", "query", "dataset"]
    assert len(q) == 600
    assert q["query_id"].is_unique
    # Dataset in the table matches the truth coordinate.
    truth_ds = pool.truth["dataset"].to_series()
    assert (q.set_index("query_id")["dataset"] == truth_ds.loc[q["query_id"]]).all()


def test_texts_unique_and_non_empty(pool: SimulatedPool) -> None:
    q = pool.queries
    assert q["query"].is_unique
    assert (q["query"].str.strip().str.len() > 10).all()
    # One text per query id throughout the long table.
    assert (pool.responses.groupby("query_id")["query"].nunique() == 1).all()
    # The slot space is large enough that no explicit de-duplication is needed here.
    assert not q["query"].str.contains("(variant", regex=False).any()


def test_texts_unique_for_large_pool() -> None:
    q = simulate_pool(n_queries=5000, n_llms=2).queries
    assert q["query"].is_unique
    assert q["query_id"].is_unique


def test_domains_balanced(pool: SimulatedPool) -> None:
    counts = pool.queries["dataset"].value_counts()
    assert 4 <= len(counts) <= 6
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("score_type", ["binary", "binomial", "fraction"])
def test_scores_in_unit_interval(score_type: str) -> None:
    r = simulate_pool(n_queries=200, score_type=score_type, seed=2).responses
    assert r["score"].between(0.0, 1.0).all()


def test_binary_scores_are_zero_or_one(pool: SimulatedPool) -> None:
    assert set(pool.responses["score"].unique()) == {0.0, 1.0}
    assert "trials" not in pool.responses.columns


def test_binomial_has_trials_column() -> None:
    r = simulate_pool(n_queries=200, score_type="binomial", trials=7, seed=2).responses
    assert list(r.columns) == [*BASE_COLUMNS, "trials"]
    assert pd.api.types.is_integer_dtype(r["trials"])
    assert (r["trials"] == 7).all()
    successes = r["score"] * r["trials"]
    np.testing.assert_allclose(successes, np.round(successes), atol=1e-9)
    # Not just the binary special case.
    assert r["score"].nunique() > 2


def test_fraction_scores_follow_p() -> None:
    p = simulate_pool(n_queries=400, score_type="fraction", seed=4)
    r = p.responses
    assert "trials" not in r.columns
    inside = r["score"].between(0.0, 1.0, inclusive="neither")
    assert inside.mean() > 0.95
    expected = p.truth["p_correct"].to_numpy().mean()
    assert abs(r["score"].mean() - expected) < 0.02


def test_p_correct_is_the_2pl(pool: SimulatedPool) -> None:
    t = pool.truth
    logit = t["discrimination"].to_numpy() @ t["ability"].to_numpy().T
    logit -= t["difficulty"].to_numpy()[:, None]
    np.testing.assert_allclose(t["p_correct"].to_numpy(), _sigmoid(logit))


def test_binary_scores_match_p_correct(pool: SimulatedPool) -> None:
    r = pool.responses
    p = pool.truth["p_correct"].to_series().rename("p")
    merged = r.join(p, on=["query_id", "llm"])
    # Calibration: observed accuracy tracks p within bins.
    bins = pd.cut(merged["p"], [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    grouped = merged.groupby(bins, observed=True)[["score", "p"]].mean()
    np.testing.assert_allclose(grouped["score"], grouped["p"], atol=0.05)


def test_abilities_centred_per_skill() -> None:
    for k in (1, 3):
        ability = simulate_pool(n_skills=k, seed=5).truth["ability"]
        np.testing.assert_allclose(ability.mean("llm"), 0.0, atol=1e-12)
        assert (ability.std("llm") > 0.5).all()


def test_prices_span_two_orders_of_magnitude(pool: SimulatedPool) -> None:
    price = pool.truth["price"].to_numpy()
    assert (price > 0).all()
    assert price.max() / price.min() >= 100
    assert price.min() <= 1e-4 and price.max() >= 5e-3


@pytest.mark.parametrize("n_llms", [2, 5, 12])
def test_small_pools_still_span_prices(n_llms: int) -> None:
    price = simulate_pool(n_queries=20, n_llms=n_llms).truth["price"].to_numpy()
    assert price.max() / price.min() >= 100


def test_costs_positive_and_follow_price_and_length(pool: SimulatedPool) -> None:
    r = pool.responses
    assert (r["cost"] > 0).all()
    assert (pool.truth["cost"] > 0).all()
    # Price is the mean cost per query.
    mean_cost = r.groupby("llm")["cost"].mean()
    price = pool.truth["price"].to_series()
    np.testing.assert_allclose(mean_cost.loc[price.index], price, rtol=0.05)
    # Longer texts cost more.
    one = r[r["llm"] == pool.llms[0]]
    rho = spearmanr(one["query"].str.len(), one["cost"]).statistic
    assert rho > 0.8


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.6])
def test_missing_rate_drops_roughly_that_share(rate: float) -> None:
    full = simulate_pool(seed=6)
    sparse = simulate_pool(seed=6, missing_rate=rate)
    r = sparse.responses
    assert abs(1 - len(r) / len(full.responses) - rate) < 0.01
    assert r["query_id"].nunique() == 600
    assert r["llm"].nunique() == 10
    # Dropping rows does not change the scores of the rows kept.
    merged = r.merge(full.responses, on=["query_id", "llm"], suffixes=("", "_full"))
    assert len(merged) == len(r)
    np.testing.assert_array_equal(merged["score"], merged["score_full"])
    xr.testing.assert_identical(sparse.truth.drop_attrs(), full.truth.drop_attrs())


def test_extreme_missing_rate_keeps_every_query_and_llm() -> None:
    r = simulate_pool(n_queries=300, n_llms=12, missing_rate=0.99, seed=7).responses
    assert r["query_id"].nunique() == 300
    assert r["llm"].nunique() == 12
    assert len(r) < 0.15 * 300 * 12


def test_difficulty_predicts_error_rate(pool12: SimulatedPool) -> None:
    mean_score = pool12.responses.groupby("query_id")["score"].mean()
    difficulty = pool12.truth["difficulty"].to_series().loc[mean_score.index]
    assert spearmanr(difficulty, mean_score).statistic < -0.5


def test_stronger_llms_score_higher(pool12: SimulatedPool) -> None:
    accuracy = pool12.responses.groupby("llm")["score"].mean()
    ability = pool12.truth["ability"].mean("skill").to_series().loc[accuracy.index]
    assert spearmanr(ability, accuracy).statistic > 0.8
    best, worst = ability.idxmax(), ability.idxmin()
    assert accuracy[best] - accuracy[worst] > 0.3


def test_ability_tracks_price_but_not_perfectly(pool12: SimulatedPool) -> None:
    ability = pool12.truth["ability"].sel(skill="s0").to_numpy()
    price = pool12.truth["price"].to_numpy()
    rho = spearmanr(np.log(price), ability).statistic
    assert 0.6 < rho < 1.0


def test_template_and_domain_explain_difficulty(pool: SimulatedPool) -> None:
    t = pool.truth
    design = pd.get_dummies(
        pd.DataFrame({"dataset": t["dataset"].to_numpy(), "template": t["template"].to_numpy()}),
        dtype=float,
    ).to_numpy()
    y = t["difficulty"].to_numpy()
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    r2 = 1 - np.sum((y - design @ coef) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 > 0.5
    # ...but the residual noise is there: the template alone does not fix it.
    assert r2 < 0.99


def test_discrimination_range(pool: SimulatedPool) -> None:
    a = pool.truth["discrimination"].to_numpy().ravel()
    assert (a > 0).all()
    share = np.mean((a >= 0.5) & (a <= 2.5))
    assert share > 0.85
    # Varies by template, not just noise around one value.
    by_template = pool.truth["discrimination"].sel(skill="s0").groupby("template").mean()
    assert float(by_template.max() - by_template.min()) > 0.3


def test_two_skill_truth() -> None:
    p = simulate_pool(n_llms=12, n_skills=2, seed=8)
    t = p.truth
    assert dict(t.sizes) == {"llm": 12, "query": 600, "skill": 2}
    assert list(t["skill"].values) == ["s0", "s1"]
    assert t["ability"].shape == (12, 2)
    assert t["discrimination"].shape == (600, 2)
    a = t["discrimination"].to_numpy()
    assert (a >= 0).all()
    # Each query points mostly at its domain's skill, and each domain has one skill.
    main = np.array([int(s[1:]) for s in t["main_skill"].to_numpy()])
    np.testing.assert_array_equal(a.argmax(axis=1), main)
    assert (a.max(axis=1) > 3 * a.min(axis=1)).all()
    per_domain = pd.Series(main).groupby(t["dataset"].to_numpy()).nunique()
    assert (per_domain == 1).all()
    assert set(main) == {0, 1}
    # The skills are genuinely different abilities.
    theta = t["ability"].to_numpy()
    assert np.corrcoef(theta[:, 0], theta[:, 1])[0, 1] < 0.95


def test_abilities_do_not_depend_on_n_queries() -> None:
    small = simulate_pool(n_queries=30, seed=9).truth["ability"]
    large = simulate_pool(n_queries=900, seed=9).truth["ability"]
    xr.testing.assert_identical(small, large)


def test_llm_names_fictional_and_unique() -> None:
    names = [m.name for m in LLM_CATALOGUE]
    assert len(names) == len(set(names)) == 12
    real = ("gpt", "claude", "llama", "gemini", "mistral", "qwen", "phi", "grok", "deepseek")
    assert not any(r in n.lower() for n in names for r in real)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_llms": 13},
        {"n_llms": 1},
        {"n_queries": 0},
        {"n_skills": 0},
        {"n_skills": 7},
        {"missing_rate": 1.0},
        {"missing_rate": -0.1},
        {"score_type": "ordinal"},
        {"score_type": "binomial", "trials": 0},
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        simulate_pool(**kwargs)  # type: ignore[arg-type]


def test_fast() -> None:
    start = time.perf_counter()
    simulate_pool(n_queries=600, n_llms=10, seed=10)
    assert time.perf_counter() - start < 1.0
