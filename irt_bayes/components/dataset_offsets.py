"""LLM x dataset ability offsets: an LLM can be better on one task than its ability says."""

from __future__ import annotations

import numpy as np
import pymc as pm

from irt_bayes.components.base import Array, Backend, BuildContext, Component, Inputs, Layout


class DatasetOffsets(Component):
    """Adds ``(sum_k a_ik) gamma_{d(i), j}`` to the linear predictor.

    The offsets are abilities, so the query's discrimination scales them: within a
    dataset a 2PL then ranks LLMs the same way on every query (added outside ``a`` the
    ranking flipped with ``a_i``, which cost RouterDC routing 0.3 points). Zero-sum over
    LLMs *and* datasets: an LLM's average offset would otherwise duplicate its ability
    (NUTS R-hat 1.05; ADVI moved the abilities into ``gamma``). An unseen dataset draws
    fresh offsets from ``N(0, tau_gamma^2)``, centred over LLMs.
    """

    name = "dataset_offsets"
    dataset_variables = ("gamma",)

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.variables = {"gamma": ("dataset", "llm"), "tau_gamma": ()}
        self.llm_scales = {"gamma": "tau_gamma"}

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        tau = pm.HalfNormal("tau_gamma", self.spec.priors.dataset_ability_scale)
        z = pm.ZeroSumNormal("gamma_z", sigma=1.0, dims=("dataset", "llm"), n_zerosum_axes=2)
        gamma = pm.Deterministic("gamma", tau * z, dims=("dataset", "llm"))
        return {"gamma": gamma, "tau_gamma": tau}

    def eta(  # noqa: D102
        self,
        v: dict[str, Array],
        inp: Inputs,
        items: dict[str, Array],
        layout: Layout,
        backend: Backend,
    ) -> Array:
        load = layout.query(items["a"].sum(axis=-1))
        return load * layout.cell(v["gamma"], inp.dataset, inp.sample_ndim)

    def new_dataset(self, v: dict[str, np.ndarray], rng: np.random.Generator) -> None:  # noqa: D102
        gamma = v["gamma"]
        new = v["tau_gamma"][:, None] * rng.standard_normal((gamma.shape[0], gamma.shape[2]))
        new = new - new.mean(axis=1, keepdims=True)
        v["gamma"] = np.concatenate([gamma, new[:, None, :]], axis=1)
