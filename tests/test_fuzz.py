"""Fuzzing the CLI's entry point: whatever the input, one line and exit 2, or a sound result.

Three generators, each driving :func:`irt_bayes.cli.main` in-process:

- bad option values for every numeric option of every command;
- a saved router damaged on disk (a file deleted, truncated, bytes flipped, or a
  router.json value replaced by another JSON type);
- data files with a damaged cell (missing, out of range, wrong type, control
  characters, repeated ids).

The property: the command exits 0 with finite output, or exits 2 with exactly one
line on stderr, no traceback, and nothing written at ``--out``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irt_bayes import IRTRouter
from irt_bayes.cli import main
from irt_bayes.simulate import simulate_pool

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # CI sees the same cases every run; a new failure is a real change
)

# (command, the arguments it needs before the option, the options that take numbers)
NUMERIC_OPTIONS = {
    "demo": ([], ["--queries", "--llms", "--draws", "--seed"]),
    "fit": (
        ["DATA", "--out", "OUT"],
        ["--holdout", "--skills", "--seed", "--draws", "--tune", "--chains", "--minibatch"],
    ),
    "route": (
        ["ROUTER", "QUERIES", "--out", "OUT.csv", "--alpha", "0.5"],
        ["--quantile", "--budget", "--seed"],
    ),
    "route-wtp": (["ROUTER", "QUERIES", "--out", "OUT.csv"], ["--willingness-to-pay"]),
}
BAD_NUMBERS = st.one_of(
    st.sampled_from(
        ["nan", "inf", "-inf", "-1", "0", "1.5", "-0.5", "1e309", "", " ", "abc", "1,5", "0x10"]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)


def _assert_refused(capsys: pytest.CaptureFixture[str], status: int, out: Path) -> None:
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not out.exists(), f"{out} written by a refused command"


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own exit (usage errors)
        return int(exc.code or 0)


@FUZZ
@given(
    command=st.sampled_from(sorted(NUMERIC_OPTIONS)),
    pick=st.integers(0, 100),
    value=BAD_NUMBERS,
)
def test_bad_option_values(tmp_path_factory, capsys, command, pick, value):
    tmp = tmp_path_factory.mktemp("opt")
    before, options = NUMERIC_OPTIONS[command]
    option = options[pick % len(options)]
    place = {
        "DATA": str(tmp / "missing.csv"),
        "OUT": str(tmp / "out"),
        "OUT.csv": str(tmp / "out"),
        "ROUTER": str(tmp / "no-router"),
        "QUERIES": str(tmp / "q.csv"),
    }
    argv = [command.split("-")[0], *(place.get(a, a) for a in before), f"{option}={value}"]
    if command == "demo":
        argv += ["--out", str(tmp / "out"), "--queries=1"]  # valid values still stop at once
    status = _run(argv)
    _assert_refused(capsys, status, tmp / "out")


# ------------------------------------------------------------------ damaged routers
@pytest.fixture(scope="module")
def saved_router(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz-router")
    mp = pytest.MonkeyPatch()
    mp.setenv("IRT_BAYES_CACHE_DIR", str(root / "cache"))
    pool = simulate_pool(n_queries=120, n_llms=4, seed=5)
    router = IRTRouter("2pl", progress=False, holdout=0.0, cache_dir=root / "cache")
    router.fit(pool.responses).save(root / "router")
    queries = root / "q.csv"
    pool.queries.head(5)[["query_id", "query"]].to_csv(queries, index=False)
    yield {"root": root, "router": root / "router", "queries": queries}
    mp.undo()


def _json_values() -> st.SearchStrategy:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-5, 5), st.floats(-1e3, 1e3), st.text(max_size=4)
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    )


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON document."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += [(*prefix, k), *_paths(v, (*prefix, k))]
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            out += [(*prefix, i), *_paths(v, (*prefix, i))]
    return out


def _damage(router: Path, data: st.DataObject) -> str:
    name = data.draw(st.sampled_from(["router.json", "posterior.nc", "arrays.npz"]))
    path = router / name
    how = data.draw(
        st.sampled_from(
            ["delete", "truncate", "flip", "json"]
            if name == "router.json"
            else ["delete", "truncate", "flip"]
        )
    )
    raw = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))])
    elif how == "flip":
        buf = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
        path.write_bytes(bytes(buf))
    else:
        meta = json.loads(raw)
        key_path = data.draw(st.sampled_from(_paths(meta)))
        node = meta
        for k in key_path[:-1]:
            node = node[k]
        node[key_path[-1]] = data.draw(_json_values())
        path.write_text(json.dumps(meta))
        how = f"json {key_path}"
    return f"{name}: {how}"


@FUZZ
@given(data=st.data())
def test_damaged_router(saved_router, tmp_path_factory, capsys, data):
    tmp = tmp_path_factory.mktemp("dmg")
    router = tmp / "router"
    shutil.copytree(saved_router["router"], router)
    what = _damage(router, data)
    out = tmp / "p.csv"
    status = _run(
        ["predict", str(router), str(saved_router["queries"]), "--out", str(out), "--quiet"]
    )
    if status == 0:  # the damage missed everything the router reads: the answer is sound
        p = pd.read_csv(out)
        assert np.isfinite(p["p_mean"]).all() and p["p_mean"].between(0, 1).all(), what
        capsys.readouterr()
    else:
        _assert_refused(capsys, status, out)


# ------------------------------------------------------------------- bad data files
def _cell() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(
            [
                "",
                "nan",
                "NaN",
                "-1",
                "2",
                "inf",
                "1e400",
                "0.5",
                "x",
                "\n",
                "\x00",
                "a\x1bb",
                "007",
                "7.0",
            ]
        ),
        st.text(max_size=6),
        st.floats(allow_nan=True, allow_infinity=True),
    )


@FUZZ
@given(
    column=st.sampled_from(["query_id", "query", "llm", "score", "cost", "trials", "dataset"]),
    row=st.integers(0, 7),
    value=_cell(),
    duplicate=st.booleans(),
)
def test_bad_data_files(saved_router, tmp_path_factory, capsys, column, row, value, duplicate):
    tmp = tmp_path_factory.mktemp("data")
    df = simulate_pool(n_queries=4, n_llms=2, seed=1).responses.head(8).astype(object)
    if duplicate:
        df = pd.concat([df, df.iloc[[row]]], ignore_index=True)
    df.loc[row, column] = value
    path = tmp / "d.csv"
    df.to_csv(path, index=False)
    status = _run(["describe", str(path)])
    if status != 0:
        _assert_refused(capsys, status, tmp / "none")
    else:
        capsys.readouterr()
    queries = tmp / "q.csv"
    df[["query_id", "query"]].to_csv(queries, index=False)  # ids repeated per LLM: refused
    out = tmp / "p.csv"
    status = _run(
        ["predict", str(saved_router["router"]), str(queries), "--out", str(out), "--quiet"]
    )
    if status == 0:
        p = pd.read_csv(out)
        assert np.isfinite(p["p_mean"]).all()
        capsys.readouterr()
    else:
        _assert_refused(capsys, status, out)
