"""Command-line interface: ``irt-bayes demo | describe | fit | predict | abilities | ...``.

Also ``route`` (an LLM per query by expected utility), ``evaluate`` (cost-accuracy
sweep on test data), ``report`` (posterior report of a saved router), ``compare``
(PSIS-LOO across routers fitted on the same data), and ``probe``, ``onboard`` and
``suggest`` (new LLMs from a few probes, and what to label next).

Every user error (a bad option value, data file, spec or saved router) prints one line
to stderr and exits with status 2. Output paths are checked before any long work, output
folders are replaced only when irt-bayes wrote them (:mod:`irt_bayes.outputs`), and an
interrupt (SIGINT or SIGTERM) writes nothing and exits with status 130 or 143
(:mod:`irt_bayes.interrupts`).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import irt_bayes
from irt_bayes import interrupts
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.outputs import atomic_directory, check_output_dir, check_output_file, write_file

if TYPE_CHECKING:
    import pandas as pd

    from irt_bayes.router import IRTRouter

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
    """Write a CSV via a temporary file so an error or interrupt never leaves half a file."""
    return write_file(path, lambda fh: df.to_csv(fh, index=False))


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    # "-": not defined for that row (see the command's --help)
    return df.to_string(float_format=lambda v: floatfmt.format(v), na_rep="-")


# ---------------------------------------------------------------------------- commands
def cmd_describe(args: argparse.Namespace) -> int:
    """Summarise response files, or a saved router: its model, fit and predictive check."""
    from irt_bayes.data import load_responses

    # response data are files, so a folder is a router (or a broken one, said as such)
    if len(args.data) == 1 and Path(args.data[0]).is_dir():
        return _describe_router(args.data[0])
    data = load_responses(*args.data, allow_pickle=args.trust_pickle)
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
    onb = getattr(router, "onboarded_", None)
    if onb is not None and len(onb):
        added = ", ".join(
            f"{m} ({int(k)} probes)" for m, k in zip(onb["llm"], onb["probes"], strict=True)
        )
        _say(f"added after the fit by onboard (item parameters held; not in the check): {added}")
    if router.datasets_:
        src = "latent clusters" if router.domain_.source == "clusters" else "dataset labels"
        _say(f"datasets ({src}): {', '.join(router.datasets_)}")
    _say(_table(router.abilities()))
    return 0


def _router_from_args(args: argparse.Namespace):
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
        sampler=args.sampler,
    )


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit a router on response files and save it."""
    from irt_bayes.data import load_responses

    check_output_dir(args.out, "router", force=args.force)  # before minutes of fitting
    data = load_responses(*args.data, allow_pickle=args.trust_pickle)
    router = _router_from_args(args)
    _say(
        f"fitting {router.model if isinstance(router.model, str) else router.model.name} "
        f"by {args.method.upper()} on {data!r}"
    )
    router.fit(data, embeddings=_embeddings(args))
    signum = interrupts.received()  # PyMC may have swallowed it and returned a partial fit
    if signum is not None and not args.keep_partial:
        raise interrupts.Interrupted(signum)
    if signum is not None:
        router.diagnostics_.interrupted = True
        router.diagnostics_.converged = False
        with interrupts.deferred():
            interrupts.clear()  # the interrupt is answered by saving; a second one aborts
            router.save(args.out, force=args.force, full_posterior=args.full_posterior)
        print(
            f"irt-bayes: interrupted ({signal.Signals(signum).name}); saved the partial fit to "
            f"{args.out}, marked not converged (route refuses it without --force)",
            file=sys.stderr,
        )
        return interrupts.exit_status(signum)
    _say(router.selection_note_)
    _say(router.diagnostics_.verdict())
    if router.check_ is not None:
        _say(router.check_.verdict())
    router.save(args.out, force=args.force, full_posterior=args.full_posterior)
    _say(_table(router.abilities()))
    _say(f"saved router to {args.out}")
    return 0


def _embeddings(args: argparse.Namespace):
    """The --embeddings table, or None."""
    if getattr(args, "embeddings", None) is None:
        if getattr(args, "embeddings_label", None) is not None:
            raise IrtBayesError("--embeddings-label needs --embeddings FILE")
        return None
    from irt_bayes.embeddings import EmbeddingTable

    return EmbeddingTable.load(args.embeddings, label=args.embeddings_label)


def _inputs(args: argparse.Namespace) -> list[str]:
    """The files a command reads, which its --out must not replace."""
    found: list[str] = []
    for name in ("queries", "data", "after", "responses", "embeddings"):
        value = getattr(args, name, None)
        if value:
            found.extend([value] if isinstance(value, str | os.PathLike) else value)
    return found


def _load_router(path: str, quiet: bool):
    from irt_bayes.router import IRTRouter

    return IRTRouter.load(path, progress=not quiet)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict P(correct) for every (query, LLM)."""
    from irt_bayes.data import load_queries

    check_output_file(args.out, _inputs(args))
    router = _load_router(args.router, args.quiet)
    queries = load_queries(*args.queries, allow_pickle=args.trust_pickle)
    out = router.predict(
        queries, warmup=args.warmup, use_labels=args.use_labels, embeddings=_embeddings(args)
    )
    _write_csv(out, args.out)
    _say(f"wrote {len(out)} rows ({len(queries)} queries x {len(router.llms_)} LLMs) to {args.out}")
    return 0


def cmd_abilities(args: argparse.Namespace) -> int:
    """Posterior abilities with 94% HDI."""
    if args.out:
        check_output_file(args.out, _inputs(args))
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
    check_output_dir(args.out, "report", force=args.force)
    router = _load_router(args.router, True)
    data = None
    if args.data:
        from irt_bayes.data import load_responses

        data = load_responses(*args.data, allow_pickle=args.trust_pickle)
    out = build_report(router, args.out, data=data, force=args.force, progress=not args.quiet)
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
    if out is not None:
        check_output_dir(out, "compare", force=args.force)
    table, fig = compare_routers(args.routers, ic=args.ic)
    shown = table.drop(columns=["scale"], errors="ignore")
    _say(shown.to_string(formatters={"k_high": "{:.1%}".format}, float_format="{:.2f}".format))
    for name, row in table[table["warning"].astype(bool)].iterrows():
        _say(
            f"warning {name}: {row['k_high']:.1%} of its responses have a Pareto k above "
            "ArviZ's threshold, so its elpd is approximate; a difference under 2 dse is noise"
        )
    if out is not None:
        with atomic_directory(out, "compare", force=args.force) as tmp:
            table.reset_index().to_csv(tmp / "compare.csv", index=False)
            fig.savefig(tmp / "compare.png", dpi=FIGURE_DPI, facecolor="white", format="png")
        _say(f"wrote {out / 'compare.csv'} and {out / 'compare.png'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate a priced pool, fit, predict new queries and print abilities."""
    import numpy as np

    from irt_bayes.router import IRTRouter
    from irt_bayes.simulate import simulate_pool

    t0 = time.perf_counter()
    if args.out:
        check_output_dir(args.out, "router", force=args.force)
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
        f"\n2. Encoding {data.n_queries} query texts with {_encoder_name(router)} "
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
    ab["mean_cost"] = router.prices_.reindex(ab.index)
    ab = ab.drop(columns="skill").sort_values("mean", ascending=False)
    r = float(np.corrcoef(ab["mean"], ab["true"])[0, 1])
    cover = float(((ab["hdi_low"] <= ab["true"]) & (ab["true"] <= ab["hdi_high"])).mean())
    _say("\n3. Posterior abilities (94% HDI) beside the simulation's true values")
    _say(_table(ab, "{:.4g}"))
    _say(f"   correlation with truth r = {r:.3f}; 94% intervals cover {cover:.0%} of true values")

    import pandas as pd

    from irt_bayes.routing import route

    new = pd.DataFrame(DEMO_QUERIES, columns=["query_id", "query", "dataset"])
    _say(
        "\n4. Routing new queries by utility = P(correct) - X * cost, X the willingness to "
        "pay\n   (irt-bayes route --willingness-to-pay X): X = 0 takes the most accurate "
        "LLM, X = 20 is thriftier;\n   risk-averse decides on the 10% quantile of P(correct) "
        "instead of its mean.\n   [94% interval]; accuracy_used - X * cost = utility, the "
        "largest of the query's LLMs"
    )
    runs = {
        "X=0": route(router, new, willingness_to_pay=0.0),
        "X=20": route(router, new, willingness_to_pay=20.0),
        "X=20 risk-averse": route(router, new, willingness_to_pay=20.0, policy="risk-averse"),
    }
    for qid, text, _ in DEMO_QUERIES:
        _say(f"   {text[:70]!r}")
        for label, res in runs.items():
            c = res.choices.set_index("query_id").loc[qid]
            row = res.table[(res.table.query_id == qid) & res.table.chosen].iloc[0]
            _say(
                f"      {label:<17} {c.llm:<13} P(correct) {c.expected_accuracy:.2f} "
                f"[{row.accuracy_low:.2f}, {row.accuracy_high:.2f}]  ${c.expected_cost:.5f}  "
                f"accuracy_used {c.accuracy_used:.3f}  utility {c.utility:.3f}"
            )
    if args.out:
        router.save(args.out, force=args.force, full_posterior=args.full_posterior)
        _say(f"\nSaved the router to {args.out} (try: irt-bayes abilities {args.out})")
    _say(f"\nDone in {time.perf_counter() - t0:.0f} s.")
    return 0


def _encoder_name(router) -> str:
    """The encoder's id, with what its ``:tail`` suffix means."""
    name = router._get_encoder().encoder_id
    if name.endswith(":tail"):
        name += " (the bundled MiniLM; ':tail': long prompts are embedded from their end)"
    return name


def cmd_route(args: argparse.Namespace) -> int:
    """Pick an LLM per query by posterior expected utility."""
    from irt_bayes.data import load_queries
    from irt_bayes.routing import route

    if str(args.out).endswith(".parquet"):
        return _route_parquet(args)
    if args.scheduler or args.workers:
        raise IrtBayesError("--scheduler and --workers route to Parquet: use --out D.parquet")
    check_output_file(args.out, _inputs(args))
    router = _load_router(args.router, args.quiet)
    _check_not_interrupted(router, args)

    queries = load_queries(*args.queries, allow_pickle=args.trust_pickle)
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
        embeddings=_embeddings(args),
    )
    _write_csv(res.choices, args.out)
    counts = res.choices["llm"].value_counts()
    _say(
        f"routed {len(res.choices)} queries ({args.policy}): mean expected accuracy "
        f"{res.mean_accuracy:.3f}, total expected cost ${res.total_cost:.4f} "
        f"(${res.total_cost / max(len(res.choices), 1):.6f} per query)"
    )
    _say(_utility_line(args, res.multiplier))
    _say(_table(counts.rename("queries").to_frame(), "{:.0f}"))
    _say(f"wrote {args.out}")
    return 0


def _check_not_interrupted(router: IRTRouter, args: argparse.Namespace) -> None:
    if router.diagnostics_.interrupted and not args.force:
        raise IrtBayesError(
            f"{args.router}: was saved from an interrupted fit (--keep-partial) and is not "
            "converged; refit it, or pass --force to route with it anyway"
        )


def _route_parquet(args: argparse.Namespace) -> int:
    """``route ... --out D.parquet``: a Parquet log, partition by partition, on Dask."""
    from irt_bayes.batch import route_parquet

    if len(args.queries) != 1:
        raise IrtBayesError("--out D.parquet routes one Parquet log (a file or a folder)")
    if args.budget is not None:
        raise IrtBayesError(
            "--budget needs the whole batch in one process: route to a CSV file, or give "
            "--willingness-to-pay"
        )
    if args.embeddings:
        raise IrtBayesError(
            "--out D.parquet reads embeddings from the log's 'embedding' column, not --embeddings"
        )
    _check_not_interrupted(_load_router(args.router, True), args)
    _say(f"routing {args.queries[0]} on Dask ({args.scheduler or 'local cluster'}) ...")
    res = route_parquet(
        args.router,
        args.queries[0],
        args.out,
        scheduler=args.scheduler,
        n_workers=args.workers,
        willingness_to_pay=args.willingness_to_pay,
        alpha=args.alpha,
        policy=args.policy,
        quantile=args.quantile,
        seed=args.seed,
        warmup=args.warmup,
        use_labels=args.use_labels,
    )
    peak = max(res.worker_peak_bytes.values(), default=0) / 2**20
    _say(
        f"routed {res.n_queries} queries in {res.n_partitions} partitions ({args.policy}) in "
        f"{res.seconds:.1f} s ({res.n_queries / max(res.seconds, 1e-9):,.0f} queries/s; "
        f"peak memory per worker {peak:,.0f} MiB): mean expected accuracy "
        f"{res.mean_accuracy:.3f}, total expected cost ${res.total_cost:.4f}"
    )
    _say(_table(res.counts.to_frame(), "{:.0f}"))
    _say(f"wrote {args.out}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """Choose training queries to run a new LLM on."""
    from irt_bayes.data import load_responses

    check_output_file(args.out, _inputs(args))
    router = _load_router(args.router, True)
    after = load_responses(*args.after, allow_pickle=args.trust_pickle) if args.after else None
    probes = router.suggest_probes(args.n, after=after, target=args.target)
    texts = None
    if args.data:
        known = load_responses(*args.data, allow_pickle=args.trust_pickle).queries
        texts = known.set_index("query_id")["query"].reindex(probes["query_id"])
        if texts.isna().all():
            raise DataError(
                f"none of the {len(probes)} probes is a query of this file (matched by "
                "query_id): pass the files the router was fitted on",
                source=", ".join(map(str, args.data)),
            )
    probes.insert(1, "query", "" if texts is None else texts.fillna("").to_numpy())
    _write_csv(probes, args.out)
    answered = f" after {after.n_responses} answers" if after is not None else ""
    _say(f"chose {len(probes)} probes{answered} (target: {args.target}); wrote {args.out}")
    if texts is None:
        _say("query texts are not saved in routers: pass --data TRAIN to include them")
    elif texts.isna().any():
        _say(f"{int(texts.isna().sum())} probes have no text in --data (left empty)")
    return 0


def _prices(items: Sequence[str] | None) -> dict[str, float]:
    """``LLM=USD`` options as a dict (the LLM name may itself hold '=')."""
    out = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        try:
            usd = float(value)
        except ValueError:
            usd = math.nan
        name = name.strip()  # as the response files' LLM names are
        if not sep or not name or not math.isfinite(usd) or usd < 0:
            raise IrtBayesError(f"--price {item!r}: expected LLM=USD with USD a number >= 0")
        if name in out and out[name] != usd:
            raise IrtBayesError(f"--price {item!r}: {name!r} already has price {out[name]:g}")
        out[name] = usd
    return out


def cmd_onboard(args: argparse.Namespace) -> int:
    """Add new LLMs from their answers to probes, without refitting."""
    from irt_bayes.data import load_responses
    from irt_bayes.onboarding import training_accuracy

    check_output_dir(args.out, "router", force=args.force)
    prices = _prices(args.price)
    router = _load_router(args.router, args.quiet)
    data = load_responses(*args.responses, allow_pickle=args.trust_pickle)
    new = router.add_llms(data, prices=prices, replace=args.replace, embeddings=_embeddings(args))
    new.save(args.out, force=args.force, full_posterior=args.full_posterior)
    added = new.onboarded_.tail(len(data.llms)).set_index("llm")
    added["expected_accuracy"] = training_accuracy(new, list(added.index))
    r = len(set(added.index) & {str(m) for m in router.llms_})  # --replace
    what = f"added {len(added) - r} and replaced {r}" if r else f"added {len(added)}"
    _say(f"{what} LLM(s); the pool has {len(new.llms_)} now; wrote {args.out}")
    _say(_table(added))
    ab = new.abilities()
    _say(_table(ab[ab["llm"].isin(added.index)].reset_index(drop=True)))
    if (added["new_queries"] > 0).any():
        _say("probes on queries the router was not fitted on use the new-query predictive")
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    """Choose (query, LLM) pairs to label next."""
    from irt_bayes.data import load_queries

    check_output_file(args.out, _inputs(args))
    router = _load_router(args.router, args.quiet)
    queries = load_queries(*args.queries, allow_pickle=args.trust_pickle)
    pairs = router.suggest_labels(
        queries, args.n, willingness_to_pay=args.willingness_to_pay, embeddings=_embeddings(args)
    )
    _write_csv(pairs, args.out)
    total = float(pairs["value"].sum())
    _say(
        f"chose {len(pairs)} pairs from {len(queries)} queries x {len(router.llms_)} LLMs; "
        f"their expected gain in utility sums to {total:.4g}; wrote {args.out}"
    )
    _say(_table(pairs.head(10), "{:.4g}"))
    return 0


def _utility_line(args: argparse.Namespace, multiplier: float) -> str:
    """How ``utility`` in the decisions file was computed, in one or two lines."""
    from irt_bayes.glossary import ACCURACY_USED, PROB_BEST_UTILITY

    if args.policy == "prob-best":
        text = f"utility = {PROB_BEST_UTILITY}"
    else:
        used = ACCURACY_USED[args.policy].format(q=f"{args.quantile:.0%}")
        lead = "accuracy_used" if args.alpha is None else f"{args.alpha:g} * accuracy_used"
        text = f"utility = {lead} - cost_weight * expected_cost; accuracy_used = {used}"
    if args.budget is None:
        return text
    if multiplier == 0.0:
        return text + f"\nbudget ${args.budget:g}: not binding, the choices cost less"
    if args.alpha is None:
        raised = (
            f"raised cost_weight from {args.willingness_to_pay:g} to "
            f"{args.willingness_to_pay + multiplier:.4g} per USD"
        )
    else:
        raised = f"added {multiplier:.4g} per USD to each query's cost_weight"
    return text + f"\nbudget ${args.budget:g}: {raised} to keep the batch within it"


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the routing service until interrupted."""
    from irt_bayes.backends import load_backends
    from irt_bayes.service import ServiceSettings, check_exposure, serve

    api_key = args.api_key or os.environ.get("IRT_BAYES_API_KEY") or None
    check_exposure(args.host, api_key)  # before seconds of loading the router
    from irt_bayes.router import IRTRouter

    # traffic is not cached in ~/.cache: the decision log keeps every embedding
    router = IRTRouter.load(args.router, progress=not args.quiet, cache_dir=False)
    if not str(router.encoder_id_).startswith("precomputed"):
        router._get_encoder().backend = args.encoder_backend
    backends = load_backends(args.backends, router.llms_) if args.backends else {}
    settings = ServiceSettings(
        willingness_to_pay=args.willingness_to_pay,
        alpha=args.alpha,
        policy=args.policy,
        forgetting=args.forgetting,
        api_key=api_key,
        backends=backends,
        encoder_threads=args.encoder_threads,
    )
    _say(
        f"serving {len(router.llms_)} LLMs ({len(backends)} with a backend) on "
        f"http://{args.host}:{args.port}, state in {args.state}"
    )
    serve(router, host=args.host, port=args.port, state=args.state, settings=settings)
    return 0


def cmd_refit(args: argparse.Namespace) -> int:
    """Fit the router's model again on its training data and the stored feedback."""
    import pandas as pd
    from sklearn.base import clone

    from irt_bayes.data import load_responses
    from irt_bayes.online import feedback_responses
    from irt_bayes.store import StateStore

    check_output_dir(args.out, "router", force=args.force)
    router = _load_router(args.router, args.quiet)
    data = load_responses(*args.data, allow_pickle=args.trust_pickle)
    fb = feedback_responses(router, StateStore(args.state, create=False), data)
    if fb.empty:
        raise IrtBayesError(f"--state {args.state} holds no feedback to refit on")
    frame = pd.concat([data.responses, fb], ignore_index=True)
    new = clone(router).set_params(progress=not args.quiet, method=args.method, seed=args.seed)
    _say(f"refitting on {data!r} and {len(fb)} feedback rows")
    new.fit(frame)
    _say(new.diagnostics_.verdict())
    new.save(args.out, force=args.force, full_posterior=args.full_posterior)
    _say(_table(new.abilities()))
    _say(f"saved router to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Sweep the cost trade-off on held-out responses and report the metrics."""
    from irt_bayes.data import load_responses
    from irt_bayes.evaluation import evaluate_router

    check_output_dir(args.out, "evaluation", force=args.force)
    router = _load_router(args.router, args.quiet)
    test = load_responses(*args.data, allow_pickle=args.trust_pickle)
    table = evaluate_router(
        router,
        test,
        args.out,
        warmup=args.warmup,
        use_labels=args.use_labels,
        policy=args.policy,
        quantile=args.quantile,
        complete_cases=not args.all_queries,
        force=args.force,
        embeddings=_embeddings(args),
    )
    if table.attrs["n_dropped"]:
        _say(
            f"scored on {table.attrs['n_queries']} queries that every LLM answered; "
            f"{table.attrs['n_dropped']} others left out (--all-queries keeps them)"
        )
    from irt_bayes.evaluation import display_table

    _say(display_table(table).to_string())
    _say(table.attrs["check"].verdict())
    _say(f"wrote metrics.csv, metrics.md, points.csv, check.csv and pareto.png to {args.out}")
    return 0


# ------------------------------------------------------------------------------ parser
def one_line(text: object) -> str:
    r"""``text`` on one line: control characters (newlines in a name...) escaped.

    >>> print(one_line("llm a\nb"))
    llm a\nb
    """
    text = str(text)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _integer(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            span = f">= {lo}" if hi is None else f"from {lo} to {hi}"
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {value}")
        return value

    return parse


def _number(
    lo: float, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in the interval lo..hi (open ends as given)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        low_ok = value > lo if lo_open else value >= lo
        high_ok = value < hi if hi_open else value <= hi
        if not math.isfinite(value) or not (low_ok and high_ok):
            left = "(" if lo_open else "["
            right = ")" if hi_open or hi == math.inf else "]"
            raise argparse.ArgumentTypeError(
                f"expected a finite number in {left}{lo:g}, {hi:g}{right}, got {text!r}"
            )
        return value

    return parse


SEED = _integer(0, 2**32 - 1)


def _add_safety(p: argparse.ArgumentParser, *, reads: bool = True, writes: bool = True) -> None:
    """The options every command that reads data files or writes a folder shares."""
    if reads:
        p.add_argument(
            "--trust-pickle",
            action="store_true",
            help="also read .pkl data files (unpickling runs code from the file: only for "
            "files you trust; better, convert them once to Parquet, see the README)",
        )
    if writes:
        p.add_argument(
            "--force",
            action="store_true",
            help="replace an existing --out folder even though irt-bayes did not write it "
            "(its files are deleted)",
        )


def _add_full_posterior(p: argparse.ArgumentParser) -> None:
    """The option of every command that saves a router."""
    p.add_argument(
        "--full-posterior",
        action="store_true",
        help="save every posterior draw of every variable in float64 (for ArviZ work on "
        "the posterior; often 10x larger) instead of the compact router prediction needs",
    )


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default, unless its text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        shown = action.option_strings and not (
            default is None or default is False or default == argparse.SUPPRESS
        )
        if shown and "default" not in text:
            text += " (default: %(default)s)"
        return text


QUIET_HELP = "no progress bars or progress lines"
LABELS_HELP = "use the queries' dataset labels (default: route from the query text alone)"
WARMUP_HELP = (
    "'irt-router': blend each query's embedding with the mean of its nearest training "
    "queries' embeddings first, as IRT-Router's warm-up does (default: no blending)"
)


def _command(
    sub: argparse._SubParsersAction, name: str, summary: str, func: Callable
) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary is both its --help description and its list entry."""
    from irt_bayes import glossary

    p = sub.add_parser(
        name,
        help=summary.replace("%", "%%"),  # help is %-formatted, the description is not
        description=summary[0].upper() + summary[1:] + ".",
        epilog=glossary.epilog(name) or None,
    )
    p.formatter_class = _HelpFormatter
    p.set_defaults(func=func)
    return p


def _add_embeddings(p: argparse.ArgumentParser) -> None:
    """--embeddings and --embeddings-label, for every command that embeds queries."""
    p.add_argument(
        "--embeddings",
        metavar="FILE",
        help="precomputed query embeddings by query_id instead of encoding the texts: "
        ".npz (arrays query_id, embedding) or Parquet (query_id, embedding list column); "
        "a router fitted on them needs them for every query it predicts",
    )
    p.add_argument(
        "--embeddings-label",
        metavar="LABEL",
        help="the kind of embedding (e.g. the encoder's name), recorded as "
        "precomputed:LABEL; default the file's SHA-256, so other files of the same "
        "encoder need the same label",
    )


def _add_fit_options(p: argparse.ArgumentParser) -> None:
    """--method, --seed and --quiet, shared by demo and fit."""
    p.add_argument(
        "--method",
        choices=["advi", "nuts"],
        default="advi",
        help="'advi': variational fit, fast (seconds to minutes); 'nuts': MCMC by nutpie, "
        "slower, with R-hat and ESS and calibrated intervals",
    )
    p.add_argument(
        "--seed", type=SEED, default=0, help="random seed: the same seed gives the same fit"
    )
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from irt_bayes.spec import available_specs

    p = _Parser(
        prog="irt-bayes",
        description="Bayesian routing of queries across LLMs with hierarchical IRT (PyMC).",
        epilog="Run 'irt-bayes COMMAND --help' for a command's options. Output columns "
        "are defined in the README's 'Output columns' section.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"irt-bayes {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = _command(sub, "demo", "fit and route on a simulated pool of priced LLMs", cmd_demo)
    _add_fit_options(d)
    d.add_argument("--queries", type=_integer(20, 100_000), default=600, help="simulated queries")
    d.add_argument("--llms", type=_integer(2, 12), default=10, help="simulated LLMs (at most 12)")
    d.add_argument(
        "--draws",
        type=_integer(10, 100_000),
        default=500,
        help="NUTS draws per chain, and as many warm-up steps",
    )
    d.add_argument("--out", metavar="DIR", help="also save the fitted router to this folder")
    _add_safety(d, reads=False)
    _add_full_posterior(d)

    s = _command(
        sub, "describe", "summarise response files, or a saved router and its checks", cmd_describe
    )
    s.add_argument(
        "data", nargs="+", metavar="DATA|ROUTER", help="response files, or one router folder"
    )
    _add_safety(s, writes=False)

    f = _command(sub, "fit", "fit a router on response files and save it", cmd_fit)
    f.add_argument("data", nargs="+", metavar="DATA", help="tidy or RouterBench response files")
    f.add_argument("--out", required=True, metavar="ROUTER", help="folder to save the router to")
    f.add_argument(
        "--model",
        default="auto",
        metavar="SPEC",
        help="'auto' (default: the candidate with the lowest log loss on held-out training "
        "queries; the 2PL unless beaten by more than one standard error), a named spec"
        f" ({', '.join(available_specs())}) or a .toml path",
    )
    f.add_argument(
        "--holdout",
        type=_number(0.0, 0.5),
        default=0.2,
        help="share of training queries held out for the predictive check and the choice "
        "of --model auto (default 0.2, at most 0.5; 0 skips the check)",
    )
    _add_fit_options(f)
    f.add_argument(
        "--skills", type=_integer(1, 64), help="override the spec's number of skills (1-64)"
    )
    f.add_argument(
        "--draws",
        type=_integer(1, 100_000),
        default=500,
        help="posterior draws kept: per chain for NUTS; ADVI draws this many (at least "
        "1000) from its approximation",
    )
    f.add_argument("--tune", type=_integer(0, 100_000), default=500, help="NUTS warm-up steps")
    f.add_argument(
        "--sampler",
        choices=["nutpie", "pymc", "numpyro", "blackjax"],
        default="nutpie",
        help="NUTS implementation for --method nuts: nutpie (numba, fastest here on CPU), "
        "PyMC's own, or numpyro / blackjax on JAX (pip install 'irt-bayes[jax]'; on a GPU "
        "when jax's CUDA build is installed)",
    )
    f.add_argument("--chains", type=_integer(1, 64), default=4, help="NUTS chains")
    f.add_argument(
        "--minibatch",
        type=_integer(2),
        metavar="N",
        help="ADVI on minibatches of N responses (>= 2), for data too large for full "
        "batches (default: full batches)",
    )
    f.add_argument(
        "--encoder",
        default="default",
        help="sentence-transformers model name or folder (default: the bundled "
        "all-MiniLM-L6-v2, embedding the end of long prompts)",
    )
    _add_embeddings(f)
    f.add_argument(
        "--keep-partial",
        action="store_true",
        help="on an interrupt, save the fit so far (marked not converged; route refuses "
        "it without --force) instead of writing nothing",
    )
    _add_safety(f)
    _add_full_posterior(f)

    pr = _command(sub, "predict", "P(correct) per (query, LLM) for new queries", cmd_predict)
    pr.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    pr.add_argument(
        "queries", nargs="+", metavar="QUERIES", help="files with query_id and query columns"
    )
    pr.add_argument("--out", required=True, metavar="P.csv", help="CSV file to write")
    pr.add_argument("--warmup", choices=["irt-router"], help=WARMUP_HELP)
    pr.add_argument("--use-labels", action="store_true", help=LABELS_HELP)
    _add_embeddings(pr)
    pr.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_safety(pr, writes=False)

    a = _command(sub, "abilities", "posterior LLM abilities with 94% HDI", cmd_abilities)
    a.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    a.add_argument("--out", metavar="A.csv", help="also write the table to this CSV file")

    rp = _command(
        sub, "report", "posterior report: one HTML file, Markdown, figures, tables", cmd_report
    )
    rp.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    rp.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder to write (an earlier report is replaced)",
    )
    rp.add_argument(
        "--data",
        nargs="+",
        metavar="DATA",
        help="all the training response files, to show query texts (a saved router keeps only ids)",
    )
    rp.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_safety(rp)

    c = _command(sub, "compare", "compare routers fitted on the same data by PSIS-LOO", cmd_compare)
    c.add_argument("routers", nargs="+", metavar="ROUTER", help="two or more router folders")
    c.add_argument("--out", metavar="DIR", help="also write compare.csv and compare.png here")
    c.add_argument(
        "--ic",
        choices=["loo", "waic"],
        default="loo",
        help="information criterion: PSIS-LOO, or WAIC",
    )
    _add_safety(c, reads=False)

    sv = _command(sub, "serve", "run the OpenAI-compatible routing service (HTTP)", cmd_serve)
    sv.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sv.add_argument("--port", type=_integer(1, 65535), default=8000, help="TCP port")
    sv.add_argument(
        "--state",
        default="irt-bayes-state",
        metavar="DIR|URL",
        help="decision log and feedback: a folder (SQLite, WAL) or a postgresql:// URL "
        "that replicas share (default: the folder irt-bayes-state here)",
    )
    sv.add_argument(
        "--backends",
        metavar="FILE",
        help="TOML file of OpenAI-compatible endpoints per LLM, for /v1/chat/completions",
    )
    sv_u = sv.add_mutually_exclusive_group()
    sv_u.add_argument(
        "--willingness-to-pay",
        type=_number(0.0),
        metavar="X",
        help="default cost weight per USD of requests that give none",
    )
    sv_u.add_argument(
        "--alpha",
        type=_number(0.0, 1.0),
        help="default IRT-Router trade-off of requests that give none",
    )
    sv.add_argument(
        "--policy",
        default="expected-utility",
        choices=["expected-utility", "risk-averse", "prob-best", "thompson"],
        help="default routing policy",
    )
    sv.add_argument(
        "--forgetting",
        type=_number(0.0, 1.0, lo_open=True),
        default=1.0,
        help="forgetting factor of the online update per outcome, in (0, 1]; below 1 "
        "old outcomes fade (drift)",
    )
    sv.add_argument(
        "--api-key",
        metavar="KEY",
        help="bearer token every request must carry (default: $IRT_BAYES_API_KEY); "
        "required with a --host other machines can reach",
    )
    sv.add_argument(
        "--encoder-threads",
        type=_integer(1),
        metavar="N",
        help="threads the text encoder may use; the other cores answer HTTP (default: "
        "half the cores)",
    )
    sv.add_argument(
        "--encoder-backend",
        choices=["onnx", "onnx-int8", "torch"],
        default="onnx",
        help="what runs the text encoder: ONNX Runtime (the same embeddings to 1e-5, checked "
        "at start, about twice as fast; falls back to torch with a warning), its int8 copy "
        "(another 2-2.5x faster, approximate: cosine >= 0.98 with the exact vectors, routing "
        "AUC 0.8835 against 0.8840 on RouterBench) or torch",
    )
    sv.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    rf = _command(
        sub,
        "refit",
        "fit the router again on its training data and the stored feedback",
        cmd_refit,
    )
    rf.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    rf.add_argument(
        "--state", required=True, metavar="DIR|URL", help="the state of 'irt-bayes serve'"
    )
    rf.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="DATA",
        help="the response files the router was fitted on (a router does not keep them)",
    )
    rf.add_argument("--out", required=True, metavar="ROUTER2", help="folder to save the router to")
    _add_fit_options(rf)
    _add_safety(rf)
    _add_full_posterior(rf)

    ro = _command(sub, "route", "choose an LLM per query by its policy's utility", cmd_route)
    ro.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    ro.add_argument(
        "queries", nargs="+", metavar="QUERIES", help="files with query_id and query columns"
    )
    knob = ro.add_mutually_exclusive_group(required=True)
    knob.add_argument(
        "--willingness-to-pay",
        type=_number(0.0),
        metavar="X",
        help="cost weight X >= 0 per USD: utility = accuracy - X * cost (RouterBench's "
        "name; larger X is thriftier: 1/X is the USD one pays for one unit of accuracy). "
        "Give this or --alpha; no default",
    )
    knob.add_argument(
        "--alpha",
        type=_number(0.0, 1.0),
        metavar="A",
        help="IRT-Router's form, A in [0, 1]: utility = A * accuracy - (1 - A) * cost / "
        "(the query's highest cost); A = 1 ignores cost, A = 0 takes the cheapest. Give "
        "this or --willingness-to-pay; no default",
    )
    ro.add_argument(
        "--policy",
        default="expected-utility",
        choices=["expected-utility", "risk-averse", "prob-best", "thompson"],
        help="which accuracy the utility uses: the posterior mean (expected-utility), a low "
        "quantile (risk-averse), one posterior draw (thompson, to explore); prob-best "
        "picks the LLM most often best across draws",
    )
    ro.add_argument(
        "--quantile",
        type=_number(0.0, 1.0, lo_open=True, hi_open=True),
        default=0.1,
        help="risk-averse: the quantile of P(correct) it decides on, in (0, 1)",
    )
    ro.add_argument(
        "--budget",
        type=_number(0.0, lo_open=True),
        metavar="USD",
        help="total expected USD for the whole batch: raises the cost weight until the "
        "choices fit (default: no budget)",
    )
    ro.add_argument("--warmup", choices=["irt-router"], help=WARMUP_HELP)
    ro.add_argument("--use-labels", action="store_true", help=LABELS_HELP)
    _add_embeddings(ro)
    ro.add_argument("--seed", type=SEED, default=0, help="random seed of thompson's draws")
    ro.add_argument(
        "--out",
        required=True,
        metavar="D.csv|D.parquet",
        help="CSV file of decisions; a name ending in .parquet routes a Parquet log "
        "partition by partition on Dask and writes a folder of Parquet parts",
    )
    ro.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --out D.parquet: a running Dask scheduler (tcp://host:8786) whose "
        "workers see the same paths (default: a local cluster for the run)",
    )
    ro.add_argument(
        "--workers",
        type=_integer(1, 1024),
        help="with --out D.parquet: local worker processes (default: one per core)",
    )
    ro.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    ro.add_argument(
        "--force",
        action="store_true",
        help="route with a router saved from an interrupted fit (--keep-partial)",
    )
    _add_safety(ro, writes=False)

    pb = _command(sub, "probe", "choose training queries to run a new LLM on", cmd_probe)
    pb.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    pb.add_argument("--n", type=_integer(1), required=True, help="probes to choose")
    pb.add_argument(
        "--after",
        nargs="+",
        metavar="RESPONSES",
        help="the new LLM's answers so far: choose the next probes given them (adaptive "
        "testing; default: under the population prior)",
    )
    pb.add_argument(
        "--target",
        choices=["accuracy", "predictions", "abilities"],
        default="accuracy",
        help="what the probes should teach: the LLM's mean accuracy over the training "
        "queries (c-optimal), its P(correct) on each of them (I-optimal), or its "
        "abilities themselves (D-optimal)",
    )
    pb.add_argument(
        "--data", nargs="+", metavar="DATA", help="the training files, to write query texts"
    )
    pb.add_argument("--out", required=True, metavar="PROBES.csv", help="CSV file to write")
    _add_safety(pb, writes=False)

    ob = _command(
        sub, "onboard", "add new LLMs from their answers to probes, without a refit", cmd_onboard
    )
    ob.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    ob.add_argument(
        "responses",
        nargs="+",
        metavar="RESPONSES",
        help="tidy response files of the new LLMs (query_id, query, llm, score[, cost])",
    )
    ob.add_argument("--out", required=True, metavar="ROUTER2", help="folder to save the router to")
    ob.add_argument(
        "--price",
        action="append",
        metavar="LLM=USD",
        help="USD per query of a new LLM (repeatable; default: the mean of its cost column)",
    )
    ob.add_argument(
        "--replace",
        action="store_true",
        help="re-estimate LLMs already in the pool from these responses alone (default: "
        "refuse them)",
    )
    _add_embeddings(ob)
    ob.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_safety(ob)
    _add_full_posterior(ob)

    sg = _command(
        sub, "suggest", "choose (query, LLM) pairs to label, by their value to routing", cmd_suggest
    )
    sg.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    sg.add_argument(
        "queries", nargs="+", metavar="QUERIES", help="candidate queries (query_id, query)"
    )
    sg.add_argument("--n", type=_integer(1), required=True, help="pairs to choose")
    sg.add_argument(
        "--willingness-to-pay",
        type=_number(0.0),
        nargs="+",
        default=[0.0],
        metavar="X",
        help="cost weight(s) per USD of the routing utility, as in route; with several, "
        "the value is averaged over them",
    )
    sg.add_argument("--out", required=True, metavar="PAIRS.csv", help="CSV file to write")
    _add_embeddings(sg)
    sg.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_safety(sg, writes=False)

    ev = _command(
        sub, "evaluate", "cost-accuracy sweep and calibration on test responses", cmd_evaluate
    )
    ev.add_argument("router", metavar="ROUTER", help="a router folder written by fit")
    ev.add_argument(
        "data", nargs="+", metavar="TESTDATA", help="response files the router was not fitted on"
    )
    ev.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    ev.add_argument(
        "--policy",
        default="expected-utility",
        choices=["expected-utility", "risk-averse"],
        help="routing policy swept (see route --policy)",
    )
    ev.add_argument(
        "--quantile",
        type=_number(0.0, 1.0, lo_open=True, hi_open=True),
        default=0.1,
        help="risk-averse: the quantile of P(correct) it decides on, in (0, 1)",
    )
    ev.add_argument("--warmup", choices=["irt-router"], help=WARMUP_HELP)
    ev.add_argument("--use-labels", action="store_true", help=LABELS_HELP)
    _add_embeddings(ev)
    ev.add_argument(
        "--all-queries",
        action="store_true",
        help="also score queries some LLMs did not answer (default: only those all answered)",
    )
    ev.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    _add_safety(ev)
    return p


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (convergence, predictive check) as one line, without a source path."""
    text = " ".join(str(message).split())
    print(f"irt-bayes: warning: {one_line(text)}", file=sys.stderr, flush=True)


def _version() -> str:
    return irt_bayes.__version__


def _interrupted(args: argparse.Namespace, signum: int) -> int:
    name = signal.Signals(signum).name
    done = interrupts.written()
    if done:  # the signal came after an output was complete and in place
        what = ", ".join(one_line(p) for p in done)
        print(f"irt-bayes: interrupted ({name}) after writing {what} (complete)", file=sys.stderr)
        return interrupts.exit_status(signum)
    out = getattr(args, "out", None)
    where = f" to {one_line(out)}" if out else ""
    print(f"irt-bayes: interrupted ({name}); nothing written{where}", file=sys.stderr, flush=True)
    return interrupts.exit_status(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``irt-bayes`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with interrupts.handling():
        try:
            with warnings.catch_warnings():
                # PyTensor's missing-BLAS notice is not actionable for users (see README).
                warnings.filterwarnings("ignore", message=".*BLAS.*")
                warnings.showwarning = _one_line_warning
                status = int(args.func(args) or 0)
        except IrtBayesError as exc:
            print(f"irt-bayes: error: {one_line(exc)}", file=sys.stderr, flush=True)
            return 2
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", None) or interrupts.received() or signal.SIGINT
            return _interrupted(args, signum)
        except MemoryError:
            print(
                "irt-bayes: error: out of memory; try fewer queries or LLMs at once",
                file=sys.stderr,
            )
            return 2
        signum = interrupts.received()
        if signum is not None and status == 0:
            # a signal came while the output was being swapped in: it is complete
            print(
                f"irt-bayes: interrupted ({signal.Signals(signum).name}) after finishing",
                file=sys.stderr,
            )
            return interrupts.exit_status(signum)
        return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
