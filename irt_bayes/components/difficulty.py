"""Query difficulty: ``b_i = mu_b + x_i . beta_b + delta_b_i`` (plus the dataset level)."""

from __future__ import annotations

import pymc as pm

from irt_bayes.components.base import Array, Backend, BuildContext, Component, Inputs, Layout


class Difficulty(Component):
    """Provides ``items["b"]`` and subtracts it from the linear predictor.

    The intercept ``mu_b`` is the difficulty of the average dataset (the dataset level,
    when present, adds zero-sum offsets to it); ``beta_b`` are embedding slopes shrunk by
    a learned scale; ``delta_b`` the query's own residual (``item_residuals = false``
    drops it, leaving a model with no per-query latent values).
    """

    name = "difficulty"

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.variables["mu_b"] = ()
        if structure.n_features:
            self.variables["beta_b"] = ("feature",)
        if spec.item_residuals:
            self.variables["sigma_b"] = ()
            self.residual_scales["delta_b"] = "sigma_b"
            self.variables["delta_b"] = ("query",)

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        p = self.spec.priors
        out = {"mu_b": pm.Normal("mu_b", 0.0, p.difficulty_intercept)}
        if "beta_b" in self.variables:
            tau = pm.HalfNormal("tau_b", p.slope_scale)
            out["beta_b"] = pm.Deterministic(
                "beta_b", ctx.scaled_normal("beta_b", tau, ("feature",)), dims="feature"
            )
        if "delta_b" in self.variables:
            sigma = pm.HalfNormal("sigma_b", p.difficulty_residual)
            out["delta_b"] = pm.Deterministic(
                "delta_b", ctx.scaled_normal("delta_b", sigma, ("query",)), dims="query"
            )
        return out

    def items(  # noqa: D102
        self, v: dict[str, Array], inp: Inputs, items: dict[str, Array], backend: Backend
    ) -> None:
        b = v["mu_b"][..., None] + backend.zeros((inp.n_queries,))
        if "beta_b" in v:
            b = b + (inp.features @ v["beta_b"][..., :, None])[..., 0]
        if "delta_b" in v:
            b = b + v["delta_b"]
        items["b"] = b + items.get("b", 0.0)

    def eta(  # noqa: D102
        self,
        v: dict[str, Array],
        inp: Inputs,
        items: dict[str, Array],
        layout: Layout,
        backend: Backend,
    ) -> Array:
        return -layout.query(items["b"])
