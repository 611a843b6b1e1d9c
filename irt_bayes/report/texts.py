"""Query texts for the report's tables: looked up, cut of shared few-shot parts, shortened."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from irt_bayes.errors import IrtBayesError
from irt_bayes.report.posterior import DataLike, _as_data, _query_ids

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter

# Texts in tables and queries.csv are shortened to this many characters.
_TEXT_CHARS = 240
_MIN_AFFIX = 30  # shared prefixes/suffixes shorter than this are kept in display texts


def _query_texts(router: IRTRouter, data: DataLike) -> pd.Series | None:
    """Training query texts by query id: the router's own, or looked up in ``data``."""
    tq = router.train_queries_
    ids = _query_ids(router)
    if "query" in tq.columns and (tq["query"].astype(str).str.strip() != "").all():
        return tq.set_index(tq["query_id"].astype(str))["query"].reindex(ids).fillna("")
    rd = _as_data(data)
    if rd is None:
        return None
    texts = rd.queries.set_index("query_id")["query"].reindex(ids)
    if texts.notna().sum() == 0:
        raise IrtBayesError(
            f"{rd.source}: none of the router's {len(ids)} training query ids are in this data"
        )
    return texts.fillna("")


def _display_texts(texts: pd.Series, datasets: np.ndarray) -> pd.Series:
    """Short one-line texts: a dataset's shared few-shot prefix and suffix are cut.

    RouterBench's ARC prompts, for one, all start with the same five worked examples, so
    the first characters say nothing about the query itself.
    """
    out = texts.astype(str).copy()
    for ds in pd.unique(datasets):
        mask = datasets == ds
        group = out[mask]
        if len(group) < 2:
            continue
        vals = group.tolist()
        prefix = os.path.commonprefix(vals)
        suffix = os.path.commonprefix([v[::-1] for v in vals])[::-1]
        # Cut only at whitespace so that no word is split.
        cut_p = prefix.rfind("\n") + 1 if "\n" in prefix else prefix.rfind(" ") + 1
        cut_s = len(suffix) - (suffix.find("\n") if "\n" in suffix else suffix.find(" "))
        if cut_p < _MIN_AFFIX:
            cut_p = 0
        if cut_s < _MIN_AFFIX or suffix.find("\n") < 0 and suffix.find(" ") < 0:
            cut_s = 0
        shortest = min(len(v) for v in vals)
        if cut_p + cut_s >= shortest:  # one text is (nearly) the shared part itself
            cut_s = 0
            cut_p = cut_p if cut_p < shortest else 0
        if cut_p == 0 and cut_s == 0:
            continue
        out[mask] = [
            ("… " if cut_p else "")
            + v[cut_p : len(v) - cut_s if cut_s else None].strip()
            + (" …" if cut_s else "")
            for v in vals
        ]
    return out.map(lambda t: _shorten(t, _TEXT_CHARS))


def _shorten(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _wrap(text: str, width: int, lines: int) -> str:
    """Wrap to at most ``lines`` lines, ending with an ellipsis when cut."""
    parts = textwrap.wrap(text, width)
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1].rstrip() + "…"
    return "\n".join(parts)
