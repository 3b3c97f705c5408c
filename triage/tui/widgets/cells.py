"""Styled table cells. Colours are exact xterm-256 entries, and every colour also has a word or a
number next to it, so the panels read the same without truecolor or without colour at all."""

from __future__ import annotations

from rich.text import Text

from triage.metrics.results import DriftRow
from triage.tui import format as fmt
from triage.tui.views import drift_level

CRIT = "bold #ffffff on #af0000"
WARN = "bold #000000 on #d7af00"
OK = "#5faf5f"
DIM = "#808080"

_STATUS = {
    "crit": ("CRIT", CRIT),
    "warn": ("WARN", WARN),
    "ok": ("ok", OK),
    "n/a": ("n/a", DIM),
}
_PSI = {"crit": CRIT, "warn": WARN, "watch": "bold #d7af00", "ok": OK, "none": DIM}
_SEVERITY = {"critical": ("CRIT", CRIT), "warning": ("WARN", WARN)}


def status(level: str, text: str | None = None) -> Text:
    """A status badge (CRIT / WARN / ok / n/a), optionally showing `text` in the status colour."""
    word, style = _STATUS.get(level, (level, DIM))
    return Text(text if text is not None else word, style=style, justify="center")


def severity(name: str) -> Text:
    """CRIT or WARN, coloured."""
    word, style = _SEVERITY.get(name, (name.upper()[:4], DIM))
    return Text(word, style=style, justify="center")


def psi(row: DriftRow | None) -> Text:
    """A heat-grid cell: the PSI coloured by the cell's level (`drift_level`: a large KS D too), or
    "–" when the cell has too little data."""
    level = drift_level(row)
    value = fmt.MISSING if level == "none" or row is None else f"{row.psi:.2f}"
    return Text(value, style=_PSI[level], justify="right")


def hot(text: str, alerting: bool) -> Text:
    """A number, red when an alert fires on it."""
    return Text(text, style=CRIT if alerting else "", justify="right")


def right(text: str, style: str = "") -> Text:
    """A right-aligned cell."""
    return Text(text, style=style, justify="right")
