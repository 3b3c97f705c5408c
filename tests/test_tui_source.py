"""The engine-backed TUI source against a real DuckDB store: closing while a refresh still runs (the
terminal went away mid-refresh) interrupts it and returns, instead of deadlocking in DuckDB."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import duckdb

from triage.config import load_config
from triage.tui.source import CLOSE_WAIT_S, EngineSource

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "demo-small"


def test_closing_during_a_long_refresh_interrupts_it_and_returns(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "demo")
    source = EngineSource(load_config(tmp_path / "demo" / "triage.toml"))
    running = threading.Event()
    outcome: list[str] = []

    def refresh() -> None:  # what a snapshot worker does: queries with Python work between them
        with source._engine_lock:
            cursor = source.store.cursor()
            running.set()
            for _ in range(3):
                try:
                    cursor.execute("SELECT count(*) FROM range(10000000000) a, range(10) b").fetchall()
                    outcome.append("finished")
                except duckdb.Error as exc:
                    outcome.append(type(exc).__name__)
                time.sleep(0.3)

    worker = threading.Thread(target=refresh)
    worker.start()
    assert running.wait(10)
    time.sleep(0.2)  # the first query is running
    started = time.monotonic()
    source.interrupt()
    source.close()
    assert time.monotonic() - started < CLOSE_WAIT_S + 1
    worker.join(10)
    assert not worker.is_alive()
    # Each later query was interrupted too (not run to the end), and never ran on a connection
    # closed under it (which is where DuckDB deadlocks).
    assert outcome == ["InterruptException"] * 3
