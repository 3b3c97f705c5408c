"""`triage ingest` warms the caches; a read-only evaluation reuses them and gives the cold result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.store_support import config_of, write_config, write_parquet
from triage.cli import main
from triage.engine import Engine
from triage.metrics import drift
from triage.metrics.drift import CACHE_TABLE
from triage.metrics.results import DriftRow

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)

MODEL = """
name = "fraud"
predictions = "{logs}/*.parquet"
threshold = 0.5
window = "1d"

[model.columns]
id = "request_id"
timestamp = "ts"
version = "model_version"
score = "score"

[model.features]
numeric = ["amount"]
categorical = ["payment"]

[model.segments]
columns = ["country"]

[model.reference]
start = "2026-01-01T00:00:00Z"
end = "2026-01-02T00:00:00Z"
"""


def day_file(logs: Path, name: str, day: int, n: int, seed: int) -> None:
    """n rows spread over day `day`, ids unique per file."""
    write_parquet(
        logs / f"{name}.parquet",
        f"""SELECT '{name}-' || i AS request_id,
            TIMESTAMP '2026-01-01' + INTERVAL {day} DAY + i * INTERVAL {86_000 // n} SECOND AS ts,
            CASE WHEN i % 3 = 0 THEN 'v2' ELSE 'v1' END AS model_version,
            (hash(i, {seed}) % 1000) / 1000 AS score,
            (hash(i, {seed}, 1) % 10000) / 10.0 + {day} * 20 AS amount,
            CASE hash(i, {seed}, 2) % 3 WHEN 0 THEN 'card' WHEN 1 THEN 'wire' ELSE 'cash' END AS payment,
            CASE WHEN i % 2 = 0 THEN 'FR' ELSE 'DE' END AS country
        FROM range({n}) t(i)""",
    )


def stores(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The logs, and two configs over them: one ingested with warming, one without."""
    logs = tmp_path / "logs"
    for day in range(4):
        day_file(logs, f"d{day}", day, 900, seed=day)
    (tmp_path / "warm").mkdir()
    (tmp_path / "cold").mkdir()
    warm = write_config(tmp_path / "warm", MODEL.format(logs=logs))
    cold = write_config(tmp_path / "cold", MODEL.format(logs=logs))
    return logs, warm, cold


def evaluate(config_path: Path) -> tuple[DriftRow, ...]:
    """The drift rows of a default read-only evaluation as of a fixed time."""
    with Engine(config_of(config_path)) as engine:
        assert engine.store.read_only
        return engine.evaluate("fraud", as_of=DAY0 + timedelta(days=10)).drift


def cache_rows(config_path: Path) -> int:
    con = duckdb.connect(str(config_of(config_path).store_path), read_only=True)
    try:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [CACHE_TABLE]
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        row = con.execute(f"SELECT count(*) FROM {CACHE_TABLE}").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def spy_windows(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The windows whose numeric drift is computed from here on (by any caller)."""
    computed: list[datetime] = []
    original = drift.numeric_cells

    def spy(*args: object, **kwargs: object) -> object:
        batches = args[5] if len(args) > 5 else kwargs.get("batches", (None,))
        computed.extend(w for batch in batches for w in batch)  # type: ignore[attr-defined]
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(drift, "numeric_cells", spy)
    return computed


def test_read_only_evaluation_after_ingest_reuses_the_warm_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, warm, cold = stores(tmp_path)
    assert main(["--config", str(warm), "ingest"]) == 0
    assert main(["--config", str(cold), "ingest", "--no-warm"]) == 0
    assert cache_rows(warm) > 0
    assert cache_rows(cold) == 0  # --no-warm stores nothing, and read-only evaluations never write

    computed = spy_windows(monkeypatch)
    from_cache = evaluate(warm)
    assert computed == []  # every window came from the cache
    cold_rows = evaluate(cold)
    assert set(computed) == {DAY0 + timedelta(days=day) for day in range(4)}  # cold: every window
    assert cache_rows(cold) == 0
    assert from_cache == cold_rows
    assert any(row.ks_d is not None for row in from_cache)


def test_new_rows_in_one_window_invalidate_only_that_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs, warm, cold = stores(tmp_path)
    assert main(["--config", str(warm), "ingest"]) == 0
    computed = spy_windows(monkeypatch)
    day_file(logs, "late", 2, 300, seed=99)  # late rows for the third day only
    assert main(["--config", str(warm), "ingest"]) == 0
    assert computed and set(computed) == {DAY0 + timedelta(days=2)}  # the ingest warmed only that window
    computed.clear()
    from_cache = evaluate(warm)
    assert computed == []
    assert main(["--config", str(cold), "ingest", "--no-warm"]) == 0
    assert from_cache == evaluate(cold)
    late_window = [
        row
        for row in from_cache
        if row.window_start == DAY0 + timedelta(days=2) and row.version is None and row.segment is None
    ]
    assert {row.n for row in late_window} == {1200}


def test_no_warm_leaves_a_read_only_evaluation_to_compute(tmp_path: Path) -> None:
    _, warm, _ = stores(tmp_path)
    assert main(["--config", str(warm), "ingest", "--no-warm"]) == 0
    assert cache_rows(warm) == 0
    assert evaluate(warm)
    assert cache_rows(warm) == 0
