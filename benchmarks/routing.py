"""Routing benchmark: irt-bayes against strong baselines on the real data, side by side.

Every router routes the test queries **from their text alone**: the test files' ``dataset``
column is dropped before prediction (labels are used in training only). The one baseline
that reads the test label, the per-dataset prior, stays in the tables marked
``[uses test label]``; it is not comparable with published routers.

Three parts (``--parts 1,2,3``):

1. RouterBench arc_challenge + mbpp: train on the train files, evaluate on the test
   files with every router swept over willingness to pay (AUC/AIQ, APGR, cost to match
   the best single LLM, max accuracy, log loss, ECE), as the mean over ``--seeds`` (and
   the sd of AUC, log loss and ECE); AUC on arc_challenge alone and on mbpp alone against
   routing by per-LLM training accuracy; each LLM's mean predicted P(correct) against its
   observed test accuracy, per test set. Pareto plot.
2. RouterDC's 7-LLM set: fit on the train split of all five datasets (with labels, and
   once more without), route the test split by highest expected accuracy; multiple-choice
   answers count as correct when score > 0, gsm8k/humaneval use the score itself;
   datasets averaged equally. Then leave one dataset out (train on four, test on the
   fifth).
3. Sample efficiency: ``--repeats`` random subsets of 50/100/200/400 RouterBench train
   queries, evaluated on the full test files (AUC, mean and sd).

irt-bayes models are named ``spec[:key=value...][@method]`` (``auto`` is the package
default); see ``benchmarks/common.py``.

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

import numpy as np
import pandas as pd
from common import DATA, M7_SETS, RESULTS, encode, machine, md, model7, routerbench, spec_from

warnings.filterwarnings("ignore")

LABEL_MARK = " [uses test label]"


def _baselines(seed: int) -> list:
    from irt_bayes.baselines import (
        IRTRouterMIRT,
        KNNRouter,
        LogisticRouter,
        MatrixFactorizationRouter,
        PerDatasetPrior,
        PerLLMAccuracy,
    )

    return [
        PerLLMAccuracy(),
        PerDatasetPrior(),
        KNNRouter(k=10),
        KNNRouter(k=40),
        LogisticRouter(seed=seed),
        MatrixFactorizationRouter(seed=seed),
        IRTRouterMIRT(seed=seed),
    ]


def _text_only(queries: pd.DataFrame) -> pd.DataFrame:
    return queries.drop(columns=[c for c in ("dataset", "split") if c in queries])


def _fit_ours(train, emb: np.ndarray, model: str, seed: int):
    from irt_bayes.router import IRTRouter

    spec, method, options = spec_from(model)
    router = IRTRouter(spec, method=method, seed=seed, progress=False, **options)
    return router.fit(train, embeddings=emb)


def _predict_all(train, test, e_tr, e_te, models, seed):
    """Mean P(correct) (test query x LLM) of every router, from the test text only."""
    preds, routers, times = {}, {}, {}
    text = _text_only(test.queries)
    for model in models:
        t0 = time.perf_counter()
        r = _fit_ours(train, e_tr, model, seed)
        name = f"irt-bayes {model}" + (f" (chose {r.spec_.name})" if model == "auto" else "")
        preds[name] = r.predict_proba(text, embeddings=e_te).mean("draw").to_numpy()
        routers[name], times[name] = r, time.perf_counter() - t0
    for b in _baselines(seed):
        t0 = time.perf_counter()
        b.fit(train, e_tr)
        name = b.name + (LABEL_MARK if b.uses_labels else "")
        preds[name] = b.predict_proba(test.queries if b.uses_labels else text, e_te)
        times[name] = time.perf_counter() - t0
    return preds, routers, times


def _strip_choice(name: str) -> str:
    return name.split(" (chose")[0]


def part_routerbench(seeds: list[int], models: list[str]) -> str:
    """RouterBench train -> test, every router in one harness, over several seeds."""
    from irt_bayes.checks import predictive_check
    from irt_bayes.evaluation import EvalSet, evaluate, pareto_plot, single_llm_points

    train, test = routerbench("train"), routerbench("test")
    e_tr = encode(train.queries["query"].tolist())
    e_te = encode(test.queries["query"].tolist())
    evalset = EvalSet.from_data(test, train.llms)
    tables, per_set, checks, choices = [], [], {}, {}
    for seed in seeds:
        preds, routers, times = _predict_all(train, test, e_tr, e_te, models, seed)
        for name, r in routers.items():
            choices.setdefault(_strip_choice(name), []).append(r.spec_.name)
        preds = {_strip_choice(k): v for k, v in preds.items()}
        table, points = evaluate(preds, evalset)
        table["fit_s"] = pd.Series({_strip_choice(k): v for k, v in times.items()})
        tables.append(table.assign(seed=seed))
        for ds in ("arc-challenge", "mbpp"):
            sub = evalset.datasets == ds
            t, _ = evaluate({k: v[sub] for k, v in preds.items()}, evalset.subset(sub))
            per_set.append(t[["auc"]].assign(seed=seed, dataset=ds))
        if seed == seeds[0]:
            first_points, first_names = points, list(preds)
            obs = ~np.isnan(evalset.y)
            for name in preds:
                if name.startswith("irt-bayes") or name.startswith("per-"):
                    checks[name] = predictive_check(
                        preds[name],
                        np.nan_to_num(evalset.y),
                        obs.astype(float),
                        evalset.llms,
                        evalset.datasets,
                        what="test queries",
                    )
        print(f"  seed {seed} done", flush=True)
    all_t = pd.concat(tables)
    routers = [k for k in all_t.index.unique() if not k.startswith("single: ")]
    mean = all_t.groupby(level=0).mean(numeric_only=True).loc[routers]
    sd = all_t.groupby(level=0).std(numeric_only=True).loc[routers]
    cols = ["auc", "apgr", "match_cost_share", "max_accuracy", "log_loss", "ece", "fit_s"]
    out = mean[cols].copy()
    for c in ("auc", "log_loss", "ece"):
        out[f"{c}_sd"] = sd[c]
    out = out.sort_values("auc", ascending=False)
    evalset_c = evalset.subset(evalset.complete)
    singles = (
        all_t[all_t.index.str.startswith("single: ")]
        .groupby(level=0)
        .mean(numeric_only=True)[["auc", "mean_cost"]]
        .rename(columns={"auc": "accuracy"})
    )
    best = single_llm_points(evalset_c).sort_values("accuracy").iloc[-1]
    ps = pd.concat(per_set)
    per_ds = ps.groupby([ps.index, "dataset"])["auc"].mean().unstack("dataset")
    per_ds = per_ds.loc[[r for r in routers if r in per_ds.index]]
    ref = per_ds.loc["per-llm-accuracy"]
    per_ds_gap = per_ds - ref
    per_ds = per_ds.join(per_ds_gap.add_suffix(" - per-llm-accuracy"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    keep = ["oracle"] + [k for k in first_names if not k.startswith("knn")]
    fig = pareto_plot(
        {k: first_points[k] for k in keep},
        single_llm_points(evalset_c),
        title="RouterBench arc_challenge + mbpp test (text only): accuracy vs cost",
    )
    fig.savefig(RESULTS / "routing_routerbench.png", dpi=110)
    cal = _calibration_tables(checks)
    chose = "; ".join(f"{k}: {', '.join(v)}" for k, v in choices.items())
    return (
        f"### RouterBench arc_challenge + mbpp (train {train.n_queries} queries, test "
        f"{test.n_queries}, of which {evalset_c.y.shape[0]} answered by every LLM are "
        f"scored), routed from the query text only\n\nMean over seeds {seeds} (sd for AUC, "
        f"log loss and ECE). Best single LLM: {best.llm} accuracy {best.accuracy:.3f} at "
        f"${best.cost:.4f}/query; `match_cost_share`: cost at which the router's hull first "
        f"reaches that accuracy, as a share of its cost. Models chosen by `auto` per seed: "
        f"{chose}.\n\n"
        + md(out, ".3f", fine=("log_loss", "ece", "log_loss_sd", "ece_sd", "auc_sd"))
        + "\n\nAUC on each test set alone (mean over seeds), and its difference from routing "
        "by per-LLM training accuracy:\n\n"
        + md(per_ds, ".4f")
        + "\n\nSingle LLMs:\n\n"
        + md(singles, ".4f")
        + "\n\n"
        + cal
        + "\n"
    )


def _calibration_tables(checks: dict) -> str:
    """Per-LLM gap (predicted - observed) of each router, per test set.

    The per-dataset prior predicts each LLM's training accuracy on the test set's own
    dataset: its gaps are the train -> test shift no router can see from the text.
    """
    parts = []
    for scope in (
        "all",
        *sorted({d for c in checks.values() for d in c.table["dataset"]} - {"all"}),
    ):
        cols = {}
        obs = None
        for name, chk in checks.items():
            t = chk.table[chk.table["dataset"] == scope].set_index("llm")
            obs = t["observed"] if obs is None else obs
            cols[name] = t["gap"]
        tab = pd.DataFrame({"observed": obs, **cols})
        tab.loc["max |gap|"] = [np.nan] + [tab[c].abs().max() for c in cols]
        label = "all test queries" if scope == "all" else f"test set {scope}"
        parts.append(
            f"Mean predicted P(correct) - observed accuracy per LLM, {label} "
            "(per-dataset prior: the train -> test shift of each LLM's accuracy) "
            f"({int(chk.table[chk.table['dataset'] == scope]['n'].max())} queries):\n\n"
            + md(tab, ".3f")
        )
    return "\n\n".join(parts)


def _dataset_avg(choice_scores: np.ndarray, datasets: np.ndarray) -> float:
    return float(np.mean([choice_scores[datasets == d].mean() for d in np.unique(datasets)]))


def _m7_eval(preds: dict[str, np.ndarray], test, llms: list[str]) -> pd.DataFrame:
    x = test.to_xarray().reindex(llm=llms)
    y = x["score"].to_numpy()
    ds = x["dataset"].to_numpy()
    rows, per_ds = {}, {}
    for name, p in preds.items():
        ch = np.where(np.isnan(y), -np.inf, p).argmax(axis=1)
        s = y[np.arange(len(ch)), ch]
        rows[name] = 100 * _dataset_avg(s, ds)
        per_ds[name] = {d: 100 * s[ds == d].mean() for d in np.unique(ds)}
    for j, m in enumerate(llms):
        rows[f"single: {m}"] = 100 * _dataset_avg(y[:, j], ds)
    rows["oracle"] = 100 * _dataset_avg(np.nanmax(y, axis=1), ds)
    out = pd.DataFrame({"avg": pd.Series(rows)})
    return out.join(pd.DataFrame(per_ds).T)


def part_model7(seeds: list[int], models: list[str]) -> str:
    """RouterDC's 7-LLM setting (with and without training labels), then leave one out."""
    from irt_bayes.data import ResponseData

    seed = seeds[0]
    data = model7()
    train, test = data.select(split="train"), data.select(split="test")
    e_tr = encode(train.queries["query"].tolist())
    e_te = encode(test.queries["query"].tolist())
    preds, routers, _ = _predict_all(train, test, e_tr, e_te, models, seed)
    unlabelled = ResponseData.from_frame(train.responses.drop(columns="dataset"), "model7")
    for model in models:
        r = _fit_ours(unlabelled, e_tr, model, seed)
        name = f"irt-bayes {model}, trained without labels ({r.spec_.name})"
        preds[name] = (
            r.predict_proba(_text_only(test.queries), embeddings=e_te).mean("draw").to_numpy()
        )
    table = _m7_eval(preds, test, train.llms).sort_values("avg", ascending=False)
    text = (
        "### RouterDC 7-LLM set, test split routed from the query text to the highest "
        "expected accuracy\n\nRouterDC reports 58.54; its best single LLM "
        "(dolphin-2.9-llama3-8b) 54.56. Labels are used in training only (except by the "
        "marked baseline); the rows 'trained without labels' never see one.\n\n"
        + md(table, ".2f")
        + "\n"
    )
    rows = []
    for held in M7_SETS:
        rest = [d for d in M7_SETS if d != held]
        tr, te = train.select(dataset=rest), test.select(dataset=held)
        e_a = e_tr[np.isin(train.queries["query_id"], tr.queries["query_id"])]
        e_b = encode(te.queries["query"].tolist())
        # the held-out dataset is new to every router; text only, as for real traffic
        p, _, _ = _predict_all(tr, te, e_a, e_b, models[:1], seed)
        p = {_strip_choice(k): v for k, v in p.items()}
        res = _m7_eval(p, te, tr.llms)["avg"]
        res.name = held
        rows.append(res)
        print(f"  left out {held}", flush=True)
    lodo = pd.concat(rows, axis=1)
    lodo["mean"] = lodo.mean(axis=1)
    text += (
        "\n### Leave one dataset out (train on four, test on the fifth, from the text), "
        "accuracy\n\n" + md(lodo.sort_values("mean", ascending=False), ".2f") + "\n"
    )
    return text


def part_sample_efficiency(
    seeds: list[int],
    models: list[str],
    sizes: tuple[int, ...] = (50, 100, 200, 400),
    repeats: int = 5,
) -> str:
    """AUC on the full RouterBench test files from small random training subsets."""
    from irt_bayes.evaluation import EvalSet, lambda_grid, single_llm_points, sweep, sweep_metrics

    train, test = routerbench("train"), routerbench("test")
    e_tr = encode(train.queries["query"].tolist())
    e_te = encode(test.queries["query"].tolist())
    evalset = EvalSet.from_data(test, train.llms)
    complete = evalset.complete  # as in part 1: every router and LLM on the same queries
    evalset = evalset.subset(complete)
    singles = single_llm_points(evalset)
    lams = lambda_grid(evalset.cost)
    ids = np.array(train.query_ids)
    rows = []
    for size in sizes:
        for rep in range(repeats):
            rng = np.random.default_rng(1000 * size + rep + seeds[0])
            pick = rng.choice(len(ids), size=size, replace=False)
            sub = train.select(queries=ids[pick])
            e = e_tr[pick][pd.Index(ids[pick]).get_indexer(sub.query_ids)]
            preds, _, _ = _predict_all(sub, test, e, e_te, models, seeds[0] + rep)
            for name, p in preds.items():
                m = sweep_metrics(sweep(p[complete], evalset, lams), singles)
                rows.append(
                    {"size": size, "repeat": rep, "router": _strip_choice(name), "auc": m["auc"]}
                )
            print(f"  size {size} repeat {rep} done", flush=True)
    df = pd.DataFrame(rows)
    mean = df.pivot_table(index="router", columns="size", values="auc", aggfunc="mean")
    sd = df.pivot_table(index="router", columns="size", values="auc", aggfunc="std")
    mean = mean.sort_values(sizes[1], ascending=False)
    both = pd.DataFrame(
        {
            s: [
                f"{m:.4f} ± {d:.4f}"
                for m, d in zip(mean[s], sd.reindex(mean.index)[s], strict=True)
            ]
            for s in sizes
        },
        index=mean.index,
    )
    return (
        "### Sample efficiency: AUC on the RouterBench test files (the "
        f"{int(complete.sum())} queries every LLM answered, routed from the text; mean ± sd "
        f"of {repeats} random training subsets)\n\n" + both.to_markdown() + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts and write ``benchmarks/results/routing.md``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="1,2,3")
    ap.add_argument(
        "--models",
        default="auto",
        help="irt-bayes models for parts 1 and 2, comma-separated spec[:key=value][@method]",
    )
    ap.add_argument(
        "--small-models", default="auto", help="irt-bayes models for part 3 (small training sets)"
    )
    ap.add_argument("--seeds", default="0,1,2", help="seeds of part 1 (the first for 2 and 3)")
    ap.add_argument("--repeats", type=int, default=5, help="subsets per size in part 3")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"routing benchmark: no data at {DATA.resolve()}", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    models = {"1": args.models.split(","), "2": args.models.split(",")}
    models["3"] = args.small_models.split(",")
    parts = {
        "1": part_routerbench,
        "2": part_model7,
        "3": lambda s, m: part_sample_efficiency(s, m, repeats=args.repeats),
    }
    out = [
        "# Routing benchmark\n",
        f"Command: `python benchmarks/routing.py --parts {args.parts} --models {args.models}"
        f" --small-models {args.small_models} --seeds {args.seeds} --repeats {args.repeats}`;"
        f" {machine()}\n",
    ]
    for key in args.parts.split(","):
        t0 = time.perf_counter()
        text = parts[key](seeds, models[key])
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
