"""The memory budget of prediction and routing, and the blocks of work it allows.

Predicting P(correct) for ``n`` new queries and ``J`` LLMs from ``S`` posterior draws
makes (S, n, J) arrays: routing 1,000 queries over 10,000 LLMs with 1,000 draws needs
80 GB for one of them. Prediction (:mod:`irt_bayes.predict`), its summaries
(:meth:`IRTRouter.predict <irt_bayes.router.IRTRouter.predict>`) and routing
(:mod:`irt_bayes.routing`) therefore work on *blocks* of queries -- and of LLMs when
one query over every LLM does not fit -- sized so that the arrays one block needs at
once, temporaries included, stay within a budget: :data:`MEMORY_BUDGET` bytes unless
``IRTRouter(memory_budget=...)`` says otherwise.

A block's peak is estimated as ``fixed + rows * (row_bytes + cols * cell_bytes)``, with
the bytes per (query, LLM) cell and per query of each computation measured with
:mod:`tracemalloc` (see :func:`irt_bayes.predict.cell_bytes` and
:func:`irt_bayes.predict.row_bytes`). Results are the same for any budget: every random
number a query uses is drawn from that query's own generator, so no draw depends on
which block the query lands in.

The budget does not cover the router's own state (its posterior draws, and the copies of
it a batch needs once: the training embeddings in float64 for the kernel, the dataset
terms extended by an unseen dataset's draw) nor the results the caller asked for: the
(S, n, J) array of ``predict_proba`` and the (n, J) summaries of ``predict`` and
``route`` are as large as they are. A budget smaller than one query over one LLM needs
(about 150 bytes per posterior draw and 50 per training query) still gets blocks of one
query and one LLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral

from irt_bayes.errors import IrtBayesError

__all__ = ["MEMORY_BUDGET", "Blocks", "check_budget", "plan_blocks"]

# Bytes the arrays of one block of prediction or routing may take at once (1 GiB).
MEMORY_BUDGET = 2**30


def check_budget(budget: int | None) -> int:
    """The budget in bytes: ``budget`` checked, or :data:`MEMORY_BUDGET` for None.

    Parameters
    ----------
    budget : int or None
        Bytes; must be a positive integer.

    Returns
    -------
    int
    """
    if budget is None:
        return MEMORY_BUDGET
    if isinstance(budget, bool) or not isinstance(budget, Integral) or budget <= 0:
        raise IrtBayesError(f"memory_budget must be a positive number of bytes, got {budget!r}")
    return int(budget)


@dataclass(frozen=True)
class Blocks:
    """A (queries x LLMs) grid cut into blocks of at most ``rows`` x ``cols``.

    Attributes
    ----------
    n_rows, n_cols : int
        Queries and LLMs of the whole grid.
    rows, cols : int
        Queries and LLMs per block (``cols < n_cols`` only when ``rows == 1``).
    """

    n_rows: int
    n_cols: int
    rows: int
    cols: int

    def row_slices(self) -> list[slice]:
        """Consecutive slices of at most ``rows`` queries."""
        return [slice(i, min(i + self.rows, self.n_rows)) for i in range(0, self.n_rows, self.rows)]

    def col_slices(self) -> list[slice]:
        """Consecutive slices of at most ``cols`` LLMs."""
        return [slice(j, min(j + self.cols, self.n_cols)) for j in range(0, self.n_cols, self.cols)]

    def __iter__(self) -> Iterator[tuple[slice, slice]]:
        """(query slice, LLM slice) of every block, query blocks outermost."""
        for r in self.row_slices():
            for c in self.col_slices():
                yield r, c

    def __len__(self) -> int:
        return len(self.row_slices()) * len(self.col_slices())


def plan_blocks(
    n_rows: int,
    n_cols: int,
    *,
    cell_bytes: int,
    row_bytes: int = 0,
    fixed_bytes: int = 0,
    budget: int | None = None,
) -> Blocks:
    """The largest blocks whose estimated peak fits within ``budget``.

    Whole rows (every LLM) are kept together while one fits; otherwise a block is one
    query and as many LLMs as fit. A block of one query and one LLM is the smallest
    there is, whatever the budget.

    Parameters
    ----------
    n_rows, n_cols : int
        Queries and LLMs to cover.
    cell_bytes : int
        Peak bytes per (query, LLM) cell of a block, every draw and temporary included.
    row_bytes : int
        Peak bytes per query that do not grow with the LLMs (per-query draws, weights).
    fixed_bytes : int
        Bytes held throughout, whatever the block.
    budget : int, optional
        Bytes; default :data:`MEMORY_BUDGET`.

    Returns
    -------
    Blocks
    """
    budget = check_budget(budget)
    n_rows, n_cols = max(int(n_rows), 1), max(int(n_cols), 1)
    room = budget - fixed_bytes
    per_row = row_bytes + n_cols * cell_bytes
    if room >= per_row:
        return Blocks(n_rows, n_cols, min(n_rows, room // per_row), n_cols)
    cols = (room - row_bytes) // max(cell_bytes, 1)
    return Blocks(n_rows, n_cols, 1, int(min(max(cols, 1), n_cols)))
