"""Posterior reports of a fitted router: tables, figures, an HTML/Markdown report, LOO.

Every piece of ``irt-bayes report`` is a function here, returning a pandas or xarray
object (numbers) or a :class:`matplotlib.figure.Figure` (pictures), so that a notebook
can show any of them on its own:

==============================  ===========================================================
numbers                         figure
==============================  ===========================================================
:func:`ability_table`           :func:`plot_abilities` (ArviZ forest plot, 94% HDI)
:func:`dataset_ability_table`   :func:`plot_dataset_abilities` (heat map)
:func:`beat_probability`        :func:`plot_beat_probability` (heat map)
:func:`accuracy_check`          :func:`plot_accuracy` (posterior predictive check)
:func:`calibration_table`       :func:`plot_calibration`
:func:`query_table`,            :func:`plot_query_parameters`, :func:`plot_icc`
:func:`extreme_queries`
:func:`skill_loadings`,         :func:`plot_skill_loadings` (K > 1)
:func:`skill_top_queries`
:func:`convergence_table`,      :func:`plot_convergence`
:func:`convergence_verdict`
:func:`compare_routers`         (returns its figure too)
==============================  ===========================================================

:func:`build_report` writes them all to a directory: ``report.html`` (one self-contained
file with its figures embedded as base64 PNG, to send or open on its own), ``report.md``
(linking the PNG figures written beside it) and one CSV per table.

Figures are built with matplotlib's object-oriented API on the Agg canvas: nothing here
touches pyplot's global state or needs a display, and a notebook still shows a returned
figure inline.

Modules
-------
==================================  ======================================================
:mod:`irt_bayes.report.summaries`   the numbers: every table and ``expected_accuracy``
:mod:`irt_bayes.report.figures`     every ``plot_*`` function and ``FIGURE_DPI``
:mod:`irt_bayes.report.comparison`  ``compare_routers`` (PSIS-LOO / WAIC)
:mod:`irt_bayes.report.document`    ``build_report``: the HTML and Markdown layout, files
:mod:`irt_bayes.report.texts`       query texts: looked up, few-shot parts cut, shortened
:mod:`irt_bayes.report.posterior`   what they all read of a fitted router (draws, pairs)
==================================  ======================================================

Quantities
----------
* Abilities are relative to the pool's average LLM (zero-sum), in logits for a query of
  typical discrimination. The ability *on a dataset* adds the LLM x dataset offset (when
  the spec has them) and scales by the dataset's mean discrimination.
* P(correct) of a training (query, LLM) pair is ``sigmoid(a . (theta + gamma) - b)``
  for each posterior draw, the same expression as the model's likelihood.
* *Expected accuracy on the training distribution* of an LLM, for one posterior draw,
  is its mean P(correct) over every training query (answered by it or not). The
  probability that LLM i *beats* LLM j is the share of draws in which i's expected
  accuracy is higher (ties count half), so ``P[i, j] + P[j, i] = 1``.
* The posterior predictive check compares each LLM's observed accuracy on the pairs it
  answered with the posterior of the same mean (``expected``, its HDI) and with the
  accuracy of replicated responses drawn from the model (``pred_low``/``pred_high``),
  which adds the sampling noise of a finite set of queries. It is an in-sample check.
"""

from __future__ import annotations

from irt_bayes.report.comparison import compare_routers
from irt_bayes.report.document import build_report
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
from irt_bayes.report.summaries import (
    ability_table,
    accuracy_check,
    beat_probability,
    calibration_table,
    convergence_table,
    convergence_verdict,
    dataset_ability_table,
    expected_accuracy,
    extreme_queries,
    query_table,
    skill_loadings,
    skill_top_queries,
)
from irt_bayes.stats import HDI_PROB

__all__ = [
    "FIGURE_DPI",
    "HDI_PROB",
    "ability_table",
    "plot_abilities",
    "dataset_ability_table",
    "plot_dataset_abilities",
    "expected_accuracy",
    "beat_probability",
    "plot_beat_probability",
    "accuracy_check",
    "plot_accuracy",
    "calibration_table",
    "plot_calibration",
    "query_table",
    "extreme_queries",
    "plot_query_parameters",
    "plot_icc",
    "skill_loadings",
    "skill_top_queries",
    "plot_skill_loadings",
    "convergence_table",
    "convergence_verdict",
    "plot_convergence",
    "compare_routers",
    "build_report",
]
