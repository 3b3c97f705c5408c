"""Command-line values: a mistake is one usage line with the command's status, never a traceback."""

from __future__ import annotations

import pytest

from triage.cli import main


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line `triage check` says for a bad argument (exit 3: its 2 means a critical alert)."""
    with pytest.raises(SystemExit) as usage:
        main(["check", *argv])
    assert usage.value.code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("triage check: "), err
    return err


@pytest.mark.parametrize("size", ["1d ", " 1d", "1 mo", "\uff11d", "1d\n"])
def test_a_window_is_ascii_digits_and_its_unit(capsys: pytest.CaptureFixture[str], size: str) -> None:
    err = usage_error(capsys, "--window", size)
    assert f"expected a window like 1h, 6h, 1d, 7d, 1w or 1mo (at most ten years), got {size!r}" in err
