"""The store's DuckDB settings: a memory limit, spilling next to the store, no insertion order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from triage.store.db import MEMORY, MEMORY_LIMIT_ENV, Store, connect, default_memory_limit


def _settings(
    path: str | Path, read_only: bool = False, memory_limit: str | None = None
) -> tuple[str, str, bool]:
    con = connect(path, read_only, memory_limit=memory_limit)
    try:
        row = (
            con.cursor()
            .execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
                "current_setting('preserve_insertion_order')"
            )
            .fetchone()
        )
    finally:
        con.close()
    assert row is not None
    return str(row[0]), str(row[1]), bool(row[2])


def test_a_store_spills_to_its_own_folder_under_a_memory_limit(tmp_path: Path) -> None:
    path = tmp_path / "store" / "triage.duckdb"
    limit, temp, ordered = _settings(path)
    assert limit == _settings(tmp_path / "other.duckdb", memory_limit=default_memory_limit())[0]
    assert temp == str(path) + ".tmp" and not ordered
    assert _settings(path, memory_limit="256MB")[0] == "244.1 MiB"  # DuckDB shows sizes in MiB


def test_the_default_limit_is_a_quarter_of_ram_and_at_least_2_gb() -> None:
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert default_memory_limit() == f"{max(2048, ram_mb // 4)}MB"


def test_read_only_and_in_memory_stores_get_the_same_limit(tmp_path: Path) -> None:
    path = tmp_path / "triage.duckdb"
    Store.open(path).close()
    default = _settings(path)[0]
    assert _settings(path, read_only=True)[0] == default
    limit, _, ordered = _settings(MEMORY)
    assert limit == default and not ordered


def test_the_environment_overrides_the_default_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "512MB")
    assert _settings(tmp_path / "triage.duckdb")[0] == "488.2 MiB"
    assert _settings(tmp_path / "other.duckdb", memory_limit="256MB")[0] == "244.1 MiB"  # the argument wins


def test_a_writer_that_lets_go_between_the_two_tries_leaves_the_store_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`or_read_only` tries writing, then reading: when the process whose lock refused the writer
    closes just before the reader's try, the store opens for writing after all (a cron check beside
    the live TUI opened it read-only and recorded nothing)."""
    path = tmp_path / "store.duckdb"
    Store.open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys\ncon = duckdb.connect({str(path)!r})\nprint('held', flush=True)\n"
            "sys.stdin.readline()\ncon.close()\nprint('released', flush=True)\nsys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    real = duckdb.connect
    tries: list[bool] = []

    def connect(
        target: str, read_only: bool = False, config: dict | None = None
    ) -> duckdb.DuckDBPyConnection:
        tries.append(read_only)
        if tries == [False, True]:  # the writer was refused: the holder lets go now
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
        return real(target, read_only=read_only, config=config)

    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(duckdb, "connect", connect)
        store = Store.open(path, or_read_only=True)
        monkeypatch.undo()
        assert not store.read_only and tries == [False, True, False]
        store.close()
    finally:
        holder.communicate("\n", timeout=30)
