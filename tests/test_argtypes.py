"""Command-line values: a mistake is one usage line with the command's status, never a traceback."""

from __future__ import annotations

import pytest

from triage.cli import main
from triage.commands.argtypes import http_url


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


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://localhost:99999",
        "http://localhost:0",
        "http://localhost:port",
        "ftp://am:9093",
        "localhost:9093",
        "http://:9093",
        "http://alert manager:9093",
    ],
)
def test_an_alertmanager_url_is_checked_when_the_option_is_read(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """Before anything is evaluated: with no alert to push, a bad URL would never be tried."""
    err = usage_error(capsys, "--push-alertmanager", url)
    assert "expected an http(s) URL with a host and a port from 1 to 65535 if any" in err
    assert f"got {url!r}" in err


def test_a_bad_alertmanager_url_is_named_without_its_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "--push-alertmanager", "http://oncall:s3cret@[::1")
    assert "got 'http://***@[::1'" in err and "s3cret" not in err


@pytest.mark.parametrize("url", ["http://localhost:9093", "https://[::1]:9093/", "http://am.internal"])
def test_an_alertmanager_url_that_can_be_posted_to(url: str) -> None:
    assert http_url(url) == url
