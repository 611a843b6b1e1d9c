"""The routing service's state: its decision log and the feedback, in one database.

``StateStore(location)`` takes a folder (an SQLite file ``state.sqlite`` inside it, in
WAL mode with ``synchronous=FULL``: a committed row survives ``kill -9`` and power loss)
or a PostgreSQL URL (``postgresql://user@host/db``), which replicas behind a load
balancer share. Decision rows are committed without waiting for the disk (SQLite's
``synchronous=NORMAL`` on a second connection pool, PostgreSQL's ``synchronous_commit
off``): they survive ``kill -9``, and the next feedback commit, which does wait, flushes
them with it, so a decision is on disk before any feedback on it is acknowledged. The
wait had been a tenth of a routing pass under load (``benchmarks/serve.py``).
Both go through SQLAlchemy Core, so the two have one schema and one
set of queries.

Every decision row keeps what off-policy evaluation needs: the query, its embedding,
the LLM chosen, the policy and the propensity of that choice under it. Feedback rows
are self-contained (query, embedding, LLM, score) and numbered in commit order
(``seq``); a service folds them into its online posterior in that order, so every
replica, and a restarted one, reaches the same posterior. A decision takes one outcome
(a unique index, so replicas cannot race past it): a second would count the same
answer twice (:class:`FeedbackConflict`).
"""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from irt_bayes.errors import DataError, IrtBayesError

__all__ = ["FeedbackConflict", "StateStore", "STATE_FILE"]

STATE_FILE = "state.sqlite"
_meta = sa.MetaData()
decisions = sa.Table(
    "irt_bayes_decisions",
    _meta,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("llm", sa.String(200), nullable=False),
    sa.Column("policy", sa.String(40), nullable=False),
    sa.Column("propensity", sa.Float, nullable=False),
    sa.Column("expected_accuracy", sa.Float, nullable=False),
    sa.Column("expected_cost", sa.Float, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
)
feedback = sa.Table(
    "irt_bayes_feedback",
    _meta,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("decision_id", sa.String(64), nullable=True),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("embedding", sa.LargeBinary, nullable=False),
    sa.Column("llm", sa.String(200), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
)
_one_per_decision = sa.Index(
    "irt_bayes_feedback_one_per_decision",
    feedback.c.decision_id,
    unique=True,
    sqlite_where=feedback.c.decision_id.isnot(None),
    postgresql_where=feedback.c.decision_id.isnot(None),
)


class FeedbackConflict(IrtBayesError):
    """The decision already has its outcome."""


def _url(location: str | os.PathLike, create: bool = True) -> tuple[str, bool]:
    text = str(location)
    if "://" in text:
        if text.startswith("postgresql://"):  # psycopg 3, not SQLAlchemy's psycopg2 default
            text = "postgresql+psycopg://" + text[len("postgresql://") :]
        if not text.startswith(("postgresql", "sqlite")):
            raise IrtBayesError(f"--state {location}: use a folder or a postgresql:// URL")
        return text, text.startswith("sqlite")
    folder = Path(location)
    if folder.exists() and not folder.is_dir():
        raise IrtBayesError(f"--state {location} is a file; give a folder (or a PostgreSQL URL)")
    if not create and not (folder / STATE_FILE).is_file():
        raise IrtBayesError(
            f"--state {location}: holds no {STATE_FILE}; name the service's --state"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / STATE_FILE}", True


class StateStore:
    """Decision log and feedback of a routing service (module docstring).

    Parameters
    ----------
    location : str or path
        A folder for the embedded SQLite database, or a PostgreSQL URL.
    create : bool, default True
        Create the SQLite folder and database when missing; False reads only existing
        state (``refit``), so a mistyped folder is refused rather than made.

    Examples
    --------
    >>> store = StateStore(tmp_path)  # doctest: +SKIP
    >>> store.counts()  # doctest: +SKIP
    {'decisions': 0, 'feedback': 0}
    """

    def __init__(self, location: str | os.PathLike, create: bool = True) -> None:
        url, self.sqlite = _url(location, create)
        self.location = str(location)
        kwargs: dict[str, Any] = {"future": True}
        if self.sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=16, max_overflow=16, pool_pre_ping=True)
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except (sa.exc.ArgumentError, ImportError) as err:
            raise IrtBayesError(f"--state {location}: {err}") from err
        self._log_engine = self.engine
        if self.sqlite:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self._log_engine = sa.create_engine(url, **kwargs)
            sa.event.listen(
                self._log_engine,
                "connect",
                functools.partial(_sqlite_pragmas, synchronous="NORMAL"),
            )
        try:
            _meta.create_all(self.engine)
        except sa.exc.DatabaseError as err:  # also "file is not a database"
            msg = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
            raise IrtBayesError(f"--state {location}: cannot open the database: {msg}") from err
        self._add_index(location)

    def _add_index(self, location: str | os.PathLike) -> None:
        """Give state written before the one-outcome index existed that index."""
        name = _one_per_decision.name
        try:  # IF NOT EXISTS: replicas starting together on one database
            with self.engine.begin() as conn:
                conn.execute(sa.schema.CreateIndex(_one_per_decision, if_not_exists=True))
            return
        except sa.exc.DBAPIError as err:
            failed = err
        if any(ix["name"] == name for ix in sa.inspect(self.engine).get_indexes(feedback.name)):
            return  # another replica made it first
        why = (
            "it holds two outcomes for one decision (written by an older irt-bayes)"
            if isinstance(failed, sa.exc.IntegrityError)
            else f"the index could not be added ({str(failed.orig).strip().splitlines()[0]})"
        )
        warnings.warn(
            f"--state {location}: {why}; repeated outcomes are not refused",
            RuntimeWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ decisions
    def log_decisions(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Commit decision rows (``decision_id, query, embedding`` (array), ``llm``, ...)."""
        now = time.time()
        values = [
            {
                **{k: v for k, v in r.items() if k not in ("embedding", "settings")},
                "created": now,
                "embedding": _blob(r["embedding"]),
                "settings": json.dumps(r.get("settings", {}), sort_keys=True),
            }
            for r in rows
        ]
        if values:
            with self._log_engine.begin() as conn:
                if not self.sqlite:
                    conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                conn.execute(decisions.insert(), values)

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        """The logged decision, or None for an id this service never gave."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(decisions).where(decisions.c.decision_id == decision_id)
            ).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["embedding"] = _array(out["embedding"])
        return out

    def decision_log(self) -> pd.DataFrame:
        """Every decision, oldest first (embeddings left out)."""
        cols = [c for c in decisions.c if c.name != "embedding"]
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(*cols).order_by(decisions.c.created), conn)

    # ------------------------------------------------------------------- feedback
    def add_feedback(self, rows: Iterable[Mapping[str, Any]]) -> list[int]:
        """Commit feedback rows (``query, embedding, llm, score``, optional ``decision_id``).

        Returns their ``seq``; the rows are on disk (or in PostgreSQL) when it returns.
        """
        now = time.time()
        values = [
            {
                "created": now,
                "decision_id": r.get("decision_id"),
                "query": r["query"],
                "embedding": _blob(r["embedding"]),
                "llm": r["llm"],
                "score": float(r["score"]),
            }
            for r in rows
        ]
        if not values:
            return []
        try:
            with self.engine.begin() as conn:
                if not self.sqlite:
                    # commit order = seq order, so a replica tailing seq > last misses nothing
                    conn.execute(sa.text(f"LOCK TABLE {feedback.name} IN EXCLUSIVE MODE"))
                res = conn.execute(feedback.insert().returning(feedback.c.seq), values)
                return [int(s) for (s,) in res]
        except sa.exc.IntegrityError as err:
            ids = [v["decision_id"] for v in values if v["decision_id"] is not None]
            which = f"decision {ids[0]!r}" if len(ids) == 1 else "a decision"
            raise FeedbackConflict(f"{which} already has its outcome") from err

    def feedback_since(self, seq: int = 0, limit: int | None = None) -> pd.DataFrame:
        """Feedback rows with ``seq`` above ``seq``, in order; ``embedding`` as arrays."""
        stmt = sa.select(feedback).where(feedback.c.seq > seq).order_by(feedback.c.seq)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        df = pd.DataFrame(rows, columns=[c.name for c in feedback.c])
        df["embedding"] = [_array(b) for b in df["embedding"]]
        return df

    def counts(self) -> dict[str, Any]:
        """Decisions and feedback in the store, and per LLM."""
        with self.engine.connect() as conn:
            d = conn.execute(
                sa.select(decisions.c.llm, sa.func.count()).group_by(decisions.c.llm)
            ).all()
            f = conn.execute(
                sa.select(feedback.c.llm, sa.func.count(), sa.func.avg(feedback.c.score)).group_by(
                    feedback.c.llm
                )
            ).all()
        per: dict[str, dict[str, Any]] = {}
        for llm, n in d:
            per.setdefault(llm, {"decisions": 0, "feedback": 0, "mean_score": None})
            per[llm]["decisions"] = int(n)
        for llm, n, mean in f:
            per.setdefault(llm, {"decisions": 0, "feedback": 0, "mean_score": None})
            per[llm]["feedback"], per[llm]["mean_score"] = int(n), float(mean)
        return {
            "decisions": sum(v["decisions"] for v in per.values()),
            "feedback": sum(v["feedback"] for v in per.values()),
            "llms": per,
        }

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()
        self._log_engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record, synchronous: str = "FULL") -> None:
    # FULL: the WAL is synced at every commit, so an acknowledged row survives power loss;
    # NORMAL (the decision log): the commit reaches the OS (it survives kill -9) and is
    # synced with the next FULL commit or checkpoint
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.close()


def _blob(x: Any) -> bytes:
    arr = np.asarray(x, dtype="<f4")
    if arr.ndim != 1:
        raise DataError(f"an embedding must be one vector, got shape {arr.shape}")
    return arr.tobytes()


def _array(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4").astype(np.float32)
