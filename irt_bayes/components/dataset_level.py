"""Dataset level of difficulty: partially pooled, zero-sum offsets of each dataset's mean."""

from __future__ import annotations

import numpy as np
import pymc as pm

from irt_bayes.components.base import (
    Array,
    Backend,
    BuildContext,
    Component,
    Inputs,
    take_dataset,
)


class DatasetLevel(Component):
    """Adds ``dataset_effect[d(i)]`` to ``items["b"]``.

    Zero-sum over datasets, so ``mu_b`` stays the average dataset's difficulty and the
    two cannot drift against each other. The spread ``sigma_dataset`` is learned from
    three datasets on; with two it cannot be, and is fixed at its prior scale. An unseen
    dataset draws a new effect from ``N(0, sigma_dataset^2)``.
    """

    name = "dataset_level"
    dataset_variables = ("dataset_effect",)

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.learned_scale = structure.n_datasets >= 3
        self.variables["dataset_effect"] = ("dataset",)
        if self.learned_scale:
            self.variables["sigma_dataset"] = ()

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        scale = self.spec.priors.dataset_scale
        out = {}
        if self.learned_scale:
            out["sigma_dataset"] = pm.HalfNormal("sigma_dataset", scale)
            sigma = out["sigma_dataset"]
        else:
            sigma = scale
        z = pm.ZeroSumNormal("dataset_z", sigma=1.0, dims="dataset")
        out["dataset_effect"] = pm.Deterministic("dataset_effect", sigma * z, dims="dataset")
        return out

    def items(  # noqa: D102
        self, v: dict[str, Array], inp: Inputs, items: dict[str, Array], backend: Backend
    ) -> None:
        items["b"] = items.get("b", 0.0) + take_dataset(
            v["dataset_effect"], inp.dataset, inp.sample_ndim
        )

    def new_dataset(self, v: dict[str, np.ndarray], rng: np.random.Generator) -> None:  # noqa: D102
        effect = v["dataset_effect"]
        sigma = v.get("sigma_dataset", np.full(effect.shape[0], self.spec.priors.dataset_scale))
        new = sigma * rng.standard_normal(effect.shape[0])
        v["dataset_effect"] = np.concatenate([effect, new[:, None]], axis=1)
