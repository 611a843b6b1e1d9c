"""Session-wide fixtures: small simulated pools and routers fitted once per session.

Fitting is the expensive part of these tests, so (as in bambi's test-suite) each
model is fitted once and shared by every test that only reads from it. Tests must
not mutate these routers; copy or refit when a test needs to change one.
"""

from __future__ import annotations

import os
import warnings

import pandas as pd
import pytest

# Never let a test reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from irt_bayes import IRTRouter, QueryEncoder, SimulatedPool, simulate_pool
from irt_bayes.inference import ConvergenceWarning

SIM_SEED = 11
NUTS_SETTINGS = {"chains": 2, "draws": 400, "tune": 300}


@pytest.fixture(scope="session")
def embed_cache(tmp_path_factory: pytest.TempPathFactory):
    """One embedding cache for the session: it is keyed by text, so sharing is safe."""
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="session")
def encoder(embed_cache) -> QueryEncoder:
    """A default encoder on the session cache; its model is loaded at most once."""
    return QueryEncoder(cache_dir=embed_cache, show_progress=False)


@pytest.fixture(scope="session")
def sim_pool() -> SimulatedPool:
    """10 LLMs x 400 queries, binary scores, one skill."""
    return simulate_pool(n_queries=400, n_llms=10, seed=SIM_SEED)


@pytest.fixture(scope="session")
def new_queries() -> pd.DataFrame:
    """Queries the routers were not trained on (other seed), with dataset labels."""
    q = simulate_pool(n_queries=60, n_llms=2, seed=SIM_SEED + 1000).queries
    q["query_id"] = [f"new-{i}" for i in range(len(q))]
    return q


def _fit(router: IRTRouter, responses: pd.DataFrame) -> IRTRouter:
    # A ConvergenceWarning is part of the result, not an error, for these small fits;
    # tests that care about diagnostics read router.diagnostics_.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return router.fit(responses)


@pytest.fixture(scope="session")
def advi_router(sim_pool, embed_cache) -> IRTRouter:
    """2PL fitted by ADVI to ``sim_pool`` with the default (string) encoder."""
    router = IRTRouter(
        "2pl", method="advi", progress=False, cache_dir=embed_cache, seed=0, holdout=0.0
    )
    return _fit(router, sim_pool.responses)


@pytest.fixture(scope="session")
def nuts_router(sim_pool, encoder) -> IRTRouter:
    """2PL sampled by NUTS (2 short chains) on ``sim_pool``: about 20-40 s on 2 cores."""
    router = IRTRouter(
        "2pl", method="nuts", progress=False, encoder=encoder, holdout=0.0, **NUTS_SETTINGS
    )
    return _fit(router, sim_pool.responses)


@pytest.fixture(scope="session")
def auto_router(sim_pool, encoder) -> IRTRouter:
    """The default router (model="auto", held-out check) fitted by ADVI on ``sim_pool``."""
    return _fit(IRTRouter(encoder=encoder, progress=False), sim_pool.responses)
