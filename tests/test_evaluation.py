"""Evaluation harness: sweep, hull, AIQ/APGR/CPT and calibration on hand-checked cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from irt_bayes.evaluation import (
    EvalSet,
    calibration,
    evaluate,
    hull,
    pareto_plot,
    random_point,
    single_llm_points,
    sweep,
    sweep_metrics,
)


def toy_test() -> EvalSet:
    # 4 queries x 2 LLMs: weak (cost 1) right on q0, q1; strong (cost 3) right on q0..q2.
    y = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    cost = np.array([[1.0, 3.0]] * 4)
    return EvalSet(y=y, cost=cost, llms=["weak", "strong"], query_ids=list("abcd"))


def test_single_and_random_points() -> None:
    t = toy_test()
    s = single_llm_points(t).set_index("llm")
    assert s.loc["weak", "accuracy"] == 0.5 and s.loc["strong", "accuracy"] == 0.75
    assert random_point(t) == pytest.approx((2.0, 0.625))


def test_oracle_sweep_and_metrics() -> None:
    t = toy_test()
    pts = sweep(np.nan_to_num(t.y), t)
    # oracle: cheapest correct LLM -> weak on a, b, strong on c, weak on d
    best = pts[pts.accuracy == pts.accuracy.max()]
    assert best.accuracy.max() == 0.75
    assert best.cost.min() == pytest.approx(1.5)
    m = sweep_metrics(pts, single_llm_points(t))
    assert m["max_accuracy"] == 0.75
    assert m["match_cost_share"] == pytest.approx(1.5 / 3.0)
    # hull: (1, 0.5) -> (1.5, 0.75) then flat; area over [1, 3] normalised
    expected = (0.5 * (0.5 + 0.75) / 2 + 1.5 * 0.75) / 2.0
    assert m["auc"] == pytest.approx(expected, abs=1e-3)
    assert m["apgr"] == pytest.approx((0.5 * 0.5 + 1.5 * 1.0) / 2.0, abs=1e-3)
    assert m["cpt50"] == pytest.approx(12.5, abs=0.2)


def test_hull_is_concave_and_non_decreasing() -> None:
    pts = pd.DataFrame({"cost": [1, 2, 3, 4, 5], "accuracy": [0.5, 0.55, 0.8, 0.7, 0.81]})
    hx, hy = hull(pts)
    assert list(hx) == [1, 3, 5]
    assert np.all(np.diff(hy) >= 0)
    slopes = np.diff(hy) / np.diff(hx)
    assert np.all(np.diff(slopes) <= 1e-12)


def test_missing_pairs_cannot_be_chosen() -> None:
    y = np.array([[np.nan, 1.0], [0.0, 1.0]])
    cost = np.array([[np.nan, 5.0], [1.0, 5.0]])
    t = EvalSet(y=y, cost=cost, llms=["a", "b"], query_ids=["q0", "q1"])
    pts = sweep(np.array([[0.9, 0.1], [0.9, 0.1]]), t, np.array([0.0]))
    # q0 must go to b (a has no outcome); q1 goes to a
    assert pts.accuracy.item() == 0.5 and pts.cost.item() == 3.0


def test_calibration_numbers() -> None:
    p = np.array([[0.9, 0.2], [0.6, np.nan]])
    y = np.array([[1.0, 0.0], [0.0, np.nan]])
    c = calibration(np.nan_to_num(p, nan=0.5), y)
    assert c["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)
    assert c["brier"] == pytest.approx((0.01 + 0.04 + 0.36) / 3)
    assert c["ece"] == pytest.approx((abs(1 - 0.9) + abs(0 - 0.2) + abs(0 - 0.6)) / 3)


def test_better_scores_give_better_auc() -> None:
    rng = np.random.default_rng(0)
    n, J = 400, 4
    ability = np.array([-1.0, 0.0, 0.8, 1.5])
    diff = rng.normal(0, 1.2, n)
    p_true = 1 / (1 + np.exp(-(ability[None] - diff[:, None])))
    y = (rng.uniform(size=(n, J)) < p_true).astype(float)
    cost = np.broadcast_to([0.1, 0.3, 1.0, 3.0], (n, J)).copy()
    t = EvalSet(y=y, cost=cost, llms=list("abcd"), query_ids=[str(i) for i in range(n)])
    const = np.broadcast_to(y.mean(axis=0), (n, J))
    table, points = evaluate({"true-p": p_true, "constant": const}, t)
    assert table.loc["true-p", "auc"] > table.loc["constant", "auc"]
    assert table.loc["true-p", "log_loss"] < table.loc["constant", "log_loss"]
    assert table.loc["oracle", "auc"] > table.loc["true-p", "auc"]
    assert {"random", "single: a", "single: d"} <= set(table.index)
    fig = pareto_plot({k: points[k] for k in ("oracle", "true-p")}, single_llm_points(t))
    assert len(fig.axes[0].lines) >= 2


def test_complete_cases_score_routers_and_single_llms_on_the_same_queries() -> None:
    # q2 was answered by 'strong' only: a router is forced there, the single LLM
    # 'strong' is not charged for it unless the query is left out.
    y = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, np.nan], [1.0, 1.0]])
    cost = np.array([[1.0, 3.0]] * 4)
    t = EvalSet(y=y, cost=cost, llms=["weak", "strong"], query_ids=list("abcd"))
    assert t.complete.tolist() == [True, True, False, True]
    perfect = np.nan_to_num(y)
    table, points = evaluate({"perfect": perfect}, t)
    assert table.attrs == {"n_queries": 3, "n_dropped": 1}
    assert table.loc["single: strong", "max_accuracy"] == 1.0
    assert table.loc["perfect", "max_accuracy"] == 1.0
    assert table.loc["perfect", "match_cost_share"] == pytest.approx((1 + 3 + 1) / 3 / 3)
    every, _ = evaluate({"perfect": perfect}, t, complete_cases=False)
    assert every.attrs == {"n_queries": 4, "n_dropped": 0}
    assert every.loc["perfect", "max_accuracy"] == 0.75  # q2 forced to 'weak', wrong
    assert every.loc["single: strong", "max_accuracy"] == 1.0  # on the 3 it answered


def test_an_llm_absent_from_the_test_data_does_not_make_queries_incomplete() -> None:
    y = np.array([[1.0, np.nan], [0.0, np.nan]])
    t = EvalSet(y=y, cost=np.ones((2, 2)), llms=["a", "b"], query_ids=["q0", "q1"])
    assert t.complete.all()
    assert t.subset(np.array([1])).query_ids == ["q1"]


def test_no_complete_query_is_a_clear_error() -> None:
    from irt_bayes.errors import DataError

    y = np.array([[1.0, np.nan], [np.nan, 0.0]])
    t = EvalSet(
        y=y, cost=np.ones((2, 2)), llms=["a", "b"], query_ids=["q0", "q1"], source="gap.csv"
    )
    with pytest.raises(DataError, match=r"^gap\.csv: .*complete_cases=False"):
        evaluate({"r": np.full((2, 2), 0.5)}, t)
    table, _ = evaluate({"r": np.full((2, 2), 0.5)}, t, complete_cases=False)
    assert table.attrs["n_queries"] == 2


def test_match_cost_is_read_off_the_hull() -> None:
    # no sweep point sits at the strong LLM's accuracy 0.75; mixing the settings at
    # (1, 0.5) and (3, 1.0) half and half reaches it at cost 2
    pts = pd.DataFrame({"cost": [1.0, 3.0], "accuracy": [0.5, 1.0]})
    singles = pd.DataFrame({"llm": ["weak", "strong"], "cost": [1.0, 4.0], "accuracy": [0.5, 0.75]})
    assert sweep_metrics(pts, singles)["match_cost_share"] == pytest.approx(2.0 / 4.0)
    never = pd.DataFrame({"cost": [1.0, 3.0], "accuracy": [0.5, 0.7]})
    assert np.isnan(sweep_metrics(never, singles)["match_cost_share"])
