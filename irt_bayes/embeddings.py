"""Precomputed query embeddings from a file, looked up by ``query_id``.

A router can be fitted on embeddings made elsewhere (another encoder, an embedding
service) instead of encoding the query texts. The file is either

* ``.npz`` with arrays ``query_id`` (text, numpy unicode: no pickled objects are read)
  and ``embedding`` (n x d), or
* Parquet with a ``query_id`` column and an ``embedding`` column of equal-length lists.

The router records the kind of embedding as its encoder id, ``precomputed:<label>``
(the label given, else the first 12 hex digits of the file's SHA-256), and refuses to
predict with embeddings of another kind: give one file for all queries, or the same
label to every file made by the same encoder.

Examples
--------
>>> import numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "e.npz")
>>> np.savez(path, query_id=np.array(["a", "b"]), embedding=np.eye(2, 3))
>>> table = EmbeddingTable.load(path, label="toy")
>>> table.encoder_id, table.lookup(["b"]).shape
('precomputed:toy', (1, 3))
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from irt_bayes.encoding import as_embeddings
from irt_bayes.errors import DataError

__all__ = ["PRECOMPUTED", "EmbeddingTable", "is_precomputed"]

PRECOMPUTED = "precomputed"
_SHOWN = 3  # missing ids named in an error


def is_precomputed(encoder_id: str) -> bool:
    """Whether an encoder id names precomputed embeddings (``precomputed[:label]``)."""
    return encoder_id == PRECOMPUTED or encoder_id.startswith(PRECOMPUTED + ":")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class EmbeddingTable:
    """Embeddings by query id.

    Attributes
    ----------
    ids : pandas.Index
        Query ids (text), unique.
    vectors : numpy.ndarray
        (n, d) float32, row ``i`` the embedding of ``ids[i]``.
    label : str
        Kind of embedding (user label or file hash).
    source : str
        The file, for messages.
    """

    ids: pd.Index
    vectors: np.ndarray
    label: str
    source: str

    @property
    def encoder_id(self) -> str:
        """``precomputed:<label>``, recorded by a router fitted on these embeddings."""
        return f"{PRECOMPUTED}:{self.label}"

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.vectors.shape[1])

    @classmethod
    def load(cls, path: str | os.PathLike, label: str | None = None) -> EmbeddingTable:
        """Read an ``.npz`` or Parquet embedding file (see the module docstring).

        Raises
        ------
        DataError
            Unreadable file, missing or ill-typed ``query_id``/``embedding``, duplicate
            or empty ids, rows of unequal length, or a NaN or infinite value.
        """
        path = Path(path)
        src = str(path)
        if not path.is_file():
            raise DataError("no such embedding file", source=src)
        if label is not None and (not label.strip() or any(c in label for c in "\n\r")):
            raise DataError(f"embedding label {label!r} must be a non-empty line", source=src)
        suffix = "".join(path.suffixes[-1:]).lower()
        if suffix == ".npz":
            ids, raw = _read_npz(path)
        elif suffix in (".parquet", ".pq"):
            ids, raw = _read_parquet(path)
        else:
            raise DataError("embedding files are .npz or .parquet", source=src)
        ids = pd.Index(ids, dtype=object).astype(str)
        if len(ids) == 0:
            raise DataError("holds no embeddings", source=src)
        empty = ids.str.strip() == ""
        if empty.any():
            raise DataError(
                f"'query_id' is empty at row {int(np.flatnonzero(empty)[0]) + 1}", source=src
            )
        dup = ids[ids.duplicated()]
        if len(dup):
            raise DataError(f"'query_id' {dup[0]!r} appears more than once", source=src)
        try:
            vectors = as_embeddings(raw, n=len(ids))
        except DataError as exc:
            raise DataError(f"'embedding': {exc}", source=src) from None
        return cls(ids, vectors, label if label is not None else _digest(path), src)

    def lookup(self, query_ids: Sequence[str], what: str = "queries") -> np.ndarray:
        """(n, d) embeddings of ``query_ids``, in their order.

        Raises
        ------
        DataError
            Some ids have no embedding: one line naming the first few.
        """
        pos = self.ids.get_indexer(pd.Index(list(query_ids), dtype=object).astype(str))
        missing = np.flatnonzero(pos < 0)
        if missing.size:
            first = ", ".join(repr(str(query_ids[i])) for i in missing[:_SHOWN])
            more = f" and {missing.size - _SHOWN} more" if missing.size > _SHOWN else ""
            raise DataError(
                f"no embedding for {missing.size} of the {len(pos)} {what}: {first}{more}",
                source=self.source,
            )
        return self.vectors[pos]


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    src = str(path)
    if not zipfile.is_zipfile(path):  # np.load would take other bytes for a pickle
        raise DataError("corrupt or unreadable .npz (not a zip archive)", source=src)
    try:
        # allow_pickle stays False: an object array in the file is refused, never unpickled
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("query_id", "embedding") if k not in npz.files]
            if missing:
                raise DataError(
                    f"missing array {missing[0]!r} (has: {', '.join(npz.files) or 'none'})",
                    source=src,
                )
            ids, emb = npz["query_id"], npz["embedding"]
    except DataError:
        raise
    except ValueError:  # an object array needs pickle
        raise DataError(
            "holds pickled objects, which irt-bayes never unpickles; store 'query_id' as "
            "text (numpy 'U') and 'embedding' as numbers",
            source=src,
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"corrupt or unreadable .npz ({exc})", source=src) from None
    if ids.ndim != 1 or ids.dtype.kind not in "UiO":
        raise DataError(f"'query_id' must be a 1-D text array, got dtype {ids.dtype}", source=src)
    return ids, emb


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    src = str(path)
    try:
        df = pd.read_parquet(path, columns=None)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"corrupt or unreadable Parquet ({first})", source=src) from None
    missing = [c for c in ("query_id", "embedding") if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column {missing[0]!r} (have: {', '.join(map(str, df.columns))})",
            source=src,
        )
    lengths = df["embedding"].map(lambda v: len(v) if hasattr(v, "__len__") else -1)
    if len(df) and (lengths < 1).any():
        row = int(np.flatnonzero((lengths < 1).to_numpy())[0])
        raise DataError(f"'embedding' is not a list of numbers at row {row + 1}", source=src)
    if len(df) and lengths.nunique() > 1:
        row = int(np.flatnonzero((lengths != lengths.iloc[0]).to_numpy())[0])
        raise DataError(
            f"'embedding' has {lengths.iloc[row]} numbers at row {row + 1}, "
            f"{lengths.iloc[0]} at row 1",
            source=src,
        )
    try:
        emb = np.stack([np.asarray(v, dtype=float) for v in df["embedding"]]) if len(df) else None
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"'embedding' holds a value that is not a number ({exc})", source=src
        ) from None
    return df["query_id"].to_numpy(), emb if emb is not None else np.zeros((0, 1))
