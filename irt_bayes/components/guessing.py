"""Lower asymptote (3PL): ``P = c + (1 - c) sigmoid(eta)``, for multiple-choice queries."""

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


class Guessing(Component):
    """Provides ``items["c"]``, the probability of a correct answer by chance.

    ``guessing = "fixed"``: ``c = 1 / choices`` for every query. ``"learned"``: one
    ``c`` per dataset (one in all without datasets) with a Beta prior of mean
    ``1 / choices`` and concentration ``priors.guessing_concentration``; an unseen
    dataset draws its ``c`` from that prior.
    """

    name = "guessing"

    def __init__(self, spec, structure) -> None:
        super().__init__(spec, structure)
        self.learned = spec.guessing == "learned"
        self.per_dataset = self.learned and structure.n_datasets >= 2
        if self.learned:
            self.variables["guessing"] = ("dataset",) if self.per_dataset else ()
        if self.per_dataset:
            self.dataset_variables = ("guessing",)

    def _prior(self) -> tuple[float, float]:
        mean, conc = 1.0 / self.spec.choices, self.spec.priors.guessing_concentration
        return mean * conc, (1.0 - mean) * conc

    def build(self, ctx: BuildContext) -> dict[str, Array]:  # noqa: D102
        if not self.learned:
            return {}
        alpha, beta = self._prior()
        dims = "dataset" if self.per_dataset else None
        return {"guessing": pm.Beta("guessing", alpha, beta, dims=dims)}

    def items(  # noqa: D102
        self, v: dict[str, Array], inp: Inputs, items: dict[str, Array], backend: Backend
    ) -> None:
        zeros = backend.zeros((inp.n_queries,))
        if not self.learned:
            items["c"] = zeros + 1.0 / self.spec.choices
        elif self.per_dataset:
            items["c"] = take_dataset(v["guessing"], inp.dataset, inp.sample_ndim)
        else:
            items["c"] = v["guessing"][..., None] + zeros

    def new_dataset(self, v: dict[str, np.ndarray], rng: np.random.Generator) -> None:  # noqa: D102
        if self.per_dataset:
            c = v["guessing"]
            new = rng.beta(*self._prior(), size=c.shape[0])
            v["guessing"] = np.concatenate([c, new[:, None]], axis=1)
