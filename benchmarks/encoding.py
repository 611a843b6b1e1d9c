"""Time QueryEncoder on the RouterBench training prompts, cold cache then warm cache.

Usage::

    python benchmarks/encoding.py [--data-dir DIR] [--cache-dir DIR] [--device cpu]

Without ``--cache-dir`` a fresh temporary directory is used (and removed), so the first run is
always cold. The warm run uses a new QueryEncoder instance on the same cache.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from irt_bayes.encoding import QueryEncoder

FILES = ("arc_challenge_train.csv.gz", "mbpp_train.csv.gz")
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routerbench"


def load_prompts(data_dir: Path) -> list[str]:
    texts: list[str] = []
    for name in FILES:
        frame = pd.read_csv(data_dir / name, usecols=["prompt"])
        texts.extend("\n".join(ast.literal_eval(p)) for p in frame["prompt"])
    return texts


def timed(encoder: QueryEncoder, texts: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = encoder.encode(texts)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    texts = load_prompts(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="irt-bayes-bench-") as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        kwargs = {"cache_dir": cache_dir, "device": args.device, "batch_size": args.batch_size}
        cold_enc = QueryEncoder(**kwargs)
        cold_s, cold = timed(cold_enc, texts)
        warm_enc = QueryEncoder(**kwargs)
        warm_s, warm = timed(warm_enc, texts)
        cache_mb = warm_enc.cache_path.stat().st_size / 2**20

    import torch

    print(
        f"{len(texts)} prompts ({len(set(texts))} unique), encoder {cold_enc.encoder_id}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}, "
        f"cache {cache_mb:.1f} MiB"
    )
    print(f"{'run':<34}{'seconds':>10}{'texts/s':>12}")
    print(f"{'cold cache (incl. model load)':<34}{cold_s:>10.2f}{len(texts) / cold_s:>12.1f}")
    print(f"{'warm cache (new instance)':<34}{warm_s:>10.3f}{len(texts) / warm_s:>12.0f}")
    print(
        f"warm run loaded the model: {warm_enc._model is not None}; "
        f"warm == cold bitwise: {warm.tobytes() == cold.tobytes()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
