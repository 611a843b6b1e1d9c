"""A reduced scale fit through the CLI: 50,000 responses by minibatch ADVI."""

from __future__ import annotations

import numpy as np
import pytest

from irt_bayes import IRTRouter
from irt_bayes.cli import main
from irt_bayes.simulate import scale_pool


@pytest.mark.slow
def test_minibatch_fit_of_50k_responses_recovers_the_abilities(tmp_path):
    frame, emb, truth = scale_pool(50, 1000, dim=32, seed=4)
    assert len(frame) == 50_000
    frame.to_parquet(tmp_path / "responses.parquet")
    ids = np.asarray(frame["query_id"].unique(), dtype=str)
    np.savez(tmp_path / "emb.npz", query_id=ids, embedding=emb)
    args = ["fit", str(tmp_path / "responses.parquet"), "--embeddings", str(tmp_path / "emb.npz")]
    args += ["--model", "2pl", "--minibatch", "1000", "--holdout", "0", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "router")]) == 0
    router = IRTRouter.load(tmp_path / "router", progress=False)
    est = router.abilities().set_index("llm")["mean"].reindex(truth.index)
    assert np.corrcoef(est, truth)[0, 1] >= 0.97
    # the posterior sd shrinks with 1,000 answers per LLM, but stays honest
    sd = router.abilities()["sd"]
    assert float(sd.max()) < 0.3
