"""Response-data contract and loaders: pandas in, xarray out.

The native format is a tidy table with one row per (query, LLM):

============  ========  ==========================================================
column        required  meaning
============  ========  ==========================================================
``query_id``  yes       identifier of the query (item)
``query``     yes       the query text, non-empty
``llm``       yes       name of the LLM (person) that answered
``score``     yes       outcome in [0, 1]: 0/1, a fraction, or k/n with ``trials``
``cost``      no        USD that LLM spent on that query, finite and >= 0
``trials``    no        n of a k-of-n score, positive integer
``dataset``   no        task or domain label of the query
``split``     no        e.g. ``train`` / ``test``, kept for selecting rows
============  ========  ==========================================================

RouterBench's wide format (``sample_id``, ``prompt`` as a Python-literal list of
strings, ``eval_name``, one score column per LLM, ``<llm>|total_cost``, ignored
``<llm>|model_response``) is read from CSV or pickle and converted to the tidy form.
Missing (query, LLM) pairs are normal and stay missing; they are never filled. LLM
names lose the spaces around them (``" gpt-4"`` is ``gpt-4``).

Every contract violation raises :class:`~irt_bayes.errors.DataError` with one line
naming the file, the column and the offending value or row.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from irt_bayes.errors import DataError

__all__ = [
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "ResponseData",
    "has_text",
    "load_responses",
    "load_queries",
    "read_table",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("query_id", "query", "llm", "score")
OPTIONAL_COLUMNS: tuple[str, ...] = ("cost", "trials", "dataset", "split")

# Whitespace, control and format characters (NUL, zero-width space, BOM, bidi marks): a
# text of only these embeds as the empty string does, so it is not a query.
_NO_TEXT = re.compile(
    r"[\s\x00-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0]*"
)


def has_text(text: object) -> bool:
    r"""Whether ``text`` is a string with a visible character (the ``query`` contract).

    Examples
    --------
    >>> has_text("What is 2 + 2?"), has_text(" \t"), has_text("\u200b\x00"), has_text(None)
    (True, False, False, False)
    """
    return isinstance(text, str) and _NO_TEXT.fullmatch(text) is None


# RouterBench wide-format columns that are neither scores nor per-LLM extras.
_WIDE_META = frozenset({"sample_id", "prompt", "eval_name", "oracle_model_to_route_to"})
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".pkl": "pickle",
    ".pickle": "pickle",
}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")
# Read ids and texts of CSV/TSV as strings: "007" must not become 7 (or 7.0).
_TEXT_DTYPES = {
    c: str for c in ("query_id", "query", "llm", "dataset", "split", "sample_id", "eval_name")
}
# Row of the source file, carried from the wide format through validation for messages.
_FILE_ROW = "_file_row"

PathLike = str | os.PathLike


def _fmt(value: object) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _few(values: Sequence[object], n: int = 5) -> str:
    """The first ``n`` values, quoted, and how many more."""
    values = list(values)
    shown = ", ".join(_fmt(v) for v in values[:n])
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


def _row_ref(df: pd.DataFrame, pos: int) -> str:
    """Name a row by its 1-based position and, when known, its query and LLM."""
    row = int(df[_FILE_ROW].iloc[pos]) if _FILE_ROW in df.columns else pos
    parts = [f"row {row + 1}"]
    keys = [c for c in ("query_id", "llm") if c in df.columns]
    if keys:
        parts.append("(" + ", ".join(f"{c}={_fmt(df[c].iloc[pos])}" for c in keys) + ")")
    return " ".join(parts)


def _first_conflict(df: pd.DataFrame, keys: str | list[str], cols: list[str]) -> object:
    """First key (in row order) whose rows disagree on any of ``cols``; None if none."""
    dup = df.duplicated(keys, keep=False)
    if not dup.any():
        return None
    n = df[dup].groupby(keys, sort=False)[cols].nunique()
    bad = n.index[(n > 1).any(axis=1)]
    return bad[0] if len(bad) else None


def _text_ids(values: pd.Series, col: str, source: str) -> pd.Series:
    """Ids as text, exactly as written: never a number (``"007"`` stays ``"007"``).

    CSV/TSV ids are read as text. A Parquet or pickle column of integers becomes their
    decimal text; floats are refused, since ``6.0`` most likely was the id ``6`` turned
    into a float by a missing value, and guessing would merge or split queries silently.
    """
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_complex_dtype(values):
        bad = values.dropna()
        shown = _fmt(bad.iloc[0]) if len(bad) else "NaN"
        raise DataError(
            f"column {col!r} holds numbers with a decimal point (e.g. {shown}); "
            "ids are text: write them as text (e.g. CSV, or a string column)",
            source=source,
        )
    floats = values.map(lambda v: isinstance(v, float | np.floating))
    if floats.any():
        pos = int(np.flatnonzero(floats.to_numpy())[0])
        raise DataError(
            f"column {col!r} has the number {_fmt(values.iloc[pos])} at row {pos + 1}; "
            "ids are text: write them as text",
            source=source,
        )
    return values.astype(str)


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    for comp in _COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    kind = _SUFFIXES.get(Path(name).suffix)
    if kind is None:
        raise DataError(
            f"unknown file format {Path(name).suffix or '(no suffix)'!r}; "
            "expected .csv, .tsv, .parquet or .pkl (optionally compressed)",
            source=str(path),
        )
    return kind


def read_table(path: PathLike, *, allow_pickle: bool = False) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or (only when allowed) pickle file into a DataFrame.

    Parameters
    ----------
    path : str or os.PathLike
        The file; the format comes from its suffix, compression (``.gz`` ...) allowed.
    allow_pickle : bool, default False
        Read ``.pkl``/``.pickle`` files. Unpickling runs code the file's author chose,
        so a pickle is refused unless you trust where it came from (CLI:
        ``--trust-pickle``). Convert a trusted pickle once and keep the Parquet file::

            python -c "import pandas as pd; pd.read_pickle('x.pkl').to_parquet('x.parquet')"

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If the file is missing, of an unknown format, or cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", source=str(path))
    kind = _file_kind(path)
    if kind == "pickle" and not allow_pickle:
        raise DataError(
            "is a pickle, and loading one runs code from the file: pass --trust-pickle "
            "(allow_pickle=True) if you trust it, or convert it once to Parquet (README, "
            "'Trust')",
            source=str(path),
        )
    try:
        if kind == "csv":
            df = pd.read_csv(path, dtype=_TEXT_DTYPES)
        elif kind == "tsv":
            df = pd.read_csv(path, sep="\t", dtype=_TEXT_DTYPES)
        elif kind == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_pickle(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read as {kind}: {first}", source=str(path)) from None
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"holds a {type(df).__name__}, not a table", source=str(path))
    return df


def _is_wide(df: pd.DataFrame) -> bool:
    return {"sample_id", "prompt"} <= set(df.columns)


def _join_prompt(raw: object, pos: int, source: str) -> str:
    if isinstance(raw, list | tuple):
        parts = raw
    elif isinstance(raw, str) and raw.lstrip().startswith("["):
        try:
            parts = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise DataError(
                f"column 'prompt' at row {pos + 1} is not a Python-literal list of strings",
                source=source,
            ) from None
    else:
        parts = [raw]
    return "\n".join(
        "" if p is None or (isinstance(p, float) and np.isnan(p)) else str(p) for p in parts
    )


def _wide_to_tidy(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Convert RouterBench's wide table (one row per query) to the tidy form."""
    llms = [c for c in df.columns if c not in _WIDE_META and "|" not in str(c)]
    if not llms:
        raise DataError("RouterBench table has no LLM score columns", source=source)
    cost_cols = {c.split("|", 1)[0]: c for c in df.columns if str(c).endswith("|total_cost")}
    if cost_cols:
        lacking = [m for m in llms if m not in cost_cols]
        if lacking:
            raise DataError(
                f"LLM {lacking[0]!r} has no '{lacking[0]}|total_cost' column", source=source
            )
    for m in llms:
        if not pd.api.types.is_numeric_dtype(df[m]):
            bad = pd.to_numeric(df[m], errors="coerce").isna() & df[m].notna()
            if bad.any():  # an object column of numbers and None is fine
                pos = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"column {m!r} has non-numeric score {_fmt(df[m].iloc[pos])} at row {pos + 1}",
                    source=source,
                )

    ids = _text_ids(df["sample_id"], "sample_id", source)
    # RouterBench reuses a sample_id for distinct prompts (few-shot variants); each row is
    # its own query, so later repeats get a '#k' suffix instead of being merged.
    rank = ids.groupby(ids).cumcount()
    ids = ids.where(rank == 0, ids + "#" + (rank + 1).astype(str))
    texts = [_join_prompt(p, i, source) for i, p in enumerate(df["prompt"].tolist())]
    base = pd.DataFrame({"query_id": ids.to_numpy(), "query": texts})
    if "eval_name" in df.columns:
        base["dataset"] = df["eval_name"].astype(str).to_numpy()

    frames = []
    for m in llms:
        part = base.copy()
        part["llm"] = m
        part["score"] = pd.to_numeric(df[m]).to_numpy(dtype=float, na_value=np.nan)
        if cost_cols:  # raw values: _validate_tidy checks them and names a bad one
            part["cost"] = df[cost_cols[m]].to_numpy()
        part["_row"] = np.arange(len(df))
        frames.append(part)
    long = pd.concat(frames, ignore_index=True)
    observed = long["score"].notna()

    n_per_llm = observed.groupby(long["llm"]).sum()
    if (n_per_llm == 0).any():
        raise DataError(
            f"LLM {n_per_llm.index[n_per_llm == 0][0]!r} has no responses at all", source=source
        )
    n_per_query = observed.groupby(long["_row"]).sum()
    if (n_per_query == 0).any():
        row = int(n_per_query.index[n_per_query == 0][0])
        raise DataError(
            f"query {base['query_id'].iloc[row]!r} (row {row + 1}) has no responses at all",
            source=source,
        )
    # Query-major, in file order (as a tidy file would be); keep the file row for messages.
    long = long[observed].sort_values("_row", kind="stable")
    return long.rename(columns={"_row": _FILE_ROW}).reset_index(drop=True)


def _validate_tidy(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check the tidy contract and return a clean copy with canonical dtypes."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        cols = ", ".join(repr(c) for c in missing)
        raise DataError(
            f"missing required column{'s' if len(missing) > 1 else ''} {cols} "
            f"(have: {', '.join(map(str, df.columns))})",
            source=source,
        )
    if len(df) == 0:
        raise DataError("has no rows", source=source)
    keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, _FILE_ROW) if c in df.columns]
    df = df[keep].reset_index(drop=True)

    for col in ("query_id", "llm"):
        bad = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"column {col!r} is empty at row {pos + 1}", source=source)
    df["query_id"] = _text_ids(df["query_id"], "query_id", source)
    # " gpt-4" from a hand-edited CSV is gpt-4: kept padded, it would be a second LLM
    # beside the pool's gpt-4 (onboarding would add it instead of refusing it)
    df["llm"] = df["llm"].astype(str).str.strip()

    text = df["query"]
    bad = text.isna() | ~text.map(has_text)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"column 'query' has empty query text at {_row_ref(df, pos)}", source=source
        )
    df["query"] = text.astype(str)

    score = pd.to_numeric(df["score"], errors="coerce")
    bad = score.isna() | (score < 0) | (score > 1)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"column 'score' has value {_fmt(df['score'].iloc[pos])} outside [0, 1] "
            f"at {_row_ref(df, pos)}",
            source=source,
        )
    df["score"] = score.astype(float)

    if "cost" in df.columns:
        cost = pd.to_numeric(df["cost"], errors="coerce")
        bad = cost.isna() | (cost < 0) | ~np.isfinite(cost)
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column 'cost' has negative or missing value "
                f"{_fmt(df['cost'].iloc[pos])} at {_row_ref(df, pos)}",
                source=source,
            )
        df["cost"] = cost.astype(float)

    if "trials" in df.columns:
        trials = pd.to_numeric(df["trials"], errors="coerce")
        bad = trials.isna() | ~np.isfinite(trials) | (trials < 1) | (trials != np.round(trials))
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column 'trials' has value {_fmt(df['trials'].iloc[pos])} that is "
                f"not a positive integer at {_row_ref(df, pos)}",
                source=source,
            )
        k = df["score"] * trials
        bad = (k - np.round(k)).abs() > 1e-6
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column 'score' value {_fmt(df['score'].iloc[pos])} is not k/trials "
                f"for trials={int(trials.iloc[pos])} at {_row_ref(df, pos)}",
                source=source,
            )
        df["trials"] = trials.astype(np.int64)

    for col in ("dataset", "split"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)

    qid = _first_conflict(df, "query_id", ["query"])
    if qid is not None:
        raise DataError(f"query_id {qid!r} has more than one distinct 'query' text", source=source)

    value_cols = [c for c in ("score", "cost", "trials") if c in df.columns]
    conflict = _first_conflict(df, ["query_id", "llm"], value_cols)
    if conflict is not None:
        qid, llm = conflict
        rows = np.flatnonzero(((df["query_id"] == qid) & (df["llm"] == llm)).to_numpy()) + 1
        raise DataError(
            f"conflicting duplicate rows for (query_id={qid!r}, llm={llm!r}) at "
            f"rows {', '.join(map(str, rows))}",
            source=source,
        )
    df = df.drop_duplicates(["query_id", "llm"]).reset_index(drop=True)
    return df.drop(columns=_FILE_ROW, errors="ignore")


@dataclass(frozen=True)
class ResponseData:
    """Validated per-(query, LLM) outcomes in the tidy format.

    Build it with :meth:`from_frame` or :func:`load_responses`; the constructor
    assumes a frame that has already been validated.

    Parameters
    ----------
    responses : pandas.DataFrame
        Tidy table, see the module docstring for the columns.
    source : str
        Where the data came from, used in messages.

    Examples
    --------
    >>> import pandas as pd
    >>> from irt_bayes.data import ResponseData
    >>> df = pd.DataFrame({
    ...     "query_id": ["q1", "q1", "q2"],
    ...     "query": ["2+2?", "2+2?", "Capital of France?"],
    ...     "llm": ["small", "big", "big"],
    ...     "score": [0, 1, 1],
    ...     "cost": [1e-4, 1e-3, 1e-3],
    ... })
    >>> data = ResponseData.from_frame(df)
    >>> data.n_queries, data.n_llms, data.n_responses
    (2, 2, 3)
    >>> data.to_xarray()["score"].sizes
    Frozen({'query': 2, 'llm': 2})
    """

    responses: pd.DataFrame
    source: str = "<DataFrame>"

    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str = "<DataFrame>") -> ResponseData:
        """Validate a tidy or RouterBench-wide DataFrame.

        Parameters
        ----------
        df : pandas.DataFrame
            Tidy rows, or RouterBench's wide table (detected by ``sample_id`` and
            ``prompt`` columns).
        source : str, default "<DataFrame>"
            Name used in error messages, usually the file path.

        Returns
        -------
        ResponseData

        Raises
        ------
        DataError
            On any contract violation, in one line naming source, column and value.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}", source=source)
        if _is_wide(df):
            df = _wide_to_tidy(df, source)
        return cls(_validate_tidy(df, source), source)

    # -- shape ---------------------------------------------------------------------------
    @property
    def llms(self) -> list[str]:
        """LLM names in order of first appearance."""
        return list(pd.unique(self.responses["llm"]))

    @property
    def query_ids(self) -> list[str]:
        """Query ids in order of first appearance."""
        return list(pd.unique(self.responses["query_id"]))

    @property
    def queries(self) -> pd.DataFrame:
        """One row per query: ``query_id``, ``query`` and, when present, ``dataset``/``split``."""
        cols = [c for c in ("query_id", "query", "dataset", "split") if c in self.responses]
        return self.responses[cols].drop_duplicates("query_id").reset_index(drop=True)

    @property
    def n_queries(self) -> int:
        """Number of distinct queries."""
        return int(self.responses["query_id"].nunique())

    @property
    def n_llms(self) -> int:
        """Number of distinct LLMs."""
        return int(self.responses["llm"].nunique())

    @property
    def n_responses(self) -> int:
        """Number of observed (query, LLM) pairs."""
        return len(self.responses)

    @property
    def has_cost(self) -> bool:
        """Whether per-response costs are known."""
        return "cost" in self.responses

    @property
    def has_trials(self) -> bool:
        """Whether scores are k-of-n with a ``trials`` column."""
        return "trials" in self.responses

    @property
    def has_dataset(self) -> bool:
        """Whether queries carry a ``dataset`` label."""
        return "dataset" in self.responses

    @property
    def score_kind(self) -> str:
        """``"binary"``, ``"binomial"`` (with trials) or ``"fraction"``."""
        if self.has_trials:
            return "binomial"
        s = self.responses["score"].to_numpy()
        return "binary" if np.all((s == 0) | (s == 1)) else "fraction"

    def __len__(self) -> int:
        return self.n_responses

    def __repr__(self) -> str:
        extras = [c for c in OPTIONAL_COLUMNS if c in self.responses]
        return (
            f"ResponseData({self.n_queries} queries x {self.n_llms} LLMs, "
            f"{self.n_responses} responses, {self.score_kind} scores"
            f"{', ' + ', '.join(extras) if extras else ''}; source={self.source!r})"
        )

    # -- views ---------------------------------------------------------------------------
    def to_xarray(self) -> xr.Dataset:
        """Dense view with dims (``query``, ``llm``); missing pairs are NaN.

        Returns
        -------
        xarray.Dataset
            ``score`` (and ``cost``, ``trials`` when present) as (query, llm) arrays,
            ``observed`` as a boolean mask, coords ``query`` (ids), ``llm`` (names),
            and per-query ``text`` (and ``dataset``) coordinates.
        """
        r = self.responses
        qids, llms = self.query_ids, self.llms
        qi = pd.Index(qids).get_indexer(r["query_id"])
        li = pd.Index(llms).get_indexer(r["llm"])
        shape = (len(qids), len(llms))
        data_vars = {}
        for col in ("score", "cost", "trials"):
            if col in r:
                arr = np.full(shape, np.nan)
                arr[qi, li] = r[col].to_numpy(float)
                data_vars[col] = (("query", "llm"), arr)
        mask = np.zeros(shape, bool)
        mask[qi, li] = True
        data_vars["observed"] = (("query", "llm"), mask)
        q = self.queries.set_index("query_id").loc[qids]
        # object dtype: fixed-width unicode would pad every text to the longest prompt.
        coords = {"query": qids, "llm": llms, "text": ("query", q["query"].to_numpy(object))}
        for col in ("dataset", "split"):
            if col in q:
                coords[col] = ("query", q[col].to_numpy(object))
        return xr.Dataset(data_vars, coords=coords, attrs={"source": self.source})

    def price_summary(self) -> pd.DataFrame:
        """Per-LLM cost summary in USD per query.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``llm`` with ``mean``, ``median``, ``min``, ``max`` cost per query,
            ``total`` and ``n`` responses, sorted by mean cost. Empty columns when the
            data carry no cost.
        """
        if not self.has_cost:
            return pd.DataFrame(
                index=pd.Index(self.llms, name="llm"),
                columns=["mean", "median", "min", "max", "total", "n"],
            )
        g = self.responses.groupby("llm", sort=False)["cost"]
        out = pd.DataFrame(
            {
                "mean": g.mean(),
                "median": g.median(),
                "min": g.min(),
                "max": g.max(),
                "total": g.sum(),
                "n": g.size(),
            }
        )
        out.index.name = "llm"
        return out.sort_values("mean")

    def prices(self) -> pd.Series:
        """Mean cost per query of each LLM, in the order of :attr:`llms` (NaN without cost)."""
        if not self.has_cost:
            return pd.Series(np.nan, index=pd.Index(self.llms, name="llm"), name="price")
        return (
            self.responses.groupby("llm", sort=False)["cost"]
            .mean()
            .reindex(self.llms)
            .rename("price")
        )

    def require_fittable(self) -> None:
        """Refuse data from which a router cannot identify anything; warn on weak spots.

        Abilities are identified only relative to other LLMs, difficulty only across
        queries, and both only where outcomes vary. So one LLM, one query or a single
        score value is an error; an LLM (or, with many, queries) whose every score is the
        same is a one-line warning saying its ability is bounded only by the prior.

        Raises
        ------
        DataError
            One LLM, one query, or every score the same.
        """
        if self.n_llms < 2:
            raise DataError(
                f"has one LLM ({self.llms[0]!r}): abilities are identified only against "
                "other LLMs, and routing needs two or more",
                source=self.source,
            )
        if self.n_queries < 2:
            raise DataError(
                "has one query: difficulty and abilities cannot be told apart; a fit needs "
                "two or more queries (dozens for a useful router)",
                source=self.source,
            )
        score = self.responses["score"]
        if score.nunique() == 1:
            raise DataError(
                f"every score is {_fmt(score.iloc[0])}: nothing in the data separates LLMs "
                "or queries",
                source=self.source,
            )
        spread = score.groupby(self.responses["llm"], sort=False).agg(["min", "max"])
        flat = spread.index[spread["min"] == spread["max"]]
        if len(flat):
            import warnings

            warnings.warn(
                f"{self.source}: LLM {_few(flat.tolist(), 3)} has the same score on every "
                "query it answered: its ability is bounded only by the prior",
                UserWarning,
                stacklevel=3,
            )

    def summary(self) -> pd.DataFrame:
        """Per-LLM accuracy, response count and mean cost, best first."""
        g = self.responses.groupby("llm", sort=False)
        out = pd.DataFrame({"n_responses": g.size(), "accuracy": g["score"].mean()})
        if self.has_cost:
            out["mean_cost"] = g["cost"].mean()
        out.index.name = "llm"
        return out.sort_values("accuracy", ascending=False)

    # -- selection -----------------------------------------------------------------------
    def select(
        self,
        *,
        queries: Iterable[str] | None = None,
        llms: Iterable[str] | None = None,
        split: str | None = None,
        dataset: str | Sequence[str] | None = None,
    ) -> ResponseData:
        """Keep a subset of rows.

        Parameters
        ----------
        queries, llms : iterable of str, optional
            Query ids / LLM names to keep; unknown names raise :class:`DataError`.
        split : str, optional
            Keep rows whose ``split`` column equals this value.
        dataset : str or sequence of str, optional
            Keep rows of these datasets.

        Returns
        -------
        ResponseData
        """
        r = self.responses
        keep = np.ones(len(r), bool)
        for col, wanted in (("query_id", queries), ("llm", llms)):
            if wanted is not None:
                wanted = list(wanted)
                known = set(r[col])
                unknown = [w for w in wanted if w not in known]
                if unknown:
                    what = "LLM" if col == "llm" else "query_id"
                    raise DataError(f"unknown {what} {unknown[0]!r}", source=self.source)
                keep &= r[col].isin(wanted).to_numpy()
        for col, wanted in (("split", split), ("dataset", dataset)):
            if wanted is not None:
                if col not in r:
                    raise DataError(f"has no {col!r} column to select on", source=self.source)
                wanted = [wanted] if isinstance(wanted, str) else list(wanted)
                keep &= r[col].isin(wanted).to_numpy()
        if not keep.any():
            raise DataError("selection leaves no responses", source=self.source)
        return ResponseData(r[keep].reset_index(drop=True), self.source)

    @classmethod
    def concat(cls, parts: Sequence[ResponseData]) -> ResponseData:
        """Combine several data sets; conflicting duplicates across them raise DataError."""
        if not parts:
            raise DataError("no data to combine")
        if len(parts) == 1:
            return parts[0]
        frames = []
        for p in parts:
            f = p.responses.copy()
            f["_source"] = p.source
            frames.append(f)
        allrows = pd.concat(frames, ignore_index=True)
        sources = " + ".join(p.source for p in parts)
        qid = _first_conflict(allrows, "query_id", ["query"])
        if qid is not None:
            files = allrows.loc[allrows["query_id"] == qid, "_source"].unique()
            raise DataError(
                f"query_id {qid!r} has a different text in {' and '.join(files)}",
                source=sources,
            )
        value_cols = [c for c in ("score", "cost", "trials") if c in allrows]
        conflict = _first_conflict(allrows, ["query_id", "llm"], value_cols)
        if conflict is not None:
            qid, llm = conflict
            files = allrows.loc[(allrows.query_id == qid) & (allrows.llm == llm), "_source"]
            raise DataError(
                f"conflicting duplicate rows for (query_id={qid!r}, "
                f"llm={llm!r}) in {' and '.join(files.unique())}",
                source=sources,
            )
        allrows = allrows.drop_duplicates(["query_id", "llm"]).drop(columns="_source")
        return cls(allrows.reset_index(drop=True), sources)


def load_responses(*paths: PathLike, allow_pickle: bool = False) -> ResponseData:
    """Load one or more response files in the tidy or RouterBench format.

    Query ids are text, compared exactly as written (``7`` and ``007`` are two
    queries); see :func:`read_table` for what is read and what is refused.

    Parameters
    ----------
    *paths : str or os.PathLike
        CSV/TSV/Parquet files (compression allowed), or pickles with ``allow_pickle``.
        The format of each is detected from its suffix and columns.
    allow_pickle : bool, default False
        Read pickle files (unpickling runs code from the file: trusted files only).

    Returns
    -------
    ResponseData

    Raises
    ------
    DataError
        One line naming the file, column and offending value or row.

    Examples
    --------
    >>> from irt_bayes.data import load_responses
    >>> data = load_responses("../shared/data/routerbench/mbpp_train.csv.gz")  # doctest: +SKIP
    >>> data.n_queries, data.n_llms  # doctest: +SKIP
    (299, 11)
    """
    if not paths:
        raise DataError("no data files given")
    return ResponseData.concat(
        [
            ResponseData.from_frame(read_table(p, allow_pickle=allow_pickle), source=str(p))
            for p in paths
        ]
    )


def load_queries(*paths: PathLike, allow_pickle: bool = False) -> pd.DataFrame:
    """Load queries to predict or route: ``query_id``, ``query`` and optional ``dataset``.

    Accepts a tidy file with ``query_id`` and ``query`` columns, or any file that
    :func:`load_responses` reads (scores are ignored; RouterBench's ``sample_id`` is
    the query id). Ids are text, compared exactly as written. In a file of queries
    (no ``llm`` column) every id must be unique, within and across files: a repeated id
    is refused with the ids named, never merged. Response files repeat an id once per
    LLM, so there the repeats of one text are one query.

    Parameters
    ----------
    *paths : str or os.PathLike
        Files to read.
    allow_pickle : bool, default False
        Read pickle files (unpickling runs code from the file: trusted files only).

    Returns
    -------
    pandas.DataFrame
        One row per distinct query id, in file order.
    """
    if not paths:
        raise DataError("no query files given")
    frames = []
    seen: dict[str, str] = {}  # id -> file, for ids of query files
    for p in paths:
        df = read_table(p, allow_pickle=allow_pickle)
        src = str(p)
        per_llm = "llm" in df.columns or _is_wide(df)
        if _is_wide(df):
            df = (
                _wide_to_tidy(df, src)
                if any(c not in _WIDE_META and "|" not in str(c) for c in df.columns)
                else pd.DataFrame(
                    {
                        "query_id": df["sample_id"].astype(str),
                        "query": [
                            _join_prompt(x, i, src) for i, x in enumerate(df["prompt"].tolist())
                        ],
                    }
                )
            )
        missing = [c for c in ("query_id", "query") if c not in df.columns]
        if missing:
            raise DataError(
                f"missing required column {missing[0]!r} (have: {', '.join(map(str, df.columns))})",
                source=src,
            )
        if len(df) == 0:
            raise DataError("has no rows", source=src)
        cols = [c for c in ("query_id", "query", "dataset", "split") if c in df.columns]
        q = df[cols].copy()
        if q["query_id"].isna().any():
            pos = int(np.flatnonzero(q["query_id"].isna().to_numpy())[0])
            raise DataError(f"column 'query_id' is empty at row {pos + 1}", source=src)
        q["query_id"] = _text_ids(q["query_id"], "query_id", src)
        if not per_llm:
            dup = pd.unique(q["query_id"][q["query_id"].duplicated()])
            if len(dup):
                raise DataError(
                    f"query_id repeated: {_few(dup)}; every query needs its own id",
                    source=src,
                )
            again = [i for i in q["query_id"] if i in seen]
            if again:
                raise DataError(
                    f"query_id also in {seen[again[0]]}: {_few(again)}; every query needs "
                    "its own id",
                    source=src,
                )
            seen.update(dict.fromkeys(q["query_id"], src))
        bad = ~q["query"].map(has_text)
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"column 'query' has empty query text at row {pos + 1} "
                f"(query_id={q['query_id'].iloc[pos]!r})",
                source=src,
            )
        qid = _first_conflict(q, "query_id", ["query"])
        if qid is not None:
            raise DataError(f"query_id {qid!r} has more than one distinct 'query' text", source=src)
        frames.append(q.drop_duplicates("query_id"))
    out = pd.concat(frames, ignore_index=True)
    qid = _first_conflict(out, "query_id", ["query"])
    if qid is not None:
        raise DataError(
            f"query_id {qid!r} has a different text in two files",
            source=" + ".join(map(str, paths)),
        )
    return out.drop_duplicates("query_id").reset_index(drop=True)
