"""Contract and bad-input tests for :mod:`irt_bayes.data` on small files built in tmp_path."""

from __future__ import annotations

import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irt_bayes.data import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    ResponseData,
    has_text,
    load_queries,
    load_responses,
    read_table,
)
from irt_bayes.errors import DataError, IrtBayesError

# --------------------------------------------------------------------------------------
# helpers (kept local to this file on purpose; conftest.py belongs to the lead)
# --------------------------------------------------------------------------------------

TEXTS = {
    "q1": "What is 2+2?",
    "q2": "Capital of France?",
    "q3": "Name a prime number.",
}


def tidy_frame(**extra: list) -> pd.DataFrame:
    """Five responses, 3 queries x 2 LLMs; (q3, small) is missing on purpose."""
    df = pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q2", "q2", "q3"],
            "query": [TEXTS[q] for q in ["q1", "q1", "q2", "q2", "q3"]],
            "llm": ["small", "big", "small", "big", "big"],
            "score": [0.0, 1.0, 1.0, 1.0, 0.0],
        }
    )
    for col, values in extra.items():
        df[col] = values
    return df


def full_tidy_frame() -> pd.DataFrame:
    """``tidy_frame`` with every optional column; scores are k/10."""
    return tidy_frame(
        score=[0.3, 1.0, 0.5, 0.9, 0.0],
        cost=[1e-4, 2e-3, 1e-4, 2e-3, 3e-3],
        trials=[10, 10, 10, 10, 10],
        dataset=["math", "math", "geo", "geo", "math"],
        split=["train", "train", "test", "test", "train"],
    )


def wide_frame() -> pd.DataFrame:
    """RouterBench-style wide table: 3 queries, 2 LLMs, (s3, org/model-a) missing."""
    return pd.DataFrame(
        {
            "sample_id": ["s1", "s2", "s3"],
            "prompt": [
                str(["Add 2 and 2.", "Answer:"]),
                str(["Capital of France?"]),
                str(["Name a prime."]),
            ],
            "eval_name": ["math", "geo", "math"],
            "org/model-a": [1.0, 0.0, np.nan],
            "model-b": [1.0, 1.0, 0.0],
            "org/model-a|total_cost": [1e-4, 2e-4, np.nan],
            "model-b|total_cost": [3e-3, 3e-3, 4e-3],
            "org/model-a|model_response": ["4", "Paris", np.nan],
            "model-b|model_response": ["4", "Paris", "7"],
            "oracle_model_to_route_to": ["org/model-a", "model-b", "model-b"],
        }
    )


def write(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` in the format named by the suffix of ``path``."""
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        df.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        df.to_csv(path, index=False, sep="\t")
    elif name.endswith(".parquet"):
        df.infer_objects().to_parquet(path, index=False)
    elif name.endswith((".pkl", ".pkl.gz")):
        df.to_pickle(path)
    else:  # pragma: no cover - test helper misuse
        raise AssertionError(f"no writer for {name}")
    return path


def data_error(func, *args, needles=(), **kwargs) -> str:
    """Call ``func`` expecting a one-line DataError that contains every needle."""
    with pytest.raises(DataError) as info:
        func(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


def pairs_to_scores(data: ResponseData) -> dict[tuple[str, str], float]:
    r = data.responses
    return dict(zip(zip(r["query_id"], r["llm"], strict=True), r["score"], strict=True))


# --------------------------------------------------------------------------------------
# happy paths: tidy format
# --------------------------------------------------------------------------------------

FORMATS = ["t.csv", "t.csv.gz", "t.tsv", "t.parquet", "t.pkl", "t.pkl.gz"]


def test_error_type_is_a_value_error_and_package_error():
    assert issubclass(DataError, ValueError)
    assert issubclass(DataError, IrtBayesError)
    assert str(DataError("bad", source="f.csv")) == "f.csv: bad"
    assert str(DataError("bad")) == "bad"


def test_contract_columns():
    assert REQUIRED_COLUMNS == ("query_id", "query", "llm", "score")
    assert set(OPTIONAL_COLUMNS) == {"cost", "trials", "dataset", "split"}


@pytest.mark.parametrize("name", FORMATS)
def test_tidy_roundtrip_every_format(tmp_path, name):
    path = write(tidy_frame(), tmp_path / name)
    data = load_responses(path, allow_pickle=True)
    assert (data.n_queries, data.n_llms, data.n_responses) == (3, 2, 5)
    assert len(data) == 5
    assert data.llms == ["small", "big"]
    assert data.query_ids == ["q1", "q2", "q3"]
    assert data.score_kind == "binary"
    assert not data.has_cost and not data.has_trials and not data.has_dataset
    assert data.source == str(path)
    assert pairs_to_scores(data) == pairs_to_scores(ResponseData.from_frame(tidy_frame()))
    assert dict(zip(data.queries["query_id"], data.queries["query"], strict=True)) == TEXTS


def test_read_table_returns_the_frame(tmp_path):
    path = write(tidy_frame(), tmp_path / "t.csv.gz")
    df = read_table(str(path))
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(REQUIRED_COLUMNS)
    assert len(df) == 5


@pytest.mark.parametrize("name", ["t.csv", "t.parquet", "t.pkl"])
def test_tidy_with_all_optional_columns(tmp_path, name):
    path = write(full_tidy_frame(), tmp_path / name)
    data = load_responses(path, allow_pickle=True)
    assert data.has_cost and data.has_trials and data.has_dataset
    assert data.score_kind == "binomial"
    r = data.responses
    assert list(r.columns) == [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
    assert r["trials"].dtype == np.int64
    assert r["cost"].dtype == np.float64
    assert r["score"].dtype == np.float64
    np.testing.assert_allclose(r["score"], [0.3, 1.0, 0.5, 0.9, 0.0])
    np.testing.assert_allclose(r["cost"], [1e-4, 2e-3, 1e-4, 2e-3, 3e-3])
    assert list(data.queries.columns) == ["query_id", "query", "dataset", "split"]
    assert "cost" in repr(data) and "5 responses" in repr(data)


def test_fraction_scores_without_trials():
    data = ResponseData.from_frame(tidy_frame(score=[0.25, 1.0, 0.5, 0.0, 0.75]))
    assert data.score_kind == "fraction"


def test_unknown_columns_are_dropped():
    df = tidy_frame(notes=["a", "b", "c", "d", "e"])
    data = ResponseData.from_frame(df)
    assert "notes" not in data.responses.columns


def test_ids_and_texts_stay_strings_from_csv(tmp_path):
    # Numeric-looking ids must not be parsed as numbers ("007" -> 7.0); numeric-only
    # query texts are still texts.
    path = tmp_path / "ids.csv"
    path.write_text("query_id,query,llm,score\n007,42,1,1\n1e3,yo,1,0\n007,42,2,0\n")
    data = load_responses(path)
    assert data.query_ids == ["007", "1e3"]
    assert data.llms == ["1", "2"]
    assert data.queries["query"].tolist() == ["42", "yo"]
    assert load_queries(path)["query_id"].tolist() == ["007", "1e3"]


def test_llm_names_lose_the_spaces_around_them(tmp_path):
    path = tmp_path / "pad.csv"
    path.write_text("query_id,query,llm,score\nq1,a, gpt-4 ,1\nq2,b,gpt-4,0\n")
    assert load_responses(path).llms == ["gpt-4"]
    path.write_text("query_id,query,llm,score\nq1,a, gpt-4,1\nq1,a,gpt-4,0\n")
    data_error(load_responses, path, needles=["pad.csv"])  # now a conflicting duplicate


def test_identical_duplicate_rows_are_dropped(tmp_path):
    df = full_tidy_frame()
    df = pd.concat([df, df.iloc[[0, 3]]], ignore_index=True)
    data = load_responses(write(df, tmp_path / "dup.csv"))
    assert data.n_responses == 5
    assert not data.responses.duplicated(["query_id", "llm"]).any()


def test_from_frame_does_not_mutate_its_input():
    df = tidy_frame(cost=[1, 2, 3, 4, 5])
    before = df.copy()
    ResponseData.from_frame(df)
    pd.testing.assert_frame_equal(df, before)


# --------------------------------------------------------------------------------------
# happy paths: RouterBench wide format
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w.csv", "w.csv.gz", "w.pkl"])
def test_wide_format_is_converted_to_tidy(tmp_path, name):
    path = write(wide_frame(), tmp_path / name)
    data = load_responses(path, allow_pickle=True)
    assert data.llms == ["org/model-a", "model-b"]
    assert data.query_ids == ["s1", "s2", "s3"]
    assert data.n_responses == 5  # (s3, org/model-a) is missing and stays missing
    assert ("s3", "org/model-a") not in pairs_to_scores(data)
    assert data.has_cost and data.has_dataset and data.score_kind == "binary"
    r = data.responses
    assert not any("|" in c for c in r.columns), "model_response columns must be ignored"
    assert "oracle_model_to_route_to" not in r.columns
    assert list(r.columns) == ["query_id", "query", "llm", "score", "cost", "dataset"]
    q = data.queries.set_index("query_id")
    assert q.loc["s1", "query"] == "Add 2 and 2.\nAnswer:"
    assert q.loc["s2", "query"] == "Capital of France?"
    assert q["dataset"].to_dict() == {"s1": "math", "s2": "geo", "s3": "math"}
    cost = r.set_index(["query_id", "llm"])["cost"]
    assert cost[("s2", "org/model-a")] == pytest.approx(2e-4)
    assert cost[("s3", "model-b")] == pytest.approx(4e-3)
    ds = data.to_xarray()
    assert not bool(ds["observed"].sel(query="s3", llm="org/model-a"))
    assert math.isnan(float(ds["score"].sel(query="s3", llm="org/model-a")))
    assert math.isnan(float(ds["cost"].sel(query="s3", llm="org/model-a")))


def test_wide_pickle_with_list_prompts_and_object_scores():
    # A pickled table may hold real lists as prompts and object-dtype score columns
    # with None for missing pairs.
    df = wide_frame().drop(columns=["org/model-a|total_cost", "model-b|total_cost"])
    df["prompt"] = pd.Series(
        [["Add 2 and 2.", "Answer:"], ["Capital of France?"], ("Name a prime.",)], dtype=object
    )
    df["org/model-a"] = pd.Series([1, 0, None], dtype=object)
    data = ResponseData.from_frame(df, source="w.pkl")
    assert not data.has_cost
    assert data.n_responses == 5
    assert pairs_to_scores(data)[("s2", "org/model-a")] == 0.0
    assert data.queries["query"].iloc[0] == "Add 2 and 2.\nAnswer:"


def test_wide_duplicate_sample_ids_become_distinct_queries():
    df = pd.concat([wide_frame(), wide_frame().iloc[[0, 0]]], ignore_index=True)
    df.loc[3, "prompt"] = str(["Add 3 and 3."])
    df.loc[4, "prompt"] = str(["Add 4 and 4."])
    data = ResponseData.from_frame(df)
    assert data.query_ids == ["s1", "s2", "s3", "s1#2", "s1#3"]
    q = data.queries.set_index("query_id")["query"]
    assert q["s1#2"] == "Add 3 and 3."
    assert q["s1#3"] == "Add 4 and 4."
    assert data.n_queries == 5


def test_wide_prompt_that_is_a_plain_string():
    df = wide_frame()
    df.loc[1, "prompt"] = "Capital of France?"
    data = ResponseData.from_frame(df)
    assert data.queries["query"].iloc[1] == "Capital of France?"


# --------------------------------------------------------------------------------------
# views: to_xarray, prices, summary
# --------------------------------------------------------------------------------------


def test_to_xarray_dims_coords_and_missing_pairs():
    data = ResponseData.from_frame(full_tidy_frame())
    ds = data.to_xarray()
    assert dict(ds["score"].sizes) == {"query": 3, "llm": 2}
    assert list(ds["query"].values) == ["q1", "q2", "q3"]
    assert list(ds["llm"].values) == ["small", "big"]
    assert list(ds["text"].values) == [TEXTS["q1"], TEXTS["q2"], TEXTS["q3"]]
    assert list(ds["dataset"].values) == ["math", "geo", "math"]
    assert list(ds["split"].values) == ["train", "test", "train"]
    assert set(ds.data_vars) == {"score", "cost", "trials", "observed"}
    observed = ds["observed"].values
    assert observed.dtype == bool
    assert observed.sum() == data.n_responses
    assert not observed[2, 0]
    for var in ("score", "cost", "trials"):
        arr = ds[var].values
        assert np.isnan(arr[2, 0]), var
        assert not np.isnan(arr[observed]).any(), var
    assert float(ds["score"].sel(query="q2", llm="big")) == pytest.approx(0.9)
    assert float(ds["trials"].sel(query="q1", llm="small")) == 10
    assert ds.attrs["source"] == "<DataFrame>"


def test_to_xarray_never_fills_missing_with_zero():
    data = ResponseData.from_frame(tidy_frame())
    score = data.to_xarray()["score"].values
    assert np.isnan(score).sum() == 1
    assert (score == 0).sum() == 2


def test_prices_and_price_summary():
    data = ResponseData.from_frame(tidy_frame(cost=[1.0, 10.0, 3.0, 20.0, 30.0]))
    prices = data.prices()
    assert list(prices.index) == ["small", "big"]
    assert prices.name == "price"
    assert prices.to_dict() == {"small": 2.0, "big": 20.0}
    ps = data.price_summary()
    assert list(ps.index) == ["small", "big"]  # sorted by mean cost
    assert list(ps.columns) == ["mean", "median", "min", "max", "total", "n"]
    assert ps.loc["big"].to_dict() == {
        "mean": 20.0,
        "median": 20.0,
        "min": 10.0,
        "max": 30.0,
        "total": 60.0,
        "n": 3,
    }


def test_prices_without_cost_are_nan():
    data = ResponseData.from_frame(tidy_frame())
    assert data.prices().isna().all()
    assert list(data.prices().index) == ["small", "big"]
    ps = data.price_summary()
    assert list(ps.index) == ["small", "big"]
    assert ps.isna().all().all()


def test_summary_accuracy_counts_and_order():
    data = ResponseData.from_frame(tidy_frame(cost=[1.0, 10.0, 3.0, 20.0, 30.0]))
    s = data.summary()
    assert list(s.index) == ["big", "small"]  # best first
    assert s.loc["big", "n_responses"] == 3
    assert s.loc["big", "accuracy"] == pytest.approx(2 / 3)
    assert s.loc["small", "accuracy"] == pytest.approx(0.5)
    assert s.loc["small", "mean_cost"] == pytest.approx(2.0)
    assert "mean_cost" not in ResponseData.from_frame(tidy_frame()).summary().columns


# --------------------------------------------------------------------------------------
# select and concat
# --------------------------------------------------------------------------------------


def test_select_by_llms_queries_split_dataset():
    data = ResponseData.from_frame(full_tidy_frame(), source="src.csv")
    by_llm = data.select(llms=["small"])
    assert by_llm.llms == ["small"] and by_llm.n_responses == 2
    assert by_llm.source == "src.csv"
    by_q = data.select(queries=["q3", "q1"])
    assert set(by_q.query_ids) == {"q1", "q3"} and by_q.n_responses == 3
    train = data.select(split="train")
    assert set(train.query_ids) == {"q1", "q3"}
    assert set(train.responses["split"]) == {"train"}
    geo = data.select(dataset="geo")
    assert geo.query_ids == ["q2"]
    both = data.select(dataset=["geo", "math"])
    assert both.n_responses == 5
    combined = data.select(llms=["big"], split="train")
    assert combined.n_responses == 2
    # selecting does not touch the original
    assert data.n_responses == 5


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"llms": ["small", "nope"]}, ["unknown LLM 'nope'"]),
        ({"queries": ["q9"]}, ["unknown query_id 'q9'"]),
        ({"split": "valid"}, ["leaves no responses"]),
        ({"llms": ["small"], "queries": ["q3"]}, ["leaves no responses"]),
    ],
)
def test_select_errors(kwargs, needles):
    data = ResponseData.from_frame(full_tidy_frame(), source="src.csv")
    data_error(data.select, **kwargs, needles=["src.csv", *needles])


def test_select_on_a_column_that_is_absent():
    data = ResponseData.from_frame(tidy_frame(), source="src.csv")
    data_error(data.select, split="train", needles=["src.csv", "'split'"])
    data_error(data.select, dataset="math", needles=["src.csv", "'dataset'"])


def test_concat_of_two_files(tmp_path):
    a = write(full_tidy_frame().iloc[:3], tmp_path / "a.csv")
    b = write(full_tidy_frame().iloc[2:], tmp_path / "b.parquet")  # row 2 in both
    data = load_responses(a, b)
    assert data.n_responses == 5
    assert data.n_queries == 3
    assert str(a) in data.source and str(b) in data.source
    assert pairs_to_scores(data) == pairs_to_scores(ResponseData.from_frame(full_tidy_frame()))


def test_concat_with_one_part_is_that_part():
    data = ResponseData.from_frame(tidy_frame())
    assert ResponseData.concat([data]) is data
    data_error(ResponseData.concat, [], needles=["no data"])


def test_concat_conflicting_scores_across_files(tmp_path):
    a = write(tidy_frame(), tmp_path / "a.csv")
    other = tidy_frame()
    other.loc[0, "score"] = 1.0
    b = write(other, tmp_path / "b.csv")
    data_error(
        load_responses,
        a,
        b,
        needles=[str(a), str(b), "conflicting", "query_id='q1'", "llm='small'"],
    )


def test_concat_same_query_id_different_text_across_files(tmp_path):
    a = write(tidy_frame(), tmp_path / "a.csv")
    other = tidy_frame()
    other.loc[other["query_id"] == "q2", "query"] = "Capital of Spain?"
    b = write(other, tmp_path / "b.csv")
    data_error(load_responses, a, b, needles=[str(a), str(b), "'q2'", "different text"])


# --------------------------------------------------------------------------------------
# load_queries
# --------------------------------------------------------------------------------------


def test_load_queries_tidy_and_wide(tmp_path):
    tidy = write(full_tidy_frame(), tmp_path / "t.csv")
    q = load_queries(tidy)
    assert q["query_id"].tolist() == ["q1", "q2", "q3"]
    assert list(q.columns) == ["query_id", "query", "dataset", "split"]
    wide = write(wide_frame(), tmp_path / "w.csv.gz")
    q = load_queries(wide)
    assert q["query_id"].tolist() == ["s1", "s2", "s3"]
    assert q["query"].iloc[0] == "Add 2 and 2.\nAnswer:"
    assert q["dataset"].tolist() == ["math", "geo", "math"]
    both = load_queries(tidy, wide)
    assert both["query_id"].tolist() == ["q1", "q2", "q3", "s1", "s2", "s3"]


def test_load_queries_without_scores(tmp_path):
    only_prompts = write(wide_frame()[["sample_id", "prompt"]], tmp_path / "p.csv")
    q = load_queries(only_prompts)
    assert q["query_id"].tolist() == ["s1", "s2", "s3"]
    plain = write(pd.DataFrame({"query_id": ["a"], "query": ["hello"]}), tmp_path / "q.csv")
    assert load_queries(plain)["query"].tolist() == ["hello"]


def test_load_queries_bad_input(tmp_path):
    no_text = write(pd.DataFrame({"query_id": ["a"]}), tmp_path / "q.csv")
    data_error(load_queries, no_text, needles=[str(no_text), "'query'"])
    empty = write(pd.DataFrame({"query_id": ["a", "b"], "query": ["x", " "]}), tmp_path / "e.csv")
    data_error(load_queries, empty, needles=[str(empty), "'query'", "row 2"])
    data_error(load_queries, needles=["no query files"])


# --------------------------------------------------------------------------------------
# bad input: tidy contract (each case written to a CSV file)
# --------------------------------------------------------------------------------------


def _set(col, row, value):
    def mutate(df):
        df = df.astype({col: object})
        df.loc[row, col] = value
        return df

    return mutate


def _conflicting_duplicate(df):
    extra = df.iloc[[0]].assign(score=1.0)
    return pd.concat([df, extra], ignore_index=True)


def _two_texts(df):
    df.loc[1, "query"] = "What is 2 + 2 ?"
    return df


BAD_TIDY = {
    "score NaN": (_set("score", 2, float("nan")), ["'score'", "nan", "row 3", "query_id='q2'"]),
    "score negative": (_set("score", 1, -0.1), ["'score'", "-0.1", "row 2", "llm='big'"]),
    "score above 1": (_set("score", 4, 1.5), ["'score'", "1.5", "row 5", "query_id='q3'"]),
    "score text": (_set("score", 0, "yes"), ["'score'", "'yes'", "row 1"]),
    "cost negative": (_set("cost", 3, -0.01), ["'cost'", "-0.01", "row 4", "query_id='q2'"]),
    "cost NaN": (_set("cost", 0, float("nan")), ["'cost'", "nan", "row 1", "llm='small'"]),
    "cost inf": (_set("cost", 2, float("inf")), ["'cost'", "inf", "row 3"]),
    "trials zero": (_set("trials", 1, 0), ["'trials'", "value 0 ", "row 2"]),
    "trials negative": (_set("trials", 2, -3), ["'trials'", "value -3 ", "row 3"]),
    "trials fraction": (_set("trials", 3, 2.5), ["'trials'", "value 2.5 ", "row 4"]),
    "trials text": (_set("trials", 0, "ten"), ["'trials'", "'ten'", "row 1"]),
    "trials inf": (_set("trials", 4, float("inf")), ["'trials'", "inf", "row 5"]),
    "trials NaN": (_set("trials", 4, float("nan")), ["'trials'", "nan", "row 5"]),
    "score not k/trials": (
        _set("score", 2, 0.55),
        ["'score'", "0.55", "k/trials", "trials=10", "row 3", "query_id='q2'"],
    ),
    "conflicting duplicate": (
        _conflicting_duplicate,
        ["conflicting duplicate", "query_id='q1'", "llm='small'", "rows 1, 6"],
    ),
    "query_id with two texts": (_two_texts, ["query_id 'q1'", "'query'", "distinct"]),
    "empty query text": (_set("query", 2, ""), ["'query'", "empty", "row 3", "query_id='q2'"]),
    "whitespace query text": (_set("query", 4, "   "), ["'query'", "empty", "row 5"]),
    "empty llm": (_set("llm", 3, ""), ["'llm'", "empty", "row 4"]),
    "whitespace llm": (_set("llm", 3, "  "), ["'llm'", "empty", "row 4"]),
    "empty query_id": (_set("query_id", 1, ""), ["'query_id'", "empty", "row 2"]),
}


@pytest.mark.parametrize("case", list(BAD_TIDY))
@pytest.mark.parametrize("name", ["bad.csv", "bad.parquet", "bad.pkl"])
def test_bad_tidy_file_raises_one_line_data_error(tmp_path, case, name):
    mutate, needles = BAD_TIDY[case]
    if name.endswith(".parquet") and case in {"score text", "trials text"}:
        pytest.skip("parquet cannot store a mixed text/number column")
    df = mutate(full_tidy_frame())
    path = write(df, tmp_path / name)
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), *needles])


@pytest.mark.parametrize("case", list(BAD_TIDY))
def test_bad_tidy_frame_raises_from_from_frame(case):
    mutate, needles = BAD_TIDY[case]
    df = mutate(full_tidy_frame())
    data_error(ResponseData.from_frame, df, source="mem", needles=["mem: ", *needles])


@pytest.mark.parametrize("column", REQUIRED_COLUMNS)
def test_missing_required_column(tmp_path, column):
    path = write(full_tidy_frame().drop(columns=column), tmp_path / "t.csv")
    msg = data_error(
        load_responses,
        path,
        allow_pickle=True,
        needles=[str(path), "missing required", repr(column)],
    )
    others = [c for c in REQUIRED_COLUMNS if c != column]
    assert all(f"column {c!r}" not in msg for c in others)


def test_several_missing_required_columns_are_all_named(tmp_path):
    path = write(full_tidy_frame().drop(columns=["llm", "score"]), tmp_path / "t.csv")
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), "'llm'", "'score'"])


def test_header_only_and_empty_file(tmp_path):
    header = tmp_path / "h.csv"
    header.write_text("query_id,query,llm,score\n")
    data_error(load_responses, header, needles=[str(header), "no rows"])
    empty = tmp_path / "e.csv"
    empty.write_text("")
    data_error(load_responses, empty, needles=[str(empty), "cannot read"])
    queries = tmp_path / "q.csv"
    queries.write_text("query_id,query\n")
    data_error(load_queries, queries, needles=[str(queries), "no rows"])


def test_from_frame_rejects_non_frames():
    data_error(ResponseData.from_frame, [{"query_id": "a"}], needles=["DataFrame", "list"])


def test_load_responses_needs_a_path():
    data_error(load_responses, needles=["no data files"])


# --------------------------------------------------------------------------------------
# bad input: RouterBench wide format
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w.csv", "w.pkl"])
def test_wide_llm_column_entirely_empty(tmp_path, name):
    df = wide_frame()
    df["model-b"] = None  # object column of None in a pickle, empty cells in a CSV
    path = write(df, tmp_path / name)
    data_error(
        load_responses,
        path,
        allow_pickle=True,
        needles=[str(path), "'model-b'", "has no responses"],
    )


@pytest.mark.parametrize("name", ["w.csv", "w.pkl"])
def test_wide_row_without_any_score(tmp_path, name):
    df = wide_frame()
    df.loc[1, ["org/model-a", "model-b"]] = np.nan
    path = write(df, tmp_path / name)
    data_error(
        load_responses,
        path,
        allow_pickle=True,
        needles=[str(path), "'s2'", "row 2", "has no responses"],
    )


def test_wide_llm_without_cost_column(tmp_path):
    path = write(wide_frame().drop(columns="model-b|total_cost"), tmp_path / "w.csv")
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), "'model-b|total_cost'"])


@pytest.mark.parametrize(
    "prompt",
    ["['unclosed", "[Add 2 and 2]", "['a'] + ['b']", "[{[1]: 2}]"],
)
def test_wide_prompt_not_a_literal_list(tmp_path, prompt):
    df = wide_frame()
    df.loc[1, "prompt"] = prompt
    path = write(df, tmp_path / "w.csv")
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), "'prompt'", "row 2"])


def test_wide_empty_prompt(tmp_path):
    df = wide_frame()
    df.loc[2, "prompt"] = str(["   "])
    path = write(df, tmp_path / "w.csv")
    data_error(
        load_responses,
        path,
        allow_pickle=True,
        needles=[str(path), "'query'", "empty", "'s3'", "row 3"],
    )


def test_wide_non_numeric_score(tmp_path):
    df = wide_frame().astype({"model-b": object})
    df.loc[1, "model-b"] = "yes"
    path = write(df, tmp_path / "w.csv")
    data_error(
        load_responses, path, allow_pickle=True, needles=[str(path), "'model-b'", "'yes'", "row 2"]
    )


def test_wide_non_numeric_cost_names_the_value(tmp_path):
    df = wide_frame().astype({"model-b|total_cost": object})
    df.loc[2, "model-b|total_cost"] = "abc"
    path = write(df, tmp_path / "w.csv")
    data_error(
        load_responses,
        path,
        needles=[str(path), "'cost'", "'abc'", "row 3 ", "query_id='s3'", "llm='model-b'"],
    )


def test_wide_cost_of_a_missing_pair_is_ignored(tmp_path):
    df = wide_frame().astype({"org/model-a|total_cost": object})
    df.loc[2, "org/model-a|total_cost"] = "n/a"  # (s3, org/model-a) has no score
    data = load_responses(write(df, tmp_path / "w.csv"))
    assert data.n_responses == 5
    assert data.responses["cost"].dtype == np.float64


@pytest.mark.parametrize(
    ("column", "value", "needles"),
    [
        ("model-b", 2.0, ["'score'", "2.0", "llm='model-b'"]),
        ("model-b|total_cost", -1.0, ["'cost'", "-1.0", "llm='model-b'"]),
        ("model-b|total_cost", np.nan, ["'cost'", "nan", "llm='model-b'"]),
    ],
)
def test_wide_bad_values_name_the_row_of_the_file(tmp_path, column, value, needles):
    # The reported row is the row in the wide file (3 rows), not in the tidy frame.
    df = wide_frame()
    df.loc[2, column] = value
    path = write(df, tmp_path / "w.csv")
    data_error(
        load_responses,
        path,
        allow_pickle=True,
        needles=[str(path), *needles, "row 3 ", "query_id='s3'"],
    )


# --------------------------------------------------------------------------------------
# bad input: files
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["r.xlsx", "r.json", "r.csv.json", "r.txt.gz", "noext"])
def test_unknown_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_text("query_id,query,llm,score\nq1,hi,m,1\n")
    msg = data_error(
        load_responses, path, allow_pickle=True, needles=[str(path), "unknown file format"]
    )
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix:
        assert repr(suffix) in msg


def test_missing_file(tmp_path):
    path = tmp_path / "absent.csv"
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), "no such file"])
    data_error(read_table, tmp_path, needles=[str(tmp_path), "no such file"])


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("bad.csv.gz", b"this is not gzip data"),
        ("bad.parquet", b"PAR1 definitely not parquet"),
        ("bad.pkl", b"not a pickle"),
        ("bad.pkl.gz", gzip.compress(b"not a pickle", mtime=0)),
    ],
    # Ids from the file name alone: xdist workers must collect identical ids, and
    # gzip bytes carry a timestamp unless told otherwise.
    ids=["bad.csv.gz", "bad.parquet", "bad.pkl", "bad.pkl.gz"],
)
def test_corrupt_bytes_are_unreadable(tmp_path, name, payload):
    path = tmp_path / name
    path.write_bytes(payload)
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), "cannot read"])


def test_truncated_gzip_csv(tmp_path):
    good = gzip.compress(tidy_frame().to_csv(index=False).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(good[: len(good) // 2])
    data_error(load_responses, path, allow_pickle=True, needles=[str(path), "cannot read"])


@pytest.mark.parametrize("obj", [[1, 2, 3], {"query_id": ["q1"]}, pd.Series([1.0]), np.zeros(3)])
def test_pickle_holding_a_non_frame(tmp_path, obj):
    path = tmp_path / "obj.pkl"
    with path.open("wb") as fh:
        pickle.dump(obj, fh)
    data_error(
        load_responses,
        path,
        allow_pickle=True,
        needles=[str(path), type(obj).__name__, "not a table"],
    )


# --------------------------------------------------------------------------------------
# property tests
# --------------------------------------------------------------------------------------

_names = st.text(min_size=1, max_size=8).filter(has_text)
# LLM names as the loader keeps them: without spaces around them
_llm_names = _names.map(str.strip).filter(has_text)


@st.composite
def tidy_frames(draw, with_duplicates: bool = True) -> pd.DataFrame:
    qids = draw(st.lists(_names, min_size=1, max_size=6, unique=True))
    llms = draw(st.lists(_llm_names, min_size=1, max_size=4, unique=True))
    texts = {q: draw(_names) for q in qids}
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(qids), st.sampled_from(llms)),
            min_size=1,
            max_size=20,
            unique=True,
        )
    )
    n = len(pairs)
    scores = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
    df = pd.DataFrame(
        {
            "query_id": [q for q, _ in pairs],
            "query": [texts[q] for q, _ in pairs],
            "llm": [m for _, m in pairs],
            "score": scores,
        }
    )
    if draw(st.booleans()):
        df["cost"] = draw(
            st.lists(st.floats(0, 1e3, allow_subnormal=False), min_size=n, max_size=n)
        )
    if with_duplicates:
        repeat = draw(st.lists(st.integers(0, n - 1), max_size=3))
        df = pd.concat([df, df.iloc[repeat]], ignore_index=True)
    return df


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tidy_frames())
def test_property_valid_frames_are_accepted_and_preserved(df):
    data = ResponseData.from_frame(df)
    expected = dict(zip(zip(df["query_id"], df["llm"], strict=True), df["score"], strict=True))
    assert data.n_responses == len(expected)
    assert data.n_queries == df["query_id"].nunique()
    assert data.n_llms == df["llm"].nunique()
    assert pairs_to_scores(data) == expected
    if "cost" in df:
        got = dict(
            zip(
                zip(data.responses["query_id"], data.responses["llm"], strict=True),
                data.responses["cost"],
                strict=True,
            )
        )
        want = dict(zip(zip(df["query_id"], df["llm"], strict=True), df["cost"], strict=True))
        assert got == want
    ds = data.to_xarray()
    assert int(ds["observed"].sum()) == data.n_responses
    assert int(np.isnan(ds["score"].values).sum()) == data.n_queries * data.n_llms - len(expected)


_bad_scores = st.one_of(
    st.floats(max_value=-1e-9, allow_nan=False),
    st.floats(min_value=1 + 1e-9, allow_nan=False),
    st.just(float("nan")),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tidy_frames(with_duplicates=False), _bad_scores, st.data())
def test_property_one_bad_score_is_rejected(df, bad, data):
    row = data.draw(st.integers(0, len(df) - 1))
    df.loc[row, "score"] = bad
    with pytest.raises(DataError) as info:
        ResponseData.from_frame(df, source="prop")
    msg = str(info.value)
    assert "\n" not in msg
    assert "score" in msg
    assert f"row {row + 1} " in msg


# --------------------------------------------------------------------------------------
# untrusted files: no code from data, ids as text, no silent merging, no empty fits
# --------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs ``os.mkdir(path)``: a stand-in for any code a file may carry."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.mkdir, (self.path,))


def test_pickle_is_refused_by_default_and_runs_nothing(tmp_path):
    ran = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(ran)))
    for loader in (load_responses, load_queries, read_table):
        data_error(loader, path, needles=[str(path), "pickle", "--trust-pickle"])
    assert not ran.exists()


def test_pickle_refused_by_the_cli_in_one_line(tmp_path, capsys):
    from irt_bayes.cli import main

    ran = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(ran)))
    assert main(["describe", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trust-pickle" in err[0] and "Traceback" not in err[0]
    assert not ran.exists()


def test_trusted_pickle_loads(tmp_path):
    path = write(tidy_frame(), tmp_path / "t.pkl")
    assert load_responses(path, allow_pickle=True).n_queries == 3


def test_ids_are_text_exactly_as_written(tmp_path):
    a = write(pd.DataFrame({"query_id": ["7"], "query": ["a"]}), tmp_path / "a.csv")
    b = write(pd.DataFrame({"query_id": ["007"], "query": ["b"]}), tmp_path / "b.csv")
    assert load_queries(a, b)["query_id"].tolist() == ["7", "007"]
    ints = write(pd.DataFrame({"query_id": [7, 8], "query": ["a", "b"]}), tmp_path / "i.parquet")
    assert load_queries(ints)["query_id"].tolist() == ["7", "8"]


@pytest.mark.parametrize("loader", [load_queries, load_responses])
def test_float_ids_are_refused(tmp_path, loader):
    df = tidy_frame()
    df["query_id"] = [6.0, 6.0, 7.0, 7.0, 8.0]
    path = write(df, tmp_path / "f.parquet")
    data_error(loader, path, needles=[str(path), "'query_id'", "6.0", "text"])


def test_duplicate_ids_in_a_queries_file_are_named(tmp_path):
    df = pd.DataFrame({"query_id": ["a", "b", "a", "c", "c"], "query": ["x", "y", "x", "z", "z"]})
    path = write(df, tmp_path / "q.csv")
    data_error(load_queries, path, needles=[str(path), "repeated", "'a'", "'c'"])
    one = write(pd.DataFrame({"query_id": ["a"], "query": ["x"]}), tmp_path / "one.csv")
    two = write(pd.DataFrame({"query_id": ["a"], "query": ["x"]}), tmp_path / "two.csv")
    data_error(load_queries, one, two, needles=[str(two), str(one), "'a'"])


def test_response_files_repeat_ids_per_llm(tmp_path):
    # a response file names each query once per LLM: that is not a duplicate
    path = write(tidy_frame(), tmp_path / "t.csv")
    assert load_queries(path)["query_id"].tolist() == ["q1", "q2", "q3"]


@pytest.mark.parametrize(
    ("frame", "needles"),
    [
        (tidy_frame().query("llm == 'big'"), ["one LLM", "'big'"]),
        (tidy_frame().query("query_id == 'q1'"), ["one query"]),
        (tidy_frame(score=[1.0] * 5), ["every score is 1.0"]),
    ],
    ids=["one-llm", "one-query", "constant-scores"],
)
def test_unidentifiable_data_is_refused(frame, needles):
    data = ResponseData.from_frame(frame, source="tiny.csv")
    data_error(data.require_fittable, needles=["tiny.csv", *needles])


def test_an_llm_with_one_score_value_is_warned_about():
    data = ResponseData.from_frame(tidy_frame(), source="t.csv")  # 'big' scores 1, 1, 0
    flat = ResponseData.from_frame(tidy_frame(score=[0.0, 1.0, 0.0, 1.0, 1.0]), source="t.csv")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.require_fittable()
    with pytest.warns(UserWarning, match="'small'.*same score.*prior"):
        flat.require_fittable()
