"""Onboarding benchmark: a new LLM from 10-100 probes, and labels chosen by their value.

Part 1 (onboarding): on the RouterBench arc_challenge + mbpp training files, each of the
11 LLMs is left out in turn; a router is fitted on the other ten and the left-out LLM is
added from N of its training answers (``IRTRouter.add_llms``), chosen

* ``adaptive``: by ``suggest_probes`` in rounds of 5, each round given the answers so far,
  with ``target="abilities"`` (``adaptive-pred``: ``"predictions"``; ``adaptive-acc``:
  ``"accuracy"``, the default);
* ``random``: uniformly among the training queries it answered (mean of 4 draws);
* ``anchor``: tinyBenchmarks-style anchor points, the training query nearest each of N
  k-means centres of the other LLMs' correctness patterns.

Reported per strategy and N: the mean absolute error of the LLM's predicted test
accuracy (test queries routed from their text; ``train_mae``: on its training queries
that were not probes, what a choice of default may look at), the share of LLMs whose observed test
accuracy lies in the 94% predictive interval, and the routing AUC of the onboarded
11-LLM router minus that of the router fitted on all training data.

Part 2 (active labelling): a router fitted on a random slice of the training queries
(every LLM's answer) gets 300 or 1000 more (query, LLM) labels from the rest, chosen by
``suggest_labels`` (EVSI averaged over the AUC's cost weights) or at random; after a
refit, the test AUC gained per 100 labels.

Each part writes its own file (:data:`FILES`), so rerunning one keeps the others.

Part ``prior`` (a choice of default): the width of a
new LLM's prior, ``irt_bayes.onboarding.PRIOR_SCALES`` times each ``--prior-factors``,
judged by the error on the left-out LLM's training answers that were not probes.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from common import DATA, RESULTS, encode, machine, md, routerbench

warnings.filterwarnings("ignore")

# strategy -> suggest_probes target (adaptive ones) or None
STRATEGIES = {
    "adaptive": "abilities",
    "adaptive-pred": "predictions",
    "adaptive-acc": "accuracy",
    "random": None,
    "anchor": None,
}
ROUND = 5  # adaptive probes chosen per round
RANDOM_REPEATS = 4


def _fit(data, emb_of: dict, model: str, seed: int):
    from irt_bayes.router import IRTRouter

    emb = np.stack([emb_of[q] for q in data.query_ids])
    return IRTRouter(model, seed=seed, progress=False, holdout=0).fit(data, embeddings=emb)


def _subset(data, rows: pd.DataFrame):
    from irt_bayes.data import ResponseData

    return ResponseData(rows.reset_index(drop=True), "subset")


def _test_proba(router, test, e_te: np.ndarray) -> xr.DataArray:
    """The router's (draw, query, llm) P(correct) on ``test``'s queries, from their text."""
    return router.predict_proba(test.queries[["query_id", "query"]], embeddings=e_te)


def _summary(p: xr.DataArray, data, llm: str) -> tuple[float, float, float]:
    """Predicted accuracy of ``llm`` on the queries it answered in ``data``, 94% interval."""
    answered = data.responses.loc[data.responses["llm"] == llm, "query_id"]
    p = p.sel(llm=llm)
    p = p.sel(query=p["query"].isin(answered.to_numpy())).to_numpy()  # (S, n)
    rng = np.random.default_rng(0)
    acc = (rng.random(p.shape) < p).mean(axis=1)  # predictive of the observed accuracy
    return float(p.mean()), float(np.quantile(acc, 0.03)), float(np.quantile(acc, 0.97))


def _auc(p: xr.DataArray, evalset) -> float:
    from irt_bayes.evaluation import evaluate

    p = p.mean("draw").sel(llm=evalset.llms, query=evalset.query_ids).to_numpy()
    table, _ = evaluate({"r": p}, evalset)
    return float(table.loc["r", "auc"])


def _anchors(train, llm: str, n: int, seed: int) -> list[str]:
    """tinyBenchmarks' anchor points: the query nearest each k-means centre of correctness."""
    from sklearn.cluster import KMeans

    wide = train.responses.pivot(index="query_id", columns="llm", values="score")
    others = wide.drop(columns=[llm]).fillna(wide.drop(columns=[llm]).mean())
    answered = wide[llm].notna()
    x = others[answered].to_numpy(float)
    ids = others[answered].index.to_numpy()
    km = KMeans(n_clusters=n, n_init=4, random_state=seed).fit(x)
    out = []
    for k in range(n):
        members = np.flatnonzero(km.labels_ == k)
        d = ((x[members] - km.cluster_centers_[k]) ** 2).sum(axis=1)
        out.append(str(ids[members[np.argmin(d)]]))
    return out


def part_onboarding(
    model: str,
    sizes: list[int],
    llms: list[str] | None,
    seeds: list[int],
    strategies: list[str],
    workers: int = 1,
    rows_file: str = "onboarding_rows.csv",
) -> str:
    """Part 1 at every seed, ``workers`` seeds at a time (each in its own process)."""
    from concurrent.futures import ProcessPoolExecutor

    args = [(model, sizes, llms, seed, strategies) for seed in seeds]
    if workers > 1:
        # each process loads and encodes (cached) itself: nothing large is pickled
        with ProcessPoolExecutor(min(workers, len(seeds))) as pool:
            runs = list(pool.map(_onboard_seed, *zip(*args, strict=True)))
    else:
        runs = [_onboard_seed(*a) for a in args]
    test = routerbench("test")
    df = pd.DataFrame([row for run in runs for row in run["rows"]])
    df["observed"] = df["llm"].map(test.responses.groupby("llm")["score"].mean())
    return _onboarding_table(
        df,
        model,
        seeds,
        strategies,
        [f for run in runs for f in run["fits"]],
        {seed: run["full_auc"] for seed, run in zip(seeds, runs, strict=True)},
        [run["full_s"] for run in runs],
        rows_file,
    )


def _onboard_seed(
    model: str, sizes: list[int], llms: list[str] | None, seed: int, strategies: list[str]
) -> dict:
    """Part 1 at one seed (its own fits, probe choices and random draws): rows and times."""
    from irt_bayes.evaluation import EvalSet

    train, test = routerbench("train"), routerbench("test")
    emb_of = dict(zip(train.query_ids, encode(train.queries["query"].tolist()), strict=True))
    e_te = encode(test.queries["query"].tolist())
    evalset = EvalSet.from_data(test, train.llms)
    rows, fits = [], []
    t0 = time.perf_counter()
    full = _fit(train, emb_of, model, seed)
    full_s = time.perf_counter() - t0
    full_auc = _auc(_test_proba(full, test, e_te), evalset)
    for llm in llms or train.llms:
        t0 = time.perf_counter()
        rest = train.select(llms=[m for m in train.llms if m != llm])
        router = _fit(rest, emb_of, model, seed)
        fits.append(time.perf_counter() - t0)
        mine = train.responses[train.responses["llm"] == llm]
        answered = set(mine["query_id"])
        ref = _summary(_test_proba(full, test, e_te), test, llm)
        rows.append(
            dict(
                llm=llm,
                seed=seed,
                strategy="all training data",
                n=len(mine),
                pred=ref[0],
                lo=ref[1],
                hi=ref[2],
                auc=full_auc,
                seconds=np.nan,
            )
        )
        chosen = {k: [] for k in strategies if STRATEGIES[k]}
        skipped = {k: [] for k in chosen}
        for n in sizes:
            for strategy in strategies:
                target = STRATEGIES[strategy]
                repeats = RANDOM_REPEATS if strategy == "random" else 1
                for rep in range(repeats):
                    t1 = time.perf_counter()
                    if target is not None:
                        ids, skip = chosen[strategy], skipped[strategy]
                        while len(ids) < n:
                            after = mine[mine["query_id"].isin(ids)] if ids else None
                            k = min(ROUND, n - len(ids))
                            picks = router.suggest_probes(
                                k, after=after, exclude=skip, target=target, seed=seed
                            )["query_id"]
                            ids += [q for q in picks if q in answered]
                            skip += [q for q in picks if q not in answered]
                        ids = ids[:n]
                    elif strategy == "random":
                        rng = np.random.default_rng([seed, rep, n])
                        ids = list(rng.choice(sorted(answered), n, replace=False))
                    else:
                        ids = _anchors(train, llm, n, seed)
                    probes = _subset(train, mine[mine["query_id"].isin(ids)])
                    # the left-out LLM may have answered queries the other ten did not
                    e_pr = np.stack([emb_of[q] for q in probes.query_ids])
                    onboarded = router.add_llms(probes, embeddings=e_pr)
                    secs = time.perf_counter() - t1
                    p = _test_proba(onboarded, test, e_te)
                    s, auc = _summary(p, test, llm), _auc(p, evalset)
                    unprobed = _subset(train, mine[~mine["query_id"].isin(ids)])
                    e_un = np.stack([emb_of[q] for q in unprobed.query_ids])
                    tr = _summary(_test_proba(onboarded, unprobed, e_un), unprobed, llm)
                    rows.append(
                        dict(
                            llm=llm,
                            seed=seed,
                            strategy=strategy,
                            n=n,
                            pred=s[0],
                            lo=s[1],
                            hi=s[2],
                            auc=auc,
                            seconds=secs,
                            train_pred=tr[0],
                            train_observed=float(unprobed.responses["score"].mean()),
                        )
                    )
        print(f"  seed {seed}: {llm} done ({fits[-1]:.0f} s fit)", flush=True)
    return dict(rows=rows, fits=fits, full_auc=full_auc, full_s=full_s)


def _onboarding_table(
    df: pd.DataFrame,
    model: str,
    seeds: list[int],
    strategies: list[str],
    fits: list[float],
    full_auc: dict[int, float],
    full_s: list[float],
    rows_file: str,
) -> str:
    """Part 1's table: means over the LLMs, then mean and sd of those over the seeds."""
    df["abs_error"] = (df["pred"] - df["observed"]).abs()
    df["train_abs_error"] = (df["train_pred"] - df["train_observed"]).abs()
    df["covered"] = (df["lo"] <= df["observed"]) & (df["observed"] <= df["hi"])
    df["auc_vs_full"] = df["auc"] - df["seed"].map(full_auc)
    RESULTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(RESULTS / rows_file, index=False)
    per_seed = (
        df[df["strategy"] != "all training data"]
        .groupby(["strategy", "n", "seed"])
        .agg(
            mae=("abs_error", "mean"),
            train_mae=("train_abs_error", "mean"),
            coverage=("covered", "mean"),
            auc_vs_full=("auc_vs_full", "mean"),
            worst_auc_vs_full=("auc_vs_full", "min"),
            onboard_s=("seconds", "mean"),
        )
    )
    by = per_seed.groupby(["strategy", "n"])
    agg = by.mean()
    agg.insert(1, "mae_sd", by["mae"].std(ddof=1) if len(seeds) > 1 else np.nan)
    agg["worst_auc_vs_full"] = by["worst_auc_vs_full"].min()
    ref = df[df["strategy"] == "all training data"]
    wide = agg["mae"].unstack("strategy")
    wins = ", ".join(
        f"{k} {'yes' if (wide[k] < wide['random']).all() else 'no'}"
        for k in strategies
        if STRATEGIES[k] and "random" in wide
    )
    return (
        f"### Onboarding a left-out LLM (RouterBench arc_challenge + mbpp, model `{model}`)\n\n"
        f"Each of {df['llm'].nunique()} LLMs left out in turn; router fitted on the other ten "
        f"(mean {np.mean(fits):.0f} s per fit), the LLM added from N of its training answers. "
        f"`mae`: mean |predicted - observed| test accuracy over the LLMs; `coverage`: share "
        f"inside the 94% predictive interval; `auc_vs_full`: routing AUC of the onboarded "
        f"router minus the router fitted on all training data "
        f"({np.mean(list(full_auc.values())):.4f} on average, fit {np.mean(full_s):.0f} s). "
        f"Random: mean of {RANDOM_REPEATS} draws per LLM. Every column is the mean over "
        f"seeds {seeds} (each seed: its own fits, probe choices and random draws) of the "
        f"mean over the LLMs; `mae_sd`: the sd of that over the seeds; `worst_auc_vs_full`: "
        f"the worst LLM at any seed.\n\n"
        + md(agg, ".4f")
        + f"\n\nReference, the router fitted on all training data: mae "
        f"{ref['abs_error'].mean():.4f}, coverage {ref['covered'].mean():.2f}.\n\n"
        f"Adaptive has a lower mae than random at every N: {wins or 'not measured'}.\n"
    )


def part_labels(model: str, start: int, sizes: list[int], seeds: list[int]) -> str:
    from irt_bayes.data import ResponseData
    from irt_bayes.evaluation import EvalSet, lambda_grid

    train, test = routerbench("train"), routerbench("test")
    emb_of = dict(zip(train.query_ids, encode(train.queries["query"].tolist()), strict=True))
    e_te = encode(test.queries["query"].tolist())
    evalset = EvalSet.from_data(test, train.llms)
    r = train.responses
    lams = lambda_grid(evalset.cost[evalset.complete], 12)[1:-2]  # the sweep's interior
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        first = set(rng.choice(np.array(train.query_ids), start, replace=False))
        base_data = ResponseData(r[r["query_id"].isin(first)].reset_index(drop=True), "slice")
        base = _fit(base_data, emb_of, model, seed)
        base_auc = _auc(_test_proba(base, test, e_te), evalset)
        pool = r[~r["query_id"].isin(first)]
        cand = pool.drop_duplicates("query_id")[["query_id", "query"]]
        t0 = time.perf_counter()
        e_c = np.stack([emb_of[q] for q in cand["query_id"]])
        ranked = base.suggest_labels(
            cand, len(cand) * len(train.llms), willingness_to_pay=lams, embeddings=e_c
        )
        choose_s = time.perf_counter() - t0
        have = ranked.set_index(["query_id", "llm"]).index.isin(
            pool.set_index(["query_id", "llm"]).index
        )
        ranked = ranked[have]  # pairs whose outcome the files hold
        for n in sizes:
            picks = {
                "value (EVSI)": pool.merge(ranked.head(n)[["query_id", "llm"]]),
                "random": pool.sample(n, random_state=seed),
            }
            for name, extra in picks.items():
                data = ResponseData(
                    pd.concat([base_data.responses, extra], ignore_index=True), "slice+labels"
                )
                auc = _auc(_test_proba(_fit(data, emb_of, model, seed), test, e_te), evalset)
                rows.append(
                    dict(
                        labels=n,
                        chosen_by=name,
                        seed=seed,
                        base_auc=base_auc,
                        auc=auc,
                        gain_per_100=(auc - base_auc) * 100 / n,
                        choose_s=choose_s if name != "random" else 0.0,
                    )
                )
        print(f"  labels seed {seed} done", flush=True)
    df = pd.DataFrame(rows)
    agg = df.groupby(["labels", "chosen_by"]).agg(
        base_auc=("base_auc", "mean"),
        auc=("auc", "mean"),
        gain_per_100=("gain_per_100", "mean"),
        gain_sd=("gain_per_100", "std"),
        choose_s=("choose_s", "mean"),
    )
    return (
        f"### Active labelling (RouterBench, model `{model}`)\n\nStart: {start} random "
        f"training queries with every LLM's answer; + N (query, LLM) labels from the other "
        f"training queries, chosen by `suggest_labels` (EVSI averaged over {len(lams)} "
        f"cost weights of the AUC sweep) or at random, then refit. Test AUC gained per 100 "
        f"labels, mean (sd) over seeds {seeds}; `choose_s`: time to rank every pair:\n\n"
        + md(agg, ".4f")
        + "\n"
    )


def part_prior(model: str, sizes: list[int], factors: list[float], seed: int) -> str:
    """Choose the width of a new LLM's prior by its *training* queries that were not probes.

    Each LLM is left out and onboarded from ``sizes`` probes chosen by the default
    target, with :data:`irt_bayes.onboarding.PRIOR_SCALES` multiplied by each factor;
    the error is measured on the LLM's other training answers (test accuracy beside it,
    reported only).
    """
    import irt_bayes.onboarding as onb

    train, test = routerbench("train"), routerbench("test")
    emb_of = dict(zip(train.query_ids, encode(train.queries["query"].tolist()), strict=True))
    e_te = encode(test.queries["query"].tolist())
    obs = test.responses.groupby("llm")["score"].mean()
    base, rows = onb.PRIOR_SCALES, []
    try:
        for llm in train.llms:
            router = _fit(
                train.select(llms=[m for m in train.llms if m != llm]), emb_of, model, seed
            )
            mine = train.responses[train.responses["llm"] == llm]
            answered = set(mine["query_id"])
            for f in factors:
                onb.PRIOR_SCALES = tuple(f * k for k in base)
                ids: list[str] = []
                skip: list[str] = []
                for n in sizes:
                    while len(ids) < n:
                        after = mine[mine["query_id"].isin(ids)] if ids else None
                        picks = router.suggest_probes(
                            min(ROUND, n - len(ids)), after=after, exclude=skip, seed=seed
                        )["query_id"]
                        ids += [q for q in picks if q in answered]
                        skip += [q for q in picks if q not in answered]
                    ids = ids[:n]
                    probes = _subset(train, mine[mine["query_id"].isin(ids)])
                    e_pr = np.stack([emb_of[q] for q in probes.query_ids])
                    onboarded = router.add_llms(probes, embeddings=e_pr)
                    rest_q = mine[~mine["query_id"].isin(ids)]
                    unprobed = _subset(train, rest_q)
                    e_un = np.stack([emb_of[q] for q in unprobed.query_ids])
                    tr = _summary(_test_proba(onboarded, unprobed, e_un), unprobed, llm)
                    te = _summary(_test_proba(onboarded, test, e_te), test, llm)
                    rows.append(
                        dict(
                            factor=f,
                            n=n,
                            train_mae=abs(tr[0] - rest_q["score"].mean()),
                            test_mae=abs(te[0] - obs[llm]),
                        )
                    )
            print(f"  {llm} done", flush=True)
    finally:
        onb.PRIOR_SCALES = base
    df = pd.DataFrame(rows)
    table = df.pivot_table(index="factor", columns="n", values="train_mae")
    table["mean"] = table.mean(axis=1)
    table["test mean (reported only)"] = df.groupby("factor")["test_mae"].mean()
    return (
        f"### Width of a new LLM's prior, chosen on training queries (model `{model}`)\n\n"
        f"Each LLM left out and onboarded by the default target; the prior's scales "
        f"({', '.join(f'{k:g}' for k in base)} times the population scale) multiplied by "
        f"a factor. Mean |predicted - observed| accuracy on the LLM's training answers "
        f"that were not probes, by number of probes:\n\n" + md(table, ".4f") + "\n"
    )


FILES = {"1": "onboarding.md", "2": "onboarding_labels.md", "prior": "onboarding_prior.md"}
PARTS = tuple(FILES)


def main(argv: list[str] | None = None) -> int:
    """Run the parts; write each to its file in :data:`FILES`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="1,2", help="1, 2 and/or prior, comma-separated")
    ap.add_argument("--model", default="2pl", help="spec of every router fitted")
    ap.add_argument("--sizes", default="10,20,30,50,100", help="probe counts of parts 1, prior")
    ap.add_argument("--llms", help="left-out LLMs of part 1, comma-separated (default all)")
    ap.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"part 1's probe choices, comma-separated (of {', '.join(STRATEGIES)})",
    )
    ap.add_argument(
        "--workers", type=int, default=1, help="part 1: seeds run at once, one process each"
    )
    ap.add_argument("--start", type=int, default=150, help="part 2: queries of the first fit")
    ap.add_argument("--labels", default="300,1000", help="part 2: labels added")
    ap.add_argument(
        "--seeds", default="0,1,2", help="seeds of parts 1 and 2 (the first for part prior)"
    )
    ap.add_argument(
        "--prior-factors",
        default="0.6,1,1.5,2.5",
        help="part prior: multipliers of the new-LLM prior's scales",
    )
    ap.add_argument(
        "--out",
        help="results file name for the one part run (default: the part's own, see FILES), "
        "so that a side run keeps the recorded results",
    )
    args = ap.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = sorted(parts - set(PARTS)) or ([] if parts else [args.parts])
    if unknown:
        print(
            f"onboarding benchmark: unknown part {unknown[0]!r} (of 1, 2, prior)", file=sys.stderr
        )
        return 2
    names = dict(FILES)
    if args.out:
        if len(parts) != 1 or Path(args.out).name != args.out or not args.out.endswith(".md"):
            print(
                f"onboarding benchmark: --out {args.out!r} needs one part and a plain file "
                "name ending in .md",
                file=sys.stderr,
            )
            return 2
        names = dict.fromkeys(parts, args.out)
    strategies = args.strategies.split(",")
    unknown = [k for k in strategies if k not in STRATEGIES]
    if unknown:
        print(f"onboarding benchmark: unknown strategy {unknown[0]!r}", file=sys.stderr)
        return 2
    if not DATA.is_dir():
        print(f"onboarding benchmark: no data at {DATA.resolve()}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    header = [
        "# Onboarding benchmark\n",
        f"Command: `python benchmarks/onboarding.py {' '.join(argv or sys.argv[1:])}`; "
        f"{machine()}\n",
    ]
    files: dict[str, list[str]] = {}
    for part in PARTS:
        if part not in parts:
            continue
        t1 = time.perf_counter()
        if part == "1":
            llms = args.llms.split(",") if args.llms else None
            rows = names[part].removesuffix(".md") + "_rows.csv"
            text = part_onboarding(args.model, sizes, llms, seeds, strategies, args.workers, rows)
        elif part == "2":
            labels = [int(s) for s in args.labels.split(",")]
            text = part_labels(args.model, args.start, labels, seeds)
        else:
            factors = [float(f) for f in args.prior_factors.split(",")]
            text = part_prior(args.model, sizes, factors, seeds[0])
        # one file per part, so that rerunning one keeps the others
        files.setdefault(names[part], list(header)).extend(
            [text, f"(part {part}: {time.perf_counter() - t1:.0f} s)\n"]
        )
        print(text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, out in files.items():
        (RESULTS / name).write_text("\n".join(out))
        print(f"wrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
