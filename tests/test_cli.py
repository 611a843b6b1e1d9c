"""CLI: the commands work end to end, and bad input is one line on stderr, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from irt_bayes.cli import main
from irt_bayes.outputs import _umask
from irt_bayes.routing import CHOICE_COLUMNS
from irt_bayes.simulate import simulate_pool

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("IRT_BAYES_CACHE_DIR", str(root / "cache"))
    pool = simulate_pool(n_queries=160, n_llms=6, seed=11)
    train = root / "train.csv"
    pool.responses.to_csv(train, index=False)
    queries = root / "queries.csv"
    pool.queries.head(7)[["query_id", "query"]].to_csv(queries, index=False)
    router = root / "router"
    assert main(["fit", str(train), "--out", str(router), "--quiet", "--seed", "3"]) == 0
    yield {"root": root, "train": train, "queries": queries, "router": router}
    mp.undo()


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("irt-bayes: error: ")
    assert "\n" not in err, err
    assert "Traceback" not in err
    return err


def test_fit_saves_router(cli_env: dict[str, Path]) -> None:
    meta = json.loads((cli_env["router"] / "router.json").read_text())
    from irt_bayes.selection import AUTO_CANDIDATES, CLUSTER_CANDIDATE, candidate_label

    assert len(meta["llms"]) == 6
    # the default is --model auto: every candidate was scored on held-out training queries
    assert meta["spec"]["name"] in AUTO_CANDIDATES
    clusters = candidate_label(*CLUSTER_CANDIDATE, "labels+clusters")
    assert sorted(meta["selection"]["model"]) == sorted([*AUTO_CANDIDATES, clusters])
    sel = pd.DataFrame(meta["selection"])
    ok = sel[sel["check"] == "ok"] if (sel["check"] == "ok").any() else sel
    best = ok.sort_values("log_loss")["model"].iloc[0]
    assert sel.loc[sel["chosen"], "model"].tolist() == [best]
    assert meta["spec"]["name"] == best.split(" ")[0]
    assert meta["selection_note"].startswith(f"model auto: chose {best}")
    assert meta["check"]["n_queries"] == 30  # 20% of each domain's ~27 queries held out
    assert meta["encoder_id"] == "all-MiniLM-L6-v2:tail"


def test_describe_a_router_repeats_its_check(
    cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["describe", str(cli_env["router"])]) == 0
    out = capsys.readouterr().out
    assert "model auto: chose" in out
    assert "predictive check on 30 held-out training queries" in out
    assert "ADVI converged" in out or "ADVI NOT converged" in out


def test_describe_a_folder_without_router_json_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a folder is never response data: it is named as a router that lacks its metadata
    (tmp_path / "empty").mkdir()
    assert main(["describe", str(tmp_path / "empty")]) == 2
    err = _one_line_error(capsys)
    assert str(tmp_path / "empty" / "router.json") in err and "incomplete" in err


def test_predict_writes_one_row_per_query_and_llm(cli_env: dict[str, Path]) -> None:
    out = cli_env["root"] / "p.csv"
    assert (
        main(
            [
                "predict",
                str(cli_env["router"]),
                str(cli_env["queries"]),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    p = pd.read_csv(out)
    assert list(p.columns) == ["query_id", "llm", "p_mean", "p_sd", "p_low", "p_high"]
    assert len(p) == 7 * 6
    assert ((p.p_low <= p.p_mean) & (p.p_mean <= p.p_high)).all()
    assert p["p_mean"].between(0, 1).all()


def test_predict_accepts_a_response_file(cli_env: dict[str, Path]) -> None:
    out = cli_env["root"] / "p2.csv"
    assert (
        main(
            [
                "predict",
                str(cli_env["router"]),
                str(cli_env["train"]),
                "--out",
                str(out),
                "--quiet",
                "--warmup",
                "irt-router",
            ]
        )
        == 0
    )
    assert pd.read_csv(out)["query_id"].nunique() == 160


def test_abilities_csv(cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = cli_env["root"] / "a.csv"
    assert main(["abilities", str(cli_env["router"]), "--out", str(out)]) == 0
    a = pd.read_csv(out)
    assert list(a.columns) == ["llm", "skill", "mean", "sd", "hdi_low", "hdi_high"]
    assert len(a) == 6 * a["skill"].nunique()
    assert (a.groupby("skill")["mean"].sum().abs() < 1e-6).all()  # zero-sum abilities
    printed = capsys.readouterr().out
    assert all(name in printed for name in a["llm"])


def test_demo_runs_and_recovers_abilities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IRT_BAYES_CACHE_DIR", str(tmp_path / "cache"))
    assert (
        main(["demo", "--queries", "200", "--llms", "6", "--quiet", "--out", str(tmp_path / "r")])
        == 0
    )
    out = capsys.readouterr().out
    r = float(out.split("correlation with truth r = ")[1].split(";")[0])
    assert r > 0.9
    assert (tmp_path / "r" / "posterior.nc").is_file()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("query_id,query,llm\nq1,hi,m\n", "'score'"),
        ("query_id,query,llm,score\nq1,hi,m,1.5\n", "1.5"),
        ("query_id,query,llm,score\nq1,,m,1\n", "empty query text"),
        ("query_id,query,llm,score,cost\nq1,hi,m,1,-2\n", "-2"),
    ],
)
def test_fit_bad_data_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    out = tmp_path / "router"
    assert main(["fit", str(f), "--out", str(out), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert str(f) in err and needle in err
    assert not out.exists()


def test_unknown_spec_is_one_line(
    cli_env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", str(cli_env["train"]), "--out", str(tmp_path / "r"), "--model", "4pl"]) == 2
    assert "4pl" in _one_line_error(capsys)


def test_predict_missing_router(
    tmp_path: Path, cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.csv"
    assert (
        main(["predict", str(tmp_path / "nope"), str(cli_env["queries"]), "--out", str(out)]) == 2
    )
    assert "nope" in _one_line_error(capsys)
    assert not out.exists()


def test_predict_corrupt_router(
    tmp_path: Path, cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    bad = tmp_path / "router"
    shutil.copytree(cli_env["router"], bad)
    (bad / "router.json").write_text("{not json")
    assert main(["abilities", str(bad)]) == 2
    assert "router.json" in _one_line_error(capsys)


def test_predict_empty_query_text(
    tmp_path: Path, cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    q = tmp_path / "q.csv"
    q.write_text("query_id,query\na,hello\nb,   \n")
    out = tmp_path / "p.csv"
    assert main(["predict", str(cli_env["router"]), str(q), "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert str(q) in err and "row 2" in err
    assert not out.exists()


def test_route_writes_choices(cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = cli_env["root"] / "d.csv"
    assert (
        main(
            [
                "route",
                str(cli_env["router"]),
                str(cli_env["queries"]),
                "--alpha",
                "0.9",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    d = pd.read_csv(out)
    assert tuple(d.columns) == CHOICE_COLUMNS
    np.testing.assert_allclose(  # --alpha 0.9: the sum the README and --help state
        d["utility"], 0.9 * d["accuracy_used"] - d["cost_weight"] * d["expected_cost"]
    )
    assert len(d) == 7 and d["query_id"].is_unique
    cheap = cli_env["root"] / "cheap.csv"
    assert (
        main(
            [
                "route",
                str(cli_env["router"]),
                str(cli_env["queries"]),
                "--willingness-to-pay",
                "1e9",
                "--out",
                str(cheap),
                "--quiet",
            ]
        )
        == 0
    )
    prices = json.loads((cli_env["router"] / "router.json").read_text())["prices"]
    assert pd.read_csv(cheap)["expected_cost"].max() == pytest.approx(min(prices))
    budget = cli_env["root"] / "b.csv"
    assert (
        main(
            [
                "route",
                str(cli_env["router"]),
                str(cli_env["queries"]),
                "--willingness-to-pay",
                "0",
                "--budget",
                "0.005",
                "--out",
                str(budget),
                "--quiet",
            ]
        )
        == 0
    )
    assert pd.read_csv(budget)["expected_cost"].sum() <= 0.005


def test_route_needs_exactly_one_knob(cli_env: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["route", str(cli_env["router"]), str(cli_env["queries"]), "--out", "x.csv"])
    assert exc.value.code == 2


def test_evaluate_writes_metrics_and_plot(cli_env: dict[str, Path]) -> None:
    out = cli_env["root"] / "eval"
    assert (
        main(
            [
                "evaluate",
                str(cli_env["router"]),
                str(cli_env["train"]),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    m = pd.read_csv(out / "metrics.csv", index_col="router")
    ours = [i for i in m.index if i.startswith("irt-bayes")][0]
    assert m.loc[ours, "auc"] > m.loc["random", "auc"]
    assert m.loc["oracle", "auc"] >= m.loc[ours, "auc"]
    assert (out / "pareto.png").stat().st_size > 10_000
    md = (out / "metrics.md").read_text()
    assert "nan" not in md and "| - " in md  # undefined cells say so
    assert "| `cpt50` | cost at which the router recovers 50%" in md  # defined under it
    for f in out.iterdir():  # readable by others under the usual umask
        assert f.stat().st_mode & 0o777 == 0o666 & ~_umask(), f


def test_evaluate_leaves_out_incomplete_queries_unless_asked(
    cli_env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = pd.read_csv(cli_env["train"])
    q0 = data["query_id"].iloc[0]
    drop = data.index[data["query_id"] == q0][:1]  # one LLM did not answer q0
    f = tmp_path / "gappy.csv"
    data.drop(index=drop).to_csv(f, index=False)
    router = str(cli_env["router"])
    assert main(["evaluate", router, str(f), "--out", str(tmp_path / "cc")]) == 0
    assert "1 others left out (--all-queries keeps them)" in capsys.readouterr().out
    n_queries = data["query_id"].nunique()
    assert f"Scored on {n_queries - 1} test queries" in (tmp_path / "cc" / "metrics.md").read_text()
    args = ["evaluate", router, str(f), "--out", str(tmp_path / "all"), "--all-queries"]
    assert main(args) == 0
    assert "left out" not in capsys.readouterr().out
    assert f"Scored on {n_queries} test queries." in (tmp_path / "all" / "metrics.md").read_text()


def test_evaluate_unknown_llm_is_one_line(
    cli_env: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "test.csv"
    f.write_text("query_id,query,llm,score,cost\nq1,hello there,not-in-pool,1,0.1\n")
    assert main(["evaluate", str(cli_env["router"]), str(f), "--out", str(tmp_path / "e")]) == 2
    err = _one_line_error(capsys)
    assert "not-in-pool" in err and str(f) in err
    assert not (tmp_path / "e").exists()


def test_an_output_file_never_replaces_an_input_or_a_router_file(
    tmp_path: Path, cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    router = tmp_path / "router"
    shutil.copytree(cli_env["router"], router)
    queries = tmp_path / "q.csv"
    shutil.copy(cli_env["queries"], queries)
    before = {p.name: p.read_bytes() for p in router.iterdir()}
    for out in (router / "router.json", router / "new.csv"):
        assert main(["predict", str(router), str(queries), "--out", str(out), "--quiet"]) == 2
        assert "lies inside the irt-bayes router" in _one_line_error(capsys)
    assert main(["predict", str(router), str(queries), "--out", str(queries), "--quiet"]) == 2
    assert "is also an input" in _one_line_error(capsys)
    assert queries.read_bytes() == cli_env["queries"].read_bytes()
    assert {p.name: p.read_bytes() for p in router.iterdir()} == before


def test_probe_data_sharing_no_query_is_refused(
    tmp_path: Path, cli_env: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.csv"
    pd.DataFrame(
        {"query_id": ["x1", "x2"], "query": ["a", "b"], "llm": ["m", "m"], "score": [1, 0]}
    ).to_csv(other, index=False)
    out = tmp_path / "p.csv"
    args = ["probe", str(cli_env["router"]), "--n", "2", "--data", str(other), "--out", str(out)]
    assert main(args) == 2
    assert "none of the 2 probes" in _one_line_error(capsys)
    assert not out.exists()
