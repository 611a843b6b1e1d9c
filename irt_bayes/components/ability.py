"""LLM abilities: zero-sum over LLMs, a learned population spread, optional provider groups."""

from __future__ import annotations

import pymc as pm
import pytensor.tensor as pt

from irt_bayes.components.base import Array, Backend, BuildContext, Component, Inputs, Layout


class Ability(Component):
    """``theta_j`` (llm, skill); adds ``a_i . theta_j`` to the linear predictor.

    ``theta = sigma_theta * (sqrt(rho) g_group(j) + sqrt(1 - rho) z_j)``, centred over
    LLMs in every skill: abilities are relative to the pool's average LLM, so the
    difficulty intercept carries the overall level. With provider groups (``org/model``
    prefixes) LLMs of one provider share part of their ability through ``rho``.
    """

    name = "ability"

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.variables = {"theta": ("llm", "skill"), "sigma_theta": ("skill",)}
        self.llm_scales = {"theta": "sigma_theta"}

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        sigma = pm.HalfNormal("sigma_theta", self.spec.priors.ability_scale, dims="skill")
        z = pm.ZeroSumNormal("theta_z", sigma=1.0, dims=("skill", "llm"))
        if self.structure.groups is not None:
            rho = pm.Beta("rho_group", 2.0, 2.0)
            g = pm.ZeroSumNormal("group_z", sigma=1.0, dims=("skill", "group"))
            raw = pt.sqrt(rho) * g[:, list(self.structure.group_idx)] + pt.sqrt(1.0 - rho) * z
            raw = raw - raw.mean(axis=1, keepdims=True)
        else:
            raw = z
        theta = pm.Deterministic("theta", (sigma[:, None] * raw).T, dims=("llm", "skill"))
        return {"theta": theta}

    def eta(  # noqa: D102
        self,
        v: dict[str, Array],
        inp: Inputs,
        items: dict[str, Array],
        layout: Layout,
        backend: Backend,
    ) -> Array:
        return layout.inner(items["a"], v["theta"], backend)
