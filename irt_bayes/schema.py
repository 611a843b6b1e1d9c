"""The file contract of a saved router: what ``load_router`` accepts, checked up front.

A saved router directory is read from disk and may have been edited, truncated or
written by something else, so nothing in it is trusted. This module says what each
file must hold and raises :class:`~irt_bayes.errors.RouterFileError` (one line naming
the file, the key or array, and what is wrong) instead of letting a bad value surface
later as a traceback or as NaN predictions:

- ``router.json`` against :data:`ROUTER_SCHEMA` (a JSON Schema, validated with
  ``jsonschema``), then the consistency JSON Schema cannot express (lengths that must
  agree, indices in range, finite numbers): :func:`check_metadata`, and, once the
  posterior's LLMs have been compared, :func:`check_structure`;
- every array of ``arrays.npz`` for dtype, shape against router.json and finiteness:
  :func:`check_arrays`;
- the posterior draws the model's terms read, for dims, sizes, finiteness and the
  range of scales and probabilities: :func:`check_posterior`.

Unknown keys are allowed everywhere in router.json: newer writers may add some, and
incompatible changes are guarded by ``format_version`` instead.
"""

from __future__ import annotations

import functools
import math
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from irt_bayes.errors import RouterFileError

__all__ = [
    "ROUTER_SCHEMA",
    "check_arrays",
    "check_metadata",
    "check_posterior",
    "check_structure",
]

# Column order of the held-out predictive check's table (irt_bayes.checks._COLUMNS).
_CHECK_COLUMNS = ("dataset", "llm", "n", "observed", "predicted", "gap", "se", "flagged")
# What ``float(key)`` reads back for a tau_losses key ("inf", "0.3", "1e-05"...).
_FLOAT_KEY = r"^[-+]?(inf|(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$"

_STR: dict[str, Any] = {"type": "string"}
_STRS: dict[str, Any] = {"type": "array", "items": _STR, "x-expect": "a list of strings"}
_NAMES: dict[str, Any] = {
    "type": "array",
    "items": _STR,
    "minItems": 1,
    "uniqueItems": True,
    "x-expect": "a list of strings",
}
_NAMES_OR_NULL: dict[str, Any] = {
    "type": ["array", "null"],
    "items": _STR,
    "minItems": 1,
    "uniqueItems": True,
    "x-expect": "a list of strings or null",
}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_NUM_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}


def _column(items: dict[str, Any], expect: str) -> dict[str, Any]:
    return {"type": "array", "items": items, "x-expect": expect}


# a table saved by persistence._columns: its row names in "name", one number list per column
_TABLE: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _column(_STR, "a list of row names")},
    "additionalProperties": _column(_NUM_OR_NULL, "a list of numbers or nulls"),
    "x-expect": "an object of columns (name, r_hat...)",
}

ROUTER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "router.json of a saved irt-bayes router",
    "type": "object",
    "required": [
        "format_version",
        "spec",
        "encoder_id",
        "embedding_dim",
        "llms",
        "prices",
        "structure",
        "train_queries",
    ],
    "properties": {
        "format_version": {"type": "integer"},
        "package_version": _STR,
        # the spec's own fields are checked by ModelSpec.from_dict, with its messages
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _STR, "priors": {"type": ["object", "null"]}},
            "x-expect": "an object (the model spec)",
        },
        "method": {"enum": ["advi", "nuts"]},
        "seed": {"type": ["integer", "null"]},
        "residuals": {"enum": ["empirical", "normal"]},
        "encoder_id": {"type": "string", "minLength": 1},
        "encoder": _STR,
        "embedding_dim": {"type": "integer", "minimum": 1},
        "likelihood": {"enum": ["bernoulli", "binomial", "fractional"]},
        "llms": _NAMES,
        "prices": _column({"type": ["number", "null"], "minimum": 0}, "a list of numbers or nulls"),
        "datasets": {**_STRS, "uniqueItems": True},
        "structure": {
            "type": "object",
            "required": ["llms", "skills", "n_features", "likelihood"],
            "properties": {
                "llms": _NAMES,
                "skills": _NAMES,
                "n_features": _COUNT,
                "likelihood": {"enum": ["bernoulli", "binomial", "fractional"]},
                "datasets": _NAMES_OR_NULL,
                "groups": _NAMES_OR_NULL,
                "group_idx": {
                    "type": ["array", "null"],
                    "items": _COUNT,
                    "x-expect": "a list of integers or null",
                },
            },
            "x-expect": "an object (the structure the data gave the model)",
        },
        "domain": {
            "type": ["object", "null"],
            "required": ["names"],
            "properties": {
                "names": _NAMES,
                "source": {"enum": ["labels", "clusters", "labels+clusters"]},
                "C": _NUM_OR_NULL,
                "parents": {**_STRS, "type": ["array", "null"]},
            },
            "x-expect": "an object (the dataset classifier) or null",
        },
        "tau": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "tau_losses": {
            "type": "object",
            "propertyNames": {"pattern": _FLOAT_KEY},
            "additionalProperties": _NUM_OR_NULL,
        },
        "onboarded": {
            "type": ["object", "null"],
            "required": ["llm", "probes"],
            "properties": {"llm": _NAMES, "probes": {"type": "array", "items": _COUNT}},
            "additionalProperties": {"type": "array", "x-expect": "a list (one column)"},
            "x-expect": "an object of columns (llm, probes...) or null",
        },
        "train_queries": {
            "type": "object",
            "required": ["query_id"],
            "properties": {
                "query_id": _STRS,
                "dataset": _column({"type": ["string", "null"]}, "a list of strings or nulls"),
            },
            # one list per column (orient="list"), all of the same length
            "additionalProperties": {"type": "array", "x-expect": "a list (one column)"},
            "x-expect": "an object of columns (query_id, dataset...)",
        },
        "diagnostics": {
            "type": "object",
            "properties": {
                "method": {"enum": ["advi", "nuts"]},
                "seconds": {"type": "number", "minimum": 0},
                "divergences": _COUNT,
                "iterations": _COUNT,
                "converged": {"type": "boolean"},
                "interrupted": {"type": "boolean"},
                "max_rhat": _NUM_OR_NULL,
                "min_ess_bulk": _NUM_OR_NULL,
                "min_ess_tail": _NUM_OR_NULL,
                "verdict": _STR,
            },
            "x-expect": "an object (the fit diagnostics)",
        },
        "diagnostic_tables": {
            "type": ["object", "null"],
            "required": ["abilities", "variables"],
            "properties": {"abilities": _TABLE, "variables": _TABLE},
            "x-expect": "an object (R-hat and ESS tables of the fit) or null",
        },
        "posterior": {
            "type": "object",
            "properties": {
                "compact": {"type": "boolean"},
                "draws": _COUNT,
                "fitted_draws": _COUNT,
            },
            "x-expect": "an object (what posterior.nc holds)",
        },
        "check": {
            "type": ["object", "null"],
            "required": ["n_queries", "log_loss", "tolerance", "table"],
            "properties": {
                "n_queries": _COUNT,
                "log_loss": _NUM_OR_NULL,
                "tolerance": {"type": "number", "minimum": 0},
                "what": _STR,
                "table": {
                    "type": "object",
                    "required": list(_CHECK_COLUMNS),
                    "properties": {
                        "dataset": _STRS,
                        "llm": _STRS,
                        "n": _column({"type": "number", "minimum": 0}, "a list of counts"),
                        **{
                            c: _column(_NUM_OR_NULL, "a list of numbers or nulls")
                            for c in ("observed", "predicted", "gap", "se")
                        },
                        "flagged": _column({"type": "boolean"}, "a list of true/false"),
                    },
                },
            },
            "x-expect": "an object (the held-out predictive check) or null",
        },
        "selection": {
            "type": ["object", "null"],
            "required": ["model"],
            "properties": {"model": _STRS},
            "additionalProperties": {"type": "array", "x-expect": "a list (one column)"},
            "x-expect": "an object of columns (model, log_loss...) or null",
        },
        "selection_note": _STR,
    },
    "additionalProperties": True,
}

_TYPE_WORDS = {
    "array": "a list",
    "object": "an object",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def _make_short() -> reprlib.Repr:
    # keyword arguments to Repr() need Python 3.12
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = 40, 40, 4, 3, 2
    return r


_short = _make_short().repr


@functools.cache
def _validator() -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(ROUTER_SCHEMA)
    cls.check_schema(ROUTER_SCHEMA)
    return cls(ROUTER_SCHEMA)


def _where(path: Any) -> str:
    """``['structure', 'llms', 0]`` as ``'structure.llms[0]'``."""
    out, parts = "", list(path)
    for part in parts[:8]:  # a deeply nested bad value still gives a short line
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return repr(out + ("..." if len(parts) > 8 else ""))


def _fail(file: Path, message: str) -> RouterFileError:
    # one line whatever the message holds (reprs of odd strings, nested errors)
    return RouterFileError(f"{file}: {' '.join(message.split())}")


def _schema_message(error: Any) -> str:
    """A short sentence for one jsonschema error, naming the key it is about."""
    where = _where(error.absolute_path) if error.absolute_path else "the metadata"
    kind, value = error.validator, error.instance
    if kind == "required":
        missing = next((k for k in error.validator_value if k not in value), "?")
        return (
            f"{where} is missing key {missing!r}"
            if error.absolute_path
            else f"missing key {missing!r}"
        )
    if kind == "type":
        types = error.validator_value
        expect = error.schema.get("x-expect") or " or ".join(
            _TYPE_WORDS.get(t, t) for t in ([types] if isinstance(types, str) else types)
        )
        return f"{where} must be {expect}, got {_short(value)}"
    if kind == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return f"{where} must be one of {options}, got {_short(value)}"
    if kind in ("minimum", "exclusiveMinimum"):
        op = ">=" if kind == "minimum" else ">"
        return f"{where} must be {op} {error.validator_value}, got {_short(value)}"
    if kind == "minItems":
        return f"{where} must not be empty"
    if kind == "minLength":
        return f"{where} must not be an empty string"
    if kind == "uniqueItems":
        return f"{where} has duplicate entries: {_short(value)}"
    if kind == "propertyNames":
        return f"{where} has a key that is not a number: {_short(value)}"
    return f"{where}: {error.message}"


def _non_finite(obj: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], float] | None:
    """Path and value of the first NaN or infinity in parsed JSON, if any."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path, obj
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for key, value in items:
        found = _non_finite(value, (*path, key))
        if found is not None:
            return found
    return None


def _lengths_agree(columns: Mapping[str, list], key: str, file: Path) -> int:
    """The common length of a dict of columns (orient="list"); raise if they differ."""
    lengths = {name: len(col) for name, col in columns.items()}
    first = next(iter(lengths), None)
    for name, n in lengths.items():
        if n != lengths[first]:
            raise _fail(
                file,
                f"{key!r} columns differ in length: {first!r} has {lengths[first]} "
                f"entries, {name!r} has {n}",
            )
    return 0 if first is None else lengths[first]


def check_metadata(meta: Any, file: str | Path) -> None:
    """Check parsed router.json against :data:`ROUTER_SCHEMA` and its own consistency.

    Parameters
    ----------
    meta : object
        The parsed contents of router.json.
    file : str or pathlib.Path
        The router.json path, for the message.

    Raises
    ------
    RouterFileError
        The first problem found: a missing key, a value of the wrong type or out of
        range, a NaN or infinity, or lists whose lengths must agree and do not.
    """
    file = Path(file)
    try:
        # the shallowest error first, then document order (best_match would pick 'llms[9]')
        errors = sorted(_validator().iter_errors(meta), key=lambda e: len(e.absolute_path))
        # the saver writes strict JSON; Python's parser still reads NaN, Infinity and 1e999
        found = _non_finite(meta)
    except RecursionError:
        raise _fail(file, "nested too deeply to be a saved router") from None
    if errors:
        raise _fail(file, _schema_message(errors[0]))
    if found is not None:
        raise _fail(file, f"{_where(found[0])} is {found[1]}: numbers must be finite")
    if len(meta["prices"]) != len(meta["llms"]):
        raise _fail(
            file,
            f"'prices' does not match 'llms': {len(meta['prices'])} prices for "
            f"{len(meta['llms'])} LLMs",
        )
    _lengths_agree(meta["train_queries"], "train_queries", file)
    for key in ("selection", "check", "onboarded"):
        block = meta.get(key)
        if block is not None:
            _lengths_agree(block["table"] if key == "check" else block, key, file)
    for key, block in (meta.get("diagnostic_tables") or {}).items():
        _lengths_agree(block, f"diagnostic_tables.{key}", file)
    st = meta["structure"]
    if st.get("groups") is not None:
        idx = st.get("group_idx")
        if idx is None or len(idx) != len(st["llms"]):
            raise _fail(file, "'structure.group_idx' must give a group for each LLM")
        if max(idx) >= len(st["groups"]):
            raise _fail(file, f"'structure.group_idx' has {max(idx)}, beyond 'structure.groups'")
    datasets, dom = meta.get("datasets") or [], meta.get("domain")
    # prediction reads the classifier whenever the model has datasets, and only then
    if datasets and dom is None:
        raise _fail(file, "'domain' is null but the router has 'datasets'")
    if dom is not None:
        if list(dom["names"]) != list(datasets):
            raise _fail(file, "'domain.names' does not match 'datasets'")
        if dom.get("parents") is not None and len(dom["parents"]) != len(dom["names"]):
            raise _fail(file, "'domain.parents' must have one entry per name in 'domain.names'")


def check_structure(meta: Mapping[str, Any], file: str | Path) -> None:
    """Check that router.json's ``structure`` agrees with its ``llms`` and ``datasets``.

    Separate from :func:`check_metadata` so that the loader can first compare the
    posterior's LLMs with ``llms`` (the more useful message when they disagree).

    Parameters
    ----------
    meta : mapping
        router.json contents that passed :func:`check_metadata`.
    file : str or pathlib.Path
        The router.json path, for the message.

    Raises
    ------
    RouterFileError
        When the structure names other LLMs or datasets than router.json does.
    """
    st = meta["structure"]
    if list(st["llms"]) != list(meta["llms"]):
        raise _fail(Path(file), "'structure.llms' does not match 'llms'")
    if list(st.get("datasets") or []) != list(meta.get("datasets") or []):
        raise _fail(Path(file), "'structure.datasets' does not match 'datasets'")


def _array(
    arrays: Mapping[str, np.ndarray],
    name: str,
    shape: tuple[int | None, ...],
    file: Path,
    *,
    kind: str = "float",
    positive: bool = False,
) -> np.ndarray:
    """``arrays[name]`` after checking its dtype, shape (None: any size) and values."""
    if name not in arrays:
        raise _fail(file, f"missing array {name!r}")
    a = arrays[name]
    ok = np.issubdtype(a.dtype, np.floating if kind == "float" else np.integer)
    if not ok:
        want = "a float" if kind == "float" else "an integer"
        raise _fail(file, f"{name!r} must be {want} array, got dtype {a.dtype}")
    if a.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, a.shape, strict=True)
    ):
        want = ", ".join("n" if s is None else str(s) for s in shape)
        want = f"({want},)" if len(shape) == 1 else f"({want})"
        raise _fail(file, f"{name!r} has shape {a.shape}, router.json implies {want}")
    if kind == "float":
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise _fail(file, f"{name!r} has {bad} NaN or infinite values")
        if positive and a.size and not (a > 0).all():
            # a scale divides the features: zero gives inf, then NaN predictions
            raise _fail(file, f"{name!r} must be > 0 everywhere, has {int((a <= 0).sum())} <= 0")
    return a


def check_arrays(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], file: str | Path
) -> None:
    """Check every array of arrays.npz for dtype, shape (from router.json) and values.

    Parameters
    ----------
    arrays : mapping of str to numpy.ndarray
        The arrays read from arrays.npz.
    meta : mapping
        router.json contents that passed :func:`check_metadata`.
    file : str or pathlib.Path
        The arrays.npz path, for the message.

    Raises
    ------
    RouterFileError
        A missing array, a wrong dtype or shape, a NaN or infinity, a scale that is not
        positive, or a training dataset index out of range.
    """
    file = Path(file)
    d = int(meta["embedding_dim"])
    k = int(meta["structure"]["n_features"])
    n = len(meta["train_queries"]["query_id"])
    _array(arrays, "features_mean", (d,), file)
    _array(arrays, "features_components", (k, d), file)
    _array(arrays, "features_scale", (k,), file, positive=True)
    _array(arrays, "train_embeddings", (n, d), file)
    datasets = meta.get("datasets") or []
    if "train_dataset_idx" in arrays:
        # without datasets the saver writes an empty placeholder
        idx = _array(arrays, "train_dataset_idx", (n if datasets else 0,), file, kind="int")
        if idx.size and (idx.min() < 0 or idx.max() >= len(datasets)):
            raise _fail(
                file,
                f"'train_dataset_idx' has values in {idx.min()}..{idx.max()}, "
                f"outside 0..{len(datasets) - 1} (the router's datasets)",
            )
    dom = meta.get("domain")
    if dom is not None:
        n_dom = len(dom["names"])
        _array(arrays, "domain_pca_mean", (d,), file)
        kd = _array(arrays, "domain_pca_components", (None, d), file).shape[0]
        _array(arrays, "domain_pca_scale", (kd,), file, positive=True)
        _array(arrays, "domain_coef", (n_dom, kd), file)
        _array(arrays, "domain_intercept", (n_dom,), file)


def _posterior_sizes(meta: Mapping[str, Any]) -> dict[str, int]:
    """The size of each model dimension, as router.json says."""
    st = meta["structure"]
    return {
        "llm": len(meta["llms"]),
        "skill": len(st["skills"]),
        "feature": int(st["n_features"]),
        "dataset": len(st.get("datasets") or []),
        "query": len(meta["train_queries"]["query_id"]),
    }


def check_posterior(
    posterior: Any,
    variables: Mapping[str, tuple[str, ...]],
    meta: Mapping[str, Any],
    file: str | Path,
) -> None:
    """Check the posterior draws the model's terms read: dims, sizes and values.

    Parameters
    ----------
    posterior : xarray.Dataset
        The ``posterior`` group of posterior.nc.
    variables : mapping of str to tuple of str
        The variables the terms read and their dims (besides chain and draw), as from
        :func:`irt_bayes.components.posterior_variables`.
    meta : mapping
        router.json contents that passed :func:`check_metadata`.
    file : str or pathlib.Path
        The posterior.nc path, for the message.

    Raises
    ------
    RouterFileError
        A missing variable, other dims or sizes than the model's, a non-numeric dtype,
        NaN or infinite draws, a scale (``sigma_*``, ``tau_*``) that is not positive, or
        a guessing probability outside [0, 1].
    """
    file = Path(file)
    sizes = _posterior_sizes(meta)
    if "chain" not in posterior.dims or "draw" not in posterior.dims:
        raise _fail(file, "the posterior has no 'chain' and 'draw' dims")
    if posterior.sizes["chain"] * posterior.sizes["draw"] < 1:
        raise _fail(file, "the posterior has no draws")
    for name, dims in variables.items():
        if name not in posterior:
            raise _fail(file, f"has no {name!r}, which the model's terms need")
        var = posterior[name]
        if set(var.dims) != {"chain", "draw", *dims} or var.ndim != len(dims) + 2:
            want = ", ".join(("chain", "draw", *dims))
            raise _fail(file, f"{name!r} has dims ({', '.join(var.dims)}), expected ({want})")
        for dim in dims:
            if dim in sizes and var.sizes[dim] != sizes[dim]:
                raise _fail(
                    file,
                    f"{name!r} has {var.sizes[dim]} entries along {dim!r}, "
                    f"router.json implies {sizes[dim]}",
                )
        if not np.issubdtype(var.dtype, np.number) or np.issubdtype(var.dtype, np.complexfloating):
            raise _fail(file, f"{name!r} must hold real numbers, got dtype {var.dtype}")
        values = var.to_numpy()
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise _fail(file, f"{name!r} has {bad} NaN or infinite draws")
        if name.startswith(("sigma_", "tau_")) and not (values > 0).all():
            raise _fail(file, f"{name!r} is a scale but has draws <= 0")
        if name == "guessing" and not ((values >= 0) & (values <= 1)).all():
            raise _fail(file, f"{name!r} is a probability but has draws outside [0, 1]")
