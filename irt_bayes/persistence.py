"""Saving and loading fitted routers as a directory.

Layout of a saved router::

    ROUTER/
      router.json     metadata: format version, package version, spec, the structure the
                      data gave it (datasets, features, groups), encoder id, LLM names,
                      prices, training query ids, the dataset classifier's names, the
                      predictive's kernel temperature, fit diagnostics, the held-out
                      predictive check and the model choice
      posterior.nc    arviz.InferenceData (posterior, observed and constant data);
                      compact by default (:func:`compact_posterior`), or everything
                      the fit drew with ``full_posterior=True``
      arrays.npz      PCA of the embeddings, the training embeddings and datasets, the
                      dataset classifier's coefficients

The directory is written under a temporary name beside the target and swapped into
place (:mod:`irt_bayes.outputs`), so an interrupted save never leaves a half-written
router and a save never replaces a folder irt-bayes did not write.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd

import irt_bayes
from irt_bayes.checks import PredictiveCheck
from irt_bayes.components import Structure, components_for, posterior_variables
from irt_bayes.domains import DomainModel
from irt_bayes.errors import RouterFileError
from irt_bayes.features import EmbeddingFeatures
from irt_bayes.inference import Diagnostics, diagnose
from irt_bayes.outputs import atomic_directory
from irt_bayes.predict import PREDICT_DRAWS
from irt_bayes.spec import ModelSpec

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter

__all__ = [
    "COMPACT_DRAWS",
    "FORMAT_VERSION",
    "compact_posterior",
    "load_router",
    "package_version",
    "save_router",
]

FORMAT_VERSION = 2
_FILES = ("router.json", "posterior.nc", "arrays.npz")
# As many draws as prediction uses anyway, so a compact router predicts what the
# fitted one does up to which draws the thinning picks (and ADVI draws 1,000).
COMPACT_DRAWS = PREDICT_DRAWS


def compact_posterior(
    idata: az.InferenceData,
    variables: Mapping[str, tuple[str, ...]],
    max_draws: int = COMPACT_DRAWS,
) -> az.InferenceData:
    """What prediction, reports and onboarding read, in a fraction of the space.

    Keeps the posterior variables the model's terms read (``variables``) and every
    variable without a ``query`` dim (scales, abilities, offsets: small, and what a
    user summarises), drops the per-query deterministics the terms recompute
    (``difficulty``, ``discrimination``) and the warm-up, thins each chain evenly to at
    most ``max_draws`` draws in all, and stores floating-point draws as float32.

    Parameters
    ----------
    idata : arviz.InferenceData
        A fitted router's ``idata_``.
    variables : mapping of str to tuple of str
        From :func:`irt_bayes.components.posterior_variables`.
    max_draws : int, default COMPACT_DRAWS
        Most draws kept, all chains together (chains are kept, so R-hat still works).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` (thinned), ``sample_stats`` (thinned alike) and the observed and
        constant data, unchanged.

    Notes
    -----
    Thinning is the only approximation that matters. The mean over ``m`` of ``N``
    draws differs from the mean over all of them by a Monte Carlo error of sd at most
    ``s * sqrt(1/m - 1/N)`` for independent draws of posterior sd ``s`` (less when
    neighbouring draws are correlated, as NUTS draws are, since even thinning spreads
    the kept draws out). float32 rounds a logit of 10 by about 1e-6, which is far
    below it. ``tests/test_persistence.py`` checks every predicted P(correct) against
    this bound.

    See Also
    --------
    save_router, irt_bayes.predict.sample_index
    """
    if max_draws < 1:
        raise ValueError(f"max_draws must be at least 1, got {max_draws}")
    post = idata.posterior
    keep = [v for v in post.data_vars if v in variables or "query" not in post[v].dims]
    total = post.sizes["chain"] * post.sizes["draw"]
    thin = {"draw": slice(None, None, max(1, math.ceil(total / max_draws)))}
    small = post[keep].isel(thin)
    for name in keep:
        if small[name].dtype.kind == "f":
            small[name] = small[name].astype(np.float32)
    groups = {"posterior": small}
    if "sample_stats" in idata.groups() and "draw" in idata.sample_stats.dims:
        groups["sample_stats"] = idata.sample_stats.isel(thin)
    for name in ("observed_data", "constant_data"):
        if name in idata.groups():
            groups[name] = idata[name]
    return az.InferenceData(**groups)


def package_version() -> str:
    """Installed irt-bayes version (``"unknown"`` when run from a bare checkout)."""
    return irt_bayes.__version__


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None: router.json is strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj


def _columns(df: pd.DataFrame) -> dict[str, list]:
    """A table as JSON columns, its index in ``name``."""
    return df.rename_axis("name").reset_index().to_dict(orient="list")


def _table(cols: Mapping[str, list], index_name: str | None = None) -> pd.DataFrame:
    """The inverse of :func:`_columns`; a null (a NaN when saved) reads back as NaN."""
    df = pd.DataFrame(dict(cols)).set_index("name").astype(float)
    df.index.name = index_name
    return df


def save_router(
    router: IRTRouter,
    path: str | os.PathLike,
    *,
    force: bool = False,
    full_posterior: bool = False,
    max_draws: int = COMPACT_DRAWS,
) -> Path:
    """Write a fitted router to ``path`` (a directory, replaced if it exists).

    Parameters
    ----------
    router : IRTRouter
        A fitted router.
    path : str or os.PathLike
        Target directory: new, empty, or a saved router (replaced atomically).
    force : bool, default False
        Replace an existing folder that is not a saved router (its files are deleted).
    full_posterior : bool, default False
        Save every draw of every variable the fit kept, in float64 (for ArviZ work on
        the posterior itself). By default the posterior is compact
        (:func:`compact_posterior`): what prediction needs, thinned to ``max_draws``.
    max_draws : int, default COMPACT_DRAWS
        Draws kept in a compact router.

    Raises
    ------
    OutputError
        ``path`` is not writable, or holds files irt-bayes did not write (without
        ``force``); see :func:`irt_bayes.outputs.atomic_directory`.

    Returns
    -------
    pathlib.Path
        The directory written.
    """
    router._check_fitted()
    path = Path(path)
    post = router.idata_.posterior
    total = post.sizes["chain"] * post.sizes["draw"]
    idata = (
        router.idata_
        if full_posterior
        else compact_posterior(router.idata_, posterior_variables(router.components_), max_draws)
    )
    kept = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    diag = router.diagnostics_
    prices = router.prices_.reindex(router.llms_)
    meta = {
        "format_version": FORMAT_VERSION,
        "package_version": package_version(),
        "spec": router.spec_.to_dict(),
        "method": router.diagnostics_.method,
        "seed": router.seed,
        "residuals": router.residuals,
        "encoder_id": router.encoder_id_,
        # the name to rebuild the encoder from ("default", a path or hub name), not its id
        "encoder": router.encoder
        if isinstance(router.encoder, str)
        else getattr(router.encoder, "model_name", router.encoder_id_),
        "embedding_dim": router.embedding_dim_,
        "likelihood": router.likelihood_,
        "llms": router.llms_,
        "prices": [None if not np.isfinite(v) else float(v) for v in prices.to_numpy(float)],
        "datasets": router.datasets_,
        "structure": router.structure_.to_dict(),
        "domain": None
        if router.domain_ is None
        else {
            "names": router.domain_.names,
            "source": router.domain_.source,
            "C": router.domain_.C,
            "parents": router.domain_.parents,
        },
        "tau": router.tau_ if np.isfinite(router.tau_) else None,
        "tau_losses": {str(k): v for k, v in router.tau_losses_.items()},
        "train_queries": router.train_queries_.drop(columns=["query"]).to_dict(orient="list"),
        "diagnostics": diag.to_dict(),
        # R-hat and ESS of the fit's own draws: a thinned posterior would understate ESS
        "diagnostic_tables": None
        if diag.method != "nuts"
        else {"abilities": _columns(diag.table), "variables": _columns(diag.variables)},
        "posterior": {"compact": not full_posterior, "draws": kept, "fitted_draws": total},
        "check": None if router.check_ is None else router.check_.to_dict(),
        "selection": None
        if router.selection_ is None
        else router.selection_.reset_index().to_dict(orient="list"),
        "selection_note": router.selection_note_,
        # LLMs added after the fit from probes (irt_bayes.onboarding), with their counts
        "onboarded": None
        if getattr(router, "onboarded_", None) is None
        else router.onboarded_.to_dict(orient="list"),
    }
    with atomic_directory(path, "router", force=force) as tmp:
        text = json.dumps(_finite(meta), indent=2, default=_json_default, allow_nan=False)
        (tmp / "router.json").write_text(text)
        idata.to_netcdf(str(tmp / "posterior.nc"), engine="h5netcdf")
        arrays = {f"features_{k}": v for k, v in router.features_.to_arrays().items()}
        arrays["train_embeddings"] = router.train_embeddings_
        arrays["train_dataset_idx"] = (
            router.train_dataset_idx_
            if router.train_dataset_idx_ is not None
            else np.zeros(0, np.int64)
        )
        if router.domain_ is not None:
            arrays.update({f"domain_{k}": v for k, v in router.domain_.to_arrays().items()})
        np.savez_compressed(tmp / "arrays.npz", **arrays)
    return path


def _need(meta: dict, key: str, path: Path) -> Any:
    if key not in meta:
        raise RouterFileError(f"{path / 'router.json'}: missing key {key!r}")
    return meta[key]


def load_router(path: str | os.PathLike, *, encoder: Any = None, **kwargs: Any) -> IRTRouter:
    """Load a router written by :func:`save_router`.

    Parameters
    ----------
    path : str or os.PathLike
        The router directory.
    encoder : str or QueryEncoder, optional
        Encoder to embed new queries with; by default the one recorded at fit time.
        Its id must match the saved ``encoder_id``.
    **kwargs
        Passed to :class:`IRTRouter` (``progress``, ``cache_dir``...).

    Returns
    -------
    IRTRouter

    Raises
    ------
    RouterFileError
        Missing directory or file, corrupt file, incompatible format version, or
        contents that disagree with each other; one line naming the file.
    """
    from irt_bayes.embeddings import is_precomputed
    from irt_bayes.router import IRTRouter
    from irt_bayes.schema import check_arrays, check_metadata, check_posterior, check_structure

    path = Path(path)
    if not path.is_dir():
        raise RouterFileError(
            f"{path}: no saved router here (expected a directory with {', '.join(_FILES)})"
        )
    for name in _FILES:
        if not (path / name).is_file():
            raise RouterFileError(f"{path / name}: missing; the router directory is incomplete")
    try:
        meta = json.loads((path / "router.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, RecursionError) as exc:
        raise RouterFileError(f"{path / 'router.json'}: corrupt JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise RouterFileError(f"{path / 'router.json'}: not a router metadata object")
    fmt = _need(meta, "format_version", path)
    if fmt != FORMAT_VERSION:
        raise RouterFileError(
            f"{path / 'router.json'}: format version {fmt!r} is not supported "
            f"by irt-bayes {package_version()} (expects {FORMAT_VERSION}); "
            "refit the router"
        )
    # every type, length and number below is checked here, before anything reads it
    check_metadata(meta, path / "router.json")
    try:
        spec = ModelSpec.from_dict(_need(meta, "spec", path), source=str(path / "router.json"))
    except Exception as exc:
        raise RouterFileError(f"{path / 'router.json'}: invalid spec ({exc})") from None
    llms = list(_need(meta, "llms", path))
    prices = _need(meta, "prices", path)
    encoder_id = _need(meta, "encoder_id", path)
    try:
        idata = az.from_netcdf(str(path / "posterior.nc"), engine="h5netcdf")
        idata.load() if hasattr(idata, "load") else None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RouterFileError(f"{path / 'posterior.nc'}: corrupt or unreadable ({first})") from None
    if "posterior" not in idata.groups() or "theta" not in idata.posterior:
        raise RouterFileError(f"{path / 'posterior.nc'}: has no posterior abilities ('theta')")
    post_llms = idata.posterior.coords.get("llm")
    if post_llms is None or post_llms.ndim != 1 or list(post_llms.to_numpy()) != llms:
        raise RouterFileError(f"{path / 'posterior.nc'}: LLMs do not match router.json")
    check_structure(meta, path / "router.json")
    try:
        # allow_pickle stays False: a saved router must never run code on load
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RouterFileError(f"{path / 'arrays.npz'}: corrupt or unreadable ({first})") from None
    check_arrays(arrays, meta, path / "arrays.npz")
    feats = EmbeddingFeatures.from_arrays(
        {k: arrays[f"features_{k}"] for k in ("mean", "components", "scale")}
    )
    emb = arrays["train_embeddings"]
    tq = pd.DataFrame(_need(meta, "train_queries", path))
    if encoder is not None and not isinstance(encoder, str):
        enc_id = getattr(encoder, "encoder_id", None)
        if enc_id != encoder_id:
            raise RouterFileError(f"{path}: fitted with encoder {encoder_id!r}, got {enc_id!r}")

    if encoder is None or isinstance(encoder, str):
        # rebuild the encoder with the truncation it was fitted with (part of its id)
        from irt_bayes.encoding import QueryEncoder

        truncation = "tail" if str(encoder_id).endswith(":tail") else "head"
        name = encoder if encoder is not None else meta.get("encoder", "default")
        if not is_precomputed(encoder_id):
            encoder = QueryEncoder(
                name,
                cache_dir=kwargs.get("cache_dir"),
                truncation=truncation,
                show_progress=None if kwargs.get("progress", True) else False,
            )
            if encoder.encoder_id != encoder_id:
                raise RouterFileError(
                    f"{path}: fitted with encoder {encoder_id!r}, but "
                    f"{name!r} gives {encoder.encoder_id!r}"
                )
        else:
            encoder = name
    router = IRTRouter(
        spec,
        encoder=encoder,
        method=meta.get("method", "advi"),
        seed=meta.get("seed", 0),
        residuals=meta.get("residuals", "empirical"),
        **kwargs,
    )
    router.spec_ = spec
    router.llms_ = llms
    router.prices_ = pd.Series(
        [np.nan if v is None else v for v in prices],
        index=pd.Index(llms, name="llm"),
        name="price",
        dtype=float,
    )
    router.datasets_ = list(meta.get("datasets", []))
    router.features_ = feats
    tq["query"] = ""  # texts are not stored; ids and datasets are
    router.train_queries_ = tq
    router.train_embeddings_ = emb
    didx = arrays.get("train_dataset_idx")
    router.train_dataset_idx_ = didx if didx is not None and didx.size else None
    try:
        # keys a newer writer may add are ignored (format_version guards real changes)
        known = set(Structure.__dataclass_fields__)
        raw = {k: v for k, v in _need(meta, "structure", path).items() if k in known}
        router.structure_ = Structure.from_dict(raw)
        needed = posterior_variables(components_for(spec, router.structure_))
    except (TypeError, ValueError) as exc:
        raise RouterFileError(f"{path / 'router.json'}: invalid 'structure' ({exc})") from None
    check_posterior(idata.posterior, needed, meta, path / "posterior.nc")
    dom = meta.get("domain")
    router.domain_ = None
    if dom is not None:
        keys = ("coef", "intercept", "pca_mean", "pca_components", "pca_scale")
        if any(f"domain_{k}" not in arrays for k in keys):
            raise RouterFileError(f"{path / 'arrays.npz'}: missing the dataset classifier")
        router.domain_ = DomainModel.from_arrays(
            dom["names"],
            {k: arrays[f"domain_{k}"] for k in keys},
            dom.get("source", "labels"),
            float(dom.get("C") if dom.get("C") is not None else np.nan),
            dom.get("parents"),
        )
    tau = meta.get("tau")
    router.tau_ = float("inf") if tau is None else float(tau)
    router.tau_losses_ = {float(k): v for k, v in (meta.get("tau_losses") or {}).items()}
    chk = meta.get("check")
    if chk is not None and chk["log_loss"] is None:
        chk = {**chk, "log_loss": float("nan")}  # a NaN log loss is saved as null
    router.check_ = None if chk is None else PredictiveCheck.from_dict(chk)
    sel = meta.get("selection")
    router.selection_ = None if sel is None else pd.DataFrame(sel).set_index("model")
    router.selection_note_ = str(meta.get("selection_note", ""))
    onb = meta.get("onboarded")
    router.onboarded_ = None if onb is None else pd.DataFrame(onb)
    router.likelihood_ = meta.get("likelihood", "bernoulli")
    for name, var in idata.posterior.data_vars.items():
        if var.dtype == np.float32:  # compact routers store float32; compute in float64
            idata.posterior[name] = var.astype(np.float64)
    router.idata_ = idata
    d = meta.get("diagnostics", {})
    tables = meta.get("diagnostic_tables")
    compact = bool((meta.get("posterior") or {}).get("compact", False))
    if d.get("method") == "nuts" and compact and tables is not None:
        router.diagnostics_ = Diagnostics(
            method="nuts",
            seconds=float(d.get("seconds", 0.0)),
            table=_table(tables["abilities"]),
            divergences=int(d.get("divergences", 0)),
            variables=_table(tables["variables"], "variable"),
        )
        router.diagnostics_.converged = router.diagnostics_.ok
    elif d.get("method") == "nuts":
        # R-hat / ESS are recomputed from the saved draws, so the verdict survives a reload
        try:
            router.diagnostics_ = diagnose(
                idata, method="nuts", seconds=float(d.get("seconds", 0.0))
            )
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RouterFileError(
                f"{path / 'posterior.nc'}: cannot recompute the NUTS diagnostics ({first})"
            ) from None
    else:
        router.diagnostics_ = Diagnostics(
            method=d.get("method", "advi"),
            seconds=float(d.get("seconds", 0.0)),
            divergences=int(d.get("divergences", 0)),
            iterations=int(d.get("iterations", 0)),
            converged=bool(d.get("converged", True)),
        )
    if d.get("interrupted"):
        router.diagnostics_.interrupted = True
        router.diagnostics_.converged = False
    router.encoder_id_ = encoder_id
    router.embedding_dim_ = int(meta["embedding_dim"])
    router._draws = None
    return router
