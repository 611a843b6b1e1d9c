"""ONNX Runtime for the encoder's transformer: the same embeddings, about twice as fast.

:func:`use_onnx` exports the sentence-transformers model's transformer (its attention
written out: ``attn_implementation="eager"``) to ONNX once, keeps the file in the
encoder's cache folder, and puts an ONNX Runtime session in its place. Tokenising,
pooling and normalising stay sentence-transformers' own, so only the forward pass
changes. Before the swap is kept, a fixed set of probe texts (short to truncated) is
embedded both ways; if any coordinate differs by more than :data:`TOLERANCE`, the torch
model stays and a warning says why. With the bundled MiniLM the two agree to 1e-7 and
ONNX Runtime is 2-2.5 times faster on 2 cores (``benchmarks/serve.py``).

``quantized=True`` (``QueryEncoder(backend="onnx-int8")``, ``irt-bayes serve
--encoder-backend onnx-int8``) runs a copy whose matrix weights are int8, one scale per
output channel (ONNX Runtime's dynamic quantisation; activations are quantised on the
fly). It is another 2-2.5 times faster, but its vectors are approximate: it is kept if
every probe's cosine with torch's vector is at least :data:`INT8_MIN_COSINE`. On the
RouterBench test prompts the cosine was 0.988 at worst (0.994 on average), mean
P(correct) moved by 0.007 on average (0.13 at most) and the routing AUC fell from
0.8840 to 0.8835 (``benchmarks/serve.py``); routers are fitted on exact vectors, so this
is a speed-for-accuracy trade a service chooses, never a default. ONNX Runtime's int8
kernels differ by CPU: on an AMD EPYC with AVX2 but no VNNI the probe "Hi" had cosine
0.975, so there the check refuses int8 and the exact vectors are used (the server's
``/v1/stats`` says which encoder runs).

The ONNX files are written by irt-bayes into its own cache folder (a temporary file,
then one rename) and read only from there; loading one runs no Python code.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["use_onnx", "TOLERANCE", "INT8_MIN_COSINE", "OnnxFallbackWarning"]

TOLERANCE = 1e-5
"""Largest difference of an embedding coordinate, ONNX against torch, that is accepted."""
INT8_MIN_COSINE = 0.98
"""Smallest cosine of an int8 probe vector with torch's that is accepted (measured: 0.988)."""
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROBES = (
    "Hi",
    "What is 17 * 23?",
    "Write a Python function that returns the n-th Fibonacci number using memoisation.",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 60),  # truncated
)


class OnnxFallbackWarning(UserWarning):
    """ONNX Runtime could not stand in for torch; the encoder keeps torch."""


def _module():
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    class OnnxTransformer(torch.nn.Module):
        """The transformer's forward pass on an ONNX Runtime session."""

        def __init__(self, session: Any, names: list[str], config: Any) -> None:
            super().__init__()
            self.session, self.names = session, names
            self.config = config  # sentence-transformers reads the model's config
            self.register_buffer("_device", torch.zeros(0), persistent=False)

        def forward(self, input_ids, attention_mask, token_type_ids=None, **_: Any):
            feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in self.names:
                if token_type_ids is None:
                    token_type_ids = torch.zeros_like(input_ids)
                feeds["token_type_ids"] = token_type_ids
            arrays = {k: v.cpu().numpy().astype(np.int64) for k, v in feeds.items()}
            (hidden,) = self.session.run(["last_hidden_state"], arrays)
            return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    return OnnxTransformer


@contextlib.contextmanager
def _written(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` to write, renamed onto it only if all went well."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".export-", suffix=".onnx")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _quantize(src: Path, path: Path) -> None:
    """Write ``src`` with int8 matrix weights (one scale per output channel) to ``path``."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the quantiser logs advice on pre-processing at WARNING on the root logger
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with _written(path) as tmp:
            quantize_dynamic(src, tmp, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def _export(hf_model: Any, tokenizer: Any, path: Path) -> list[str]:
    """Write ``hf_model``'s forward pass to ``path``; returns its input names."""
    import torch

    names = [n for n in _INPUTS if n in tokenizer.model_input_names]
    example = tokenizer(list(_PROBES[:2]), return_tensors="pt", padding=True)
    args = tuple(example[n] for n in names)

    class Forward(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, *xs: Any) -> Any:
            return self.m(**dict(zip(names, xs, strict=True))).last_hidden_state

    # a copy: tracing leaves the module it traced computing other numbers
    hf_model = copy.deepcopy(hf_model)
    hf_model.set_attn_implementation("eager")  # SDPA's traced masks do not generalise
    with _written(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Forward(hf_model),
            args,
            tmp,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    return names


def use_onnx(
    model: Any,
    folder: Path | None,
    key: str,
    threads: int | None = None,
    *,
    quantized: bool = False,
) -> bool:
    """Put an ONNX Runtime session in place of ``model``'s transformer if it agrees.

    Parameters
    ----------
    model : SentenceTransformer
        A loaded model whose first module is a ``Transformer``.
    folder : Path or None
        Where the exported file is kept (a temporary folder when None).
    key : str
        The encoder's id: the file's name is derived from it and the library versions.
    threads : int, optional
        ONNX Runtime's intra-op threads (default: torch's setting).
    quantized : bool, default False
        Run the int8 copy, accepted at :data:`INT8_MIN_COSINE` instead of
        :data:`TOLERANCE`.

    Returns
    -------
    bool
        Whether the session is in place (False, with an :class:`OnnxFallbackWarning`,
        when ONNX Runtime is missing, the export fails or the embeddings disagree).
    """
    try:
        import onnxruntime as ort
        import torch
    except ImportError as err:
        warnings.warn(f"ONNX Runtime is not installed ({err}); encoding with torch",
                      OnnxFallbackWarning, stacklevel=2)  # fmt: skip
        return False
    first = model[0]
    hf_model, tokenizer = getattr(first, "model", None), getattr(model, "tokenizer", None)
    if hf_model is None or tokenizer is None or not hasattr(hf_model, "set_attn_implementation"):
        warnings.warn("this model's transformer cannot be exported; encoding with torch",
                      OnnxFallbackWarning, stacklevel=2)  # fmt: skip
        return False
    versions = f"{key}|torch {torch.__version__}|onnxruntime {ort.__version__}"
    digest = hashlib.sha256(versions.encode()).hexdigest()[:12]
    folder = (
        Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="irt-bayes-onnx-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"transformer-{digest}.onnx"
    run = folder / f"transformer-{digest}-int8.onnx" if quantized else path
    try:
        want = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True)
        names = [n for n in _INPUTS if n in tokenizer.model_input_names]
        if not run.exists():
            if not path.exists():
                names = _export(hf_model, tokenizer, path)
            if quantized:
                _quantize(path, run)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        session = ort.InferenceSession(str(run), opts, providers=["CPUExecutionProvider"])
        first.model = _module()(session, names, hf_model.config)
        got = model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True)
    except Exception as err:
        first.model = hf_model
        warnings.warn(f"ONNX export or run failed ({type(err).__name__}: {err}); "
                      "encoding with torch", OnnxFallbackWarning, stacklevel=2)  # fmt: skip
        return False
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if quantized:
        cosine = float((got * want).sum(axis=1).min())
        if cosine >= INT8_MIN_COSINE:
            return True
        first.model = hf_model
        warnings.warn(f"int8 embeddings have cosine {cosine:.3f} with torch's "
                      f"(< {INT8_MIN_COSINE:g}); encoding with torch",
                      OnnxFallbackWarning, stacklevel=2)  # fmt: skip
        return False
    diff = float(np.abs(got - want).max())
    if not diff <= TOLERANCE:
        first.model = hf_model
        warnings.warn(f"ONNX embeddings differ from torch's by {diff:.2g} (> {TOLERANCE:g}); "
                      "encoding with torch", OnnxFallbackWarning, stacklevel=2)  # fmt: skip
        return False
    return True
