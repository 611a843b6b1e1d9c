"""What the benchmarks share: data paths and loaders, spec strings, machine notes."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
RB = DATA / "routerbench"
M7 = DATA / "model7"
M7_SETS = ["mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval"]
M7_MC = {"mmlu", "cmmlu", "arc_challenge"}


def encode(texts: list[str]) -> np.ndarray:
    """Embeddings with the default encoder (cached on disk)."""
    from irt_bayes.encoding import QueryEncoder

    return QueryEncoder(show_progress=True).encode(texts)


def spec_from(model: str):
    """``spec[:key=value...][@method][|option=value...]``: spec, overrides, method, options.

    ``mirt-2:dataset_abilities=true@nuts`` is mirt-2 with LLM x dataset offsets, by NUTS;
    ``2pl|domains=labels`` passes ``domains="labels"`` to :class:`IRTRouter`; ``auto`` is
    the package default. Returns (spec, method, router options).
    """
    from irt_bayes.spec import ModelSpec, load_spec

    model, *opts = model.split("|")
    options = dict(o.partition("=")[::2] for o in opts)
    for k, v in options.items():
        try:
            options[k] = json.loads(v)
        except json.JSONDecodeError:
            pass  # a plain string: domains=labels
    model, _, method = model.partition("@")
    if model == "auto":
        return "auto", method or "advi", options
    name, *overrides = model.split(":")
    raw = load_spec(name).to_dict()
    for item in overrides:
        key, _, value = item.partition("=")
        raw[key] = json.loads(value)
    # from_dict names an unknown or ill-typed key, as for a TOML spec
    return ModelSpec.from_dict(raw, source=model), method or "advi", options


def routerbench(split: str):
    """RouterBench arc_challenge + mbpp, ``split`` = "train" or "test"."""
    from irt_bayes.data import load_responses

    return load_responses(RB / f"arc_challenge_{split}.csv.gz", RB / f"mbpp_{split}.csv.gz")


def model7(names: list[str] | None = None):
    """model7 files with RouterDC's correctness: MC score > 0 counts as correct."""
    from irt_bayes.data import ResponseData, load_responses

    frames = []
    for n in names or M7_SETS:
        r = load_responses(M7 / f"{n}.csv.gz").responses.copy()
        if n in M7_MC:
            r["score"] = (r["score"] > 0).astype(float)
            r["trials"] = 1
        else:
            r["trials"] = 10  # share of 10 samples correct: a binomial k of 10
        frames.append(r)
    return ResponseData.from_frame(pd.concat(frames, ignore_index=True), source="model7")


def cpu() -> str:
    """The CPU's model and its widest vector instructions, where ``/proc/cpuinfo`` says.

    Machines of one kind differ: ONNX Runtime's int8 encoder was 3 times as fast as the
    exact one on a CPU with AVX-512 VNNI, and failed its accuracy check on one with AVX2
    only, so a time is quoted with the instructions it ran on.
    """
    try:
        first = Path("/proc/cpuinfo").read_text(errors="replace").split("\n\n")[0]
    except OSError:
        return platform.processor() or "CPU unknown"
    fields = {k.strip(): v for k, _, v in (ln.partition(":") for ln in first.splitlines())}
    flags = set(fields.get("flags", fields.get("Features", "")).split())  # x86, Arm
    name = " ".join(fields.get("model name", "CPU").split())
    isa = next(
        (f for f in ("avx512_vnni", "avx_vnni", "avx512f", "avx2", "asimddp") if f in flags), None
    )
    return f"{name} ({isa or 'no AVX2'})"


def machine() -> str:
    """One line: the machine, its CPU and how loaded it was (quote it with every time)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()}, {cpu()}, {os.cpu_count()} cores, load average {load:.2f}"


def md(df: pd.DataFrame, floatfmt: str = ".3f", fine: tuple[str, ...] = ()) -> str:
    """Markdown table; columns in ``fine`` get one more decimal (close calls)."""
    if not fine:
        return df.to_markdown(floatfmt=floatfmt)
    more = f".{int(floatfmt[1:-1]) + 1}f"
    return df.to_markdown(floatfmt=[floatfmt] + [more if c in fine else floatfmt for c in df])
