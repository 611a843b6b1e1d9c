"""The LLM endpoints a routing service forwards chat requests to (``--backends FILE``).

A TOML file with one ``[[backend]]`` table per LLM of the router's pool::

    [[backend]]
    llm = "gpt-4-1106-preview"        # the name in the router's pool
    base_url = "https://api.openai.com/v1"
    model = "gpt-4-1106-preview"      # the provider's model id
    api_key_env = "OPENAI_API_KEY"    # optional: environment variable of the key
    price = 0.0123                    # optional: USD per query, instead of the router's

The file is read as data (``tomllib``); nothing in it runs. Keys are never written into
it: the service reads each key from its environment variable when it forwards.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from irt_bayes.errors import DataError

__all__ = ["Backend", "load_backends"]

_KEYS = {"llm", "base_url", "model", "api_key_env", "price"}


@dataclass(frozen=True)
class Backend:
    """One OpenAI-compatible endpoint serving one LLM of the pool."""

    llm: str
    base_url: str
    model: str
    api_key_env: str | None = None
    price: float | None = None

    @property
    def chat_url(self) -> str:
        """URL of its ``/chat/completions``."""
        return self.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        """Request headers, with the key from the environment when one is named."""
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}


def load_backends(path: str | os.PathLike, llms: Sequence[str]) -> dict[str, Backend]:
    """Read a backends file; every entry must name an LLM of the pool ``llms``.

    Raises
    ------
    DataError
        One line naming the file and the entry or key at fault.
    """
    src = str(path)
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"cannot read the backends file: {err.strerror}", source=src) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid TOML: {err}", source=src) from err
    entries = doc.get("backend")
    if not isinstance(entries, list) or not entries:
        raise DataError("no [[backend]] tables", source=src)
    out: dict[str, Backend] = {}
    for i, e in enumerate(entries, 1):
        where = f"backend {i}"
        if not isinstance(e, dict):
            raise DataError(f"{where} is not a table", source=src)
        unknown = sorted(set(e) - _KEYS)
        if unknown:
            raise DataError(f"{where}: unknown key {unknown[0]!r}", source=src)
        for key in ("llm", "base_url", "model"):
            if not isinstance(e.get(key), str) or not e[key].strip():
                raise DataError(f"{where}: {key!r} must be a non-empty string", source=src)
        if e["llm"] not in llms:
            raise DataError(f"{where}: LLM {e['llm']!r} is not in the router's pool", source=src)
        if e["llm"] in out:
            raise DataError(f"{where}: LLM {e['llm']!r} has two backends", source=src)
        url = urlparse(e["base_url"])
        if url.scheme not in ("http", "https") or not url.netloc:
            raise DataError(
                f"{where}: base_url {e['base_url']!r} is not an http(s) URL", source=src
            )
        price = e.get("price")
        if price is not None and (
            isinstance(price, bool)
            or not isinstance(price, int | float)
            or not math.isfinite(price)
            or price < 0
        ):
            raise DataError(f"{where}: price {price!r} must be a number of USD >= 0", source=src)
        env = e.get("api_key_env")
        if env is not None and (not isinstance(env, str) or not env):
            raise DataError(f"{where}: api_key_env must name an environment variable", source=src)
        out[e["llm"]] = Backend(
            e["llm"], e["base_url"], e["model"], env, None if price is None else float(price)
        )
    return out
