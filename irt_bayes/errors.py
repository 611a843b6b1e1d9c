"""Exception types: every user-facing error is one line that names its source."""

from __future__ import annotations


class IrtBayesError(Exception):
    """Base class for errors the CLI reports as a single line and a non-zero exit."""


class DataError(IrtBayesError, ValueError):
    """Response data or query input that breaks the data contract.

    Parameters
    ----------
    message : str
        What is wrong, naming the column and the offending value or row.
    source : str, optional
        The file (or other origin) the data came from; prefixed to the message.
    """

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class RouterFileError(IrtBayesError, OSError):
    """A saved router directory that is missing, corrupt or incompatible."""


class SpecError(IrtBayesError, ValueError):
    """A model spec that cannot be read or names unknown options."""


class OutputError(IrtBayesError, OSError):
    """An output path that cannot be written, or that holds what irt-bayes did not write."""
