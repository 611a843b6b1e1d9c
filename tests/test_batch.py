"""Batch routing of partitioned Parquet logs on a real local Dask cluster."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from irt_bayes import IRTRouter
from irt_bayes.batch import route_parquet
from irt_bayes.cli import main
from irt_bayes.embeddings import EmbeddingTable
from irt_bayes.inference import ConvergenceWarning
from irt_bayes.routing import CHOICE_COLUMNS, route
from irt_bayes.simulate import wide_pool

DIM = 16


@pytest.fixture(scope="module")
def batch_router(tmp_path_factory):
    """A 2PL router on 16-d precomputed embeddings, saved (workers load it themselves)."""
    frame, emb = wide_pool(5, n_queries=120, seed=3, dim=DIM)
    table = EmbeddingTable(pd.Index(frame["query_id"].unique()), emb, "sim16", "test")
    router = IRTRouter("2pl", progress=False, holdout=0, max_iter=1500, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        router.fit(frame, embeddings=table)
    return router, router.save(tmp_path_factory.mktemp("batch") / "router")


def _log(folder, parts=3, n=40, seed=0, dim=DIM):
    """A partitioned log: one Parquet file per part, query_id and an embedding column."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    frames = []
    for k in range(parts):
        e = rng.standard_normal((n, dim)).astype(np.float32)
        ids = [f"p{k}-{i}" for i in range(n)]
        pq.write_table(pa.table({"query_id": ids, "embedding": list(e)}), folder / f"{k}.parquet")
        frames.append(pd.DataFrame({"query_id": ids, "query": "", "_emb": list(e)}))
    return folder, pd.concat(frames, ignore_index=True)


def test_dask_decisions_equal_routing_in_memory(batch_router, tmp_path):
    router, path = batch_router
    log, queries = _log(tmp_path / "log.parquet")
    out = tmp_path / "decisions.parquet"
    args = ["route", str(path), str(log), "--out", str(out), "--willingness-to-pay", "20"]
    assert main([*args, "--workers", "2", "--quiet"]) == 0
    got = pd.read_parquet(out)
    assert list(got.columns) == list(CHOICE_COLUMNS)
    got = got.set_index("query_id").loc[queries["query_id"]]
    emb = np.stack(queries["_emb"].to_numpy())
    want = route(router, queries[["query_id", "query"]], embeddings=emb, willingness_to_pay=20)
    want = want.choices.set_index("query_id")
    assert (got["llm"] == want["llm"]).all()
    np.testing.assert_allclose(got["expected_accuracy"], want["expected_accuracy"], atol=1e-5)
    np.testing.assert_allclose(got["utility"], want["utility"], atol=1e-5)
    # a rerun replaces the folder it wrote
    assert main([*args, "--workers", "1", "--quiet"]) == 0


def test_api_reports_counts_and_worker_memory(batch_router, tmp_path):
    _, path = batch_router
    log, queries = _log(tmp_path / "log.parquet", parts=2)
    res = route_parquet(path, log, tmp_path / "d.parquet", n_workers=1, alpha=0.7)
    assert res.n_queries == len(queries) and res.n_partitions == 2
    assert int(res.counts.sum()) == len(queries)
    assert len(res.worker_peak_bytes) == 1 and min(res.worker_peak_bytes.values()) > 2**20
    assert 0 < res.mean_accuracy < 1


def test_thompson_partitions_draw_their_own_seeds_and_reruns_agree(batch_router, tmp_path):
    _, path = batch_router
    log, _ = _log(tmp_path / "log.parquet", parts=2, n=60)
    runs = []
    for k in range(2):
        res = route_parquet(
            path,
            log,
            tmp_path / f"t{k}.parquet",
            n_workers=1,
            policy="thompson",
            willingness_to_pay=20,
            seed=5,
        )
        runs.append(pd.read_parquet(res.path).sort_values("query_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(runs[0], runs[1])


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no query_id", "missing required column 'query_id'"),
        ("wrong dimension", "column 'embedding': query_id 'p0-0' has 8 values"),
        ("budget", "--budget needs the whole batch"),
        ("not parquet", "not a readable Parquet log"),
        ("texts for precomputed embeddings", "the log needs an 'embedding' column"),
    ],
)
def test_bad_batch_input_is_one_line_and_writes_nothing(
    batch_router, tmp_path, capsys, case, needle
):
    _, path = batch_router
    extra = []
    if case == "no query_id":
        log = tmp_path / "log.parquet"
        pq.write_table(pa.table({"id": ["a"], "embedding": [np.zeros(DIM, np.float32)]}), log)
    elif case == "wrong dimension":
        log, _ = _log(tmp_path / "log.parquet", parts=1, dim=8)
    elif case == "budget":
        log, _ = _log(tmp_path / "log.parquet", parts=1)
        extra = ["--budget", "1"]
    elif case == "not parquet":
        log = tmp_path / "log.parquet"
        log.write_text("query_id,query\na,b\n")
    else:
        log = tmp_path / "log.parquet"
        pd.DataFrame({"query_id": ["a"], "query": ["What is 2 + 2?"]}).to_parquet(log)
    out = tmp_path / "d.parquet"
    code = main(
        [
            "route",
            str(path),
            str(log),
            "--out",
            str(out),
            "--willingness-to-pay",
            "20",
            "--workers",
            "1",
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert needle in err[-1] and str(log) in err[-1] or case == "budget", err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_irt_bayes_did_not_write_is_kept(batch_router, tmp_path, capsys):
    _, path = batch_router
    log, _ = _log(tmp_path / "log.parquet", parts=1)
    out = tmp_path / "mine.parquet"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["route", str(path), str(log), "--out", str(out), "--alpha", "0.5"]) == 2
    assert "did not write" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_a_log_of_texts_is_embedded_on_the_workers(advi_router, new_queries, tmp_path):
    """A router on the default encoder: the workers load it and embed the texts."""
    path = advi_router.save(tmp_path / "router")
    q = new_queries.head(12)[["query_id", "query"]]
    log = tmp_path / "log.parquet"
    log.mkdir()
    q.iloc[:5].to_parquet(log / "a.parquet")
    q.iloc[5:].to_parquet(log / "b.parquet")
    res = route_parquet(path, log, tmp_path / "d.parquet", n_workers=1, willingness_to_pay=5)
    got = pd.read_parquet(res.path).set_index("query_id").loc[q["query_id"]]
    want = route(advi_router, q, willingness_to_pay=5).choices.set_index("query_id")
    assert (got["llm"] == want["llm"]).all()
    # float32 draws in the compact router the workers load
    np.testing.assert_allclose(got["expected_accuracy"], want["expected_accuracy"], atol=1e-4)


def test_an_existing_scheduler_takes_the_work(batch_router, tmp_path):
    """--scheduler ADDRESS: a running cluster (started here, as a user would) routes it."""
    from distributed import LocalCluster

    _, path = batch_router
    log, queries = _log(tmp_path / "log.parquet", parts=2)
    out = tmp_path / "d.parquet"
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        args = ["route", str(path), str(log), "--out", str(out), "--alpha", "0.8"]
        assert main([*args, "--scheduler", cluster.scheduler_address, "--quiet"]) == 0
        assert len(cluster.workers) == 1  # the run left the cluster up
    assert sorted(pd.read_parquet(out)["query_id"]) == sorted(queries["query_id"])


def test_scheduler_without_parquet_output_is_refused(batch_router, tmp_path, capsys):
    _, path = batch_router
    log, _ = _log(tmp_path / "log.parquet", parts=1)
    args = ["route", str(path), str(log), "--out", str(tmp_path / "d.csv"), "--alpha", "0.5"]
    assert main([*args, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--out D.parquet" in capsys.readouterr().err
