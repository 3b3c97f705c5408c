"""Small timing helpers shared by the benchmarks: best-of-N wall time, and a subprocess's peak RSS."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of repeated runs of the same work; `best` is what ratios use."""

    runs_s: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs_s)

    @property
    def median(self) -> float:
        return statistics.median(self.runs_s)

    def to_json(self) -> dict[str, Any]:
        return {"best_s": self.best, "median_s": self.median, "runs_s": list(self.runs_s)}


# Repeats stop once a measurement has taken this long: one run of minutes is already stable.
REPEAT_BUDGET_S = 120.0


def best_of(
    repeats: int,
    work: Callable[[], object],
    prepare: Callable[[], object] | None = None,
    budget_s: float = REPEAT_BUDGET_S,
) -> tuple[Timing, object]:
    """Run `work` up to `repeats` times (fewer once `budget_s` is spent); timings and the last result.

    `prepare` runs before each run, outside the timing (e.g. restoring a fresh copy of a store).
    """
    runs: list[float] = []
    result: object = None
    for _ in range(max(1, repeats)):
        if runs and sum(runs) >= budget_s:
            break
        if prepare is not None:
            prepare()
        started = time.perf_counter()
        result = work()
        runs.append(time.perf_counter() - started)
    return Timing(tuple(runs)), result


@dataclass(frozen=True)
class ProcessRun:
    """A finished subprocess: exit status, wall time and its own peak resident memory.

    When it was stopped at its time limit, `timed_out` is set and both figures are lower bounds.
    """

    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: Path
    stderr: Path
    timed_out: bool = False


def run_measured(
    command: Sequence[str],
    stdout: Path,
    stderr: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> ProcessRun:
    """Run `command` with output to files; wall time and peak RSS of that process alone.

    `os.wait4` returns the child's own `rusage` (ru_maxrss in KiB on Linux), so other children
    of this process do not blur it, unlike a `RUSAGE_CHILDREN` maximum.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    timed_out = False
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(command), stdout=out, stderr=err, env=None if env is None else dict(env), cwd=cwd
        )
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait
    return ProcessRun(process.returncode, wall, usage.ru_maxrss / 1024, stdout, stderr, timed_out)


def load_average() -> float | None:
    """The 1-minute load average: above the CPU count, other work shared the CPUs with a measurement."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
