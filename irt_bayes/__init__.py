"""irt-bayes: Bayesian routing of queries across LLMs with hierarchical IRT in PyMC.

The public API in one place; see ``docs/architecture.md`` for the module map.
"""

from irt_bayes.data import ResponseData, load_queries, load_responses
from irt_bayes.encoding import QueryEncoder
from irt_bayes.errors import DataError, IrtBayesError, RouterFileError, SpecError
from irt_bayes.router import IRTRouter
from irt_bayes.simulate import SimulatedPool, simulate_pool
from irt_bayes.spec import ModelSpec, available_specs, load_spec

__all__ = [
    "DataError",
    "IRTRouter",
    "IrtBayesError",
    "ModelSpec",
    "QueryEncoder",
    "ResponseData",
    "RouterFileError",
    "SimulatedPool",
    "SpecError",
    "available_specs",
    "load_queries",
    "load_responses",
    "load_spec",
    "simulate_pool",
]

__version__ = "0.1.0"
