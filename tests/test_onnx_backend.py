"""QueryEncoder(backend="onnx"): ONNX Runtime in place of torch, checked against it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import irt_bayes.onnx_backend as onnx_backend
from irt_bayes.encoding import QueryEncoder
from irt_bayes.errors import IrtBayesError
from irt_bayes.onnx_backend import TOLERANCE, OnnxFallbackWarning

TEXTS = [
    "What is 2 + 2?",
    "Name the capital of France.",
    "Explain, step by step, how a hash map resolves collisions and what that costs.",
    "few-shot exemplar. " * 200 + "And the actual question comes last?",  # tail-truncated
    "Ünïcödé and emoji 🚀 survive tokenising",
]


@pytest.fixture(scope="module")
def torch_vectors(tmp_path_factory) -> np.ndarray:
    enc = QueryEncoder(cache_dir=tmp_path_factory.mktemp("t"), show_progress=False)
    return enc.encode(TEXTS)


def _encode_without_fallback(backend: str, cache) -> tuple[QueryEncoder, np.ndarray]:
    """An encoder on ``backend`` and its vectors of TEXTS; falling back to torch fails."""
    enc = QueryEncoder(cache_dir=cache, show_progress=False, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OnnxFallbackWarning)
        got = enc.encode(TEXTS)
    assert enc.backend == backend
    return enc, got


def test_onnx_agrees_with_torch_and_reuses_its_export(torch_vectors, tmp_path):
    enc, got = _encode_without_fallback("onnx", tmp_path)
    np.testing.assert_allclose(got, torch_vectors, atol=TOLERANCE, rtol=0)
    # one text alone gives what it gives in a batch (widths depend on the text only)
    np.testing.assert_allclose(enc.encode(TEXTS[2:3])[0], got[2], atol=1e-6, rtol=0)
    files = list((tmp_path / "onnx").glob("transformer-*.onnx"))
    assert len(files) == 1 and not list((tmp_path / "onnx").glob(".export-*"))
    stamp = files[0].stat().st_mtime_ns
    again = QueryEncoder(cache_dir=tmp_path, show_progress=False, backend="onnx")
    again.encode(["Another text, to load the model."])
    assert again.backend == "onnx" and files[0].stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "backend, threshold, value, match",
    [
        ("onnx", "TOLERANCE", 0.0, "differ from torch's"),
        ("onnx-int8", "INT8_MIN_COSINE", 1.0, "int8 embeddings have cosine"),
    ],
)
def test_disagreement_keeps_torch(
    torch_vectors, tmp_path, monkeypatch, backend, threshold, value, match
):
    monkeypatch.setattr(onnx_backend, threshold, value)  # a check no session can pass
    enc = QueryEncoder(cache_dir=False, show_progress=False, backend=backend)
    enc._onnx_dir = tmp_path / "onnx"
    with pytest.warns(OnnxFallbackWarning, match=match):
        got = enc.encode(TEXTS)
    assert enc.backend == "torch"
    np.testing.assert_array_equal(got, torch_vectors)


def test_a_failing_runtime_keeps_torch(torch_vectors, tmp_path, monkeypatch):
    import onnxruntime

    def broken(*args, **kwargs):
        raise RuntimeError("no session today")

    monkeypatch.setattr(onnxruntime, "InferenceSession", broken)
    enc = QueryEncoder(cache_dir=tmp_path, show_progress=False, backend="onnx")
    with pytest.warns(OnnxFallbackWarning, match="no session today"):
        got = enc.encode(TEXTS)
    assert enc.backend == "torch"
    np.testing.assert_array_equal(got, torch_vectors)


def test_backend_is_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        QueryEncoder(backend="tensorflow")
    enc = QueryEncoder(cache_dir=False, show_progress=False)
    enc.backend = "onnx"  # before the first encode: allowed
    enc.backend = "torch"
    enc.encode(["load it"])
    with pytest.raises(IrtBayesError, match="before its first encode"):
        enc.backend = "onnx"


def test_int8_is_close_to_torch_or_refused_and_stays_out_of_the_cache(torch_vectors, tmp_path):
    enc = QueryEncoder(cache_dir=tmp_path, show_progress=False, backend="onnx-int8")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", OnnxFallbackWarning)
        got = enc.encode(TEXTS)
    refused = [str(w.message) for w in seen if issubclass(w.category, OnnxFallbackWarning)]
    if enc.backend == "torch":
        # int8 kernels differ by CPU: on an AVX2-only EPYC (no VNNI) the probe "Hi" had
        # cosine 0.975, so the check refused int8 there and the exact vectors were used
        assert len(refused) == 1 and "int8 embeddings have cosine" in refused[0]
        np.testing.assert_allclose(got, torch_vectors, atol=1e-6, rtol=0)
    else:
        assert enc.backend == "onnx-int8" and not refused
        cosine = (got.astype(np.float64) * torch_vectors).sum(axis=1)
        assert cosine.min() >= onnx_backend.INT8_MIN_COSINE and cosine.max() < 1 - 1e-6
    names = sorted(p.name for p in (tmp_path / "onnx").glob("transformer-*.onnx"))
    assert len(names) == 2 and names[0].endswith("-int8.onnx")  # fp32 export, then int8
    # approximate vectors never reach the cache that exact encoders read
    exact = QueryEncoder(cache_dir=tmp_path, show_progress=False, backend="onnx")
    np.testing.assert_allclose(exact.encode(TEXTS), torch_vectors, atol=TOLERANCE, rtol=0)
