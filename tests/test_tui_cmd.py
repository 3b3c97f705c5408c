"""`triage ui` and the bare `triage`: options are checked before any terminal is touched."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from triage.cli import main

FIXTURE_CONFIG = Path(__file__).resolve().parent.parent / "fixtures" / "demo-small" / "triage.toml"


def test_refresh_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(FIXTURE_CONFIG), "ui", "--refresh", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive number of seconds" in capsys.readouterr().err


def test_unknown_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(FIXTURE_CONFIG), "ui", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no model named 'nope'" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["ui"], []], ids=["ui", "no-command"])
def test_without_a_terminal_it_says_what_to_use(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO())  # even under `pytest -s` in a terminal
    assert main(["--config", str(FIXTURE_CONFIG), *argv]) == 2
    assert "needs a terminal" in capsys.readouterr().err


def test_bad_time_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--config", str(FIXTURE_CONFIG), "ui", "--at", "yesterday"])
    assert "expected an ISO time" in capsys.readouterr().err
