"""Command-line interface: ``irt-bayes demo | describe | fit | predict | abilities | ...``.

Also ``route`` (an LLM per query by expected utility), ``evaluate`` (cost-accuracy
sweep on test data), ``report`` (posterior report of a saved router) and ``compare``
(PSIS-LOO across routers fitted on the same data).

Every user error (bad data, bad spec, bad saved router) prints one line to stderr
and exits with status 2; output files are written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from irt_bayes.errors import IrtBayesError

__all__ = ["main", "build_parser"]

DEMO_QUERIES = [
    ("new-0", "What is 348 + 127?", "arithmetic"),
    (
        "new-1",
        "Write a Python function that merges two sorted lists without using sort().",
        "coding",
    ),
    (
        "new-2",
        "Derive the closed form of the sum of the first n cubes and prove it by induction.",
        None,
    ),
    ("new-3", "Which gas do plants absorb from the air during photosynthesis?", None),
]


def _write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a CSV via a temporary file so an error never leaves half a file."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise IrtBayesError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    return df.to_string(float_format=lambda v: floatfmt.format(v))


# ---------------------------------------------------------------------------- commands
def cmd_describe(args: argparse.Namespace) -> int:
    """Summarise response files, or a saved router: its model, fit and predictive check."""
    from irt_bayes.data import load_responses

    if len(args.data) == 1 and (Path(args.data[0]) / "router.json").is_file():
        return _describe_router(args.data[0])
    data = load_responses(*args.data)
    _say(repr(data))
    _say(_table(data.summary(), "{:.4g}"))
    return 0


def _describe_router(path: str) -> int:
    router = _load_router(path, True)
    _say(repr(router))
    _say(f"model: {router.spec_.name} ({router.spec_.description})")
    if router.selection_note_:
        _say(router.selection_note_)
    if router.selection_ is not None and len(router.selection_) > 1:
        _say(_table(router.selection_, "{:.4f}"))
    _say(router.diagnostics_.verdict())
    if router.check_ is not None:
        _say(router.check_.verdict())
        _say(_table(router.check_.per_llm[["n", "observed", "predicted", "gap", "se"]]))
    if router.datasets_:
        src = "latent clusters" if router.domain_.source == "clusters" else "dataset labels"
        _say(f"datasets ({src}): {', '.join(router.datasets_)}")
    _say(_table(router.abilities()))
    return 0


def _router_from_args(args: argparse.Namespace):  # noqa: ANN202 - lazy import of IRTRouter
    from irt_bayes.router import IRTRouter
    from irt_bayes.spec import load_spec

    if args.model == "auto":
        if args.skills is not None:
            raise IrtBayesError("--skills needs a named --model; 'auto' chooses the skills")
        spec = "auto"
    else:
        spec = load_spec(args.model)
    if args.skills is not None:
        spec = spec.replace(
            skills=args.skills,
            name=f"{spec.name}-k{args.skills}" if args.skills != spec.skills else spec.name,
        )
    return IRTRouter(
        spec,
        encoder=args.encoder,
        method=args.method,
        holdout=args.holdout,
        draws=args.draws,
        tune=args.tune,
        chains=args.chains,
        seed=args.seed,
        minibatch_size=args.minibatch,
        progress=not args.quiet,
    )


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit a router on response files and save it."""
    from irt_bayes.data import load_responses

    data = load_responses(*args.data)
    router = _router_from_args(args)
    _say(
        f"fitting {router.model if isinstance(router.model, str) else router.model.name} "
        f"by {args.method.upper()} on {data!r}"
    )
    router.fit(data)
    _say(router.selection_note_)
    _say(router.diagnostics_.verdict())
    if router.check_ is not None:
        _say(router.check_.verdict())
    router.save(args.out)
    _say(_table(router.abilities()))
    _say(f"saved router to {args.out}")
    return 0


def _load_router(path: str, quiet: bool):  # noqa: ANN202
    from irt_bayes.router import IRTRouter

    return IRTRouter.load(path, progress=not quiet)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict P(correct) for every (query, LLM)."""
    from irt_bayes.data import load_queries

    router = _load_router(args.router, args.quiet)
    queries = load_queries(*args.queries)
    out = router.predict(queries, warmup=args.warmup, use_labels=args.use_labels)
    _write_csv(out, args.out)
    _say(f"wrote {len(out)} rows ({len(queries)} queries x {len(router.llms_)} LLMs) to {args.out}")
    return 0


def cmd_abilities(args: argparse.Namespace) -> int:
    """Posterior abilities with 94% HDI."""
    router = _load_router(args.router, True)
    ab = router.abilities()
    _say(_table(ab))
    if args.out:
        _write_csv(ab, args.out)
        _say(f"wrote {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the posterior report of a saved router (HTML, Markdown, PNG, CSV)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, even where one exists
    from irt_bayes.report import build_report

    t0 = time.perf_counter()
    router = _load_router(args.router, True)
    data = None
    if args.data:
        from irt_bayes.data import load_responses

        data = load_responses(*args.data)
    out = build_report(router, args.out, data=data)
    files = [p for p in out.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    _say(
        f"wrote {out / 'report.html'} and {out / 'report.md'} ({len(files)} files, "
        f"{size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
    )
    if data is None:
        _say("query texts not shown: pass the training data with --data to include them")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare saved routers fitted on the same responses by PSIS-LOO."""
    import matplotlib

    matplotlib.use("Agg")
    from irt_bayes.report import FIGURE_DPI, compare_routers

    if len(args.routers) < 2:
        raise IrtBayesError("compare needs two or more routers")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise IrtBayesError(f"{out}: exists and is not a directory")
    table, fig = compare_routers(args.routers, ic=args.ic)
    _say(_table(table.drop(columns=["scale"], errors="ignore"), "{:.2f}"))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_csv(table.reset_index(), out / "compare.csv")
        fd, tmp = tempfile.mkstemp(prefix=".compare.png.", suffix=".tmp", dir=out)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=FIGURE_DPI, facecolor="white", format="png")
            os.replace(tmp, out / "compare.png")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _say(f"wrote {out / 'compare.csv'} and {out / 'compare.png'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate a priced pool, fit, predict new queries and print abilities."""
    import numpy as np

    from irt_bayes.router import IRTRouter
    from irt_bayes.simulate import simulate_pool

    t0 = time.perf_counter()
    pool = simulate_pool(n_queries=args.queries, n_llms=args.llms, seed=args.seed)
    from irt_bayes.data import ResponseData

    data = ResponseData.from_frame(pool.responses, source="simulated pool")
    _say(f"1. Simulated {data!r}")
    _say(_table(data.summary(), "{:.4g}"))
    router = IRTRouter(
        "2pl",
        method=args.method,
        seed=args.seed,
        progress=not args.quiet,
        draws=args.draws,
        tune=args.draws,
        chains=4,
    )
    _say(
        f"\n2. Encoding {data.n_queries} query texts with {router._get_encoder().encoder_id} "
        f"and fitting the 2PL by {args.method.upper()} (first on 80% of the queries, to "
        "check its predictions on the other 20%, then on all) ..."
    )
    router.fit(data)
    _say(f"   {router.diagnostics_.verdict()}")
    if router.check_ is not None:
        _say(f"   {router.check_.verdict()}")
    ab = router.abilities().set_index("llm")
    truth = pool.truth["ability"].sel(skill=pool.truth["skill"][0]).to_series()
    ab["true"] = truth.reindex(ab.index)
    ab["price_usd"] = router.prices_.reindex(ab.index)
    ab = ab.drop(columns="skill").sort_values("mean", ascending=False)
    r = float(np.corrcoef(ab["mean"], ab["true"])[0, 1])
    cover = float(((ab["hdi_low"] <= ab["true"]) & (ab["true"] <= ab["hdi_high"])).mean())
    _say("\n3. Posterior abilities (94% HDI) beside the simulation's true values")
    _say(_table(ab, "{:.4g}"))
    _say(f"   correlation with truth r = {r:.3f}; 94% intervals cover {cover:.0%} of true values")

    from irt_bayes.routing import route

    new = pd.DataFrame(DEMO_QUERIES, columns=["query_id", "query", "dataset"])
    _say(
        "\n4. Routing new queries by posterior expected utility E[acc] - lam * cost "
        "(lam = 0: best LLM; lam = 20: thrifty; risk-averse: 10% quantile of accuracy)"
    )
    runs = {
        "lam=0": route(router, new, willingness_to_pay=0.0),
        "lam=20": route(router, new, willingness_to_pay=20.0),
        "lam=20 risk-averse": route(router, new, willingness_to_pay=20.0, policy="risk-averse"),
    }
    for qid, text, _ in DEMO_QUERIES:
        _say(f"   {text[:70]!r}")
        for label, res in runs.items():
            c = res.choices.set_index("query_id").loc[qid]
            row = res.table[(res.table.query_id == qid) & res.table.chosen].iloc[0]
            _say(
                f"      {label:<19} {c.llm:<14} P(correct) {c.expected_accuracy:.2f} "
                f"[{row.accuracy_low:.2f}, {row.accuracy_high:.2f}]  ${c.expected_cost:.5f}"
            )
    if args.out:
        router.save(args.out)
        _say(f"\nSaved the router to {args.out} (try: irt-bayes abilities {args.out})")
    _say(f"\nDone in {time.perf_counter() - t0:.0f} s.")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    """Pick an LLM per query by posterior expected utility."""
    from irt_bayes.data import load_queries
    from irt_bayes.routing import route

    router = _load_router(args.router, args.quiet)
    queries = load_queries(*args.queries)
    res = route(
        router,
        queries,
        willingness_to_pay=args.willingness_to_pay,
        alpha=args.alpha,
        policy=args.policy,
        budget=args.budget,
        quantile=args.quantile,
        seed=args.seed,
        warmup=args.warmup,
        use_labels=args.use_labels,
    )
    _write_csv(res.choices, args.out)
    counts = res.choices["llm"].value_counts()
    _say(
        f"routed {len(res.choices)} queries ({args.policy}): mean expected accuracy "
        f"{res.mean_accuracy:.3f}, expected cost ${res.total_cost:.4f}"
        + (f", budget multiplier {res.multiplier:.4g}" if args.budget is not None else "")
    )
    _say(_table(counts.rename("queries").to_frame(), "{:.0f}"))
    _say(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Sweep the cost trade-off on held-out responses and report the metrics."""
    from irt_bayes.data import load_responses
    from irt_bayes.evaluation import evaluate_router

    router = _load_router(args.router, args.quiet)
    test = load_responses(*args.data)
    table = evaluate_router(
        router,
        test,
        args.out,
        warmup=args.warmup,
        use_labels=args.use_labels,
        policy=args.policy,
        complete_cases=not args.all_queries,
    )
    if table.attrs["n_dropped"]:
        _say(
            f"scored on {table.attrs['n_queries']} queries that every LLM answered; "
            f"{table.attrs['n_dropped']} others left out (--all-queries keeps them)"
        )
    _say(_table(table, "{:.4f}"))
    _say(table.attrs["check"].verdict())
    _say(f"wrote metrics.csv, metrics.md, points.csv, check.csv and pareto.png to {args.out}")
    return 0


# ------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from irt_bayes.spec import available_specs

    p = argparse.ArgumentParser(
        prog="irt-bayes",
        description=("Bayesian routing of queries across LLMs with hierarchical IRT (PyMC)."),
    )
    p.add_argument("--version", action="version", version=f"irt-bayes {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="fit and route on a simulated pool (no data needed)")
    d.add_argument("--method", choices=["advi", "nuts"], default="advi")
    d.add_argument("--queries", type=int, default=600, help="simulated queries (600)")
    d.add_argument("--llms", type=int, default=10, help="simulated LLMs (10, at most 12)")
    d.add_argument("--draws", type=int, default=500, help="NUTS draws and tuning steps (500)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", help="also save the fitted router to this directory")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser(
        "describe", help="summarise response files, or a saved router and its predictive check"
    )
    s.add_argument("data", nargs="+", metavar="DATA|ROUTER")
    s.set_defaults(func=cmd_describe)

    f = sub.add_parser("fit", help="fit a router on response files and save it")
    f.add_argument("data", nargs="+", metavar="DATA", help="tidy or RouterBench files")
    f.add_argument("--out", required=True, metavar="ROUTER", help="directory to save to")
    f.add_argument(
        "--model",
        default="auto",
        metavar="SPEC",
        help="'auto' (default: the candidate with the lowest log loss on held-out training "
        f"queries), a named spec ({', '.join(available_specs())}) or a .toml path",
    )
    f.add_argument(
        "--holdout",
        type=float,
        default=0.2,
        help="share of training queries held out for the predictive check and the choice "
        "of --model auto (default 0.2; 0 skips the check)",
    )
    f.add_argument("--method", choices=["advi", "nuts"], default="advi")
    f.add_argument("--skills", type=int, help="override the spec's number of skills")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--draws", type=int, default=500)
    f.add_argument("--tune", type=int, default=500)
    f.add_argument("--chains", type=int, default=4)
    f.add_argument("--minibatch", type=int, metavar="N", help="minibatch ADVI, N per batch")
    f.add_argument(
        "--encoder",
        default="default",
        help="sentence-transformers name or path (default: bundled MiniLM)",
    )
    f.add_argument("--quiet", action="store_true")
    f.set_defaults(func=cmd_fit)

    pr = sub.add_parser("predict", help="P(correct) per (query, LLM) for new queries")
    pr.add_argument("router", metavar="ROUTER")
    pr.add_argument("queries", nargs="+", metavar="QUERIES")
    pr.add_argument("--out", required=True, metavar="P.csv")
    pr.add_argument("--warmup", choices=["irt-router"])
    pr.add_argument(
        "--use-labels",
        action="store_true",
        help="use the queries' dataset labels (default: route from the query text alone)",
    )
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=cmd_predict)

    a = sub.add_parser("abilities", help="posterior LLM abilities with 94%% HDI")
    a.add_argument("router", metavar="ROUTER")
    a.add_argument("--out", metavar="A.csv")
    a.set_defaults(func=cmd_abilities)

    rp = sub.add_parser("report", help="posterior report: HTML, Markdown, figures and tables")
    rp.add_argument("router", metavar="ROUTER")
    rp.add_argument("--out", required=True, metavar="DIR", help="directory to write (replaced)")
    rp.add_argument(
        "--data",
        nargs="+",
        metavar="DATA",
        help="the training response files, to show query texts (a saved router keeps ids)",
    )
    rp.set_defaults(func=cmd_report)

    c = sub.add_parser("compare", help="compare routers fitted on the same data by PSIS-LOO")
    c.add_argument("routers", nargs="+", metavar="ROUTER")
    c.add_argument("--out", metavar="DIR", help="write compare.csv and compare.png here")
    c.add_argument("--ic", choices=["loo", "waic"], default="loo")
    c.set_defaults(func=cmd_compare)
    ro = sub.add_parser("route", help="choose an LLM per query (expected utility)")
    ro.add_argument("router", metavar="ROUTER")
    ro.add_argument("queries", nargs="+", metavar="QUERIES")
    knob = ro.add_mutually_exclusive_group(required=True)
    knob.add_argument(
        "--willingness-to-pay",
        type=float,
        metavar="X",
        help="cost weight X: utility = E[acc] - X * cost (larger is thriftier)",
    )
    knob.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help="IRT-Router form: A * E[acc] - (1 - A) * cost / max cost",
    )
    ro.add_argument(
        "--policy",
        default="expected-utility",
        choices=["expected-utility", "risk-averse", "prob-best", "thompson"],
    )
    ro.add_argument("--quantile", type=float, default=0.1, help="risk-averse quantile (0.1)")
    ro.add_argument("--budget", type=float, metavar="USD", help="total USD for the batch")
    ro.add_argument("--warmup", choices=["irt-router"])
    ro.add_argument(
        "--use-labels",
        action="store_true",
        help="use the queries' dataset labels (default: route from the query text alone)",
    )
    ro.add_argument("--seed", type=int, default=0)
    ro.add_argument("--out", required=True, metavar="D.csv")
    ro.add_argument("--quiet", action="store_true")
    ro.set_defaults(func=cmd_route)

    ev = sub.add_parser("evaluate", help="cost-accuracy sweep and calibration on test data")
    ev.add_argument("router", metavar="ROUTER")
    ev.add_argument("data", nargs="+", metavar="TESTDATA")
    ev.add_argument("--out", required=True, metavar="DIR")
    ev.add_argument(
        "--policy", default="expected-utility", choices=["expected-utility", "risk-averse"]
    )
    ev.add_argument("--warmup", choices=["irt-router"])
    ev.add_argument(
        "--use-labels",
        action="store_true",
        help="use the queries' dataset labels (default: route from the query text alone)",
    )
    ev.add_argument(
        "--all-queries",
        action="store_true",
        help="also score queries some LLMs did not answer (default: only those all answered)",
    )
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=cmd_evaluate)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings (convergence, predictive check) as one line, without a source path."""
    text = " ".join(str(message).split())
    print(f"irt-bayes: warning: {text}", file=sys.stderr, flush=True)


def _version() -> str:
    from irt_bayes.persistence import package_version

    return package_version()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``irt-bayes`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            # PyTensor's missing-BLAS notice is not actionable for users (see README).
            warnings.filterwarnings("ignore", message=".*BLAS.*")
            warnings.showwarning = _one_line_warning
            return int(args.func(args) or 0)
    except IrtBayesError as exc:
        print(f"irt-bayes: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("irt-bayes: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
