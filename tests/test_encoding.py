from __future__ import annotations

import doctest
import hashlib
import os
import re
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# Never let a test reach a model hub, even if it runs before the encoder sets this.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from irt_bayes import encoding
from irt_bayes.encoding import (
    CACHE_ENV_VAR,
    DEFAULT_DIM,
    EmbeddingCacheWarning,
    QueryEncoder,
    as_embeddings,
    default_cache_dir,
)
from irt_bayes.errors import DataError, IrtBayesError

MATHS = [
    "What is the derivative of x squared with respect to x?",
    "Solve for x: 3x + 7 = 22.",
]
COOKING = "How long should I boil an egg for a soft, runny yolk?"
TEXTS = [*MATHS, COOKING, "Write a Python function that reverses a linked list."]


@pytest.fixture(scope="session")
def st_model():
    """The real default model, loaded once for the whole session."""
    enc = QueryEncoder(cache_dir=False)
    return enc._get_model()


@pytest.fixture
def make_encoder(st_model, tmp_path):
    """Encoders on a per-test cache dir that reuse the session's loaded model."""

    def make(cache_dir: object = tmp_path / "cache", **kwargs) -> QueryEncoder:
        enc = QueryEncoder(cache_dir=cache_dir, **kwargs)
        enc._model = st_model
        return enc

    return make


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


# ---------------------------------------------------------------------- properties
def test_default_encoder_knows_id_and_dim_without_loading(tmp_path):
    enc = QueryEncoder(cache_dir=tmp_path)
    assert enc.encoder_id == "all-MiniLM-L6-v2:tail"
    assert enc.dim == DEFAULT_DIM == 384
    assert enc.cache_path == tmp_path / "all-MiniLM-L6-v2_tail-bb9cd743.sqlite"
    head = QueryEncoder(cache_dir=tmp_path, truncation="head")
    assert head.encoder_id == "all-MiniLM-L6-v2"
    assert head.cache_path == tmp_path / "all-MiniLM-L6-v2.sqlite"
    assert enc._model is None
    text = repr(enc)
    assert "'default'" in text and str(enc.cache_path) in text


def test_encode_shape_dtype_and_unit_norm(make_encoder):
    x = make_encoder().encode(TEXTS)
    assert x.shape == (len(TEXTS), 384)
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-6)
    # Distinct texts must not collapse onto one vector.
    assert len({row.tobytes() for row in x}) == len(TEXTS)


def test_empty_input_returns_empty_matrix_without_loading(tmp_path):
    enc = QueryEncoder(cache_dir=tmp_path)
    x = enc.encode([])
    assert x.shape == (0, 384) and x.dtype == np.float32
    assert enc._model is None


def test_two_encoders_give_bitwise_identical_vectors(st_model):
    first = QueryEncoder(cache_dir=False)
    first._model = st_model
    second = QueryEncoder(cache_dir=False)  # loads its own copy of the weights
    a = first.encode(TEXTS)
    b = second.encode(TEXTS)
    assert second._model is not st_model
    assert a.tobytes() == b.tobytes()


def test_vector_does_not_depend_on_batch_neighbours(make_encoder):
    # A short text batched with a long one is padded further than when it is alone.
    long_text = "Describe the water cycle in detail. " * 30
    enc = make_encoder(cache_dir=False, batch_size=8)
    together = enc.encode([MATHS[0], long_text, MATHS[1]])
    alone = np.stack([enc.encode([t])[0] for t in (MATHS[0], long_text, MATHS[1])])
    # float32 kernels may round the last bits differently for another batch shape (seen:
    # 1.35e-07 on one machine of this kind); anything beyond 1e-6 is a real dependence
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    # the same batch twice is exact
    assert enc.encode([MATHS[0], long_text, MATHS[1]]).tobytes() == together.tobytes()


def test_semantic_signal(make_encoder):
    x = make_encoder().encode([*MATHS, COOKING])
    maths_maths = float(x[0] @ x[1])
    maths_cooking = float(x[0] @ x[2])
    assert maths_maths > maths_cooking + 0.05


# ---------------------------------------------------------------------- cache
def test_cache_hit_is_identical_and_never_loads_the_model(make_encoder, tmp_path):
    cache_dir = tmp_path / "cache"
    first = make_encoder(cache_dir)
    x = first.encode(TEXTS)
    assert first.cache_path is not None and first.cache_path.is_file()

    fresh = QueryEncoder(cache_dir=cache_dir)
    order = [3, 0, 2, 0]
    y = fresh.encode([TEXTS[i] for i in order])
    assert fresh._model is None
    assert y.tobytes() == x[order].tobytes()


def test_partial_cache_hit_encodes_only_new_texts(make_encoder, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    x = make_encoder(cache_dir).encode(TEXTS[:2])
    seen: list[str] = []
    original = encoding._encode_batches

    def spy(model, texts, *args):
        seen.extend(texts)
        yield from original(model, texts, *args)

    monkeypatch.setattr(encoding, "_encode_batches", spy)
    y = make_encoder(cache_dir).encode(TEXTS)
    assert seen == TEXTS[2:]
    assert y[:2].tobytes() == x.tobytes()


def test_duplicates_in_one_call_are_encoded_once(make_encoder, monkeypatch):
    seen: list[str] = []
    original = encoding._encode_batches

    def spy(model, texts, *args):
        seen.extend(texts)
        yield from original(model, texts, *args)

    monkeypatch.setattr(encoding, "_encode_batches", spy)
    enc = make_encoder()
    batch = [MATHS[0], COOKING, MATHS[0], MATHS[0], COOKING]
    x = enc.encode(batch)
    assert sorted(seen) == sorted({MATHS[0], COOKING})
    assert x[0].tobytes() == x[2].tobytes() == x[3].tobytes()
    assert x[1].tobytes() == x[4].tobytes()
    with sqlite3.connect(enc.cache_path) as conn:
        rows = conn.execute("SELECT hash FROM embeddings").fetchall()
    expected = {hashlib.sha256(t.encode("utf-8")).hexdigest() for t in (MATHS[0], COOKING)}
    assert {r[0] for r in rows} == expected


def test_corrupt_cache_is_moved_aside_and_rebuilt(make_encoder, tmp_path):
    cache_dir = tmp_path / "cache"
    x = make_encoder(cache_dir).encode(TEXTS)
    path = cache_dir / "all-MiniLM-L6-v2_tail-bb9cd743.sqlite"
    garbage = os.urandom(1 << 14)
    path.write_bytes(garbage)

    with pytest.warns(EmbeddingCacheWarning, match="moved it to"):
        y = make_encoder(cache_dir).encode(TEXTS)
    assert y.tobytes() == x.tobytes()
    assert (cache_dir / "all-MiniLM-L6-v2_tail-bb9cd743.sqlite.corrupt").read_bytes() == garbage

    # The rebuilt cache serves hits again.
    fresh = QueryEncoder(cache_dir=cache_dir)
    assert fresh.encode(TEXTS).tobytes() == x.tobytes()
    assert fresh._model is None


def test_interrupted_encode_keeps_committed_batches(make_encoder, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    original = encoding._encode_batches

    def interrupted(model, texts, *args):
        gen = original(model, texts, *args)
        yield next(gen)
        raise KeyboardInterrupt

    monkeypatch.setattr(encoding, "_encode_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_encoder(cache_dir, batch_size=2).encode(TEXTS)
    monkeypatch.setattr(encoding, "_encode_batches", original)

    with sqlite3.connect(cache_dir / "all-MiniLM-L6-v2_tail-bb9cd743.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (count,) = conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
    assert count == 2


def test_wrong_length_cache_row_is_re_encoded(make_encoder, tmp_path):
    cache_dir = tmp_path / "cache"
    enc = make_encoder(cache_dir)
    x = enc.encode(TEXTS[:1])
    key = hashlib.sha256(TEXTS[0].encode("utf-8")).hexdigest()
    with sqlite3.connect(enc.cache_path) as conn:
        conn.execute("UPDATE embeddings SET vec = ? WHERE hash = ?", (b"\0" * 12, key))
    y = make_encoder(cache_dir).encode(TEXTS[:1])
    assert y.tobytes() == x.tobytes()


def test_two_thousand_cached_texts_come_back_fast(tmp_path):
    cache_dir = tmp_path / "cache"
    texts = [f"synthetic query number {i}: what is {i} plus {i}?" for i in range(2000)]
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((2000, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store = encoding._SqliteCache(
        cache_dir / "all-MiniLM-L6-v2_tail-bb9cd743.sqlite", "all-MiniLM-L6-v2:tail"
    )
    assert store.open()
    store.put_many(
        {hashlib.sha256(t.encode()).hexdigest(): v for t, v in zip(texts, vecs, strict=True)}
    )
    store.close()

    enc = QueryEncoder(cache_dir=cache_dir)
    start = time.perf_counter()
    out = enc.encode(texts)
    elapsed = time.perf_counter() - start
    assert enc._model is None
    assert out.tobytes() == vecs.tobytes()
    assert elapsed < 1.0, f"2,000 cached lookups took {elapsed:.2f}s"


def test_disabled_cache_writes_nothing(make_encoder, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    enc = make_encoder(cache_dir=False)
    assert enc.cache_path is None
    assert "disabled" in repr(enc)
    enc.encode(TEXTS[:2])
    assert _files_under(tmp_path) == []


def test_default_cache_dir_follows_env_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert (
        QueryEncoder().cache_path
        == tmp_path / "env-cache" / "all-MiniLM-L6-v2_tail-bb9cd743.sqlite"
    )
    monkeypatch.delenv(CACHE_ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "irt-bayes" / "embeddings"


# ---------------------------------------------------------------------- ids and loading
def test_encoder_id_for_local_paths_and_hub_names(tmp_path):
    a = tmp_path / "a" / "my-model"
    b = tmp_path / "b" / "my-model"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    id_a = QueryEncoder(str(a), cache_dir=tmp_path).encoder_id
    assert re.fullmatch(r"my-model-[0-9a-f]{8}:tail", id_a)
    assert QueryEncoder(a, cache_dir=tmp_path).encoder_id == id_a
    assert QueryEncoder(str(b), cache_dir=tmp_path).encoder_id != id_a

    hub = QueryEncoder("some-org/some-model", cache_dir=tmp_path)
    assert hub.encoder_id == "some-org/some-model:tail"
    assert hub.cache_path.parent == tmp_path
    assert hub.cache_path.name.startswith("some-org_some-model_tail-")


@pytest.mark.parametrize("kind", ["empty-dir", "hub-name"])
def test_unloadable_model_raises_one_line_naming_it(tmp_path, kind):
    if kind == "empty-dir":
        name = str(tmp_path / "not-a-model")
        Path(name).mkdir()
    else:
        name = "no-such-org/irt-bayes-no-such-model"
    enc = QueryEncoder(name, cache_dir=tmp_path)
    with pytest.raises(IrtBayesError) as info:
        enc.encode(["a question"])
    message = str(info.value)
    assert name in message
    assert "\n" not in message


# ---------------------------------------------------------------------- bad text
@pytest.mark.parametrize("bad", ["", "   \n\t ", None, 3.5, b"bytes", float("nan")])
def test_bad_text_raises_data_error_naming_index(tmp_path, bad):
    enc = QueryEncoder(cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"texts\[2\]") as info:
        enc.encode(["fine", "also fine", bad, "fine again"])
    assert "\n" not in str(info.value)
    assert enc._model is None
    assert _files_under(tmp_path) == []


def test_single_string_is_rejected(tmp_path):
    with pytest.raises(DataError, match="single string"):
        QueryEncoder(cache_dir=tmp_path).encode("not a list")


# ---------------------------------------------------------------------- progress bar
@pytest.mark.parametrize(
    ("show", "n_texts", "expect_bar"),
    [(None, 3, True), (None, 2, False), (False, 3, False), (True, 1, True)],
)
def test_progress_bar_on_stderr(make_encoder, monkeypatch, capsys, show, n_texts, expect_bar):
    monkeypatch.setattr(encoding, "_PROGRESS_THRESHOLD", 2)
    make_encoder(show_progress=show).encode(TEXTS[:n_texts])
    captured = capsys.readouterr()
    # not a terminal under pytest: the bar is plain log lines
    assert ("embedding with all-MiniLM-L6-v2:tail: " in captured.err) is expect_bar
    assert captured.out == ""


def test_class_docstring_example_runs(st_model, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(encoding):
        if test.examples:
            runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 6


# ---------------------------------------------------------------------- as_embeddings
def test_as_embeddings_returns_float32_copy():
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    out = as_embeddings(x, n=3, dim=2)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)
    y = np.ones((2, 2), dtype=np.float32)
    assert not np.shares_memory(as_embeddings(y), y)


@pytest.mark.parametrize(
    ("value", "kwargs", "pattern"),
    [
        (np.ones(4), {}, r"2-D .* shape \(4,\)"),
        (np.ones((2, 3, 4)), {}, r"2-D .* shape \(2, 3, 4\)"),
        (np.ones((3, 4)), {"n": 2}, r"3 rows, expected 2"),
        (np.ones((3, 4)), {"dim": 384}, r"4 columns, expected dim=384"),
        (np.ones((3, 0)), {}, r"zero columns"),
        (np.array([["a", "b"]]), {}, r"real numbers"),
        (np.ones((2, 2), dtype=bool), {}, r"real numbers"),
        ([[1.0, 2.0], [3.0]], {}, r"rectangular"),
        (np.array([[0.0, 1.0], [1.0, np.inf]]), {}, r"row 1, column 1 .*inf"),
        (np.array([[0.0, 1e39]]), {}, r"row 0, column 1 .*overflows float32"),
    ],
)
def test_as_embeddings_rejects(value, kwargs, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        as_embeddings(value, **kwargs)
    assert "\n" not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    ),
    st.data(),
)
def test_as_embeddings_property(x, data):
    out = as_embeddings(x, n=x.shape[0], dim=x.shape[1])
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))

    row = data.draw(st.integers(0, x.shape[0] - 1))
    col = data.draw(st.integers(0, x.shape[1] - 1))
    bad = x.copy()
    bad[row, col] = np.nan
    with pytest.raises(DataError, match=rf"row {row}, column {col} is not finite"):
        as_embeddings(bad)


def test_tail_truncation_keeps_the_question_of_a_long_prompt():
    # A long fixed few-shot prefix followed by different questions, as in RouterBench.
    prefix = " ".join(f"Example {i}: the sky is blue and grass is green." for i in range(80))
    texts = [prefix + " Question: how do I bake bread?", prefix + " Question: what is 7 * 8?"]
    tail = QueryEncoder(cache_dir=False, truncation="tail")
    head = QueryEncoder(cache_dir=False, truncation="head")
    t, h = tail.encode(texts), head.encode(texts)
    assert float(t[0] @ t[1]) < 0.95
    assert float(h[0] @ h[1]) > 0.999


def test_bad_truncation_is_rejected():
    with pytest.raises(ValueError, match="truncation"):
        QueryEncoder(cache_dir=False, truncation="middle")
