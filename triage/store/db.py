"""The store file and the `Store` facade: ingest, info and quarantine over one DuckDB database.

Concurrency model
-----------------
DuckDB lets one process open a database file read-write, or any number of processes open it
read-only — never both at once (the lock is per process, on the file). Inside one process any
number of threads can use one open database through their own cursors; MVCC means a reader sees
the last committed state, so it never sees part of a file's ingest (each file is one transaction).

triage works with that rather than around it:

- One `Store` per process. The TUI's live mode calls `Store.ingest(config)` (through
  `Engine.refresh`, which then warms the caches) from a worker thread on the same `Store` that
  its query workers read through `Store.cursor()` — the same code path as `triage ingest
  --follow`. Ingests within a process are serialised by a lock.
- Whoever writes stores what readers reuse: after an ingest, `Engine.refresh` stores the reference
  profile and the drift rows of the changed windows, so a read-only reader reads them.
- A separate writer process holds the lock only while it works: `triage ingest --follow` opens
  the store for each poll and closes it afterwards, so the file is free between polls, and
  `triage check` for one evaluation (it records the alert state). Readers (`triage info`,
  `triage replay` and `report`, the TUI looking back with `--at` or replaying) open it read-only.
  The TUI (`tui.source.InterruptibleStore`) closes it after a second without a query and opens
  it again for the next: live, it ingests and records alert state itself.
- Read-only holders exclude any writer until they close, so `triage check` then evaluates
  read-only (`Store.open(or_read_only=True)`): the alerts move on from their recorded state,
  but nothing is written.
- `Store.open` waits for a conflicting lock (retrying for up to `wait_s`) instead of failing at
  once, and reports a store that stays locked as one line naming the holder.

A process killed mid-ingest loses only its uncommitted file; DuckDB replays committed work from its
write-ahead log on the next open.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType

import duckdb

from triage.config import Config, ModelConfig
from triage.store.errors import StoreError
from triage.store.info import QuarantinedRow, StoreInfo, quarantined_rows, store_info, time_range
from triage.store.ingest import IngestSummary, ingest, rebuild_model
from triage.store.tables import Layout, add_id_hashes, add_quarantine_times, stored_layout, without_id_hashes

DEFAULT_WAIT_S = 10.0
MEMORY = ":memory:"
# DuckDB's own default is 80 % of RAM. triage gives it a quarter of RAM, at least 2 GB, and it
# spills the rest (sorts, joins, most aggregates) to `<store>.tmp/` beside the store file. Not
# less: a few statements cannot spill (holistic aggregates such as quantiles over GROUPING SETS)
# and fail at the limit — a 10 M-row check needs more than 1 GB. TRIAGE_MEMORY_LIMIT (a DuckDB
# size, e.g. "4GB") overrides it for a process.
MEMORY_SHARE = 0.25
MIN_MEMORY_LIMIT_MB = 2048
MEMORY_LIMIT_ENV = "TRIAGE_MEMORY_LIMIT"


def connect(
    path: str | Path,
    read_only: bool = False,
    wait_s: float = DEFAULT_WAIT_S,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a store file (creating it and its folder when writing), waiting up to `wait_s` for a lock.

    DuckDB may use `memory_limit` (a DuckDB size such as "4GB"; by default $TRIAGE_MEMORY_LIMIT,
    else `default_memory_limit()`) and spills beyond it to a `<store>.tmp` folder next to the
    store (in memory: DuckDB's default temporary folder).
    """
    return _connect(path, (read_only,), wait_s, memory_limit)[0]


def _connect(
    path: str | Path, modes: tuple[bool, ...], wait_s: float, memory_limit: str | None
) -> tuple[duckdb.DuckDBPyConnection, bool]:
    """`connect` in the first of `modes` (read-only or not) that other processes' locks allow,
    each tried in turn until one opens or `wait_s` has passed; the connection and its mode."""
    target = str(path)
    if target != MEMORY:
        if all(modes) and not os.path.exists(target):
            raise StoreError(f"{target}: no store yet; run `triage ingest` first")
        if not all(modes):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    limit = memory_limit or os.environ.get(MEMORY_LIMIT_ENV) or default_memory_limit()
    settings = _settings(target, limit)
    deadline = time.monotonic() + wait_s
    locked = [""]  # the last lock message

    def attempt(read_only: bool) -> duckdb.DuckDBPyConnection | None:
        """A connection in that mode; None while another process's lock excludes it."""
        try:
            return duckdb.connect(target, read_only=read_only and target != MEMORY, config=settings)
        except duckdb.IOException as exc:
            locked[0] = str(exc).strip().splitlines()[0]
            if "lock" not in locked[0].lower():
                raise StoreError(f"{target}: cannot open the store ({locked[0]})") from None
            return None
        except duckdb.Error as exc:
            raise StoreError(
                f"{target}: cannot open the store ({str(exc).strip().splitlines()[0]})"
            ) from None

    while True:
        for read_only in modes:
            con = attempt(read_only)
            if con is not None and read_only and not all(modes):
                # The writer whose lock refused the first mode may have let go just before this
                # one: writing is what was asked for, so it is tried once more (a cron check
                # beside the live TUI recorded nothing when it won that race).
                con.close()
                con = attempt(False)
                read_only = con is None
                if con is None:
                    con = attempt(True)
            if con is None:
                continue
            _session(con)
            _upgrade(con, target, read_only)
            return con, read_only
        if time.monotonic() >= deadline:
            raise StoreError(
                f"{target}: the store is locked by another process; it is freed when that "
                f"process finishes ({locked[0]})"
            )
        time.sleep(0.1)


def _upgrade(con: duckdb.DuckDBPyConnection, target: str, read_only: bool) -> None:
    """Bring a store made by an earlier triage up to date: its tables get their id hashes, its
    quarantine the rows' own times (read-only, the readers make do without them)."""
    if not read_only:
        add_quarantine_times(con)
    tables = without_id_hashes(con)
    if not tables:
        return
    if read_only:
        con.close()
        raise StoreError(
            f"{target}: made by an earlier triage (no id hashes in {', '.join(tables)}); "
            "run `triage ingest` once to bring it up to date"
        )
    add_id_hashes(con, tables)


def default_memory_limit() -> str:
    """A quarter of the machine's RAM, at least 2 GB, as a DuckDB size ("…MB")."""
    try:
        ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):  # no sysconf: not Linux or macOS
        ram_mb = 0
    return f"{max(MIN_MEMORY_LIMIT_MB, int(ram_mb * MEMORY_SHARE))}MB"


def _settings(target: str, memory_limit: str) -> dict[str, str | bool | int | float | list[str]]:
    """Database settings, fixed when the database is opened (shared by all its cursors)."""
    settings: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        # Nothing triage reads depends on the physical order of rows: every order it shows comes
        # from an ORDER BY. Without this, large inserts and CREATE TABLE … AS buffer to keep order.
        "preserve_insertion_order": False,
    }
    if target != MEMORY:
        settings["temp_directory"] = target + ".tmp"
    return settings


def _session(con: duckdb.DuckDBPyConnection) -> None:
    # UTC for anything that renders times; no progress bar drawn over the CLI's output.
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")


class Store:
    """An open store: ingest logs into it and ask what it holds. Use one per process."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: str, read_only: bool) -> None:
        self._connection = connection
        self.path = path
        self.read_only = read_only
        self._ingest_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        read_only: bool = False,
        wait_s: float = DEFAULT_WAIT_S,
        memory_limit: str | None = None,
        or_read_only: bool = False,
    ) -> Store:
        """Open (or create, unless read-only) the store at `path`; see the module docstring.

        `or_read_only`: writable if it can be had, else read-only — while other processes hold
        the store read-only (a replay, a report), which excludes any writer until they close it.
        """
        modes = (False, True) if or_read_only and not read_only else (read_only,)
        connection, opened_read_only = _connect(path, modes, wait_s, memory_limit)
        return cls(connection, str(path), opened_read_only)

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The main connection; threads other than the opener should use `cursor()`."""
        return self._connection

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database for one thread (UTC session time zone)."""
        cursor = self._connection.cursor()
        _session(cursor)
        return cursor

    def ingest(self, config: Config, *, rebuild: bool = False) -> IngestSummary:
        """Ingest what is new in every configured source; `rebuild` first forgets every model's rows."""
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; cannot ingest")
        with self._ingest_lock:
            cursor = self.cursor()
            try:
                if rebuild:
                    for model in config.models:
                        rebuild_model(cursor, model.name)
                return ingest(cursor, config)
            finally:
                cursor.close()

    def info(self, config: Config) -> StoreInfo:
        """Rows, versions, time range, segments, features, label coverage and quarantine per model."""
        cursor = self.cursor()
        try:
            return store_info(cursor, config)
        finally:
            cursor.close()

    def quarantined(
        self, model: str | None = None, limit: int = 50, reason: str | None = None
    ) -> tuple[tuple[QuarantinedRow, ...], int]:
        """Up to `limit` quarantined rows (optionally of one model / reason) and the total that match."""
        cursor = self.cursor()
        try:
            return quarantined_rows(cursor, model, limit, reason)
        finally:
            cursor.close()

    def time_range(
        self, model: ModelConfig, until: datetime | None = None
    ) -> tuple[datetime, datetime] | None:
        """The first and last prediction time of a model (aware UTC), with `until` the last at or
        before it when there is one; None without predictions."""
        cursor = self.cursor()
        try:
            return time_range(cursor, model, until)
        finally:
            cursor.close()

    def layout(self, model: ModelConfig) -> Layout | None:
        """The segments and features (with kinds) of a model's tables; None before its first ingest."""
        cursor = self.cursor()
        try:
            return stored_layout(cursor, model)
        finally:
            cursor.close()

    def close(self) -> None:
        """Close the store (and release its file lock)."""
        self._connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
