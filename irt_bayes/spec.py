"""Model specs: the small declarative object the PyMC model is built from.

A spec is a TOML file of a few keys. The named specs (``rasch``, ``2pl``,
``mirt-2`` ... ``mirt-4``) live in the repository's ``models/`` folder and are
installed as the ``irt_bayes.models`` package resources; any other TOML path works too.

Keys (all optional but ``name``):

=====================  ===========  ==================================================
key                    default      meaning
=====================  ===========  ==================================================
``name``               (required)   label used in reports and saved routers
``description``        ``""``       one line for humans
``skills``             ``1``        number of latent skills K
``discrimination``     ``"free"``   ``"free"`` (2PL / MIRT) or ``"fixed"`` (Rasch, a=1)
``embedding_dims``     ``24``       PCA components of the query embedding (0: none)
``dataset_level``      ``true``     partially pooled mean difficulty per ``dataset``
``dataset_abilities``  ``true``     LLM x dataset ability offsets, shrunk to zero
``llm_slopes``         ``false``    LLM-specific embedding slopes, shrunk to zero
``llm_groups``         ``true``     pool abilities by provider prefix (``org/model``)
``item_residuals``     ``true``     per-query difficulty/discrimination residuals
``guessing``           ``"none"``   lower asymptote: ``none``, ``learned`` (per
                                    dataset) or ``fixed`` at ``1 / choices`` (3PL)
``choices``            ``4``        answer options: the guessing rate's prior mean
``likelihood``         ``"auto"``   ``auto``, ``bernoulli``, ``binomial``, ``fractional``
``noncentered``        ``true``     non-centered parameterization of every residual
=====================  ===========  ==================================================

Each key switches a component of :mod:`irt_bayes.components` on or off.

Prior scales live in a ``[priors]`` table with the fields of :class:`Priors`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from irt_bayes.errors import SpecError

__all__ = ["Priors", "ModelSpec", "load_spec", "available_specs"]

Likelihood = Literal["auto", "bernoulli", "binomial", "fractional"]


@dataclass(frozen=True)
class Priors:
    """Scales of the half-normal / normal priors, in logit units.

    Features are standardised principal components, so the slope scales are per
    standard deviation of a component.
    """

    ability_scale: float = 1.5
    """Half-normal scale of the population spread of abilities (per skill)."""
    difficulty_intercept: float = 2.0
    """Normal scale of the mean difficulty."""
    dataset_scale: float = 1.0
    """Half-normal scale of the spread of per-dataset mean difficulties."""
    dataset_ability_scale: float = 0.5
    """Half-normal scale of the LLM x dataset ability offsets."""
    difficulty_residual: float = 1.5
    """Half-normal scale of sigma_b, the per-query difficulty residual."""
    slope_scale: float = 0.5
    """Half-normal scale of the shrinkage scale of embedding slopes."""
    discrimination_residual: float = 0.5
    """Half-normal scale of sigma_a, the per-query discrimination residual."""
    guessing_concentration: float = 5.0
    """Concentration of the Beta prior of a learned guessing rate (mean 1 / choices)."""


@dataclass(frozen=True)
class ModelSpec:
    """What model to build; see the module docstring for the keys.

    Examples
    --------
    >>> from irt_bayes.spec import load_spec
    >>> spec = load_spec("mirt-2")
    >>> spec.skills, spec.discrimination
    (2, 'free')
    >>> spec.replace(embedding_dims=8).embedding_dims
    8
    """

    name: str
    description: str = ""
    skills: int = 1
    discrimination: Literal["free", "fixed"] = "free"
    embedding_dims: int = 24
    dataset_level: bool = True
    dataset_abilities: bool = True
    llm_slopes: bool = False
    llm_groups: bool = True
    item_residuals: bool = True
    guessing: Literal["none", "learned", "fixed"] = "none"
    choices: int = 4
    likelihood: Likelihood = "auto"
    noncentered: bool = True
    priors: Priors = field(default_factory=Priors)

    def __post_init__(self) -> None:
        if not isinstance(self.skills, int) or not 1 <= self.skills <= 8:
            raise SpecError(
                f"spec {self.name!r}: 'skills' must be an integer in 1..8, got {self.skills!r}"
            )
        if self.discrimination not in ("free", "fixed"):
            raise SpecError(
                f"spec {self.name!r}: 'discrimination' must be 'free' or 'fixed', "
                f"got {self.discrimination!r}"
            )
        if self.discrimination == "fixed" and self.skills != 1:
            raise SpecError(
                f"spec {self.name!r}: a Rasch model ('discrimination = \"fixed\"') has one skill"
            )
        if not isinstance(self.embedding_dims, int) or self.embedding_dims < 0:
            raise SpecError(
                f"spec {self.name!r}: 'embedding_dims' must be an integer >= 0, "
                f"got {self.embedding_dims!r}"
            )
        for key in (
            "dataset_level",
            "dataset_abilities",
            "llm_slopes",
            "llm_groups",
            "item_residuals",
            "noncentered",
        ):
            if not isinstance(getattr(self, key), bool):
                value = getattr(self, key)
                raise SpecError(f"spec {self.name!r}: {key!r} must be true or false, got {value!r}")
        if self.guessing not in ("none", "learned", "fixed"):
            raise SpecError(
                f"spec {self.name!r}: 'guessing' must be 'none', 'learned' or 'fixed', "
                f"got {self.guessing!r}"
            )
        if not isinstance(self.choices, int) or isinstance(self.choices, bool) or self.choices < 2:
            raise SpecError(
                f"spec {self.name!r}: 'choices' must be an integer >= 2, got {self.choices!r}"
            )
        if self.likelihood not in ("auto", "bernoulli", "binomial", "fractional"):
            raise SpecError(f"spec {self.name!r}: unknown likelihood {self.likelihood!r}")
        for f in dataclasses.fields(Priors):
            v = getattr(self.priors, f.name)
            if not isinstance(v, int | float) or v <= 0:
                raise SpecError(f"spec {self.name!r}: prior {f.name!r} must be > 0, got {v!r}")

    def replace(self, **changes: Any) -> ModelSpec:
        """Return a copy with some fields changed (``skills=2``, ...)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in a saved router's metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> ModelSpec:
        """Build a spec from a TOML table or saved metadata, rejecting unknown keys."""
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SpecError(
                f"{source}: unknown spec key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        if "name" not in raw:
            raise SpecError(f"{source}: spec has no 'name'")
        priors = raw.pop("priors", {}) or {}
        if isinstance(priors, Priors):
            priors = dataclasses.asdict(priors)
        if not isinstance(priors, dict):
            raise SpecError(f"{source}: 'priors' must be a table, got {priors!r}")
        pknown = {f.name for f in dataclasses.fields(Priors)}
        bad = sorted(set(priors) - pknown)
        if bad:
            raise SpecError(
                f"{source}: unknown prior {bad[0]!r} (known: {', '.join(sorted(pknown))})"
            )
        try:
            return cls(priors=Priors(**priors), **raw)
        except (TypeError, SpecError) as exc:
            raise SpecError(f"{source}: {exc}") from None


def available_specs() -> list[str]:
    """Names of the specs shipped in ``models/``."""
    return sorted(
        p.name[:-5]
        for p in resources.files("irt_bayes.models").iterdir()
        if p.name.endswith(".toml")
    )


def load_spec(spec: str | Path | ModelSpec) -> ModelSpec:
    """Resolve a spec given by name, by TOML path, or as an object.

    Parameters
    ----------
    spec : str, pathlib.Path or ModelSpec
        ``"2pl"``, ``"mirt-3"`` ... (see :func:`available_specs`), or a path to a
        TOML file, or a ready :class:`ModelSpec` (returned unchanged).

    Returns
    -------
    ModelSpec

    Raises
    ------
    SpecError
        Unknown name, unreadable file or invalid keys, in one line.
    """
    if isinstance(spec, ModelSpec):
        return spec
    path = Path(spec)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise SpecError(f"{path}: no such spec file")
        source, text = str(path), None
        try:
            text = path.read_text()
        except OSError as exc:
            raise SpecError(f"{path}: cannot read spec: {exc.strerror}") from None
    else:
        res = resources.files("irt_bayes.models") / f"{spec}.toml"
        if not res.is_file():
            raise SpecError(
                f"unknown model spec {str(spec)!r}; named specs: "
                f"{', '.join(available_specs())}, or give a .toml path"
            )
        source, text = f"models/{spec}.toml", res.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from None
    return ModelSpec.from_dict(raw, source=source)
