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


def test_a_rule_that_cannot_run_is_named_before_the_ui_opens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in an alert rule used to open the UI with every refresh failing; it is the config's
    mistake, named (file, key, expected) before any terminal is touched."""
    config = tmp_path / "triage.toml"
    text = FIXTURE_CONFIG.read_text(encoding="utf-8").replace('"logs/', f'"{FIXTURE_CONFIG.parent}/logs/')
    config.write_text(text + '\n[[model.alert]]\nname = "typo"\nsignal = "drift.pssi"\nwarn = 0.2\n')
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert main(["--config", str(config), "ui"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"triage: {config}: model[0].alert[0].signal: drift has no numeric field 'pssi'")
    assert "needs a terminal" not in err and "Traceback" not in err
