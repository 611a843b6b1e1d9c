"""IRTRouter: posterior predictions, warm-ups, dataset levels, summaries and LOO."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from scipy.special import expit, logsumexp

from irt_bayes import DataError, IrtBayesError, IRTRouter, ResponseData, load_spec, simulate_pool

PREDICT_COLUMNS = ["query_id", "llm", "p_mean", "p_sd", "p_low", "p_high"]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------- predict_proba
def test_predict_proba_dims_coords_and_range(advi_router, new_queries, sim_pool):
    p = advi_router.predict_proba(new_queries)
    assert isinstance(p, xr.DataArray)
    assert p.dims == ("draw", "query", "llm")
    assert dict(p.sizes) == {"draw": 1000, "query": len(new_queries), "llm": 10}
    assert list(p["llm"].to_numpy()) == advi_router.llms_ == sim_pool.llms
    assert list(p["query"].to_numpy()) == new_queries["query_id"].tolist()
    v = p.to_numpy()
    assert np.all(np.isfinite(v))
    assert np.all((v > 0) & (v < 1))
    # posterior uncertainty: draws differ
    assert float(p.std("draw").min()) > 0


def test_predict_proba_accepts_plain_strings(advi_router, new_queries):
    texts = new_queries["query"].head(3).tolist()
    p = advi_router.predict_proba(texts)
    assert list(p["query"].to_numpy()) == ["q0", "q1", "q2"]
    one = advi_router.predict_proba(texts[0])
    assert one.sizes["query"] == 1


def test_predict_proba_is_reproducible(advi_router, new_queries):
    a = advi_router.predict_proba(new_queries.head(10))
    b = advi_router.predict_proba(new_queries.head(10))
    assert np.array_equal(a.to_numpy(), b.to_numpy())


def test_predict_summary_columns_and_order(advi_router, new_queries):
    q = new_queries.head(7)
    df = advi_router.predict(q)
    assert list(df.columns) == PREDICT_COLUMNS
    assert len(df) == 7 * 10
    assert (df["p_low"] <= df["p_mean"]).all()
    assert (df["p_mean"] <= df["p_high"]).all()
    assert (df["p_low"] < df["p_high"]).all()
    assert (df["p_sd"] > 0).all()
    # rows line up with the draws they summarise
    p = advi_router.predict_proba(q)
    row = df.iloc[13]
    cell = p.sel(query=row["query_id"], llm=row["llm"]).to_numpy()
    assert row["p_mean"] == pytest.approx(cell.mean(), rel=1e-12)
    assert row["p_low"] == pytest.approx(np.quantile(cell, 0.03), rel=1e-12)
    assert row["p_high"] == pytest.approx(np.quantile(cell, 0.97), rel=1e-12)
    wide = advi_router.predict(q, hdi_prob=0.5)
    assert (wide["p_high"] - wide["p_low"] < df["p_high"] - df["p_low"]).all()


def test_stronger_llms_get_higher_probability(advi_router, new_queries, sim_pool):
    mean_p = advi_router.predict_proba(new_queries).mean(("draw", "query")).to_series()
    ability = sim_pool.truth["ability"].sel(skill="s0").to_series().reindex(mean_p.index)
    rho = stats.spearmanr(mean_p, ability).statistic
    assert rho >= 0.9, rho


def test_new_query_difficulty_follows_its_text(advi_router):
    """Difficulty is conditioned on the embedding: it must transfer to unseen texts."""
    from irt_bayes import simulate_pool

    other = simulate_pool(n_queries=120, n_llms=2, seed=77)
    q = other.queries.drop(columns="dataset")  # no label: text alone
    p = advi_router.predict_proba(q).mean(("draw", "llm")).to_numpy()
    rho = stats.spearmanr(p, other.truth["difficulty"].to_numpy()).statistic
    print(f"\nSpearman(mean P, true difficulty) on unseen texts: {rho:.3f}")
    assert rho <= -0.6, rho


# ------------------------------------------------------------------------- warm-ups
def test_irt_router_warmup_runs_and_differs(advi_router, new_queries):
    q = new_queries.head(20)
    base = advi_router.predict_proba(q)
    p = advi_router.predict_proba(q, warmup="irt-router")
    assert p.dims == base.dims and p.shape == base.shape
    assert np.all((p > 0) & (p < 1))
    assert not np.allclose(p.to_numpy(), base.to_numpy())
    # lam = 0 blends nothing in: the irt-router warm-up is then no warm-up
    same = advi_router.predict_proba(q, warmup="irt-router", lam=0.0)
    np.testing.assert_allclose(same.to_numpy(), base.to_numpy(), rtol=1e-12)


def test_kernel_temperature_is_chosen_by_leave_one_out(advi_router):
    from irt_bayes.predict import TAU_GRID

    losses = advi_router.tau_losses_
    assert set(losses) == set(TAU_GRID)
    assert advi_router.tau_ == min(losses, key=losses.get)
    assert all(0.0 < v < 1.0 for v in losses.values())


def test_query_prior_is_kept_while_its_arrays_are_the_routers(advi_router):
    import copy

    prior = advi_router.query_prior_
    assert advi_router.query_prior_ is prior  # not remade (with its float64 copy) per call
    other = copy.copy(advi_router)
    other.train_embeddings_ = advi_router.train_embeddings_.copy()
    assert other.query_prior_ is not prior
    assert other.query_prior_.train_embeddings is other.train_embeddings_
    other.tau_ = 2 * advi_router.tau_
    assert other.query_prior_.tau == other.tau_
    assert advi_router.query_prior_ is prior


def test_prediction_is_reproducible(advi_router, new_queries):
    q = new_queries.head(10)
    np.testing.assert_array_equal(advi_router.predict_proba(q), advi_router.predict_proba(q))


def test_unknown_warmup_raises(advi_router, new_queries):
    with pytest.raises(IrtBayesError) as err:
        advi_router.predict_proba(new_queries.head(2), warmup="nearest")
    msg = str(err.value)
    assert "\n" not in msg and "'nearest'" in msg and "irt-router" in msg


# ------------------------------------------------------------------- dataset levels
def test_unseen_dataset_widens_interval(advi_router, new_queries):
    q = new_queries.head(30).copy()
    assert set(q["dataset"]) <= set(advi_router.datasets_)
    seen = advi_router.predict(q, use_labels=True)
    unseen = advi_router.predict(q.assign(dataset="a-domain-never-seen"), use_labels=True)
    assert list(seen["query_id"]) == list(unseen["query_id"])
    width_seen = seen["p_high"] - seen["p_low"]
    width_unseen = unseen["p_high"] - unseen["p_low"]
    print(f"\nmean 94% width: seen dataset {width_seen.mean():.3f}, new {width_unseen.mean():.3f}")
    assert width_unseen.mean() > width_seen.mean()
    # the predictive draws also carry the query's own residuals, common to both, so
    # the new dataset's extra spread widens most cells, not all
    assert (width_unseen > width_seen).mean() >= 0.6
    assert unseen["p_sd"].mean() > seen["p_sd"].mean()


def test_unlabeled_queries_get_a_dataset_posterior_from_their_text(advi_router, new_queries):
    q = new_queries.head(10)
    probs = advi_router.dataset_proba(q)
    assert list(probs.columns) == advi_router.datasets_
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # the simulated domains are plain from the text: the true label gets most of the mass
    hit = probs.to_numpy().argmax(axis=1) == pd.Index(advi_router.datasets_).get_indexer(
        q["dataset"]
    )
    assert hit.mean() >= 0.9
    # a label is ignored unless asked for: routing sees the text only
    with_label = advi_router.predict_proba(q)
    without = advi_router.predict_proba(q.drop(columns="dataset"))
    np.testing.assert_array_equal(with_label, without)
    unlabeled = advi_router.predict(q.drop(columns="dataset"))
    never = advi_router.predict(q.assign(dataset="a-domain-never-seen"), use_labels=True)
    assert (unlabeled["p_high"] - unlabeled["p_low"]).mean() < (
        never["p_high"] - never["p_low"]
    ).mean()


# ------------------------------------------------------------------------ big batch
def test_predict_1000_queries_with_precomputed_embeddings(advi_router):
    n = 1000
    emb = _unit_rows(np.random.default_rng(0).normal(size=(n, advi_router.embedding_dim_)))
    queries = pd.DataFrame({"query_id": [f"big-{i}" for i in range(n)], "query": [""] * n})
    p = advi_router.predict_proba(queries, embeddings=emb)
    assert p.shape == (1000, n, 10)
    v = p.to_numpy()
    assert np.all(np.isfinite(v)) and np.all((v > 0) & (v < 1))
    assert p["query"].to_numpy()[-1] == "big-999"


def test_embedding_dimension_mismatch_is_a_data_error(advi_router):
    with pytest.raises(DataError, match="dimension 16"):
        advi_router.predict_proba(["a"], embeddings=np.ones((1, 16), np.float32))


def test_bad_query_inputs(advi_router):
    with pytest.raises(DataError, match="no queries"):
        advi_router.predict_proba([])
    with pytest.raises(DataError, match="'query'"):
        advi_router.predict_proba(pd.DataFrame({"query_id": ["a"]}))


# ------------------------------------------------------------------------ summaries
def test_abilities_table(advi_router, sim_pool):
    ab = advi_router.abilities()
    assert list(ab.columns) == ["llm", "skill", "mean", "sd", "hdi_low", "hdi_high"]
    assert list(ab["llm"]) == sim_pool.llms
    assert set(ab["skill"]) == {"s0"}
    assert (ab["hdi_low"] <= ab["mean"]).all() and (ab["mean"] <= ab["hdi_high"]).all()
    assert (ab["sd"] > 0).all()
    assert ab["mean"].sum() == pytest.approx(0.0, abs=1e-8)  # zero-sum convention
    narrow = advi_router.abilities(hdi_prob=0.5)
    assert ((narrow["hdi_high"] - narrow["hdi_low"]) < (ab["hdi_high"] - ab["hdi_low"])).all()


def test_log_likelihood_matches_bernoulli(advi_router, sim_pool):
    ll = advi_router.log_likelihood()
    assert ll.dims == ("chain", "draw", "obs")
    assert ll.sizes["obs"] == len(sim_pool.responses)
    post = advi_router.idata_.posterior.isel(chain=0, draw=5)
    const = advi_router.idata_.constant_data
    qi, li = const["query_idx"].to_numpy(), const["llm_idx"].to_numpy()
    theta = post["theta"].sel(skill="s0").to_numpy()
    a = post["discrimination"].sel(skill="s0").to_numpy()
    b = post["difficulty"].to_numpy()
    y = advi_router.idata_.observed_data["y"].to_numpy()
    ability = theta[li]
    if "gamma" in post:  # LLM x dataset ability offsets, scaled by a like the ability
        d = const["dataset_idx"].to_numpy()
        ability = ability + post["gamma"].transpose("dataset", "llm").to_numpy()[d[qi], li]
    eta = a[qi] * ability - b[qi]
    expected = stats.bernoulli.logpmf(y, expit(eta))
    np.testing.assert_allclose(ll.isel(chain=0, draw=5).to_numpy(), expected, rtol=1e-9)


def test_loo_returns_finite_elpd(advi_router, sim_pool):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto-k notes are fine here
        loo = advi_router.loo()
    assert isinstance(loo, az.ELPDData)
    assert np.isfinite(loo["elpd_loo"]) and loo["elpd_loo"] < 0
    assert loo["n_data_points"] == len(sim_pool.responses)
    ll = advi_router.log_likelihood().stack(s=("chain", "draw")).to_numpy()
    lppd = float(np.sum(logsumexp(ll, axis=1) - np.log(ll.shape[1])))
    assert loo["elpd_loo"] < lppd
    assert loo["p_loo"] == pytest.approx(lppd - loo["elpd_loo"], rel=1e-6)
    assert 0 < loo["p_loo"] < 600  # at most ~ the number of parameters


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.predict_proba(["x"]),
        lambda r: r.predict(["x"]),
        lambda r: r.abilities(),
        lambda r: r.loo(),
        lambda r: r.save("never-written"),
        lambda r: r.draws_,
    ],
    ids=["predict_proba", "predict", "abilities", "loo", "save", "draws_"],
)
def test_unfitted_router_raises_clear_error(call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    router = IRTRouter("2pl", progress=False, cache_dir=False)
    with pytest.raises(IrtBayesError) as err:
        call(router)
    msg = str(err.value)
    assert "\n" not in msg and "not fitted" in msg
    assert list(tmp_path.iterdir()) == []
    assert "unfitted" in repr(router)


def test_unknown_method_raises():
    with pytest.raises(IrtBayesError, match="unknown method 'mcmc'"):
        IRTRouter("2pl", method="mcmc")


def test_fit_accepts_response_data_and_precomputed_embeddings():
    """A tiny fit with random embeddings: no encoder involved, and the fit is used."""
    from irt_bayes import simulate_pool

    pool = simulate_pool(n_queries=30, n_llms=3, seed=5)
    data = ResponseData.from_frame(pool.responses)
    emb = _unit_rows(np.random.default_rng(1).normal(size=(data.n_queries, 8)))
    router = IRTRouter("rasch", progress=False, cache_dir=False, max_iter=500, draws=100, holdout=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert router.fit(data, embeddings=emb) is router
    assert router.encoder_id_ == "precomputed"
    assert router.embedding_dim_ == 8
    assert router.llms_ == pool.llms
    assert "3 LLMs" in repr(router) and "30 training queries" in repr(router)
    p = router.predict_proba(pool.queries.head(2), embeddings=emb[:2])
    assert p.sizes["draw"] == 1000  # ADVI keeps at least 1000 draws
    with pytest.raises(DataError):
        router.predict_proba(["a"], embeddings=np.ones((1, 384), np.float32))


def test_log_likelihood_includes_llm_slopes(encoder):
    pool = simulate_pool(40, 4, seed=12)
    spec = load_spec("2pl").replace(llm_slopes=True, embedding_dims=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        router = IRTRouter(spec, encoder=encoder, progress=False, max_iter=300, holdout=0)
        router.fit(pool.responses)
    post = router.idata_.posterior.isel(chain=0, draw=3)
    const = router.idata_.constant_data
    qi, li = const["query_idx"].to_numpy(), const["llm_idx"].to_numpy()
    d = const["dataset_idx"].to_numpy()
    x = router.features_.transform(router.train_embeddings_)
    w = post["llm_slopes"].transpose("feature", "llm").to_numpy()
    eta = (
        post["discrimination"].sel(skill="s0").to_numpy()[qi]
        * (
            post["theta"].sel(skill="s0").to_numpy()[li]
            + post["gamma"].transpose("dataset", "llm").to_numpy()[d[qi], li]
        )
        - post["difficulty"].to_numpy()[qi]
        + (x @ w)[qi, li]
    )
    y = router.idata_.observed_data["y"].to_numpy()
    expected = stats.bernoulli.logpmf(y, expit(eta))
    got = router.log_likelihood().isel(chain=0, draw=3).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # and prediction uses the slopes: zeroing them changes P for the training queries
    p = router.predict_proba(pool.queries.head(5)).mean("draw")
    router.draws_["llm_slopes"][:] = 0.0
    assert not np.allclose(router.predict_proba(pool.queries.head(5)).mean("draw"), p)


# --------------------------------------------------------------- model="auto" and checks
@pytest.mark.slow  # fits the auto candidates
def test_default_router_chooses_among_candidates_by_held_out_check(auto_router):
    from irt_bayes.selection import (
        AUTO_CANDIDATES,
        CLUSTER_CANDIDATE,
        candidate_label,
        one_se_choice,
    )

    sel = auto_router.selection_
    # labelled data: the first candidate is also tried on latent clusters alone
    clusters = candidate_label(*CLUSTER_CANDIDATE, auto_router.domains)
    assert set(sel.index) == {*AUTO_CANDIDATES, clusters}
    ok = sel[sel["check"] == "ok"]
    lowest = (ok if len(ok) else sel)["log_loss"].idxmin()
    best, _ = one_se_choice(sel, AUTO_CANDIDATES[0])
    assert best in (lowest, AUTO_CANDIDATES[0])
    assert sel.index[sel["chosen"]].tolist() == [best]
    assert auto_router.spec_.name == best.split(" ")[0]
    expect_source = "clusters" if best == clusters else auto_router.domains
    assert auto_router.domain_ is None or auto_router.domain_.source == expect_source
    # never worse than each LLM's training accuracy on the held-out queries
    assert sel.loc[best, "log_loss"] <= sel.attrs["reference_log_loss"]
    note = auto_router.selection_note_
    assert note.startswith(f"model auto: chose {best}") and "\n" not in note
    chk = auto_router.check_
    # 20% of each simulated domain's queries, rounded per domain
    per_domain = auto_router.train_queries_["dataset"].value_counts()
    assert chk.n_queries == sum(int(round(0.2 * n)) for n in per_domain)
    assert set(chk.per_llm.index) == set(auto_router.llms_)
    line = chk.verdict()
    assert line.startswith(f"predictive check on {chk.n_queries} held-out training queries")
    assert "\n" not in line


@pytest.mark.slow  # two fits (about 40 s)
def test_a_misfit_raises_one_predictive_check_warning(encoder):
    """An explicit spec that cannot fit the data is fitted, but said to be off."""
    from irt_bayes.checks import PredictiveCheckWarning

    # the position-bias simulation of tests/test_predictive.py, where the 2PL is 0.16 off
    pool = simulate_pool(n_queries=2000, n_llms=8, seed=5, styles=("position-bias",))
    router = IRTRouter("2pl", encoder=encoder, progress=False)
    with pytest.warns(PredictiveCheckWarning) as rec:
        router.fit(pool.responses)
    msgs = [str(w.message) for w in rec if issubclass(w.category, PredictiveCheckWarning)]
    assert len(msgs) == 1 and "\n" not in msgs[0] and "WARNING" in msgs[0]
    assert not router.check_.ok
