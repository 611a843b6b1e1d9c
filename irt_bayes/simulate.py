"""Simulated pool of LLMs answering queries, with known true IRT parameters.

This is the package's embedded default: ``irt-bayes demo`` runs on it when no
real data is available, and the parameter-recovery tests fit the Bayesian IRT
model to it. Responses follow the multidimensional 2PL exactly::

    logit P(correct_ij) = a_i . theta_j - b_i

with ``theta_j`` the K abilities of LLM ``j``, ``b_i`` the difficulty and
``a_i >= 0`` the discrimination vector of query ``i``.

Design of the truth
-------------------
* ``discrimination`` is always ``(query, skill)``, so ``a_i . theta_j`` is a
  dot product; with ``n_skills=1`` there is a single skill ``"s0"`` and the
  model is the plain 2PL.
* Abilities are centred: their mean across the simulated LLMs is 0 for each
  skill (sum-to-zero convention, the same one the Bayesian model uses).
* Difficulty = global offset + domain mean + template effect + small residual,
  so the query text (domain and template wording) carries most of the signal.
* Each domain loads mainly on one skill (domain ``d`` -> skill ``d % K``).
* LLM prices span 200x; abilities rise with log price, plus noise and a
  boost for two cheap specialists (coding and law).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

__all__ = [
    "LLM_CATALOGUE",
    "DOMAINS",
    "STYLES",
    "SimulatedPool",
    "scale_pool",
    "simulate_pool",
    "wide_pool",
]

ScoreType = Literal["binary", "binomial", "fraction"]
# Response styles that break the plain 2PL (see simulate_pool): real pools have them.
STYLES = ("position-bias", "specialists", "near-chance")
# The domain that "near-chance" turns into a coin flip, and how much signal it keeps.
_CHANCE_DOMAIN = "cooking"
_CHANCE_SIGNAL = 0.1
# "specialists": every other LLM gains this on one domain and loses the second on the rest.
_SPECIALIST_GAIN, _SPECIALIST_LOSS = 2.5, 1.0
# "position-bias" makes the task harder (logits down by this) so that LLMs often fall
# back on their answer habit, as on the task where the 2PL predictive failed.
_POSITION_TASK_SHIFT = 2.0

MAX_LLMS = 12
_BETA_CONCENTRATION = 8.0
_DIFFICULTY_OFFSET = -0.7
_DIFFICULTY_NOISE_SD = 0.35
_LOG_DISCRIMINATION_MEDIAN = float(np.log(1.1))
_LOG_DISCRIMINATION_NOISE_SD = 0.2
_COST_NOISE_SD = 0.1


@dataclass(frozen=True)
class _LLMSpec:
    name: str
    price: float  # USD, mean cost per query
    tier: str
    specialty: str | None = None  # domain the model is unusually good at


# Catalogue order is the order LLMs are taken in for ``n_llms < 12``: tiers are
# interleaved so that even a small pool spans cheap to expensive.
LLM_CATALOGUE: tuple[_LLMSpec, ...] = (
    _LLMSpec("atlas-ultra", 0.0100, "frontier"),
    _LLMSpec("pico-7b", 0.00006, "tiny"),
    _LLMSpec("nimbus-70b", 0.0009, "mid"),
    _LLMSpec("atlas-xl", 0.0030, "large"),
    _LLMSpec("corvid-mini", 0.0002, "small"),
    _LLMSpec("pico-coder-7b", 0.00012, "small", specialty="coding"),
    _LLMSpec("atlas-mini", 0.0006, "mid"),
    _LLMSpec("quill-13b", 0.00015, "small", specialty="law"),
    _LLMSpec("nimbus-405b", 0.0075, "frontier"),
    _LLMSpec("tessera-34b", 0.0004, "mid"),
    _LLMSpec("corvid-large", 0.0020, "large"),
    _LLMSpec("mote-3b", 0.00005, "tiny"),
)
"""The fictional LLMs, with their price per query and tier."""

_ABILITY_PER_DECADE = 1.3  # logits gained per 10x price
_ABILITY_NOISE_SD = 0.35
_SKILL_DEVIATION_SD = 0.5
_SPECIALTY_BOOST = 1.5
# With one skill a specialist's edge is diluted over every domain.
_SPECIALTY_BOOST_K1 = 0.4


@dataclass(frozen=True)
class _Template:
    text: str
    hardness: float  # additive effect on difficulty
    log_disc: float  # additive effect on log discrimination


@dataclass(frozen=True)
class _Domain:
    name: str
    difficulty: float
    log_disc: float
    templates: tuple[_Template, ...]


# Domain order fixes the domain -> skill map (d % K): with K=2 the
# quantitative domains load on s0 and the verbal ones on s1.
DOMAINS: tuple[_Domain, ...] = (
    _Domain(
        "arithmetic",
        0.0,
        0.25,
        (
            _Template("What is {a} + {b}?", -1.3, 0.1),
            _Template("What is {a} multiplied by {small}?", -0.8, 0.1),
            _Template(
                "A shop sells {item_pl} at ${unit_price} each. How much do {count} {item_pl} "
                "cost in total?",
                -0.1,
                0.0,
            ),
            _Template(
                "A train leaves {city} at {clock} travelling at {speed} km/h. How far has it "
                "travelled after {hours} hours and {minutes} minutes?",
                0.4,
                0.0,
            ),
            _Template(
                "Two trains leave {city} and {city2}, {dist} km apart, at {clock}, travelling "
                "towards each other at {speed} km/h and {speed2} km/h. The first stops for "
                "{minutes} minutes at a station halfway. At what time do they meet?",
                1.3,
                -0.1,
            ),
            _Template(
                "Find all integer solutions of {a}x + {b}y = {c} with 0 <= x <= {n}, and "
                "justify each step of the derivation.",
                1.6,
                -0.1,
            ),
            _Template(
                "Prove that the sum of the first {n} odd numbers is a perfect square, then "
                "derive a closed form for the sum of the first {n} odd numbers that are not "
                "divisible by {prime}.",
                2.0,
                -0.2,
            ),
        ),
    ),
    _Domain(
        "history",
        -0.4,
        -0.1,
        (
            _Template(
                "For a {grade}-grade quiz: in which century did the {event} take place?", -1.2, 0.1
            ),
            _Template(
                "Who was a key figure in the {event}? Answer in under {words} words for a "
                "{audience}.",
                -0.6,
                0.0,
            ),
            _Template(
                "Summarise the main causes of the {event} in {n} bullet points for a {audience}.",
                -0.1,
                0.0,
            ),
            _Template(
                "Compare the trade policies of {empire} and {empire2} during the {century} "
                "century, in about {words} words.",
                0.5,
                -0.1,
            ),
            _Template(
                "Evaluate the claim that the {event} was primarily caused by {factor}, weighing "
                "at least {n} primary sources and the counter-argument that {factor2} mattered "
                "more.",
                1.3,
                -0.2,
            ),
            _Template(
                "Reconstruct the chronology of the {event} from conflicting accounts, derive the "
                "most likely date of its decisive moment, and prove that your chronology is "
                "consistent with the {n} dated letters cited by {historian}.",
                1.8,
                -0.2,
            ),
        ),
    ),
    _Domain(
        "coding",
        0.3,
        0.15,
        (
            _Template(
                "Write a Python function named {fname} that returns the {ordinal} element of a "
                "list of {thing_pl}.",
                -1.1,
                0.1,
            ),
            _Template(
                "Fix the syntax error in this line: "
                "`for {var} in range({n}) print({var} * {small})`",
                -0.6,
                0.1,
            ),
            _Template(
                "Write a {lang} function that counts how many {thing_pl} in a list are longer "
                "than {n} characters.",
                -0.1,
                0.0,
            ),
            _Template(
                "Write a SQL query that returns the {n} {table} with the highest {column}, "
                "grouped by {column2}.",
                0.5,
                0.0,
            ),
            _Template(
                "Implement a thread-safe LRU cache in {lang} with capacity {big}, supporting get "
                "and put in O(1) time, and write unit tests for eviction of {thing_pl}.",
                1.3,
                -0.1,
            ),
            _Template(
                "Optimise a {lang} solver for the {queens}-queens problem so that it enumerates "
                "all solutions in under {ms} ms, prove that your pruning is correct, and derive "
                "its worst-case complexity.",
                2.0,
                -0.2,
            ),
        ),
    ),
    _Domain(
        "law",
        0.4,
        -0.2,
        (
            _Template(
                "What does the legal term '{term}' mean? Explain it for a {audience} with an "
                "example from a {contract}.",
                -0.9,
                0.1,
            ),
            _Template(
                "Can a landlord in {jurisdiction} keep a deposit of {amount} {currency} for "
                "{damage}?",
                -0.2,
                0.0,
            ),
            _Template(
                "Draft a short clause for a {contract} that limits liability to {amount} "
                "{currency}.",
                0.3,
                0.0,
            ),
            _Template(
                "{party} signed a {contract} in {jurisdiction}, and the counterparty breached "
                "after {n} months. Analyse the remedies available, the limitation period, and "
                "whether the penalty clause of {amount} {currency} is enforceable.",
                1.2,
                -0.1,
            ),
            _Template(
                "Derive, from the case law of {jurisdiction}, whether a {contract} concluded by "
                "an AI agent on behalf of {party} is binding, and prove that your answer is "
                "consistent with the doctrine of {doctrine} across {n} leading precedents.",
                1.9,
                -0.2,
            ),
        ),
    ),
    _Domain(
        "science",
        0.1,
        0.05,
        (
            _Template(
                "A sample of {element} weighs {grams} g. How many protons does one atom of "
                "{element} have?",
                -1.0,
                0.1,
            ),
            _Template("Explain to a {audience} why {phenomenon}, in {n} sentences.", -0.3, -0.1),
            _Template(
                "A ball is dropped from a height of {height} m. Ignoring air resistance, how "
                "long does it take to hit the ground?",
                0.2,
                0.1,
            ),
            _Template(
                "A {mass} kg block slides down a {angle}-degree incline with friction "
                "coefficient 0.{mu}. Derive its acceleration and the time to slide {dist} m, "
                "then check the result by energy conservation.",
                1.2,
                0.0,
            ),
            _Template(
                "Derive the second-order perturbation correction to the ground-state energy of "
                "a particle in a box of width {width} nm under a linear potential of "
                "{field} eV/nm, and prove that the first-order term vanishes for a symmetric "
                "box.",
                1.8,
                -0.1,
            ),
        ),
    ),
    _Domain(
        "cooking",
        -0.7,
        -0.15,
        (
            _Template("How long should I boil {grams} g of {veg}?", -1.4, 0.1),
            _Template(
                "What can I use instead of {ingredient} in a {dish} for {n} people?", -0.9, 0.0
            ),
            _Template(
                "Scale a {dish} recipe that serves {n} people so that it serves {m} people; it "
                "uses {grams} g of {ingredient}.",
                -0.2,
                0.1,
            ),
            _Template(
                "Suggest a {courses}-course {cuisine} dinner menu for {m} guests that avoids "
                "{allergen}.",
                0.2,
                -0.1,
            ),
            _Template(
                "Plan a {courses}-course {cuisine} dinner for {m} guests, {k} of whom are {diet}, "
                "with a shopping list, a prep timeline starting at {clock}, and a total budget "
                "of {amount} EUR.",
                1.0,
                -0.1,
            ),
            _Template(
                "Derive the cooking time for a {kg} kg {roast} at {temp} °C from the heat "
                "equation with a core target of {core} °C, and optimise the oven schedule so "
                "that {courses} side dishes finish at the same time.",
                1.6,
                -0.2,
            ),
        ),
    ),
)
"""The query domains (the ``dataset`` column) with their text templates."""

# --- slot fillers -----------------------------------------------------------------------------

_Filler = Callable[[np.random.Generator, dict[str, str]], str]

_CITIES = (
    "Lyon", "Porto", "Graz", "Leeds", "Turin", "Kraków", "Ghent", "Bilbao", "Utrecht", "Aarhus",
    "Bremen", "Salzburg", "Nantes", "Bologna", "Tampere", "Cork", "Brno", "Malmö", "Basel",
)  # fmt: skip
_ITEMS = (
    "notebooks", "apples", "pencils", "mugs", "tickets", "candles", "lamps", "towels",
    "batteries", "plants", "scarves", "bottles of juice", "loaves of bread", "chairs",
)  # fmt: skip
_EVENTS = (
    "French Revolution", "Thirty Years' War", "Meiji Restoration", "fall of Constantinople",
    "Glorious Revolution", "Congress of Vienna", "Hundred Years' War", "Reformation",
    "Industrial Revolution", "partition of Poland", "Boxer Rebellion", "Crimean War",
    "Peace of Westphalia", "War of the Roses", "unification of Italy", "Taiping Rebellion",
    "Norman conquest of England", "Black Death", "Russian Revolution", "Spanish Armada",
)  # fmt: skip
_EMPIRES = (
    "the Ottoman Empire", "the Mughal Empire", "Venice", "the Habsburg monarchy",
    "Ming China", "the Dutch Republic", "Portugal", "the Hanseatic League", "Safavid Persia",
    "the Mali Empire", "Byzantium", "Tokugawa Japan",
)  # fmt: skip
_FACTORS = (
    "economic inequality", "religious conflict", "a succession crisis", "crop failures",
    "military overreach", "new taxes", "foreign intervention", "the spread of printing",
    "trade disruption", "climate cooling",
)  # fmt: skip
_HISTORIANS = (
    "H. Varga", "M. Oduya", "L. Castellan", "P. Sørensen", "R. Alvey", "T. Nakamura-Hill",
    "E. Brandt", "J. Okafor",
)  # fmt: skip
_AUDIENCES = (
    "ten-year-old", "first-year student", "busy manager", "retired engineer",
    "high-school class", "new employee", "curious neighbour", "journalist",
)  # fmt: skip
_FNAME_VERBS = ("get", "pick", "fetch", "take", "find", "select", "read", "grab")
_FNAME_NOUNS = ("item", "entry", "value", "element", "record", "member", "slot")
_THINGS = (
    "strings", "file names", "user names", "words", "email addresses", "product codes",
    "URLs", "city names", "tags", "titles",
)  # fmt: skip
_LANGS = ("Python", "Rust", "Go", "Java", "C++", "TypeScript", "Kotlin", "C#")
_VARS = ("i", "j", "k", "n", "x", "idx", "item", "row")
_TABLES = ("customers", "orders", "products", "employees", "invoices", "stores", "suppliers")
_COLUMNS = (
    "revenue", "order count", "average rating", "salary", "discount", "stock level",
    "region", "category", "signup year", "department",
)  # fmt: skip
_TERMS = (
    "habeas corpus", "tort", "estoppel", "force majeure", "indemnity", "lien", "easement",
    "subpoena", "fiduciary duty", "novation", "escrow", "injunction", "liquidated damages",
)  # fmt: skip
_CURRENCY_OF = {
    "England": "GBP", "Ontario": "CAD", "New South Wales": "AUD", "Germany": "EUR",
    "France": "EUR", "the Netherlands": "EUR", "Scotland": "GBP", "Ireland": "EUR",
    "New Zealand": "NZD", "Quebec": "CAD",
}  # fmt: skip
_JURISDICTIONS = tuple(_CURRENCY_OF)
_CURRENCIES = ("EUR", "GBP", "CAD", "AUD", "NZD")
_DAMAGES = (
    "a broken window", "carpet stains", "unpaid rent", "a missing key", "wall damage",
    "a dead fridge", "pet damage", "mould in the bathroom",
)  # fmt: skip
_CONTRACTS = (
    "software licence", "lease agreement", "supply contract", "consulting agreement",
    "franchise agreement", "non-disclosure agreement", "construction contract",
    "employment contract",
)  # fmt: skip
_PARTIES = (
    "A small bakery", "A logistics start-up", "A freelance designer", "A city council",
    "A family-owned vineyard", "A hospital trust", "A mobile game studio", "A local charity",
)  # fmt: skip
_DOCTRINES = (
    "privity of contract", "promissory estoppel", "frustration", "good faith",
    "apparent authority", "unconscionability", "mistake",
)  # fmt: skip
_ELEMENTS = (
    "carbon", "oxygen", "iron", "copper", "sodium", "gold", "silver", "neon", "calcium",
    "zinc", "nitrogen", "sulfur", "argon", "lead", "tin", "nickel", "cobalt", "helium",
)  # fmt: skip
_PHENOMENA = (
    "the sky is blue", "ice floats on water", "metals feel cold to the touch",
    "the Moon has phases", "bread rises", "a rainbow forms", "leaves change colour in autumn",
    "salt melts ice on roads", "a compass points north", "thunder follows lightning",
    "soap removes grease", "tides rise and fall",
)  # fmt: skip
_VEG = (
    "broccoli", "carrots", "potatoes", "green beans", "cauliflower", "asparagus", "beetroot",
    "Brussels sprouts", "sweetcorn", "spinach",
)  # fmt: skip
_INGREDIENTS = (
    "butter", "eggs", "buttermilk", "cream", "honey", "cornstarch", "white wine",
    "baking powder", "parmesan", "sour cream", "brown sugar", "yeast",
)  # fmt: skip
_DISHES = (
    "banana bread", "lasagne", "risotto", "pancake batter", "chocolate cake", "quiche",
    "shepherd's pie", "curry", "carbonara", "apple crumble", "chili", "focaccia",
)  # fmt: skip
_CUISINES = ("Italian", "Japanese", "Mexican", "Lebanese", "Thai", "French", "Indian", "Greek")
_ALLERGENS = ("gluten", "nuts", "dairy", "shellfish", "eggs", "soy", "sesame")
_DIETS = ("vegan", "vegetarian", "gluten-free", "lactose-intolerant", "pescatarian")
_ROASTS = ("leg of lamb", "pork shoulder", "beef rib", "whole chicken", "turkey crown")
_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else _ORDINAL_SUFFIX.get(n % 10, "th")
    return f"{n}{suffix}"


def _pick(options: tuple[str, ...]) -> _Filler:
    return lambda rng, _: options[int(rng.integers(len(options)))]


def _pick_other(options: tuple[str, ...], other: str) -> _Filler:
    # Second draw from the same list that must differ from the first (e.g. two cities).
    def fill(rng: np.random.Generator, filled: dict[str, str]) -> str:
        rest = [o for o in options if o != filled.get(other)]
        return rest[int(rng.integers(len(rest)))]

    return fill


def _int(low: int, high: int, step: int = 1) -> _Filler:
    return lambda rng, _: str(int(rng.integers(low // step, high // step + 1)) * step)


def _currency(rng: np.random.Generator, filled: dict[str, str]) -> str:
    # Keep the currency consistent with the jurisdiction when the text names one.
    if "jurisdiction" in filled:
        return _CURRENCY_OF[filled["jurisdiction"]]
    return _CURRENCIES[int(rng.integers(len(_CURRENCIES)))]


def _clock(rng: np.random.Generator, _: dict[str, str]) -> str:
    return f"{int(rng.integers(5, 22)):02d}:{int(rng.integers(0, 12)) * 5:02d}"


_SLOTS: dict[str, _Filler] = {
    "a": _int(12, 999),
    "b": _int(12, 999),
    "c": _int(100, 9999),
    "n": _int(3, 12),
    "m": _int(2, 24),
    "k": _int(1, 4),
    "small": _int(3, 19),
    "big": _int(16, 4096, 16),
    "prime": lambda rng, _: str(int(rng.choice([3, 5, 7, 11, 13]))),
    "count": _int(3, 48),
    "unit_price": lambda rng, _: f"{int(rng.integers(1, 40))}.{int(rng.integers(0, 20)) * 5:02d}",
    "item_pl": _pick(_ITEMS),
    "city": _pick(_CITIES),
    "city2": _pick_other(_CITIES, "city"),
    "clock": _clock,
    "speed": _int(40, 300, 5),
    "speed2": _int(40, 300, 5),
    "hours": _int(1, 9),
    "minutes": _int(5, 55, 5),
    "dist": _int(20, 900, 10),
    "grade": lambda rng, _: _ordinal(int(rng.integers(3, 13))),
    "event": _pick(_EVENTS),
    "audience": _pick(_AUDIENCES),
    "empire": _pick(_EMPIRES),
    "empire2": _pick_other(_EMPIRES, "empire"),
    "century": lambda rng, _: _ordinal(int(rng.integers(12, 20))),
    "words": _int(150, 900, 50),
    "factor": _pick(_FACTORS),
    "factor2": _pick_other(_FACTORS, "factor"),
    "historian": _pick(_HISTORIANS),
    "fname": lambda rng, _: (
        f"{_FNAME_VERBS[int(rng.integers(len(_FNAME_VERBS)))]}_"
        f"{_FNAME_NOUNS[int(rng.integers(len(_FNAME_NOUNS)))]}"
    ),
    "ordinal": lambda rng, _: _ordinal(int(rng.integers(2, 13))),
    "thing_pl": _pick(_THINGS),
    "var": _pick(_VARS),
    "lang": _pick(_LANGS),
    "table": _pick(_TABLES),
    "column": _pick(_COLUMNS),
    "column2": _pick_other(_COLUMNS, "column"),
    "queens": _int(8, 16),
    "ms": _int(10, 2000, 10),
    "term": _pick(_TERMS),
    "jurisdiction": _pick(_JURISDICTIONS),
    "amount": _int(100, 50000, 50),
    "currency": _currency,
    "damage": _pick(_DAMAGES),
    "contract": _pick(_CONTRACTS),
    "party": _pick(_PARTIES),
    "doctrine": _pick(_DOCTRINES),
    "element": _pick(_ELEMENTS),
    "grams": _int(50, 2000, 25),
    "phenomenon": _pick(_PHENOMENA),
    "height": _int(2, 500),
    "mass": _int(1, 80),
    "angle": _int(10, 60),
    "mu": _int(1, 9),
    "width": lambda rng, _: f"{int(rng.integers(1, 50)) / 10:.1f}",
    "field": lambda rng, _: f"{int(rng.integers(1, 99)) / 100:.2f}",
    "veg": _pick(_VEG),
    "ingredient": _pick(_INGREDIENTS),
    "dish": _pick(_DISHES),
    "courses": _int(3, 7),
    "cuisine": _pick(_CUISINES),
    "allergen": _pick(_ALLERGENS),
    "diet": _pick(_DIETS),
    "kg": lambda rng, _: f"{int(rng.integers(8, 60)) / 10:.1f}",
    "roast": _pick(_ROASTS),
    "temp": _int(120, 240, 10),
    "core": _int(55, 85),
}

_MAX_TEXT_TRIES = 50


def _slot_names(text: str) -> list[str]:
    names: list[str] = []
    for _, name, _, _ in string.Formatter().parse(text):
        if name and name not in names:
            names.append(name)
    return names


def _fill(template: str, rng: np.random.Generator) -> str:
    filled: dict[str, str] = {}
    for name in _slot_names(template):
        filled[name] = _SLOTS[name](rng, filled)
    return template.format(**filled)


# --- the pool -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SimulatedPool:
    """A simulated pool of LLM responses with the parameters that generated it.

    Parameters
    ----------
    responses : pandas.DataFrame
        Tidy responses, one row per observed (query, LLM) pair, with columns
        ``query_id``, ``query`` (text), ``llm``, ``score`` (float in [0, 1]),
        ``cost`` (USD), ``dataset`` (domain) and, for binomial scores,
        ``trials`` (int).
    truth : xarray.Dataset
        True parameters: ``ability`` (llm, skill), centred to mean 0 across
        LLMs for each skill; ``difficulty`` (query); ``discrimination``
        (query, skill), non-negative; ``p_correct`` (query, llm); ``price``
        (llm, mean USD per query); ``cost`` (query, llm, for every pair,
        observed or not). Non-dimension coordinates: ``dataset``,
        ``template`` and ``main_skill`` on ``query``; ``tier`` on ``llm``.

    Notes
    -----
    ``eq=False`` because dataclass equality on data frames is ambiguous;
    compare ``responses`` with :func:`pandas.testing.assert_frame_equal`.
    """

    responses: pd.DataFrame
    truth: xr.Dataset

    @property
    def llms(self) -> list[str]:
        """Names of the LLMs in the pool, in ``truth`` order (price descending)."""
        return [str(x) for x in self.truth["llm"].to_numpy()]

    @property
    def queries(self) -> pd.DataFrame:
        """One row per query: ``query_id``, ``query`` (text) and ``dataset``."""
        cols = ["query_id", "query", "dataset"]
        return self.responses[cols].drop_duplicates("query_id").reset_index(drop=True)


def _validate(
    n_queries: int,
    n_llms: int,
    n_skills: int,
    missing_rate: float,
    score_type: str,
    trials: int,
) -> None:
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1, got {n_queries}")
    if not 2 <= n_llms <= MAX_LLMS:
        raise ValueError(f"n_llms must be between 2 and {MAX_LLMS}, got {n_llms}")
    if not 1 <= n_skills <= len(DOMAINS):
        raise ValueError(f"n_skills must be between 1 and {len(DOMAINS)}, got {n_skills}")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    if score_type not in ("binary", "binomial", "fraction"):
        raise ValueError(
            f"score_type must be 'binary', 'binomial' or 'fraction', got {score_type!r}"
        )
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")


def _abilities(
    rng: np.random.Generator, n_llms: int, n_skills: int
) -> tuple[list[_LLMSpec], np.ndarray]:
    # Draw for the whole catalogue before selecting, so a model's ability for a
    # given seed does not depend on how many others are in the pool.
    cat = LLM_CATALOGUE
    log_price = np.log10([m.price for m in cat])
    general = _ABILITY_PER_DECADE * (log_price - log_price.mean()) + rng.normal(
        0.0, _ABILITY_NOISE_SD, len(cat)
    )
    deviation = rng.normal(0.0, _SKILL_DEVIATION_SD, (len(cat), len(DOMAINS)))[:, :n_skills]
    theta = general[:, None] + (deviation if n_skills > 1 else 0.0)
    boost = _SPECIALTY_BOOST if n_skills > 1 else _SPECIALTY_BOOST_K1
    domain_index = {d.name: i for i, d in enumerate(DOMAINS)}
    for j, m in enumerate(cat):
        if m.specialty is not None:
            theta[j, domain_index[m.specialty] % n_skills] += boost

    chosen = sorted(range(n_llms), key=lambda j: -cat[j].price)
    theta = theta[chosen]
    theta = theta - theta.mean(axis=0, keepdims=True)  # sum-to-zero per skill
    return [cat[j] for j in chosen], theta


def _queries(
    rng: np.random.Generator, n_queries: int, n_skills: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    n_dom = len(DOMAINS)
    # Balanced domains, then shuffled, so every domain is present from n = 6.
    domain_idx = rng.permutation(np.arange(n_queries) % n_dom)
    template_idx = np.array([rng.integers(len(DOMAINS[d].templates)) for d in domain_idx])

    texts: list[str] = []
    seen: set[str] = set()
    for d, t in zip(domain_idx, template_idx, strict=True):
        template = DOMAINS[d].templates[t].text
        for _ in range(_MAX_TEXT_TRIES):
            text = _fill(template, rng)
            if text not in seen:
                break
        variant = 2
        base = text
        while text in seen:  # slot space exhausted: make it unique explicitly
            text = f"{base} (variant {variant})"
            variant += 1
        seen.add(text)
        texts.append(text)

    dom_b = np.array([DOMAINS[d].difficulty for d in domain_idx])
    tpl_b = np.array(
        [DOMAINS[d].templates[t].hardness for d, t in zip(domain_idx, template_idx, strict=True)]
    )
    difficulty = (
        _DIFFICULTY_OFFSET + dom_b + tpl_b + rng.normal(0.0, _DIFFICULTY_NOISE_SD, n_queries)
    )

    dom_a = np.array([DOMAINS[d].log_disc for d in domain_idx])
    tpl_a = np.array(
        [DOMAINS[d].templates[t].log_disc for d, t in zip(domain_idx, template_idx, strict=True)]
    )
    magnitude = np.exp(
        _LOG_DISCRIMINATION_MEDIAN
        + dom_a
        + tpl_a
        + rng.normal(0.0, _LOG_DISCRIMINATION_NOISE_SD, n_queries)
    )
    main_skill = domain_idx % n_skills
    # Loadings: 1 on the domain's skill, small positive spill-over elsewhere.
    loading = rng.uniform(0.0, 0.25, (n_queries, n_skills))
    loading[np.arange(n_queries), main_skill] = 1.0
    discrimination = magnitude[:, None] * loading

    width = len(str(max(n_queries - 1, 999_999)))
    meta = pd.DataFrame(
        {
            "query_id": [f"sim-{i:0{width}d}" for i in range(n_queries)],
            "query": texts,
            "dataset": [DOMAINS[d].name for d in domain_idx],
            "template": [
                f"{DOMAINS[d].name}-{t}" for d, t in zip(domain_idx, template_idx, strict=True)
            ],
            "main_skill": [f"s{k}" for k in main_skill],
        }
    )
    return meta, difficulty, discrimination


def _apply_styles(
    styles: tuple[str, ...] | list[str],
    rng: np.random.Generator,
    meta: pd.DataFrame,
    discrimination: np.ndarray,
    logit: np.ndarray,
    n_llms: int,
) -> dict:
    """P(correct) under the response styles, and the truth they add."""
    out: dict = {}
    domains = meta["dataset"].to_numpy()
    names = [d.name for d in DOMAINS]
    if "specialists" in styles:
        offset = np.zeros((n_llms, len(names)))
        for j in range(0, n_llms, 2):
            offset[j] = -_SPECIALIST_LOSS
            offset[j, int(rng.integers(len(names)))] = _SPECIALIST_GAIN
        offset -= offset.mean(axis=0, keepdims=True)  # abilities stay zero-sum
        d = pd.Index(names).get_indexer(domains)
        logit = logit + discrimination.sum(axis=1)[:, None] * offset[:, d].T
        out["domain_ability"] = (("llm", "domain"), offset)
    if "position-bias" in styles:
        logit = logit - _POSITION_TASK_SHIFT
    p = 1.0 / (1.0 + np.exp(-logit))
    if "position-bias" in styles:
        answer = np.where(rng.random(len(meta)) < 0.5, "A", "B")
        # every LLM leans strongly towards its own favourite position, A for half of them
        bias = rng.uniform(0.85, 0.98, n_llms)
        bias = np.where(rng.permutation(n_llms) % 2 == 0, bias, 1.0 - bias)
        pick = np.where((answer == "A")[:, None], bias[None, :], 1.0 - bias[None, :])
        p = p + (1.0 - p) * pick
        out["answer"] = answer.tolist()
        out["position_bias"] = (("llm",), bias)
    if "near-chance" in styles:
        rows = domains == _CHANCE_DOMAIN
        p[rows] = 0.5 + _CHANCE_SIGNAL * (p[rows] - 0.5)
    out["p_correct"] = p
    return out


def _scores(
    rng: np.random.Generator, p: np.ndarray, score_type: ScoreType, trials: int
) -> np.ndarray:
    if score_type == "binary":
        return (rng.random(p.shape) < p).astype(np.float64)
    if score_type == "binomial":
        return rng.binomial(trials, p) / trials
    # Beta with mean p; keep p off 0/1 so both shape parameters stay positive.
    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    score = rng.beta(q * _BETA_CONCENTRATION, (1.0 - q) * _BETA_CONCENTRATION)
    return np.clip(score, 0.0, 1.0)


def _observed_mask(rng: np.random.Generator, n_q: int, n_l: int, missing_rate: float) -> np.ndarray:
    keep = np.ones((n_q, n_l), dtype=bool)
    n_drop = int(round(missing_rate * n_q * n_l))
    if n_drop == 0:
        return keep
    # One protected cell per query and per LLM guarantees nobody is dropped entirely.
    protected = np.zeros_like(keep)
    protected[np.arange(n_q), rng.integers(0, n_l, n_q)] = True
    protected[rng.integers(0, n_q, n_l), np.arange(n_l)] = True
    candidates = np.flatnonzero(~protected)
    drop = rng.choice(candidates, size=min(n_drop, candidates.size), replace=False)
    keep.flat[drop] = False
    return keep


def simulate_pool(
    n_queries: int = 600,
    n_llms: int = 10,
    n_skills: int = 1,
    *,
    seed: int = 0,
    missing_rate: float = 0.0,
    score_type: ScoreType = "binary",
    trials: int = 10,
    styles: tuple[str, ...] | list[str] = (),
) -> SimulatedPool:
    """Simulate LLMs answering queries under a multidimensional 2PL model.

    Parameters
    ----------
    n_queries : int, default 600
        Number of distinct queries, spread evenly over the six domains.
    n_llms : int, default 10
        Number of LLMs, 2 to 12, taken from :data:`LLM_CATALOGUE` in order.
    n_skills : int, default 1
        Number of latent skills K, 1 to 6. Domain ``d`` loads mainly on skill
        ``d % K``.
    seed : int, default 0
        Seed for :func:`numpy.random.default_rng`; the same arguments give
        identical output.
    missing_rate : float, default 0.0
        Share of (query, LLM) rows to drop at random, in [0, 1). Every query
        and every LLM keeps at least one row, which caps the share actually
        dropped at very high rates.
    score_type : {"binary", "binomial", "fraction"}, default "binary"
        ``"binary"``: Bernoulli 0/1. ``"binomial"``: successes / ``trials``,
        with a ``trials`` column. ``"fraction"``: Beta with mean ``p`` and
        concentration 8, in [0, 1].
    trials : int, default 10
        Trials per (query, LLM) for ``"binomial"`` scores.
    styles : sequence of str, optional
        Response styles layered on the 2PL, any of :data:`STYLES`:

        * ``"position-bias"``: every query is a hard two-option question (logits 2
          lower) whose answer sits at position A or B (coordinate ``answer``); an LLM
          that does not know the answer (``1 - sigmoid(a . theta - b)``) picks A with its own rate
          ``position_bias`` (half of the LLMs lean towards A, half towards B, each at
          0.85 to 0.98), so
          ``P = known + (1 - known) * P(pick the answer's position)``;
        * ``"specialists"``: every other LLM is strong on one domain only (+2.5 logits
          there, -1 elsewhere, as abilities scaled by the discrimination;
          ``domain_ability`` holds each LLM's total on each domain);
        * ``"near-chance"``: the cooking domain becomes a coin flip for every LLM
          (``P = 0.5 + 0.1 (p - 0.5)``).

    Returns
    -------
    SimulatedPool
        The responses and the true parameters that generated them.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    Randomness comes from independent child streams of one seeded generator
    (LLMs, queries, scores, costs, missingness), so e.g. the abilities for a
    seed do not change with ``n_queries``.
    """
    _validate(n_queries, n_llms, n_skills, missing_rate, score_type, trials)
    unknown = sorted(set(styles) - set(STYLES))
    if unknown:
        raise ValueError(f"unknown style {unknown[0]!r}; styles: {', '.join(STYLES)}")
    streams = np.random.default_rng(seed).spawn(6)
    rng_llm, rng_query, rng_score, rng_cost, rng_missing, rng_style = streams

    llms, theta = _abilities(rng_llm, n_llms, n_skills)
    meta, difficulty, discrimination = _queries(rng_query, n_queries, n_skills)

    logit = discrimination @ theta.T - difficulty[:, None]
    extra = _apply_styles(styles, rng_style, meta, discrimination, logit, len(llms))
    p_correct = extra.pop("p_correct")
    scores = _scores(rng_score, p_correct, score_type, trials)

    # Longer prompts -> more tokens; the factor has mean 1 so ``price`` is the
    # mean cost per query, and the lognormal noise has mean 1 too.
    length = meta["query"].str.len().to_numpy(dtype=np.float64)
    length_factor = 0.5 + 0.5 * length / length.mean()
    noise = rng_cost.lognormal(-0.5 * _COST_NOISE_SD**2, _COST_NOISE_SD, p_correct.shape)
    price = np.array([m.price for m in llms])
    cost = price[None, :] * length_factor[:, None] * noise

    keep = _observed_mask(rng_missing, n_queries, n_llms, missing_rate)
    qi, lj = np.nonzero(keep)  # query-major row order
    names = np.array([m.name for m in llms], dtype=object)
    responses = pd.DataFrame(
        {
            "query_id": meta["query_id"].to_numpy()[qi],
            "query": meta["query"].to_numpy()[qi],
            "llm": names[lj],
            "score": scores[qi, lj],
            "cost": cost[qi, lj],
            "dataset": meta["dataset"].to_numpy()[qi],
        }
    )
    if score_type == "binomial":
        responses["trials"] = np.full(len(responses), trials, dtype=np.int64)
    for col in ("query_id", "query", "llm", "dataset"):
        responses[col] = responses[col].astype("str")

    skills = [f"s{k}" for k in range(n_skills)]
    coords = {
        "llm": [m.name for m in llms],
        "query": meta["query_id"].tolist(),
        "skill": skills,
        "dataset": ("query", meta["dataset"].tolist()),
        "template": ("query", meta["template"].tolist()),
        "main_skill": ("query", meta["main_skill"].tolist()),
        "tier": ("llm", [m.tier for m in llms]),
    }
    if "answer" in extra:
        coords["answer"] = ("query", extra.pop("answer"))
    truth = xr.Dataset(
        {
            "ability": (("llm", "skill"), theta),
            "difficulty": (("query",), difficulty),
            "discrimination": (("query", "skill"), discrimination),
            "p_correct": (("query", "llm"), p_correct),
            "price": (("llm",), price),
            "cost": (("query", "llm"), cost),
            **extra,
        },
        coords=coords,
        attrs={
            "model": "logit p = discrimination . ability - difficulty",
            "ability_convention": "sum-to-zero across llm for each skill",
            "seed": seed,
            "score_type": score_type,
            "trials": trials,
            "missing_rate": missing_rate,
            "styles": ",".join(styles),
        },
    )
    truth["price"].attrs["units"] = "USD per query (mean)"
    truth["cost"].attrs["units"] = "USD"
    return SimulatedPool(responses=responses, truth=truth)


def wide_pool(
    n_llms: int, n_queries: int = 6, seed: int = 0, dim: int = 16
) -> tuple[pd.DataFrame, np.ndarray]:
    """A Rasch pool of many anonymous LLMs and a few queries, for scale checks.

    :func:`simulate_pool` names at most a dozen fictional LLMs; routing at scale needs
    thousands. Texts are placeholders, so random embeddings come with the frame.

    Parameters
    ----------
    n_llms, n_queries : int
        Pool size: ``llm-00000`` ... and queries ``t0`` ...
    seed : int
        Everything is drawn from one generator with this seed.
    dim : int
        Embedding dimension.

    Returns
    -------
    frame : pandas.DataFrame
        Tidy responses (``query_id, query, llm, score, cost``), query-major.
    embeddings : numpy.ndarray
        (n_queries, dim) float32, in ``query_id`` order.

    Examples
    --------
    >>> frame, emb = wide_pool(1000, seed=1)
    >>> frame["llm"].nunique(), emb.shape
    (1000, (6, 16))
    """
    rng = np.random.default_rng(seed)
    ability, difficulty = rng.normal(0, 1, n_llms), rng.normal(0, 1, n_queries)
    p = 1 / (1 + np.exp(difficulty[:, None] - ability[None, :]))
    frame = pd.DataFrame(
        {
            "query_id": np.repeat([f"t{i}" for i in range(n_queries)], n_llms),
            "query": np.repeat([f"training query {i}" for i in range(n_queries)], n_llms),
            "llm": np.tile([f"llm-{j:05d}" for j in range(n_llms)], n_queries),
            "score": (rng.random((n_queries, n_llms)) < p).astype(float).ravel(),
            "cost": np.tile(rng.uniform(1e-4, 1e-2, n_llms), n_queries),
        }
    )
    return frame, rng.standard_normal((n_queries, dim)).astype(np.float32)


def scale_pool(
    n_llms: int, n_queries: int, *, dim: int = 64, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """A large 2PL pool whose item parameters follow the embeddings, for scale benchmarks.

    Every (query, LLM) pair is observed once. Difficulty and log-discrimination are
    linear in the embedding plus a residual, as the 2pl spec assumes, so a fit on the
    embeddings can recover them; abilities are standard normal.

    Parameters
    ----------
    n_llms, n_queries : int
        Pool size: ``n_llms * n_queries`` responses, LLMs ``llm-000`` ..., queries
        ``q0`` ...
    dim : int, default 64
        Embedding dimension (unit-norm rows).
    seed : int
        Everything is drawn from one generator with this seed.

    Returns
    -------
    frame : pandas.DataFrame
        Tidy binary responses (``query_id, query, llm, score, cost``), query-major;
        ``query`` is a placeholder (the embeddings stand for the texts).
    embeddings : numpy.ndarray
        (n_queries, dim) float32, in ``query_id`` order.
    abilities : pandas.Series
        True ability of each LLM (mean zero), indexed by LLM.

    Examples
    --------
    >>> frame, emb, theta = scale_pool(10, 100, dim=8, seed=1)
    >>> len(frame), emb.shape, theta.shape
    (1000, (100, 8), (10,))
    """
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n_queries, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scale = np.sqrt(dim)  # unit-norm rows: weights of this size give effects of sd ~1
    b = emb @ rng.normal(0, 1.0, dim) * scale * 0.8 + rng.normal(0, 0.6, n_queries)
    a = np.exp(emb @ rng.normal(0, 0.3, dim) * scale * 0.5 + rng.normal(0, 0.2, n_queries))
    theta = rng.normal(0, 1, n_llms)
    theta -= theta.mean()
    llms = [f"llm-{j:03d}" for j in range(n_llms)]
    p = special.expit(a[:, None] * (theta[None, :] - b[:, None]))
    ids = np.array([f"q{i}" for i in range(n_queries)], dtype=object)
    frame = pd.DataFrame(
        {
            "query_id": np.repeat(ids, n_llms),
            "query": np.repeat(np.char.add("query ", ids.astype(str)), n_llms),
            "llm": np.tile(np.array(llms, dtype=object), n_queries),
            "score": (rng.random((n_queries, n_llms)) < p).astype(np.float64).ravel(),
            "cost": np.tile(rng.uniform(1e-4, 1e-2, n_llms), n_queries),
        }
    )
    return frame, emb.astype(np.float32), pd.Series(theta, index=pd.Index(llms, name="llm"))
