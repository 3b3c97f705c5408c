"""Small timing helpers shared by the benchmarks: best-of-N wall time, and a subprocess's peak RSS."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
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


# Runs the measured command as its own child and reports that child's rusage. Linux keeps
# ru_maxrss across fork+exec, so a command started straight from the benchmark (which may hold
# gigabytes of DuckDB buffers by then) would report the benchmark's own size; started from this
# small launcher, its peak RSS is its own.
_LAUNCHER = """
import json, os, subprocess, sys, time
report, timeout, command = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
started = time.perf_counter()
child = subprocess.Popen(command)
timed_out = False
while True:
    pid, status, usage = os.wait4(child.pid, os.WNOHANG)
    if pid:
        break
    if timeout > 0 and time.perf_counter() - started > timeout:
        timed_out = True
        child.kill()
        _, status, usage = os.wait4(child.pid, 0)
        break
    time.sleep(0.05)
wall = time.perf_counter() - started
with open(report, "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "wall_s": wall,
               "maxrss_kib": usage.ru_maxrss, "timed_out": timed_out}, out)
"""


def run_measured(
    command: Sequence[str],
    stdout: Path,
    stderr: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float | None = None,
) -> ProcessRun:
    """Run `command` with output to files; its wall time and the peak RSS of that process alone.

    The command runs under `_LAUNCHER`, which takes its `os.wait4` rusage (ru_maxrss in KiB on
    Linux): not blurred by other children, unlike `RUSAGE_CHILDREN`, nor by this process's size.
    Past `timeout_s` the launcher kills the command and reports what it used until then (lower
    bounds, `timed_out`).
    """
    report = stdout.with_name(stdout.name + ".rusage.json")
    report.unlink(missing_ok=True)
    with stdout.open("wb") as out, stderr.open("wb") as err:
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(report), str(timeout_s or 0), *command],
            stdout=out,
            stderr=err,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,  # its own process group: the safety net below kills both
        )
        try:
            launcher.wait(timeout=None if timeout_s is None else timeout_s + 60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    if not report.exists():
        raise RuntimeError(f"the measuring launcher failed (exit {launcher.returncode}): {tail(stderr)}")
    measured = json.loads(report.read_text())
    return ProcessRun(
        returncode=int(measured["code"]),
        wall_s=float(measured["wall_s"]),
        peak_rss_mb=measured["maxrss_kib"] / 1024,
        stdout=stdout,
        stderr=stderr,
        timed_out=bool(measured["timed_out"]),
    )


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
