"""Query discrimination: ``a_i = softplus(c + x_i . beta_a + delta_a_i)`` per skill, or fixed."""

from __future__ import annotations

import numpy as np
import pymc as pm

from irt_bayes.components.base import Array, Backend, BuildContext, Component, Inputs

# softplus(C_DISCRIMINATION) == 1: a query with the average embedding has a = 1, which
# pins the scale of the abilities.
C_DISCRIMINATION = float(np.log(np.expm1(1.0)))


class Discrimination(Component):
    """Provides ``items["a"]`` (query, skill), which scales abilities and their offsets.

    ``discrimination = "free"``: a softplus (so a >= 0 and no skill can flip sign) of
    an intercept fixed at ``C_DISCRIMINATION``, embedding slopes ``beta_a`` shrunk by a
    learned scale, and a per-query residual ``delta_a``. ``"fixed"`` (Rasch): a = 1.
    """

    name = "discrimination"

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.free = spec.discrimination == "free"
        if self.free:
            if structure.n_features:
                self.variables["beta_a"] = ("feature", "skill")
            if spec.item_residuals:
                self.variables["sigma_a"] = ()
            self.residual_scales["delta_a"] = "sigma_a"
            self.variables["delta_a"] = ("query", "skill")

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        out = {}
        p = self.spec.priors
        if "beta_a" in self.variables:
            tau = pm.HalfNormal("tau_a", p.slope_scale)
            out["beta_a"] = pm.Deterministic(
                "beta_a",
                ctx.scaled_normal("beta_a", tau, ("feature", "skill")),
                dims=("feature", "skill"),
            )
        if "delta_a" in self.variables:
            sigma = pm.HalfNormal("sigma_a", p.discrimination_residual)
            out["delta_a"] = pm.Deterministic(
                "delta_a",
                ctx.scaled_normal("delta_a", sigma, ("query", "skill")),
                dims=("query", "skill"),
            )
        return out

    def items(  # noqa: D102
        self, v: dict[str, Array], inp: Inputs, items: dict[str, Array], backend: Backend
    ) -> None:
        if not self.free:
            items["a"] = backend.ones((inp.n_queries, 1))
            return
        lin = C_DISCRIMINATION + backend.zeros((inp.n_queries, len(self.structure.skills)))
        if "beta_a" in v:
            lin = lin + inp.features @ v["beta_a"]
        if "delta_a" in v:
            lin = lin + v["delta_a"]
        items["a"] = backend.softplus(lin)
