"""The time the screens show the world at: now (live) or a chosen instant (as of).

Every snapshot is computed as of `Clock.now()`; the screens never read the system clock. A
replay clock (issue 7) is one more `Clock`: a time that moves at a chosen speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


def utc_now() -> datetime:
    """The current wall-clock time, aware UTC."""
    return datetime.now(UTC)


class Clock(Protocol):
    """Where the screens are in time."""

    @property
    def mode(self) -> str:
        """ "live" (ingest new rows, refresh on a cadence) or another mode name for the top line."""
        ...

    @property
    def live(self) -> bool:
        """Whether new log rows are ingested on each refresh."""
        ...

    def now(self) -> datetime:
        """The as-of time of the next snapshot (aware UTC)."""
        ...

    def wall(self) -> datetime:
        """The real time, for "last refresh" (aware UTC)."""
        ...


@dataclass(frozen=True)
class LiveClock:
    """Now is now; `source` is injectable so tests can freeze it."""

    source: Callable[[], datetime] = field(default=utc_now)

    @property
    def mode(self) -> str:
        return "live"

    @property
    def live(self) -> bool:
        return True

    def now(self) -> datetime:
        return self.source()

    def wall(self) -> datetime:
        return self.source()


@dataclass(frozen=True)
class FixedClock:
    """The world as it looked at `at`: no ingest, labels only up to `at` (the `--at` semantics)."""

    at: datetime
    source: Callable[[], datetime] = field(default=utc_now)

    @property
    def mode(self) -> str:
        return "as of"

    @property
    def live(self) -> bool:
        return False

    def now(self) -> datetime:
        return self.at

    def wall(self) -> datetime:
        return self.source()
