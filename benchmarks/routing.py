"""Routing benchmark: irt-bayes against strong baselines on the real data, side by side.

Three parts (``--parts 1,2,3``):

1. RouterBench arc_challenge + mbpp: train on the train files, evaluate on the test
   files with every router swept over willingness to pay (AUC/AIQ, APGR, CPT,
   cost to match the best single LLM, max accuracy, calibration). Pareto plot.
2. RouterDC's 7-LLM set: fit on the train split of all five datasets, route the test
   split by highest expected accuracy; multiple-choice answers count as correct when
   score > 0, gsm8k/humaneval use the score itself; datasets averaged equally. Then
   leave one dataset out (train on four, test on the fifth) for the warm-ups.
3. Sample efficiency: random subsets of 50/100/200/400 RouterBench train queries
   (3 repeats), evaluated on the full test files (AUC).

irt-bayes models are named ``spec[:key=value...][@method]``: a shipped spec, overrides
of its keys, and ``advi`` (default) or ``nuts``; e.g. ``mirt-2:dataset_abilities=true``
or ``2pl@nuts``. Part 3 has its own list (``--small-models``): on a few hundred queries
NUTS takes about 30 s and gives the full posterior where mean-field ADVI understates it.

Run from the repository root::

    python benchmarks/routing.py            # everything (embeds ~17k texts once, cached)
    python benchmarks/routing.py --parts 1  # RouterBench only

Tables print to the terminal and are written as Markdown to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
RB = DATA / "routerbench"
M7 = DATA / "model7"
M7_SETS = ["mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval"]
M7_MC = {"mmlu", "cmmlu", "arc_challenge"}

warnings.filterwarnings("ignore")


def _encode(texts: list[str]) -> np.ndarray:
    from irt_bayes.encoding import QueryEncoder

    return QueryEncoder(show_progress=True).encode(texts)


def _baselines(seed: int) -> list:
    from irt_bayes.baselines import (
        IRTRouterMIRT,
        KNNRouter,
        LogisticRouter,
        MatrixFactorizationRouter,
        PerDatasetPrior,
    )

    return [
        PerDatasetPrior(),
        KNNRouter(k=10),
        KNNRouter(k=40),
        LogisticRouter(),
        MatrixFactorizationRouter(seed=seed),
        IRTRouterMIRT(seed=seed),
    ]


def _spec(model: str):  # noqa: ANN202
    """``spec[:key=value...][@method]``: a shipped spec, spec overrides, the fit method.

    ``mirt-2:dataset_abilities=true@nuts`` is mirt-2 with LLM x dataset offsets, by NUTS.
    """
    import json

    from irt_bayes.spec import ModelSpec, load_spec

    model, _, method = model.partition("@")
    name, *overrides = model.split(":")
    raw = load_spec(name).to_dict()
    for item in overrides:
        key, _, value = item.partition("=")
        raw[key] = json.loads(value)
    # from_dict names an unknown or ill-typed key, as for a TOML spec
    return ModelSpec.from_dict(raw, source=model), method or "advi"


def _fit_ours(train, emb: np.ndarray, model: str, seed: int):  # noqa: ANN001, ANN202
    from irt_bayes.router import IRTRouter

    spec, method = _spec(model)
    return IRTRouter(spec, method=method, seed=seed, progress=False).fit(train, embeddings=emb)


def _ours_predictions(
    router,
    queries: pd.DataFrame,
    emb: np.ndarray,  # noqa: ANN001
    label: str,
    warmups: tuple = (None, "irt-router", "knn-residual"),
) -> dict[str, np.ndarray]:
    out = {}
    for w in warmups:
        p = router.predict_proba(queries, embeddings=emb, warmup=w)
        out[f"{label}" + (f" +{w}" if w else "")] = (
            p.mean("draw").transpose("query", "llm").to_numpy()
        )
    return out


def _md(df: pd.DataFrame, floatfmt: str = ".3f", fine: tuple[str, ...] = ()) -> str:
    """Markdown table; columns in ``fine`` get one more decimal (close calls)."""
    if not fine:
        return df.to_markdown(floatfmt=floatfmt)
    more = f".{int(floatfmt[1:-1]) + 1}f"
    return df.to_markdown(floatfmt=[floatfmt] + [more if c in fine else floatfmt for c in df])


def part_routerbench(seed: int, models: list[str]) -> str:
    """RouterBench train -> test with every router in one harness."""
    from irt_bayes.data import load_responses
    from irt_bayes.evaluation import EvalSet, evaluate, pareto_plot, single_llm_points

    train = load_responses(RB / "arc_challenge_train.csv.gz", RB / "mbpp_train.csv.gz")
    test = load_responses(RB / "arc_challenge_test.csv.gz", RB / "mbpp_test.csv.gz")
    emb_tr = _encode(train.queries["query"].tolist())
    emb_te = _encode(test.queries["query"].tolist())
    evalset = EvalSet.from_data(test, train.llms)
    preds, times = {}, {}
    for model in models:
        t0 = time.perf_counter()
        router = _fit_ours(train, emb_tr, model, seed)
        times[f"irt-bayes {model}"] = time.perf_counter() - t0
        preds.update(_ours_predictions(router, test.queries, emb_te, f"irt-bayes {model}"))
    for b in _baselines(seed):
        t0 = time.perf_counter()
        b.fit(train, emb_tr)
        preds[b.name] = b.predict_proba(test.queries, emb_te)
        times[b.name] = time.perf_counter() - t0
    table, points = evaluate(preds, evalset)
    table["fit_s"] = pd.Series(times)
    evalset = evalset.subset(evalset.complete)  # what evaluate scored
    best = single_llm_points(evalset).sort_values("accuracy").iloc[-1]
    routers = table.loc[[k for k in table.index if not k.startswith("single: ")]]
    singles = table.loc[
        [k for k in table.index if k.startswith("single: ")], ["auc", "mean_cost"]
    ].rename(columns={"auc": "accuracy"})
    RESULTS.mkdir(parents=True, exist_ok=True)
    keep = ["oracle"] + [k for k in preds if "+" not in k]
    fig = pareto_plot(
        {k: points[k] for k in keep},
        single_llm_points(evalset),
        title="RouterBench arc_challenge + mbpp test: accuracy vs cost",
    )
    fig.savefig(RESULTS / "routing_routerbench.png", dpi=110)
    text = (
        f"### RouterBench arc_challenge + mbpp (train {train.n_queries} queries, test "
        f"{test.n_queries}, of which {table.attrs['n_queries']} answered by every LLM are "
        f"scored)\n\nBest single LLM: {best.llm} accuracy {best.accuracy:.3f} at "
        f"${best.cost:.4f}/query. `match_cost_share`: cost at which the router's hull "
        "first reaches that accuracy, as a share of its cost. CPT in % of the cost range "
        "from the cheapest to the best LLM.\n\n"
        + _md(routers.sort_values("auc", ascending=False), fine=("log_loss", "brier", "ece"))
        + "\n\nSingle LLMs:\n\n"
        + _md(singles, ".4f")
        + "\n"
    )
    return text


def _m7_load(names: list[str]):  # noqa: ANN202
    """model7 files with RouterDC's correctness: MC score > 0 counts as correct."""
    from irt_bayes.data import ResponseData, load_responses

    frames = []
    for n in names:
        r = load_responses(M7 / f"{n}.csv.gz").responses.copy()
        if n in M7_MC:
            r["score"] = (r["score"] > 0).astype(float)
            r["trials"] = 1
        else:
            r["trials"] = 10  # share of 10 samples correct: a binomial k of 10
        frames.append(r)
    return ResponseData.from_frame(pd.concat(frames, ignore_index=True), source="model7")


def _dataset_avg(choice_scores: np.ndarray, datasets: np.ndarray) -> float:
    return float(np.mean([choice_scores[datasets == d].mean() for d in np.unique(datasets)]))


def _m7_eval(preds: dict[str, np.ndarray], test, llms: list[str]) -> pd.DataFrame:  # noqa: ANN001
    x = test.to_xarray().reindex(llm=llms)
    y = x["score"].to_numpy()
    ds = x["dataset"].to_numpy()
    rows = {}
    for name, p in preds.items():
        ch = np.where(np.isnan(y), -np.inf, p).argmax(axis=1)
        rows[name] = 100 * _dataset_avg(y[np.arange(len(ch)), ch], ds)
    for j, m in enumerate(llms):
        rows[f"single: {m}"] = 100 * _dataset_avg(y[:, j], ds)
    rows["oracle"] = 100 * _dataset_avg(np.nanmax(y, axis=1), ds)
    per_ds = {}
    for name, p in preds.items():
        ch = np.where(np.isnan(y), -np.inf, p).argmax(axis=1)
        s = y[np.arange(len(ch)), ch]
        per_ds[name] = {d: 100 * s[ds == d].mean() for d in np.unique(ds)}
    out = pd.DataFrame({"avg": pd.Series(rows)})
    return out.join(pd.DataFrame(per_ds).T)


def part_model7(seed: int, models: list[str]) -> str:
    """RouterDC's 7-LLM setting, then leave one dataset out."""
    data = _m7_load(M7_SETS)
    train, test = data.select(split="train"), data.select(split="test")
    emb_tr = _encode(train.queries["query"].tolist())
    emb_te = _encode(test.queries["query"].tolist())
    preds = {}
    for model in models:
        router = _fit_ours(train, emb_tr, model, seed)
        preds.update(
            _ours_predictions(router, test.queries, emb_te, f"irt-bayes {model}", warmups=(None,))
        )
    for b in _baselines(seed):
        b.fit(train, emb_tr)
        preds[b.name] = b.predict_proba(test.queries, emb_te)
    table = _m7_eval(preds, test, train.llms).sort_values("avg", ascending=False)
    text = (
        "### RouterDC 7-LLM set, test split, route to the highest expected accuracy\n\n"
        "RouterDC reports 58.54; its best single LLM (dolphin-2.9-llama3-8b) 54.56.\n\n"
        + _md(table, ".2f")
        + "\n"
    )

    rows = []
    for held in M7_SETS:
        rest = [d for d in M7_SETS if d != held]
        tr = train.select(dataset=rest)
        te = test.select(dataset=held)
        e_tr = emb_tr[np.isin(train.queries["query_id"], tr.queries["query_id"])]
        e_te = _encode(te.queries["query"].tolist())
        router = _fit_ours(tr, e_tr, models[0], seed)
        # the held-out label is unseen: give it as such so the new-domain prior applies
        qs = te.queries.assign(dataset=f"unseen:{held}")
        p = _ours_predictions(router, qs, e_te, "irt-bayes")
        for b in _baselines(seed):
            b.fit(tr, e_tr)
            p[b.name] = b.predict_proba(qs, e_te)
        res = _m7_eval(p, te, tr.llms)["avg"]
        res.name = held
        rows.append(res)
    lodo = pd.concat(rows, axis=1)
    lodo["mean"] = lodo.mean(axis=1)
    text += (
        "\n### Leave one dataset out (train on four, test on the fifth), accuracy\n\n"
        + _md(lodo.sort_values("mean", ascending=False), ".2f")
        + "\n"
    )
    return text


def part_sample_efficiency(
    seed: int, models: list[str], sizes: tuple[int, ...] = (50, 100, 200, 400), repeats: int = 3
) -> str:
    """AUC on the full RouterBench test files from small random training subsets."""
    from irt_bayes.data import load_responses
    from irt_bayes.evaluation import EvalSet, lambda_grid, single_llm_points, sweep, sweep_metrics

    train = load_responses(RB / "arc_challenge_train.csv.gz", RB / "mbpp_train.csv.gz")
    test = load_responses(RB / "arc_challenge_test.csv.gz", RB / "mbpp_test.csv.gz")
    emb_tr = _encode(train.queries["query"].tolist())
    emb_te = _encode(test.queries["query"].tolist())
    evalset = EvalSet.from_data(test, train.llms)
    complete = evalset.complete  # as in part 1: every router and LLM on the same queries
    evalset = evalset.subset(complete)
    singles = single_llm_points(evalset)
    lams = lambda_grid(evalset.cost)
    ids = np.array(train.query_ids)
    rows = []
    for size in sizes:
        for rep in range(repeats):
            rng = np.random.default_rng(1000 * size + rep + seed)
            pick = rng.choice(len(ids), size=size, replace=False)
            sub = train.select(queries=ids[pick])
            e = emb_tr[pick]
            order = pd.Index(ids[pick]).get_indexer(sub.query_ids)
            e = e[order]
            preds = {}
            for model in models:
                router = _fit_ours(sub, e, model, seed + rep)
                preds.update(
                    _ours_predictions(
                        router, test.queries, emb_te, f"irt-bayes {model}", warmups=(None,)
                    )
                )
            for b in _baselines(seed + rep):
                b.fit(sub, e)
                preds[b.name] = b.predict_proba(test.queries, emb_te)
            for name, p in preds.items():
                m = sweep_metrics(sweep(p[complete], evalset, lams), singles)
                rows.append({"size": size, "repeat": rep, "router": name, "auc": m["auc"]})
            print(f"  size {size} repeat {rep} done", flush=True)
    df = pd.DataFrame(rows)
    table = df.pivot_table(index="router", columns="size", values="auc", aggfunc="mean")
    sd = df.pivot_table(index="router", columns="size", values="auc", aggfunc="std")
    table = table.sort_values(sizes[1], ascending=False)
    return (
        "### Sample efficiency: AUC on the RouterBench test files (the "
        f"{int(complete.sum())} queries every LLM answered; mean of {repeats} random "
        "subsets, sd in the second table)\n\n"
        + _md(table, ".4f")
        + "\n\n"
        + _md(sd.reindex(table.index), ".4f")
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts and write ``benchmarks/results/routing.md``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="1,2,3")
    ap.add_argument(
        "--models",
        default="2pl,mirt-2:dataset_abilities=true,mirt-2:dataset_abilities=true:embedding_dims=48",
        help="irt-bayes models for parts 1 and 2, comma-separated spec[:key=value][@method]",
    )
    ap.add_argument(
        "--small-models",
        default="2pl,2pl@nuts",
        help="irt-bayes models for part 3 (small training sets, where NUTS is cheap)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"routing benchmark: no data at {DATA.resolve()}", file=sys.stderr)
        return 2
    models = {"1": args.models.split(","), "2": args.models.split(",")}
    models["3"] = args.small_models.split(",")
    parts = {"1": part_routerbench, "2": part_model7, "3": part_sample_efficiency}
    out = [
        "# Routing benchmark\n",
        f"Command: `python benchmarks/routing.py --parts {args.parts}"
        f" --models {args.models} --small-models {args.small_models} --seed {args.seed}`\n",
    ]
    for key in args.parts.split(","):
        t0 = time.perf_counter()
        text = parts[key](args.seed, models[key])
        text += f"\n(part {key}: {time.perf_counter() - t0:.0f} s)\n"
        print(text, flush=True)
        out.append(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = (
        "routing.md" if args.parts == "1,2,3" else f"routing_part{args.parts.replace(',', '')}.md"
    )
    (RESULTS / name).write_text("\n".join(out))
    print(f"wrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
