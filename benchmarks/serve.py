"""Load on ``irt-bayes serve`` over loopback: latency, throughput, errors, durability.

Starts the service as its own process (``irt-bayes serve ROUTER --state TMP``) and
drives it from this process with asyncio + aiohttp, N concurrent clients each sending
its next request as soon as the last one is answered (each opens its keep-alive
connection before the clock starts, and this process's own heap is frozen so that its
garbage collector's pauses are not counted as the server's latency):

* ``/v1/route`` with one query per request, embedding included (the service keeps
  no embedding cache), for three sets of real query texts of growing length (ARC
  questions, GSM8K problems, RouterBench's few-shot prompts): p50 / p99 latency,
  decisions/s, errors, at 1, 8 and 64 clients;
* ``/v1/feedback`` by decision id (a committed SQLite WAL transaction per request) at
  1 and 8 clients;
* durability: 8 clients send feedback while the server is killed with SIGKILL; after
  a restart on the same state, every acknowledged row must be in the store (these
  clients use httpx: nothing there is timed).

The router is the 2pl fitted by ADVI on the RouterBench train files (11 LLMs, 1,338
queries), unless ``--router`` names one. Targets on 2 cores: at 8 clients p99 <= 50 ms
and >= 200 decisions/s, no errors at 64 clients, nothing acknowledged lost.

Both encoders are measured: ``onnx`` (the default, the exact vectors) and
``onnx-int8``, with what the int8 vectors cost in prediction and routing on the
RouterBench test prompts.

Usage (from the repository root)::

    python benchmarks/serve.py [--router DIR] [--requests 400] [--out FILE]
        [--encoder-backends onnx,onnx-int8] [--serve-args "--encoder-threads 2"]
        [--quick]   # ARC at 1 and 8 clients only, printed, nothing written
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import M7, RB, RESULTS, machine, md, routerbench

from irt_bayes.service import default_encoder_threads, wait_until_healthy


def text_sets() -> dict[str, list[str]]:
    """Query texts by length: the encoder's cost grows with it (256 tokens at most)."""
    from irt_bayes.data import load_responses

    def words(t: list[str]) -> int:
        return int(np.median([len(x.split()) for x in t]))

    arc = load_responses(M7 / "arc_challenge.csv.gz").queries["query"].tolist()
    gsm = load_responses(M7 / "gsm8k.csv.gz").queries["query"].tolist()
    rb = routerbench("test").queries["query"].tolist()
    return {
        f"ARC questions ({words(arc)} words)": arc,
        f"GSM8K problems ({words(gsm)} words)": gsm,
        f"RouterBench prompts ({words(rb)} words)": rb,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    router: Path, state: Path, port: int, backend: str = "onnx", extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "irt_bayes.cli", "serve", str(router), "--state", str(state),
           "--port", str(port), "--willingness-to-pay", "20", "--quiet",
           "--encoder-backend", backend, *extra]  # fmt: skip
    log = open(state.parent / f"server-{port}.log", "a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    wait_until_healthy(f"http://127.0.0.1:{port}", 300, proc)
    return proc


async def load(
    url: str, bodies: list[dict], clients: int, server: int | None = None
) -> tuple[np.ndarray, int, float, list, tuple[float, float]]:
    """Send ``bodies`` from ``clients`` concurrent clients.

    Returns latencies (s), errors, wall s, the answers, and the CPU seconds of the
    ``server`` process (0 without one) and of this one while the clock ran.
    """
    # This process holds ~350k objects (pandas, the package, the texts): a full
    # collection of them took 120 ms, which the clients waiting on it would count as
    # the server's latency. Frozen, the collector walks only what the load makes.
    gc.collect()
    gc.freeze()
    todo = iter(range(len(bodies)))
    lat: list[float] = []
    errors = 0
    out: list = [None] * len(bodies)
    # aiohttp, not httpx: at 8 clients httpx's client took 0.25 cores of the two and
    # added 6-10 ms to the p99 it reported (measured against the same server: p99 53-55
    # ms with httpx, 42-47 ms with aiohttp, which took 0.07 cores)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        # each client opens its connection first, off the clock, as a service's
        # clients keep theirs alive: 8 connects were 2% of a 400-request level's
        # latencies, above its p99 (measured)
        health = str(httpx.URL(url).copy_with(path="/health"))

        async def status(u: str) -> int:
            async with client.get(u) as r:
                await r.read()
                return r.status

        opened = await asyncio.gather(*(status(health) for _ in range(clients)))
        assert all(s == 200 for s in opened), opened

        async def worker() -> None:
            nonlocal errors
            for i in todo:
                t0 = time.perf_counter()
                try:
                    async with client.post(url, json=bodies[i]) as r:
                        ok = r.status == 200
                        if ok:
                            out[i] = await r.json()
                        else:
                            await r.read()  # drained: the connection is kept
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                lat.append(time.perf_counter() - t0)
                errors += not ok

        s0, c0 = cpu_seconds(server) if server else 0.0, cpu_seconds()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        s1, c1 = cpu_seconds(server) if server else 0.0, cpu_seconds()
    return np.array(lat), errors, wall, out, (s1 - s0, c1 - c0)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), all its threads."""
    p = psutil.Process(pid)
    t = p.cpu_times()
    return t.user + t.system


def measured(url: str, bodies: list[dict], clients: int, server: int) -> tuple[dict, list]:
    """One load level: latency, throughput and the cores the server and clients used."""
    lat, errors, wall, out, (server_s, client_s) = asyncio.run(load(url, bodies, clients, server))
    return {
        "clients": clients,
        "requests": len(lat),
        "p50 ms": 1e3 * float(np.percentile(lat, 50)),
        "p99 ms": 1e3 * float(np.percentile(lat, 99)),
        "per s": len(lat) / wall,
        "errors": errors,
        "server cores": server_s / wall,
        "client cores": client_s / wall,
    }, out


def durability(router: Path, tmp: Path) -> dict:
    """Kill -9 under feedback load; count acknowledged rows missing after a restart."""
    state, port = tmp / "kill-state", free_port()
    proc = start(router, state, port)
    url = f"http://127.0.0.1:{port}"
    llm = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][1]["id"]
    acked: list[int] = []

    async def send() -> None:
        async with httpx.AsyncClient(timeout=10) as client:

            async def worker(k: int) -> None:
                for i in range(k, 100_000, 8):
                    body = {"query": f"Durability question {i}?", "llm": llm, "score": i % 2}
                    try:
                        r = await client.post(f"{url}/v1/feedback", json=body)
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 200:
                        acked.append(r.json()["seq"])

            tasks = [asyncio.create_task(worker(k)) for k in range(8)]
            await asyncio.sleep(4.0)
            proc.send_signal(signal.SIGKILL)
            await asyncio.gather(*tasks)

    asyncio.run(send())
    proc.wait()
    proc = start(router, state, port)
    try:
        stats = httpx.get(f"{url}/v1/stats", timeout=30).json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    from irt_bayes.store import StateStore

    present = set(StateStore(state).feedback_since(0)["seq"].astype(int))
    lost = len(set(acked) - present)
    return {
        "acknowledged before kill -9": len(acked),
        "stored after restart": stats["feedback"],
        "replayed into the posterior": stats["online_updates"],
        "acknowledged but lost": lost,
    }


def fidelity(router_dir: Path) -> pd.DataFrame:
    """What onnx-int8 costs: its vectors and the router's predictions and routing vs onnx.

    On the RouterBench test prompts, the router fitted on exact vectors routes from each
    encoder's vectors; the difference is the price of the faster encoder.
    """
    from irt_bayes import IRTRouter
    from irt_bayes.encoding import QueryEncoder
    from irt_bayes.evaluation import evaluate_router

    test = routerbench("test")
    texts = test.queries["query"].tolist()
    router = IRTRouter.load(router_dir, progress=False, cache_dir=False)
    vectors, rows = {}, []
    for backend in ("onnx", "onnx-int8"):
        enc = QueryEncoder(cache_dir=False, backend=backend)
        v = enc.encode(texts)
        vectors[ran(backend, enc.backend)] = v
    exact = vectors["onnx"].astype(np.float64)
    p_exact = router.predict(test.queries, embeddings=exact)["p_mean"].to_numpy()
    for backend, v in vectors.items():
        cos = (v.astype(np.float64) * exact).sum(axis=1)
        dp = np.abs(router.predict(test.queries, embeddings=v)["p_mean"].to_numpy() - p_exact)
        m = evaluate_router(router, test, embeddings=v).loc[f"irt-bayes {router.spec_.name}"]
        rows.append({"encoder": backend, "min cosine": cos.min(), "mean cosine": cos.mean(),
                     "mean abs dP": dp.mean(), "max abs dP": dp.max(), "routing AUC": m["auc"],
                     "log loss": m["log_loss"], "ECE": m["ece"]})  # fmt: skip
    return pd.DataFrame(rows).set_index("encoder")


def ran(asked: str, running: str) -> str:
    """The label of an encoder row: a refused int8 model falls back (with a warning)."""
    return asked if running == asked else f"{asked} (fell back to {running})"


def levels(
    router: Path,
    tmp: Path,
    backend: str,
    sets: dict[str, list[str]],
    n: int,
    *,
    quick: bool,
    extra: tuple[str, ...] = (),
) -> list[dict]:
    """Every load level against one server run with ``--encoder-backend backend``."""
    port = free_port()
    proc = start(router, tmp / f"state-{backend}", port, backend, extra)
    url = f"http://127.0.0.1:{port}"
    rows, decisions = [], []
    try:
        # warm-up: connections, the first batches
        warm = [{"query": t} for texts in sets.values() for t in texts[-8:]]
        asyncio.run(load(f"{url}/v1/route", warm, 4))
        for name, texts in sets.items():
            for clients in (1, 8) if quick else (1, 8, 64):
                k = n if clients > 1 else n // 4
                bodies = [{"query": texts[i % len(texts)]} for i in range(k)]
                r, out = measured(f"{url}/v1/route", bodies, clients, proc.pid)
                rows.append({"endpoint": "/v1/route", "encoder": backend, "texts": name, **r})
                decisions += [o["decisions"][0]["decision_id"] for o in out if o]
                print(rows[-1], flush=True)
        for clients in () if quick else (1, 8):
            ids = decisions[:n] if clients > 1 else decisions[: n // 4]
            decisions = decisions[len(ids) :]
            bodies = [{"decision_id": d, "score": 1.0} for d in ids]
            r, _ = measured(f"{url}/v1/feedback", bodies, clients, proc.pid)
            rows.append({"endpoint": "/v1/feedback", "encoder": backend, "texts": "", **r})
            print(rows[-1], flush=True)
        stats = httpx.get(f"{url}/v1/stats").json()
        print(f"{backend}: {stats['decisions']} decisions in {stats['batches']} batches")
        label = ran(backend, stats.get("encoder", backend))
        if label != backend:
            print(f"{backend}: the server fell back to {stats['encoder']!r}")
            for r in rows:
                r["encoder"] = label
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--router", type=Path, help="a saved router (default: fit the RB 2pl)")
    ap.add_argument("--requests", type=int, default=400, help="route requests per level")
    ap.add_argument("--out", type=Path, default=RESULTS / "serve.md")
    ap.add_argument(
        "--encoder-backends",
        default="onnx,onnx-int8",
        help="serve's --encoder-backend values to measure, comma-separated",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="ARC questions at 1 and 8 clients only; no feedback or kill -9",
    )
    ap.add_argument("--serve-args", default="", help="more options for irt-bayes serve")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="irt-bayes-serve-"))
    t0 = time.perf_counter()
    router = args.router
    desc = f"{router} (--router)"
    if router is not None:
        from irt_bayes import IRTRouter

        loaded = IRTRouter.load(router)
        desc += (
            f": {loaded.spec_.name} by {loaded.diagnostics_.method}, {len(loaded.llms_)} "
            f"LLMs, {len(loaded.train_queries_):,} training queries"
        )
        del loaded
    if router is None:
        desc = "the 2pl by ADVI on the RouterBench train files (11 LLMs, 1,338 queries)"
        from irt_bayes import IRTRouter

        router = tmp / "router"
        print("fitting the 2pl by ADVI on the RouterBench train files ...", flush=True)
        fitted = IRTRouter("2pl", progress=False).fit(routerbench("train"))
        fitted.save(router)
    if not (RB.exists() and M7.exists()):
        raise SystemExit("needs ../shared/data (see its README)")
    sets = text_sets()
    if args.quick:
        sets = dict(list(sets.items())[:1])
    rows = []
    for backend in args.encoder_backends.split(","):
        rows += levels(
            router,
            tmp,
            backend,
            sets,
            args.requests,
            quick=args.quick,
            extra=tuple(args.serve_args.split()),
        )
    kill = durability(router, tmp) if not args.quick else {}
    print(kill, flush=True)
    fid = fidelity(router) if not args.quick else None
    table = md(pd.DataFrame(rows).set_index(["endpoint", "encoder", "texts"]), ".1f")
    if args.quick:
        print(table)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    text = (
        f"# irt-bayes serve under load (loopback, embedding included)\n\n"
        f"Machine: {machine()} (the server and the clients share it). "
        f"Command: `python benchmarks/serve.py {' '.join(sys.argv[1:])}` "
        f"({(time.perf_counter() - t0) / 60:.0f} minutes). "
        f"Router: {desc}. Load generator: asyncio + aiohttp in this process. "
        f"Server and client in separate processes; one query per "
        f"route request; feedback by decision id, each a committed SQLite WAL "
        f"transaction (synchronous=FULL; decision rows: NORMAL). "
        f"The server runs with its defaults "
        f"(--encoder-threads {default_encoder_threads()}) and the encoder named in the "
        f"table: `onnx`, the default (the exact vectors), or `onnx-int8`. "
        f"*server cores* and *client cores*: CPU seconds per second of the level.\n\n"
        f"{table}\n\n"
        f"Durability, 8 clients sending feedback, server killed with SIGKILL after 4 s, "
        f"then restarted on the same state:\n\n"
        f"{md(pd.DataFrame([kill]).T.rename(columns={0: 'rows'}), '.0f')}\n\n"
        f"What the int8 encoder costs: the router (fitted on exact vectors) on the "
        f"RouterBench test prompts, from each encoder's vectors (dP: change of the mean "
        f"predicted P(correct) of a (query, LLM) from the exact vectors'):\n\n"
        f"{md(fid, '.4f')}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    shutil.rmtree(tmp, ignore_errors=True)  # our own mkdtemp folder


if __name__ == "__main__":
    main()
