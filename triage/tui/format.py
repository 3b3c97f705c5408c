"""Numbers and times as the panels print them: short, fixed width, "–" when there is no value."""

from __future__ import annotations

from datetime import UTC, datetime

from triage.alerts.rules import DURATION_SIGNALS, elapsed_text

MISSING = "–"


def count(value: int | None) -> str:
    """950, 12.3k, 4.56M."""
    if value is None:
        return MISSING
    if abs(value) < 1000:
        return str(value)
    if abs(value) < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.2f}M"


def pct(value: float | None, digits: int = 1) -> str:
    """A share as a percentage: 0.0234 → 2.3%."""
    return MISSING if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 2) -> str:
    """A plain number with `digits` decimals."""
    return MISSING if value is None else f"{value:.{digits}f}"


def sig(value: float | None) -> str:
    """A statistic or p-value in 3 significant digits (1.23e-05 for tiny p-values)."""
    if value is None:
        return MISSING
    if value != 0 and abs(value) < 0.001:
        return f"{value:.2e}"
    return f"{value:.3g}"


def signal_value(signal: str, value: float | None) -> str:
    """An alert's value or threshold: a silence (`feed.silence_s`, `.behind_s`) as a duration, else `sig`."""
    return duration(value) if signal in DURATION_SIGNALS else sig(value)


def ms(value: float | None) -> str:
    """Milliseconds without decimals above 10 ms."""
    if value is None:
        return MISSING
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def duration(seconds: float | None) -> str:
    """A duration in its two largest units: 3d 4h, 2h 10m, 45s."""
    return MISSING if seconds is None else elapsed_text(seconds)


def stamp(value: datetime | None) -> str:
    """An instant in UTC to the minute: 2026-01-15 14:05Z."""
    if value is None:
        return MISSING
    return (
        value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
        if value.tzinfo
        else value.strftime("%Y-%m-%d %H:%M")
    )


def window(start: datetime | None, size: str) -> str:
    """A window by its start: the day for day-or-longer windows, else the hour (UTC)."""
    if start is None:
        return MISSING
    return stamp(start) if size.endswith("h") else start.astimezone(UTC).strftime("%Y-%m-%d")


def clock(value: datetime) -> str:
    """A time of day in UTC: 14:05:09Z."""
    return value.astimezone(UTC).strftime("%H:%M:%SZ")


def tick(value: datetime, hourly: bool) -> str:
    """An axis label for a window start: 01-15, or 15T14 for hourly windows."""
    return value.strftime("%dT%H") if hourly else value.strftime("%m-%d")


def ci(value: float | None, low: float | None, high: float | None, as_pct: bool = True) -> str:
    """A value with its interval: 81.2% [78.0–84.1]."""
    if value is None:
        return MISSING
    shown = pct(value) if as_pct else num(value)
    if low is None or high is None:
        return shown
    scale = 100 if as_pct else 1
    return f"{shown} [{low * scale:.1f}–{high * scale:.1f}]"


def error_line(exc: BaseException) -> str:
    """An exception as one short line for the screen: its message, or its type when it has none."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]
