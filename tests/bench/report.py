"""Plain-text tables and the target verdicts the benchmarks print."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A fixed-width text table; columns whose index is in `right` are right-aligned."""
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def short(message: str, limit: int = 400) -> str:
    """The first line of an error, cut at `limit` characters (some DuckDB errors list hundreds of ids)."""
    line = message.splitlines()[0] if message else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def times(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}×" if value < 10 else f"{value:.0f}×"


@dataclass(frozen=True)
class Target:
    """A DESIGN §8 target and how the measurement compares: `measured` op `goal`."""

    name: str
    measured: float | None
    op: str  # ">=" or "<"/"<="
    goal: float
    unit: str = "×"
    lower_bound: bool = False  # the work was stopped: the true value is larger

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        if self.op == ">=":
            return self.measured >= self.goal
        if self.op == "<":
            return self.measured < self.goal
        return self.measured <= self.goal

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[self.met]

    def goal_text(self) -> str:
        op = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        return f"{op} {self.goal:g}{self.unit}" if self.unit == "×" else f"{op} {self.goal:g} {self.unit}"

    def measured_text(self) -> str:
        if self.measured is None:
            return "–"
        bound = "> " if self.lower_bound else ""
        if self.unit == "×":
            return bound + times(self.measured)
        number = f"{self.measured:,.1f}" if self.measured < 100 else f"{self.measured:,.0f}"
        return f"{bound}{number} {self.unit}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "op": self.op,
            "goal": self.goal,
            "met": self.met,
        }


def targets_table(targets: Sequence[Target]) -> str:
    rows = [(t.name, t.measured_text(), t.goal_text(), t.verdict) for t in targets]
    return table(("target (DESIGN §8)", "measured", "goal", ""), rows, right=(1,))


def verdict(targets: Sequence[Target]) -> bool | None:
    """True if every target was met, False if one was missed, None if one could not be measured."""
    results = [t.met for t in targets]
    if False in results:
        return False
    return None if None in results or not results else True
