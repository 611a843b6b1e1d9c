"""Batch routing of partitioned Parquet logs on Dask, partition by partition.

``irt-bayes route ROUTER LOG.parquet --out decisions.parquet`` routes a log too large
for one process: Dask reads the log's partitions (its files and row groups), a worker
routes each one with :func:`irt_bayes.routing.route` (which itself works through the
posterior draws in blocks within the router's memory budget), and the decisions are
written as one Parquet file per partition. Memory per worker is bounded by one
partition and the router, never by the log.

The log holds ``query_id`` and either ``query`` (texts, embedded on the workers) or
``embedding`` (a list column of precomputed embeddings, the router's dimension);
``dataset`` is read only with ``use_labels``. Each row is one query: ids are not
deduplicated across partitions. Each query draws its predictive as it would in one
batch of the whole log (``first_row`` of :func:`irt_bayes.routing.route`), so the
decisions equal routing the log in one process; only ``thompson`` draws its sampled
posterior draw from a stream of its own per partition.

Workers load the router from its folder themselves, once per process, so the router
folder, the log and the output's parent folder must be readable (writable) at the
same paths where the workers run; on one machine they always are. Without
``scheduler`` a local cluster of one single-threaded worker process per core is started
and closed again; with it, the work goes to that existing Dask scheduler.

The output folder is written under a temporary name and swapped in at the end
(:func:`irt_bayes.outputs.atomic_directory`): an error or an interrupt leaves nothing
half-written, and a folder irt-bayes did not write is never replaced.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.outputs import atomic_directory, check_output_dir
from irt_bayes.routing import CHOICE_COLUMNS, route

__all__ = ["BatchResult", "ROUTE_OPTIONS", "route_parquet"]

# What a worker passes on to routing.route; a total budget needs the whole batch.
ROUTE_OPTIONS = (
    "willingness_to_pay",
    "alpha",
    "policy",
    "quantile",
    "seed",
    "warmup",
    "use_labels",
)
_META = pd.DataFrame(
    {
        "query_id": pd.Series(dtype=str),
        "llm": pd.Series(dtype=str),
        **{c: pd.Series(dtype=float) for c in CHOICE_COLUMNS[2:]},
    }
)
# per worker process: router folder -> (router.json mtime, router)
_ROUTERS: dict[str, tuple[float, Any]] = {}


@dataclass
class BatchResult:
    """What a batch routing run did.

    Attributes
    ----------
    path : pathlib.Path
        The decisions folder (one Parquet file per partition).
    n_queries, n_partitions : int
        Rows routed and partitions of the log.
    seconds : float
        Wall time, cluster start included.
    counts : pandas.Series
        Queries routed to each LLM.
    mean_accuracy, total_cost : float
        Mean expected accuracy and total expected cost (USD) of the choices.
    worker_peak_bytes : dict of str to int
        Peak resident memory of each worker process (its high-water mark, from
        ``getrusage``; 0 where a worker could not tell).
    """

    path: Path
    n_queries: int
    n_partitions: int
    seconds: float
    counts: pd.Series
    mean_accuracy: float
    total_cost: float
    worker_peak_bytes: dict[str, int] = field(default_factory=dict)


def _worker_router(path: str) -> Any:
    """The router at ``path``, loaded once per worker process (again if re-saved)."""
    from irt_bayes.router import IRTRouter

    mtime = os.stat(Path(path) / "router.json").st_mtime
    hit = _ROUTERS.get(path)
    if hit is None or hit[0] != mtime:
        _ROUTERS[path] = (mtime, IRTRouter.load(path, progress=False))
    return _ROUTERS[path][1]


def _route_partition(
    part: pd.DataFrame,
    router_path: str,
    log: str,
    offsets: list[int],
    options: Mapping[str, Any],
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """Route one partition of the log; the decisions in ``_META``'s columns."""
    if part.empty:
        return _META.copy()
    router = _worker_router(router_path)
    q = pd.DataFrame({"query_id": part["query_id"].astype(str).to_numpy()})
    q["query"] = part["query"].astype(str).to_numpy() if "query" in part else ""
    if options.get("use_labels") and "dataset" in part:
        q["dataset"] = part["dataset"].astype(str).to_numpy()
    emb = None
    if "embedding" in part:
        emb = _embedding_block(part["embedding"], q["query_id"], router.embedding_dim_, log)
    opts = dict(options)
    number = 0 if partition_info is None else int(partition_info.get("number", 0))
    # thompson's draws: a stream of its own per partition, the same on every rerun
    opts["seed"] = int(opts.get("seed", 0)) + 1_000_003 * number
    res = route(router, q, embeddings=emb, first_row=int(offsets[number]), **opts)
    return res.choices.astype(_META.dtypes.to_dict())


def _embedding_block(col: pd.Series, ids: pd.Series, dim: int, log: str) -> np.ndarray:
    """A list column of embeddings as an (n, dim) float32 array, or one line saying why not."""
    lengths = np.array([-1 if v is None else len(v) for v in col.to_numpy()])
    bad = np.flatnonzero(lengths != dim)
    if bad.size:
        i = int(bad[0])
        got = "no embedding" if lengths[i] < 0 else f"{lengths[i]} values"
        raise DataError(
            f"column 'embedding': query_id {ids.iloc[i]!r} has {got}; the router was "
            f"fitted on embeddings of dimension {dim}",
            source=log,
        )
    out = np.asarray(np.stack(col.to_numpy()), dtype=np.float32)
    if not np.isfinite(out).all():
        i = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise DataError(
            f"column 'embedding': query_id {ids.iloc[i]!r} has a NaN or infinite value",
            source=log,
        )
    return out


def _peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


def _summary(folder: Path) -> tuple[pd.Series, float, float, int]:
    """Counts per LLM, accuracy and cost sums and rows of the written decisions, batch by batch."""
    import pyarrow.dataset as pads

    counts: pd.Series = pd.Series(dtype=float)
    acc = cost = 0.0
    n = 0
    data = pads.dataset(folder, format="parquet")
    for batch in data.to_batches(columns=["llm", "expected_accuracy", "expected_cost"]):
        df = batch.to_pandas()
        counts = counts.add(df["llm"].value_counts(), fill_value=0)
        acc += float(df["expected_accuracy"].sum())
        cost += float(df["expected_cost"].sum())
        n += len(df)
    return counts.astype(int), acc, cost, n


def _log_columns(log: Path, needs_embedding: bool) -> list[str]:
    """The columns to read from the log, after checking it has what routing needs."""
    import pyarrow.dataset as pads

    try:
        names = pads.dataset(log, format="parquet").schema.names
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"not a readable Parquet log ({first})", source=str(log)) from None
    if "query_id" not in names:
        raise DataError(
            f"missing required column 'query_id' (have: {', '.join(names)})", source=str(log)
        )
    if needs_embedding and "embedding" not in names:
        raise DataError(
            "the router was fitted on precomputed embeddings: the log needs an 'embedding' "
            "column (a list of floats per row)",
            source=str(log),
        )
    if "embedding" not in names and "query" not in names:
        raise DataError(
            "needs a 'query' column (texts) or an 'embedding' column (precomputed)",
            source=str(log),
        )
    want = ["query_id", "embedding" if "embedding" in names else "query", "dataset"]
    return [c for c in want if c in names]


def route_parquet(
    router_path: str | os.PathLike,
    log: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    memory_limit: str = "auto",
    force: bool = False,
    **options: Any,
) -> BatchResult:
    """Route every query of a Parquet log on Dask and write the decisions as Parquet.

    Parameters
    ----------
    router_path : str or os.PathLike
        A saved router folder (the workers load it themselves).
    log : str or os.PathLike
        A Parquet file or a folder of them (a partitioned dataset) with ``query_id`` and
        ``query`` or ``embedding``.
    out : str or os.PathLike
        Folder for the decisions: :data:`irt_bayes.routing.CHOICE_COLUMNS`, one file
        per partition.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); by default a local
        cluster is started for the run.
    n_workers : int, optional
        Worker processes of the local cluster (default: one per core).
    memory_limit : str, default "auto"
        Memory limit per local worker (Dask's format, e.g. ``"2GiB"``).
    force : bool, default False
        Replace an ``out`` folder irt-bayes did not write.
    **options
        Passed to :func:`irt_bayes.routing.route`: the names in :data:`ROUTE_OPTIONS`.

    Returns
    -------
    BatchResult

    Raises
    ------
    DataError
        A log without the columns routing needs, or embeddings of another dimension.
    IrtBayesError
        An option routing cannot take per partition (``budget``), or an unknown one.

    See Also
    --------
    irt_bayes.routing.route : the same decisions for a batch held in memory.

    Examples
    --------
    >>> res = route_parquet("router", "log.parquet", "decisions.parquet",
    ...                     willingness_to_pay=50)  # doctest: +SKIP
    >>> res.counts  # doctest: +SKIP
    """
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from irt_bayes.embeddings import is_precomputed
    from irt_bayes.router import IRTRouter

    unknown = sorted(set(options) - set(ROUTE_OPTIONS))
    if unknown:
        hint = (
            " (a total budget needs the whole batch in one process)" if "budget" in unknown else ""
        )
        raise IrtBayesError(f"batch routing cannot take {unknown[0]!r}{hint}")
    t0 = time.perf_counter()
    check_output_dir(out, "decisions", force=force)
    router_path, log = Path(router_path).absolute(), Path(log).absolute()
    if not log.exists():
        raise DataError("no such file or folder", source=str(log))
    router = IRTRouter.load(router_path, progress=False)  # fails here, not on a worker
    cols = _log_columns(log, is_precomputed(router.encoder_id_))
    cluster = None
    if scheduler is None:
        workers = n_workers or os.cpu_count() or 1
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,  # route() is numpy-bound; one thread per core
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            frame = dd.read_parquet(str(log), columns=cols)
            # each partition's first row in the log: queries draw as in one batch
            sizes = frame["query_id"].map_partitions(len).compute().to_numpy()
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
            decisions = frame.map_partitions(
                _route_partition,
                str(router_path),
                str(log),
                offsets,
                dict(options),
                meta=_META,
            )
            with atomic_directory(out, "decisions", force=force) as tmp:
                decisions.to_parquet(str(tmp), write_index=False)
                counts, acc, cost, n = _summary(tmp)
                n_partitions = frame.npartitions
            peaks = client.run(_peak_rss)
    finally:
        if cluster is not None:
            cluster.close()
    return BatchResult(
        path=Path(out),
        n_queries=n,
        n_partitions=int(n_partitions),
        seconds=time.perf_counter() - t0,
        counts=counts.sort_values(ascending=False).rename("queries"),
        mean_accuracy=float(acc) / max(n, 1),
        total_cost=float(cost),
        worker_peak_bytes={str(k): int(v) for k, v in peaks.items()},
    )
