"""Progress on long steps: bars in a terminal, plain periodic log lines elsewhere.

A progress bar redraws one line with carriage returns; written to a log file or a CI
console it becomes either thousands of fragments or (rich, PyMC's bar) one frozen
line. So every long step asks :func:`interactive` and, when stderr is not a terminal,
reports through a :class:`Ticker` or a :class:`Heartbeat` instead: one line at the
start, one at most every :data:`LOG_EVERY` seconds, one at the end.

The first fit on a machine also compiles PyTensor's C code (about a minute here, more
on a busy machine); :func:`compile_notice` says so once, before the wait, and not
again once the compiled code is in PyTensor's cache.

Examples
--------
>>> import io
>>> out = io.StringIO()
>>> t = Ticker("scoring", total=4, unit="block", stream=out, every=0.0)
>>> t.update(2)
>>> t.close()
>>> print(out.getvalue().splitlines()[0])  # doctest: +ELLIPSIS
irt-bayes: scoring: 2/4 blocks (50%), ... s
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

__all__ = [
    "LOG_EVERY",
    "Heartbeat",
    "Ticker",
    "bar",
    "compile_notice",
    "compiled",
    "interactive",
    "say",
]

LOG_EVERY = 30.0  # seconds between two log lines of one step when not in a terminal
_MARKER = "irt-bayes-compiled"  # in PyTensor's compiledir: goes when that cache is cleared


def interactive(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (default stderr) is a terminal, where bars can redraw."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def say(message: str, stream: IO[str] | None = None) -> None:
    """One progress line on stderr, prefixed ``irt-bayes:``."""
    print(f"irt-bayes: {message}", file=sys.stderr if stream is None else stream, flush=True)


def _plural(unit: str, n: float) -> str:
    return unit if n == 1 or not unit else unit + "s"


class Ticker:
    """Counted progress as log lines: ``what: i/total units (pct), elapsed``.

    Parameters
    ----------
    what : str
        The step, e.g. ``"embedding 1,338 queries"``.
    total : int, optional
        Units of work; without it the line gives the count only.
    unit : str
        Singular name of a unit (``"text"``, ``"step"``).
    stream : file, optional
        Default stderr.
    every : float
        Seconds between two lines (the last update is always written by ``close``).
    """

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "",
        stream: IO[str] | None = None,
        every: float = LOG_EVERY,
    ) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.stream = stream
        self.n = 0
        self.t0 = self._last = time.perf_counter()
        self.closed = False

    def line(self, note: str = "") -> str:
        """The current state as one line (without the prefix)."""
        elapsed = time.perf_counter() - self.t0
        if self.total:
            count = f"{self.n:,}/{self.total:,} {_plural(self.unit, self.total)}"
            count += f" ({self.n / self.total:.0%})"
        else:
            count = f"{self.n:,} {_plural(self.unit, self.n)}"
        return f"{self.what}: {count}, {elapsed:.0f} s" + (f", {note}" if note else "")

    def update(self, n: int = 1, note: str = "") -> None:
        """Count ``n`` more units; write a line when ``every`` seconds have passed."""
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            say(self.line(note), self.stream)

    def set(self, n: int, note: str = "") -> None:
        """Set the count to ``n`` (for callers that know the position, not the step)."""
        self.update(n - self.n, note)

    def close(self, note: str = "") -> None:
        """Write the final line (once)."""
        if not self.closed:
            self.closed = True
            say(self.line(note), self.stream)


def bar(total: int, what: str, *, unit: str, enabled: bool = True) -> Any:
    """A tqdm bar in a terminal, a :class:`Ticker` elsewhere, None when disabled.

    Both have ``update(n)`` and ``close()``.
    """
    if not enabled:
        return None
    if interactive():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, dynamic_ncols=True)
    return Ticker(what, total, unit=unit)


class Heartbeat:
    """Log lines while an opaque step runs (a compile, a sampler without callbacks).

    A context manager: one line at the start, ``what: still running, N s`` every
    ``every`` seconds from a daemon thread, and ``what: done in N s`` at the end. In a
    terminal (``quiet_in_terminal``) only the start line, since a bar shows the rest.
    """

    def __init__(
        self,
        what: str,
        *,
        every: float = LOG_EVERY,
        enabled: bool = True,
        quiet_in_terminal: bool = False,
        stream: IO[str] | None = None,
    ) -> None:
        self.what, self.every, self.stream = what, every, stream
        self.enabled = enabled
        self.beats = enabled and not (quiet_in_terminal and interactive(stream))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = 0.0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            say(f"{self.what}: still running, {time.perf_counter() - self.t0:.0f} s", self.stream)

    def __enter__(self) -> Heartbeat:
        self.t0 = time.perf_counter()
        if self.enabled:
            say(f"{self.what} ...", self.stream)
        if self.beats:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.beats and exc_type is None:
            say(f"{self.what}: done in {time.perf_counter() - self.t0:.0f} s", self.stream)


def _marker() -> Path | None:
    try:
        import pytensor

        return Path(pytensor.config.compiledir) / _MARKER
    except Exception:
        return None


def compile_notice(enabled: bool = True) -> None:
    """Say that this fit compiles the model first, when PyTensor's cache lacks it."""
    marker = _marker()
    if enabled and marker is not None and not marker.exists():
        say(
            "compiling the model once, about a minute (more on a busy machine); later runs reuse it"
        )


def compiled() -> None:
    """Record that a fit compiled, so later runs skip :func:`compile_notice`."""
    marker = _marker()
    if marker is not None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
