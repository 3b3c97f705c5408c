"""argparse types shared by the commands: each turns a mistake into one line saying what was expected."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from triage.config import WINDOW_EXPECTED, Window, parse_duration, parse_time, parse_window
from triage.printable import without_credentials

# Windows (up to ten years) are counted on from an as-of time: it must leave them room in the calendar.
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def time_arg(text: str) -> datetime:
    """An ISO time (UTC if no zone) before the year 9000 → aware UTC datetime."""
    try:
        value = parse_time(text)
    except ValueError:
        value = None
    if value is None or value >= LATEST_TIME:
        raise argparse.ArgumentTypeError(
            f"expected an ISO time like 2026-01-31T12:00Z, before the year 9000, got {text!r}"
        )
    return value


def up_to_now(option: str, value: datetime | None) -> datetime | None:
    """`value`, or now when it is later, said on stderr: nothing after now has been logged, and a
    replay to a mistyped year (2090) would step through decades of empty windows."""
    now = datetime.now(UTC)
    if value is None or value <= now:
        return value
    print(f"triage: {option} {value:%Y-%m-%d %H:%M} UTC is after now; ending now ({now:%Y-%m-%d %H:%M} UTC)",
          file=sys.stderr)  # fmt: skip
    return now


def window_arg(text: str) -> Window:
    """A window size: 1h, 6h, 1d, 7d, 1w, 1mo, any N h, d, w or mo."""
    try:
        return parse_window(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {WINDOW_EXPECTED}, got {text!r}") from None


def positive_int(text: str) -> int:
    """A whole number above zero."""
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


# The most windows `--last` takes: DuckDB counts them back from T as a 32-bit integer.
MAX_WINDOWS = 1_000_000


def window_count(text: str) -> int:
    """A number of windows: 1 to MAX_WINDOWS."""
    if not text.isdigit() or not 0 < int(text) <= MAX_WINDOWS:
        raise argparse.ArgumentTypeError(
            f"expected a number of windows from 1 to {MAX_WINDOWS:,}, got {text!r}"
        )
    return int(text)


def _positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number above zero (a speed)."""
    return _positive(text, "number")


def seconds_arg(text: str) -> float:
    """A number of seconds above zero (an interval)."""
    return _positive(text, "number of seconds")


def duration_arg(text: str) -> timedelta:
    """A duration like 30m, 1h, 1d."""
    value = parse_duration(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 1h or 1d, got {text!r}")
    return value


def speed_arg(text: str) -> float:
    """A replay speed as clock seconds per real second: `60x`, or a duration per second (`1h/s`)."""
    stripped = text.strip()
    if stripped.endswith("x"):
        try:
            value = float(stripped[:-1])
        except ValueError:
            value = 0.0
        if value > 0:
            return value
    elif stripped.endswith("/s"):
        duration = parse_duration(stripped[:-2])
        if duration is not None:
            return duration.total_seconds()
    raise argparse.ArgumentTypeError(f"expected a speed like 60x or 1h/s, got {text!r}")


def http_url(text: str) -> str:
    """An http or https URL with a host and, where one is given, a port from 1 to 65535."""
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == 0
        or any(character.isspace() for character in text)
    ):
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL with a host and a port from 1 to 65535 if any, like "
            f"http://localhost:9093, got {without_credentials(text)!r}"
        )
    return text
