"""Model components: one module per term, assembled here into the linear predictor.

For LLM j and query i with K skills the terms add up to::

    eta_ij = a_i . theta_j                      ability          (ability.py)
           + (sum_k a_ik) gamma_{d(i), j}       dataset offsets  (dataset_offsets.py)
           + x_i . w_j                          LLM slopes       (llm_slopes.py)
           - b_i                                difficulty       (difficulty.py)

    a_i = softplus(c + x_i . beta_a + delta_a_i)        discrimination.py (or a = 1)
    b_i = mu_b + dataset_effect_{d(i)} + x_i . beta_b + delta_b_i
                                                  difficulty.py + dataset_level.py
    P_ij = c_i + (1 - c_i) sigmoid(eta_ij)        guessing.py (c = 0 without it)
    log p(y | P) with log1pexp                    likelihood.py

Which terms a model has is decided by :func:`components_for` from the spec and the
data's :class:`Structure` (saved with the router), never from posterior variable names.
The same component code builds the PyMC graph (:mod:`irt_bayes.model`), predicts new
queries and evaluates the training log-likelihood (:mod:`irt_bayes.predict`), and feeds
the report: there is one definition of the linear predictor.

Adding a term means one module here with a :class:`Component` subclass, a line in
:func:`components_for`, and the spec key that switches it on.
"""

from __future__ import annotations

from typing import Any

from irt_bayes.components.ability import Ability
from irt_bayes.components.base import (
    NUMPY,
    PYTENSOR,
    Backend,
    BuildContext,
    Component,
    Grid,
    Inputs,
    Layout,
    Pairs,
    Structure,
    take_dataset,
)
from irt_bayes.components.dataset_level import DatasetLevel
from irt_bayes.components.dataset_offsets import DatasetOffsets
from irt_bayes.components.difficulty import Difficulty
from irt_bayes.components.discrimination import C_DISCRIMINATION, Discrimination
from irt_bayes.components.guessing import Guessing
from irt_bayes.components.likelihood import log_likelihood, log_response, response
from irt_bayes.components.llm_slopes import LLMSlopes

__all__ = [
    "NUMPY",
    "PYTENSOR",
    "C_DISCRIMINATION",
    "Backend",
    "BuildContext",
    "Component",
    "Grid",
    "Inputs",
    "Layout",
    "Pairs",
    "Structure",
    "components_for",
    "contributions",
    "has",
    "item_quantities",
    "linear_predictor",
    "log_likelihood",
    "log_response",
    "posterior_variables",
    "probability",
    "response",
    "take_dataset",
]

Array = Any


def components_for(spec: Any, structure: Structure) -> list[Component]:
    """The model's terms, in evaluation order, for a spec and what the data supports.

    Parameters
    ----------
    spec : ModelSpec
        Which terms are wanted.
    structure : Structure
        Datasets, features and groups found in the training data.

    Returns
    -------
    list of Component
        Item providers (discrimination, difficulty, dataset level, guessing) before the
        terms that read their quantities.
    """
    datasets = structure.n_datasets >= 2
    out: list[Component] = [Discrimination(spec, structure), Difficulty(spec, structure)]
    if datasets and spec.dataset_level:
        out.append(DatasetLevel(spec, structure))
    if spec.guessing != "none":
        out.append(Guessing(spec, structure))
    out.append(Ability(spec, structure))
    if datasets and spec.dataset_abilities:
        out.append(DatasetOffsets(spec, structure))
    if spec.llm_slopes and structure.n_features:
        out.append(LLMSlopes(spec, structure))
    return out


def has(components: list[Component], name: str) -> bool:
    """Whether a component called ``name`` is part of the model."""
    return any(c.name == name for c in components)


def posterior_variables(components: list[Component]) -> dict[str, tuple[str, ...]]:
    """Every posterior variable the components read, with its dims."""
    out: dict[str, tuple[str, ...]] = {}
    for c in components:
        out.update(c.variables)
    return out


def item_quantities(
    components: list[Component], values: dict[str, Array], inp: Inputs, backend: Backend
) -> dict[str, Array]:
    """Per-query quantities: ``a`` (..., Q, K), ``b`` (..., Q) and ``c`` (..., Q) if any."""
    items: dict[str, Array] = {}
    for c in components:
        c.items(values, inp, items, backend)
    return items


def contributions(
    components: list[Component],
    values: dict[str, Array],
    inp: Inputs,
    layout: Layout,
    backend: Backend,
    items: dict[str, Array] | None = None,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Each term's contribution to the linear predictor, by component name, and the items.

    The report uses it to show one term on its own (an LLM's ability on a dataset is
    every contribution but the difficulty's); :func:`linear_predictor` sums them.
    """
    if items is None:
        items = item_quantities(components, values, inp, backend)
    out = {}
    for c in components:
        part = c.eta(values, inp, items, layout, backend)
        if part is not None:
            out[c.name] = part
    return out, items


def linear_predictor(
    components: list[Component],
    values: dict[str, Array],
    inp: Inputs,
    layout: Layout,
    backend: Backend,
    items: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
    """The sum of every term's contribution, and the item quantities it used.

    Parameters
    ----------
    components : list of Component
    values : dict
        Parameter values by variable name: PyTensor variables inside the model, numpy
        draws (with a leading sample axis) outside it.
    inp : Inputs
        Query features and datasets.
    layout : Layout
        :class:`Grid` for every (query, LLM) pair, :class:`Pairs` for observed ones.
    backend : Backend
        :data:`PYTENSOR` or :data:`NUMPY`.
    items : dict, optional
        Precomputed :func:`item_quantities`.

    Returns
    -------
    eta : array
        Laid out as the layout says.
    items : dict
    """
    parts, items = contributions(components, values, inp, layout, backend, items)
    eta = None
    for part in parts.values():
        eta = part if eta is None else eta + part
    return eta, items


def probability(
    components: list[Component],
    values: dict[str, Array],
    inp: Inputs,
    layout: Layout,
    backend: Backend = NUMPY,
) -> Array:
    """P(correct), laid out: the response function of the linear predictor."""
    eta, items = linear_predictor(components, values, inp, layout, backend)
    c = items.get("c")
    return response(eta, None if c is None else layout.query(c), backend)
