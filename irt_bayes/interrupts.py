"""Interrupts (SIGINT, SIGTERM) honoured everywhere: an interrupted command writes nothing.

PyMC catches ``KeyboardInterrupt`` inside its ADVI loop and returns what it has, and a
sampler may stop early or run on; neither tells the caller. So while a command runs,
:func:`handling` records every SIGINT/SIGTERM here (and raises
:class:`Interrupted` to stop the work in progress); whatever PyMC did with it, the
record stays, and :func:`irt_bayes.outputs.atomic_directory` and the CLI check it
before anything is written.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = [
    "Interrupted",
    "clear",
    "deferred",
    "exit_status",
    "handling",
    "note_written",
    "raise_if_received",
    "received",
    "written",
]

_received: int | None = None
_deferring = False
# Outputs swapped into place since handling() began: an interrupt after one of them
# must not be reported as "nothing written".
_written: list[str] = []


class Interrupted(KeyboardInterrupt):
    """The command was interrupted by ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _handler(signum: int, frame: object) -> None:
    global _received
    _received = signum
    if not _deferring:
        raise Interrupted(signum)


def received() -> int | None:
    """The signal received since :func:`handling` began, or None."""
    return _received


def raise_if_received() -> None:
    """Raise :class:`Interrupted` if a signal was received (even if something caught it)."""
    if _received is not None:
        raise Interrupted(_received)


def note_written(path: object) -> None:
    """Record that the complete output ``path`` is in place."""
    _written.append(str(path))


def written() -> list[str]:
    """The outputs put in place since :func:`handling` began."""
    return list(_written)


def clear() -> None:
    """Forget a received signal (it has been answered, e.g. by ``--keep-partial``)."""
    global _received
    _received = None


def exit_status(signum: int) -> int:
    """The shell's exit status for a command killed by ``signum`` (130, 143)."""
    return 128 + int(signum)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Record SIGINT and SIGTERM while the block runs (main thread only)."""
    global _received
    _received = None
    _written.clear()
    try:
        old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave signals to the caller
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Record but do not raise signals inside the block (a rename that must finish)."""
    global _deferring
    before, _deferring = _deferring, True
    try:
        yield
    finally:
        _deferring = before
