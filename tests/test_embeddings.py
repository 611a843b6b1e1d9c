"""Precomputed embeddings: the file formats, lookups by id, the kind check, the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from irt_bayes import IRTRouter, simulate_pool
from irt_bayes.cli import main
from irt_bayes.embeddings import EmbeddingTable
from irt_bayes.errors import DataError
from irt_bayes.inference import ConvergenceWarning

DIM = 12


@pytest.fixture(scope="module")
def pool():
    return simulate_pool(n_queries=150, n_llms=4, seed=8)


@pytest.fixture(scope="module")
def vectors(pool) -> pd.DataFrame:
    """A random embedding per query id (and for a few queries the pool lacks)."""
    ids = list(pool.queries["query_id"]) + ["extra-1", "extra-2"]
    rng = np.random.default_rng(0)
    return pd.DataFrame({"query_id": ids, "embedding": list(rng.normal(size=(len(ids), DIM)))})


def _npz(path: Path, frame: pd.DataFrame) -> Path:
    np.savez(path, query_id=frame["query_id"].to_numpy(str), embedding=np.stack(frame["embedding"]))
    return path


def _parquet(path: Path, frame: pd.DataFrame) -> Path:
    frame.assign(embedding=frame["embedding"].map(list)).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def files(vectors, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("emb")
    return {"npz": _npz(d / "e.npz", vectors), "parquet": _parquet(d / "e.parquet", vectors)}


@pytest.fixture(scope="module")
def router(pool, files) -> IRTRouter:
    table = EmbeddingTable.load(files["npz"], label="toy")
    r = IRTRouter("2pl", progress=False, holdout=0.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return r.fit(pool.responses, embeddings=table)


@pytest.mark.parametrize("kind", ["npz", "parquet"])
def test_both_formats_give_the_same_table(files, vectors, kind: str) -> None:
    table = EmbeddingTable.load(files[kind])
    got = table.lookup(["extra-2", vectors["query_id"][0]])
    np.testing.assert_allclose(got[0], vectors["embedding"].iloc[-1], rtol=1e-6)
    np.testing.assert_allclose(got[1], vectors["embedding"].iloc[0], rtol=1e-6)
    assert table.encoder_id.startswith("precomputed:") and len(table.label) == 12


def test_missing_ids_are_named_in_one_line(files) -> None:
    table = EmbeddingTable.load(files["npz"])
    with pytest.raises(
        DataError, match=r"no embedding for 5 of the 6 queries: 'a', 'b', 'c' and 2 more"
    ) as err:
        table.lookup(["a", "b", "extra-1", "c", "d", "e"])
    assert "\n" not in str(err.value) and "e.npz" in str(err.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.savez(p, query_id=np.array(["a", "a"]), embedding=np.eye(2)), "appears more"),
        (lambda p: np.savez(p, query_id=np.array(["a"])), "missing array 'embedding'"),
        (
            lambda p: np.savez(p, query_id=np.array([{"x": 1}], dtype=object), embedding=np.eye(1)),
            "never unpickles",
        ),
        (
            lambda p: np.savez(
                p, query_id=np.array(["a", "b"]), embedding=np.array([[1.0, np.nan], [0, 1]])
            ),
            "not finite",
        ),
        (lambda p: p.write_bytes(b"not a zip"), "corrupt or unreadable"),
    ],
)
def test_bad_npz_files_are_one_line(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(DataError, match=message) as err:
        EmbeddingTable.load(path)
    assert "\n" not in str(err.value)


def test_bad_parquet_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"query_id": ["a", "b"], "embedding": [[1.0, 2.0], [1.0]]}).to_parquet(path)
    with pytest.raises(DataError, match="1 numbers at row 2, 2 at row 1"):
        EmbeddingTable.load(path)
    with pytest.raises(DataError, match="are .npz or .parquet"):
        EmbeddingTable.load(Path(__file__))


def test_a_router_fitted_on_a_table_predicts_only_from_that_kind(
    router: IRTRouter, files, pool, tmp_path: Path
) -> None:
    assert router.encoder_id_ == "precomputed:toy" and router.embedding_dim_ == DIM
    q = pool.queries.head(5)[["query_id", "query"]]
    same = EmbeddingTable.load(files["parquet"], label="toy")  # another file, same label
    p = router.predict(q, embeddings=same)
    assert len(p) == 5 * 4 and p["p_mean"].between(0, 1).all()
    with pytest.raises(DataError, match="another kind"):
        router.predict(q, embeddings=EmbeddingTable.load(files["parquet"]))
    with pytest.raises(DataError, match="give the queries' embeddings"):
        router.predict(q)
    router.save(tmp_path / "r")
    back = IRTRouter.load(tmp_path / "r", progress=False)  # builds no encoder
    assert back.encoder_id_ == "precomputed:toy"
    np.testing.assert_allclose(back.predict(q, embeddings=same)["p_mean"], p["p_mean"])


def test_a_text_router_refuses_precomputed_embeddings(advi_router, files, new_queries) -> None:
    table = EmbeddingTable.load(files["npz"], label="toy")
    with pytest.raises(DataError, match="another kind"):
        advi_router.predict(new_queries.head(2), embeddings=table)


def test_cli_fit_predict_route_evaluate_with_embeddings(
    pool, files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = tmp_path / "train.csv"
    pool.responses.to_csv(train, index=False)
    emb = ["--embeddings", str(files["npz"]), "--embeddings-label", "toy"]
    out = tmp_path / "router"
    fit = ["fit", str(train), "--model", "2pl", "--holdout", "0", "--out", str(out), "--quiet"]
    assert main(fit + emb) == 0
    q = tmp_path / "q.csv"
    pool.queries.head(8)[["query_id", "query"]].to_csv(q, index=False)
    assert main(["predict", str(out), str(q), "--out", str(tmp_path / "p.csv")] + emb) == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 8 * 4
    route = ["route", str(out), str(q), "--alpha", "0.5", "--out", str(tmp_path / "d.csv")]
    assert main(route + emb) == 0
    assert main(["evaluate", str(out), str(train), "--out", str(tmp_path / "ev")] + emb) == 0
    capsys.readouterr()
    # a query without an embedding: one line naming it, status 2, nothing written
    pd.DataFrame({"query_id": ["nope-1"], "query": ["hi"]}).to_csv(q, index=False)
    assert main(["predict", str(out), str(q), "--out", str(tmp_path / "p2.csv")] + emb) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope-1'" in err[0] and not (tmp_path / "p2.csv").exists()
    assert main(["predict", str(out), str(q), "--out", str(tmp_path / "p3.csv")]) == 2
    assert "--embeddings FILE" in capsys.readouterr().err
