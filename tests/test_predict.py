"""The prediction machinery: one definition of the linear predictor on both backends,
the empirical residual prior of new queries, and systematic resampling."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irt_bayes import simulate_pool
from irt_bayes.components import (
    Grid,
    Inputs,
    Pairs,
    components_for,
    posterior_variables,
    probability,
)
from irt_bayes.data import ResponseData
from irt_bayes.model import build_model, make_design
from irt_bayes.predict import (
    QueryPrior,
    new_query_values,
    predict_draws,
    sample_atoms,
    training_log_likelihood,
)
from irt_bayes.spec import load_spec

SPECS = {
    "rasch": load_spec("rasch"),
    "2pl": load_spec("2pl"),
    "3pl": load_spec("3pl"),
    "mirt-2": load_spec("mirt-2"),
    "llm-mean": load_spec("llm-mean"),
    "2pl+slopes+groups": load_spec("2pl").replace(llm_slopes=True),
    "3pl-fixed": load_spec("3pl").replace(guessing="fixed", choices=2),
}


def _design(spec, missing_rate=0.0, score_type="binary"):
    pool = simulate_pool(36, 4, seed=3, missing_rate=missing_rate, score_type=score_type)
    data = ResponseData.from_frame(pool.responses)
    x = np.random.default_rng(0).normal(size=(data.n_queries, 3))
    groups = dict(zip(data.llms, ["a", "a", "b", "c"], strict=True))
    return make_design(spec, data, x, groups=groups)


def _random_point(model: pm.Model, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    point = model.initial_point()
    return {k: v + rng.normal(0, 0.4, np.shape(v)) for k, v in point.items()}


def _values_at(model: pm.Model, point: dict, names: list[str]) -> dict[str, np.ndarray]:
    """The model's variables at ``point``, with a leading sample axis of 1."""
    # evaluate at the point's values, not at fresh draws of the random variables
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")
    return {n: np.asarray(v)[None] for n, v in zip(names, fn(point), strict=True)}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize(
    ("missing_rate", "score_type"),
    [(0.0, "binary"), (0.6, "binary"), (0.0, "binomial")],
    ids=["dense", "indexed", "binomial"],
)
def test_numpy_and_pymc_evaluate_the_same_model(name, missing_rate, score_type):
    """The components' numpy evaluation equals the PyMC graph's log-likelihood."""
    spec = SPECS[name]
    design = _design(spec, missing_rate, score_type)
    comps = components_for(spec, design.structure)
    model = build_model(spec, design)
    point = _random_point(model, seed=1)
    graph = float(model.compile_logp(vars=[model["y"]])(point))
    values = _values_at(model, point, list(posterior_variables(comps)))
    ours = training_log_likelihood(
        comps,
        values,
        design.features,
        design.dataset_idx,
        design.query_idx,
        design.llm_idx,
        design.y,
        design.trials,
    )
    np.testing.assert_allclose(ours.sum(), graph, rtol=1e-9)
    # and the graph's own item deterministics match the numpy item quantities
    b = _values_at(model, point, ["difficulty"])["difficulty"]
    p_grid = probability(comps, values, Inputs(design.features, design.dataset_idx, 1), Grid())
    p_pairs = probability(
        comps,
        values,
        Inputs(design.features, design.dataset_idx, 1),
        Pairs(design.query_idx, design.llm_idx),
    )
    np.testing.assert_allclose(p_grid[:, design.query_idx, design.llm_idx], p_pairs)
    assert b.shape == (1, len(design.queries))


@pytest.mark.parametrize("name", ["2pl", "3pl", "mirt-2", "2pl+slopes+groups"])
def test_a_training_query_predicted_as_new_with_its_own_values_is_its_fit(name):
    """New-query prediction is the same definition: atom m with x_m gives the fit of m."""
    spec = SPECS[name]
    design = _design(spec)
    comps = components_for(spec, design.structure)
    model = build_model(spec, design)
    values = _values_at(model, _random_point(model, 2), list(posterior_variables(comps)))
    Q = len(design.queries)
    atoms = np.arange(Q)[None, :]
    d = None if design.dataset_idx is None else design.dataset_idx[None, :]
    new = predict_draws(comps, values, design.features, atoms, d)
    fit = probability(comps, values, Inputs(design.features, design.dataset_idx, 1), Grid())
    np.testing.assert_allclose(new, fit, rtol=1e-12)


def test_normal_residuals_draw_from_the_prior_scale():
    spec = SPECS["2pl"]
    design = _design(spec)
    comps = components_for(spec, design.structure)
    rng = np.random.default_rng(0)
    S, Q = 400, len(design.queries)
    draws = {
        n: rng.normal(size=(S,) + tuple(len(design.coords[d]) for d in dims))
        for n, dims in posterior_variables(comps).items()
    }
    draws["sigma_b"] = np.full(S, 2.0)
    atoms = np.zeros((S, 50), dtype=int)
    v = new_query_values(draws, comps, atoms, residuals="normal", rng=rng)
    assert v["delta_b"].shape == (S, 50)
    assert abs(v["delta_b"].std() - 2.0) < 0.05
    emp = new_query_values(draws, comps, atoms)
    np.testing.assert_array_equal(emp["delta_b"], np.repeat(draws["delta_b"][:, :1], 50, 1))
    assert Q > 0


def test_unseen_dataset_widens_the_predictive():
    spec = SPECS["2pl"]
    design = _design(spec)
    comps = components_for(spec, design.structure)
    rng = np.random.default_rng(4)
    S = 500
    draws = {
        n: rng.normal(0, 0.3, size=(S,) + tuple(len(design.coords[d]) for d in dims))
        for n, dims in posterior_variables(comps).items()
    }
    draws["tau_gamma"] = np.full(S, 1.0)
    atoms = rng.integers(0, len(design.queries), (S, 20))
    d = design.dataset_idx[atoms]
    x = design.features[:20]
    seen = predict_draws(comps, draws, x, atoms, d)
    unseen = predict_draws(comps, draws, x, atoms, d, unseen=np.ones(20, bool))
    assert np.isfinite(unseen).all()
    assert unseen.std(axis=0).mean() > seen.std(axis=0).mean()


@settings(max_examples=60, deadline=None)
@given(
    w=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=30).filter(lambda v: sum(v) > 0.05),
    n_draws=st.integers(1, 300),
    seed=st.integers(0, 2**31 - 1),
)
def test_systematic_resampling_matches_the_weights(w, n_draws, seed):
    w = np.asarray(w) / np.sum(w)
    atoms = sample_atoms(np.vstack([w, w[::-1]]), n_draws, np.random.default_rng(seed))
    assert atoms.shape == (n_draws, 2)
    for col, ww in ((0, w), (1, w[::-1])):
        counts = np.bincount(atoms[:, col], minlength=len(w))
        assert np.all(np.abs(counts - n_draws * ww) <= 1.0 + 1e-9)
        assert np.all(counts[ww == 0] == 0)


def test_query_prior_weights_respect_the_dataset_posterior_and_leave_one_out():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 5))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    d = np.array([0] * 5 + [1] * 7)
    prior = QueryPrior(emb.astype(np.float32), d, tau=0.1)
    probs = np.array([[0.25, 0.75], [1.0, 0.0], [0.0, 1.0]])
    w = prior.weights(emb[:3], probs, exclude=np.array([0, 1, 2]))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_allclose(w[:, d == 0].sum(axis=1), probs[:, 0])
    assert np.all(w[np.arange(3), [0, 1, 2]] == 0.0)
    # inf: every query of a dataset equally
    flat = QueryPrior(emb, d, tau=float("inf")).weights(emb[:1], probs[:1])
    np.testing.assert_allclose(flat[0, d == 1], 0.75 / 7)
    # a sharp kernel concentrates on the most similar query
    sharp = QueryPrior(emb, d, tau=1e-3).weights(emb[5:6], np.array([[0.0, 1.0]]))
    assert sharp[0].argmax() == 5
