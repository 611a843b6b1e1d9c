"""Minibatch ADVI through the CLI at 100k, 300k and 1M responses, beside py-irt.

Data: :func:`irt_bayes.simulate.scale_pool`, 100 LLMs x 1,000 / 3,000 / 10,000 queries
(every pair observed once), 64-d unit-norm embeddings that the difficulty and
discrimination follow, standard normal abilities. Written as Parquet + ``.npz`` to a
temporary folder, then fitted by the command a user would run::

    irt-bayes fit RESPONSES.parquet --embeddings EMB.npz --model 2pl --minibatch 2000 \\
        --out ROUTER

Each fit runs in a fresh process; per size it reports wall time (data loading, the
held-out check's fit, the final fit, the save: everything), the peak resident memory of
that process (``getrusage`` of the child), and the ability recovery r (Pearson, posterior
mean against truth). "growth" is the log-log slope of time and memory against responses
from the previous size (1 = linear). Targets: 1M responses in <= 10 min and <= 4 GB,
r >= 0.97.

py-irt (PyPI ``py-irt``: Pyro SVI, 2PL with hierarchical priors, no embeddings) runs on
the same responses when ``--py-irt PYTHON`` names an interpreter that has it: py-irt
needs Python < 3.12 and pandas < 3, so it lives in a virtual environment of its own::

    python3.11 -m venv /tmp/pyirt && /tmp/pyirt/bin/pip install -c constraints.txt py-irt
    python benchmarks/scale.py --py-irt /tmp/pyirt/bin/python

Usage (from the repository root)::

    python benchmarks/scale.py [--sizes 1000,3000,10000] [--llms 100] [--minibatch 2000]
                               [--py-irt PYTHON] [--py-irt-epochs 2000] [--out FILE]

The table is printed and written as Markdown to ``benchmarks/results/scale.md``, with
the machine and its load average: quote them with every time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, ROOT, machine, md

# Runs a command and prints its wall time and peak RSS (bytes) as JSON on the last line.
_MEASURE = textwrap.dedent(
    """
    import json, resource, subprocess, sys, time
    t = time.perf_counter()
    rc = subprocess.run(sys.argv[1:]).returncode
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t, "peak": peak}))
    """
)

# py-irt's own trainer on a jsonlines file; prints the abilities as JSON.
_PY_IRT = textwrap.dedent(
    """
    import json, sys
    from py_irt.config import IrtConfig
    from py_irt.training import IrtModelTrainer
    path, epochs = sys.argv[1], int(sys.argv[2])
    config = IrtConfig(model_type="2pl", epochs=epochs, log_every=10**9, priors="hierarchical")
    trainer = IrtModelTrainer(config=config, data_path=path, verbose=False)
    trainer.train(device="cpu")
    ids = trainer.best_params["subject_ids"]
    ability = trainer.best_params["ability"]
    print(json.dumps({ids[int(k)]: float(ability[int(k)]) for k in ids}))
    """
)


def measured(cmd: list[str]) -> tuple[dict, str]:
    """Run ``cmd`` under the measuring wrapper: ({rc, seconds, peak}, its stderr tail)."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, cwd=ROOT
    )
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]), (proc.stderr + "\n".join(lines[:-1]))[-2000:]


def recovery(estimate: pd.Series, truth: pd.Series) -> float:
    """Pearson r of estimated against true abilities, matched by LLM."""
    est = estimate.reindex(truth.index)
    return float(np.corrcoef(est.to_numpy(float), truth.to_numpy(float))[0, 1])


def run_irt_bayes(folder: Path, frame: pd.DataFrame, emb: np.ndarray, minibatch: int) -> dict:
    """Fit through the CLI; time, peak memory and the router's abilities."""
    from irt_bayes.router import IRTRouter

    resp, embf, out = folder / "responses.parquet", folder / "emb.npz", folder / "router"
    frame.to_parquet(resp)
    ids = np.asarray(frame["query_id"].unique(), dtype=str)
    np.savez(embf, query_id=ids, embedding=emb)
    exe = str(Path(sys.executable).with_name("irt-bayes"))
    cmd = [exe, "fit", str(resp), "--embeddings", str(embf)]
    cmd += ["--embeddings-label", "sim64", "--model", "2pl", "--minibatch", str(minibatch)]
    cmd += ["--out", str(out), "--quiet"]
    res, err = measured(cmd)
    if res["rc"] != 0:
        raise SystemExit(f"irt-bayes fit failed (exit {res['rc']}):\n{err}")
    router = IRTRouter.load(out, progress=False)
    res["abilities"] = router.abilities().set_index("llm")["mean"]
    res["size_mb"] = sum(p.stat().st_size for p in out.iterdir()) / 1e6
    return res


def run_py_irt(python: str, folder: Path, frame: pd.DataFrame, epochs: int) -> dict:
    """py-irt's 2PL on the same responses, in its own interpreter."""
    path = folder / "py_irt.jsonlines"
    with path.open("w") as fh:
        for llm, g in frame.groupby("llm", sort=False):
            scores = dict(zip(g["query_id"], g["score"].astype(int).tolist(), strict=True))
            fh.write(json.dumps({"subject_id": llm, "responses": scores}) + "\n")
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, python, "-c", _PY_IRT, str(path), str(epochs)],
        capture_output=True,
        text=True,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 2:
        return {"error": (proc.stderr or proc.stdout)[-300:], "seconds": time.perf_counter() - t}
    res = json.loads(lines[-1])
    res["abilities"] = pd.Series(json.loads(lines[-2]))
    return res


def main() -> int:
    from irt_bayes.simulate import scale_pool

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000", help="queries per size (x --llms)")
    ap.add_argument("--llms", type=int, default=100)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--minibatch", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--py-irt", metavar="PYTHON", help="an interpreter with py-irt installed")
    ap.add_argument("--py-irt-epochs", type=int, default=2000)
    ap.add_argument("--out", default=str(RESULTS / "scale.md"))
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="irt-bayes-scale-") as tmp:
        for n_q in (int(s) for s in args.sizes.split(",")):
            frame, emb, truth = scale_pool(args.llms, n_q, dim=args.dim, seed=args.seed)
            folder = Path(tmp) / str(n_q)
            folder.mkdir()
            n = len(frame)
            print(f"{n:,} responses: irt-bayes fit ...", flush=True)
            res = run_irt_bayes(folder, frame, emb, args.minibatch)
            rows.append(
                {
                    "tool": "irt-bayes (minibatch ADVI, CLI)",
                    "responses": n,
                    "seconds": res["seconds"],
                    "peak GB": res["peak"] / 1e9,
                    "recovery r": recovery(res["abilities"], truth),
                    "router MB": res["size_mb"],
                }
            )
            print(f"   {rows[-1]}", flush=True)
            if args.py_irt:
                print(f"{n:,} responses: py-irt ...", flush=True)
                pr = run_py_irt(args.py_irt, folder, frame, args.py_irt_epochs)
                row = {"tool": "py-irt 0.7 (Pyro SVI 2PL)", "responses": n}
                if "error" in pr:
                    row.update(seconds=pr["seconds"], note=pr["error"].splitlines()[-1])
                else:
                    row.update(
                        seconds=pr["seconds"],
                        **{"peak GB": pr["peak"] / 1e9},
                        **{"recovery r": recovery(pr["abilities"], truth)},
                    )
                rows.append(row)
                print(f"   {rows[-1]}", flush=True)
    table = pd.DataFrame(rows)
    for _, g in table.groupby("tool", sort=False):
        logn = np.log(g["responses"].to_numpy(float))
        for col, name in (("seconds", "time growth"), ("peak GB", "memory growth")):
            if col in g:
                v = np.log(g[col].to_numpy(float))
                slope = np.r_[np.nan, np.diff(v) / np.diff(logn)]
                table.loc[g.index, name] = slope
    table["responses"] = table["responses"].map("{:,}".format)
    text = (
        f"Machine: {machine()}. Minibatch {args.minibatch}, {args.llms} LLMs, "
        f"{args.dim}-d embeddings, seed {args.seed}; py-irt epochs {args.py_irt_epochs}.\n\n"
        + md(table.set_index("tool"), floatfmt=".3g")
        + "\n"
    )
    print("\n" + text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
