"""``irt-bayes serve``: an OpenAI-compatible routing service with online updating.

Endpoints (JSON; errors are ``{"error": "<one line>"}``)
-------------------------------------------------------
``GET /health``
    200 once the router, the encoder and the stored feedback are loaded.
``POST /v1/route``
    ``{"query": str}`` or ``{"queries": [str, ...]}`` with ``willingness_to_pay`` or
    ``alpha`` (or the server's default), optional ``policy``, ``quantile``, ``budget``,
    ``llms``: per query a ``decision_id``, the chosen ``llm``, its
    ``expected_accuracy`` (mean, sd, 94% interval), ``expected_cost``, ``utility``,
    ``propensity`` and every alternative with the same fields.
``POST /v1/chat/completions``
    OpenAI's request; ``model`` is ``"irt-bayes"`` (server defaults) or, e.g.,
    ``"irt-bayes:wtp=50"``, ``"irt-bayes:alpha=0.8,policy=thompson"``. The last user
    message is routed among the LLMs of ``--backends`` and the request forwarded to the
    chosen one (streaming passes through). The response carries the decision in
    ``irt_bayes`` and in the headers ``x-irt-bayes-decision-id``, ``x-irt-bayes-llm``.
``POST /v1/feedback``
    ``{"decision_id", "score"}`` or ``{"query", "llm", "score"}``; committed to the
    state store before the 2xx (``StateStore``), then folded into the online posterior.
``GET /v1/models``, ``GET /v1/stats``, ``GET /metrics`` (Prometheus text format).

How a request is served
-----------------------
Route requests wait in one queue; a thread takes everything waiting and encodes the
texts in one call, and a second thread draws their predictive together and routes them
while the first encodes the next batch (:class:`Batcher`), so under load the encoder
sees batches, not single texts, and both cores work. The decisions are logged with their
propensity (the probability that the policy picks that LLM: 1 for the deterministic
policies, the posterior probability of having the best utility for ``thompson``)
before the response is sent.

Feedback is written to the store; one thread tails the store in commit order and folds
new rows into :class:`~irt_bayes.online.OnlinePosterior` (its module docstring has the
rule), so feedback sent to any replica reaches every replica sharing a PostgreSQL store,
and a restart replays the stored feedback to the same posterior before it is healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hmac
import ipaddress
import json
import math
import os
import queue
import secrets
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

import irt_bayes
from irt_bayes.backends import Backend
from irt_bayes.data import has_text
from irt_bayes.encoding import check_texts
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.online import OnlinePosterior
from irt_bayes.routing import POLICIES, decide
from irt_bayes.store import FeedbackConflict, StateStore

__all__ = [
    "ServiceSettings",
    "create_app",
    "serve",
    "is_loopback",
    "check_exposure",
    "default_encoder_threads",
    "wait_until_healthy",
    "MAX_BODY",
    "MAX_QUERIES",
]

MAX_BODY = 1 << 20
"""Largest request body accepted (bytes)."""
MAX_QUERIES = 256
"""Most queries in one ``/v1/route`` request."""
MAX_BATCH = 512
"""Most texts the batching thread encodes in one call."""


def default_encoder_threads() -> int:
    """Half the cores, at least one: the encoder's share of the machine."""
    return max(1, (os.cpu_count() or 2) // 2)


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to listen where other machines can reach it without an API key."""
    if not is_loopback(host) and not api_key:
        raise IrtBayesError(
            f"--host {host} is reachable from other machines: pass --api-key (or set "
            "IRT_BAYES_API_KEY) so that requests must carry it"
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServiceSettings:
    """Options of ``irt-bayes serve``.

    Parameters
    ----------
    willingness_to_pay, alpha : float, optional
        Default utility of requests that give neither (at most one).
    policy : str
        Default policy (:data:`~irt_bayes.routing.POLICIES`).
    forgetting : float
        Forgetting factor of the online update (1: none).
    api_key : str, optional
        Bearer token every request but ``/health`` must carry.
    poll_s : float
        How often the feedback tail looks for rows other replicas wrote.
    encoder_threads : int, optional
        Threads the encoder may use (default :func:`default_encoder_threads`, half the
        cores): the rest answer HTTP.
        On 2 cores with the load benchmark's clients beside it, 1 thread halved the
        latency of a lone request (two threads spin against the event loop).
    """

    willingness_to_pay: float | None = None
    alpha: float | None = None
    policy: str = "expected-utility"
    forgetting: float = 1.0
    api_key: str | None = None
    poll_s: float = 0.5
    backends: dict[str, Backend] = field(default_factory=dict)
    encoder_threads: int | None = None


# ----------------------------------------------------------------------- batching
@dataclass(frozen=True)
class Ask:
    """What a route request asks for, defaults resolved; equal asks are routed together."""

    willingness_to_pay: float | None
    alpha: float | None
    policy: str
    quantile: float = 0.1
    budget: float | None = None
    llms: tuple[str, ...] | None = None
    log: bool = True  # False: the warm-up, not a decision


Job = tuple[list[str], Ask | None]  # texts, and None for "embed only"


class Batcher:
    """Two threads that serve every waiting request in one pass, as a pipeline.

    The first takes everything waiting and runs ``first(jobs)`` (the encoder); the
    second runs ``second(jobs, first's result)`` (prediction, routing, the log) and
    answers. The encoder's forward pass releases the GIL, so batch k+1 is encoded
    while batch k is routed and the event loop answers HTTP: one thread doing both
    kept the server at one core of two (measured, ``benchmarks/serve.py``). Requests
    that arrive while a pass runs wait for the next, so under load a pass sees many.
    ``second`` returns one result (or exception) per job.
    """

    def __init__(
        self,
        first: Callable[[list[Job]], Any],
        second: Callable[[list[Job], Any], list[Any]],
    ) -> None:
        self._first, self._second = first, second
        self._queue: queue.Queue[tuple[Job, Future]] = queue.Queue()
        # one pass waits between the stages at most: the encoder runs ahead by one
        self._handoff: queue.Queue[tuple[list, Any]] = queue.Queue(maxsize=1)
        self.batches = 0
        for name, target in (("encode", self._run_first), ("route", self._run_second)):
            threading.Thread(target=target, name=f"irt-bayes-{name}", daemon=True).start()

    def submit(self, texts: list[str], ask: Ask | None) -> Future:
        """Queue one job; its future holds the result (or raises its exception)."""
        fut: Future = Future()
        self._queue.put(((texts, ask), fut))
        return fut

    def _run_first(self) -> None:
        while True:
            items = [self._queue.get()]
            n = len(items[0][0][0])
            while n < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                n += len(item[0][0])
            self.batches += 1
            try:
                state: Any = self._first([job for job, _ in items])
            except BaseException as err:  # handed to the waiting requests
                state = err
            self._handoff.put((items, state))

    def _run_second(self) -> None:
        while True:
            items, state = self._handoff.get()
            if isinstance(state, BaseException):
                results = [state] * len(items)
            else:
                try:
                    results = self._second([job for job, _ in items], state)
                except BaseException as err:  # handed to the waiting requests
                    results = [err] * len(items)
            for (_, fut), res in zip(items, results, strict=True):
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)


# -------------------------------------------------------------------------- state
class Service:
    """The router, its online posterior, the store and the batching thread."""

    def __init__(self, router, store: StateStore, settings: ServiceSettings) -> None:
        if str(getattr(router, "encoder_id_", "")).startswith("precomputed"):
            raise IrtBayesError(
                "this router was fitted on precomputed embeddings; a service must embed "
                "query texts, so fit it with a text encoder"
            )
        self.settings = settings
        self.store = store
        self.online = OnlinePosterior(router, forgetting=settings.forgetting)
        self.last_seq = 0
        self.skipped = 0
        self.started = time.time()
        self.batcher = Batcher(self._encode, self._work)
        self.decide(["warm up the encoder and the predictive"], log=False, **_WARM)
        self.catch_up()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tail = threading.Thread(
            target=self._tail_loop, name="irt-bayes-feedback", daemon=True
        )
        self._tail.start()

    def catch_up(self, chunk: int = 2000) -> int:
        """Fold every stored feedback row not yet seen into the posterior, in order."""
        done = 0
        while True:
            rows = self.store.feedback_since(self.last_seq, limit=chunk)
            if rows.empty:
                return done
            known = rows["llm"].isin(self.online.llms).to_numpy()
            self.skipped += int((~known).sum())
            part = rows[known].reset_index(drop=True)
            # runs of consecutive seq: row seq draws its query's values as row seq of
            # one long stream, however the rows were batched when they arrived
            run = (part["seq"].diff() != 1).cumsum()
            for _, r in part.groupby(run, sort=False):
                q = pd.DataFrame(
                    {"query_id": [f"feedback-{s}" for s in r["seq"]], "query": r["query"]}
                )
                obs = self.online.observations(
                    q,
                    r["llm"].tolist(),
                    r["score"].tolist(),
                    embeddings=np.stack(r["embedding"].to_list()),
                    first_row=int(r["seq"].iloc[0]),
                )
                self.online.update(obs)
            self.last_seq = int(rows["seq"].iloc[-1])
            done += len(rows)

    def _tail_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_s)
            self._wake.clear()
            try:
                self.catch_up()
            except Exception as err:
                warnings.warn(f"online update failed: {err}", stacklevel=1)

    def stop(self) -> None:
        """Stop the feedback tail."""
        self._stop.set()
        self._wake.set()

    # ------------------------------------------------------------------ routing
    def prices(self, view) -> pd.Series:
        """USD per query of each LLM: the backend's price where given, else the router's."""
        p = view.prices_.copy()
        for name, b in self.settings.backends.items():
            if b.price is not None and name in p.index:
                p[name] = b.price
        return p

    def ask(
        self,
        *,
        willingness_to_pay: float | None,
        alpha: float | None,
        policy: str | None,
        quantile: float = 0.1,
        budget: float | None = None,
        llms: Sequence[str] | None = None,
    ) -> Ask:
        """A request's settings with the server's defaults, checked (DataError)."""
        s = self.settings
        if willingness_to_pay is None and alpha is None:
            willingness_to_pay, alpha = s.willingness_to_pay, s.alpha
        if willingness_to_pay is None and alpha is None:
            raise DataError(
                "give willingness_to_pay (USD) or alpha (0..1): the server has no default"
            )
        if willingness_to_pay is not None and alpha is not None:
            raise DataError("give willingness_to_pay or alpha, not both")
        pool = self.online.llms
        if llms is not None:
            unknown = [m for m in llms if m not in pool]
            if unknown:
                raise DataError(f"unknown LLM {unknown[0]!r}; the pool is {pool}")
            llms = tuple(dict.fromkeys(llms))
        return Ask(willingness_to_pay, alpha, policy or s.policy, quantile, budget, llms)

    def decide(self, texts: list[str], *, log: bool = True, **ask: Any) -> list[dict[str, Any]]:
        """Route ``texts`` (decisions logged), with their alternatives; ``ask`` as :meth:`ask`."""
        return self.decide_later(texts, log=log, **ask).result()

    def decide_later(self, texts: list[str], *, log: bool = True, **ask: Any) -> Future:
        """:meth:`decide` queued: a future of its decisions (settings checked here, now)."""
        a = self.ask(**ask)
        check_texts(texts)  # here, so one bad text fails its own request, not the batch
        return self.batcher.submit(list(texts), dataclasses.replace(a, log=log))

    def _encode(self, jobs: list[Job]) -> np.ndarray:
        """The first stage of a pass: every text of ``jobs`` embedded in one call."""
        return self.online.router_._embed([t for ts, _ in jobs for t in ts], None)

    def _work(self, jobs: list[Job], emb: np.ndarray) -> list[Any]:
        """The second stage: predict and route each group of equal asks, log the decisions."""
        view = self.online.router_
        texts = [t for ts, _ in jobs for t in ts]
        starts = np.cumsum([0] + [len(ts) for ts, _ in jobs])
        out: list[Any] = [emb[starts[i] : starts[i + 1]] for i in range(len(jobs))]
        groups: dict[Any, list[int]] = {}
        for i, (_, a) in enumerate(jobs):
            if a is not None:  # None: embed only
                # a budget binds over its own request's queries only
                groups.setdefault(a if a.budget is None else (a, i), []).append(i)
        log = []
        for members in groups.values():
            a = jobs[members[0]][1]
            pos = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in members])
            try:
                decided, rows = self._route(view, texts, emb, pos, a)
            except (DataError, IrtBayesError) as err:
                for i in members:
                    out[i] = err
                continue
            k = 0
            for i in members:
                n = starts[i + 1] - starts[i]
                out[i] = decided[k : k + n]
                k += n
            if a.log:
                log += rows
        self.store.log_decisions(log)
        return out

    def _route(
        self, view, texts: list[str], emb: np.ndarray, pos: np.ndarray, a: Ask
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Decisions for the texts at ``pos`` and the rows that log them."""
        q = pd.DataFrame({"query_id": [f"b{p}" for p in pos], "query": [texts[p] for p in pos]})
        draws = None
        llms = [str(m) for m in view.llms_]
        if a.llms is not None:  # the predictive of the subset only
            draws = view.predict_proba(q, embeddings=emb[pos]).sel(llm=list(a.llms))
            llms = list(a.llms)
        prices = self.prices(view).reindex(llms)
        if prices.isna().any():
            raise DataError(f"no price for LLM {prices.index[prices.isna()][0]!r}")
        seed = secrets.randbits(32)
        res = decide(
            view,
            q,
            costs=prices,
            willingness_to_pay=a.willingness_to_pay,
            alpha=a.alpha,
            policy=a.policy,
            quantile=a.quantile,
            budget=a.budget,
            seed=seed,
            embeddings=emb[pos] if draws is None else None,
            draws=draws,
        )
        n, J = len(pos), len(llms)
        # Python lists: one .tolist() per column, not a numpy scalar per cell
        t = {c: np.asarray(res.columns[c]).tolist() for c in _OPTION_COLUMNS}
        chosen = res.choice
        settings = {**dataclasses.asdict(a), "seed": seed, "online_updates": self.online.n_updates_}
        del settings["log"]
        decided, rows = [], []
        for i in range(n):
            alts = [
                _option(res.llms[j], {c: t[c][i][j] for c in _OPTION_COLUMNS}) for j in range(J)
            ]
            best = alts[chosen[i]]
            # the probability that the policy picks this LLM (off-policy evaluation)
            propensity = best["prob_best"] if a.policy == "thompson" else 1.0
            did = uuid.uuid4().hex
            decided.append(
                {"decision_id": did, **best, "propensity": propensity, "alternatives": alts}
            )
            rows.append(
                {
                    "decision_id": did,
                    "query": texts[pos[i]],
                    "embedding": emb[pos[i]],
                    "llm": best["llm"],
                    "policy": a.policy,
                    "propensity": propensity,
                    "expected_accuracy": best["expected_accuracy"]["mean"],
                    "expected_cost": best["expected_cost"],
                    "settings": settings,
                }
            )
        return decided, rows

    def feedback(
        self,
        score: float,
        decision_id: str | None = None,
        query: str | None = None,
        llm: str | None = None,
    ) -> int:
        """Commit one outcome; returns its ``seq`` once it is in the store."""
        if decision_id is not None:
            d = self.store.decision(decision_id)
            if d is None:
                raise LookupError(f"no decision {decision_id!r} was made by this service")
            if llm is not None and llm != d["llm"]:
                raise DataError(f"decision {decision_id!r} chose {d['llm']!r}, not {llm!r}")
            if query is not None and query != d["query"]:
                raise DataError(f"decision {decision_id!r} was made for another query text")
            row = {"decision_id": decision_id, "query": d["query"], "embedding": d["embedding"]}
            row["llm"] = d["llm"]
        else:
            if llm not in self.online.llms:
                raise DataError(f"unknown LLM {llm!r}; the pool is {self.online.llms}")
            check_texts([query])
            row = {
                "query": query,
                "embedding": self.batcher.submit([query], None).result()[0],
                "llm": llm,
            }
        (seq,) = self.store.add_feedback([{**row, "score": score}])
        self._wake.set()
        return seq

    def models(self) -> dict[str, Any]:
        """The pool with prices and ability summaries (OpenAI's list format)."""
        view = self.online.router_
        ab = self.online.abilities()
        prices = self.prices(view)
        data = [{"id": "irt-bayes", "object": "model", "owned_by": "irt-bayes", "router": True}]
        for m in view.llms_:
            a = ab[ab["llm"] == m]
            data.append(
                {
                    "id": m,
                    "object": "model",
                    "owned_by": "irt-bayes pool",
                    "price": None if pd.isna(prices[m]) else float(prices[m]),
                    "backend": m in self.settings.backends,
                    "ability": [
                        {"skill": int(r.skill), "mean": r.mean, "sd": r.sd}
                        for r in a.itertuples(index=False)
                    ],
                }
            )
        return {"object": "list", "data": data}

    def stats(self) -> dict[str, Any]:
        """Counts from the store and the state of the online posterior."""
        c = self.store.counts()
        return {
            **c,
            "online_updates": self.online.n_updates_,
            "feedback_applied_seq": self.last_seq,
            "feedback_skipped": self.skipped,
            "batches": self.batcher.batches,
            # what runs the transformer after any fallback (int8 refused on some CPUs)
            "encoder": self.online.router_._get_encoder().backend,
            "uptime_s": time.time() - self.started,
        }


_OPTION_COLUMNS = (
    "expected_accuracy",
    "accuracy_sd",
    "accuracy_low",
    "accuracy_high",
    "expected_cost",
    "utility",
    "prob_best",
)
_WARM = {"willingness_to_pay": 0.0, "alpha": None, "policy": "expected-utility"}


def _option(llm: str, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "llm": llm,
        "expected_accuracy": {
            "mean": float(r["expected_accuracy"]),
            "sd": float(r["accuracy_sd"]),
            "low": float(r["accuracy_low"]),
            "high": float(r["accuracy_high"]),
        },
        "expected_cost": float(r["expected_cost"]),
        "utility": float(r["utility"]),
        "prob_best": float(r["prob_best"]),
    }


# ----------------------------------------------------------------------- the app
# Numbers are strict: true or "10" for a price or a score is a client's bug, not a value.
class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str | None = None
    queries: list[str] | None = Field(default=None, max_length=MAX_QUERIES)
    willingness_to_pay: float | None = Field(default=None, ge=0, allow_inf_nan=False, strict=True)
    alpha: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False, strict=True)
    policy: Literal[POLICIES] | None = None  # type: ignore[valid-type]
    quantile: float = Field(default=0.1, gt=0, lt=1, allow_inf_nan=False, strict=True)
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False, strict=True)
    llms: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self):
        if (self.query is None) == (self.queries is None):
            raise ValueError("give 'query' or 'queries', one of the two")
        texts = [self.query] if self.query is not None else self.queries
        if not texts:
            raise ValueError("'queries' is empty")
        for i, t in enumerate(texts):
            if not has_text(t):
                raise ValueError(f"query {i} is empty (no visible character)")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision_id: str | None = Field(default=None, max_length=64)
    query: str | None = None
    llm: str | None = None
    score: float = Field(ge=0, le=1, allow_inf_nan=False, strict=True)

    @model_validator(mode="after")
    def _one_source(self):
        if self.decision_id is None and (self.query is None or self.llm is None):
            raise ValueError("give 'decision_id', or 'query' and 'llm'")
        if self.query is not None and not has_text(self.query):
            raise ValueError("query is empty (no visible character)")
        return self


def _settings_from_model(model: str) -> dict[str, Any]:
    """``irt-bayes[:key=value,...]`` to routing settings."""
    if model != "irt-bayes" and not model.startswith("irt-bayes:"):
        raise DataError(f"model {model!r}: use 'irt-bayes' or e.g. 'irt-bayes:wtp=50'")
    out: dict[str, Any] = {}
    spec = model[len("irt-bayes:") :] if ":" in model else ""
    names = {"wtp": "willingness_to_pay", "willingness_to_pay": "willingness_to_pay"}
    names |= {"alpha": "alpha", "policy": "policy", "quantile": "quantile"}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        if key not in names or not value:
            raise DataError(f"model {model!r}: unknown setting {part!r}")
        if key == "policy":
            if value not in POLICIES:
                raise DataError(f"model {model!r}: policy {value!r} is not one of {POLICIES}")
            out["policy"] = value
            continue
        try:
            x = float(value)
        except ValueError:
            raise DataError(f"model {model!r}: {key} {value!r} is not a number") from None
        if not math.isfinite(x) or x < 0 or (key in ("alpha", "quantile") and x > 1):
            raise DataError(f"model {model!r}: {key} {value!r} is out of range")
        out[names[key]] = x
    return out


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise DataError("messages must be a non-empty list")
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):  # content parts
                content = " ".join(
                    p.get("text", "")
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                )
            if has_text(content):
                return content
            raise DataError("the last user message has no text")
    raise DataError("messages hold no user message")


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` once, then defers to ``receive``."""
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


def create_app(router, store: StateStore, settings: ServiceSettings):
    """The FastAPI application of a routing service (see the module docstring)."""
    svc = Service(router, store, settings)
    reg = CollectorRegistry()
    m_decisions = Counter("irt_bayes_decisions", "Routing decisions made", ["llm"], registry=reg)
    m_feedback = Counter("irt_bayes_feedback", "Feedback rows committed", registry=reg)
    m_latency = Histogram(
        "irt_bayes_request_seconds",
        "Request latency",
        ["endpoint"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        registry=reg,
    )
    m_errors = Counter("irt_bayes_errors", "Requests refused or failed", ["status"], registry=reg)
    Gauge(
        "irt_bayes_online_updates", "Outcomes in the online posterior", registry=reg
    ).set_function(lambda: svc.online.n_updates_)
    Gauge("irt_bayes_llms", "LLMs in the pool", registry=reg).set_function(
        lambda: len(svc.online.llms)
    )

    client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        svc.stop()
        await client.aclose()
        store.close()

    app = FastAPI(title="irt-bayes", version=irt_bayes.__version__, lifespan=lifespan)
    known_paths: set[str] = set()  # filled once every route is declared
    app.state.service = svc

    def error(status: int, message: str) -> JSONResponse:
        m_errors.labels(str(status)).inc()
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        e = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        where = [str(x) for x in e.get("loc", ()) if x != "body"]
        if e.get("type") == "json_invalid":
            why = (e.get("ctx") or {}).get("error", "")
            at = f" at character {where[0]}" if where else ""
            return error(422, f"the body is not valid JSON{at}: {why}".rstrip(": "))
        if not where and e.get("type") in ("model_attributes_type", "dict_type"):
            return error(422, "the body must be a JSON object (Content-Type: application/json)")
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        return error(422, f"{'.'.join(where)}: {msg}" if where else msg)

    class Guard:
        """The API key, the body limit and the latency histogram, as plain ASGI.

        (``@app.middleware("http")`` runs every request through extra tasks and
        streams; this adds nothing a request does not use.)
        """

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            path = scope["path"]
            headers = dict(scope["headers"])
            if settings.api_key and path != "/health":
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, f"Bearer {settings.api_key}".encode()):
                    refused = error(401, "missing or wrong API key (Authorization: Bearer KEY)")
                    return await refused(scope, receive, send)
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                told = length.decode("latin-1")
                refused = error(422, f"request body of {told} bytes; the limit is {MAX_BODY} bytes")
                return await refused(scope, receive, send)
            if length is None and scope["method"] not in ("GET", "HEAD"):
                # chunked: no length to check up front, so read it here, up to the limit
                body, more = bytearray(), True  # bytearray: no copy of the whole per chunk
                while more:
                    msg = await receive()
                    if msg["type"] != "http.request":
                        return None  # the client went away
                    body += msg.get("body", b"")
                    more = msg.get("more_body", False)
                    if len(body) > MAX_BODY:
                        refused = error(422, f"request body over the limit of {MAX_BODY} bytes")
                        return await refused(scope, receive, send)
                receive = _replay(bytes(body), receive)
            t0 = time.perf_counter()
            await self.inner(scope, receive, send)
            # a label per route, not per path: unknown paths must not grow the metric
            label = path if path in known_paths else "other"
            m_latency.labels(label).observe(time.perf_counter() - t0)
            return None

    app.add_middleware(Guard)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": bad UTF-8, nesting
            return error(422, "the body is not JSON this server reads (UTF-8, not nested deeply)")
        out = error(exc.status_code, str(exc.detail))
        out.headers.update(exc.headers or {})  # 405's Allow
        return out

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "llms": len(svc.online.llms), "feedback": svc.last_seq}

    @app.post("/v1/route")
    async def route_endpoint(req: RouteRequest) -> Any:
        texts = [req.query] if req.query is not None else list(req.queries or [])
        try:
            # awaited on the event loop: no thread-pool hop per request
            out = await asyncio.wrap_future(
                svc.decide_later(
                    texts,
                    willingness_to_pay=req.willingness_to_pay,
                    alpha=req.alpha,
                    policy=req.policy,
                    quantile=req.quantile,
                    budget=req.budget,
                    llms=req.llms,
                )
            )
        except (DataError, IrtBayesError) as err:
            return error(422, str(err))
        for d in out:
            m_decisions.labels(d["llm"]).inc()
        return JSONResponse({"decisions": out})

    @app.post("/v1/feedback")
    def feedback_endpoint(req: FeedbackRequest) -> Any:
        try:
            seq = svc.feedback(req.score, req.decision_id, req.query, req.llm)
        except LookupError as err:
            return error(404, str(err).strip("'\""))
        except FeedbackConflict as err:
            return error(409, str(err))
        except DataError as err:
            return error(422, str(err))
        m_feedback.inc()
        return {"status": "stored", "seq": seq}

    @app.get("/v1/models")
    def models() -> Any:
        return svc.models()

    @app.get("/v1/stats")
    def stats() -> Any:
        return svc.stats()

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(reg), media_type="text/plain; version=0.0.4")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        try:
            body = json.loads(await request.body(), parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as err:
            return error(422, f"the body is not JSON: {err}")
        except RecursionError:
            return error(422, "the body is not JSON this server reads: nested too deeply")
        if not isinstance(body, dict):
            return error(422, "the body must be a JSON object")
        if not settings.backends:
            return error(422, "this server has no --backends to forward chat requests to")
        try:
            opts = _settings_from_model(str(body.get("model", "irt-bayes")))
            text = _last_user_text(body.get("messages"))
            d = (
                await asyncio.wrap_future(
                    svc.decide_later(
                        [text],
                        llms=list(settings.backends),
                        **{"willingness_to_pay": None, "alpha": None, "policy": None, **opts},
                    )
                )
            )[0]
        except (DataError, IrtBayesError) as err:
            return error(422, str(err))
        m_decisions.labels(d["llm"]).inc()
        backend = settings.backends[d["llm"]]
        payload = {**body, "model": backend.model}
        headers = {"x-irt-bayes-decision-id": d["decision_id"], "x-irt-bayes-llm": d["llm"]}
        info = {k: d[k] for k in ("decision_id", "llm", "expected_accuracy", "expected_cost")}
        try:
            if body.get("stream"):
                req = client.build_request(
                    "POST", backend.chat_url, json=payload, headers=backend.headers()
                )
                resp = await client.send(req, stream=True)
                if resp.status_code >= 400:
                    text_err = (await resp.aread()).decode(errors="replace")[:200]
                    await resp.aclose()
                    return error(
                        502, f"backend {d['llm']!r} answered {resp.status_code}: {text_err}"
                    )

                async def relay():
                    try:
                        async for chunk in resp.aiter_raw():
                            yield chunk
                    finally:
                        await resp.aclose()

                media = resp.headers.get("content-type", "text/event-stream")
                return StreamingResponse(relay(), media_type=media, headers=headers)
            resp = await client.post(backend.chat_url, json=payload, headers=backend.headers())
        except httpx.HTTPError as err:
            return error(
                502, f"backend {d['llm']!r} at {backend.base_url}: {type(err).__name__} {err}"
            )
        try:
            data = resp.json()
        except ValueError:
            return error(502, f"backend {d['llm']!r} answered {resp.status_code} without JSON")
        if resp.status_code >= 400:
            return JSONResponse(data, status_code=502, headers=headers)
        if isinstance(data, dict):
            data["irt_bayes"] = info
        return JSONResponse(data, headers=headers)

    known_paths.update(r.path for r in app.routes if hasattr(r, "path"))
    return app


def wait_until_healthy(url: str, timeout: float = 120.0, proc: Any = None) -> None:
    """Wait for ``url/health`` to answer 200 (a server started in another process).

    Parameters
    ----------
    url : str
        The service's base URL, e.g. ``http://127.0.0.1:8000``.
    timeout : float
        Seconds to wait (loading the router and the encoder takes a few).
    proc : subprocess.Popen, optional
        The server's process: if it exits first, the wait stops at once.

    Raises
    ------
    IrtBayesError
        The process exited, or no 200 came within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise IrtBayesError(f"the server exited with status {proc.returncode}: {out}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise IrtBayesError(f"no 200 from {url}/health within {timeout:g} s")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def serve(
    router,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    state: str = "irt-bayes-state",
    settings: ServiceSettings | None = None,
    log_level: str = "warning",
) -> None:
    """Run the service until interrupted (``irt-bayes serve``)."""
    import uvicorn

    settings = settings or ServiceSettings()
    check_exposure(host, settings.api_key)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(settings.encoder_threads or default_encoder_threads())
    # one BLAS thread: a pass's products are small, and idle BLAS threads spinning
    # beside the encoder and the event loop doubled the predictive's time (measured)
    with threadpool_limits(limits=1, user_api="blas"):
        store = StateStore(state)
        app = create_app(router, store, settings)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
        server = uvicorn.Server(config)
        # The router, the encoder and the libraries are ~700k objects that live as long
        # as the process; frozen, the collector no longer walks them, which was a fifth
        # of a routing pass (8 queries: 9.6 -> 7.6 ms, measured in process)
        gc.collect()
        gc.freeze()
        asyncio.run(server.serve())
