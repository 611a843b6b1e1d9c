"""irt-bayes: Bayesian routing of queries across LLMs with hierarchical IRT in PyMC.

The public API in one place; see ``docs/architecture.md`` for the module map.

The names below are imported on first use (PEP 562), so ``import irt_bayes`` and the
``irt-bayes --version``/``--help`` commands do not pay for PyMC, ArviZ and PyTorch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    "DataError": "irt_bayes.errors",
    "IRTRouter": "irt_bayes.router",
    "IrtBayesError": "irt_bayes.errors",
    "ModelSpec": "irt_bayes.spec",
    "QueryEncoder": "irt_bayes.encoding",
    "ResponseData": "irt_bayes.data",
    "RouterFileError": "irt_bayes.errors",
    "SimulatedPool": "irt_bayes.simulate",
    "SpecError": "irt_bayes.errors",
    "available_specs": "irt_bayes.spec",
    "load_queries": "irt_bayes.data",
    "load_responses": "irt_bayes.data",
    "load_spec": "irt_bayes.spec",
    "simulate_pool": "irt_bayes.simulate",
}

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

try:
    __version__ = version("irt-bayes")
except PackageNotFoundError:  # a bare checkout, not installed
    __version__ = "unknown"

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from irt_bayes.data import ResponseData, load_queries, load_responses
    from irt_bayes.encoding import QueryEncoder
    from irt_bayes.errors import DataError, IrtBayesError, RouterFileError, SpecError
    from irt_bayes.router import IRTRouter
    from irt_bayes.simulate import SimulatedPool, simulate_pool
    from irt_bayes.spec import ModelSpec, available_specs, load_spec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'irt_bayes' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
