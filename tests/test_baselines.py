"""Baseline predictors: interface, determinism, missing pairs and held-out skill.

The main fixtures embed the session's simulated pool with the real default encoder
(on the session's temporary cache), split its queries into train and test, and fit
every predictor once; the held-out test requires each to beat the per-LLM constant
by a clear margin in log loss.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from irt_bayes import simulate_pool
from irt_bayes.baselines import (
    BayesianIRT,
    IRTRouterMIRT,
    KNNRouter,
    LogisticRouter,
    MatrixFactorizationRouter,
    PerDatasetPrior,
)
from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.inference import ConvergenceWarning

# every baseline and the Bayesian adapter are fitted here (about 90 s together)
pytestmark = pytest.mark.slow

# Held-out log loss must beat the per-LLM training accuracy by this much.
MARGIN = 0.01

FACTORIES = {
    "per-dataset-prior": PerDatasetPrior,
    "knn-10": lambda: KNNRouter(k=10),
    "knn-40": lambda: KNNRouter(k=40),
    "logistic": LogisticRouter,
    "matrix-factorization": MatrixFactorizationRouter,
    "irt-router-mirt": IRTRouterMIRT,
}


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    obs = ~np.isnan(y)
    p, y = np.clip(p[obs], 1e-6, 1 - 1e-6), y[obs]
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def split(sim_pool, encoder):
    """(train data, train embeddings, test queries, test embeddings, test scores)."""
    data = ResponseData.from_frame(sim_pool.responses)
    emb = encoder.encode(data.queries["query"].tolist())
    ids = np.array(data.query_ids)
    perm = np.random.default_rng(0).permutation(len(ids))
    train_ids, test_ids = ids[perm[:280]], ids[perm[280:]]
    pos = pd.Index(ids)
    train, test = data.select(queries=train_ids), data.select(queries=test_ids)
    y = test.to_xarray()["score"].reindex(llm=train.llms).to_numpy()
    return (
        train,
        emb[pos.get_indexer(train.query_ids)],
        test.queries,
        emb[pos.get_indexer(test.query_ids)],
        y,
    )


@pytest.fixture(scope="module")
def fitted(split):
    train, train_emb, *_ = split
    out = {name: make() for name, make in FACTORIES.items()}
    for name, pred in out.items():
        assert pred.fit(train, train_emb) is pred, name
    return out


@pytest.fixture(scope="module")
def bayes(split) -> BayesianIRT:
    train, train_emb, *_ = split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BayesianIRT("2pl", max_iter=800, seed=0, holdout=0).fit(train, train_emb)


@pytest.mark.parametrize("name", FACTORIES)
def test_shape_order_and_range(name, fitted, split):
    train, _, test_q, test_emb, _ = split
    pred = fitted[name]
    assert pred.name == name
    assert pred.llms_ == train.llms
    p = pred.predict_proba(test_q, test_emb)
    assert p.shape == (len(test_q), train.n_llms)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    # Columns follow llms_: the mean prediction ranks the LLMs as their training accuracy.
    acc = train.summary()["accuracy"].reindex(pred.llms_).to_numpy()
    assert (
        np.corrcoef(np.argsort(np.argsort(p.mean(axis=0))), np.argsort(np.argsort(acc)))[0, 1] > 0.9
    )


@pytest.mark.parametrize("name", FACTORIES)
def test_beats_constant_on_held_out_queries(name, fitted, split):
    train, _, test_q, test_emb, y = split
    constant = np.tile(fitted["per-dataset-prior"].global_rate_, (len(test_q), 1))
    bar = _log_loss(constant, y) - MARGIN
    assert _log_loss(fitted[name].predict_proba(test_q, test_emb), y) < bar


def test_the_bar_fails_a_predictor_that_learned_nothing(split):
    # kNN on embeddings shuffled across training queries has only the LLMs' base rates.
    train, train_emb, test_q, test_emb, y = split
    shuffled = train_emb[np.random.default_rng(1).permutation(len(train_emb))]
    p = KNNRouter(k=40).fit(train, shuffled).predict_proba(test_q, test_emb)
    constant = np.tile(PerDatasetPrior().fit(train, train_emb).global_rate_, (len(test_q), 1))
    assert _log_loss(p, y) > _log_loss(constant, y) - MARGIN


@pytest.mark.parametrize("name", ["logistic", "matrix-factorization", "irt-router-mirt"])
def test_refit_with_same_seed_is_identical(name, fitted, split):
    train, train_emb, test_q, test_emb, _ = split
    if name == "logistic":  # the CV folds are seeded; refit only the final model
        again = LogisticRouter(C=fitted[name].C_).fit(train, train_emb)
    else:
        again = FACTORIES[name]().fit(train, train_emb)
    np.testing.assert_array_equal(
        again.predict_proba(test_q, test_emb), fitted[name].predict_proba(test_q, test_emb)
    )


def test_torch_seed_changes_the_fit_but_not_the_global_rng(split):
    train, train_emb, test_q, test_emb, _ = split
    import torch

    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = MatrixFactorizationRouter(epochs=30, seed=0).fit(train, train_emb)
    assert torch.equal(torch.rand(3), before)  # fit left the caller's RNG alone
    b = MatrixFactorizationRouter(epochs=30, seed=1).fit(train, train_emb)
    assert not np.array_equal(a.predict_proba(test_q, test_emb), b.predict_proba(test_q, test_emb))


def test_cross_validated_choices_are_recorded(fitted):
    assert fitted["logistic"].C_ in fitted["logistic"].cv_loss_
    assert fitted["knn-10"].alpha_ in fitted["knn-10"].loo_loss_


def test_bayesian_adapter(bayes, split):
    train, _, test_q, test_emb, y = split
    assert bayes.llms_ == train.llms
    draws = bayes.predict_draws(test_q, test_emb)
    assert draws.shape == (bayes.router_.n_draws_, len(test_q), train.n_llms)
    p = bayes.predict_proba(test_q, test_emb)
    np.testing.assert_allclose(p, draws.mean(axis=0))
    # Same numbers as the wrapped router's own prediction.
    own = bayes.router_.predict_proba(test_q, embeddings=test_emb).mean("draw")
    np.testing.assert_allclose(p, own.transpose("query", "llm").to_numpy(), atol=1e-6)
    constant = np.tile(train.summary()["accuracy"].reindex(train.llms), (len(test_q), 1))
    assert _log_loss(p, y) < _log_loss(constant, y) - MARGIN


# ------------------------------------------------------------------ hand-made data
def _tiny(rows: list[tuple[str, str, float, str]]) -> ResponseData:
    df = pd.DataFrame(rows, columns=["query_id", "llm", "score", "dataset"])
    df["query"] = "text of " + df["query_id"]
    return ResponseData.from_frame(df)


def test_knn_averages_only_neighbours_that_answered():
    data = _tiny(
        [
            ("q1", "a", 1, "x"),
            ("q1", "b", 1, "x"),
            ("q2", "a", 0, "x"),  # b did not answer q2
            ("q3", "a", 1, "x"),
            ("q3", "b", 0, "x"),
        ]
    )
    emb = _unit(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]))
    knn = KNNRouter(k=2, alpha=1.0).fit(data, emb)
    g_a, g_b = (2 + 1) / (3 + 2), (1 + 1) / (2 + 2)  # Beta(1, 1)-smoothed global rates
    np.testing.assert_allclose(knn.global_rate_, [g_a, g_b])
    p = knn.predict_proba(pd.DataFrame({"query_id": ["n"], "query": ["n"]}), _unit(np.eye(2)[:1]))
    # neighbours q1, q2: a over both; b over q1 only (a missing pair is not a failure)
    np.testing.assert_allclose(p, [[(1 + 0 + g_a) / 3, (1 + g_b) / 2]])


def test_every_predictor_handles_missing_pairs_and_fractional_scores():
    pool = simulate_pool(n_queries=120, n_llms=4, seed=5, missing_rate=0.3, score_type="fraction")
    data = ResponseData.from_frame(pool.responses)
    assert data.n_responses < data.n_queries * data.n_llms
    rng = np.random.default_rng(0)
    emb = _unit(rng.normal(size=(data.n_queries, 16)))
    fast = [
        PerDatasetPrior(),
        KNNRouter(k=10),
        LogisticRouter(),
        MatrixFactorizationRouter(dim=16, epochs=100),
        IRTRouterMIRT(epochs=100),
    ]
    mean_score = data.summary()["accuracy"].reindex(data.llms).to_numpy()
    for pred in fast:
        p = pred.fit(data, emb).predict_proba(data.queries, emb)
        assert p.shape == (data.n_queries, data.n_llms)
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
        # calibrated in the large on its own training queries
        np.testing.assert_allclose(p.mean(axis=0), mean_score, atol=0.06, err_msg=pred.name)


def test_logistic_fractional_scores_give_the_soft_target_rate():
    # Every query scores 0.3 for "a": the weighted-rows trick must learn P = 0.3.
    rows = [(f"q{i}", "a", 0.3, "x") for i in range(40)] + [
        (f"q{i}", "b", float(i % 2), "x") for i in range(40)
    ]
    data = _tiny(rows)
    emb = _unit(np.random.default_rng(2).normal(size=(40, 8)))
    p = LogisticRouter(C=1e-3).fit(data, emb).predict_proba(data.queries, emb)
    np.testing.assert_allclose(p[:, 0], 0.3, atol=0.01)


def test_per_dataset_prior_and_its_fallbacks():
    data = _tiny(
        [
            ("x1", "a", 1, "x"),
            ("x2", "a", 1, "x"),
            ("y1", "a", 0, "y"),
            ("y2", "a", 1, "y"),
            ("y3", "a", 0, "y"),
        ]
    )
    emb = _unit(np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [0, 1]], dtype=float))
    rate_x, rate_y, rate_all = 3 / 4, 2 / 5, 4 / 7  # (successes + 1) / (n + 2)
    queries = pd.DataFrame(
        {"query_id": ["1", "2", "3", "4"], "query": ["t"] * 4, "dataset": ["y", "z", "", None]}
    )
    near_x = _unit(np.array([[1, 0.05]] * 4))

    prior = PerDatasetPrior(fallback="global").fit(data, emb)
    np.testing.assert_allclose(prior.global_rate_, [rate_all])
    p = prior.predict_proba(queries, near_x)[:, 0]
    np.testing.assert_allclose(p, [rate_y, rate_all, rate_all, rate_all])

    # neighbours: the unseen ("z") and unlabelled queries take the nearest queries' dataset
    p = PerDatasetPrior(fallback="neighbours", k=2).fit(data, emb).predict_proba(queries, near_x)
    np.testing.assert_allclose(p[:, 0], [rate_y, rate_x, rate_x, rate_x])
    no_column = queries.drop(columns="dataset")
    p = PerDatasetPrior(k=2).fit(data, emb).predict_proba(no_column, near_x)
    np.testing.assert_allclose(p[:, 0], rate_x)


def test_input_errors():
    data = _tiny([("q1", "a", 1, "x"), ("q2", "a", 0, "x")])
    emb = _unit(np.eye(2))
    queries = data.queries
    with pytest.raises(IrtBayesError, match="not fitted"):
        KNNRouter(k=1).predict_proba(queries, emb)
    with pytest.raises(DataError, match="shape"):
        KNNRouter(k=1).fit(data, emb[:1])
    knn = KNNRouter(k=1).fit(data, emb)
    with pytest.raises(DataError, match="shape"):
        knn.predict_proba(queries, emb[:1])
    with pytest.raises(DataError, match="dimension"):
        knn.predict_proba(queries, _unit(np.ones((2, 3))))
    with pytest.raises(IrtBayesError, match="alpha"):
        KNNRouter(alpha=0.0)
