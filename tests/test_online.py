"""Online updating (irt_bayes.online), the state store and the backends file."""

from __future__ import annotations

import sqlite3
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import NUTS_SETTINGS
from scipy.special import expit

from irt_bayes import IRTRouter
from irt_bayes.backends import load_backends
from irt_bayes.cli import main
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.inference import ConvergenceWarning
from irt_bayes.online import OnlinePosterior, adf_update, tilted_moments
from irt_bayes.store import STATE_FILE, StateStore


# ------------------------------------------------------------------------- the rule
def test_tilted_moments_match_brute_force():
    t = np.linspace(-12, 12, 200_001)
    prior = np.exp(-0.5 * ((t - 0.7) / 1.3) ** 2)
    for y in (0.0, 1.0, 0.3):
        w = prior * expit(t) ** y * expit(-t) ** (1 - y)
        w /= w.sum()
        m = (w * t).sum()
        got = tilted_moments(0.7, 1.3**2, y, None)
        np.testing.assert_allclose(got, (m, (w * (t - m) ** 2).sum()), atol=1e-6)


def test_adf_gives_the_exact_moments_of_one_outcome():
    """Gaussian values and a linear predictor: ADF's mean and covariance are exact."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.4], [0.4, 0.5]])
    phi = rng.multivariate_normal([0.3, -0.2], cov, size=40_000)
    z = np.array([1.2, -0.7])
    t = 0.1 + phi @ z
    new = adf_update(phi, t, 1.0, None)
    w = expit(t)
    w /= w.sum()
    mean = w @ phi
    exact_cov = (phi - mean).T @ ((phi - mean) * w[:, None])
    np.testing.assert_allclose(new.mean(axis=0), mean, atol=0.01)
    np.testing.assert_allclose(np.cov(new.T, bias=True), exact_cov, atol=0.01)
    # the draws move by one affine map: their ranks along z^perp are kept
    perp = np.array([0.7, 1.2])
    assert np.corrcoef(phi @ perp, new @ perp)[0, 1] > 0.99


def test_adf_ignores_an_outcome_it_cannot_learn_from():
    phi = np.random.default_rng(1).normal(size=(500, 3))
    assert np.array_equal(adf_update(phi, np.full(500, 0.4), 1.0, None), phi)


# -------------------------------------------------------------- the online posterior
@pytest.fixture(scope="module")
def online_queries(new_queries) -> pd.DataFrame:
    return new_queries.head(40).reset_index(drop=True)


def test_failures_lower_an_llm_and_successes_raise_it(advi_router, online_queries):
    llm = advi_router.llms_[3]
    theta = advi_router.draws_["theta"].copy()
    outcomes = {}
    for y in (0.0, 1.0):
        online = OnlinePosterior(advi_router)
        obs = online.observations(online_queries, [llm] * 40, [y] * 40)
        before = online.abilities().set_index("llm").loc[llm]
        after = online.update(obs).abilities().set_index("llm").loc[llm]
        assert after["sd"] < before["sd"]
        outcomes[y] = after["mean"] - before["mean"]
        assert online.n_updates_ == 40
    assert outcomes[0.0] < -0.1 and outcomes[1.0] > 0.1
    # the fitted router is not modified
    np.testing.assert_array_equal(advi_router.draws_["theta"], theta)


def test_predictions_follow_the_update(advi_router, online_queries):
    llm = advi_router.llms_[0]
    online = OnlinePosterior(advi_router)
    p0 = online.router_.predict(online_queries).query("llm == @llm")["p_mean"].mean()
    online.update(online.observations(online_queries, [llm] * 40, [0.0] * 40))
    p1 = online.router_.predict(online_queries).query("llm == @llm")["p_mean"].mean()
    assert p1 < p0 - 0.05


def test_replay_in_other_batches_gives_the_same_posterior(advi_router, online_queries):
    llms = [advi_router.llms_[i % 4] for i in range(40)]
    scores = [float(i % 3 == 0) for i in range(40)]
    a = OnlinePosterior(advi_router)
    a.update(a.observations(online_queries, llms, scores))
    b = OnlinePosterior(advi_router)
    for lo, hi in ((0, 7), (7, 30), (30, 40)):
        part = online_queries.iloc[lo:hi]
        b.update(b.observations(part, llms[lo:hi], scores[lo:hi], first_row=lo))
    np.testing.assert_allclose(a._phi, b._phi, rtol=1e-10, atol=1e-12)


def test_forgetting_tracks_a_drop(advi_router, online_queries):
    """An LLM that starts failing: with forgetting its ability falls further and stays wider."""
    llm = advi_router.llms_[0]
    q = pd.concat([online_queries] * 3, ignore_index=True)
    q["query_id"] = [f"d{i}" for i in range(len(q))]
    res = {}
    for lam in (1.0, 0.9):
        online = OnlinePosterior(advi_router, forgetting=lam)
        online.update(online.observations(q, [llm] * len(q), [0.0] * len(q)))
        res[lam] = online.abilities().set_index("llm").loc[llm]
    assert res[0.9]["mean"] < res[1.0]["mean"] and res[0.9]["sd"] > res[1.0]["sd"]


def test_add_llm_starts_wide_and_learns(advi_router, online_queries):
    online = OnlinePosterior(advi_router).add_llm("newcomer", 0.001)
    assert online.llms[-1] == "newcomer" and online.router_.prices_["newcomer"] == 0.001
    ab = online.abilities().set_index("llm")
    assert ab.loc["newcomer", "sd"] > ab["sd"].drop("newcomer").max()
    p = online.router_.predict(online_queries.head(3))
    assert set(p["llm"]) == {*advi_router.llms_, "newcomer"}
    online.update(online.observations(online_queries, ["newcomer"] * 40, [1.0] * 40))
    after = online.abilities().set_index("llm").loc["newcomer"]
    assert (
        after["mean"] > ab.loc["newcomer", "mean"] + 0.3 and after["sd"] < ab.loc["newcomer", "sd"]
    )
    with pytest.raises(DataError, match="already in the pool"):
        online.add_llm("newcomer", 0.001)


@pytest.mark.parametrize(
    ("llms", "scores", "match"),
    [
        (["nobody"], [1.0], "unknown LLM 'nobody'"),
        (None, [1.5], "not in"),
        (None, [np.nan], "not in"),
    ],
)
def test_bad_outcomes_are_refused(advi_router, online_queries, llms, scores, match):
    online = OnlinePosterior(advi_router)
    with pytest.raises(DataError, match=match):
        online.observations(online_queries.head(1), llms or advi_router.llms_[:1], scores)


def test_forgetting_must_be_in_range(advi_router):
    for bad in (0.0, 1.5, np.nan):
        with pytest.raises(IrtBayesError, match="forgetting"):
            OnlinePosterior(advi_router, forgetting=bad)


@pytest.mark.slow
def test_online_abilities_agree_with_a_refit(sim_pool):
    """Half the queries fitted, then 3 LLMs' outcomes on each other query as feedback:
    the online abilities are within their posterior sd of a NUTS refit on all of it."""
    r = sim_pool.responses
    ids = r["query_id"].unique()
    train = r[r["query_id"].isin(ids[:200])]
    fb = r[r["query_id"].isin(ids[200:])].groupby("query_id", group_keys=False)
    fb = fb.apply(lambda g: g.sample(3, random_state=len(g.name)))
    fb = fb.sample(frac=1.0, random_state=1).reset_index(drop=True)
    fb["query_id"] = [f"fb-{i}" for i in range(len(fb))]
    kw = {"method": "nuts", "progress": False, "holdout": 0.0, **NUTS_SETTINGS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = IRTRouter("2pl", **kw).fit(train)
        refit = IRTRouter("2pl", **kw).fit(pd.concat([train, fb]))
    online = OnlinePosterior(first)
    online.update(online.observations(fb, fb["llm"].tolist(), fb["score"].tolist()))

    def centred(draws):
        th = draws["theta"][..., 0]
        th = th - th.mean(axis=1, keepdims=True)  # the refit's abilities are zero-sum
        return th.mean(axis=0), th.std(axis=0)

    m_on, _ = centred(online.router_.draws_)
    m_re, s_re = centred(refit.draws_)
    m_0, _ = centred(first.draws_)
    assert np.all(np.abs(m_on - m_re) < s_re), (m_on - m_re) / s_re
    # and the update moved towards the refit
    assert np.abs(m_on - m_re).mean() < np.abs(m_0 - m_re).mean()


# ---------------------------------------------------------------- store and refit
def test_store_keeps_order_and_is_in_wal_mode(tmp_path):
    store = StateStore(tmp_path)
    e = np.arange(4, dtype=np.float32)
    store.log_decisions(
        [{"decision_id": "d1", "query": "q", "embedding": e, "llm": "a", "policy": "thompson",
          "propensity": 0.4, "expected_accuracy": 0.7, "expected_cost": 0.01}]
    )  # fmt: skip
    seqs = store.add_feedback(
        [{"decision_id": "d1", "query": "q", "embedding": e, "llm": "a", "score": 1}]
        + [{"query": f"x{i}", "embedding": e + i, "llm": "b", "score": 0} for i in range(3)]
    )
    assert seqs == sorted(seqs) and len(seqs) == 4
    assert store.decision("d1")["propensity"] == 0.4
    np.testing.assert_array_equal(store.decision("d1")["embedding"], e)
    assert store.decision("nope") is None
    fb = store.feedback_since(seqs[1])
    assert fb["query"].tolist() == ["x1", "x2"]
    np.testing.assert_array_equal(fb["embedding"].iloc[1], e + 2)
    assert store.counts()["feedback"] == 4 and store.counts()["llms"]["b"]["feedback"] == 3
    # feedback waits for the disk at commit; the decision log leaves that to the next one
    sync = {
        name: engine.connect().exec_driver_sql("PRAGMA synchronous").scalar()
        for name, engine in (("feedback", store.engine), ("decisions", store._log_engine))
    }
    assert sync == {"feedback": 2, "decisions": 1}  # FULL, NORMAL
    store.close()
    mode = sqlite3.connect(tmp_path / STATE_FILE).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_refuses_a_file_and_other_urls(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(IrtBayesError, match="is a file"):
        StateStore(f)
    with pytest.raises(IrtBayesError, match="postgresql://"):
        StateStore("mysql://x/y")


@pytest.mark.slow
def test_refit_folds_the_feedback_in(advi_router, sim_pool, encoder, tmp_path):
    router_dir = tmp_path / "router"
    advi_router.save(router_dir)
    train = tmp_path / "train.csv"
    sim_pool.responses.to_csv(train, index=False)
    store = StateStore(tmp_path / "state")
    llm = advi_router.llms_[0]
    texts = [f"Feedback question {i}?" for i in range(30)]
    emb = encoder.encode(texts)
    store.add_feedback(
        [
            {"query": t, "embedding": e, "llm": llm, "score": 0.0}
            for t, e in zip(texts, emb, strict=True)
        ]
    )
    out = tmp_path / "refit"
    status = main(["refit", str(router_dir), "--state", str(tmp_path / "state"), "--data",
                   str(train), "--out", str(out), "--quiet"])  # fmt: skip
    assert status == 0
    new = IRTRouter.load(out)
    assert len(new.train_queries_) == len(advi_router.train_queries_) + 30
    before = advi_router.abilities().set_index("llm").loc[llm, "mean"]
    after = new.abilities().set_index("llm").loc[llm, "mean"]
    assert after < before  # 30 failures pulled it down


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ("empty", "holds no feedback"),
        ("missing", "holds no state.sqlite"),  # a mistyped folder is not made
        ("garbage", "file is not a database"),
    ],
)
def test_refit_without_feedback_is_one_line(
    advi_router, sim_pool, tmp_path, capsys, state, match
):
    from irt_bayes.store import STATE_FILE, StateStore

    router_dir = tmp_path / "router"
    advi_router.save(router_dir)
    train = tmp_path / "train.csv"
    sim_pool.responses.to_csv(train, index=False)
    folder = tmp_path / "s"
    if state == "empty":
        StateStore(folder)
    elif state == "garbage":
        folder.mkdir()
        (folder / STATE_FILE).write_bytes(bytes(range(256)) * 16)
    status = main(["refit", str(router_dir), "--state", str(folder), "--data", str(train),
                   "--out", str(tmp_path / "o"), "--quiet"])  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert match in err and "\n" not in err and str(folder) in err
    assert not (tmp_path / "o").exists()
    assert folder.exists() == (state != "missing")


# ---------------------------------------------------------------------- backends
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x = 1", "no \\[\\[backend\\]\\]"),
        ("[[backend]\n", "not valid TOML"),
        ('[[backend]]\nllm = "a"\nbase_url = "http://h/v1"\n', "'model' must be"),
        ('[[backend]]\nllm = "zz"\nbase_url = "http://h/v1"\nmodel = "m"\n', "not in the router"),
        ('[[backend]]\nllm = "a"\nbase_url = "ftp://h"\nmodel = "m"\n', "not an http"),
        ('[[backend]]\nllm = "a"\nbase_url = "http://h"\nmodel = "m"\nprice = -1\n', "price"),
        ('[[backend]]\nllm = "a"\nbase_url = "http://h"\nmodel = "m"\nkey = "s"\n', "unknown key"),
    ],
)
def test_bad_backends_file(tmp_path, text, match):
    f = tmp_path / "b.toml"
    f.write_text(text)
    with pytest.raises(DataError, match=match) as info:
        load_backends(f, ["a", "b"])
    assert str(f) in str(info.value) and "\n" not in str(info.value)


def test_backends_file(tmp_path, monkeypatch):
    f = tmp_path / "b.toml"
    f.write_text(
        '[[backend]]\nllm = "a"\nbase_url = "http://h:1/v1/"\nmodel = "m-a"\n'
        'api_key_env = "MY_KEY"\nprice = 0.5\n'
    )
    b = load_backends(f, ["a", "b"])["a"]
    assert b.chat_url == "http://h:1/v1/chat/completions" and b.price == 0.5
    monkeypatch.setenv("MY_KEY", "s3")
    assert b.headers() == {"Authorization": "Bearer s3"}
