"""The machinery every model component shares: backends, layouts and the component protocol.

A component is one term of the model (abilities, difficulty, discrimination, ...). It

1. builds its own PyMC variables from the spec (:meth:`Component.build`), and
2. says, once, what it adds to the linear predictor (:meth:`Component.eta`) or which
   per-query quantity it provides to the others (:meth:`Component.items`), in code
   that runs on PyTensor tensors inside the model *and* on numpy posterior draws.

The two evaluations differ in three ways, each carried by a small object so that the
component code does not branch on them:

* :class:`Backend` -- which array library (``numpy`` or ``pytensor.tensor``) supplies
  ``softplus``, ``log1pexp`` and friends;
* the leading *sample* axes: none inside the PyMC graph, one (posterior draws) in
  numpy; component code writes ``v[..., None]`` and ``x @ beta`` so both broadcast;
* the :class:`Layout` -- how a per-query array meets a per-LLM array: on the full
  (query, LLM) grid (:class:`Grid`) or on observed pairs only (:class:`Pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytensor.tensor as pt
from scipy.special import expit, gammaln, log_expit

__all__ = [
    "Backend",
    "NUMPY",
    "PYTENSOR",
    "Layout",
    "Grid",
    "Pairs",
    "Structure",
    "BuildContext",
    "Component",
    "Inputs",
    "take_dataset",
]

Array = Any  # numpy.ndarray or a PyTensor variable


@dataclass(frozen=True)
class Backend:
    """The array functions components may call, for one array library."""

    name: str
    log: Any
    gammaln: Any
    softplus: Any
    log1pexp: Any
    logaddexp: Any
    log1m: Any
    sigmoid: Any
    log_sigmoid: Any
    zeros: Any
    ones: Any
    swap_last: Any


NUMPY = Backend(
    name="numpy",
    log=np.log,
    gammaln=gammaln,
    softplus=lambda x: np.logaddexp(0.0, x),
    log1pexp=lambda x: np.logaddexp(0.0, x),
    logaddexp=np.logaddexp,
    log1m=lambda x: np.log1p(-x),
    sigmoid=expit,
    log_sigmoid=log_expit,
    zeros=np.zeros,
    ones=np.ones,
    swap_last=lambda x: np.swapaxes(x, -1, -2),
)
PYTENSOR = Backend(
    name="pytensor",
    log=pt.log,
    gammaln=pt.gammaln,
    softplus=pt.softplus,
    log1pexp=pt.log1pexp,
    logaddexp=pt.logaddexp,
    log1m=lambda x: pt.log1p(-x),
    sigmoid=pt.sigmoid,
    # log sigmoid(x) = -log1pexp(-x): finite gradients at large |x| (see model.py)
    log_sigmoid=lambda x: -pt.log1pexp(-x),
    zeros=pt.zeros,
    ones=pt.ones,
    swap_last=lambda x: x.swapaxes(-1, -2),
)


def take_dataset(values: Array, dataset: Array, sample_ndim: int) -> Array:
    """Index the dataset axis of ``values`` (..., D[, J]) by each query's dataset.

    ``dataset`` is (Q,), the same for every draw, or (S, Q) in numpy when the dataset
    of a new query is drawn per posterior draw. Returns (..., Q[, J]).
    """
    if getattr(dataset, "ndim", 1) == 1:
        return values[(slice(None),) * sample_ndim + (dataset,)]
    rows = np.arange(dataset.shape[0])[:, None]
    return values[rows, dataset]


class Layout:
    """How per-query and per-LLM arrays combine into per-(query, LLM) values."""

    def query(self, v: Array) -> Array:
        """Lift a per-query array (..., Q) to the layout."""
        raise NotImplementedError

    def inner(self, q: Array, m: Array, backend: Backend) -> Array:
        """Contract (..., Q, K) with (..., J, K) over K, laid out."""
        raise NotImplementedError

    def cell(self, table: Array, dataset: Array, sample_ndim: int) -> Array:
        """Entries ``table[..., d(i), j]`` of a (..., D, J) table, laid out."""
        raise NotImplementedError


@dataclass(frozen=True)
class Grid(Layout):
    """Every (query, LLM) pair: results are (..., Q, J)."""

    def query(self, v: Array) -> Array:  # noqa: D102
        return v[..., None]

    def inner(self, q: Array, m: Array, backend: Backend) -> Array:  # noqa: D102
        return q @ backend.swap_last(m)

    def cell(self, table: Array, dataset: Array, sample_ndim: int) -> Array:  # noqa: D102
        return take_dataset(table, dataset, sample_ndim)


@dataclass(frozen=True)
class Pairs(Layout):
    """Observed pairs only: ``query_idx[n]`` meets ``llm_idx[n]``; results are (..., n).

    The indices may be numpy arrays or PyTensor variables (minibatches).
    """

    query_idx: Array
    llm_idx: Array

    def query(self, v: Array) -> Array:  # noqa: D102
        return v[..., self.query_idx]

    def inner(self, q: Array, m: Array, backend: Backend) -> Array:  # noqa: D102
        return (q[..., self.query_idx, :] * m[..., self.llm_idx, :]).sum(axis=-1)

    def cell(self, table: Array, dataset: Array, sample_ndim: int) -> Array:  # noqa: D102
        if isinstance(self.query_idx, np.ndarray):
            d = dataset[self.query_idx]
        else:  # a minibatch index: look the datasets up in the graph
            d = pt.as_tensor(dataset)[self.query_idx]
        return table[(slice(None),) * sample_ndim + (d, self.llm_idx)]


@dataclass(frozen=True)
class Structure:
    """What the training data lets a spec build: saved with the router, read at load.

    Attributes
    ----------
    llms, skills : list of str
        Coordinates of the abilities.
    n_features : int
        Embedding components the item terms are conditioned on.
    datasets : list of str or None
        Datasets (labels or latent clusters) when there are two or more.
    groups : list of str or None
        Provider groups of the abilities, when some group has 2+ LLMs.
    group_idx : list of int or None
        Group of each LLM.
    likelihood : str
        ``bernoulli``, ``binomial`` or ``fractional``.
    """

    llms: list[str]
    skills: list[str]
    n_features: int
    likelihood: str
    datasets: list[str] | None = None
    groups: list[str] | None = None
    group_idx: list[int] | None = None

    @property
    def n_datasets(self) -> int:
        """Number of datasets (0 without a dataset level)."""
        return 0 if self.datasets is None else len(self.datasets)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return {
            "llms": list(self.llms),
            "skills": list(self.skills),
            "n_features": int(self.n_features),
            "likelihood": self.likelihood,
            "datasets": None if self.datasets is None else list(self.datasets),
            "groups": None if self.groups is None else list(self.groups),
            "group_idx": None if self.group_idx is None else [int(g) for g in self.group_idx],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Structure:
        """Inverse of :meth:`to_dict`."""
        return cls(**raw)


@dataclass
class BuildContext:
    """What a component needs to create its PyMC variables."""

    spec: Any  # ModelSpec (typed loosely to avoid an import cycle)
    structure: Structure
    features: Array  # (Q, F) tensor of the training features
    dataset_idx: np.ndarray | None  # (Q,)

    def scaled_normal(self, name: str, scale: Array, dims: tuple[str, ...]) -> Array:
        """A zero-mean normal with a learned scale, non-centred unless the spec says not."""
        import pymc as pm

        if self.spec.noncentered:
            return scale * pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
        return pm.Normal(f"{name}_c", 0.0, scale, dims=dims)


@dataclass(frozen=True)
class Inputs:
    """Per-query inputs of the linear predictor.

    Attributes
    ----------
    features : array
        (Q, F) standardised embedding components of the queries.
    dataset : array or None
        (Q,) dataset position of each query, or (S, Q) when drawn per posterior draw.
    sample_ndim : int
        Leading sample axes of the parameter values: 0 in the PyMC graph, 1 in numpy.
    """

    features: Array
    dataset: Array | None = None
    sample_ndim: int = 0

    @property
    def n_queries(self) -> Array:
        """Number of queries (symbolic inside the graph)."""
        return self.features.shape[0]


class Component:
    """One term of the model; subclasses set ``name`` and ``variables``.

    Attributes
    ----------
    name : str
        Key of the component (``"ability"``, ``"difficulty"`` ...).
    variables : dict of str to tuple of str
        Posterior variables the component's :meth:`items` and :meth:`eta` read, with
        their dims (without ``chain``/``draw``). Those whose first dim is ``query`` are
        the query's own latent values (residuals): for a new query they are taken from
        a training query (see :mod:`irt_bayes.predict`).
    dataset_variables : tuple of str
        Variables with a ``dataset`` axis; :meth:`new_dataset` appends an unseen
        dataset's draw to each.
    residual_scales : dict of str to str
        For each per-query variable, the posterior variable of its prior scale: the
        ``"normal"`` predictive draws a new query's value from ``N(0, scale^2)``.
    llm_scales : dict of str to str
        For each variable with an ``llm`` axis, the posterior variable of its population
        scale: an LLM added after the fit (:mod:`irt_bayes.onboarding`) has the prior
        ``N(0, scale^2)`` for its values. The term must be linear in them.
    """

    name: ClassVar[str] = ""
    variables: dict[str, tuple[str, ...]]
    dataset_variables: tuple[str, ...] = ()
    residual_scales: dict[str, str]
    llm_scales: dict[str, str]

    def __init__(self, spec: Any, structure: Structure) -> None:
        self.spec = spec
        self.structure = structure
        self.variables = {}
        self.residual_scales = {}
        self.llm_scales = {}

    # ---------------------------------------------------------------- PyMC graph
    def build(self, ctx: BuildContext) -> dict[str, Array]:
        """Create the PyMC variables (inside a model context); return ``variables``."""
        return {}

    # ---------------------------------------------------------------- both backends
    def items(
        self, v: dict[str, Array], inp: Inputs, items: dict[str, Array], backend: Backend
    ) -> None:
        """Add per-query quantities (``a``, ``b``, ``c``) to ``items``, in place."""

    def eta(
        self,
        v: dict[str, Array],
        inp: Inputs,
        items: dict[str, Array],
        layout: Layout,
        backend: Backend,
    ) -> Array | None:
        """Contribution of the term to the linear predictor, laid out (None for none)."""
        return None

    # ---------------------------------------------------------------- numpy only
    def new_dataset(self, v: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        """Append a draw for an unseen dataset to each of ``dataset_variables``, in place."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.variables)})"
