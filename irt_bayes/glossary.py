"""What every column the CLI writes means: one definition, shown by ``--help``.

``irt-bayes COMMAND --help`` ends with the columns of what COMMAND writes
(:func:`epilog`), and the README's *Output columns* section is this module rendered
as Markdown (:func:`markdown`; ``tests/test_glossary.py`` checks the two agree).

Examples
--------
>>> print(COLUMNS["abilities"]["hdi_low"])
lower end of the 94% highest-density interval of the ability
>>> "utility" in epilog("route")
True
"""

from __future__ import annotations

import textwrap

__all__ = [
    "ACCURACY_USED",
    "COLUMNS",
    "FILES",
    "PROB_BEST_UTILITY",
    "epilog",
    "markdown",
    "markdown_table",
]

_INTERVAL = "equal-tailed 94% interval of the predictive draws"

# what each policy decides on (route's accuracy_used); {q} is the risk-averse quantile
ACCURACY_USED = {
    "expected-utility": "the posterior mean of P(correct)",
    "risk-averse": "the {q} posterior quantile of P(correct)",
    "thompson": "one posterior draw of P(correct) per query",
}
PROB_BEST_UTILITY = (
    "the share of posterior draws in which the LLM has the highest "
    "P(correct) - cost_weight * expected_cost"
)

COLUMNS: dict[str, dict[str, str]] = {
    "describe": {
        "n_responses": "responses (query, LLM pairs) of the LLM in the files",
        "accuracy": "the LLM's mean score over them (points.csv: the mean observed score "
        "of the choices)",
        "mean_cost": "the LLM's mean USD per query (when the files have costs)",
        "n": "predictive check: held-out responses of the LLM",
        "observed": "predictive check: the LLM's accuracy on the held-out training queries",
        "predicted": "predictive check: its mean predicted P(correct) on the same queries",
        "gap": "predicted - observed; flagged when |gap| > 0.03 and |gap| > z * se, z the "
        "Bonferroni bound for a 5% error over all the cells checked (about 3)",
        "se": "standard error of the gap (sampling error of the observed mean plus the "
        "posterior spread of the predicted one); in the model-choice table, the standard "
        "error of vs_default",
        "log_loss": "model choice (--model auto): the candidate's log loss on the held-out "
        "training queries, predicted from their text (lower is better)",
        "max_gap": "model choice: the candidate's largest per-LLM gap on those queries",
        "check": "model choice: 'ok', or how many (dataset, LLM) cells its check flagged",
        "vs_default": "model choice: log_loss minus the 2PL's (negative is better); a "
        "candidate replaces the 2PL only when below -se",
        "chosen": "model choice: the candidate fitted on all the queries",
    },
    "demo": {
        "n_responses": "step 1: responses of the LLM in the simulated pool",
        "accuracy": "step 1: its mean score",
        "mean_cost": "step 1: its mean USD per query; step 3: its price",
        "mean": "step 3: posterior mean ability (as in abilities)",
        "sd": "step 3: its posterior standard deviation",
        "hdi_low": "step 3: lower end of the ability's 94% HDI",
        "hdi_high": "step 3: upper end",
        "true": "step 3: the ability the simulation drew (what the fit should recover)",
        "accuracy_used": "step 4: the accuracy the policy decided on (as in route)",
        "utility": "step 4: accuracy_used - X * cost (as in route)",
    },
    "abilities": {
        "llm": "the LLM",
        "skill": "which latent skill (one row per skill in multi-skill models)",
        "mean": "posterior mean ability, on the logit scale: +1 multiplies the odds of a "
        "correct answer by e = 2.72 on a query of discrimination 1",
        "sd": "posterior standard deviation of the ability",
        "hdi_low": "lower end of the 94% highest-density interval of the ability",
        "hdi_high": "upper end of that interval",
    },
    "predict": {
        "query_id": "the query, as in the input file",
        "llm": "the LLM",
        "p_mean": "predicted P(correct): mean of the predictive draws (what the model "
        "expects this LLM to score on this query)",
        "p_sd": "standard deviation of those draws: how unsure the model is",
        "p_low": f"lower end of the {_INTERVAL}",
        "p_high": f"upper end of the {_INTERVAL}",
    },
    "route": {
        "query_id": "the query, as in the input file",
        "llm": "the LLM chosen for it",
        "expected_accuracy": "posterior mean P(correct) of that LLM on this query",
        "accuracy_used": "the accuracy the policy decided on: "
        + "; ".join(
            f"{text.format(q='--quantile (0.1 by default)')} ({policy})"
            for policy, text in ACCURACY_USED.items()
        )
        + "; empty for prob-best",
        "expected_cost": "USD of sending this query to that LLM: its price, the LLM's mean "
        "cost per query in the training data (per-query costs only through the Python "
        "API's costs=)",
        "cost_weight": "USD-to-accuracy exchange rate used: --willingness-to-pay X, or with "
        "--alpha A (1 - A) / the query's highest cost; plus what a binding --budget added",
        "utility": "accuracy_used - cost_weight * expected_cost (with --alpha A: "
        "A * accuracy_used - cost_weight * expected_cost); the chosen LLM has the largest "
        "of the query's; for prob-best, " + PROB_BEST_UTILITY,
    },
    "evaluate": {
        "auc": "area under the router's cost-accuracy curve (RouterBench's AIQ), over the "
        "single LLMs' cost range scaled to [0, 1]; for a single LLM or random: its accuracy",
        "apgr": "average performance gap recovered (RouteLLM): 0 is the cheapest LLM's "
        "accuracy, 1 the most accurate LLM's, averaged over the costs between theirs",
        "cpt50": "cost at which the router recovers 50% of that gap, in % of the way from "
        "the cheapest LLM's cost to the most accurate LLM's (1.95 = 1.95%; lower is better)",
        "cpt80": "the same for 80% of the gap",
        "match_cost_share": "lowest cost at which the router reaches the most accurate "
        "single LLM's accuracy, as a share of that LLM's cost (0.5 = half its cost; "
        "empty: never)",
        "max_accuracy": "highest accuracy of any point of the sweep",
        "log_loss": "mean negative log-likelihood of the observed scores under the "
        "predicted P(correct) (lower is better; 0.693 is a coin flip)",
        "brier": "mean squared difference of P(correct) and the observed score",
        "ece": "expected calibration error: |mean observed - mean predicted| in 10 "
        "equal-width bins of P(correct), weighted by each bin's share of pairs",
        "mean_cost": "a single LLM's mean USD per query",
        "never": "the router's curve never reaches that share of the gap (cpt50, cpt80) or "
        "the best LLM's accuracy (match_cost_share)",
        "router": "metrics.csv and points.csv: the row's router, single LLM, oracle or random",
        "lam": "points.csv: the cost weight X of one sweep point (as route's --willingness-to-pay)",
        "cost": "points.csv: mean USD per test query of the choices at that X",
        "dataset": "check.csv: the dataset of the row ('all': every test query)",
        "flagged": "check.csv: the gap is beyond tolerance and sampling error (see gap)",
        "-": "not defined for that row: calibration needs a router's probabilities, "
        "the gap metrics need a router's curve",
    },
    "report": {
        "price": "abilities.csv: the LLM's mean USD per query (other columns as in abilities)",
        "offset": "dataset_abilities.csv: posterior mean of the LLM x dataset offset added "
        "to the ability on that dataset (0 without offsets)",
        "expected": "accuracy.csv: posterior mean of the LLM's expected accuracy on the "
        "training queries (hdi_low, hdi_high: its 94% HDI)",
        "pred_low": "accuracy.csv: lower end of the 94% HDI of the mean score of "
        "replicated responses (expected plus sampling noise)",
        "pred_high": "accuracy.csv: its upper end",
        "inside": "accuracy.csv: observed lies within [pred_low, pred_high]",
        "bin_low": "calibration.csv: lower edge of the bin of predicted P(correct)",
        "bin_high": "calibration.csv: its upper edge",
        "ci_low": "calibration.csv: lower end of the 94% Jeffreys interval of the bin's "
        "observed accuracy",
        "ci_high": "calibration.csv: its upper end",
        "difficulty": "queries.csv: posterior mean difficulty b (higher is harder; "
        "difficulty_sd, _low, _high: its sd and 94% HDI)",
        "p_average": "queries.csv: P(correct) of the pool's average LLM, sigmoid(-b)",
        "discrimination": "queries.csv: posterior mean discrimination a (how sharply the "
        "query separates strong from weak LLMs; the vector's norm for several skills)",
        "text": "queries.csv: the query text, shortened (with --data; empty without)",
        "variable": "convergence.csv: a posterior variable (size: its number of elements)",
        "max_r_hat": "convergence.csv: its worst R-hat (NUTS; should be <= 1.01)",
        "min_ess_bulk": "convergence.csv: its smallest bulk effective sample size "
        "(should be >= 400; min_ess_tail: the same for the tails)",
        "<llm>": "beat_probability.csv: one column per opponent LLM; a cell is the "
        "posterior probability that the row's LLM has the higher expected accuracy",
    },
    "compare": {
        "rank": "0 is the router with the best expected predictive accuracy",
        "elpd_loo": "expected log predictive density by PSIS-LOO (elpd_waic with --ic "
        "waic), summed over training responses: higher predicts held-out responses better",
        "p_loo": "effective number of parameters (how much the fit adapts to the data)",
        "elpd_diff": "elpd below the best router's (0 for the best)",
        "weight": "stacking weight: the share each router would get in the best mixture",
        "se": "standard error of elpd",
        "dse": "standard error of elpd_diff: a difference under 2 dse is not a clear win",
        "warning": "True when ArviZ finds the estimate unreliable (Pareto k too high for "
        "some responses, see k_high)",
        "k_high": "share of responses whose Pareto k is above ArviZ's threshold (0.7 or "
        "less; printed in %): above a few %, prefer K-fold cross-validation",
    },
    "probe": {
        "query_id": "a training query to run the new LLM on",
        "query": "its text (from --data; empty without: routers keep only ids)",
        "dataset": "its dataset label in the training data (where there were labels)",
        "rank": "order of choice: the best probe first, each chosen given those before it",
        "gain": "what the probe adds to the ones ranked before it: expected information "
        "about the abilities in nats (--target abilities), the fall in the mean "
        "posterior variance of P(correct) over the training queries (--target predictions), "
        "or the fall in the variance of the mean P(correct) over them (--target accuracy)",
    },
    "onboard": {
        "llm": "an LLM added from RESPONSES",
        "probes": "its responses used (one per query)",
        "new_queries": "how many of them are on queries the router was not fitted on "
        "(their item parameters come from the new-query predictive)",
        "probe_accuracy": "its mean score on those responses",
        "price": "USD per query the router uses for it (--price, else its mean cost)",
        "expected_accuracy": "its posterior mean P(correct) averaged over the training "
        "queries (below the table: its abilities, with the columns of abilities)",
    },
    "suggest": {
        "query_id": "a candidate query from QUERIES",
        "llm": "the LLM to run on it",
        "value": "expected gain in the utility of that query's routing decision once the "
        "outcome is known (expected value of sample information; averaged over the "
        "--willingness-to-pay values)",
        "p_mean": "the LLM's current mean P(correct) on the query",
        "routed_now": "the LLM the query is routed to now (at the first "
        "--willingness-to-pay value)",
    },
}

FILES: dict[str, str] = {
    "demo": "prints four steps: the pool, the fit, abilities beside the truth, routing",
    "describe": "prints the per-LLM summary (for a router: its model-choice table, "
    "predictive check and abilities)",
    "abilities": "prints (and with --out writes) one row per (LLM, skill)",
    "predict": "writes one row per (query, LLM)",
    "route": "writes one row per query",
    "evaluate": "writes metrics.csv (one row per router, oracle, random and single LLM), "
    "points.csv (one row per sweep point) and check.csv (predicted vs observed per LLM, "
    "with the columns of describe's predictive check)",
    "report": "writes report.html (one file), report.md, figures and one CSV per table; "
    "columns not listed are as in abilities and describe",
    "compare": "prints (and with --out writes compare.csv) one row per router",
    "probe": "writes one row per probe, best first",
    "onboard": "writes the new router and prints one row per added LLM",
    "suggest": "writes one row per (query, LLM) pair, most valuable first",
}


def epilog(command: str, width: int = 78) -> str:
    """The "columns written" block that ends ``irt-bayes COMMAND --help``."""
    cols = COLUMNS.get(command)
    if not cols:
        return ""
    lines = [f"Output: {command} {FILES[command]}; columns:"]
    for name, text in cols.items():
        lines.append(
            textwrap.fill(
                text,
                width,
                initial_indent=f"  {name:<19} ",
                subsequent_indent=" " * 22,
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines)


def markdown_table(command: str) -> str:
    """One command's columns as a Markdown table."""
    rows = "".join(f"| `{name}` | {text} |\n" for name, text in COLUMNS[command].items())
    return "| column | meaning |\n|---|---|\n" + rows


def markdown() -> str:
    """The README's *Output columns* section body, one table per command."""
    return "\n".join(
        f"`{command}` {FILES[command]}:\n\n{markdown_table(command)}" for command in COLUMNS
    )
