"""Output folders: written whole or not at all, and never over what irt-bayes did not write.

Every folder irt-bayes writes (a saved router, a report, an evaluation, a comparison)
holds a marker file, ``.irt-bayes-output``, saying which kind of output it is. A folder
is written like this:

1. :func:`check_output_dir` runs *before* any long work (the CLI calls it before a fit
   starts): the path must not be the current folder or one above it, must not be a file,
   its nearest existing parent must be a writable folder, and an existing folder must be
   empty or an irt-bayes output of the same kind (``force=True`` overrides the last rule
   only).
2. :func:`atomic_directory` fills a temporary folder beside the target (named
   ``.NAME.<random>.<pid>.irt-bayes-tmp``, marker first), then, holding an exclusive
   lock on the parent folder, checks the target again and swaps the temporary folder
   in. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so a reader always
   finds either the old complete output or the new one; elsewhere it falls back to two
   renames. The old contents are deleted only after the swap (they were checked to be
   irt-bayes's own, or ``force`` was given).
3. Temporary folders left by a killed process (marker inside, its pid gone) are removed
   the next time the same target is written. Nothing without the marker is ever removed.

A pending interrupt (:mod:`irt_bayes.interrupts`) is honoured at the last moment before
the swap: an interrupted command writes nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from irt_bayes import interrupts
from irt_bayes.errors import OutputError

__all__ = ["KINDS", "MARKER", "atomic_directory", "check_output_dir", "check_output_file"]

MARKER = ".irt-bayes-output"
# Each kind of output folder and the files it held before markers existed: a folder
# holding nothing but these is taken as that kind's output.
KINDS: dict[str, frozenset[str]] = {
    "router": frozenset({"router.json", "posterior.nc", "arrays.npz"}),
    "report": frozenset(),  # recognised by report.html + report.md, see _legacy_kind
    "evaluation": frozenset({"metrics.csv", "metrics.md", "points.csv", "check.csv", "pareto.png"}),
    "compare": frozenset({"compare.csv", "compare.png"}),
    "decisions": frozenset(),  # recognised by its marker only (Parquet parts, batch.py)
}
_TMP_SUFFIX = ".irt-bayes-tmp"


def _legacy_kind(names: set[str]) -> str | None:
    """The kind of an unmarked folder written by an irt-bayes without markers, if any."""
    for kind, files in KINDS.items():
        if files and names <= files:
            return kind
    if {"report.html", "report.md"} <= names and all(
        n.endswith((".html", ".md", ".png", ".csv")) for n in names
    ):
        return "report"
    return None


def output_kind(path: Path) -> str | None:
    """The kind of irt-bayes output ``path`` holds (None when it is not one)."""
    try:
        meta = json.loads((path / MARKER).read_text())
        kind = meta.get("kind") if isinstance(meta, dict) else None
        return kind if kind in KINDS else None
    except (OSError, ValueError):
        pass
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return None
    return _legacy_kind(names) if names and all(not n.startswith(".") for n in names) else None


def _foreign(path: Path, kind: str) -> str | None:
    """Why ``path`` (an existing folder) must not be replaced by a ``kind`` output."""
    names = sorted(p.name for p in path.iterdir())
    if not names:
        return None
    found = output_kind(path)
    if found == kind:
        return None
    if found is not None:
        return f"holds an irt-bayes {found}, not a {kind}"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"holds files irt-bayes did not write ({shown})"


def _probe_writable(folder: Path, target: Path) -> None:
    """Create and remove a temporary folder in ``folder``: the only sure test (root too)."""
    try:
        Path(tempfile.mkdtemp(prefix=".irt-bayes-probe.", dir=folder)).rmdir()
    except OSError as exc:
        raise OutputError(
            f"{target}: cannot write in {folder} ({exc.strerror or type(exc).__name__})"
        ) from None


def check_output_dir(path: str | os.PathLike, kind: str, *, force: bool = False) -> Path:
    """Check that ``path`` can receive a ``kind`` output folder, before any work starts.

    Parameters
    ----------
    path : str or os.PathLike
        The output folder (it may not exist yet; missing parents are created later).
    kind : str
        One of :data:`KINDS`.
    force : bool, default False
        Allow replacing an existing folder that irt-bayes did not write.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OutputError
        One line saying what is wrong with the path and how to proceed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "notes.txt").write_text("mine")
    4
    >>> check_output_dir(folder, "router")
    Traceback (most recent call last):
    ...
    irt_bayes.errors.OutputError: ... holds files irt-bayes did not write (notes.txt); ...
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}; expected one of {sorted(KINDS)}")
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == Path(resolved.anchor):
        raise OutputError(
            f"{path}: is the current folder or one above it; name a new folder for the {kind}"
        )
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder")
    _refuse_inside_output(path, f"a folder outside it for the {kind}")
    if path.is_dir():
        why = _foreign(path, kind)
        if why is not None and not force:
            raise OutputError(
                f"{path}: {why}; choose another folder, or pass --force to replace it"
            )
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, not a folder")
    _probe_writable(parent, path)
    return path


def _refuse_inside_output(path: Path, instead: str) -> None:
    """Refuse ``path`` below an irt-bayes output folder: writing there breaks that output."""
    for parent in path.resolve().parents:
        kind = output_kind(parent)
        if kind is not None:
            raise OutputError(f"{path}: lies inside the irt-bayes {kind} {parent}; name {instead}")


def check_output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that a single output file (a CSV) can be written at ``path``, before work starts.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    inputs : iterable of str or os.PathLike, optional
        The files the command reads: ``path`` must not be one of them.

    Raises
    ------
    OutputError
        When ``path`` is a folder, is one of ``inputs``, lies inside an irt-bayes output
        folder (a saved router: replacing one of its files breaks it), or its folder
        does not exist or is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; name a file to write")
    if any(Path(i).resolve() == path.resolve() for i in inputs):
        raise OutputError(f"{path}: is also an input of this command; name another file")
    _refuse_inside_output(path, "a file outside it")
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"{path}: folder {parent} does not exist")
    _probe_writable(parent, path)
    return path


def write_file(path: str | os.PathLike, write) -> Path:
    """Write one file through a temporary file beside it, renamed into place.

    ``write`` receives the open text file. An error or interrupt leaves ``path`` as it was.
    """
    path = check_output_file(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            write(fh)
        _share(Path(tmp))
        with interrupts.deferred():
            interrupts.raise_if_received()
            os.replace(tmp, path)
            interrupts.note_written(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share(path: Path) -> None:
    # mkdtemp/mkstemp make private (0700/0600) entries; outputs are meant to be shared.
    path.chmod((0o777 if path.is_dir() else 0o666) & ~_umask())


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (POSIX advisory lock; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _clean_stale(parent: Path, name: str) -> None:
    """Remove temporary folders of ``name`` left by dead processes (marker checked)."""
    for tmp in parent.glob(f".{glob.escape(name)}.*{_TMP_SUFFIX}"):
        try:
            pid = int(tmp.name[: -len(_TMP_SUFFIX)].rsplit(".", 1)[-1])
            meta = json.loads((tmp / MARKER).read_text())
        except (ValueError, OSError):
            continue  # not ours: never touched
        if isinstance(meta, dict) and meta.get("kind") in KINDS and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, kind: str = "router", *, force: bool = False
) -> Iterator[Path]:
    """Write a ``kind`` output folder under a temporary name, then swap it in at ``path``.

    Yields the temporary folder to fill. On success it replaces ``path``; on any error
    or interrupt the temporary folder is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Target folder.
    kind : str, default "router"
        What is written (one of :data:`KINDS`); recorded in the marker file.
    force : bool, default False
        Replace an existing folder irt-bayes did not write.

    Raises
    ------
    OutputError
        The target is not writable or holds something else (see :func:`check_output_dir`).

    See Also
    --------
    check_output_dir : the same checks, run before long work.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> with atomic_directory(target, "compare") as tmp:
    ...     _ = (tmp / "compare.csv").write_text("done")
    >>> (target / "compare.csv").read_text()
    'done'
    """
    path = check_output_dir(path, kind, force=force)
    parent = path.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent):
        _clean_stale(parent, path.name)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.", suffix=f".{os.getpid()}{_TMP_SUFFIX}", dir=parent)
    )
    try:
        from irt_bayes.persistence import package_version

        marker = {"kind": kind, "package_version": package_version()}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n")
        yield tmp
        for p in (tmp, *tmp.rglob("*")):
            _share(p)
        with _locked(parent):
            # checked again under the lock: another writer may have put something there
            check_output_dir(path, kind, force=force)
            with interrupts.deferred():
                interrupts.raise_if_received()
                if path.exists() and _exchange(tmp, path):
                    shutil.rmtree(tmp, ignore_errors=True)  # now the old output
                elif path.exists():
                    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
                    path.rename(old / "old")
                    tmp.rename(path)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    tmp.rename(path)
                interrupts.note_written(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
