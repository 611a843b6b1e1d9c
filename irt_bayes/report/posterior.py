"""What the report reads of a fitted router: its posterior draws and training responses.

The helpers every part of :mod:`irt_bayes.report` shares: a router or a path to one,
posterior draws stacked over chains, P(correct) and the LLM-dependent logit of the
training (query, LLM) pairs in blocks of draws (through the model's components, the
same expressions as its likelihood), and the observed responses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np

from irt_bayes.components import (
    NUMPY,
    Grid,
    Inputs,
    Pairs,
    contributions,
    item_quantities,
    probability,
)
from irt_bayes.data import ResponseData, load_responses
from irt_bayes.errors import IrtBayesError
from irt_bayes.predict import extract_draws, sample_index

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter

# Posterior draws per block when computing P(correct) for every (query, LLM): bounds memory
# at roughly _CHUNK * n_queries * n_llms floats (about 60 MB on RouterBench).
_CHUNK = 250

DataLike = ResponseData | str | os.PathLike | Sequence[str | os.PathLike] | None


def _as_router(router: Any) -> IRTRouter:
    """A fitted router, loading it when given a path."""
    from irt_bayes.router import IRTRouter

    if isinstance(router, IRTRouter):
        router._check_fitted()
        return router
    if isinstance(router, str | os.PathLike):
        return IRTRouter.load(router, progress=False)
    raise IrtBayesError(f"expected a fitted IRTRouter or a router directory, got {router!r}")


def _as_data(data: DataLike) -> ResponseData | None:
    if data is None or isinstance(data, ResponseData):
        return data
    if isinstance(data, str | os.PathLike):
        return load_responses(data)
    return load_responses(*data)


def _items(router: IRTRouter) -> dict[str, np.ndarray]:
    """Every posterior draw of the training queries' item parameters, chains stacked.

    ``b`` (difficulty, (sample, query)), ``a`` (discrimination, (sample, query, skill))
    and, with a guessing term, ``c``: computed by the model's components (a compact
    router does not store them), once per call; take every key needed from one call.
    """
    comps = router.components_
    draws = extract_draws(router.idata_, comps, sample_index(router.idata_, None))
    return item_quantities(comps, draws, _training_inputs(router), NUMPY)


@contextlib.contextmanager
def _quiet_arviz() -> Iterator[None]:
    """Silence ArviZ's single-chain shape notices (logged, not warned) and warnings."""
    # ArviZ logs through its own Logger instance, not the one logging.getLogger returns.
    logger = getattr(az, "_log", None) or logging.getLogger("arviz")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _query_ids(router: IRTRouter) -> np.ndarray:
    return router.idata_.posterior["query"].to_numpy().astype(str)


def _query_datasets(router: IRTRouter) -> np.ndarray:
    """Dataset label of each training query, in posterior order (``"all"`` without labels)."""
    tq = router.train_queries_
    ids = _query_ids(router)
    if "dataset" not in tq.columns:
        return np.full(len(ids), "all", dtype=object)
    ds = tq.set_index(tq["query_id"].astype(str))["dataset"].reindex(ids)
    return ds.fillna("").replace("", "(none)").astype(str).to_numpy(object)


def _skills(router: IRTRouter) -> list[str]:
    return [str(s) for s in router.idata_.posterior["skill"].to_numpy()]


def _group_means(labels: np.ndarray, groups: list[str]) -> np.ndarray:
    """(query, group) averaging matrix: one matmul per block instead of a loop."""
    w = (np.asarray(labels)[:, None] == np.asarray(groups, dtype=object)[None, :]).astype(float)
    return w / w.sum(axis=0, keepdims=True)


def _free_discrimination(router: IRTRouter) -> bool:
    """Whether queries have their own discrimination (2PL / MIRT), from the spec."""
    return router.spec_.discrimination == "free"


def _training_inputs(router: IRTRouter) -> Inputs:
    t = router.training_inputs()
    return Inputs(t["features"], t["dataset_idx"], sample_ndim=1)


def _blocks(router: IRTRouter, idx: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
    """The components' posterior draws at ``idx``, in blocks of ``_CHUNK`` samples."""
    comps = router.components_
    for lo in range(0, len(idx), _CHUNK):
        yield extract_draws(router.idata_, comps, idx[lo : lo + _CHUNK])


def _p_grid(router: IRTRouter, idx: np.ndarray) -> Iterator[np.ndarray]:
    """Blocks of P(correct) draws (block, Q, L) of every training (query, LLM) pair."""
    comps, inp = router.components_, _training_inputs(router)
    for draws in _blocks(router, idx):
        yield probability(comps, draws, inp, Grid())


def _ability_grid(router: IRTRouter, idx: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (LLM-dependent logit, LLM x dataset offset part), each (block, Q, L).

    The LLM-dependent logit is every term of the linear predictor but the difficulty:
    what an LLM brings to a query.
    """
    comps, inp = router.components_, _training_inputs(router)
    for draws in _blocks(router, idx):
        parts, _ = contributions(comps, draws, inp, Grid(), NUMPY)
        ability = sum(v for k, v in parts.items() if k != "difficulty")
        yield ability, parts.get("dataset_offsets", np.zeros_like(ability))


def _observations(router: IRTRouter) -> dict[str, np.ndarray]:
    """Training responses: indices, score in [0, 1] and trials (1 without)."""
    const, obs = router.idata_.constant_data, router.idata_.observed_data
    y = obs["y"].to_numpy().astype(float)
    n = const["trials"].to_numpy().astype(float) if "trials" in const else np.ones_like(y)
    return {
        "qi": const["query_idx"].to_numpy().astype(np.int64),
        "li": const["llm_idx"].to_numpy().astype(np.int64),
        "y": y,
        "n": n,
        "score": y / n,
    }


def _p_observed(router: IRTRouter, idx: np.ndarray) -> Iterator[np.ndarray]:
    """Blocks of P(correct) draws (block, n_obs) for the observed pairs."""
    comps, inp = router.components_, _training_inputs(router)
    o = _observations(router)
    for draws in _blocks(router, idx):
        yield probability(comps, draws, inp, Pairs(o["qi"], o["li"]))
