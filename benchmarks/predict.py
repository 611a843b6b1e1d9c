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
                                 [--data-dir DIR] [--cache-dir DIR] [--out FILE]

The table is printed and written as Markdown to ``benchmarks/results/predict.md``. Time it
on a quiet machine (see ``benchmarks/fit.py`` on ``OPENBLAS_NUM_THREADS``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit import (  # noqa: E402  (shared helpers of the fit benchmark)
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

from irt_bayes import IRTRouter  # noqa: E402

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
    speed_rows.append(
        ["first call only: extract posterior draws", fmt(params_s), "", "", "", "(once)"]
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
            f"Command: `{command_line(argv)}`",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
