"""Saved routers are untrusted files: every corruption is one RouterFileError line.

Each test copies a saved router, damages the copy one way and loads it. Before the
file contract (irt_bayes/schema.py) these gave tracebacks at load (TypeError, zlib.error,
KeyError...) or loaded and predicted NaN; now each is a one-line error naming the file
and what in it is wrong.
"""

from __future__ import annotations

import json
import shutil
import zlib

import arviz as az
import numpy as np
import pytest

from irt_bayes import IRTRouter, RouterFileError, cli, schema


@pytest.fixture(scope="module")
def saved_dir(advi_router, tmp_path_factory):
    return advi_router.save(tmp_path_factory.mktemp("saved") / "router")


@pytest.fixture
def router_copy(saved_dir, tmp_path):
    return shutil.copytree(saved_dir, tmp_path / "router")


def _load(path, embed_cache) -> IRTRouter:
    return IRTRouter.load(path, progress=False, cache_dir=embed_cache)


def _refused(path, embed_cache, fname: str, *fragments: str) -> str:
    """Load ``path``; assert one RouterFileError line naming ``fname`` and ``fragments``."""
    with pytest.raises(RouterFileError) as err:
        _load(path, embed_cache)
    msg = str(err.value)
    assert msg and "\n" not in msg, repr(msg)
    assert str(path / fname) in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def _edit_json(path, change) -> None:
    meta = json.loads((path / "router.json").read_text())
    change(meta)
    (path / "router.json").write_text(json.dumps(meta))


def _edit_arrays(path, change) -> None:
    with np.load(path / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    change(arrays)
    np.savez_compressed(path / "arrays.npz", **arrays)


def _edit_posterior(path, change) -> None:
    idata = az.from_netcdf(path / "posterior.nc", engine="h5netcdf")
    idata.load()
    idata.posterior = change(idata.posterior)
    (path / "posterior.nc").unlink()
    idata.to_netcdf(str(path / "posterior.nc"), engine="h5netcdf")


def _set(key, value):
    return lambda m: m.update({key: value})


def _set_in(outer, key, value):
    return lambda m: m[outer].update({key: value})


# ------------------------------------------------------------------- router.json types
# (change, what the message must say); each gave a traceback or loaded before
JSON_TYPES = {
    "llms int": (_set("llms", 5), "'llms' must be a list of strings, got 5"),
    "llms of numbers": (
        lambda m: m.update(llms=list(range(len(m["llms"])))),
        "'llms[0]' must be a string",
    ),
    "prices of strings": (
        lambda m: m.update(prices=["cheap"] * len(m["prices"])),
        "'prices[0]' must be a number or null, got 'cheap'",
    ),
    "spec list": (_set("spec", [1]), "'spec' must be an object"),
    "structure list": (_set("structure", [1]), "'structure' must be an object"),
    "structure.n_features string": (
        _set_in("structure", "n_features", "24"),
        "'structure.n_features' must be an integer",
    ),
    "train_queries int": (_set("train_queries", 3), "'train_queries' must be an object"),
    "domain string": (_set("domain", "labels"), "'domain' must be an object"),
    "domain.names int": (_set_in("domain", "names", 3), "'domain.names' must be a list"),
    "tau string": (_set("tau", "0.1"), "'tau' must be a number or null"),
    "tau list": (_set("tau", [0.1]), "'tau' must be a number or null"),
    "tau_losses list": (_set("tau_losses", [1]), "'tau_losses' must be an object"),
    "diagnostics list": (_set("diagnostics", [1]), "'diagnostics' must be an object"),
    "diagnostics.interrupted string": (
        _set_in("diagnostics", "interrupted", "yes"),
        "'diagnostics.interrupted' must be true or false",
    ),
    "check int": (_set("check", 1), "'check' must be an object"),
    "check list": (_set("check", [1]), "'check' must be an object"),
    "selection int": (_set("selection", 1), "'selection' must be an object"),
    "selection list": (_set("selection", [1]), "'selection' must be an object"),
    "datasets int": (_set("datasets", 5), "'datasets' must be a list of strings"),
}


@pytest.mark.parametrize("case", list(JSON_TYPES))
def test_router_json_of_the_wrong_type_is_one_line(case, router_copy, embed_cache):
    change, expected = JSON_TYPES[case]
    _edit_json(router_copy, change)
    _refused(router_copy, embed_cache, "router.json", expected)


# (change, what the message must say): lengths and names that must agree
JSON_CONSISTENCY = {
    "train_queries columns of different lengths": (
        lambda m: m["train_queries"].update(dataset=m["train_queries"]["dataset"][:-1]),
        "'train_queries' columns differ in length",
    ),
    "domain names differ from datasets": (
        lambda m: m["domain"].update(names=m["domain"]["names"][::-1]),
        "'domain.names' does not match 'datasets'",
    ),
    "structure names other LLMs": (
        lambda m: m["structure"].update(llms=m["structure"]["llms"][::-1]),
        "'structure.llms' does not match 'llms'",
    ),
    "train_queries without query_id": (
        lambda m: m["train_queries"].pop("query_id"),
        "'train_queries' is missing key 'query_id'",
    ),
}


@pytest.mark.parametrize("case", list(JSON_CONSISTENCY))
def test_router_json_that_disagrees_with_itself_is_one_line(case, router_copy, embed_cache):
    change, expected = JSON_CONSISTENCY[case]
    _edit_json(router_copy, change)
    _refused(router_copy, embed_cache, "router.json", expected)


def test_router_json_with_nan_is_refused(router_copy, embed_cache):
    # Python's json reads NaN (the saver never writes it): it would become the kernel tau
    _edit_json(router_copy, _set("tau", float("nan")))  # json.dumps writes it as NaN
    assert '"tau": NaN' in (router_copy / "router.json").read_text()
    _refused(router_copy, embed_cache, "router.json", "'tau' is nan")


def test_schema_accepts_a_saved_router_with_new_and_interrupted_keys(saved_dir, router_copy):
    meta = json.loads((saved_dir / "router.json").read_text())
    meta["diagnostics"]["interrupted"] = True  # written by fit --keep-partial
    meta["written_by_a_newer_version"] = {"anything": [1, 2]}
    schema.check_metadata(meta, router_copy / "router.json")


def test_the_schema_is_a_valid_json_schema():
    import jsonschema

    jsonschema.validators.validator_for(schema.ROUTER_SCHEMA).check_schema(schema.ROUTER_SCHEMA)


# ------------------------------------------------------------------------- arrays.npz
def _break_deflate_stream(path, member="train_embeddings.npy") -> None:
    """Set the first deflate block of ``member`` to the reserved type: zlib.error on read."""
    import zipfile

    data = bytearray((path / "arrays.npz").read_bytes())
    with zipfile.ZipFile(path / "arrays.npz") as zf:
        offset = zf.getinfo(member).header_offset
    name_len = int.from_bytes(data[offset + 26 : offset + 28], "little")
    extra_len = int.from_bytes(data[offset + 28 : offset + 30], "little")
    data[offset + 30 + name_len + extra_len] |= 0b110  # BTYPE = 11, which deflate reserves
    (path / "arrays.npz").write_bytes(bytes(data))


def test_bit_flipped_arrays_npz_is_one_line(router_copy, embed_cache):
    _break_deflate_stream(router_copy)
    with np.load(router_copy / "arrays.npz") as npz, pytest.raises(zlib.error):
        npz["train_embeddings"]  # what the loader used to let through
    _refused(router_copy, embed_cache, "arrays.npz", "corrupt or unreadable")


def _nan_at_first(name):
    def change(a):
        a[name] = a[name].copy()
        a[name].flat[0] = np.nan

    return change


# (change, what the message must say); each loaded before and failed or gave NaN later
ARRAYS = {
    "features_scale all zero": (
        lambda a: a.update(features_scale=np.zeros_like(a["features_scale"])),
        "'features_scale' must be > 0",
    ),
    "features_mean of the wrong length": (
        lambda a: a.update(features_mean=a["features_mean"][:10]),
        "'features_mean' has shape (10,)",
    ),
    "features_components 1-D": (
        lambda a: a.update(features_components=a["features_components"][0]),
        "'features_components' has shape",
    ),
    "features_components NaN": (_nan_at_first("features_components"), "NaN or infinite"),
    "train_embeddings NaN": (_nan_at_first("train_embeddings"), "'train_embeddings' has 1 NaN"),
    "train_embeddings strings": (
        lambda a: a.update(train_embeddings=a["train_embeddings"].astype(str)),
        "'train_embeddings' must be a float array",
    ),
    "train_dataset_idx out of range": (
        lambda a: a.update(train_dataset_idx=a["train_dataset_idx"] + 100),
        "'train_dataset_idx' has values in",
    ),
    "train_dataset_idx floats": (
        lambda a: a.update(train_dataset_idx=a["train_dataset_idx"].astype(float)),
        "'train_dataset_idx' must be an integer array",
    ),
    "domain_coef rows": (
        lambda a: a.update(domain_coef=a["domain_coef"][:1]),
        "'domain_coef' has shape",
    ),
    "domain_pca_scale zero": (
        lambda a: a.update(domain_pca_scale=np.zeros_like(a["domain_pca_scale"])),
        "'domain_pca_scale' must be > 0",
    ),
    "domain_intercept inf": (
        lambda a: a.update(domain_intercept=np.full_like(a["domain_intercept"], np.inf)),
        "'domain_intercept' has",
    ),
}


@pytest.mark.parametrize("case", list(ARRAYS))
def test_bad_array_is_one_line(case, router_copy, embed_cache):
    change, expected = ARRAYS[case]
    _edit_arrays(router_copy, change)
    _refused(router_copy, embed_cache, "arrays.npz", expected)


# ----------------------------------------------------------------------- posterior.nc
def _fill(name, value):
    return lambda post: post.assign({name: post[name] * 0 + value})


POSTERIOR = {
    "theta NaN": (_fill("theta", np.nan), "'theta' has"),
    "delta_b inf": (_fill("delta_b", np.inf), "'delta_b' has"),
    "sigma_b negative": (lambda p: p.assign(sigma_b=-p["sigma_b"]), "'sigma_b' is a scale"),
    "delta_b on other queries": (
        lambda p: p.isel(query=slice(0, 10)),
        "along 'query'",
    ),
    "one chain, no chain dim": (lambda p: p.isel(chain=0), "no 'chain' and 'draw' dims"),
    "llm dim renamed": (lambda p: p.rename({"llm": "model"}), "LLMs do not match"),
}


@pytest.mark.parametrize("case", list(POSTERIOR))
def test_bad_posterior_draws_are_one_line(case, router_copy, embed_cache):
    change, expected = POSTERIOR[case]
    _edit_posterior(router_copy, change)
    _refused(router_copy, embed_cache, "posterior.nc", expected)


# ------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    "damage",
    [
        lambda p: _edit_json(p, _set("llms", 5)),
        lambda p: _edit_json(p, _set("diagnostics", [1])),
        _break_deflate_stream,
        lambda p: _edit_posterior(p, _fill("theta", np.nan)),
    ],
    ids=["llms int", "diagnostics list", "zlib error", "NaN theta"],
)
def test_cli_reports_a_damaged_router_in_one_line(damage, router_copy, capsys):
    damage(router_copy)
    capsys.readouterr()
    assert cli.main(["describe", str(router_copy)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("irt-bayes: error: ") and str(router_copy) in err
