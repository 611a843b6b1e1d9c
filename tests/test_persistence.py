"""Saving and loading routers: exact round trips, atomic saves, one-line file errors."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from irt_bayes import IrtBayesError, IRTRouter, RouterFileError, persistence, simulate_pool
from irt_bayes.errors import OutputError
from irt_bayes.inference import ConvergenceWarning


def _load(path, embed_cache, **kw) -> IRTRouter:
    return IRTRouter.load(path, progress=False, cache_dir=embed_cache, **kw)


def _query_variants(q: pd.DataFrame) -> list[tuple[pd.DataFrame, dict]]:
    return [
        (q, {}),
        (q, {"warmup": "irt-router"}),
        (q, {"use_labels": True}),
        (q.drop(columns="dataset"), {}),  # datasets from the classifier, drawn per draw
        (q.assign(dataset="never-seen"), {"use_labels": True}),  # a new dataset per draw
    ]


@pytest.fixture(scope="module")
def saved_dir(advi_router, tmp_path_factory):
    """The default: a compact router (float32 draws, no per-query deterministics)."""
    return advi_router.save(tmp_path_factory.mktemp("saved") / "router")


@pytest.fixture(scope="module")
def full_dir(advi_router, tmp_path_factory):
    return advi_router.save(tmp_path_factory.mktemp("full") / "router", full_posterior=True)


@pytest.fixture(scope="module")
def small_router(encoder) -> IRTRouter:
    """A quick Rasch router fitted with an encoder *object* (not a model name)."""
    pool = simulate_pool(n_queries=30, n_llms=3, seed=8)
    router = IRTRouter("rasch", encoder=encoder, progress=False, max_iter=500, draws=100, holdout=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return router.fit(pool.responses)


@pytest.fixture
def copy_of_saved(saved_dir, tmp_path):
    return shutil.copytree(saved_dir, tmp_path / "router")


# --------------------------------------------------------------------- round trips
def test_saved_layout(saved_dir):
    assert sorted(p.name for p in saved_dir.iterdir()) == [
        ".irt-bayes-output",  # the marker: what wrote this folder
        "arrays.npz",
        "posterior.nc",
        "router.json",
    ]
    meta = json.loads((saved_dir / "router.json").read_text())
    assert meta["format_version"] == persistence.FORMAT_VERSION
    assert meta["spec"]["name"] == "2pl"


def test_full_posterior_round_trip_identical_predictions(
    advi_router, full_dir, embed_cache, new_queries
):
    loaded = _load(full_dir, embed_cache)
    q = new_queries.head(25)
    for frame, kw in _query_variants(q):
        a = advi_router.predict_proba(frame, **kw)
        b = loaded.predict_proba(frame, **kw)
        assert a.dims == b.dims
        assert np.array_equal(a.to_numpy(), b.to_numpy()), kw
        assert list(a["llm"].to_numpy()) == list(b["llm"].to_numpy())
        assert list(a["query"].to_numpy()) == list(b["query"].to_numpy())
    pd.testing.assert_frame_equal(advi_router.predict(q), loaded.predict(q), check_exact=True)


def test_full_posterior_round_trip_identical_state(advi_router, full_dir, embed_cache):
    loaded = _load(full_dir, embed_cache)
    pd.testing.assert_frame_equal(advi_router.abilities(), loaded.abilities(), check_exact=True)
    assert loaded.spec_ == advi_router.spec_
    assert loaded.llms_ == advi_router.llms_
    pd.testing.assert_series_equal(loaded.prices_, advi_router.prices_, check_names=False)
    assert loaded.datasets_ == advi_router.datasets_
    assert loaded.likelihood_ == advi_router.likelihood_
    assert loaded.encoder_id_ == advi_router.encoder_id_
    assert loaded.tau_ == advi_router.tau_ and loaded.tau_losses_ == advi_router.tau_losses_
    assert loaded.structure_ == advi_router.structure_
    assert loaded.domain_.names == advi_router.domain_.names
    np.testing.assert_array_equal(loaded.domain_.coef, advi_router.domain_.coef)
    assert loaded.residuals == advi_router.residuals
    assert np.array_equal(loaded.train_embeddings_, advi_router.train_embeddings_)
    assert np.array_equal(loaded.train_dataset_idx_, advi_router.train_dataset_idx_)
    assert list(loaded.train_queries_["query_id"]) == list(advi_router.train_queries_["query_id"])
    np.testing.assert_array_equal(
        loaded.log_likelihood().to_numpy(), advi_router.log_likelihood().to_numpy()
    )
    d0, d1 = advi_router.diagnostics_, loaded.diagnostics_
    assert (d1.method, d1.iterations, d1.converged) == (d0.method, d0.iterations, d0.converged)
    assert "unfitted" not in repr(loaded) and repr(loaded) == repr(advi_router)


def test_compact_router_predicts_what_the_fitted_one_does(
    advi_router, saved_dir, full_dir, embed_cache, new_queries
):
    """ADVI's 1,000 draws are all kept, so only float32 rounding separates the two."""
    post = xr.open_dataset(saved_dir / "posterior.nc", group="posterior", engine="h5netcdf")
    assert {"difficulty", "discrimination"}.isdisjoint(post.data_vars)
    assert all(v.dtype == np.float32 for v in post.data_vars.values() if v.dtype.kind == "f")
    post.close()
    assert (saved_dir / "posterior.nc").stat().st_size < (full_dir / "posterior.nc").stat().st_size
    meta = json.loads((saved_dir / "router.json").read_text())
    assert meta["posterior"] == {"compact": True, "draws": 1000, "fitted_draws": 1000}
    loaded = _load(saved_dir, embed_cache)
    for frame, kw in _query_variants(new_queries.head(25)):
        a = advi_router.predict_proba(frame, **kw).to_numpy()
        np.testing.assert_allclose(loaded.predict_proba(frame, **kw).to_numpy(), a, atol=1e-5)
    pd.testing.assert_frame_equal(
        advi_router.abilities(), loaded.abilities(), check_exact=False, atol=1e-5
    )


def test_reports_of_a_compact_router_recompute_the_item_parameters(
    advi_router, saved_dir, embed_cache
):
    """difficulty / discrimination come from the components, not from stored draws."""
    from irt_bayes.report import query_table

    loaded = _load(saved_dir, embed_cache)
    a, b = query_table(advi_router), query_table(loaded)
    post = advi_router.idata_.posterior
    np.testing.assert_allclose(
        a["difficulty"].to_numpy(), post["difficulty"].mean(("chain", "draw")), atol=1e-9
    )
    for col in ("difficulty", "difficulty_sd", "discrimination", "p_average"):
        np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), atol=1e-4)


def test_compact_posterior_thins_within_the_monte_carlo_bound(nuts_router):
    full = nuts_router.idata_
    small = persistence.compact_posterior(full, {}, max_draws=200)
    n_chain, n_draw = full.posterior.sizes["chain"], full.posterior.sizes["draw"]
    assert small.posterior.sizes["chain"] == n_chain
    assert small.posterior.sizes["draw"] == -(-n_draw // math.ceil(n_chain * n_draw / 200))
    theta, kept = full.posterior["theta"], small.posterior["theta"].astype(float)
    m, n = kept.sizes["chain"] * kept.sizes["draw"], n_chain * n_draw
    bound = 4.5 * theta.std(("chain", "draw")) * math.sqrt(1 / m - 1 / n)
    diff = abs(kept.mean(("chain", "draw")) - theta.mean(("chain", "draw")))
    assert bool((diff <= bound).all()), (diff / bound).max()
    assert "warmup_posterior" not in small.groups()
    with pytest.raises(ValueError, match="max_draws"):
        persistence.compact_posterior(full, {}, max_draws=0)


@pytest.mark.slow
def test_nuts_round_trip_keeps_predictions_and_diagnostics(nuts_router, tmp_path, embed_cache):
    path = nuts_router.save(tmp_path / "nuts", full_posterior=True)
    loaded = _load(path, embed_cache)
    q = nuts_router.train_queries_.head(10)
    assert np.array_equal(
        nuts_router.predict_proba(q).to_numpy(), loaded.predict_proba(q).to_numpy()
    )
    pd.testing.assert_frame_equal(nuts_router.abilities(), loaded.abilities(), check_exact=True)
    d0, d1 = nuts_router.diagnostics_, loaded.diagnostics_
    assert d1.method == "nuts"
    assert d1.max_rhat == d0.max_rhat
    assert d1.min_ess_bulk == d0.min_ess_bulk and d1.min_ess_tail == d0.min_ess_tail
    assert d1.divergences == d0.divergences
    assert d1.ok == d0.ok and d1.problems == d0.problems


@pytest.mark.slow
def test_compact_nuts_router_keeps_the_fits_diagnostics(nuts_router, tmp_path, embed_cache):
    """R-hat and ESS are those of every fitted draw, not of the thinned ones."""
    path = persistence.save_router(nuts_router, tmp_path / "nuts", max_draws=200)
    loaded = _load(path, embed_cache)
    d0, d1 = nuts_router.diagnostics_, loaded.diagnostics_
    assert loaded.idata_.posterior.sizes["draw"] * loaded.idata_.posterior.sizes["chain"] == 200
    assert (d1.max_rhat, d1.min_ess_bulk, d1.divergences) == (
        d0.max_rhat,
        d0.min_ess_bulk,
        d0.divergences,
    )
    pd.testing.assert_frame_equal(d1.variables, d0.variables, check_dtype=False)
    assert d1.ok == d0.ok and d1.problems == d0.problems and d1.verdict() == d0.verdict()
    q = nuts_router.train_queries_.head(10)
    p0, p1 = nuts_router.predict_proba(q), loaded.predict_proba(q)
    se = p0.std("draw") * math.sqrt(1 / 200)
    assert bool((abs(p1.mean("draw") - p0.mean("draw")) <= 4.5 * se).all())


def test_router_fitted_with_encoder_object_encodes_new_text_after_load(small_router, tmp_path):
    path = small_router.save(tmp_path / "small")
    # a fresh cache: the text below must be embedded by the model, not found in a cache
    loaded = IRTRouter.load(path, progress=False, cache_dir=tmp_path / "fresh-cache")
    text = "Which spice gives paella its yellow colour?"
    a = small_router.predict_proba([text])
    b = loaded.predict_proba([text])
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)


def test_loaded_router_does_not_need_its_files(advi_router, copy_of_saved, embed_cache):
    loaded = _load(copy_of_saved, embed_cache)
    q = advi_router.train_queries_.head(5)
    expected = loaded.predict_proba(q).to_numpy()  # a compact router saves again exactly
    # saving over the directory it was loaded from replaces the files under it
    loaded.save(copy_of_saved)
    assert np.array_equal(loaded.predict_proba(q).to_numpy(), expected)
    assert np.array_equal(_load(copy_of_saved, embed_cache).predict_proba(q).to_numpy(), expected)


# ----------------------------------------------------------------------- atomicity
def test_save_over_existing_directory_replaces_it(advi_router, small_router, tmp_path):
    target = tmp_path / "r"
    advi_router.save(target)
    assert small_router.save(target) == target
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no .tmp / .old left behind
    assert sorted(p.name for p in target.iterdir()) == [
        ".irt-bayes-output",
        "arrays.npz",
        "posterior.nc",
        "router.json",
    ]
    loaded = IRTRouter.load(target, progress=False, cache_dir=False)
    assert loaded.llms_ == small_router.llms_ != advi_router.llms_
    assert loaded.spec_.name == "rasch"


def test_failed_save_leaves_no_half_written_router(small_router, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(persistence.np, "savez_compressed", boom)
    target = tmp_path / "r"
    with pytest.raises(OSError, match="No space left"):
        small_router.save(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_router(small_router, advi_router, tmp_path, monkeypatch):
    target = advi_router.save(tmp_path / "r")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(persistence.np, "savez_compressed", boom)
    with pytest.raises(KeyboardInterrupt):
        small_router.save(target)
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_save_onto_a_file_is_refused(small_router, tmp_path):
    f = tmp_path / "r"
    f.write_text("not a router")
    with pytest.raises(OutputError, match="not a folder"):
        small_router.save(f)
    assert f.read_text() == "not a router"


# --------------------------------------------------------------- bad saved routers
def _edit_json(path, change):
    meta = json.loads((path / "router.json").read_text())
    change(meta)
    (path / "router.json").write_text(json.dumps(meta))


def _edit_arrays(path, change):
    with np.load(path / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez_compressed(path / "arrays.npz", **arrays)


def _truncate(path, name):
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])


def _scramble_middle(path, name):
    data = bytearray((path / name).read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    (path / name).write_bytes(bytes(data))


GARBAGE = b"\x89\xff\x00 this is not what you think it is \x00" * 20

BAD_CASES = {
    "missing router.json": ("router.json", lambda p: (p / "router.json").unlink()),
    "missing posterior.nc": ("posterior.nc", lambda p: (p / "posterior.nc").unlink()),
    "missing arrays.npz": ("arrays.npz", lambda p: (p / "arrays.npz").unlink()),
    "router.json garbage bytes": (
        "router.json",
        lambda p: (p / "router.json").write_bytes(GARBAGE),
    ),
    "router.json bad json": ("router.json", lambda p: (p / "router.json").write_text('{"a": ')),
    "router.json not an object": (
        "router.json",
        lambda p: (p / "router.json").write_text("[1, 2, 3]"),
    ),
    "format_version 999": (
        "router.json",
        lambda p: _edit_json(p, lambda m: m.update(format_version=999)),
    ),
    "no format_version": (
        "router.json",
        lambda p: _edit_json(p, lambda m: m.pop("format_version")),
    ),
    "spec unknown key": (
        "router.json",
        lambda p: _edit_json(p, lambda m: m["spec"].update(bogus=1)),
    ),
    "spec bad value": (
        "router.json",
        lambda p: _edit_json(p, lambda m: m["spec"].update(skills=0)),
    ),
    "no prices": ("router.json", lambda p: _edit_json(p, lambda m: m.pop("prices"))),
    "no encoder_id": ("router.json", lambda p: _edit_json(p, lambda m: m.pop("encoder_id"))),
    "prices of wrong length": (
        "router.json",
        lambda p: _edit_json(p, lambda m: m["prices"].pop()),
    ),
    "posterior.nc truncated": ("posterior.nc", lambda p: _truncate(p, "posterior.nc")),
    "posterior.nc garbage": (
        "posterior.nc",
        lambda p: (p / "posterior.nc").write_bytes(GARBAGE),
    ),
    "arrays.npz truncated": ("arrays.npz", lambda p: _truncate(p, "arrays.npz")),
    "arrays.npz garbage": ("arrays.npz", lambda p: (p / "arrays.npz").write_bytes(GARBAGE)),
    "arrays.npz scrambled": ("arrays.npz", lambda p: _scramble_middle(p, "arrays.npz")),
    "arrays.npz missing array": (
        "arrays.npz",
        lambda p: _edit_arrays(p, lambda a: a.pop("features_scale")),
    ),
    "LLM order differs": (
        "posterior.nc",
        lambda p: _edit_json(p, lambda m: m.update(llms=m["llms"][::-1])),
    ),
    "LLM renamed": (
        "posterior.nc",
        lambda p: _edit_json(p, lambda m: m["llms"].__setitem__(0, "impostor-9b")),
    ),
    "training embeddings: rows": (
        "arrays.npz",
        lambda p: _edit_arrays(p, lambda a: a.update(train_embeddings=a["train_embeddings"][1:])),
    ),
    "diagnostic tables of unequal length": (
        "router.json",
        lambda p: _edit_json(
            p,
            lambda m: m.update(
                diagnostic_tables={
                    "abilities": {"name": ["a", "b"], "r_hat": [1.0]},
                    "variables": {"name": []},
                }
            ),
        ),
    ),
    "diagnostic table of text": (
        "router.json",
        lambda p: _edit_json(
            p,
            lambda m: m.update(
                diagnostic_tables={
                    "abilities": {"name": ["a"], "r_hat": ["x"]},
                    "variables": {"name": []},
                }
            ),
        ),
    ),
    "posterior draws negative": (
        "router.json",
        lambda p: _edit_json(p, lambda m: m.update(posterior={"compact": True, "draws": -1})),
    ),
    "training embeddings: dim": (
        "arrays.npz",
        lambda p: _edit_json(p, lambda m: m.update(embedding_dim=128)),
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_saved_router_raises_one_line_naming_the_file(case, copy_of_saved, embed_cache):
    fname, damage = BAD_CASES[case]
    damage(copy_of_saved)
    with pytest.raises(RouterFileError) as err:
        _load(copy_of_saved, embed_cache)
    msg = str(err.value)
    assert msg and "\n" not in msg, repr(msg)
    assert str(copy_of_saved / fname) in msg, msg
    assert isinstance(err.value, IrtBayesError) and isinstance(err.value, OSError)


def test_missing_directory_raises_one_line(tmp_path, embed_cache):
    path = tmp_path / "no-router-here"
    with pytest.raises(RouterFileError) as err:
        _load(path, embed_cache)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "router.json" in msg


def test_format_version_message_says_what_to_do(copy_of_saved, embed_cache):
    _edit_json(copy_of_saved, lambda m: m.update(format_version=999))
    with pytest.raises(RouterFileError, match=r"format version 999 .*refit"):
        _load(copy_of_saved, embed_cache)


def test_mismatched_encoder_object_is_refused(copy_of_saved):
    class Other:
        encoder_id = "some-other-encoder"

    with pytest.raises(RouterFileError, match="some-other-encoder"):
        IRTRouter.load(copy_of_saved, encoder=Other(), progress=False)


def test_load_rebuilds_the_encoder_with_its_truncation(copy_of_saved, embed_cache):
    loaded = _load(copy_of_saved, embed_cache)
    assert loaded._get_encoder().encoder_id == "all-MiniLM-L6-v2:tail"
    _edit_json(copy_of_saved, lambda m: m.update(encoder_id="all-MiniLM-L6-v2"))
    head = _load(copy_of_saved, embed_cache)
    assert head._get_encoder().encoder_id == "all-MiniLM-L6-v2"


def test_load_refuses_an_encoder_that_gives_another_id(copy_of_saved, embed_cache):
    _edit_json(copy_of_saved, lambda m: m.update(encoder_id="other-model:tail"))
    with pytest.raises(RouterFileError, match="other-model") as err:
        _load(copy_of_saved, embed_cache)
    assert "\n" not in str(err.value)


@pytest.mark.slow  # fits the auto candidates (about 45 s)
def test_check_and_model_choice_survive_a_round_trip(auto_router, tmp_path, embed_cache):
    loaded = _load(auto_router.save(tmp_path / "auto"), embed_cache)
    assert loaded.selection_note_ == auto_router.selection_note_
    pd.testing.assert_frame_equal(loaded.selection_, auto_router.selection_, check_dtype=False)
    assert loaded.check_.verdict() == auto_router.check_.verdict()
    pd.testing.assert_frame_equal(loaded.check_.table, auto_router.check_.table)
    meta = json.loads((tmp_path / "auto" / "router.json").read_text())
    json.dumps(meta, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_a_posterior_without_a_variable_the_terms_need_is_one_line(copy_of_saved, embed_cache):
    import arviz as az

    idata = az.from_netcdf(copy_of_saved / "posterior.nc", engine="h5netcdf")
    idata.load()
    idata.posterior = idata.posterior.drop_vars("delta_b")
    (copy_of_saved / "posterior.nc").unlink()
    idata.to_netcdf(str(copy_of_saved / "posterior.nc"), engine="h5netcdf")
    with pytest.raises(RouterFileError) as err:
        _load(copy_of_saved, embed_cache)
    msg = str(err.value)
    assert "\n" not in msg and "'delta_b'" in msg and "posterior.nc" in msg
