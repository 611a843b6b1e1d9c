"""Specs, model construction, parameter recovery, calibration and NUTS diagnostics."""

from __future__ import annotations

import dataclasses
import itertools
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import stats
from scipy.special import expit

from irt_bayes import IRTRouter, ModelSpec, SpecError, available_specs, load_spec, simulate_pool
from irt_bayes import model as model_mod
from irt_bayes.components import NUMPY, PYTENSOR, log_likelihood, response
from irt_bayes.data import ResponseData
from irt_bayes.errors import DataError
from irt_bayes.inference import (
    ConvergenceWarning,
    Diagnostics,
    align_skills,
    diagnose,
    fit_advi,
    warn_if_needed,
)
from irt_bayes.model import build_model, make_design, resolve_likelihood
from irt_bayes.spec import Priors


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def _silent_fit(router: IRTRouter, responses: pd.DataFrame) -> IRTRouter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return router.fit(responses)


def _design(pool, spec: ModelSpec | str = "2pl", n_features: int = 3, seed: int = 0, **kw):
    data = ResponseData.from_frame(pool.responses)
    feats = np.random.default_rng(seed).normal(size=(data.n_queries, n_features))
    return make_design(load_spec(spec), data, feats, **kw)


def _sigmoid(x):
    return expit(x)


# ------------------------------------------------------------------------------ specs
def test_named_specs_are_shipped():
    assert available_specs() == ["2pl", "3pl", "llm-mean", "mirt-2", "mirt-3", "mirt-4", "rasch"]


@pytest.mark.parametrize(
    ("name", "skills", "discrimination"),
    [
        ("rasch", 1, "fixed"),
        ("2pl", 1, "free"),
        ("3pl", 1, "free"),
        ("llm-mean", 1, "fixed"),
        ("mirt-2", 2, "free"),
        ("mirt-3", 3, "free"),
        ("mirt-4", 4, "free"),
    ],
)
def test_load_named_spec(name, skills, discrimination):
    spec = load_spec(name)
    assert isinstance(spec, ModelSpec)
    assert spec.name == name
    assert spec.skills == skills
    assert spec.discrimination == discrimination
    # the one-skill specs widen a prior (models/2pl.toml says why)
    wide = name in ("2pl", "3pl", "llm-mean")
    expected = Priors(dataset_ability_scale=1.0) if wide else Priors()
    assert spec.priors == expected
    assert spec.likelihood == "auto"


def test_load_spec_from_toml_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nskills = 3\nembedding_dims = 8\ndataset_level = false\n'
        'likelihood = "fractional"\n[priors]\nability_scale = 2.5\n'
    )
    for arg in (path, str(path)):
        spec = load_spec(arg)
        assert spec.name == "mine"
        assert spec.skills == 3
        assert spec.embedding_dims == 8
        assert spec.dataset_level is False
        assert spec.likelihood == "fractional"
        assert spec.priors.ability_scale == 2.5
        assert spec.priors.slope_scale == Priors().slope_scale  # untouched default


def test_load_spec_returns_spec_objects_unchanged():
    spec = load_spec("2pl").replace(embedding_dims=4)
    assert load_spec(spec) is spec


def test_spec_round_trips_through_dict():
    spec = load_spec("mirt-2").replace(priors=Priors(ability_scale=0.7))
    assert ModelSpec.from_dict(spec.to_dict()) == spec


def test_unknown_spec_name_is_one_line():
    with pytest.raises(SpecError) as err:
        load_spec("4pl")
    msg = _one_line(err.value)
    assert "'4pl'" in msg
    for name in available_specs():
        assert name in msg


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path / "nope.toml")
    assert "nope.toml" in _one_line(err.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('name = "x"\nskils = 2\n', "'skils'"),
        ('name = "x"\n[priors]\nability_sd = 1.0\n', "'ability_sd'"),
        ('name = "x"\npriors = 3\n', "priors"),
        ("skills = 2\n", "'name'"),
        ('name = "x"\nskills = 0\n', "skills"),
        ('name = "x"\nskills = 9\n', "skills"),
        ('name = "x"\nskills = "two"\n', "skills"),
        ('name = "x"\nskills = 2.0\n', "skills"),
        ('name = "x"\ndiscrimination = "sometimes"\n', "discrimination"),
        ('name = "x"\ndiscrimination = "fixed"\nskills = 2\n', "Rasch"),
        ('name = "x"\nembedding_dims = -1\n', "embedding_dims"),
        ('name = "x"\nlikelihood = "poisson"\n', "poisson"),
        ('name = "x"\n[priors]\nability_scale = -1.0\n', "ability_scale"),
        ('name = "x"\n[priors]\nslope_scale = "wide"\n', "slope_scale"),
        ('name = "x"\ndataset_level = "no"\n', "dataset_level"),
        ('name = "x"\nnoncentered = 1\n', "noncentered"),
        ('name = "x"\nskills = \n', "TOML"),
    ],
)
def test_bad_spec_files_raise_one_line(tmp_path, body, needle):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    msg = _one_line(err.value)
    assert needle in msg
    assert "bad.toml" in msg


# ------------------------------------------------------------------------ model build
@pytest.fixture(scope="module")
def tiny_pool():
    return simulate_pool(n_queries=40, n_llms=4, seed=1)


def test_model_has_named_dims(tiny_pool):
    design = _design(tiny_pool, "2pl", n_features=3)
    model = build_model(load_spec("2pl"), design)
    assert set(model.coords) >= {"llm", "query", "skill", "feature", "dataset"}
    assert list(model.coords["llm"]) == tiny_pool.llms
    assert list(model.coords["query"]) == tiny_pool.queries["query_id"].tolist()
    assert list(model.coords["skill"]) == ["s0"]
    assert list(model.coords["feature"]) == ["pc0", "pc1", "pc2"]
    assert set(model.coords["dataset"]) == set(tiny_pool.queries["dataset"])
    dims = model.named_vars_to_dims
    assert dims["theta"] == ("llm", "skill")
    assert dims["difficulty"] == ("query",)
    assert dims["discrimination"] == ("query", "skill")
    assert dims["beta_b"] == ("feature",)
    assert dims["beta_a"] == ("feature", "skill")
    assert dims["dataset_effect"] == ("dataset",)
    assert dims["delta_b"] == ("query",)  # the query's own residuals, kept for prediction
    assert dims["delta_a"] == ("query", "skill")
    assert dims["gamma"] == ("dataset", "llm")  # LLM x dataset ability offsets
    assert [v.name for v in model.observed_RVs] == ["y"]


def test_rasch_and_mirt_structure(tiny_pool):
    rasch = build_model(load_spec("rasch"), _design(tiny_pool, "rasch"))
    assert not {"beta_a", "delta_a", "sigma_a"} & set(rasch.named_vars)  # a = 1
    assert "theta" in rasch.named_vars
    a = rasch.compile_fn(
        rasch["discrimination"], inputs=rasch.value_vars, on_unused_input="ignore"
    )(rasch.initial_point())
    np.testing.assert_array_equal(a, 1.0)

    mirt = build_model(load_spec("mirt-3"), _design(tiny_pool, "mirt-3"))
    assert list(mirt.coords["skill"]) == ["s0", "s1", "s2"]
    point = mirt.initial_point()
    theta = mirt.compile_fn(mirt["theta"], inputs=mirt.value_vars, on_unused_input="ignore")(point)
    assert theta.shape == (4, 3)


def test_optional_levels_switch_off(tiny_pool):
    spec = load_spec("2pl").replace(embedding_dims=0, dataset_level=False, dataset_abilities=False)
    model = build_model(spec, _design(tiny_pool, spec, n_features=0))
    assert "dataset" not in model.coords
    assert "beta_b" not in model.named_vars
    assert "dataset_effect" not in model.named_vars
    assert len(model.coords["feature"]) == 0


def test_llm_groups_add_a_group_dim(tiny_pool):
    groups = dict(zip(tiny_pool.llms, ["a", "a", "b", "b"], strict=True))
    model = build_model(load_spec("2pl"), _design(tiny_pool, groups=groups))
    assert list(model.coords["group"]) == ["a", "b"]
    assert "rho_group" in model.named_vars
    with pytest.raises(DataError, match="no group given"):
        _design(tiny_pool, groups={tiny_pool.llms[0]: "a"})


@pytest.mark.parametrize(
    ("score_type", "expected"),
    [("binary", "bernoulli"), ("binomial", "binomial"), ("fraction", "fractional")],
)
def test_likelihood_auto_resolution(score_type, expected):
    pool = simulate_pool(n_queries=12, n_llms=3, seed=2, score_type=score_type)
    data = ResponseData.from_frame(pool.responses)
    assert resolve_likelihood(load_spec("2pl"), data) == expected
    design = make_design(load_spec("2pl"), data, np.zeros((12, 0)))
    assert design.likelihood == expected
    if expected == "binomial":
        # y is the success count k of n trials
        np.testing.assert_array_equal(design.trials, 10)
        np.testing.assert_allclose(design.y, pool.responses["score"] * 10)
        assert np.all(design.y == np.round(design.y))


def test_explicit_likelihood_mismatch_raises():
    frac = ResponseData.from_frame(simulate_pool(12, 3, seed=2, score_type="fraction").responses)
    binary = ResponseData.from_frame(simulate_pool(12, 3, seed=2).responses)
    with pytest.raises(DataError, match="bernoulli"):
        resolve_likelihood(load_spec("2pl").replace(likelihood="bernoulli"), frac)
    with pytest.raises(DataError, match="trials"):
        resolve_likelihood(load_spec("2pl").replace(likelihood="binomial"), binary)
    assert resolve_likelihood(load_spec("2pl").replace(likelihood="fractional"), binary) == (
        "fractional"
    )


# -------------------------------------------------------------- numerically stable logp
_ETAS = np.array([-800.0, -50.0, 0.0, 50.0, 800.0])


def _naive_bernoulli(y, eta):
    with np.errstate(all="ignore"):
        p = _sigmoid(eta)
        return y * np.log(p) + (1 - y) * np.log(1 - p)


@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
def test_bernoulli_logp_is_finite_at_extreme_eta(y):
    value, eta = pt.dvector("value"), pt.dvector("eta")
    logp = log_likelihood(value, eta, None, None, PYTENSOR)
    grad = pytensor.grad(logp.sum(), eta)
    f = pytensor.function([value, eta], [logp, grad])
    lp, g = f(np.full(_ETAS.shape, y), _ETAS)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(lp, y * _ETAS - np.logaddexp(0.0, _ETAS), rtol=1e-12)
    np.testing.assert_allclose(g, y - _sigmoid(_ETAS), atol=1e-12)
    # the naive formula breaks down at the same points (this is what the test guards)
    assert not np.all(np.isfinite(_naive_bernoulli(y, _ETAS)))
    # the numpy evaluation of the same definition agrees
    np.testing.assert_allclose(log_likelihood(np.full(5, y), _ETAS, None, None, NUMPY), lp)


def test_binomial_logp_is_finite_and_exact():
    value, eta, n = pt.dvector("value"), pt.dvector("eta"), pt.dvector("n")
    logp = log_likelihood(value, eta, None, n, PYTENSOR)
    grad = pytensor.grad(logp.sum(), eta)
    f = pytensor.function([value, eta, n], [logp, grad])
    k = np.array([0.0, 3.0, 10.0, 7.0, 10.0])
    trials = np.full(5, 10.0)
    lp, g = f(k, _ETAS, trials)
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(g))
    eta = np.array([0.3, -1.2, 2.0])
    lp_mid, _ = f(k[1:4], eta, trials[:3])
    np.testing.assert_allclose(lp_mid, stats.binom.logpmf(k[1:4], 10, _sigmoid(eta)), rtol=1e-10)
    np.testing.assert_allclose(g, k - trials * _sigmoid(_ETAS), atol=1e-9)


@pytest.mark.parametrize("c", [0.25, 0.5])
def test_guessing_likelihood_is_finite_and_exact(c):
    value, eta = pt.dvector("value"), pt.dvector("eta")
    logp = log_likelihood(value, eta, pt.as_tensor(np.full(5, c)), None, PYTENSOR)
    grad = pytensor.grad(logp.sum(), eta)
    f = pytensor.function([value, eta], [logp, grad])
    for y in (0.0, 1.0):
        lp, g = f(np.full(5, y), _ETAS)
        assert np.all(np.isfinite(lp)) and np.all(np.isfinite(g))
        p = c + (1 - c) * _sigmoid(_ETAS)
        with np.errstate(all="ignore"):
            exact = y * np.log(p) + (1 - y) * np.log1p(-p)
        ok = np.isfinite(exact)
        np.testing.assert_allclose(lp[ok], exact[ok], rtol=1e-10)
    # a sure-to-fail LLM still gets the guessing rate
    np.testing.assert_allclose(response(np.array([-800.0]), c, NUMPY), c)


def _grad_of(model: pm.Model, grad: np.ndarray, point: dict, name: str) -> np.ndarray:
    """The slice of a flat ``compile_dlogp`` result that belongs to value variable ``name``."""
    offset = 0
    for v in model.value_vars:
        size = int(np.size(point[v.name]))
        if v.name == name:
            return grad[offset : offset + size]
        offset += size
    raise KeyError(name)


@pytest.mark.parametrize(
    ("score_type", "missing_rate"),
    [("binary", 0.0), ("binary", 0.7), ("binomial", 0.0), ("binomial", 0.7)],
    ids=["bernoulli-dense", "bernoulli-indexed", "binomial-dense", "binomial-indexed"],
)
def test_model_logp_and_gradient_finite_at_huge_eta(score_type, missing_rate):
    pool = simulate_pool(30, 4, seed=4, score_type=score_type, missing_rate=missing_rate)
    spec = load_spec("2pl")
    design = _design(pool, spec)
    assert (design.density >= model_mod.DENSE_MIN_DENSITY) == (missing_rate == 0.0)
    model = build_model(spec, design)
    logp_y = model.compile_logp(vars=[model["y"]])
    dlogp = model.compile_dlogp()
    n = design.trials if design.trials is not None else 1.0
    for mu_b in (-800.0, -60.0, 60.0, 800.0):
        point = model.initial_point()
        # at the initial point theta = 0 and a = 1, so eta = -difficulty = -mu_b everywhere
        point["mu_b"] = np.array(mu_b)
        eta = -mu_b
        expected = np.sum(design.y * eta - n * np.logaddexp(0.0, eta))
        if design.trials is not None:
            expected += np.sum(model_mod.log_choose(design.trials, design.y))
        np.testing.assert_allclose(logp_y(point), expected, rtol=1e-10)
        grad = dlogp(point)
        assert np.all(np.isfinite(grad)), mu_b
        # d logp / d mu_b = -sum(y - n sigmoid(eta)) + d log N(mu_b | 0, s) / d mu_b
        expected_g = -np.sum(design.y - n * _sigmoid(eta))
        expected_g -= mu_b / spec.priors.difficulty_intercept**2
        np.testing.assert_allclose(_grad_of(model, grad, point, "mu_b"), expected_g, rtol=1e-8)


@pytest.mark.parametrize("llm_slopes", [False, True], ids=["2pl", "2pl+llm-slopes"])
@pytest.mark.parametrize("score_type", ["binary", "binomial"])
def test_dense_and_indexed_likelihoods_agree(score_type, llm_slopes, monkeypatch):
    pool = simulate_pool(30, 5, seed=6, score_type=score_type, missing_rate=0.3)
    spec = load_spec("2pl").replace(llm_slopes=llm_slopes)
    design = _design(pool, spec)
    assert design.density >= model_mod.DENSE_MIN_DENSITY
    dense = build_model(spec, design)
    monkeypatch.setattr(model_mod, "DENSE_MIN_DENSITY", 2.0)
    indexed = build_model(spec, design)
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in dense.initial_point().items()}
    assert set(point) == set(indexed.initial_point())
    lp_d, lp_i = dense.compile_logp()(point), indexed.compile_logp()(point)
    assert np.isfinite(lp_d)
    np.testing.assert_allclose(lp_d, lp_i, rtol=1e-10)
    np.testing.assert_allclose(dense.compile_dlogp()(point), indexed.compile_dlogp()(point))


# --------------------------------------------------------------- parameter recovery
def _recovery(router: IRTRouter, pool) -> dict[str, float]:
    ab = router.abilities().set_index("llm")
    truth = pool.truth["ability"].sel(skill="s0").to_series().reindex(ab.index)
    r_ability = float(np.corrcoef(ab["mean"], truth)[0, 1])
    coverage = float(((ab["hdi_low"] <= truth) & (truth <= ab["hdi_high"])).mean())
    post_b = router.idata_.posterior["difficulty"].mean(("chain", "draw")).to_series()
    true_b = pool.truth["difficulty"].to_series().reindex(post_b.index)
    r_difficulty = float(np.corrcoef(post_b, true_b)[0, 1])
    return {"r_ability": r_ability, "hdi94_coverage": coverage, "r_difficulty": r_difficulty}


@pytest.mark.slow
def test_advi_recovers_abilities_and_difficulties(advi_router, sim_pool):
    rec = _recovery(advi_router, sim_pool)
    print(f"\nADVI recovery (10 LLMs x 400 queries): {rec}")
    assert advi_router.diagnostics_.method == "advi"
    assert rec["r_ability"] >= 0.97
    assert rec["hdi94_coverage"] >= 0.7
    assert rec["r_difficulty"] >= 0.8


@pytest.mark.slow
def test_nuts_recovers_abilities_and_difficulties(nuts_router, sim_pool):
    rec = _recovery(nuts_router, sim_pool)
    print(f"\nNUTS recovery (10 LLMs x 400 queries): {rec}")
    print(f"NUTS: {nuts_router.diagnostics_.verdict()}")
    assert rec["r_ability"] >= 0.97
    assert rec["hdi94_coverage"] >= 0.7
    assert rec["r_difficulty"] >= 0.8


@pytest.mark.slow
def test_nuts_router_diagnostics(nuts_router):
    diag = nuts_router.diagnostics_
    assert diag.method == "nuts"
    post = nuts_router.idata_.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 400
    assert len(diag.table) == post.sizes["llm"]  # one row per ability
    assert 1.0 - 1e-3 < diag.max_rhat < 1.05
    assert diag.min_ess_bulk > 100
    assert isinstance(diag.divergences, int) and 0 <= diag.divergences < 20
    assert diag.divergences == int(nuts_router.idata_.sample_stats["diverging"].sum())
    line = diag.verdict()
    assert "\n" not in line and line.startswith("NUTS ")
    assert f"max R-hat {diag.max_rhat:.3f}" in line
    assert set(diag.variables.index) == set(post.data_vars)  # every parameter is judged
    # the raw non-centred innovations were dropped to keep the posterior small
    assert not [v for v in post.data_vars if v.endswith("_z") or "__" in v]


@pytest.mark.slow
def test_rasch_fit_small(encoder):
    pool = simulate_pool(n_queries=120, n_llms=5, seed=21)
    router = _silent_fit(
        IRTRouter("rasch", method="advi", encoder=encoder, progress=False, holdout=0),
        pool.responses,
    )
    post = router.idata_.posterior
    assert not {"beta_a", "delta_a", "sigma_a"} & set(post.data_vars)
    np.testing.assert_array_equal(post["discrimination"], 1.0)
    assert post["theta"].sizes["skill"] == 1
    ab = router.abilities().set_index("llm")
    truth = pool.truth["ability"].sel(skill="s0").to_series().reindex(ab.index)
    assert np.corrcoef(ab["mean"], truth)[0, 1] >= 0.9
    np.testing.assert_allclose(ab["mean"].sum(), 0.0, atol=1e-8)  # zero-sum abilities


def _best_permutation(true: np.ndarray, fitted: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    K = true.shape[1]
    corr = np.corrcoef(true.T, fitted.T)[:K, K:]
    perm = max(itertools.permutations(range(K)), key=lambda p: corr[range(K), p].sum())
    return perm, corr[range(K), perm]


@pytest.mark.slow
def test_mirt2_recovers_two_skills(encoder):
    # In the simulator every dataset (domain) loads on one skill, so LLM x dataset
    # offsets can explain the same structure as a second skill; with them switched on
    # ADVI lets one skill collapse (sigma_theta ~ 0.1). Skills are tested without them.
    spec = load_spec("mirt-2").replace(dataset_abilities=False)
    pool = simulate_pool(n_queries=600, n_llms=12, n_skills=2, seed=5)
    router = _silent_fit(
        IRTRouter(spec, method="advi", encoder=encoder, progress=False, holdout=0), pool.responses
    )
    idata = align_skills(router.idata_)
    theta = idata.posterior["theta"]
    assert theta.sizes["skill"] == 2
    assert idata.posterior["discrimination"].sizes["skill"] == 2
    fitted = theta.mean(("chain", "draw")).transpose("llm", "skill").to_numpy()
    true = pool.truth["ability"].sel(llm=router.llms_).transpose("llm", "skill").to_numpy()
    perm, r = _best_permutation(true, fitted)
    r_diff = np.corrcoef(true[:, 0] - true[:, 1], fitted[:, perm[0]] - fitted[:, perm[1]])[0, 1]
    print(f"\nmirt-2 skill correlations after matching {perm}: {np.round(r, 3)}")
    print(f"mirt-2 correlation of skill differences: {r_diff:.3f}")
    assert np.all(r >= 0.7)
    # both skills, not only the general ability they share, are recovered
    assert r_diff >= 0.6
    # each query's strongest fitted loading is on the fitted skill matched to its main skill
    a = idata.posterior["discrimination"].mean(("chain", "draw")).transpose("query", "skill")
    main = pool.truth["main_skill"].sel(query=a["query"].to_numpy()).to_numpy()
    main_idx = np.array([int(s[1:]) for s in main])
    agree = np.mean(a.to_numpy().argmax(axis=1) == np.asarray(perm)[main_idx])
    print(f"mirt-2 main-skill agreement: {agree:.3f}")
    assert agree >= 0.8


@pytest.mark.slow
@pytest.mark.parametrize("score_type", ["binomial", "fraction"])
def test_binomial_and_fraction_scores_fit(encoder, score_type):
    pool = simulate_pool(n_queries=120, n_llms=5, seed=7, score_type=score_type)
    router = _silent_fit(
        IRTRouter("2pl", method="advi", encoder=encoder, progress=False, holdout=0), pool.responses
    )
    assert router.likelihood_ == {"binomial": "binomial", "fraction": "fractional"}[score_type]
    assert ("trials" in router.idata_.constant_data) == (score_type == "binomial")
    ab = router.abilities().set_index("llm")
    truth = pool.truth["ability"].sel(skill="s0").to_series().reindex(ab.index)
    assert np.corrcoef(ab["mean"], truth)[0, 1] >= 0.9
    p = router.predict_proba(pool.queries.head(3))
    assert np.all((p > 0) & (p < 1))


# -------------------------------------------------- simulation-based calibration (SBC)
@pytest.mark.slow
def test_sbc_tiny_2pl_advi():
    """Fit ADVI to data drawn from the model's own prior; ranks should be ~uniform.

    20 replications of 5 LLMs x 60 queries (no embedding, no dataset level); the
    rank of each true ability among 200 posterior draws is recorded.
    """
    n_rep, n_draws = 20, 200
    spec = load_spec("2pl").replace(embedding_dims=0, dataset_level=False, llm_groups=False)
    pool = simulate_pool(n_queries=60, n_llms=5, seed=0)
    design = make_design(spec, ResponseData.from_frame(pool.responses), np.zeros((60, 0)))
    with build_model(spec, design):
        prior = pm.sample_prior_predictive(
            draws=n_rep, random_seed=1, var_names=["theta", "difficulty", "discrimination"]
        ).prior.isel(chain=0)
    theta = prior["theta"].transpose("draw", "llm", "skill").to_numpy()
    a = prior["discrimination"].transpose("draw", "query", "skill").to_numpy()
    b = prior["difficulty"].transpose("draw", "query").to_numpy()
    eta = np.einsum("rqk,rjk->rqj", a, theta) - b[:, :, None]
    rng = np.random.default_rng(2)
    ys = (rng.random(eta.shape) < _sigmoid(eta)).astype(float)[:, design.query_idx, design.llm_idx]

    ranks, covered = [], []
    for r in range(n_rep):
        model = build_model(spec, dataclasses.replace(design, y=ys[r]))
        idata, _ = fit_advi(model, max_iter=1500, draws=n_draws, seed=r, progress=False)
        post = idata.posterior["theta"].isel(chain=0, skill=0).to_numpy()  # (draw, llm)
        truth = theta[r, :, 0]
        ranks.append((post < truth).sum(axis=0))
        lo, hi = np.quantile(post, [0.03, 0.97], axis=0)
        covered.append((lo <= truth) & (truth <= hi))
    ranks, covered = np.array(ranks), np.array(covered)
    u = (ranks.ravel() + 0.5) / (n_draws + 1)
    ks = stats.kstest(u, "uniform")
    counts = np.histogram(ranks.ravel(), bins=5, range=(0, n_draws + 1))[0]
    print(
        f"\nSBC ({n_rep} reps x 5 abilities): 94% coverage {covered.mean():.3f}, "
        f"KS p {ks.pvalue:.3f}, rank histogram {counts.tolist()}"
    )
    assert covered.mean() >= 0.75
    assert ks.pvalue > 1e-3
    # neither tail may hold most of the ranks (over- or under-dispersed posteriors)
    assert counts[0] < 0.5 * ranks.size and counts[-1] < 0.5 * ranks.size


# ------------------------------------------------------------------ NUTS diagnostics
def _idata(theta: np.ndarray, diverging: np.ndarray | None = None) -> az.InferenceData:
    n_chain, n_draw, n_llm, _ = theta.shape
    kw = {}
    if diverging is not None:
        kw["sample_stats"] = {"diverging": diverging}
    return az.from_dict(
        posterior={"theta": theta},
        coords={"llm": [f"m{j}" for j in range(n_llm)], "skill": ["s0"]},
        dims={"theta": ["llm", "skill"]},
        **kw,
    )


def test_diagnose_good_chains_pass():
    theta = np.random.default_rng(0).normal(size=(2, 1000, 3, 1))
    diag = diagnose(_idata(theta, np.zeros((2, 1000), bool)), method="nuts", seconds=1.5)
    assert diag.max_rhat < 1.01
    assert diag.min_ess_bulk > 400
    assert diag.divergences == 0
    assert diag.ok and diag.converged and diag.problems == []
    assert diag.verdict().startswith("NUTS ok: all 1 variables pass")
    assert "abilities max R-hat" in diag.verdict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_needed(diag)  # must not warn


def test_diagnose_flags_disagreeing_chains_in_one_warning_line():
    rng = np.random.default_rng(1)
    theta = rng.normal(size=(2, 500, 3, 1))
    theta[1] += 3.0  # the second chain sits elsewhere
    diverging = np.zeros((2, 500), bool)
    diverging[0, :3] = True
    diag = diagnose(_idata(theta, diverging), method="nuts")
    assert diag.max_rhat > 1.5
    assert diag.divergences == 3
    assert not diag.ok and not diag.converged
    assert any("R-hat" in p for p in diag.problems)
    assert any("3 divergent" in p for p in diag.problems)
    with pytest.warns(ConvergenceWarning) as rec:
        warn_if_needed(diag)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert "\n" not in msg
    assert msg.startswith("NUTS WARNING") and "R-hat" in msg and "divergent" in msg


def test_diagnose_flags_low_ess():
    rng = np.random.default_rng(2)
    # strongly autocorrelated AR(1) chains: well mixed between chains, few effective draws
    e = rng.normal(size=(2, 600, 2, 1))
    x = np.zeros_like(e)
    for t in range(1, 600):
        x[:, t] = 0.97 * x[:, t - 1] + e[:, t]
    diag = diagnose(_idata(x), method="nuts")
    assert diag.min_ess_bulk < 400
    assert any("ESS" in p for p in diag.problems)
    with pytest.warns(ConvergenceWarning, match=r"theta \(R-hat .*, ESS \d+\)"):
        warn_if_needed(diag)


def test_diagnose_names_every_failing_parameter_and_whether_abilities_suffer():
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(2, 800, 3, 1))
    rho = rng.normal(size=(2, 800))
    rho[1] += 0.6  # one hyper-parameter whose chains disagree; the abilities mix well
    idata = az.from_dict(
        posterior={"theta": theta, "rho_group": rho},
        coords={"llm": ["m0", "m1", "m2"], "skill": ["s0"]},
        dims={"theta": ["llm", "skill"]},
    )
    diag = diagnose(idata, method="nuts")
    assert diag.max_rhat < 1.01  # the abilities alone look fine ...
    assert list(diag.failing.index) == ["rho_group"]  # ... but not every parameter does
    line = diag.verdict()
    assert line.startswith("NUTS WARNING: rho_group (R-hat")
    assert "abilities ok" in line and "\n" not in line


def test_advi_diagnostics_verdict():
    diag = Diagnostics(
        method="advi", seconds=2.0, iterations=8000, converged=False, elbo_change=3e-3
    )
    assert np.isnan(diag.max_rhat) and np.isnan(diag.min_ess_bulk)
    assert diag.problems == [
        "ADVI did not converge in 8000 iterations (last relative ELBO change 3.0e-03)"
    ]
    assert diag.verdict().startswith("ADVI NOT converged after 8,000 steps")
    with pytest.warns(ConvergenceWarning, match="ADVI NOT converged") as rec:
        warn_if_needed(diag)
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    ok = Diagnostics(method="advi", seconds=2.0, iterations=1500, converged=True)
    assert ok.ok and ok.verdict().startswith("ADVI converged after 1,500 steps")
    d = ok.to_dict()
    assert d["method"] == "advi" and d["iterations"] == 1500 and d["verdict"] == ok.verdict()


# ---------------------------------------------------------------------- align_skills
def _mirt_idata(perm_chain1: tuple[int, ...], K: int) -> tuple[az.InferenceData, dict]:
    rng = np.random.default_rng(3)
    n_draw, n_llm, n_query = 50, 6, 4
    base = rng.normal(0, 2, size=(n_llm, K))
    theta0 = base + rng.normal(0, 0.1, size=(n_draw, n_llm, K))
    disc0 = rng.uniform(0.2, 2.0, size=(n_draw, n_query, K))
    diff0 = rng.normal(size=(n_draw, n_query))
    p = list(perm_chain1)
    theta = np.stack([theta0, theta0[..., p]])
    disc = np.stack([disc0, disc0[..., p]])
    diff = np.stack([diff0, diff0])
    idata = az.from_dict(
        posterior={"theta": theta, "discrimination": disc, "difficulty": diff},
        coords={
            "llm": [f"m{j}" for j in range(n_llm)],
            "skill": [f"s{k}" for k in range(K)],
            "query": [f"q{i}" for i in range(n_query)],
        },
        dims={
            "theta": ["llm", "skill"],
            "discrimination": ["query", "skill"],
            "difficulty": ["query"],
        },
    )
    return idata, {"theta": theta0, "discrimination": disc0, "difficulty": diff0}


@pytest.mark.parametrize(("K", "perm"), [(2, (1, 0)), (3, (2, 0, 1))])
def test_align_skills_undoes_a_permuted_chain(K, perm):
    idata, chain0 = _mirt_idata(perm, K)
    before = idata.posterior["theta"].isel(chain=1).to_numpy()
    assert not np.allclose(before, chain0["theta"])
    out = align_skills(idata).posterior
    for name in ("theta", "discrimination", "difficulty"):
        assert out[name].dims == idata.posterior[name].dims
        for c in range(2):
            np.testing.assert_array_equal(out[name].isel(chain=c).to_numpy(), chain0[name])
    assert list(out["skill"].to_numpy()) == [f"s{k}" for k in range(K)]


def test_align_skills_leaves_aligned_or_single_chain_alone():
    idata, _ = _mirt_idata((0, 1), 2)
    theta = idata.posterior["theta"].to_numpy().copy()
    out = align_skills(idata)
    np.testing.assert_array_equal(out.posterior["theta"].to_numpy(), theta)
    one = az.from_dict(
        posterior={"theta": theta[:1, :, :, ::-1]},
        coords={"llm": [f"m{j}" for j in range(6)], "skill": ["s0", "s1"]},
        dims={"theta": ["llm", "skill"]},
    )
    np.testing.assert_array_equal(
        align_skills(one).posterior["theta"].to_numpy(), theta[:1, :, :, ::-1]
    )
