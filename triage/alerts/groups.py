"""Alerts that differ only in their slice, shown as one line.

A new category, a collapsed decision rate or a late label feed fires in every slice it reaches:
forty alerts that say one thing. The TUI's home screen and `triage check`'s text summary show
each such group once, under its all-traffic alert when that fires too (else the caller's pick:
the TUI its first in rank order, `check` the slice furthest past its threshold), with how many
other slices fire.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

SLICE_KEYS = ("segment", "segment_value")


def excess(value: float | None, threshold: float | None) -> float:
    """How far past its threshold an alert's value is, relative to the threshold (0 without either):
    among alerts of one severity, the one to read first."""
    if value is None or threshold is None:
        return 0.0
    return abs(value - threshold) / max(abs(threshold), 1e-12)


def unsliced(scope: Mapping[str, str]) -> bool:
    """Whether a scope covers all traffic of its version (no segment)."""
    return "segment" not in scope


def slice_groups(
    alerts: Iterable[T],
    scope: Callable[[T], Mapping[str, str]],
    key: Callable[[T], Hashable],
    rank: Callable[[T], Any] | None = None,
) -> list[tuple[T, int]]:
    """`alerts` grouped by `key` and their scope without the slice: per group its all-traffic
    member when it has one, else its first by `rank` (else in the given order), and how many
    others the group holds. Groups in the order of their first member."""
    groups: dict[Hashable, list[T]] = {}
    for alert in alerts:
        rest = tuple(sorted((k, v) for k, v in scope(alert).items() if k not in SLICE_KEYS))
        groups.setdefault((key(alert), rest), []).append(alert)
    return [
        (
            next((a for a in members if unsliced(scope(a))), None)
            or (min(members, key=rank) if rank else members[0]),
            len(members) - 1,
        )
        for members in groups.values()
    ]
