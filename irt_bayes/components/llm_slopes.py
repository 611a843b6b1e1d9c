"""LLM-specific embedding slopes: the full-rank version of the MIRT term x_i W_a theta_j."""

from __future__ import annotations

import pymc as pm

from irt_bayes.components.base import Array, Backend, BuildContext, Component, Inputs, Layout


class LLMSlopes(Component):
    """Adds ``x_i . w_j`` to the linear predictor.

    Zero-sum over LLMs, so the slopes cannot move the difficulty slopes; shrunk towards
    0 by a learned scale.
    """

    name = "llm_slopes"

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.variables.update(llm_slopes=("feature", "llm"), tau_w=())
        self.llm_scales = {"llm_slopes": "tau_w"}

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        tau = pm.HalfNormal("tau_w", self.spec.priors.slope_scale)
        z = pm.ZeroSumNormal("w_z", sigma=1.0, dims=("feature", "llm"))
        return {"llm_slopes": pm.Deterministic("llm_slopes", tau * z, dims=("feature", "llm"))}

    def eta(  # noqa: D102
        self,
        v: dict[str, Array],
        inp: Inputs,
        items: dict[str, Array],
        layout: Layout,
        backend: Backend,
    ) -> Array:
        return layout.inner(inp.features, backend.swap_last(v["llm_slopes"]), backend)
