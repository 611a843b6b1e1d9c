"""Fit the 2PL router on RouterBench with NUTS and ADVI: time, convergence, test accuracy.

Data: RouterBench arc_challenge + mbpp, TRAIN files for fitting (1,338 queries x 11 LLMs,
about 14.6k responses), TEST files (573 queries, about 6.2k responses) for scoring, read in
place from ``../shared/data/routerbench`` relative to the repository root.

Per inference method it reports

* fit s: wall time of ``IRTRouter.fit`` with precomputed embeddings (query encoding is
  done once beforehand and excluded; PCA, model build, compilation, sampling/optimising,
  posterior extraction and warm-up weights are included);
* sampler s: the part recorded by the package itself (``diagnostics_.seconds``: compile +
  sample for NUTS, optimise + draw for ADVI);
* max R-hat, min bulk / tail ESS of the abilities and divergences (NUTS only; "-" for ADVI);
* test log loss and Brier score over every observed (test query, LLM) pair, with p the
  posterior mean of ``predict_proba`` clipped to [1e-6, 1 - 1e-6].

Two reference rows give context: p = each LLM's training accuracy, and p = each LLM's
training accuracy on the query's dataset. Targets: NUTS <= 60 s with every ability at
R-hat <= 1.01; ADVI <= 15 s.

Usage (from the repository root)::

    python benchmarks/fit.py [--methods nuts,advi] [--samplers nutpie,pymc,numpyro,blackjax]
                             [--model 2pl] [--seed 0]
                             [--draws N] [--tune N] [--chains N]
                             [--data-dir DIR] [--cache-dir DIR] [--out FILE]

Embeddings are cached on disk (``$IRT_BAYES_CACHE_DIR`` or ``~/.cache/irt-bayes/embeddings``
unless ``--cache-dir``); the first run computes them, about a minute on CPU. The table is
printed and written as Markdown to ``benchmarks/results/fit.md``.

Timings need a quiet machine. On a busy one, also set ``OPENBLAS_NUM_THREADS=1``: OpenBLAS
threads spin when the cores are oversubscribed (the PCA's SVD inside ``fit`` took 8.8 s
instead of 0.13 s on a loaded 2-core machine). The "load average" printed with the results
says how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from irt_bayes import IRTRouter, QueryEncoder, ResponseData, load_responses

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("arc_challenge", "mbpp")
EPS = 1e-6
NUTS_TARGET_S, ADVI_TARGET_S, RHAT_TARGET = 60.0, 15.0, 1.01


# ----------------------------------------------------------------------------------- data
def routerbench_dir(data_dir: Path) -> Path:
    """The routerbench folder, or exit with one line if a file is missing."""
    folder = Path(data_dir).resolve() / "routerbench"
    for name in DATASETS:
        for split in ("train", "test"):
            path = folder / f"{name}_{split}.csv.gz"
            if not path.is_file():
                sys.exit(f"error: RouterBench data not found: {path} (use --data-dir DIR)")
    return folder


def load_split(folder: Path, split: str) -> ResponseData:
    """arc_challenge + mbpp of one split, each file loaded on its own and concatenated.

    Query ids must not collide across the two files (RouterBench reuses ids only
    between arc's train and test files, which are never combined here).
    """
    parts = [load_responses(folder / f"{name}_{split}.csv.gz") for name in DATASETS]
    seen: set[str] = set()
    for part in parts:
        clash = seen & set(part.query_ids)
        if clash:
            sys.exit(f"error: query ids {sorted(clash)[:3]} occur in two {split} files")
        seen |= set(part.query_ids)
    frame = pd.concat([p.responses for p in parts], ignore_index=True)
    return ResponseData(frame, " + ".join(p.source for p in parts))


def embed(
    datas: Sequence[ResponseData], cache_dir: Path | None
) -> tuple[list[np.ndarray], QueryEncoder, float]:
    """Embeddings of each data set's queries (in ``queries`` order), the encoder, seconds.

    Pass the encoder to ``IRTRouter(encoder=...)`` so that the router records its id
    (a router fitted on bare arrays records ``"precomputed"``).
    """
    encoder = QueryEncoder(cache_dir=cache_dir)
    n = sum(len(d.queries) for d in datas)
    print(
        f"Embedding {n} queries with {encoder.encoder_id} (cache {encoder.cache_path}); "
        "the first run computes them, about 1 minute on CPU ...",
        flush=True,
    )
    t0 = time.perf_counter()
    out = [encoder.encode(d.queries["query"].tolist()) for d in datas]
    seconds = time.perf_counter() - t0
    print(f"  embeddings ready in {seconds:.1f} s (not part of any fit time below)", flush=True)
    return out, encoder, seconds


# -------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class Observed:
    """Observed test pairs in index form against a query order and an LLM list."""

    query_idx: np.ndarray
    llm_idx: np.ndarray
    y: np.ndarray
    dataset: np.ndarray
    llm: np.ndarray


def observed_pairs(data: ResponseData, llms: Sequence[str]) -> Observed:
    r = data.responses
    qi = pd.Index(data.queries["query_id"]).get_indexer(r["query_id"])
    li = pd.Index(list(llms)).get_indexer(r["llm"])
    if (li < 0).any():
        sys.exit(f"error: test LLM {r['llm'][li < 0].iloc[0]!r} was not in the training data")
    ds = r["dataset"].to_numpy(str) if "dataset" in r else np.full(len(r), "")
    return Observed(qi, li, r["score"].to_numpy(float), ds, r["llm"].to_numpy(str))


def log_loss_brier(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    ll = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(ll.mean()), float(np.mean((p - y) ** 2))


def router_scores(
    router: IRTRouter, test: ResponseData, emb: np.ndarray, **kwargs: object
) -> tuple[float, float, float]:
    """Test log loss, Brier and mean posterior sd of p over observed pairs."""
    draws = router.predict_proba(test.queries, embeddings=emb, **kwargs)
    obs = observed_pairs(test, draws["llm"].to_numpy().tolist())
    mean = draws.mean("draw").to_numpy()[obs.query_idx, obs.llm_idx]
    sd = draws.std("draw").to_numpy()[obs.query_idx, obs.llm_idx]
    return (*log_loss_brier(mean, obs.y), float(sd.mean()))


def reference_scores(train: ResponseData, test: ResponseData) -> dict[str, tuple[float, float]]:
    """Constant-per-LLM and per-(LLM, dataset) training accuracy as predictions."""
    r = train.responses
    obs = observed_pairs(test, train.llms)
    per_llm = r.groupby("llm")["score"].mean()
    p_llm = per_llm.reindex(obs.llm).to_numpy()
    per_ds = r.groupby(["llm", "dataset"])["score"].mean()
    p_ds = per_ds.reindex(pd.MultiIndex.from_arrays([obs.llm, obs.dataset])).to_numpy()
    p_ds = np.where(np.isnan(p_ds), p_llm, p_ds)  # an unseen dataset falls back to the LLM
    return {
        "ref: per-LLM train accuracy": log_loss_brier(p_llm, obs.y),
        "ref: per-(LLM, dataset) train accuracy": log_loss_brier(p_ds, obs.y),
    }


# --------------------------------------------------------------------------------- tables
def fmt(value: float | int | str | None, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return value if isinstance(value, str) else format(value, spec)


def render_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned plain-text table: first column left, the others right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def render_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def package_version_line() -> str:
    """The commit of the package measured, and whether its files had local changes."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "irt_bayes", "models"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "irt-bayes (commit unknown)"
    return f"irt-bayes at {head}" + (" + uncommitted changes" if dirty else "")


def machine_line() -> str:
    import nutpie
    import pymc
    from threadpoolctl import threadpool_info

    blas = ", ".join(
        sorted({f"{p['internal_api']} {p['num_threads']} threads" for p in threadpool_info()})
    )
    return (
        f"{package_version_line()}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, {blas}; "
        f"Python {platform.python_version()}, PyMC {pymc.__version__}, nutpie {nutpie.__version__}"
    )


def command_line(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *args])


def write_markdown(path: Path, title: str, blocks: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n" + "\n\n".join(blocks) + "\n")
    print(f"\nwrote {path}")


# ------------------------------------------------------------------------------------ fit
def fit_one(
    method: str,
    args: argparse.Namespace,
    train: ResponseData,
    emb: np.ndarray,
    encoder: QueryEncoder,
    sampler: str = "nutpie",
) -> tuple[IRTRouter, float, list[str]]:
    """Fit one router; returns it, the fit wall time and the warnings it raised."""
    kwargs = {k: getattr(args, k) for k in ("draws", "tune", "chains") if getattr(args, k)}
    router = IRTRouter(
        args.model,
        encoder=encoder,
        method=method,
        progress=False,
        seed=args.seed,
        holdout=0.0,
        sampler=sampler,
        **kwargs,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        router.fit(train, embeddings=emb)
        seconds = time.perf_counter() - t0
    notes = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
    return router, seconds, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="nuts,advi", help="comma-separated: nuts,advi")
    parser.add_argument("--model", default="2pl", help="named spec or TOML path (default 2pl)")
    parser.add_argument(
        "--samplers",
        default="nutpie",
        help="NUTS implementations, comma-separated: nutpie,pymc,numpyro,blackjax",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=None, help="default: IRTRouter's (500)")
    parser.add_argument("--tune", type=int, default=None, help="default: IRTRouter's (500)")
    parser.add_argument("--chains", type=int, default=None, help="default: IRTRouter's (4)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache")
    parser.add_argument("--out", type=Path, default=RESULTS / "fit.md")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("nuts", "advi")]
    if bad or not methods:
        parser.error(f"--methods takes nuts and/or advi, got {args.methods!r}")

    folder = routerbench_dir(args.data_dir)
    train, test = load_split(folder, "train"), load_split(folder, "test")
    print(f"train: {train}\ntest:  {test}", flush=True)
    (emb_train, emb_test), encoder, _ = embed([train, test], args.cache_dir)

    header = [
        "method",
        "fit s",
        "sampler s",
        "max R-hat",
        "min ESS bulk",
        "min ESS tail",
        "divergences",
        "test log loss",
        "test Brier",
        "target",
        "met",
    ]
    rows: list[list[str]] = []
    notes: list[str] = []
    samplers = [x.strip() for x in args.samplers.split(",") if x.strip()]
    runs = [(m, x) for m in methods for x in (samplers if m == "nuts" else ["-"])]
    for method, sampler in runs:
        print(f"fitting {args.model} with {method.upper()} ({sampler}) ...", flush=True)
        kind = "nutpie" if sampler == "-" else sampler
        router, seconds, caught = fit_one(method, args, train, emb_train, encoder, kind)
        diag = router.diagnostics_
        ll, brier, _ = router_scores(router, test, emb_test)
        if method == "nuts":
            target = f"<= {NUTS_TARGET_S:.0f} s, R-hat <= {RHAT_TARGET}"
            met = seconds <= NUTS_TARGET_S and diag.max_rhat <= RHAT_TARGET
            post = router.idata_.posterior
            label = f"NUTS {sampler} ({post.sizes['chain']} x {post.sizes['draw']} draws)"
        else:
            target = f"<= {ADVI_TARGET_S:.0f} s"
            met = seconds <= ADVI_TARGET_S
            state = "converged" if diag.converged else "NOT converged"
            label = f"ADVI ({diag.iterations} it, {state})"
        rows.append(
            [
                label,
                fmt(seconds, ".1f"),
                fmt(diag.seconds, ".1f"),
                fmt(diag.max_rhat),
                fmt(diag.min_ess_bulk, ".0f"),
                fmt(diag.min_ess_tail, ".0f"),
                fmt(diag.divergences if method == "nuts" else None, "d"),
                fmt(ll, ".4f"),
                fmt(brier, ".4f"),
                target,
                "yes" if met else "NO",
            ]
        )
        notes.append(f"{method.upper()} {sampler}: {diag.verdict()}")
        # the ConvergenceWarning repeats the verdict line; keep the other warnings
        notes += [f"{method.upper()} warning: {w}" for w in caught if diag.verdict() not in w]
        print(f"  {rows[-1][0]}: fit {seconds:.1f} s, test log loss {ll:.4f}", flush=True)

    for name, (ll, brier) in reference_scores(train, test).items():
        rows.append([name, *["-"] * 6, fmt(ll, ".4f"), fmt(brier, ".4f"), "", ""])

    context = (
        f"{args.model} on RouterBench arc_challenge + mbpp: train {train.n_queries} queries x "
        f"{train.n_llms} LLMs ({train.n_responses} responses), test {test.n_queries} queries "
        f"({test.n_responses} responses); encoder {encoder.encoder_id}, embeddings precomputed "
        f"(excluded from fit time); seed {args.seed}; {machine_line()}"
    )
    print("\n" + context + "\n")
    print(render_text(header, rows))
    print("\n" + "\n".join(notes))
    md_notes = "\n".join(f"- {n}" for n in notes)
    write_markdown(
        args.out,
        "Fit benchmark",
        [
            context,
            render_markdown(header, rows),
            "R-hat / ESS / divergences are over the abilities (theta); ADVI has none. "
            "Test log loss and Brier are over observed test (query, LLM) pairs, p = "
            "posterior mean clipped to [1e-6, 1 - 1e-6].",
            md_notes,
            f"Command: `{command_line(argv)}`",
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
