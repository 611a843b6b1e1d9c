"""NUTS through each sampler of inference.SAMPLERS on a tiny model, and their errors."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from irt_bayes import IRTRouter, simulate_pool
from irt_bayes.cli import main
from irt_bayes.errors import IrtBayesError
from irt_bayes.inference import SAMPLERS, ConvergenceWarning


@pytest.fixture(scope="module")
def tiny():
    return simulate_pool(n_queries=60, n_llms=3, seed=2).responses


@pytest.mark.slow
@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s != "nutpie"])
def test_every_sampler_gives_a_posterior_that_predicts(tiny, embed_cache, sampler: str) -> None:
    if sampler in ("numpyro", "blackjax") and importlib.util.find_spec(sampler) is None:
        pytest.skip(f"{sampler} is the optional 'jax' extra")  # CI installs it
    r = IRTRouter(
        "2pl",
        method="nuts",
        sampler=sampler,
        draws=100,
        tune=150,
        chains=2,
        progress=False,
        holdout=0.0,
        cache_dir=embed_cache,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r.fit(tiny)
    post = r.idata_.posterior
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, 100)
    assert r.diagnostics_.method == "nuts" and np.isfinite(r.diagnostics_.max_rhat)
    # same abilities in order as the observed accuracies (3 well-separated LLMs)
    acc = tiny.groupby("llm")["score"].mean()
    theta = r.abilities().set_index("llm")["mean"]
    assert list(theta.sort_values().index) == list(acc.sort_values().index)


def test_unknown_sampler_and_missing_extra_are_one_line(monkeypatch, tmp_path, capsys) -> None:
    with pytest.raises(IrtBayesError, match="unknown sampler 'stan'"):
        IRTRouter(sampler="stan")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "numpyro" else real(name, *a)
    )
    train = tmp_path / "t.csv"
    simulate_pool(n_queries=30, n_llms=2, seed=3).responses.to_csv(train, index=False)
    args = ["fit", str(train), "--model", "2pl", "--method", "nuts", "--sampler", "numpyro"]
    assert main(args + ["--holdout", "0", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'irt-bayes[jax]'" in err[0]
    assert not (tmp_path / "r").exists()
