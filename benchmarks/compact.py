"""Compact against full saved routers: size, load time, and how far predictions move.

Fits the 2pl by NUTS (nutpie, 4 chains x 500 draws, the package defaults) on the
RouterBench TRAIN files (arc_challenge + mbpp, 1,338 queries x 11 LLMs), saves it twice
(the default compact router and ``--full-posterior``), and reports per file:

* MB on disk (the whole folder) and ``posterior.nc`` alone;
* load s: ``IRTRouter.load`` in a warm process, median of 5 (imports excluded: they
  are the same for both and paid once per process);
* on the 573 TEST queries (embedded once beforehand), the largest and mean absolute
  difference of the mean predicted P(correct) from the in-memory router's, and the
  largest difference in units of its Monte Carlo standard error ``sd / sqrt(S)`` (S the
  draws prediction uses, 1,000): what the compact router's thinning and float32 cost.

Target: <= 20 MB, load < 1 s, predictions equal within Monte Carlo error.

Usage (from the repository root)::

    python benchmarks/compact.py [--model 2pl] [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, encode, machine, md, routerbench


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.iterdir()) / 1e6


def main() -> int:
    from irt_bayes import IRTRouter

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="2pl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "compact.md"))
    args = ap.parse_args()

    train, test = routerbench("train"), routerbench("test")
    emb_train = encode(train.queries["query"].tolist())
    q = test.queries[["query_id", "query"]]
    emb_test = encode(q["query"].tolist())
    router = IRTRouter(args.model, method="nuts", seed=args.seed, holdout=0.0, progress=False)
    t = time.perf_counter()
    router.fit(train, embeddings=emb_train)
    print(f"NUTS fit {time.perf_counter() - t:.0f} s", flush=True)
    ref = router.predict_proba(q, embeddings=emb_test)
    m0, se = ref.mean("draw").to_numpy(), ref.std("draw").to_numpy() / np.sqrt(ref.sizes["draw"])
    rows = {}
    with tempfile.TemporaryDirectory(prefix="irt-bayes-compact-") as tmp:
        for name, full in (("compact (default)", False), ("--full-posterior", True)):
            path = router.save(Path(tmp) / name.split()[0].strip("-"), full_posterior=full)
            times = []
            for _ in range(5):
                t = time.perf_counter()
                loaded = IRTRouter.load(path, progress=False)
                times.append(time.perf_counter() - t)
            m = loaded.predict_proba(q, embeddings=emb_test).mean("draw").to_numpy()
            d = np.abs(m - m0)
            post = loaded.idata_.posterior
            rows[name] = {
                "MB": folder_mb(path),
                "posterior.nc MB": (path / "posterior.nc").stat().st_size / 1e6,
                "draws": post.sizes["chain"] * post.sizes["draw"],
                "load s": statistics.median(times),
                "max abs dP": d.max(),
                "mean abs dP": d.mean(),
                "max abs dP / MC se": (d / np.where(se > 0, se, np.inf)).max(),
            }
            print(f"{name}: {rows[name]}", flush=True)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "saved router"
    text = (
        f"Machine: {machine()}. {args.model} by NUTS on the RouterBench TRAIN files "
        f"({train.n_queries} queries x {len(train.llms)} LLMs), predictions on the "
        f"{len(q)} TEST queries, seed {args.seed}.\n\n" + md(table, floatfmt=".4g") + "\n"
    )
    print("\n" + text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
