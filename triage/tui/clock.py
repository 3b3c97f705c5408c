"""The time the screens show the world at: now (live) or a chosen instant (as of).

Every snapshot is computed as of `Clock.now()`; the screens never read the system clock. A
replay clock (issue 7) is one more `Clock`: a time that moves at a chosen speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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


SPEEDS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0, 7 * 86400.0)


@dataclass
class ReplayClock:
    """A clock moving through logged traffic at `speed` clock seconds per real second.

    No ingest; labels only up to the clock (the `--at` semantics at every tick). The app moves it
    (`advance` by the real time a tick took, `seek`, `faster`/`slower`); it stops at `end`.
    """

    start: datetime
    end: datetime
    speed: float
    at: datetime | None = None
    source: Callable[[], datetime] = field(default=utc_now)
    step: timedelta = timedelta(hours=1)  # `[`/`]` before the first snapshot names the model's window
    # Ascending times a tick stops at rather than step over: where a feed's silence crossed a rule's
    # threshold or ended (`replay.silence_times`).
    stops: tuple[datetime, ...] = ()

    def __post_init__(self) -> None:
        if self.at is None:
            self.at = self.start

    @property
    def mode(self) -> str:
        return "replay"

    @property
    def live(self) -> bool:
        return False

    def now(self) -> datetime:
        assert self.at is not None
        return self.at

    def wall(self) -> datetime:
        return self.source()

    @property
    def finished(self) -> bool:
        return self.now() >= self.end

    def seek(self, at: datetime) -> datetime:
        """Move to `at`, kept within [start, end]; returns where the clock is."""
        self.at = max(self.start, min(self.end, at))
        return self.at

    def advance(self, real: timedelta) -> datetime:
        """Move forward by `real` × speed, or to the first of `stops` on the way."""
        now, target = self.now(), self.now() + real * self.speed
        return self.seek(next((at for at in self.stops if now < at < target), target))

    def faster(self) -> float:
        """The next speed up the ladder (1x … 1w/s)."""
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])
        return self.speed

    def slower(self) -> float:
        """The next speed down the ladder."""
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])
        return self.speed


def speed_text(speed: float) -> str:
    """A speed as a person says it: 60x, 1h/s, 1d/s."""
    for size, unit in ((86400.0, "d"), (3600.0, "h"), (60.0, "m")):
        if speed >= size and speed % size == 0:
            return f"{speed / size:g}{unit}/s"
    return f"{speed:g}x"
