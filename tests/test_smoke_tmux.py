"""The real `triage` command in a real terminal (tmux) on a copy of the committed fixture: the home
screen, a panel switch, `q` quits cleanly, and closing the terminal (SIGHUP, as when SSH drops)
ends the process and frees the store.

The first live refresh ingests the fixture and evaluates it; both tests act while it runs, so they
also show that the UI never waits for it (the panels' contents are covered by the Pilot tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "demo-small"
TRIAGE = Path(sys.executable).with_name("triage")
TIMEOUT_S = 30.0

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """A private tmux server (its own socket) with one 80x24 session."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=10
        )
        return result.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "smoke")

    def wait_for(self, *texts: str) -> str:
        """Poll the pane until every one of `texts` shows (a real terminal has no event to wait
        on, and a screen paints a title a frame before the table under it)."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{texts!r} never all appeared; the screen was:\n{self.screen()}")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """A copy of the committed small fixture (logs and config, no store yet); returns its config."""
    shutil.copytree(FIXTURE, tmp_path / "demo", ignore=shutil.ignore_patterns("*.duckdb*"))
    return tmp_path / "demo" / "triage.toml"


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"triage-smoke-{os.getpid()}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True, timeout=10)


def start(tmux: Tmux, command: str, cwd: Path) -> None:
    env = {"TERM": "xterm-256color", "COLORTERM": ""}
    flags = [f"-e{key}={value}" for key, value in env.items()]
    tmux.run("new-session", "-d", "-s", "smoke", "-x", "80", "-y", "24", "-c", str(cwd), *flags, command)


def test_home_then_drift_then_q_exits_cleanly(demo: Path, tmux: Tmux) -> None:
    start(tmux, f"{TRIAGE} --config {demo} ; echo EXIT=$? ; sleep 60", demo.parent)
    tmux.wait_for("p95 ms", "LIVE", "as of", "Home", "drift  calib  perf  labels", "? Help")
    tmux.run("send-keys", "-t", "smoke", "2")
    tmux.wait_for("Drift · ", "PSI", "s Sort")
    tmux.run("send-keys", "-t", "smoke", "q")
    screen = tmux.wait_for("EXIT=")
    assert "EXIT=0" in screen
    assert "Traceback" not in screen


def test_closing_the_terminal_ends_triage_and_frees_the_store(demo: Path, tmux: Tmux) -> None:
    start(tmux, f"exec {TRIAGE} --config {demo}", demo.parent)
    tmux.wait_for("p95 ms")
    pid = int(tmux.run("display-message", "-p", "-t", "smoke", "#{pane_pid}").strip())
    tmux.run("kill-session", "-t", "smoke")  # the terminal goes away: SIGHUP
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("triage kept running after its terminal closed")
    duckdb.connect(str(demo.parent / "triage.duckdb")).close()  # the write lock was released


def test_replay_in_a_real_terminal_pauses_steps_and_shows_the_timeline(demo: Path, tmux: Tmux) -> None:
    ingest = [str(TRIAGE), "--config", str(demo), "ingest"]
    subprocess.run(ingest, check=True, capture_output=True, timeout=120)
    start(tmux, f"{TRIAGE} --config {demo} replay --speed 1h/s ; echo EXIT=$? ; sleep 60", demo.parent)
    home = tmux.wait_for("fraud  v1", "REPLAY", "1h/s")  # the first snapshot is on screen
    assert "LIVE" not in home
    tmux.run("send-keys", "-t", "smoke", "Space")
    tmux.wait_for("PAUSED")
    tmux.run("send-keys", "-t", "smoke", "End")
    tmux.wait_for("as of 2026-01-14 23:59Z")  # the fixture's last prediction
    tmux.run("send-keys", "-t", "smoke", "Home")
    tmux.wait_for("as of 2026-01-05 00:00Z")  # the end of its reference period
    tmux.run("send-keys", "-t", "smoke", "]")
    tmux.wait_for("as of 2026-01-06 00:00Z")  # one 1d window on
    tmux.run("send-keys", "-t", "smoke", "7")
    tmux.wait_for("Timeline · ", " time ", " kind ")  # its table of events, empty or not
    tmux.run("send-keys", "-t", "smoke", "q")
    assert "EXIT=0" in tmux.wait_for("EXIT=")
