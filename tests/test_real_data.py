"""Shape tests of the loaders on the real data in ``../shared/data`` (never copied here)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from irt_bayes.data import ResponseData, load_queries, load_responses
from irt_bayes.errors import DataError

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
RB = DATA / "routerbench"
M7 = DATA / "model7"

pytestmark = pytest.mark.realdata


@pytest.fixture(autouse=True)
def _need_real_data():
    if not DATA.is_dir():
        pytest.skip(f"real data folder not found at {DATA.resolve()} (expected ../shared/data)")


@cache
def _load(*names: str) -> ResponseData:
    """Load files by path relative to DATA; cached, the data are read-only."""
    return load_responses(*(DATA / n for n in names))


@cache
def _raw(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name)


# --------------------------------------------------------------------------------------
# RouterBench (wide format, 11 LLMs, with cost)
# --------------------------------------------------------------------------------------

RB_LLMS = {  # names in the README, without the org prefixes some files carry
    "WizardLM-13B-V1.2",
    "claude-instant-v1",
    "claude-v1",
    "claude-v2",
    "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview",
    "code-llama-instruct-34b-chat",
    "llama-2-70b-chat",
    "mistral-7b-chat",
    "mixtral-8x7b-chat",
    "Yi-34B-Chat",
}

# file, queries, eval_name, missing (query, LLM) pairs
RB_FILES = [
    ("arc_challenge_train", 1039, "arc-challenge", 12 * 1 + 8 * 10),
    ("arc_challenge_test", 445, "arc-challenge", 2 * 1 + 6 * 10),
    ("mbpp_train", 299, "mbpp", 0),
    ("mbpp_test", 128, "mbpp", 0),
]


def _rb(stem: str) -> ResponseData:
    return _load(f"routerbench/{stem}.csv.gz")


@pytest.mark.parametrize(("stem", "n_queries", "eval_name", "n_missing"), RB_FILES)
def test_routerbench_shape(stem, n_queries, eval_name, n_missing):
    data = _rb(stem)
    assert data.n_queries == n_queries
    assert data.n_llms == 11
    assert {m.rsplit("/", 1)[-1] for m in data.llms} == RB_LLMS
    assert "mistralai/mistral-7b-chat" in data.llms
    assert data.n_responses == n_queries * 11 - n_missing
    assert data.score_kind == "binary"
    assert set(data.responses["dataset"]) == {eval_name}
    assert not data.has_trials
    assert "split" not in data.responses
    assert not any("|" in c for c in data.responses.columns)


@pytest.mark.parametrize(("stem", "n_queries", "eval_name", "n_missing"), RB_FILES)
def test_routerbench_costs_present_and_positive(stem, n_queries, eval_name, n_missing):
    data = _rb(stem)
    assert data.has_cost
    cost = data.responses["cost"].to_numpy()
    assert np.isfinite(cost).all()
    assert (cost > 0).all()
    assert cost.max() < 1.0  # USD per query


@pytest.mark.parametrize(("stem", "n_queries", "eval_name", "n_missing"), RB_FILES)
def test_routerbench_query_ids_and_texts_follow_the_file(stem, n_queries, eval_name, n_missing):
    raw = _raw(f"routerbench/{stem}.csv.gz")
    data = _rb(stem)
    q = data.queries
    assert len(q) == len(raw)
    base_ids = q["query_id"].str.replace(r"#\d+$", "", regex=True)
    assert base_ids.tolist() == raw["sample_id"].astype(str).tolist()
    assert q["dataset"].tolist() == raw["eval_name"].tolist()
    for i in (0, len(raw) // 2, len(raw) - 1):
        assert q["query"].iloc[i] == "\n".join(ast.literal_eval(raw["prompt"].iloc[i]))


def test_routerbench_missing_pairs_stay_missing():
    data = _rb("arc_challenge_train")
    ds = data.to_xarray()
    observed = ds["observed"].values
    score = ds["score"].values
    assert observed.shape == (1039, 11)
    assert int((~observed).sum()) == 12 + 8 * 10
    assert np.isnan(score[~observed]).all()
    assert np.isnan(ds["cost"].values[~observed]).all()
    assert not np.isnan(score[observed]).any()
    assert set(np.unique(score[observed])) <= {0.0, 1.0}
    # 12 queries lack only gpt-3.5-turbo-1106, 8 have nothing but it
    per_query = (~observed).sum(axis=1)
    assert sorted(per_query[per_query > 0].tolist()) == [1] * 12 + [10] * 8
    gpt35 = list(ds["llm"].values).index("gpt-3.5-turbo-1106")
    assert int((~observed[:, gpt35]).sum()) == 12


def test_routerbench_duplicated_sample_ids_become_distinct_queries():
    raw = _raw("routerbench/arc_challenge_train.csv.gz")
    dup_ids = set(raw.loc[raw["sample_id"].duplicated(), "sample_id"])
    assert len(dup_ids) == 7
    data = _rb("arc_challenge_train")
    suffixed = {q for q in data.query_ids if "#" in q}
    assert suffixed == {f"{s}#2" for s in dup_ids}
    assert len(set(data.query_ids)) == 1039
    texts = data.queries.set_index("query_id")["query"]
    for s in dup_ids:
        assert s in texts.index
        assert texts[f"{s}#2"]  # a query of its own, with its own text


def test_routerbench_train_files_combine():
    data = _load("routerbench/arc_challenge_train.csv.gz", "routerbench/mbpp_train.csv.gz")
    assert data.n_queries == 1039 + 299 == 1338
    assert data.n_llms == 11
    assert data.n_responses == _rb("arc_challenge_train").n_responses + 299 * 11
    assert set(data.responses["dataset"]) == {"arc-challenge", "mbpp"}
    assert data.select(dataset="mbpp").n_queries == 299
    ds = data.to_xarray()
    assert dict(ds.sizes) == {"query": 1338, "llm": 11}
    assert {"text", "dataset"} <= set(ds.coords)
    assert ds["text"].dtype == object


def test_routerbench_arc_train_and_test_conflict():
    train = RB / "arc_challenge_train.csv.gz"
    test = RB / "arc_challenge_test.csv.gz"
    with pytest.raises(DataError) as info:
        load_responses(train, test)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(train) in msg and str(test) in msg
    assert "query_id 'arc-challenge." in msg
    assert "different text" in msg


def test_routerbench_prices_and_summary():
    data = _load("routerbench/arc_challenge_train.csv.gz", "routerbench/mbpp_train.csv.gz")
    ps = data.price_summary()
    assert list(ps.columns) == ["mean", "median", "min", "max", "total", "n"]
    assert set(ps.index) == set(data.llms)
    assert ps.index[-1] == "gpt-4-1106-preview"
    assert ps.index[0] == "mistralai/mistral-7b-chat"
    assert ps["mean"].is_monotonic_increasing
    assert int(ps["n"].sum()) == data.n_responses
    assert (ps["min"] > 0).all() and (ps["min"] <= ps["median"]).all()
    assert (ps["median"] <= ps["max"]).all()
    assert ps["total"].sum() == pytest.approx(data.responses["cost"].sum())
    prices = data.prices()
    assert list(prices.index) == data.llms
    assert prices.idxmax() == "gpt-4-1106-preview"
    assert prices["gpt-4-1106-preview"] == pytest.approx(ps.loc["gpt-4-1106-preview", "mean"])
    s = data.summary()
    assert set(s.index) == set(data.llms)
    assert list(s.columns) == ["n_responses", "accuracy", "mean_cost"]
    assert s["accuracy"].is_monotonic_decreasing
    assert s["accuracy"].between(0, 1).all()
    assert int(s["n_responses"].sum()) == data.n_responses
    assert s.index[0] == "gpt-4-1106-preview"  # strongest on arc + mbpp


def test_routerbench_load_queries():
    q = load_queries(RB / "arc_challenge_train.csv.gz")
    assert len(q) == 1039
    assert q["query_id"].is_unique
    assert {"query_id", "query", "dataset"} <= set(q.columns)
    assert q["query_id"].tolist() == _rb("arc_challenge_train").query_ids
    assert q["query"].str.strip().str.len().gt(0).all()


# --------------------------------------------------------------------------------------
# model7 (tidy, train/test split, 7 LLMs, no cost)
# --------------------------------------------------------------------------------------

M7_FILES = [  # file, train queries, test queries, rows
    ("mmlu", 2000, 4213, 43491),
    ("gsm8k", 1000, 1319, 16233),
    ("cmmlu", 2000, 3475, 38325),
    ("arc_challenge", 820, 352, 8204),
    ("humaneval", 115, 49, 1148),
]
M7_IDS = [f[0] for f in M7_FILES]


def _m7(stem: str) -> ResponseData:
    return _load(f"model7/{stem}.csv.gz")


@pytest.mark.parametrize(("stem", "n_train", "n_test", "n_rows"), M7_FILES, ids=M7_IDS)
def test_model7_shape(stem, n_train, n_test, n_rows):
    data = _m7(stem)
    assert data.n_responses == n_rows
    assert data.n_queries == n_train + n_test
    assert data.n_llms == 7
    assert not data.has_cost and not data.has_trials
    assert data.score_kind == "fraction"
    assert set(data.responses["dataset"]) == {stem}
    assert set(data.responses["split"]) == {"train", "test"}
    score = data.responses["score"].to_numpy()
    assert ((score >= 0) & (score <= 1)).all()
    assert data.prices().isna().all()
    assert data.price_summary()["mean"].isna().all()


@pytest.mark.parametrize(("stem", "n_train", "n_test", "n_rows"), M7_FILES, ids=M7_IDS)
def test_model7_splits(stem, n_train, n_test, n_rows):
    data = _m7(stem)
    train = data.select(split="train")
    test = data.select(split="test")
    assert train.n_queries == n_train
    assert test.n_queries == n_test
    assert train.n_responses + test.n_responses == n_rows
    assert not set(train.query_ids) & set(test.query_ids)
    assert train.n_llms == test.n_llms == 7


def test_model7_same_llms_everywhere():
    llms = {stem: frozenset(_m7(stem).llms) for stem in M7_IDS}
    assert len(set(llms.values())) == 1
    assert "mistralai/Mistral-7B-v0.1" in llms["mmlu"]


@pytest.mark.parametrize("stem", ["gsm8k", "humaneval"])
def test_model7_generation_scores_are_tenths(stem):
    score = _m7(stem).responses["score"].to_numpy()
    np.testing.assert_allclose(score * 10, np.round(score * 10), atol=1e-9)


def test_model7_to_xarray_is_dense():
    data = _m7("humaneval")
    ds = data.to_xarray()
    assert dict(ds.sizes) == {"query": 164, "llm": 7}
    assert bool(ds["observed"].all())
    assert {"text", "dataset", "split"} <= set(ds.coords)
    assert set(ds.data_vars) == {"score", "observed"}
    assert int((ds["split"] == "train").sum()) == 115


def test_model7_all_files_combine():
    data = _load(*(f"model7/{s}.csv.gz" for s in M7_IDS))
    assert data.n_queries == sum(a + b for _, a, b, _ in M7_FILES)
    assert data.n_responses == sum(r for *_, r in M7_FILES)
    assert data.select(split="train").n_queries == sum(a for _, a, _, _ in M7_FILES)
    assert data.select(dataset=["gsm8k", "humaneval"]).n_queries == 2319 + 164


def test_model7_load_queries():
    q = load_queries(M7 / "humaneval.csv.gz")
    assert len(q) == 164
    assert q["query_id"].is_unique
    assert list(q.columns) == ["query_id", "query", "dataset", "split"]
    assert (q["split"] == "train").sum() == 115
    assert q["query_id"].tolist() == _m7("humaneval").query_ids
