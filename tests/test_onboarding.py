"""New LLMs from probes: the design, recovery, adaptive vs random, bad input, CLI.

One router is fitted per module on a simulated pool with one LLM left out (the
"new" LLM); every test reads it and works on copies (``add_llms`` never mutates).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from irt_bayes import IRTRouter, simulate_pool
from irt_bayes.cli import _prices, main
from irt_bayes.components import NUMPY, Grid, linear_predictor
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.inference import ConvergenceWarning
from irt_bayes.onboarding import (
    TARGETS,
    _set_llms,
    _training_values,
    fit_new_llm,
    llm_blocks,
    llm_design,
    prior_sd,
    training_accuracy,
)

NEW = 3  # position (in truth order) of the LLM left out of the fit


@pytest.fixture(scope="module")
def pool():
    return simulate_pool(n_queries=400, n_llms=8, seed=5)


@pytest.fixture(scope="module")
def new_llm(pool) -> str:
    return pool.llms[NEW]


@pytest.fixture(scope="module")
def router(pool, new_llm, embed_cache) -> IRTRouter:
    """2PL (ADVI) on the pool without ``new_llm``."""
    old = pool.responses[pool.responses["llm"] != new_llm]
    r = IRTRouter("2pl", progress=False, cache_dir=embed_cache, seed=0, holdout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return r.fit(old)


def _answers(pool, llm: str, ids) -> pd.DataFrame:
    r = pool.responses
    return r[(r["llm"] == llm) & r["query_id"].isin(list(ids))]


def test_the_design_reproduces_the_linear_predictor(router: IRTRouter) -> None:
    """eta = o + z . phi for any phi: each per-LLM term is linear in its values."""
    comps, dr = router.components_, router.draws_
    blocks = llm_blocks(comps, dr)
    values, inp = _training_values(router, dr, np.arange(0, 400, 7))
    o, z, _ = llm_design(comps, values, inp, blocks)
    phi = np.random.default_rng(0).normal(size=(z.shape[0], 3, z.shape[2]))
    eta, _ = linear_predictor(comps, _set_llms(values, blocks, phi), inp, Grid(), NUMPY)
    np.testing.assert_allclose(eta, o[..., None] + np.einsum("sqp,sjp->sqj", z, phi), atol=1e-9)


def test_onboarding_recovers_a_simulated_llm(pool, router: IRTRouter, new_llm: str) -> None:
    """Its ability lies in its 94% interval, mapped to the fit's scale by the other LLMs."""
    new = router.add_llms(_answers(pool, new_llm, pool.queries["query_id"]))
    assert new.llms_[-1] == new_llm and new_llm not in router.llms_
    ab = new.abilities().set_index("llm")
    truth = pool.truth["ability"].sel(skill=pool.truth["skill"][0]).to_series()
    old = [m for m in router.llms_]
    # the scale and origin of abilities are the fit's: map the truth by the old LLMs
    slope, icept = np.polyfit(truth[old] - truth[old].mean(), ab.loc[old, "mean"], 1)
    want = icept + slope * (truth[new_llm] - truth[old].mean())
    assert ab.loc[new_llm, "hdi_low"] <= want <= ab.loc[new_llm, "hdi_high"]
    # and its mean P(correct) on the training queries matches its observed accuracy
    acc = training_accuracy(new, [new_llm]).iloc[0]
    observed = _answers(pool, new_llm, pool.queries["query_id"])["score"].mean()
    assert abs(acc - observed) < 0.03


def test_thirty_adaptive_probes_cover_the_truth(pool, router: IRTRouter, new_llm: str) -> None:
    ids: list[str] = []
    while len(ids) < 30:
        after = _answers(pool, new_llm, ids) if ids else None
        ids += router.suggest_probes(10, after=after)["query_id"].tolist()
    assert len(set(ids)) == 30
    new = router.add_llms(_answers(pool, new_llm, ids))
    p = new.predict_proba(pool.queries[["query_id", "query"]]).sel(llm=new_llm)
    mean_acc = p.mean("query").to_numpy()
    observed = _answers(pool, new_llm, pool.queries["query_id"])["score"].mean()
    lo, hi = np.quantile(mean_acc, [0.03, 0.97])
    assert lo - 0.02 <= observed <= hi + 0.02  # 0.02: the predictive's own Monte Carlo


def _simulated_errors(
    router: IRTRouter, strategy: str, n: int, n_llms: int, target: str = "predictions"
) -> float:
    """Mean |predicted - true| accuracy on the training queries of LLMs simulated
    from the model itself (answers from posterior draw 0's items)."""
    comps, dr = router.components_, router.draws_
    blocks = llm_blocks(comps, dr)
    values, inp = _training_values(router, dr, np.arange(len(router.train_queries_)))
    o, z, _ = llm_design(comps, values, inp, blocks)
    sd = prior_sd(blocks, dr)
    ids = router.train_queries_["query_id"].astype(str).to_numpy()
    rng = np.random.default_rng(1)
    errors = []
    for k in range(n_llms):
        phi_true = rng.standard_normal(sd.shape[1]) * sd[0]
        y = (rng.random(len(ids)) < 1 / (1 + np.exp(-(o[0] + z[0] @ phi_true)))).astype(float)
        answers = pd.DataFrame({"query_id": ids, "query": "q", "llm": "new", "score": y})
        if strategy == "random":
            chosen = list(rng.choice(ids, n, replace=False))
        else:
            chosen = []
            while len(chosen) < n:
                after = answers[answers["query_id"].isin(chosen)] if chosen else None
                chosen += router.suggest_probes(10, after=after, seed=k, target=target)[
                    "query_id"
                ].tolist()
        pos = pd.Index(ids).get_indexer(chosen)
        phi, _ = fit_new_llm(
            o[:, pos], z[:, pos], None, y[pos], np.ones(n), sd, np.random.default_rng(k)
        )
        # both accuracies under each draw's items: the error is the LLM's alone
        pred = 1 / (1 + np.exp(-(o + np.einsum("sqp,sp->sq", z, phi))))
        true = 1 / (1 + np.exp(-(o + z @ phi_true)))
        errors.append(abs((pred - true).mean()))
    return float(np.mean(errors))


@pytest.mark.parametrize("target", ["predictions", "accuracy", "abilities"])
def test_adaptive_probes_beat_random_ones(router: IRTRouter, target: str) -> None:
    adaptive = _simulated_errors(router, "adaptive", 30, 40, target)
    random = _simulated_errors(router, "random", 30, 40)
    assert adaptive < 0.9 * random, (adaptive, random)


def test_an_existing_llm_is_refused_unless_replaced(pool, router: IRTRouter) -> None:
    old = router.llms_[0]
    answers = _answers(pool, old, pool.queries["query_id"][:40])
    with pytest.raises(DataError, match="already in the router's pool.*--replace"):
        router.add_llms(answers)
    new = router.add_llms(answers, replace=True)
    assert new.llms_ == router.llms_
    assert new.onboarded_["llm"].tolist() == [old]


def test_no_training_query_in_common_is_one_line(pool, router: IRTRouter, new_llm) -> None:
    answers = _answers(pool, new_llm, pool.queries["query_id"][:20]).assign(
        query_id=lambda d: "other-" + d["query_id"]
    )
    with pytest.raises(DataError, match=f"none of the 20 queries of LLM '{new_llm}'") as err:
        router.add_llms(answers)
    assert "\n" not in str(err.value)


def test_probes_on_unseen_queries_use_the_new_query_predictive(
    pool, router: IRTRouter, new_llm: str
) -> None:
    answers = _answers(pool, new_llm, pool.queries["query_id"][:60]).copy()
    answers.loc[answers.index[:20], "query_id"] = "unseen-" + answers["query_id"][:20]
    new = router.add_llms(answers)
    row = new.onboarded_.set_index("llm").loc[new_llm]
    assert row["probes"] == 60 and row["new_queries"] == 20
    assert np.isfinite(new.predict(["What is 2 + 2?"])["p_mean"]).all()


def test_onboarding_again_with_replace_keeps_one_row_and_loads(
    pool, router: IRTRouter, new_llm: str, tmp_path: Path
) -> None:
    ids = pool.queries["query_id"]
    first = router.add_llms(_answers(pool, new_llm, ids[:10]))
    again = first.add_llms(_answers(pool, new_llm, ids[:40]), replace=True)
    assert again.onboarded_["llm"].tolist() == [new_llm]
    assert again.onboarded_["probes"].tolist() == [40]
    again.save(tmp_path / "r")
    assert IRTRouter.load(tmp_path / "r", progress=False).llms_ == again.llms_


def test_laplace_converges_with_a_lower_asymptote() -> None:
    """3PL-like c = 0.25, every probe wrong: the mode is a stationary point."""
    from irt_bayes.onboarding import _laplace, _score_weight

    rng = np.random.default_rng(0)
    S, q = 50, 5
    o, z = rng.normal(2.0, 1.0, (S, q)), rng.uniform(0.5, 3.0, (S, q, 1))
    c, y, n, sd = np.full((S, q), 0.25), np.zeros(q), np.ones(q), np.full((S, 1), 2.0)
    mode, H = _laplace(o, z, c, y, n, sd)
    g, _ = _score_weight(o + z[..., 0] * mode, c, y, n)
    grad = (z[..., 0] * g).sum(axis=1) - mode[:, 0] / 4.0
    assert np.abs(grad).max() < 1e-5 and np.isfinite(H).all()


@pytest.mark.parametrize("with_c", [False, True])
def test_score_and_information_are_the_likelihoods_derivatives(with_c: bool) -> None:
    from irt_bayes.components import log_likelihood
    from irt_bayes.onboarding import _score_weight

    eta = np.linspace(-6, 6, 25)
    c = np.full(25, 0.2) if with_c else None
    n = np.full(25, 3.0)
    y = np.tile([0.0, 1.0, 2.0, 3.0, 1.0], 5)
    h = 1e-4
    ll = [log_likelihood(y, eta + d, c, n, NUMPY) for d in (-h, 0.0, h)]
    score, obs = _score_weight(eta, c, y, n, observed=True)
    np.testing.assert_allclose(score, (ll[2] - ll[0]) / (2 * h), atol=1e-6)
    second = (ll[2] - 2 * ll[1] + ll[0]) / h**2
    np.testing.assert_allclose(obs, np.maximum(-second, 0.0), atol=2e-3)


def test_a_price_is_needed_when_the_pool_has_prices(pool, router: IRTRouter, new_llm) -> None:
    answers = _answers(pool, new_llm, pool.queries["query_id"][:30]).drop(columns="cost")
    with pytest.raises(DataError, match=f"no price for LLM '{new_llm}'"):
        router.add_llms(answers)
    new = router.add_llms(answers, prices={new_llm: 0.002})
    assert new.prices_[new_llm] == 0.002


def test_after_must_hold_one_llm(pool, router: IRTRouter) -> None:
    two = pool.responses[pool.responses["llm"].isin(router.llms_[:2])].head(40)
    with pytest.raises(DataError, match="holds 2 LLMs"):
        router.suggest_probes(5, after=two)
    with pytest.raises(IrtBayesError, match="n must be between 1 and 400"):
        router.suggest_probes(401)
    pooled = pool.responses[pool.responses["llm"] == router.llms_[0]].head(10)
    with pytest.raises(DataError, match="already in the router's pool"):
        router.suggest_probes(5, after=pooled)


def test_accuracy_gains_are_the_fall_in_the_variance_of_the_mean() -> None:
    """Each greedy gain equals c^T M^-1 c before minus after the pick, recomputed."""
    rng = np.random.default_rng(0)
    S, Q, P = 3, 12, 2
    w, dp2 = rng.uniform(0.1, 1, (S, Q)), rng.uniform(0.01, 0.06, (S, Q))
    z = rng.normal(size=(S, Q, P))
    cov = np.stack([np.diag(rng.uniform(0.5, 2, P)) for _ in range(S)])
    picks, gains = TARGETS["accuracy"](w, dp2, z, cov, np.arange(P), np.zeros(Q, bool), 4)
    c = np.einsum("sq,sqp->sp", np.sqrt(dp2), z) / Q
    M = np.linalg.inv(cov)

    def variance(M: np.ndarray) -> float:
        return float(np.mean([c[s] @ np.linalg.solve(M[s], c[s]) for s in range(S)]))

    assert len(set(picks)) == 4
    for i, g in zip(picks, gains, strict=True):
        after = M + w[:, i, None, None] * z[:, i, :, None] * z[:, i, None, :]
        others = [
            variance(M) - variance(M + w[:, j, None, None] * z[:, j, :, None] * z[:, j, None, :])
            for j in range(Q)
        ]
        assert g == pytest.approx(variance(M) - variance(after), rel=1e-9)
        assert g >= max(o for j, o in enumerate(others) if j not in picks[: picks.index(i)]) - 1e-12
        M = after


def test_probes_target_predictions(router: IRTRouter) -> None:
    probes = router.suggest_probes(8, target="predictions")
    assert probes["query_id"].is_unique and len(probes) == 8
    assert (np.diff(probes["gain"]) <= 1e-12).all()  # greedy gains only fall
    with pytest.raises(IrtBayesError, match="unknown target"):
        router.suggest_probes(3, target="variance")


def test_an_onboarded_router_survives_save_and_load(
    pool, router: IRTRouter, new_llm: str, tmp_path: Path
) -> None:
    new = router.add_llms(_answers(pool, new_llm, pool.queries["query_id"][:50]))
    new.save(tmp_path / "r2")
    back = IRTRouter.load(tmp_path / "r2", progress=False, cache_dir=new.cache_dir)
    assert back.llms_ == new.llms_
    pd.testing.assert_frame_equal(back.onboarded_, new.onboarded_, check_dtype=False)
    q = ["Which planet is largest?", "Sort a list in Python."]
    np.testing.assert_allclose(back.predict(q)["p_mean"], new.predict(q)["p_mean"])


def test_label_values_are_non_negative_and_sorted(pool, router: IRTRouter) -> None:
    fresh = pd.DataFrame(
        {
            "query_id": [f"cand-{i}" for i in range(10)],
            "query": [f"Which is larger, {i} squared or {3 * i + 1}?" for i in range(10)],
        }
    )
    cands = pd.concat([pool.queries.head(20)[["query_id", "query"]], fresh], ignore_index=True)
    pairs = router.suggest_labels(cands, 25, willingness_to_pay=[0.0, 50.0])
    assert len(pairs) == 25
    # every training query's pairs were observed: only the fresh queries are worth a label
    assert set(pairs["query_id"]) <= set(fresh["query_id"])
    with pytest.raises(IrtBayesError, match="training responses already"):
        router.suggest_labels(cands, 10 * len(router.llms_) + 1)
    assert (pairs["value"] >= 0).all()  # information never lowers expected utility
    assert (np.diff(pairs["value"]) <= 1e-15).all()
    assert set(pairs["llm"]) <= set(router.llms_)


@given(st.text(min_size=1, max_size=20).filter(lambda s: "=" not in s and s.strip()))
def test_price_options_parse_or_fail_in_one_line(name: str) -> None:
    assert _prices([f"{name}=0.5"]) == {name.strip(): 0.5}  # as response files' names
    assert _prices([f"{name}=0.5", f"{name}=0.5"]) == {name.strip(): 0.5}
    with pytest.raises(IrtBayesError, match="already has price 0.5"):
        _prices([f"{name}=0.5", f"{name}=0.2"])
    assert _prices(["a=b=0.25"]) == {"a=b": 0.25}  # an LLM name may hold '='
    for bad in (name, f"{name}=", f"{name}=-1", f"{name}=nan", f"={name}"):
        with pytest.raises(IrtBayesError, match="expected LLM=USD"):
            _prices([bad])


def test_cli_probe_onboard_route(
    pool, router: IRTRouter, new_llm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "router"
    router.save(saved)
    train = tmp_path / "train.csv"
    pool.responses[pool.responses["llm"] != new_llm].to_csv(train, index=False)
    probes = tmp_path / "probes.csv"
    assert main(["probe", str(saved), "--n", "12", "--data", str(train), "--out", str(probes)]) == 0
    table = pd.read_csv(probes)
    assert list(table.columns) == ["query_id", "query", "dataset", "rank", "gain"]
    assert table["query"].notna().all()
    answers = tmp_path / "answers.csv"
    _answers(pool, new_llm, table["query_id"]).to_csv(answers, index=False)
    nxt = tmp_path / "next.csv"
    args = ["probe", str(saved), "--n", "5", "--after", str(answers), "--out", str(nxt)]
    assert main(args) == 0
    assert not set(pd.read_csv(nxt)["query_id"]) & set(table["query_id"])
    out = tmp_path / "router2"
    assert main(["onboard", str(saved), str(answers), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert new_llm in text and "expected_accuracy" in text
    # the new router routes to the new LLM at once
    q = tmp_path / "q.csv"
    pool.queries.head(20)[["query_id", "query"]].to_csv(q, index=False)
    dec = tmp_path / "d.csv"
    args = ["route", str(out), str(q), "--alpha", "1", "--out", str(dec), "--quiet"]
    assert main(args) == 0
    assert len(pd.read_csv(dec)) == 20
    # the same LLM again: refused in one line, status 2, nothing written
    again = tmp_path / "router3"
    assert main(["onboard", str(out), str(answers), "--out", str(again), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--replace" in err[0] and not again.exists()
    assert main(["describe", str(out)]) == 0
    assert f"{new_llm} (12 probes)" in capsys.readouterr().out
    pairs = tmp_path / "pairs.csv"
    args = ["suggest", str(out), str(q), "--n", "7", "--willingness-to-pay", "0", "100"]
    assert main(args + ["--out", str(pairs), "--quiet"]) == 0
    assert list(pd.read_csv(pairs).columns) == ["query_id", "llm", "value", "p_mean", "routed_now"]
