"""Speed and quality of posterior prediction for new queries, per warm-up.

Speed: ``IRTRouter.predict_proba`` for 1,000 new queries x 11 LLMs x 1,000 posterior draws
with precomputed embeddings (encoding excluded), for ``warmup`` None / "irt-router";
best (and median) of 5 timed runs after one untimed call. The 1,000 query
embeddings are the 573 RouterBench test queries' embeddings followed by 427 of them again
with Gaussian noise (sd 0.02 per coordinate) added and re-normalised, so they sit where
real queries do. Timed twice: with each query's dataset label used
(``use_labels=True``) and from the text alone (the default: the dataset classifier's
posterior is mixed over, draw by draw, as for production queries). Target: < 0.5 s.
One extra row times ``predict`` (the summary frame with quantiles) for reference.

Routing at scale: ``route`` (expected utility, willingness to pay 10 USD) of 1,000 new
queries across 10,000 LLMs with 1,000 posterior draws -- 80 GB for one (draw, query, LLM)
array, which the package never holds: it works in blocks that fit ``memory_budget``
(default 1 GiB, :mod:`irt_bayes.memory`). The router is ``llm-mean`` fitted by ADVI
(300 iterations) to a hand-built tidy frame of 10,000 LLMs x 6 queries with random
16-dim embeddings (abilities and difficulties N(0, 1), random prices); the new queries'
embeddings are random too. It runs in a child process of its own, so that the peak
RSS (``ru_maxrss``) is that of fitting and routing alone; the peak traced by
``tracemalloc`` (numpy reports its allocations to it) covers the ``route`` call only, and
includes the (query, LLM) results (the table's 10 million rows), which the budget does not
cover. ``--scale-llms 0`` skips it (it takes minutes).

Quality: test log loss, Brier score and mean predictive sd of p over every observed
(test query, LLM) pair of the RouterBench test files, p = predictive mean of
``predict_proba`` (text only) clipped to [1e-6, 1 - 1e-6], for no warm-up and the
irt-router warm-up (k=5, lam=0.3), plus the per-(LLM, dataset) training-accuracy
reference.

The router is a quick ADVI fit (no held-out check) of the 2PL on the RouterBench
arc_challenge + mbpp TRAIN files (fit time printed, not part of the prediction timings),
or a saved router given by ``--router DIR`` (it must use the same encoder,
all-MiniLM-L6-v2).

Usage (from the repository root)::

    python benchmarks/predict.py [--router DIR] [--save DIR] [--model 2pl] [--seed 0]
                                 [--repeats 5] [--n-queries 1000]
                                 [--scale-llms 10000] [--scale-queries 1000]
                                 [--memory-budget BYTES]
                                 [--data-dir DIR] [--cache-dir DIR] [--out FILE]

The table is printed and written as Markdown to ``benchmarks/results/predict.md``. Time it
on a quiet machine (see ``benchmarks/fit.py`` on ``OPENBLAS_NUM_THREADS``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit import (
    DEFAULT_DATA,
    RESULTS,
    command_line,
    embed,
    fmt,
    load_split,
    machine_line,
    reference_scores,
    render_markdown,
    render_text,
    router_scores,
    routerbench_dir,
    write_markdown,
)

from irt_bayes import IRTRouter
from irt_bayes.memory import MEMORY_BUDGET
from irt_bayes.routing import route
from irt_bayes.simulate import wide_pool

WARMUPS: tuple[str | None, ...] = (None, "irt-router")
TARGET_S = 0.5
NOISE_SD = 0.02


def new_queries(
    test_queries: pd.DataFrame, test_emb: np.ndarray, n: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """n query rows and embeddings: the test queries, then noisy copies of them."""
    rng = np.random.default_rng(seed)
    pick = np.arange(n) % len(test_emb)
    emb = test_emb[pick].astype(np.float64)
    copies = np.arange(n) >= len(test_emb)
    emb[copies] += NOISE_SD * rng.standard_normal((int(copies.sum()), emb.shape[1]))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    frame = pd.DataFrame(
        {
            "query_id": [f"new{i}" for i in range(n)],
            "query": ["(precomputed embedding)"] * n,
            "dataset": test_queries["dataset"].to_numpy()[pick],
        }
    )
    return frame, emb.astype(np.float32)


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best and median wall time of ``repeats`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def wide_router(n_llms: int, seed: int, memory_budget: int) -> IRTRouter:
    """llm-mean fitted by ADVI to :func:`irt_bayes.simulate.wide_pool` (``n_llms`` x 6)."""
    frame, emb = wide_pool(n_llms, seed=seed)
    router = IRTRouter(
        "llm-mean",
        progress=False,
        holdout=0.0,
        n_clusters=1,
        max_iter=300,
        seed=seed,
        memory_budget=memory_budget,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant-score LLMs and ADVI convergence notes
        return router.fit(frame, embeddings=emb)


def route_at_scale(n_llms: int, n_queries: int, seed: int, memory_budget: int) -> dict[str, Any]:
    """Fit :func:`wide_router`, then time and trace ``route`` of ``n_queries`` new queries.

    Run in a child process of its own: ``ru_maxrss`` is then the peak of this work only.
    """
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    t0 = time.perf_counter()
    router = wide_router(n_llms, seed, memory_budget)
    fit_s = time.perf_counter() - t0
    _ = router.draws_  # the posterior draws, cached before the trace
    emb = np.random.default_rng(seed + 1).standard_normal((n_queries, 16)).astype(np.float32)
    texts = [f"new query {i}" for i in range(n_queries)]
    plan = router.predictive(texts, embeddings=emb).plan(memory_budget)
    tracemalloc.start()
    t0 = time.perf_counter()
    res = route(router, texts, embeddings=emb, willingness_to_pay=10.0)
    route_s = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "fit_s": fit_s,
        "route_s": route_s,
        "traced_peak": peak,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
        "blocks": len(plan),
        "block_shape": (plan.rows, plan.cols),
        "n_draws": router.n_draws_,
        "table_rows": len(res.table),
        # the (query, LLM) numpy arrays behind the table (its strings are Arrow's,
        # which tracemalloc does not see)
        "result_bytes": int(
            sum(
                res.table[c].to_numpy().nbytes
                for c in res.table.columns
                if c != "llm" and c != "query_id"
            )
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", type=Path, default=None, help="saved router directory")
    parser.add_argument("--save", type=Path, default=None, help="save the fitted router here")
    parser.add_argument("--model", default="2pl", help="spec of the ADVI fit (default 2pl)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5, help="neighbours of both warm-ups")
    parser.add_argument("--lam", type=float, default=0.3, help="irt-router blend weight")
    parser.add_argument(
        "--scale-llms", type=int, default=10_000, help="LLMs of the routing-at-scale row (0: skip)"
    )
    parser.add_argument("--scale-queries", type=int, default=1000)
    parser.add_argument(
        "--memory-budget", type=int, default=MEMORY_BUDGET, help="bytes (default 1 GiB)"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache")
    parser.add_argument("--out", type=Path, default=RESULTS / "predict.md")
    args = parser.parse_args(argv)

    folder = routerbench_dir(args.data_dir)
    train, test = load_split(folder, "train"), load_split(folder, "test")
    print(f"train: {train}\ntest:  {test}", flush=True)
    (emb_train, emb_test), encoder, _ = embed([train, test], args.cache_dir)
    encoder_id = encoder.encoder_id

    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    if args.router is not None:
        router = IRTRouter.load(args.router, progress=False)
        if router.encoder_id_ == "precomputed":
            print(f"note: {args.router} was fitted on bare embeddings; assuming {encoder_id}")
        elif router.encoder_id_ != encoder_id:
            sys.exit(f"error: {args.router} was fitted with {router.encoder_id_}, not {encoder_id}")
        source = f"saved router {args.router} ({router.spec_.name}, {router.diagnostics_.method})"
    else:
        print(f"fitting {args.model} with ADVI ...", flush=True)
        t0 = time.perf_counter()
        router = IRTRouter(
            args.model, encoder=encoder, method="advi", progress=False, seed=args.seed, holdout=0
        )
        router.fit(train, embeddings=emb_train)
        fit_s = time.perf_counter() - t0
        source = f"{args.model} fitted with ADVI on the train files in {fit_s:.1f} s"
        if args.save is not None:
            print(f"saved router to {router.save(args.save)}")

    # First prediction after fit/load extracts the draws; time it once.
    router._draws = None  # private cache, reset only to time its construction
    t0 = time.perf_counter()
    n_draws = router.n_draws_
    params_s = time.perf_counter() - t0

    frame, emb = new_queries(test.queries, emb_test, args.n_queries, args.seed)
    variants = ({"use_labels": True}, {})
    opts = {"k": args.k, "lam": args.lam}
    n_llms = len(router.llms_)
    print(
        f"timing predict_proba: {args.n_queries} queries x {n_llms} LLMs x {n_draws} draws, "
        f"best of {args.repeats} ...",
        flush=True,
    )
    speed_header = [
        "call",
        "with labels: best s",
        "with labels: median s",
        "text only: best s",
        "text only: median s",
        f"target < {TARGET_S} s",
    ]
    speed_rows = []
    for warmup in WARMUPS:
        row = [f"predict_proba, warmup={warmup}"]
        for kw in variants:
            best, med = best_of(
                lambda kw=kw, w=warmup: router.predict_proba(
                    frame, embeddings=emb, warmup=w, **opts, **kw
                ),
                args.repeats,
            )
            row += [fmt(best), fmt(med)]
        row.append("yes" if float(row[1]) < TARGET_S and float(row[3]) < TARGET_S else "NO")
        speed_rows.append(row)
    best, med = best_of(lambda: router.predict(frame, embeddings=emb), args.repeats)
    speed_rows.append(["predict (summary frame), warmup=None", fmt(best), fmt(med), "", "", ""])
    best, med = best_of(
        lambda: route(router, frame, embeddings=emb, willingness_to_pay=10.0), args.repeats
    )
    speed_rows.append(["route (expected utility), warmup=None", "", "", fmt(best), fmt(med), ""])
    speed_rows.append(
        ["first call only: extract posterior draws", fmt(params_s), "", "", "", "(once)"]
    )

    scale_header = [
        "route, expected utility",
        "time s",
        "tracemalloc peak MiB",
        "(query, LLM) results MiB",
        "peak beyond the results MiB",
        "peak RSS MiB",
        "budget MiB",
        "blocks (queries x LLMs)",
        "one (S, n, J) array GiB",
    ]
    scale_rows = []
    if args.scale_llms > 0:
        print(
            f"routing {args.scale_queries} queries x {args.scale_llms} LLMs in a child "
            "process (minutes) ...",
            flush=True,
        )
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            sc = pool.apply(
                route_at_scale,
                (args.scale_llms, args.scale_queries, args.seed, args.memory_budget),
            )
        mib = 2**20
        cells = sc["n_draws"] * args.scale_queries * args.scale_llms
        scale_rows.append(
            [
                f"{args.scale_queries} queries x {args.scale_llms} LLMs x {sc['n_draws']} draws",
                fmt(sc["route_s"], ".1f"),
                fmt(sc["traced_peak"] / mib, ".0f"),
                fmt(sc["result_bytes"] / mib, ".0f"),
                fmt((sc["traced_peak"] - sc["result_bytes"]) / mib, ".0f"),
                fmt(sc["maxrss"] / mib, ".0f"),
                fmt(args.memory_budget / mib, ".0f"),
                f"{sc['blocks']} ({sc['block_shape'][0]} x {sc['block_shape'][1]})",
                fmt(cells * 8 / 2**30, ".1f"),
            ]
        )
        scale_note = (
            f"The {args.scale_llms}-LLM llm-mean router was fitted in {sc['fit_s']:.1f} s "
            f"(not part of the route time). The tracemalloc peak covers the route call and "
            f"includes its result: {sc['table_rows']} table rows, whose (query, LLM) numpy "
            "arrays the budget does not cover; the peak beyond them is what the blocks "
            "took. Peak RSS is the whole child process (fit, PyTensor, the posterior, the "
            "result and its Arrow strings)."
        )

    print("scoring the warm-ups on the test files ...", flush=True)
    quality_header = ["warm-up", "test log loss", "test Brier", "mean posterior sd of p"]
    quality_rows = []
    for warmup in WARMUPS:
        label = {None: "none", "irt-router": f"irt-router (k={args.k}, lam={args.lam})"}[warmup]
        ll, brier, sd = router_scores(router, test, emb_test, warmup=warmup, **opts)
        quality_rows.append([label, fmt(ll, ".4f"), fmt(brier, ".4f"), fmt(sd, ".4f")])
    for name, (ll, brier) in reference_scores(train, test).items():
        quality_rows.append([name, fmt(ll, ".4f"), fmt(brier, ".4f"), "-"])

    context = (
        f"Router: {source}. Encoder {encoder_id}; embeddings precomputed (encoding excluded). "
        f"New queries: {len(test.queries)} RouterBench test embeddings + "
        f"{max(args.n_queries - len(test.queries), 0)} noisy copies (sd {NOISE_SD}, "
        f"re-normalised). Kernel temperature of the residual prior: {router.tau_}. "
        f"{machine_line()}"
    )
    quality_note = (
        f"Quality on the RouterBench test files ({test.n_queries} queries, "
        f"{test.n_responses} observed pairs), p = posterior mean clipped to [1e-6, 1 - 1e-6]."
    )
    print("\n" + context + "\n")
    print(render_text(speed_header, speed_rows))
    print("\n" + quality_note + "\n")
    print(render_text(quality_header, quality_rows))
    scale_blocks = []
    if scale_rows:
        print(f"\nRouting at scale, memory budget {args.memory_budget} bytes\n")
        print(render_text(scale_header, scale_rows))
        print("\n" + scale_note)
        scale_blocks = [
            "## Routing at scale",
            scale_note,
            render_markdown(scale_header, scale_rows),
        ]
    write_markdown(
        args.out,
        "Prediction benchmark",
        [
            context,
            "## Speed",
            f"{args.n_queries} queries x {n_llms} LLMs x {n_draws} draws, best and median "
            f"of {args.repeats} runs after one untimed call.",
            render_markdown(speed_header, speed_rows),
            "## Quality of the warm-ups",
            quality_note,
            render_markdown(quality_header, quality_rows),
            *scale_blocks,
            f"Command: `{command_line(argv)}`",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
