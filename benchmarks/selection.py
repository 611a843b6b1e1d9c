"""How the defaults were chosen: cross-validation on the *training* files only.

For each training set, the queries are split into K folds (stratified by dataset); each
candidate spec is fitted on K - 1 folds and predicts the held-out fold from the query
text alone (no label), as it will route. Reported per candidate: held-out log loss (mean
over folds, and its sd), and the largest per-LLM gap between mean predicted P(correct)
and observed accuracy on the held-out queries. The test files are never read.

Training sets: RouterBench arc_challenge + mbpp train; RouterDC's 7-LLM train split with
labels, and the same without labels (latent clusters); simulations with the response
styles of ``irt_bayes.simulate`` (position bias, specialists, near-chance task).

Run from the repository root::

    python benchmarks/selection.py                  # everything (about 40 minutes)
    python benchmarks/selection.py --sets routerbench --specs 2pl,mirt-2

The table prints and is written to ``benchmarks/results/selection.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
import pandas as pd
from common import RESULTS, encode, machine, md, model7, routerbench, spec_from

warnings.filterwarnings("ignore")

SPECS = "2pl,3pl,mirt-2,mirt-2:dataset_abilities=true,llm-mean,rasch"
SETS = "routerbench,model7,model7-unlabelled,sim-position-bias,sim-specialists,sim-near-chance"


def _data(name: str):
    from irt_bayes.data import ResponseData
    from irt_bayes.simulate import simulate_pool

    if name == "routerbench":
        return routerbench("train")
    if name.startswith("model7"):
        d = model7().select(split="train")
        if name.endswith("unlabelled"):
            d = ResponseData.from_frame(d.responses.drop(columns=["dataset"]), source=d.source)
        return d
    style = name.removeprefix("sim-")
    pool = simulate_pool(n_queries=1500, n_llms=8, seed=5, styles=(style,))
    return ResponseData.from_frame(pool.responses, source=name)


def _folds(data, k: int, seed: int) -> list[np.ndarray]:
    q = data.queries
    strata = q["dataset"].astype(str).to_numpy() if data.has_dataset else np.zeros(len(q))
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(q), dtype=int)
    for s in pd.unique(strata):
        rows = np.flatnonzero(strata == s)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % k
    return [q["query_id"].to_numpy()[fold == f] for f in range(k)]


def cross_validate(name: str, specs: list[str], k: int, seed: int) -> pd.DataFrame:
    """Held-out log loss and per-LLM gap of every spec on one training set."""
    from irt_bayes.checks import predictive_check
    from irt_bayes.router import IRTRouter, response_grid

    data = _data(name)
    emb = encode(data.queries["query"].tolist())
    pos = pd.Index(data.query_ids)
    rows = []
    for f, hold_ids in enumerate(_folds(data, k, seed)):
        fit_ids = np.setdiff1d(np.array(data.query_ids), hold_ids)
        fit, hold = data.select(queries=fit_ids), data.select(queries=hold_ids)
        e_fit, e_hold = emb[pos.get_indexer(fit.query_ids)], emb[pos.get_indexer(hold.query_ids)]
        score, weight = response_grid(hold, data.llms)
        hq = hold.queries.drop(columns=[c for c in ("dataset", "split") if c in hold.queries])
        for s in specs:
            spec, method, options = spec_from(s)
            t0 = time.perf_counter()
            r = IRTRouter(
                spec, method=method, seed=seed, progress=False, **{"holdout": 0.0, **options}
            )
            r.fit(fit, embeddings=e_fit)
            p = r.predict_proba(hq, embeddings=e_hold).reindex(llm=data.llms)
            chk = predictive_check(
                p.transpose("draw", "query", "llm").to_numpy(), score, weight, data.llms
            )
            per = chk.per_llm
            rows.append(
                {
                    "set": name,
                    "spec": s,
                    "fold": f,
                    "log_loss": chk.log_loss,
                    "max_gap": chk.max_gap,
                    "seconds": time.perf_counter() - t0,
                    **{f"sum:{m}": float(per.loc[m, "gap"] * per.loc[m, "n"]) for m in per.index},
                    **{f"n:{m}": int(per.loc[m, "n"]) for m in per.index},
                }
            )
            print(
                f"  {name} fold {f} {s}: log loss {chk.log_loss:.4f}, max gap "
                f"{chk.max_gap:.3f} ({rows[-1]['seconds']:.0f} s)",
                flush=True,
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the cross-validation and write ``benchmarks/results/selection.md``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=SETS)
    ap.add_argument("--specs", default=SPECS)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "selection.md"))
    args = ap.parse_args(argv)
    specs = args.specs.split(",")
    t0 = time.perf_counter()
    df = pd.concat([cross_validate(s, specs, args.folds, args.seed) for s in args.sets.split(",")])
    ll = df.pivot_table(index="spec", columns="set", values="log_loss", aggfunc="mean")
    sd = df.pivot_table(index="spec", columns="set", values="log_loss", aggfunc="std")
    # pooled over folds every training query is predicted once, by a fit that did not
    # see it: the per-LLM gap of those predictions has far less noise than one fold's
    sums = df.groupby(["set", "spec"]).sum(numeric_only=True)
    llms = sorted({c[4:] for c in df.columns if c.startswith("sum:")})
    pooled = pd.DataFrame({m: sums[f"sum:{m}"] / sums[f"n:{m}"] for m in llms if f"n:{m}" in sums})
    gap = pd.Series(pooled.abs().max(axis=1).to_numpy(), index=sums.index).unstack("set")
    order = [s for s in specs if s in ll.index]
    ll, sd, gap = ll.loc[order], sd.loc[order], gap.loc[order]
    best = ll.idxmin()
    text = (
        "# Model choice by cross-validation on the training files\n\n"
        f"Command: `python benchmarks/selection.py --sets {args.sets} --specs {args.specs} "
        f"--folds {args.folds} --seed {args.seed}`; {machine()}; "
        f"{time.perf_counter() - t0:.0f} s.\n\n"
        f"Held-out log loss, mean over {args.folds} folds (queries routed from their text "
        "only; lowest per set in the last row):\n\n"
        + md(ll, ".4f")
        + "\n\nbest: "
        + ", ".join(f"{k} {v}" for k, v in best.items())
        + "\n\nsd over folds:\n\n"
        + md(sd, ".4f")
        + "\n\nLargest per-LLM |mean predicted - observed accuracy| over the cross-"
        "validated predictions of every training query (each predicted by the fit that "
        "did not see it, pooled over folds):\n\n" + md(gap, ".3f") + "\n"
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
