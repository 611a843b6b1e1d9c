"""The report document: every table and figure laid out as HTML and Markdown, written out.

:func:`build_report` computes the pieces once, lays them out (:class:`_Doc` builds the
Markdown and the HTML side by side) and writes the folder through
:func:`irt_bayes.outputs.atomic_directory`. The HTML carries its figures inside it
(base64 PNG), so it is one file a person can send; the Markdown links the same PNG
files, written beside it.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from irt_bayes.outputs import atomic_directory, check_output_dir
from irt_bayes.predict import sample_index
from irt_bayes.progress import Heartbeat
from irt_bayes.report.figures import (
    FIGURE_DPI,
    plot_abilities,
    plot_accuracy,
    plot_beat_probability,
    plot_calibration,
    plot_convergence,
    plot_dataset_abilities,
    plot_icc,
    plot_query_parameters,
    plot_skill_loadings,
)
from irt_bayes.report.posterior import (
    DataLike,
    _as_data,
    _as_router,
    _free_discrimination,
    _observations,
    _query_datasets,
    _query_ids,
    _skills,
)
from irt_bayes.report.summaries import (
    ability_table,
    accuracy_check,
    beat_probability,
    calibration_table,
    convergence_table,
    convergence_verdict,
    dataset_ability_table,
    extreme_queries,
    query_table,
    skill_loadings,
    skill_top_queries,
)
from irt_bayes.report.texts import _query_texts
from irt_bayes.stats import HDI_PROB

if TYPE_CHECKING:
    from irt_bayes.router import IRTRouter


def _fmt(value: Any, col: str) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "–"
        if col in ("price",):
            return f"{value:.3g}"
        if col.startswith(("min_ess", "size")):
            return f"{value:.0f}"
        return f"{value:.3f}"
    return str(value)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [_fmt(v, c).replace("|", "\\|") for v, c in zip(row, cols, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for v, c in zip(row, cols, strict=True):
            num = isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
            cls = ' class="num"' if num else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v, c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.86em;margin:.6em 0 1.2em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
.verdict{padding:.6em .9em;border-left:4px solid #1f5f99;background:#f3f7fb;font-weight:600}
.note{color:#555;font-size:.92em}code{background:#f4f4f4;padding:0 .2em}
"""


class _Doc:
    """Builds the Markdown and the HTML report side by side.

    ``pngs`` maps each figure's file name to its PNG bytes: the Markdown links the file,
    the HTML embeds the bytes.
    """

    def __init__(self, pngs: Mapping[str, bytes]) -> None:
        self.md: list[str] = []
        self.html: list[str] = []
        self.pngs = pngs

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str, cls: str | None = None) -> None:
        self.md.append(f"{'**' + text + '**' if cls == 'verdict' else text}\n")
        attr = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{attr}>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame) -> None:
        self.md.append(_md_table(df) + "\n")
        self.html.append(_html_table(df))

    def figure(self, name: str, alt: str) -> None:
        self.md.append(f"![{alt}]({name})\n")
        data = base64.b64encode(self.pngs[name]).decode("ascii")
        self.html.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')


def _png(fig: Figure) -> bytes:
    """The figure as PNG bytes, at the report's resolution on a white background."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, facecolor="white")
    return buf.getvalue()


def build_report(
    router: Any,
    out_dir: str | os.PathLike,
    data: DataLike = None,
    *,
    n_queries: int = 5,
    hdi_prob: float = HDI_PROB,
    force: bool = False,
    progress: bool = False,
) -> Path:
    """Write the posterior report of a router to a directory.

    The directory gets ``report.html`` (one self-contained file: its figures are embedded
    as base64 PNG, so it can be sent or opened on its own), ``report.md`` (the same
    content, linking the figures), the figures as PNG files (``abilities.png``,
    ``beat_probability.png``, ``accuracy.png``, ``calibration.png``,
    ``query_parameters.png``, ``icc.png``, ``convergence.png``, ``dataset_abilities.png``
    with two or more datasets and ``skills.png`` for K > 1) and one CSV per table. It is
    written under a temporary name beside ``out_dir`` and swapped into place
    (:func:`irt_bayes.outputs.atomic_directory`): an earlier report there is replaced,
    any other non-empty folder is refused unless ``force``.

    Parameters
    ----------
    router : IRTRouter or path
        A fitted router or a saved router directory.
    out_dir : str or os.PathLike
        Target directory.
    data : ResponseData or path(s), optional
        The training responses, for the query texts of a saved router (which keeps only
        ids). Without them the query tables show ids only, and say so.
    n_queries : int, default 5
        Hardest / easiest queries listed, and example queries per skill.
    hdi_prob : float, default 0.94
        Probability mass of every interval.
    force : bool, default False
        Replace an existing folder that is not an irt-bayes report.
    progress : bool, default False
        Say on stderr when each phase starts (and, outside a terminal, every 30 s).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    See Also
    --------
    ability_table, beat_probability, accuracy_check, query_table, convergence_table

    Examples
    --------
    >>> from irt_bayes.report import build_report
    >>> build_report("fits/2pl", "fits/2pl-report", data="train.csv")  # doctest: +SKIP
    PosixPath('fits/2pl-report')
    """
    t0 = time.perf_counter()
    out = check_output_dir(out_dir, "report", force=force)
    router = _as_router(router)
    data = _as_data(data)  # read files once, not once per table
    texts = _query_texts(router, data)
    has_text = texts is not None

    with Heartbeat("report: posterior tables", enabled=progress):
        ab = ability_table(router, hdi_prob)
        by_ds = dataset_ability_table(router, hdi_prob)
        beat = beat_probability(router)
        acc = accuracy_check(router, hdi_prob)
        cal = calibration_table(router)
        qt = query_table(router, data, hdi_prob)
        hardest, easiest = extreme_queries(qt, n_queries)
        conv = convergence_table(router)
        verdict = convergence_verdict(router)
        skills = _skills(router)
        multi = len(skills) > 1 and _free_discrimination(router)

    with (
        atomic_directory(out, "report", force=force) as tmp,
        Heartbeat("report: figures and pages", enabled=progress),
    ):
        figures: dict[str, Figure] = {
            "abilities.png": plot_abilities(router, hdi_prob),
            "beat_probability.png": plot_beat_probability(beat),
            "accuracy.png": plot_accuracy(acc),
            "calibration.png": plot_calibration(cal),
            "query_parameters.png": plot_query_parameters(qt),
            "icc.png": plot_icc(router, data=data if has_text else None),
            "convergence.png": plot_convergence(router),
        }
        tables: dict[str, pd.DataFrame] = {
            "abilities.csv": ab,
            "beat_probability.csv": beat.to_pandas()
            .rename_axis(index="llm", columns=None)
            .reset_index(),
            "accuracy.csv": acc,
            "calibration.csv": cal,
            # the shortened texts: full prompts repeat few-shot examples (2.4 MB on RouterBench)
            "queries.csv": qt.drop(columns="text")
            .rename(columns={"display": "text"})
            .reset_index(),
            "convergence.csv": conv.reset_index(),
        }
        if by_ds["dataset"].nunique() > 1:
            figures["dataset_abilities.png"] = plot_dataset_abilities(by_ds)
            tables["dataset_abilities.csv"] = by_ds
        if multi:
            loads = skill_loadings(router)
            tops = skill_top_queries(router, n_queries, data=data if has_text else None)
            figures["skills.png"] = plot_skill_loadings(loads)
            tables["skill_loadings.csv"] = loads.reset_index()
            tables["skill_queries.csv"] = tops
        pngs = {name: _png(fig) for name, fig in figures.items()}
        for name, png in pngs.items():
            (tmp / name).write_bytes(png)
        for name, df in tables.items():
            df.to_csv(tmp / name, index=False)

        parts = {
            "ab": ab,
            "by_ds": by_ds,
            "beat": beat,
            "acc": acc,
            "cal": cal,
            "conv": conv,
            "hardest": hardest,
            "easiest": easiest,
            "verdict": verdict,
            "skills": skills,
            "hdi_prob": hdi_prob,
            "has_text": has_text,
            "multi": multi,
            "t0": t0,
            "tables": list(tables),
            "figures": list(figures),
            "pngs": pngs,
            "loads": loads if multi else None,
            "tops": tops if multi else None,
        }
        doc = _doc(router, parts)
        (tmp / "report.md").write_text("\n".join(doc.md))
        title = f"irt-bayes report: {router.spec_.name}"
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(doc.html)
            + "\n</body></html>\n"
        )
        (tmp / "report.html").write_text(page, encoding="utf-8")
    return out


def _query_rows(df: pd.DataFrame, has_text: bool) -> pd.DataFrame:
    cols = [
        "dataset",
        "difficulty",
        "difficulty_low",
        "difficulty_high",
        "p_average",
        "discrimination",
        "observed",
        "n",
    ]
    out = df[cols].rename(columns={"observed": "share_correct"}).reset_index()
    if has_text:
        out["text"] = df["display"].to_numpy()
    return out


def _doc(router: IRTRouter, v: dict[str, Any]) -> _Doc:
    """Lay out the report from the pieces computed in :func:`build_report`."""
    ab, beat, acc, cal = v["ab"], v["beat"], v["acc"], v["cal"]
    hdi_prob, has_text, multi = v["hdi_prob"], v["has_text"], v["multi"]
    o = _observations(router)
    n_draws = len(sample_index(router.idata_, None))
    d = _Doc(v["pngs"])
    d.heading(f"irt-bayes report: {router.spec_.name}", 1)
    ds = router.datasets_ or sorted(set(_query_datasets(router)))
    d.para(
        f"{len(router.llms_)} LLMs, {len(_query_ids(router))} training queries, "
        f"{len(o['y'])} responses ({router.likelihood_} likelihood), datasets: "
        f"{', '.join(map(str, ds))}. Model {router.spec_.name} with {len(v['skills'])} "
        f"skill(s), fitted by {router.diagnostics_.method.upper()} "
        f"({n_draws} posterior draws); intervals are {hdi_prob:.0%} HDIs."
    )
    d.para(f"Convergence: {v['verdict']}", "verdict")
    emb = router.train_embeddings_
    n_dup = len(emb) - len(np.unique(np.round(emb, 5), axis=0))
    if n_dup > 0.05 * len(emb):
        d.para(
            f"Warning: {n_dup} of {len(emb)} training queries share their embedding with "
            "another query (texts longer than the encoder's window that start alike?), "
            "so the model cannot tell them apart by their text.",
            "verdict",
        )

    d.heading("Abilities")
    d.para(
        "Abilities are relative to the pool's average LLM (they sum to zero per skill), "
        "in logits for a query of typical discrimination; price is the mean USD per query "
        "in the training data."
        + (
            " This model also has LLM x dataset offsets: theta is then only the part of an "
            "LLM's ability shared across datasets, and the abilities per dataset below are "
            "the numbers to read."
            if (v["by_ds"]["offset"].abs().max() > 0)
            else ""
        )
    )
    d.table(ab)
    d.figure("abilities.png", "Forest plot of LLM abilities")
    by_ds = v["by_ds"]
    if by_ds["dataset"].nunique() > 1:
        d.heading("Abilities per dataset", 3)
        d.para(
            "The logit each LLM adds on an average query of each dataset: its ability times "
            "the dataset's mean discrimination"
            + (
                ", plus its LLM x dataset offset (offsets and abilities trade off against "
                "each other, this sum is what the data pin down)"
                if by_ds["offset"].abs().max() > 0
                else ""
            )
            + ". Colours compare LLMs within a dataset; intervals in dataset_abilities.csv."
        )
        d.figure("dataset_abilities.png", "Ability of each LLM on each dataset")

    d.heading("Who beats whom")
    d.para(
        "P(row beats column): the posterior probability that the row LLM's expected "
        "accuracy over the training queries is higher than the column LLM's "
        f"({beat.attrs['n_draws']} draws; ties count half)."
    )
    d.table(beat.to_pandas().round(3).rename_axis(index="llm", columns=None).reset_index())
    d.figure("beat_probability.png", "Heat map of the probability that one LLM beats another")

    d.heading("Expected and observed accuracy")
    n_out = int((~acc["inside"]).sum()) if acc["pred_low"].notna().any() else None
    d.para(
        "Posterior predictive check on the training responses: expected is the posterior "
        "mean accuracy on the pairs each LLM answered (with its HDI), pred_low/pred_high "
        "the HDI of the accuracy of replicated responses."
        + (
            f" {n_out} of {len(acc)} observed accuracies fall outside their predictive interval."
            if n_out is not None
            else ""
        )
    )
    d.table(
        acc[acc["dataset"] == "all"]
        .drop(columns="dataset")
        .sort_values("expected", ascending=False)
    )
    if (acc["dataset"] != "all").any():
        d.para("Per dataset: accuracy.csv and the figure.", "note")
    d.figure("accuracy.png", "Expected against observed accuracy")
    d.para(
        f"Calibration of the posterior mean P(correct) on the training responses: expected "
        f"calibration error {cal.attrs['ece']:.3f} (in-sample)."
    )
    d.figure("calibration.png", "Calibration plot")

    d.heading("Queries: difficulty and discrimination")
    d.para(
        "Difficulty b is in logits (the average LLM answers correctly with probability "
        "p_average = sigmoid(−b)); share_correct is the observed mean score over the "
        "n responses."
        + (
            " Texts are shortened, with each dataset's shared few-shot prefix and suffix cut "
            "(…); queries.csv holds the same shortened texts."
            if has_text
            else " The router was loaded from disk without its query texts: ids only "
            "(pass the training data, --data DATA, to show the texts)."
        )
    )
    d.figure("query_parameters.png", "Distributions of query difficulty and discrimination")
    d.heading("Hardest queries", 3)
    d.table(_query_rows(v["hardest"], has_text))
    d.heading("Easiest queries", 3)
    d.table(_query_rows(v["easiest"], has_text))
    d.heading("Item characteristic curves", 3)
    d.para(
        "P(correct) against ability for example queries (10%, 50%, 90% difficulty "
        "quantiles and the most discriminating one): thin lines are posterior draws, dots "
        "the LLMs at their posterior mean ability and their observed score."
    )
    d.figure("icc.png", "Item characteristic curves")

    d.heading("What the skills mean")
    if multi:
        d.para(
            "Average loading (posterior mean discrimination) of each dataset's queries on "
            "each skill, and each skill's share of it; then the queries with the largest "
            "share on each skill."
        )
        d.table(v["loads"].reset_index())
        d.figure("skills.png", "Share of discrimination per skill and dataset")
        tops = v["tops"] if has_text else v["tops"].drop(columns="display")
        d.table(tops)
    else:
        d.para("This model has a single skill (K = 1): nothing to interpret.")

    d.heading("Convergence")
    d.para(f"{v['verdict']}", "verdict")
    d.para(
        "Worst R-hat and smallest effective sample sizes per variable (R-hat needs "
        "two or more chains: it is empty for ADVI's single set of draws)."
    )
    d.table(v["conv"].reset_index())
    d.figure("convergence.png", "Convergence diagnostics")

    d.heading("Files")
    d.para(
        "Tables as CSV: "
        + ", ".join(v["tables"])
        + ". Figures: "
        + ", ".join(v["figures"])
        + f". Built by irt-bayes in {time.perf_counter() - v['t0']:.1f} s."
    )
    return d
