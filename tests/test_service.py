"""The routing service, started as a real server process and spoken to over HTTP.

A small OpenAI-compatible backend (``tests/openai_backend.py``) is started beside it on
loopback: the service forwards chat requests to it exactly as to a real provider.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from irt_bayes.errors import IrtBayesError
from irt_bayes.service import wait_until_healthy

HERE = Path(__file__).parent
http = httpx.Client(timeout=60)  # a loaded 2-core machine can be slow to answer
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True, scope="module")
def _no_server_outlives_the_tests():
    yield
    for proc in STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start(args: list[str], port: int, env: dict | None = None, timeout: float = 120):
    """Start a server process and wait for its /health (killed at the latest after the module)."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        text=True,
    )
    STARTED.append(proc)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", timeout, proc)
    except IrtBayesError as err:
        proc.kill()
        raise AssertionError(str(err)) from None
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_args(router: Path, port: int, state: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "irt_bayes.cli", "serve", str(router), "--port", str(port),
        "--state", state, "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def router_dir(advi_router, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("service") / "router"
    advi_router.save(path)
    return path


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The test backend, requiring the key in TEST_BACKEND_KEY."""
    port = free_port()
    env = {"TEST_BACKEND_KEY": "backend-secret"}
    proc = start(
        [sys.executable, str(HERE / "openai_backend.py"), "--port", str(port), "--key-env",
         "TEST_BACKEND_KEY"], port, env,
    )  # fmt: skip
    yield port
    stop(proc)


@pytest.fixture(scope="module")
def service(router_dir, backend, advi_router, tmp_path_factory):
    """A service with backends for three of the LLMs and a default willingness to pay."""
    llms = advi_router.llms_[:3]
    toml = tmp_path_factory.mktemp("backends") / "backends.toml"
    toml.write_text(
        "".join(
            f'[[backend]]\nllm = "{m}"\nbase_url = "http://127.0.0.1:{backend}/v1"\n'
            f'model = "provider-{m}"\napi_key_env = "TEST_BACKEND_KEY"\n\n'
            for m in llms
        )
    )
    port = free_port()
    state = tmp_path_factory.mktemp("state")
    proc = start(
        serve_args(router_dir, port, str(state), "--backends", str(toml),
                   "--willingness-to-pay", "20"),
        port, {"TEST_BACKEND_KEY": "backend-secret"},
    )  # fmt: skip
    yield f"http://127.0.0.1:{port}", llms
    stop(proc)


def test_route_explains_every_alternative(service, advi_router):
    url, _ = service
    r = http.post(f"{url}/v1/route", json={"queries": ["What is 17 * 23?", "Define entropy."]})
    assert r.status_code == 200, r.text
    ds = r.json()["decisions"]
    assert len(ds) == 2 and len({d["decision_id"] for d in ds}) == 2
    for d in ds:
        alts = {a["llm"]: a for a in d["alternatives"]}
        assert set(alts) == set(advi_router.llms_)
        assert d["utility"] == max(a["utility"] for a in alts.values())
        acc = d["expected_accuracy"]
        assert acc["low"] < acc["mean"] < acc["high"] and acc["sd"] > 0
        assert d["propensity"] == 1.0
        # utility = mean accuracy - 20 * cost
        a = alts[d["llm"]]
        assert a["utility"] == pytest.approx(
            a["expected_accuracy"]["mean"] - 20 * a["expected_cost"]
        )


def test_thompson_logs_its_propensity(service):
    url, llms = service
    body = {"query": "Translate 'cat' into French.", "policy": "thompson", "llms": llms}
    d = http.post(f"{url}/v1/route", json=body).json()["decisions"][0]
    assert d["llm"] in llms and {a["llm"] for a in d["alternatives"]} == set(llms)
    chosen = next(a for a in d["alternatives"] if a["llm"] == d["llm"])
    assert 0 < d["propensity"] <= 1 and d["propensity"] == chosen["prob_best"]


def test_a_budget_binds_over_the_request(service, advi_router):
    url, _ = service
    cheapest = float(advi_router.prices_.min())
    body = {
        "queries": ["Add 2 and 3.", "Spell 'cat'.", "What is 10 / 4?"],
        "budget": 3.5 * cheapest,
    }
    ds = http.post(f"{url}/v1/route", json=body).json()["decisions"]
    assert sum(d["expected_cost"] for d in ds) <= 3.5 * cheapest + 1e-12
    free = http.post(f"{url}/v1/route", json={"queries": body["queries"]}).json()["decisions"]
    assert sum(d["expected_cost"] for d in free) > sum(d["expected_cost"] for d in ds)


def test_feedback_must_name_the_decisions_llm(service):
    url, llms = service
    d = http.post(f"{url}/v1/route", json={"query": "Pick a colour."}).json()["decisions"][0]
    other = next(m for m in llms if m != d["llm"])
    body = {"decision_id": d["decision_id"], "llm": other, "score": 1}
    r = http.post(f"{url}/v1/feedback", json=body)
    assert r.status_code == 422 and f"chose {d['llm']!r}" in r.json()["error"]


def test_chat_completions_forward_to_the_chosen_backend(service):
    url, llms = service
    body = {"model": "irt-bayes:wtp=0", "messages": [{"role": "user", "content": "Hi there"}]}
    r = http.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    data = r.json()
    llm = r.headers["x-irt-bayes-llm"]
    assert llm in llms and data["irt_bayes"]["llm"] == llm
    assert data["irt_bayes"]["decision_id"] == r.headers["x-irt-bayes-decision-id"]
    assert data["model"] == f"provider-{llm}"
    assert data["choices"][0]["message"]["content"] == f"provider-{llm} answers: Hi there"


def test_chat_completions_stream_passes_through(service):
    url, llms = service
    body = {
        "model": "irt-bayes",
        "stream": True,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "a b c"},
        ],
    }
    words = []
    with http.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        llm = r.headers["x-irt-bayes-llm"]
        lines = [x for x in r.iter_lines() if x.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    for x in lines[:-1]:
        words.append(json.loads(x[6:])["choices"][0]["delta"]["content"])
    assert "".join(words).strip() == f"provider-{llm} answers: a b c"


def test_feedback_is_stored_and_updates_the_posterior(service):
    url, llms = service
    before = http.get(f"{url}/v1/stats").json()
    d = http.post(f"{url}/v1/route", json={"query": "Sort [3, 1, 2]."}).json()["decisions"][0]
    r = http.post(f"{url}/v1/feedback", json={"decision_id": d["decision_id"], "score": 1})
    assert r.status_code == 200 and r.json()["status"] == "stored"
    r = http.post(f"{url}/v1/feedback", json={"query": "Name a prime.", "llm": llms[0], "score": 0})
    assert r.status_code == 200
    for _ in range(50):
        s = http.get(f"{url}/v1/stats").json()
        if s["online_updates"] >= before["online_updates"] + 2:
            break
        time.sleep(0.2)
    assert s["feedback"] == before["feedback"] + 2
    assert s["encoder"] == "onnx"  # serve's default, and what this machine runs
    assert s["online_updates"] == before["online_updates"] + 2
    assert s["decisions"] > before["decisions"]
    models = http.get(f"{url}/v1/models").json()["data"]
    assert models[0]["id"] == "irt-bayes" and {m["id"] for m in models[1:]} >= set(llms)
    assert all(m["ability"][0]["sd"] > 0 for m in models[1:])
    metrics = http.get(f"{url}/metrics").text
    assert "irt_bayes_decisions_total" in metrics and "irt_bayes_feedback_total" in metrics
    assert "irt_bayes_request_seconds_bucket" in metrics


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/route", {"query": "  "}, "query 0 is empty"),
        ("/v1/route", {"query": "\u200b\u0000\ufeff"}, "query 0 is empty"),
        ("/v1/route", {"query": "x", "willingness_to_pay": True}, "valid number"),
        ("/v1/route", {"query": "x", "willingness_to_pay": "10"}, "valid number"),
        ("/v1/route", '{"query": "x", "y": ' + "[" * 50_000 + "]" * 50_000 + "}", "not JSON"),
        ("/v1/route", {"query": "x", "llms": ["no-such-llm"]}, "unknown LLM 'no-such-llm'"),
        ("/v1/route", {"query": "x", "willingness_to_pay": -1}, "greater than or equal to 0"),
        ("/v1/route", '{"query": "x", "alpha": NaN}', "finite number"),
        ("/v1/route", {"query": "x", "alpha": 0.5, "willingness_to_pay": 1}, "not both"),
        ("/v1/route", {"query": "x", "queries": ["y"]}, "one of the two"),
        ("/v1/route", '{"query": "x"', "not valid JSON"),
        ("/v1/route", '{"queries": ["fine", "\\ud800"]}', "texts[1] is not valid Unicode"),
        ("/v1/route", {"query": "x" * 1_100_000}, "the limit is"),
        ("/v1/feedback", {"llm": "x", "query": "q", "score": 1}, "unknown LLM 'x'"),
        ("/v1/feedback", {"decision_id": "d", "score": -0.5}, "score"),
        ("/v1/feedback", {"score": 1}, "decision_id"),
        ("/v1/feedback", {"decision_id": "d", "score": "0.5"}, "valid number"),
        ("/v1/chat/completions", "[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ("/v1/chat/completions", {"model": "gpt-4", "messages": []}, "use 'irt-bayes'"),
        ("/v1/chat/completions", {"model": "irt-bayes", "messages": []}, "non-empty list"),
    ],
)
def test_bad_requests_get_422_with_one_line(service, path, body, needle):
    url, _ = service
    kw = {"content": body, "headers": {"content-type": "application/json"}}
    r = http.post(f"{url}{path}", **(kw if isinstance(body, str) else {"json": body}))
    assert r.status_code == 422, r.text
    msg = r.json()["error"]
    assert needle in msg and "\n" not in msg


def test_unknown_decision_is_404(service):
    url, _ = service
    r = http.post(f"{url}/v1/feedback", json={"decision_id": "never-made", "score": 1})
    assert r.status_code == 404 and "never-made" in r.json()["error"]


def test_bodies_the_checks_cannot_see_up_front(service):
    url, _ = service
    bad_utf8 = http.post(
        f"{url}/v1/route",
        content=b'{"query": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert bad_utf8.status_code == 422 and "not JSON" in bad_utf8.json()["error"]

    def chunks():  # no content-length: the limit is counted while the body is read
        yield b'{"query": "'
        for _ in range(40):
            yield b"x" * 50_000
        yield b'"}'

    js = {"content-type": "application/json"}
    big = http.post(f"{url}/v1/route", content=chunks(), headers=js)
    assert big.status_code == 422 and "over the limit" in big.json()["error"]

    def small():
        yield b'{"query": "What is 2 + 2?"}'

    ok = http.post(f"{url}/v1/route", content=small(), headers=js)
    assert ok.status_code == 200, ok.text
    missing = http.get(f"{url}/no-such-path-{time.time_ns()}")
    assert missing.status_code == 404 and "error" in missing.json()
    assert http.get(f"{url}/v1/route").status_code == 405
    metrics = http.get(f"{url}/metrics").text
    assert "no-such-path" not in metrics and 'endpoint="other"' in metrics


def test_a_decision_takes_one_outcome(service):
    url, _ = service
    d = http.post(f"{url}/v1/route", json={"query": "Name a prime above 10."}).json()
    did = d["decisions"][0]["decision_id"]
    other = http.post(
        f"{url}/v1/feedback", json={"decision_id": did, "query": "Another text", "score": 1}
    )
    assert other.status_code == 422 and "another query text" in other.json()["error"]
    first = http.post(f"{url}/v1/feedback", json={"decision_id": did, "score": 1})
    assert first.status_code == 200, first.text
    again = http.post(f"{url}/v1/feedback", json={"decision_id": did, "score": 0})
    assert again.status_code == 409 and "already has its outcome" in again.json()["error"]


def test_kill9_loses_nothing_acknowledged(router_dir, tmp_path):
    port = free_port()
    state = str(tmp_path / "state")
    proc = start(serve_args(router_dir, port, state, "--willingness-to-pay", "5"), port)
    url = f"http://127.0.0.1:{port}"
    acked = 0
    for i in range(12):
        d = http.post(f"{url}/v1/route", json={"query": f"Question {i}?"}).json()["decisions"][0]
        r = http.post(f"{url}/v1/feedback", json={"decision_id": d["decision_id"], "score": i % 2})
        acked += r.status_code == 200
    for _ in range(50):
        if http.get(f"{url}/v1/stats").json()["online_updates"] == acked:
            break
        time.sleep(0.2)
    models = http.get(f"{url}/v1/models").json()["data"]
    stop(proc, signal.SIGKILL)
    proc = start(serve_args(router_dir, port, state, "--willingness-to-pay", "5"), port)
    try:
        s = http.get(f"{url}/v1/stats").json()
        assert acked == 12 and s["feedback"] == 12 and s["decisions"] == 12
        assert s["online_updates"] == 12  # replayed before /health said ok
        again = http.get(f"{url}/v1/models").json()["data"]
        for a, b in zip(models[1:], again[1:], strict=True):
            np.testing.assert_allclose(a["ability"][0]["mean"], b["ability"][0]["mean"], rtol=1e-9)
    finally:
        stop(proc)


def test_api_key(router_dir, tmp_path):
    out = subprocess.run(
        serve_args(router_dir, free_port(), str(tmp_path / "s"), "--host", "0.0.0.0"),
        capture_output=True, text=True, timeout=60, env={**os.environ, "IRT_BAYES_API_KEY": ""},
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "--api-key" in out.stderr
    port = free_port()
    proc = start(serve_args(router_dir, port, str(tmp_path / "s"), "--api-key", "k3y"), port)
    try:
        url = f"http://127.0.0.1:{port}/v1/route"
        body = {"query": "x", "alpha": 0.9}
        assert http.post(url, json=body).status_code == 401
        bad = {"authorization": "Bearer nope"}
        assert http.post(url, json=body, headers=bad).status_code == 401
        good = {"authorization": "Bearer k3y"}
        assert http.post(url, json=body, headers=good).status_code == 200
    finally:
        stop(proc)


# ---------------------------------------------------------------- PostgreSQL replicas
def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server in a temporary folder (Debian's postgresql package)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # not under pytest's tmp_path: its folders are private to root, and as root the
    # server must run as the postgres user
    root = Path(tempfile.mkdtemp(prefix="irt-bayes-pg-"))
    data, port = root / "data", free_port()
    pre: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        pre = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*pre, initdb, "-D", str(data), "-A", "trust", "-U", "irt"], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(
        [*pre, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
         f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    yield f"postgresql://irt@127.0.0.1:{port}/postgres"
    subprocess.run([*pre, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def test_replicas_share_one_postgresql_store(router_dir, postgres):
    ports = [free_port(), free_port()]
    procs = [start(serve_args(router_dir, p, postgres, "--alpha", "0.8"), p) for p in ports]
    try:
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        d = http.post(f"{a}/v1/route", json={"query": "What is 2 + 2?"}).json()["decisions"][0]
        # feedback on a decision of replica a, sent to replica b: one shared log
        r = http.post(f"{b}/v1/feedback", json={"decision_id": d["decision_id"], "score": 1})
        assert r.status_code == 200, r.text
        r = http.post(f"{a}/v1/feedback", json={"query": "Hi", "llm": d["llm"], "score": 0})
        assert r.status_code == 200
        for _ in range(50):
            sa_, sb = (http.get(f"{u}/v1/stats").json() for u in (a, b))
            if sa_["online_updates"] == sb["online_updates"] == 2:
                break
            time.sleep(0.2)
        assert sa_["feedback"] == sb["feedback"] == 2 and sa_["decisions"] == 1
        assert sa_["online_updates"] == sb["online_updates"] == 2
        # the one-outcome rule holds across replicas (the unique index is in PostgreSQL)
        r = http.post(f"{a}/v1/feedback", json={"decision_id": d["decision_id"], "score": 0})
        assert r.status_code == 409, r.text
        ma, mb = (http.get(f"{u}/v1/models").json()["data"] for u in (a, b))
        # the same feedback in the same order: the same posterior (to rounding)
        assert [m["id"] for m in ma] == [m["id"] for m in mb]
        for x, y in zip(ma[1:], mb[1:], strict=True):
            np.testing.assert_allclose(x["ability"][0]["mean"], y["ability"][0]["mean"], rtol=1e-9)
    finally:
        for p in procs:
            stop(p)


def test_state_from_before_the_one_outcome_index_gets_it(tmp_path):
    import sqlalchemy as sa

    from irt_bayes.store import FeedbackConflict, StateStore, feedback

    row = {"decision_id": "d1", "query": "q", "embedding": np.zeros(3), "llm": "m", "score": 1}
    old = tmp_path / "old"
    old.mkdir()
    engine = sa.create_engine(f"sqlite:///{old / 'state.sqlite'}")
    with engine.begin() as conn:  # the table as older versions made it: no index
        conn.execute(sa.schema.CreateTable(feedback))
    engine.dispose()
    store = StateStore(old)
    store.add_feedback([row])
    with pytest.raises(FeedbackConflict, match="'d1' already has its outcome"):
        store.add_feedback([{**row, "score": 0}])
    assert store.add_feedback([{**row, "decision_id": None}])  # outcomes seen elsewhere
    store.close()

    dup = tmp_path / "dup"
    dup.mkdir()
    engine = sa.create_engine(f"sqlite:///{dup / 'state.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateTable(feedback))
        for score in (1.0, 0.0):
            conn.execute(
                feedback.insert(),
                {**row, "created": 0.0, "embedding": np.zeros(3).tobytes(), "score": score},
            )
    engine.dispose()
    with pytest.warns(RuntimeWarning, match="two outcomes for one decision"):
        StateStore(dup).close()
