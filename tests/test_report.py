"""Posterior reports: numbers match the posterior, figures are written, the CLI works."""

from __future__ import annotations

import base64
import re
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure
from PIL import Image
from scipy.special import expit

from irt_bayes import IRTRouter, ResponseData, simulate_pool
from irt_bayes import report as R
from irt_bayes.cli import main
from irt_bayes.errors import IrtBayesError
from irt_bayes.evaluation import calibration
from irt_bayes.inference import ConvergenceWarning
from irt_bayes.predict import sample_index
from irt_bayes.report import document
from irt_bayes.report.posterior import _observations, _p_observed
from irt_bayes.report.texts import _display_texts
from irt_bayes.spec import ModelSpec, load_spec
from irt_bayes.stats import calibration_bins, expected_calibration_error

pytestmark = pytest.mark.slow

FIGURES = (
    "abilities.png",
    "dataset_abilities.png",
    "beat_probability.png",
    "accuracy.png",
    "calibration.png",
    "query_parameters.png",
    "icc.png",
    "convergence.png",
)


def _fit(model: str | ModelSpec, responses: pd.DataFrame, cache: Path, **kw) -> IRTRouter:
    router = IRTRouter(
        model, progress=False, cache_dir=cache, max_iter=3000, seed=1, **{"holdout": 0.0, **kw}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return router.fit(responses)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("report")
    mp = pytest.MonkeyPatch()
    mp.setenv("IRT_BAYES_CACHE_DIR", str(root / "cache"))
    pool = simulate_pool(n_queries=150, n_llms=5, seed=7)
    other = simulate_pool(n_queries=150, n_llms=5, seed=8)
    cache = root / "cache"
    routers = {
        "2pl": _fit("2pl", pool.responses, cache),
        "rasch": _fit("rasch", pool.responses, cache),
        "mirt-2": _fit("mirt-2", pool.responses, cache),
        "other": _fit("rasch", other.responses, cache),
    }
    paths = {name: r.save(root / f"router-{name}") for name, r in routers.items()}
    train = root / "train.csv"
    pool.responses.to_csv(train, index=False)
    yield {"root": root, "pool": pool, "routers": routers, "paths": paths, "train": train}
    mp.undo()


@pytest.fixture(scope="module")
def r2pl(env) -> IRTRouter:
    return env["routers"]["2pl"]


@pytest.fixture(scope="module")
def report_dir(env) -> Path:
    """The report of the saved 2PL, built with the training data for the texts."""
    return R.build_report(env["paths"]["2pl"], env["root"] / "report", data=env["train"])


def _direct_p(router: IRTRouter) -> np.ndarray:
    """P(correct) (sample, query, llm) straight from the posterior, no report code."""
    post = router.idata_.posterior.stack(sample=("chain", "draw"))
    theta = post["theta"].transpose("sample", "llm", "skill").to_numpy()
    b = post["difficulty"].transpose("sample", "query").to_numpy()
    ability = theta[:, None, :, :]  # (sample, query, llm, skill)
    if "gamma" in post:  # LLM x dataset ability offsets, added to every skill
        g = post["gamma"].transpose("sample", "dataset", "llm").to_numpy()
        d = router.idata_.constant_data["dataset_idx"].to_numpy()
        ability = ability + g[:, d, :, None]
    if "discrimination" in post:
        a = post["discrimination"].transpose("sample", "query", "skill").to_numpy()
        eta = (a[:, :, None, :] * ability).sum(-1) - b[:, :, None]
    else:
        eta = ability[..., 0] - b[:, :, None]
    if "llm_slopes" in post:  # x_i . w_j, on the router's own training features
        w = post["llm_slopes"].transpose("sample", "feature", "llm").to_numpy()
        x = router.features_.transform(router.train_embeddings_)
        eta = eta + np.einsum("qf,sfl->sql", x, w)
    return expit(eta)


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def _px(fig: Figure) -> tuple[int, int]:
    w, h = fig.get_size_inches() * R.FIGURE_DPI
    return round(w), round(h)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("irt-bayes: error: "), err
    assert "\n" not in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------ numbers
def test_ability_table_matches_posterior(r2pl: IRTRouter) -> None:
    tab = R.ability_table(r2pl).set_index(["llm", "skill"])
    theta = r2pl.idata_.posterior["theta"]
    mean = theta.mean(("chain", "draw")).to_series()
    hdi = az.hdi(r2pl.idata_, var_names=["theta"], hdi_prob=0.94)["theta"]
    np.testing.assert_allclose(tab["mean"], mean.reindex(tab.index), rtol=1e-12)
    np.testing.assert_allclose(
        tab["hdi_low"], hdi.sel(hdi="lower").to_series().reindex(tab.index), rtol=1e-12
    )
    np.testing.assert_allclose(
        tab["hdi_high"], hdi.sel(hdi="higher").to_series().reindex(tab.index), rtol=1e-12
    )
    assert (tab["hdi_low"] < tab["mean"]).all() and (tab["mean"] < tab["hdi_high"]).all()
    assert tab["mean"].is_monotonic_decreasing  # best first
    prices = r2pl.prices_.reindex(tab.index.get_level_values("llm"))
    np.testing.assert_allclose(tab["price"], prices.to_numpy())


def test_dataset_abilities_match_posterior(r2pl: IRTRouter) -> None:
    tab = R.dataset_ability_table(r2pl)
    post = r2pl.idata_.posterior.stack(sample=("chain", "draw"))
    assert "gamma" in post  # the default spec has LLM x dataset offsets
    ds = r2pl.train_queries_["dataset"].to_numpy()
    theta = post["theta"].transpose("sample", "llm", "skill").to_numpy()
    a = post["discrimination"].transpose("sample", "query", "skill").to_numpy()
    for d in ("coding", "law"):
        g = post["gamma"].sel(dataset=d).transpose("sample", "llm").to_numpy()
        a_d = a[:, ds == d, :].mean(axis=1)[:, None, :]  # (S, 1, K)
        direct = (a_d * (theta + g[:, :, None])).sum(-1)  # (S, L)
        rows = tab[tab["dataset"] == d].set_index("llm").loc[r2pl.llms_]
        np.testing.assert_allclose(rows["mean"], direct.mean(axis=0), rtol=1e-10)
        offset = (a_d.sum(-1) * g).mean(axis=0)
        np.testing.assert_allclose(rows["offset"], offset, rtol=1e-10)
        hdi = az.hdi(direct[None], hdi_prob=0.94)
        np.testing.assert_allclose(rows[["hdi_low", "hdi_high"]], hdi, rtol=1e-10)
    assert len(tab) == 6 * 5


def test_beat_probability_is_antisymmetric_and_matches_direct(r2pl: IRTRouter) -> None:
    p = R.beat_probability(r2pl)
    vals = p.to_numpy()
    assert np.isnan(np.diag(vals)).all()
    off = ~np.eye(len(vals), dtype=bool)
    np.testing.assert_allclose((vals + vals.T)[off], 1.0, atol=1e-12)
    assert ((vals[off] >= 0) & (vals[off] <= 1)).all()

    acc = _direct_p(r2pl).mean(axis=1)  # (sample, llm) in router.llms_ order
    order = [r2pl.llms_.index(m) for m in p["llm"].to_numpy()]
    x = acc[:, order]
    direct = (x[:, :, None] > x[:, None, :]).mean(0) + 0.5 * (x[:, :, None] == x[:, None, :]).mean(
        0
    )
    np.testing.assert_allclose(vals[off], direct[off], atol=1e-12)
    # ordered from best to worst
    assert np.all(np.diff(x.mean(axis=0)) <= 0)


def test_expected_accuracy_by_dataset_averages_to_overall(r2pl: IRTRouter) -> None:
    overall = R.expected_accuracy(r2pl)
    by = R.expected_accuracy(r2pl, by_dataset=True)
    counts = r2pl.train_queries_["dataset"].value_counts().reindex(by["dataset"].to_numpy())
    w = counts.to_numpy() / counts.sum()
    recombined = (by * w[None, :, None]).sum("dataset")
    np.testing.assert_allclose(recombined.to_numpy(), overall.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(overall.to_numpy(), _direct_p(r2pl).mean(axis=1), rtol=1e-10)


def test_report_probabilities_include_llm_specific_slopes(env) -> None:
    spec = load_spec("2pl").replace(llm_slopes=True)
    router = _fit(spec, env["pool"].responses, env["root"] / "cache")
    np.testing.assert_allclose(
        R.expected_accuracy(router).to_numpy(), _direct_p(router).mean(axis=1), rtol=1e-10
    )
    # P(correct) of each training response, as the report has it, is the likelihood's
    y = router.idata_.observed_data["y"].to_numpy()
    ll = router.log_likelihood().stack(sample=("chain", "draw")).transpose("sample", "obs")
    p_ll = np.where(y == 1, np.exp(ll.to_numpy()), -np.expm1(ll.to_numpy()))
    p_report = np.concatenate(list(_p_observed(router, np.arange(p_ll.shape[0]))))
    np.testing.assert_allclose(p_report, p_ll, rtol=1e-8, atol=1e-12)


def test_accuracy_check_matches_data_and_posterior(env, r2pl: IRTRouter) -> None:
    chk = R.accuracy_check(r2pl)
    resp = env["pool"].responses
    allrows = chk[chk["dataset"] == "all"].set_index("llm")
    obs = resp.groupby("llm")["score"].agg(["mean", "size"])
    np.testing.assert_allclose(allrows["observed"], obs["mean"].reindex(allrows.index))
    assert (allrows["n"] == obs["size"].reindex(allrows.index)).all()
    per_ds = chk[chk["dataset"] != "all"].set_index(["dataset", "llm"])
    obs_ds = resp.groupby(["dataset", "llm"])["score"].mean()
    np.testing.assert_allclose(per_ds["observed"], obs_ds.reindex(per_ds.index))

    # expected = posterior mean of the LLM's mean P(correct) over the pairs it answered
    p = _direct_p(r2pl)
    qi = r2pl.idata_.constant_data["query_idx"].to_numpy()
    li = r2pl.idata_.constant_data["llm_idx"].to_numpy()
    j = 0
    direct = p[:, qi[li == j], j].mean(axis=1).mean()
    assert allrows.loc[r2pl.llms_[j], "expected"] == pytest.approx(direct, rel=1e-10)

    assert (chk["hdi_low"] <= chk["expected"]).all() and (chk["expected"] <= chk["hdi_high"]).all()
    assert (chk["pred_low"] <= chk["hdi_low"] + 1e-9).all()
    assert (chk["pred_high"] >= chk["hdi_high"] - 1e-9).all()
    # data simulated from the model: nearly all observed accuracies are plausible
    assert chk["inside"].mean() >= 0.8


def test_calibration_table_counts_every_response(r2pl: IRTRouter) -> None:
    cal = R.calibration_table(r2pl, n_bins=5)
    assert cal["n"].sum() == r2pl.idata_.observed_data["y"].size
    assert ((cal["predicted"] >= cal["bin_low"]) & (cal["predicted"] <= cal["bin_high"])).all()
    assert ((cal["ci_low"] <= cal["observed"]) & (cal["observed"] <= cal["ci_high"])).all()
    assert 0 <= cal.attrs["ece"] < 0.2


def test_report_ece_is_the_evaluation_ece(r2pl: IRTRouter) -> None:
    # the report's in-sample ECE is the number `irt-bayes evaluate` gives on the same pairs
    cal = R.calibration_table(r2pl)
    idx = sample_index(r2pl.idata_, 500)
    p = np.concatenate(list(_p_observed(r2pl, idx))).mean(axis=0)
    score = _observations(r2pl)["score"]
    assert cal.attrs["ece"] == pytest.approx(calibration(p, score)["ece"], rel=1e-12)
    assert cal.attrs["ece"] == pytest.approx(expected_calibration_error(p, score), rel=1e-12)
    bins = calibration_bins(p, score)
    np.testing.assert_allclose(cal["observed"], bins["observed"], rtol=1e-12)
    np.testing.assert_array_equal(cal["n"], bins["n"])


def test_query_table_matches_posterior(env, r2pl: IRTRouter) -> None:
    q = R.query_table(r2pl)
    b = r2pl.idata_.posterior["difficulty"].mean(("chain", "draw")).to_series()
    np.testing.assert_allclose(q["difficulty"], b.reindex(q.index))
    a = r2pl.idata_.posterior["discrimination"].isel(skill=0).mean(("chain", "draw"))
    np.testing.assert_allclose(q["discrimination"], a.to_series().reindex(q.index))
    texts = env["pool"].queries.set_index("query_id")["query"]
    assert (q["text"] == texts.reindex(q.index)).all()
    hardest, easiest = R.extreme_queries(q, 3)
    assert list(hardest.index) == list(q["difficulty"].nlargest(3).index)
    assert list(easiest.index) == list(q["difficulty"].nsmallest(3).index)


def test_loaded_router_needs_data_for_texts(env) -> None:
    loaded = IRTRouter.load(env["paths"]["2pl"])
    assert (R.query_table(loaded)["text"] == "").all()
    q = R.query_table(loaded, data=env["train"])
    texts = env["pool"].queries.set_index("query_id")["query"]
    assert (q["text"] == texts.reindex(q.index)).all()
    other = env["root"] / "other.csv"
    simulate_pool(n_queries=30, n_llms=3, seed=99).responses.assign(
        query_id=lambda d: "x" + d["query_id"]
    ).to_csv(other, index=False)
    with pytest.raises(IrtBayesError, match="none of the router's 150 training query ids"):
        R.query_table(loaded, data=other)


def test_display_texts_cut_shared_few_shot_prefix() -> None:
    shots = "Q: 1+1?\nA: 2\n\nQ: 2+2?\nA: 4\n\nQ: what is the answer to this?\n"
    tail = "\nReply with the answer only, without any explanation.\nAnswer:"
    texts = pd.Series([shots + "Q: 3+5?" + tail, shots + "Q: capital of Peru?" + tail])
    out = _display_texts(texts, np.array(["d", "d"]))
    assert out.tolist() == ["… Q: 3+5? …", "… Q: capital of Peru? …"]
    # nothing shared: unchanged, but collapsed to one line and shortened
    solo = _display_texts(pd.Series(["a\nb", "c " * 300]), np.array(["x", "y"]))
    assert solo.iloc[0] == "a b" and len(solo.iloc[1]) <= 240


def test_skill_loadings(env) -> None:
    mirt = env["routers"]["mirt-2"]
    loads = R.skill_loadings(mirt)
    shares = loads[["share_s0", "share_s1"]].to_numpy()
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    a = mirt.idata_.posterior["discrimination"].mean(("chain", "draw")).to_pandas()
    ds = mirt.train_queries_.set_index("query_id")["dataset"].reindex(a.index)
    by_ds = a.groupby(ds.to_numpy()).mean().loc[loads.index]
    np.testing.assert_allclose(loads[["s0", "s1"]], by_ds)
    top = R.skill_top_queries(mirt, 3)
    assert list(top["skill"]) == ["s0"] * 3 + ["s1"] * 3
    assert top.groupby("skill")["share"].apply(lambda s: s.is_monotonic_decreasing).all()
    assert R.skill_loadings(env["routers"]["rasch"]).empty


def test_convergence_table_and_verdict(r2pl: IRTRouter) -> None:
    conv = R.convergence_table(r2pl)
    assert conv.loc["theta", "size"] == 5
    assert conv.loc["difficulty", "size"] == 150
    assert conv["max_r_hat"].isna().all()  # one ADVI chain
    assert (conv["min_ess_bulk"] > 0).all()
    assert R.convergence_verdict(r2pl) == r2pl.diagnostics_.verdict()


# ------------------------------------------------------------------------------ figures
def test_heat_maps_label_every_cell_but_the_nan_diagonal() -> None:
    names = ["a", "b", "c"]
    vals = np.array([[np.nan, 0.9, 0.75], [0.1, np.nan, 0.5], [0.25, 0.5, np.nan]])
    p = xr.DataArray(vals, dims=("llm", "opponent"), coords={"llm": names, "opponent": names})
    texts = R.plot_beat_probability(p).axes[0].texts
    got = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in texts}
    assert set(got) == {(i, j) for i in range(3) for j in range(3) if i != j}
    assert got[0, 1].get_text() == "0.90" and got[0, 1].get_color() == "white"
    assert got[0, 2].get_text() == "0.75" and got[0, 2].get_color() == "black"
    assert got[1, 0].get_color() == "white"  # far from 0.5 either way


@pytest.mark.parametrize(
    "plot",
    [
        R.plot_abilities,
        R.plot_dataset_abilities,
        R.plot_beat_probability,
        R.plot_accuracy,
        R.plot_calibration,
        R.plot_query_parameters,
        R.plot_icc,
        R.plot_convergence,
    ],
)
def test_plot_functions_return_sized_figures(r2pl: IRTRouter, plot) -> None:
    fig = plot(r2pl)
    assert isinstance(fig, Figure)
    w, h = _px(fig)
    assert 500 <= w <= 2000 and 250 <= h <= 2000
    assert [ax for ax in fig.axes if ax.get_visible()]


def test_report_writes_every_file(env, report_dir: Path) -> None:
    loaded = IRTRouter.load(env["paths"]["2pl"])
    expected = {
        "abilities.png": R.plot_abilities(loaded),
        "dataset_abilities.png": R.plot_dataset_abilities(loaded),
        "beat_probability.png": R.plot_beat_probability(loaded),
        "accuracy.png": R.plot_accuracy(loaded),
        "calibration.png": R.plot_calibration(loaded),
        "query_parameters.png": R.plot_query_parameters(loaded),
        "icc.png": R.plot_icc(loaded),
        "convergence.png": R.plot_convergence(loaded),
    }
    for name in FIGURES:
        path = report_dir / name
        assert path.is_file() and path.stat().st_size > 5000, name
        assert _png_size(path) == _px(expected[name]), name
    for name in ("report.html", "report.md", "abilities.csv", "accuracy.csv", "queries.csv"):
        assert (report_dir / name).stat().st_size > 0
    assert not (report_dir / "skills.png").exists()  # K = 1
    md = (report_dir / "report.md").read_text()
    assert set(re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)) == set(FIGURES)  # links the PNGs
    assert not list(report_dir.parent.glob(".report.*"))  # no temp dirs left


def test_report_html_embeds_every_figure(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    # one file a person can send: no link to a local file, nothing fetched from the web
    assert not re.findall(r'(?:src|href)="(?!data:)[^"]*"', html)
    assert not re.findall(r'<img[^>]* src="[^"]*\.png"', html)
    assert "http://" not in html and "https://" not in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == len(FIGURES)
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in srcs)
    pngs = [base64.b64decode(s[len(prefix) :], validate=True) for s in srcs]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs)
    # every figure, byte for byte the PNG written beside the report
    assert sorted(pngs) == sorted((report_dir / name).read_bytes() for name in FIGURES)


def test_report_numbers_match_posterior(env, report_dir: Path) -> None:
    # the report is of the saved router, whose compact posterior is float32
    router = IRTRouter.load(env["paths"]["2pl"], progress=False)
    md = (report_dir / "report.md").read_text()
    for row in R.ability_table(router).itertuples():
        line = f"| {row.llm} | {row.skill} | {row.mean:.3f} | {row.sd:.3f} | {row.hdi_low:.3f} |"
        assert line in md, line
    csv = pd.read_csv(report_dir / "abilities.csv")
    pd.testing.assert_frame_equal(csv, R.ability_table(router), check_exact=False, rtol=1e-12)
    beat = pd.read_csv(report_dir / "beat_probability.csv").set_index("llm")
    np.testing.assert_allclose(beat.to_numpy(), R.beat_probability(router).to_numpy(), atol=1e-12)
    acc = pd.read_csv(report_dir / "accuracy.csv")
    np.testing.assert_allclose(acc["expected"], R.accuracy_check(router)["expected"], rtol=1e-9)
    assert router.diagnostics_.verdict() in md
    # texts come from --data: the hardest query's text is in the report
    q = R.query_table(router, data=env["train"])
    hardest = q["difficulty"].idxmax()
    shown = q.loc[hardest, "display"]  # whitespace collapsed, shortened
    assert shown and shown[:40].replace("|", "\\|") in md


def test_report_without_texts_says_so(env) -> None:
    out = R.build_report(env["paths"]["rasch"], env["root"] / "report-rasch")
    md = (out / "report.md").read_text()
    assert "ids only" in md and "--data" in md
    assert "discrimination" in md


def test_report_of_mirt_explains_skills(env) -> None:
    out = R.build_report(env["routers"]["mirt-2"], env["root"] / "report-mirt")
    assert (out / "skills.png").stat().st_size > 5000
    assert _png_size(out / "skills.png") == _px(R.plot_skill_loadings(env["routers"]["mirt-2"]))
    assert "What the skills mean" in (out / "report.md").read_text()
    assert (out / "skill_queries.csv").is_file()


def test_report_replaces_an_old_report_but_not_other_folders(env, tmp_path: Path) -> None:
    router = env["routers"]["rasch"]
    out = tmp_path / "rep"
    R.build_report(router, out)
    (out / "stale.txt").write_text("old")
    R.build_report(router, out)
    assert not (out / "stale.txt").exists()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(IrtBayesError, match=r"did not write \(thesis.tex\).*--force"):
        R.build_report(router, precious)
    assert (precious / "thesis.tex").read_text() == "keep me"
    # missing parents are created, as for a saved router
    assert R.build_report(router, tmp_path / "no" / "such" / "dir").is_dir()


def test_failed_report_leaves_nothing(env, tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    # build_report looks its figures up in the module that defines it
    monkeypatch.setattr(document, "plot_icc", boom)
    with pytest.raises(RuntimeError):
        R.build_report(env["routers"]["rasch"], tmp_path / "rep")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- comparison
def test_compare_routers_matches_loo(env) -> None:
    p = env["paths"]
    table, fig = R.compare_routers([p["rasch"], p["2pl"], p["mirt-2"]])
    assert set(table.index) == {"rasch", "2pl", "mirt-2"}
    for col in ("rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "k_high"):
        assert col in table.columns
    assert table["elpd_diff"].min() == 0.0
    direct = env["routers"]["2pl"].loo()
    assert table.loc["2pl", "elpd_loo"] == pytest.approx(direct.elpd_loo, rel=1e-9)
    assert isinstance(fig, Figure) and fig.axes


def test_compare_names_duplicates_apart(env) -> None:
    r = env["routers"]["rasch"]
    table, _ = R.compare_routers({"a": r, "b": env["routers"]["2pl"]})
    assert set(table.index) == {"a", "b"}
    table, _ = R.compare_routers([r, r])
    assert set(table.index) == {"rasch", "rasch#2"}


def test_compare_refuses_different_data(env) -> None:
    with pytest.raises(IrtBayesError, match="fitted on different responses") as exc:
        R.compare_routers([env["routers"]["2pl"], env["routers"]["other"]])
    assert "\n" not in str(exc.value)
    with pytest.raises(IrtBayesError, match="two or more"):
        R.compare_routers([env["routers"]["2pl"]])


# ---------------------------------------------------------------------------------- CLI
def test_cli_report(env, capsys) -> None:
    out = env["root"] / "cli-report"
    assert main(["report", str(env["paths"]["2pl"]), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "report.html" in said and "--data" in said
    for name in FIGURES:
        assert (out / name).stat().st_size > 0
    assert "ids only" in (out / "report.md").read_text()
    out2 = env["root"] / "cli-report-data"
    args = ["report", str(env["paths"]["2pl"]), "--out", str(out2), "--data", str(env["train"])]
    assert main(args) == 0
    assert "ids only" not in (out2 / "report.md").read_text()


def test_cli_report_errors_are_one_line(env, capsys) -> None:
    assert main(["report", str(env["root"] / "nope"), "--out", str(env["root"] / "x")]) == 2
    assert "no saved router" in _one_line_error(capsys)
    bad = env["root"] / "bad.csv"
    bad.write_text("query_id,query,llm\nq1,hi,m\n")
    args = ["report", str(env["paths"]["2pl"]), "--out", str(env["root"] / "y"), "--data", str(bad)]
    assert main(args) == 2
    assert "score" in _one_line_error(capsys)


def test_cli_compare(env, capsys) -> None:
    p = env["paths"]
    out = env["root"] / "cmp"
    assert main(["compare", str(p["rasch"]), str(p["2pl"]), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "elpd_loo" in said and "rasch" in said and "2pl" in said
    csv = pd.read_csv(out / "compare.csv")
    assert set(csv["model"]) == {"rasch", "2pl"}
    w, h = _png_size(out / "compare.png")
    assert w >= 500 and h >= 150


def test_cli_compare_errors_are_one_line(env, capsys) -> None:
    p = env["paths"]
    assert main(["compare", str(p["2pl"]), str(p["other"])]) == 2
    assert "fitted on different responses" in _one_line_error(capsys)
    assert main(["compare", str(p["2pl"])]) == 2
    assert "two or more" in _one_line_error(capsys)


# ---------------------------------------------------------------------------------- NUTS
def test_nuts_convergence_pieces(tmp_path: Path) -> None:
    pool = simulate_pool(n_queries=60, n_llms=4, seed=3)
    data = ResponseData.from_frame(pool.responses)
    router = _fit(
        "rasch", data.responses, tmp_path / "cache", method="nuts", chains=2, draws=150, tune=150
    )
    verdict = R.convergence_verdict(router)
    assert verdict.startswith("NUTS")
    assert "R-hat" in verdict and "nan" not in verdict
    conv = R.convergence_table(router)
    assert conv["max_r_hat"].notna().all()
    fig = R.plot_convergence(router)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    # a saved (compact, thinned) NUTS router keeps the diagnostics of every fitted draw
    loaded = IRTRouter.load(router.save(tmp_path / "nuts"))
    drop_time = re.compile(r"[\d.]+ s\b")
    assert drop_time.sub("", R.convergence_verdict(loaded)) == drop_time.sub("", verdict)
