"""The first minutes of a new user: a fast CLI, help for every option, progress lines."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from irt_bayes import glossary, progress
from irt_bayes.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pymc", "pytensor", "arviz", "torch", "sentence_transformers", "matplotlib", "pandas")


def _modules_after(argv: list[str]) -> dict:
    """Run the CLI in a fresh interpreter; return its exit status and heavy imports."""
    code = (
        "import json, sys\n"
        "from irt_bayes.cli import main\n"
        "try:\n"
        f"    status = main({argv!r})\n"
        "except SystemExit as e:\n"
        "    status = e.code\n"
        f"print(json.dumps({{'status': status, 'heavy': [m for m in {HEAVY!r} "
        "if m in sys.modules]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["route", "--help"]])
def test_version_and_help_import_nothing_heavy(argv: list[str]) -> None:
    got = _modules_after(argv)
    assert got == {"status": 0, "heavy": []}


def test_import_irt_bayes_is_lazy() -> None:
    code = (
        "import sys, irt_bayes\n"
        "assert 'pymc' not in sys.modules and 'arviz' not in sys.modules\n"
        "assert irt_bayes.__version__\n"
        "irt_bayes.load_spec\n"
        "assert 'pymc' not in sys.modules\n"
        "from irt_bayes import IRTRouter\n"
        "assert 'pymc' in sys.modules\n"
        "assert sorted(irt_bayes.__all__) == sorted(irt_bayes._EXPORTS)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_describe_data_does_not_import_the_model(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text("query_id,query,llm,score\nq1,a,m1,1\nq1,a,m2,0\nq2,b,m1,0\nq2,b,m2,1\n")
    got = _modules_after(["describe", str(f)])
    assert got["status"] == 0
    assert not {"pymc", "pytensor", "arviz", "torch"} & set(got["heavy"])


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help_and_shows_its_default(name: str) -> None:
    parser = _subcommands()[name]
    assert parser.description and parser.description.endswith(".")
    text = " ".join(parser.format_help().split())  # undo the wrapping
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.dest}: no help"
        default = action.default
        if action.option_strings and default not in (None, False):
            shown = f"default: {default}" in text or "default" in action.help
            assert shown, f"{name} {action.option_strings[0]}: default {default!r} not shown"


def test_every_command_that_writes_a_table_defines_its_columns() -> None:
    for name, cols in glossary.COLUMNS.items():
        text = _subcommands()[name].format_help()
        for col in cols:
            assert f"  {col} " in text, f"{name} --help does not define {col}"


def test_route_columns_are_the_ones_route_writes() -> None:
    from irt_bayes.routing import CHOICE_COLUMNS

    assert list(glossary.COLUMNS["route"]) == list(CHOICE_COLUMNS)


def test_readme_output_columns_are_the_glossary() -> None:
    readme = (ROOT / "README.md").read_text()
    assert glossary.markdown() in readme, "README's Output columns: regenerate from glossary"


# ------------------------------------------------------------------------- progress
def test_ticker_writes_plain_lines() -> None:
    out = io.StringIO()
    t = progress.Ticker("ADVI", 8000, unit="step", stream=out, every=0.0)
    t.set(2000, "loss 12.5")
    t.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("irt-bayes: ADVI: 2,000/8,000 steps (25%), ")
    assert lines[0].endswith("loss 12.5")
    assert len(lines) == 2 and "\r" not in out.getvalue()


def test_ticker_waits_between_lines() -> None:
    out = io.StringIO()
    t = progress.Ticker("embedding", 100, unit="text", stream=out, every=3600.0)
    for _ in range(100):
        t.update()
    assert out.getvalue() == ""  # nothing until the interval has passed, or close
    t.close()
    assert out.getvalue().count("\n") == 1


def test_heartbeat_outside_a_terminal() -> None:
    out = io.StringIO()
    with progress.Heartbeat("compiling", every=0.01, stream=out):
        import time

        time.sleep(0.1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "irt-bayes: compiling ..."
    assert any("still running" in x for x in lines[1:-1])
    assert lines[-1].startswith("irt-bayes: compiling: done in ")


def test_bar_is_a_ticker_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # fixed either way, so that `pytest -s` in a terminal tests the same thing
    monkeypatch.setattr(progress, "interactive", lambda stream=None: False)
    assert isinstance(progress.bar(10, "x", unit="text"), progress.Ticker)
    assert progress.bar(10, "x", unit="text", enabled=False) is None


def test_compile_notice_only_until_compiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(progress, "_marker", lambda: tmp_path / "compiledir" / "marker")
    progress.compile_notice()
    assert "compiling the model once" in capsys.readouterr().err
    progress.compiled()
    progress.compile_notice()
    assert capsys.readouterr().err == ""
    progress.compile_notice(enabled=False)
    assert capsys.readouterr().err == ""
