"""Batch routing of a partitioned Parquet log on a local Dask cluster: throughput, memory.

A 2pl router is fitted (ADVI) on :func:`irt_bayes.simulate.scale_pool` (11 LLMs, the
size of RouterBench's pool, x 2,000 queries, 64-d precomputed embeddings) and saved. A
log of ``--queries`` new queries (default 1,000,000) with an ``embedding`` list column
is written as Parquet files of ``--partition-rows`` rows, and routed with the command's
own function (:func:`irt_bayes.batch.route_parquet`, what ``irt-bayes route ROUTER
LOG.parquet --out D.parquet --willingness-to-pay 50`` runs) on a local cluster of
``--workers`` single-threaded worker processes.

It reports the wall time (cluster start, reading, routing, writing the decisions and
their summary), queries per second, and each worker's peak resident memory; and, for
scale, one partition routed in this process by :func:`irt_bayes.routing.route` (the
per-core rate without Dask).

Usage (from the repository root)::

    python benchmarks/batch.py [--queries 1000000] [--partition-rows 50000] [--workers 2]
                               [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, md


def write_log(folder: Path, n: int, per_part: int, dim: int, seed: int) -> None:
    """``n`` random unit-norm embeddings as Parquet files of ``per_part`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir()
    for k, lo in enumerate(range(0, n, per_part)):
        m = min(per_part, n - lo)
        e = rng.standard_normal((m, dim)).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        ids = pa.array([f"log-{i}" for i in range(lo, lo + m)])
        emb = pa.FixedSizeListArray.from_arrays(pa.array(e.ravel()), dim)
        pq.write_table(pa.table({"query_id": ids, "embedding": emb}), folder / f"{k:04d}.parquet")


def main() -> int:
    from irt_bayes import IRTRouter
    from irt_bayes.batch import route_parquet
    from irt_bayes.embeddings import EmbeddingTable
    from irt_bayes.inference import ConvergenceWarning
    from irt_bayes.routing import route
    from irt_bayes.simulate import scale_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1_000_000)
    ap.add_argument("--partition-rows", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--willingness-to-pay", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "batch.md"))
    args = ap.parse_args()

    dim = 64
    frame, emb, _ = scale_pool(11, 2000, dim=dim, seed=args.seed)
    table = EmbeddingTable(pd.Index(frame["query_id"].unique()), emb, "sim64", "scale_pool")
    router = IRTRouter("2pl", holdout=0.0, progress=False, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        router.fit(frame, embeddings=table)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="irt-bayes-batch-") as tmp:
        path = router.save(Path(tmp) / "router")
        log = Path(tmp) / "log.parquet"
        t = time.perf_counter()
        write_log(log, args.queries, args.partition_rows, dim, args.seed + 1)
        print(f"wrote the log in {time.perf_counter() - t:.0f} s", flush=True)

        one = pd.read_parquet(sorted(log.iterdir())[0])
        q = pd.DataFrame({"query_id": one["query_id"], "query": ""})
        e = np.stack(one["embedding"].to_numpy()).astype(np.float32)
        t = time.perf_counter()
        route(router, q, embeddings=e, willingness_to_pay=args.willingness_to_pay)
        s = time.perf_counter() - t
        rows["route() in this process, one partition"] = {
            "queries": len(q),
            "workers": 1,
            "seconds": s,
            "queries/s": len(q) / s,
        }
        print(rows, flush=True)
        res = route_parquet(
            path,
            log,
            Path(tmp) / "decisions.parquet",
            n_workers=args.workers,
            willingness_to_pay=args.willingness_to_pay,
        )
        peaks = sorted(res.worker_peak_bytes.values())
        rows["route_parquet on a local Dask cluster"] = {
            "queries": res.n_queries,
            "partitions": res.n_partitions,
            "workers": len(peaks),
            "seconds": res.seconds,
            "queries/s": res.n_queries / res.seconds,
            "peak MB per worker": ", ".join(f"{p / 2**20:,.0f}" for p in peaks),
        }
        print(rows, flush=True)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "run"
    text = (
        f"Machine: {machine()}. Router: 2pl (ADVI) on scale_pool(11 LLMs x 2,000 queries, "
        f"{dim}-d); 1,000 posterior draws; willingness to pay {args.willingness_to_pay:g}; "
        f"{args.partition_rows:,} rows per partition.\n\n" + md(out, floatfmt=",.1f") + "\n"
    )
    print("\n" + text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
