"""Output folders: never over what irt-bayes did not write, atomic, serialised, interruptible."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from irt_bayes import interrupts
from irt_bayes.cli import main
from irt_bayes.errors import OutputError
from irt_bayes.outputs import MARKER, atomic_directory, check_output_dir, output_kind


def _write(target: Path, kind: str = "router", tag: str = "a", **kw) -> None:
    with atomic_directory(target, kind, **kw) as tmp:
        (tmp / "router.json").write_text(tag)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "part.txt").write_text(tag)


def _user_folder(tmp_path: Path) -> Path:
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "precious.txt").write_text("keep me")
    (out / "sub" / "notes.md").write_text("mine too")
    return out


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_new_folder_gets_a_marker_and_is_replaced_whole(tmp_path):
    out = tmp_path / "deep" / "out"
    _write(out, tag="a")
    assert output_kind(out) == "router"
    assert json.loads((out / MARKER).read_text())["kind"] == "router"
    _write(out, tag="b")
    assert (out / "router.json").read_text() == "b"
    assert (out / "sub" / "part.txt").read_text() == "b"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no temporary left


def test_a_folder_irt_bayes_did_not_write_is_refused(tmp_path):
    out = _user_folder(tmp_path)
    with pytest.raises(OutputError, match="precious.txt.*--force"):
        _write(out)
    assert (out / "precious.txt").read_text() == "keep me"
    assert (out / "sub" / "notes.md").read_text() == "mine too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_force_replaces_it(tmp_path):
    out = _user_folder(tmp_path)
    _write(out, force=True)
    assert not (out / "precious.txt").exists() and output_kind(out) == "router"


def test_another_kind_of_output_is_refused(tmp_path):
    out = tmp_path / "out"
    _write(out, kind="report")
    with pytest.raises(OutputError, match="holds an irt-bayes report, not a router"):
        _write(out, kind="router")


def test_an_unmarked_router_of_an_older_version_is_recognised(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    for name in ("router.json", "posterior.nc", "arrays.npz"):
        (out / name).write_text("x")
    assert output_kind(out) == "router"
    _write(out)
    assert (out / MARKER).is_file()


def test_path_problems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for bad in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="current folder"):
            check_output_dir(bad, "router")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_dir(tmp_path / "file", "router")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "file" / "out", "router")
    with pytest.raises(OutputError, match="cannot write"):
        check_output_dir("/proc/self/irt-bayes-out", "router")  # read-only, even for root


def test_an_error_while_writing_leaves_the_old_output(tmp_path):
    out = tmp_path / "out"
    _write(out, tag="a")
    with pytest.raises(RuntimeError), atomic_directory(out, "router") as tmp:
        (tmp / "router.json").write_text("half")
        raise RuntimeError("disk full")
    assert (out / "router.json").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporaries_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".out.abc.{pid}.irt-bayes-tmp"
    stale.mkdir()
    (stale / MARKER).write_text(json.dumps({"kind": "router"}))
    unmarked = tmp_path / f".out.xyz.{pid}.irt-bayes-tmp"  # same pattern, no marker: not ours
    unmarked.mkdir()
    alive = tmp_path / f".out.def.{os.getpid()}.irt-bayes-tmp"  # a live writer's
    alive.mkdir()
    (alive / MARKER).write_text(json.dumps({"kind": "router"}))
    _write(out)
    assert not stale.exists()
    assert unmarked.exists() and alive.exists()


def _read_at(dir_fd: int, name: str, close: bool = False) -> str:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)
        if close:
            os.close(dir_fd)


def _writer(target: str, tag: str, rounds: int) -> None:
    for _ in range(rounds):
        _write(Path(target), tag=tag)


def test_concurrent_writers_never_leave_a_moment_without_a_complete_output(tmp_path):
    out = tmp_path / "out"
    _write(out, tag="first")
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            # every look finds a complete output (both files from one writer); the folder
            # is opened once so that both reads see the same version of it
            fd = os.open(out, os.O_RDONLY)
            try:
                a = _read_at(fd, "router.json")
                b = _read_at(os.open("sub", os.O_RDONLY, dir_fd=fd), "part.txt", close=True)
            except FileNotFoundError:
                # the version this look opened was swapped out and is being deleted: a
                # new look finds the current one (a reader without a held fd never sees it)
                continue
            except BaseException as exc:
                errors.append(exc)
                return
            finally:
                os.close(fd)
            seen.append(a if a == b else f"torn {a}/{b}")

    reader = threading.Thread(target=read)
    reader.start()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(out), f"w{i}", 15)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    stop.set()
    reader.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert not errors
    assert seen and not [s for s in seen if s.startswith("torn")]
    assert (out / "router.json").read_text() in {f"w{i}" for i in range(4)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_swallowed_interrupt_still_stops_the_write(tmp_path):
    # PyMC catches KeyboardInterrupt in ADVI and returns; the recorded signal must still win
    out = tmp_path / "out"
    with interrupts.handling():
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what PyMC does
        assert interrupts.received() == signal.SIGINT
        with pytest.raises(interrupts.Interrupted):
            _write(out)
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "DATA", "--out", "OUT"],
        ["evaluate", "ROUTER", "DATA", "--out", "OUT"],
        ["report", "ROUTER", "--out", "OUT"],
        ["compare", "ROUTER", "ROUTER", "--out", "OUT"],
        ["demo", "--out", "OUT"],
    ],
    ids=lambda a: a[0],
)
def test_cli_refuses_a_user_folder_before_any_work(tmp_path, capsys, argv):
    out = _user_folder(tmp_path)
    place = {"OUT": str(out), "DATA": str(tmp_path / "d.csv"), "ROUTER": str(tmp_path / "r")}
    args = [place.get(a, a) for a in argv]
    assert main(args) == 2
    _one_error_line(capsys, str(out), "did not write", "--force")
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt", "sub"]


@pytest.mark.parametrize("cmd", ["predict", "route"])
def test_cli_checks_an_output_file_before_loading(tmp_path, capsys, cmd):
    knob = ["--alpha", "0.5"] if cmd == "route" else []
    assert main([cmd, str(tmp_path / "no-router"), "q.csv", "--out", str(tmp_path), *knob]) == 2
    _one_error_line(capsys, "is a folder")
    assert main([cmd, "r", "q.csv", "--out", str(tmp_path / "none" / "p.csv"), *knob]) == 2
    _one_error_line(capsys, "does not exist")


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_interrupt_after_the_output_is_in_place_does_not_say_nothing_written(
    tmp_path, capsys, monkeypatch, kind
):
    import argparse

    import irt_bayes.cli as cli
    from irt_bayes.outputs import write_file

    out = tmp_path / ("d.csv" if kind == "file" else "router")

    def command(args: argparse.Namespace) -> int:
        if kind == "file":
            write_file(out, lambda fh: fh.write("done\n"))
        else:
            _write(out)
        raise interrupts.Interrupted(signal.SIGINT)  # e.g. while the table is printed

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=command, out=str(out))
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert main([]) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"irt-bayes: interrupted (SIGINT) after writing {out} (complete)"
    assert out.exists()

    def nothing(args: argparse.Namespace) -> int:
        raise interrupts.Interrupted(signal.SIGINT)

    parser.set_defaults(func=nothing)  # a later command starts with a clean record
    assert main([]) == 130
    assert capsys.readouterr().err.strip().endswith(f"nothing written to {out}")
