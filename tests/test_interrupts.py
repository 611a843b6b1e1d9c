"""Interrupts end to end: a real ``irt-bayes fit`` process gets SIGINT or SIGTERM mid-fit.

PyMC's ADVI loop catches ``KeyboardInterrupt`` and returns what it has, so these tests
signal the process while that loop runs: the command runs in a pseudo-terminal, where
PyMC draws its progress bar, and the signal is sent as soon as the bar appears.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from irt_bayes.cli import main
from irt_bayes.simulate import simulate_pool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fit_env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("interrupts")
    data = root / "sim.csv"
    simulate_pool(n_queries=300, n_llms=6, seed=3).responses.to_csv(data, index=False)
    env = dict(os.environ, IRT_BAYES_CACHE_DIR=str(root / "cache"))
    return {"root": root, "data": data, "env": env}


def _fit_and_signal(fit_env: dict, out: Path, sig: int, *extra: str) -> tuple[int, str]:
    """Run ``fit`` in a pseudo-terminal; send ``sig`` once ADVI's progress bar shows."""
    leader, follower = pty.openpty()
    cmd = [sys.executable, "-m", "irt_bayes.cli", "fit", str(fit_env["data"]), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--model", "2pl", "--holdout", "0", *extra],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=fit_env["env"],
    )
    os.close(follower)
    text, sent, deadline = "", False, time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 4096).decode(errors="replace")
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            text += chunk
        if not sent and "Fitting" in text:
            proc.send_signal(sig)
            sent = True
        if proc.poll() is not None and not ready:
            break
    os.close(leader)
    rc = proc.wait(timeout=60)
    assert sent, f"the ADVI progress bar never showed:\n{text[-2000:]}"
    return rc, text


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1]


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_fit_writes_nothing(fit_env, tmp_path, sig, status):
    out = tmp_path / "router"
    rc, text = _fit_and_signal(fit_env, out, sig)
    assert rc == status
    name = signal.Signals(sig).name
    assert _last_line(text) == f"irt-bayes: interrupted ({name}); nothing written to {out}"
    assert "Traceback" not in text
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_keep_partial_saves_it_marked_and_route_refuses_it(fit_env, tmp_path, capsys):
    out = tmp_path / "router"
    rc, text = _fit_and_signal(fit_env, out, signal.SIGINT, "--keep-partial")
    assert rc == 130, text[-2000:]
    assert "saved the partial fit" in _last_line(text)
    diag = json.loads((out / "router.json").read_text())["diagnostics"]
    assert diag["interrupted"] is True and diag["converged"] is False

    queries = tmp_path / "q.csv"
    queries.write_text("query_id,query\nq1,What is 2 + 2?\n")
    env_cache = fit_env["env"]["IRT_BAYES_CACHE_DIR"]
    mp = pytest.MonkeyPatch()
    mp.setenv("IRT_BAYES_CACHE_DIR", env_cache)
    try:
        route = ["route", str(out), str(queries), "--alpha", "0.5", "--quiet"]
        assert main([*route, "--out", str(tmp_path / "d.csv")]) == 2
        err = capsys.readouterr().err.strip()
        assert "interrupted fit" in err and "--force" in err and "\n" not in err
        assert not (tmp_path / "d.csv").exists()
        assert main([*route, "--out", str(tmp_path / "d.csv"), "--force"]) == 0
    finally:
        mp.undo()
