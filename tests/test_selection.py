"""model="auto"'s rule on hand-made held-out losses, where the right choice is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from irt_bayes.selection import _difference, one_se_choice


def _table(losses, checks, diffs, ses) -> pd.DataFrame:
    return pd.DataFrame(
        {"log_loss": losses, "check": checks, "vs_default": diffs, "se": ses},
        index=["2pl", "mirt-2", "3pl"],
    )


@pytest.mark.parametrize(
    ("checks", "diff", "se", "want"),
    [
        (["ok", "ok", "ok"], -0.001, 0.002, "2pl"),  # within the noise: keep the default
        (["ok", "ok", "ok"], -0.005, 0.002, "mirt-2"),  # beyond one standard error
        (["1 flagged", "ok", "ok"], -0.001, 0.002, "mirt-2"),  # the default fails its check
        (["1 flagged", "2 flagged", "1 flagged"], -0.001, 0.002, "mirt-2"),  # none pass
    ],
)
def test_one_standard_error_rule(checks, diff, se, want) -> None:
    t = _table([0.510, 0.510 + diff, 0.52], checks, [0.0, diff, 0.01], [0.0, se, 0.003])
    best, lowest = one_se_choice(t, "2pl")
    assert (best, lowest) == (want, "mirt-2")


def test_a_passing_candidate_wins_over_a_lower_failing_one() -> None:
    t = _table([0.510, 0.500, 0.505], ["ok", "1 flagged", "ok"], [0, -0.01, -0.005], [0, 1, 1])
    assert one_se_choice(t, "2pl") == ("2pl", "3pl")  # 3pl: lower, but within its error


def test_paired_difference_and_its_error() -> None:
    # per-query summed losses of two models over 4 queries, 8 responses in all
    per_query = {"a": np.array([1.0, 2.0, 1.0, 2.0]), "b": np.array([0.5, 2.0, 1.0, 1.5])}
    d, se = _difference(per_query, "b", "a", total=8.0)
    assert d == pytest.approx(-1.0 / 8)
    diffs = np.array([-0.5, 0.0, 0.0, -0.5])
    assert se == pytest.approx(np.sqrt(4) * diffs.std(ddof=1) / 8)
    assert _difference(per_query, "a", "a", 8.0) == (0.0, 0.0)
