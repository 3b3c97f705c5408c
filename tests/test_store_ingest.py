"""Ingest: every format and layout, timestamps to UTC, column mapping, incremental and killed ingests."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.store_support import config_of, ingest, query, write_config, write_jsonl, write_parquet
from triage.store import Store
from triage.store.errors import StoreError
from triage.store.ingest import PAUSE_ENV, PAUSE_MARKER_ENV

MODEL = """
name = "fraud"
predictions = "{predictions}"
threshold = 0.5

[model.columns]
id = "request_id"
timestamp = "ts"
score = "score"
"""


def model(predictions: str, extra: str = "") -> str:
    return MODEL.format(predictions=predictions) + extra


def rows(n: int, start: int = 0, **extra: object) -> list[dict[str, object]]:
    return [
        {"request_id": f"r{i}", "ts": f"2026-01-01T00:{i % 60:02d}:00Z", "score": (i % 10) / 10, **extra}
        for i in range(start, start + n)
    ]


def stored(config_path: Path, sql: str = "SELECT count(*) FROM predictions_fraud") -> object:
    return query(config_path, sql)[0][0]


# --- formats and layouts ---------------------------------------------------------------------------


def test_parquet_file_with_column_mapping(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "p.parquet",
        "SELECT 'r' || i AS request_id, TIMESTAMP '2026-01-01' + i * INTERVAL 1 MINUTE AS ts, "
        "i / 10 AS score, CASE WHEN i % 2 = 0 THEN 'yes' ELSE 'no' END AS decision, "
        "'v' || (i % 2 + 1) AS model_version, i * 10 AS latency, i * 1.5 AS amount, 'FR' AS country "
        "FROM range(10) t(i)",
    )
    extra = """version = "model_version"
prediction = "decision"
latency_ms = "latency"

[model.segments]
columns = ["country"]
"""
    config = write_config(tmp_path, model("p.parquet", extra))
    summary = ingest(config)
    assert (summary.rows_added, summary.rows_quarantined) == (10, 0)
    got = query(
        config,
        "SELECT _id, _ts, _version, _score, _decision, _latency_ms, country, amount, _file_id, _row "
        "FROM predictions_fraud ORDER BY _row",
    )
    assert got[3] == ("r3", datetime(2026, 1, 1, 0, 3), "v2", 0.3, False, 30.0, "FR", 4.5, 1, 4)
    assert [r[4] for r in got[:2]] == [True, False]  # the logged decision, not score >= threshold
    layout = Store.open(config_of(config).store_path, read_only=True)
    try:
        features = layout.layout(config_of(config).models[0])
    finally:
        layout.close()
    assert features is not None
    assert [(f.name, f.kind) for f in features.features] == [("amount", "numeric")]


def test_csv_plain_and_gzip_with_quotes_and_tabs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_text(
        'request_id,ts,score,merchant\nr1,2026-01-01 10:00:00,0.25,"Shop, Inc."\n'
        'r2,2026-01-01 11:00:00,0.75,"say ""hi"""\r\nr3,2026-01-01 12:00:00,0.5,\n',
        encoding="utf-8",
    )
    with gzip.open(logs / "b.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write("request_id,ts,score,merchant\nr4,2026-01-02 00:00:00,0.1,plain\n")
    (logs / "c.tsv").write_text(
        "request_id\tts\tscore\tmerchant\nr5\t2026-01-03\t0.9\ttabbed\n", encoding="utf-8"
    )
    config = write_config(tmp_path, model("logs"))
    summary = ingest(config)
    assert (summary.rows_added, summary.rows_quarantined, len(summary.files)) == (5, 0, 3)
    got = query(config, "SELECT _id, merchant, _decision FROM predictions_fraud ORDER BY _id")
    assert got == [
        ("r1", "Shop, Inc.", False),
        ("r2", 'say "hi"', True),
        ("r3", None, True),
        ("r4", "plain", False),
        ("r5", "tabbed", True),
    ]


def test_jsonl_plain_gzip_glob_and_recursive_folder(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "logs" / "day1.jsonl", rows(3))
    write_jsonl(tmp_path / "logs" / "deeper" / "day2.jsonl.gz", rows(2, start=3), compress=True)
    write_jsonl(tmp_path / "logs" / "deeper" / "more.ndjson", rows(1, start=5))
    (tmp_path / "logs" / "README.md").write_text("not a log")
    (tmp_path / "logs" / "_SUCCESS").write_text("")
    folder = write_config(tmp_path, model("logs"))
    assert ingest(folder).rows_added == 6

    other = tmp_path / "glob"
    other.mkdir()
    config = write_config(other, model("../logs/**/*.jsonl*"))
    summary = ingest(config)
    assert (summary.rows_added, sorted(Path(f.path).name for f in summary.files)) == (
        5,
        ["day1.jsonl", "day2.jsonl.gz"],
    )


def test_hive_partitioned_parquet_and_jsonl(tmp_path: Path) -> None:
    target = tmp_path / "hive"
    target.mkdir()
    con_sql = (
        "SELECT 'r' || i AS request_id, TIMESTAMP '2026-01-01' + i * INTERVAL 1 HOUR AS ts, 0.5 AS score, "
        "CASE WHEN i < 4 THEN 'v1' ELSE 'v2' END AS model_version, "
        "CASE WHEN i % 2 = 0 THEN 'FR' ELSE 'US' END AS country FROM range(10) t(i)"
    )
    import duckdb

    con = duckdb.connect()
    con.execute(f"COPY ({con_sql}) TO '{target}' (FORMAT parquet, PARTITION_BY (model_version, country))")
    con.close()
    write_jsonl(tmp_path / "hive" / "model_version=v3" / "country=DE" / "x.jsonl", rows(2, start=100))
    extra = 'version = "model_version"\n\n[model.segments]\ncolumns = ["country"]\n'
    config = write_config(tmp_path, model("hive", extra))
    summary = ingest(config)
    assert (summary.rows_added, summary.rows_quarantined) == (12, 0)
    got = query(
        config,
        "SELECT _version, country, count(*) FROM predictions_fraud GROUP BY ALL ORDER BY ALL",
    )
    assert got == [("v1", "FR", 2), ("v1", "US", 2), ("v2", "FR", 3), ("v2", "US", 3), ("v3", "DE", 2)]
    # Partition keys are layout, not inputs: they are not inferred as features.
    assert query(config, "SELECT count(*) FROM duckdb_columns() WHERE column_name = 'model_version'") == [
        (0,)
    ]


def test_mixed_timestamp_formats_normalise_to_utc(tmp_path: Path) -> None:
    # 2026-03-01 00:00:00 UTC is 20513 days after the epoch: 20513 * 86400 = 1772323200.
    values = [
        ("z", "2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, 0)),
        ("offset", "2026-03-01 12:00:00+02:00", datetime(2026, 3, 1, 10, 0)),
        ("fraction", "2026-03-01T12:00:00.250-05:00", datetime(2026, 3, 1, 17, 0, 0, 250000)),
        ("compact offset", "2026-03-01T12:00:00+0530", datetime(2026, 3, 1, 6, 30)),
        ("naive space", "2026-03-01 12:00:00", datetime(2026, 3, 1, 12, 0)),
        ("naive T", "2026-03-01T12:00:00", datetime(2026, 3, 1, 12, 0)),
        ("date", "2026-03-01", datetime(2026, 3, 1)),
        ("zone name", "2026-03-01 12:00:00 Europe/Paris", datetime(2026, 3, 1, 11, 0)),  # CET, +01:00
        ("epoch s", 1772366400, datetime(2026, 3, 1, 12, 0)),
        ("epoch s float", 1772366400.5, datetime(2026, 3, 1, 12, 0, 0, 500000)),
        ("epoch ms", 1772366400123, datetime(2026, 3, 1, 12, 0, 0, 123000)),
        ("epoch s string", "1772366400", datetime(2026, 3, 1, 12, 0)),
    ]
    logs = tmp_path / "logs"
    write_jsonl(
        logs / "p.jsonl", [{"request_id": name, "ts": value, "score": 0.5} for name, value, _ in values]
    )
    (logs / "p.csv").write_text(
        "request_id,ts,score\ncsv-ms,1772366400123,0.5\ncsv-offset,2026-03-01 12:00:00-01:00,0.5\n"
    )
    write_parquet(
        logs / "tz.parquet",
        "SELECT 'pq-tz' AS request_id, TIMESTAMPTZ '2026-03-01 12:00:00+02:00' AS ts, 0.5 AS score",
    )
    write_parquet(
        logs / "naive.parquet",
        "SELECT 'pq-naive' AS request_id, TIMESTAMP '2026-03-01 12:00:00' AS ts, 0.5 AS score",
    )
    write_parquet(
        logs / "ms.parquet",
        "SELECT 'pq-ms' AS request_id, 1772366400123::BIGINT AS ts, 0.5 AS score",
    )
    config = write_config(tmp_path, model("logs/*"))
    summary = ingest(config)
    assert summary.rows_quarantined == 0
    got = dict(query(config, "SELECT _id, _ts FROM predictions_fraud"))
    expected = {name: when for name, _, when in values}
    expected |= {
        "csv-ms": datetime(2026, 3, 1, 12, 0, 0, 123000),
        "csv-offset": datetime(2026, 3, 1, 13, 0),
        "pq-tz": datetime(2026, 3, 1, 10, 0),
        "pq-naive": datetime(2026, 3, 1, 12, 0),
        "pq-ms": datetime(2026, 3, 1, 12, 0, 0, 123000),
    }
    assert got == expected


def test_decision_from_prediction_column_or_threshold(tmp_path: Path) -> None:
    decisions = ["true", "FALSE", 1, 0, "1", "0", "yes", "No", None]
    write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"request_id": f"r{i}", "ts": "2026-01-01", "score": 0.7, "decision": value}
            for i, value in enumerate(decisions)
        ],
    )
    config = write_config(tmp_path, model("p.jsonl", 'prediction = "decision"\n'))
    ingest(config)
    got = [r[0] for r in query(config, "SELECT _decision FROM predictions_fraud ORDER BY _row")]
    # The last has no logged decision: score 0.7 >= threshold 0.5.
    assert got == [True, False, True, False, True, False, True, False, True]


def test_configured_features_and_inferred_kinds(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"request_id": f"r{i}", "ts": "2026-01-01", "score": 0.1, "age": i, "plan": "gold", "zip": 75001}
            for i in range(5)
        ],
    )
    inferred = write_config(tmp_path, model("p.jsonl"))
    ingest(inferred)
    kinds = query(
        inferred,
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'predictions_fraud' "
        "AND column_name IN ('age', 'plan', 'zip') ORDER BY column_index",
    )
    assert kinds == [("age", "DOUBLE"), ("plan", "VARCHAR"), ("zip", "DOUBLE")]

    other = tmp_path / "configured"
    other.mkdir()
    configured = write_config(
        other, model("../p.jsonl", '\n[model.features]\nnumeric = ["age"]\ncategorical = ["zip"]\n')
    )
    ingest(configured)
    got = query(configured, "SELECT age, zip FROM predictions_fraud ORDER BY _row LIMIT 1")
    assert got == [(0.0, "75001")]
    assert query(configured, "SELECT count(*) FROM duckdb_columns() WHERE column_name = 'plan'") == [(0,)]


def test_zero_padded_codes_in_csv_are_inferred_categorical(tmp_path: Path) -> None:
    """A CSV column with a zero-padded integer among its values (a zip code "01234", a signed
    "-07") is categorical, as the same codes logged as JSON strings are, and keeps its text; "0"
    and "0.5" are numbers still."""
    (tmp_path / "p.csv").write_text(
        "request_id,ts,score,zip,delta,ratio\n"
        "r0,2026-01-01,0.1,75001,5,0.5\n"
        "r1,2026-01-01,0.1,01234,-07,0\n"
        "r2,2026-01-01,0.1,99999,3,10\n",
        encoding="utf-8",
    )
    config = write_config(tmp_path, model("p.csv"))
    ingest(config)
    kinds = query(
        config,
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'predictions_fraud' "
        "AND column_name IN ('zip', 'delta', 'ratio') ORDER BY column_index",
    )
    assert kinds == [("zip", "VARCHAR"), ("delta", "VARCHAR"), ("ratio", "DOUBLE")]
    assert query(config, "SELECT zip, delta FROM predictions_fraud WHERE _id = 'r1'") == [("01234", "-07")]


@pytest.mark.parametrize(
    ("log", "extra", "message"),
    [
        # Inferred features: two columns of the log (configured ones are refused as the config is read).
        (
            {"Plan": "gold", "plan": "silver"},
            "",
            "columns 'Plan' and 'plan' differ only in case, and the store's column names ignore case: "
            "list the features, without one of them",
        ),
        # A log column named like the score's rows, inferred as a feature, would share them.
        (
            {"__score__": 1.0},
            "",
            "the log column '__score__' would be a feature named like the score in the results: "
            "list the features without it ([model.features])",
        ),
    ],
)
def test_columns_the_store_cannot_keep_apart_are_named(
    tmp_path: Path, log: dict[str, object], extra: str, message: str
) -> None:
    """DuckDB's column names ignore case: two log columns differing only in case are refused by
    name before anything is stored, as is an inferred feature named like the score's rows."""
    write_jsonl(tmp_path / "p.jsonl", [row | log for row in rows(3)])
    config = write_config(tmp_path, model("p.jsonl", extra))
    with pytest.raises(StoreError) as caught:
        ingest(config)
    assert str(caught.value).startswith(f"model 'fraud': {message}")


# --- incremental ----------------------------------------------------------------------------------


def test_second_ingest_adds_nothing(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "p.jsonl", rows(20))
    write_parquet(
        tmp_path / "q.parquet",
        "SELECT 'q' || i AS request_id, '2026-01-01' AS ts, 0.5 AS score FROM range(7) t(i)",
    )
    config = write_config(tmp_path, model("*.*"))
    first = ingest(config)
    second = ingest(config)
    assert (first.rows_added, second.rows_added, second.rows_quarantined) == (27, 0, 0)
    assert [f.action for f in second.files] == ["unchanged", "unchanged"]
    assert not second.changed
    os.utime(tmp_path / "q.parquet")  # touched, same bytes: still nothing to do
    assert ingest(config).rows_added == 0
    assert stored(config) == 27


def test_a_project_moved_whole_keeps_its_registry(tmp_path: Path) -> None:
    """Logs inside the project are registered by their path from the config's folder, logs outside
    it by their absolute path: moving or copying the project re-reads nothing (a re-read would
    quarantine every prediction as a duplicate id)."""
    labels = write_jsonl(
        tmp_path / "shared" / "labels.jsonl",
        [{"request_id": f"r{i}", "is_fraud": i % 2, "labeled_at": "2026-01-02T00:00:00Z"} for i in range(8)],
    )
    body = (
        f'name = "fraud"\npredictions = "logs"\nlabels = "{labels}"\nthreshold = 0.5\n\n'
        '[model.columns]\nid = "request_id"\ntimestamp = "ts"\nscore = "score"\nlabel = "is_fraud"\n'
        'labeled_at = "labeled_at"\n'
    )
    write_jsonl(tmp_path / "before" / "logs" / "p.jsonl", rows(20))
    config = write_config(tmp_path / "before", body)
    assert ingest(config).rows_added == 28
    registered = [(os.path.join("logs", "p.jsonl"),), (str(labels),)]
    assert query(config, "SELECT path FROM _triage_files ORDER BY kind DESC") == registered

    moved = tmp_path / "after"
    os.rename(tmp_path / "before", moved)
    copied, retimed = tmp_path / "copy", tmp_path / "retimed"
    shutil.copytree(moved, copied)
    shutil.copytree(moved, retimed, copy_function=shutil.copy)  # new mtimes: fingerprinted, not re-read
    for project in (moved, copied, retimed):
        summary = ingest(project / "triage.toml")
        assert [f.action for f in summary.files] == ["unchanged", "unchanged"]
        assert query(project / "triage.toml", "SELECT count(*) FROM predictions_fraud") == [(20,)]
        assert query(project / "triage.toml", "SELECT count(*) FROM _triage_quarantine") == [(0,)]
    write_jsonl(copied / "logs" / "p.jsonl", rows(3, start=20), mode="a")
    assert [f.action for f in ingest(copied / "triage.toml").files] == ["appended", "unchanged"]


def test_a_registry_written_with_absolute_paths_still_matches(tmp_path: Path) -> None:
    """A store whose registry named a project's logs by absolute path finds them by their relative
    name, and writes that name when the file next changes."""
    log = write_jsonl(tmp_path / "logs" / "p.jsonl", rows(10))
    config = write_config(tmp_path, model("logs"))
    ingest(config)
    with Store.open(config_of(config).store_path) as store:
        store.connection.execute("UPDATE _triage_files SET path = ?", [str(log)])
    assert [f.action for f in ingest(config).files] == ["unchanged"]
    write_jsonl(log, rows(2, start=10), mode="a")
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("appended", 2)]
    assert query(config, "SELECT path, rows_added FROM _triage_files") == [
        (os.path.join("logs", "p.jsonl"), 12)
    ]


def test_growing_jsonl_reads_only_new_lines(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "p.jsonl", rows(10))
    config = write_config(tmp_path, model("p.jsonl"))
    assert ingest(config).rows_added == 10
    write_jsonl(log, [*rows(5, start=10), "garbage"], mode="a")
    summary = ingest(config)
    assert [(f.action, f.rows_added, f.rows_quarantined) for f in summary.files] == [("appended", 5, 1)]
    assert stored(config) == 15
    assert query(config, "SELECT min(_row), max(_row) FROM predictions_fraud WHERE _row > 10") == [(11, 15)]
    assert query(config, "SELECT line, reason FROM _triage_quarantine") == [(16, "unparseable JSON")]
    registry = query(
        config, "SELECT rows_added, rows_quarantined, lines_consumed, bytes_consumed FROM _triage_files"
    )
    assert registry == [(15, 1, 16, log.stat().st_size)]


def test_growing_csv_reads_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "p.csv"
    log.write_text("request_id,ts,score\nr1,2026-01-01,0.1\n")
    config = write_config(tmp_path, model("p.csv"))
    assert ingest(config).rows_added == 1
    with open(log, "a") as handle:
        handle.write("r2,2026-01-01,0.2\nr3,2026-01-01,0.3\n")
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("appended", 2)]
    assert query(config, "SELECT _id, _row FROM predictions_fraud ORDER BY _row") == [
        ("r1", 2),
        ("r2", 3),
        ("r3", 4),
    ]


def test_rewritten_jsonl_is_replaced(tmp_path: Path) -> None:
    log = write_jsonl(tmp_path / "p.jsonl", rows(10))
    config = write_config(tmp_path, model("p.jsonl"))
    ingest(config)
    write_jsonl(log, rows(12, start=100))  # same name, new content, longer
    summary = ingest(config)
    assert [(f.action, f.rows_added) for f in summary.files] == [("replaced", 12)]
    assert query(config, "SELECT count(*), min(_id) FROM predictions_fraud") == [(12, "r100")]
    write_jsonl(log, rows(3, start=200))  # truncated
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("replaced", 3)]
    assert stored(config) == 3


def test_a_log_edited_in_place_at_the_same_size_is_read_again(tmp_path: Path) -> None:
    """An edit in the middle of a large log keeps its length and both 64 KiB ends: every byte is
    compared when the file was written since it was read; a touch alone reads nothing."""
    log = write_jsonl(tmp_path / "p.jsonl", rows(3000))
    config = write_config(tmp_path, model("p.jsonl"))
    ingest(config)
    os.utime(log, (time.time() + 5, time.time() + 5))  # touched: the same bytes
    assert [f.action for f in ingest(config).files] == ["unchanged"]
    text = log.read_text()
    middle = text.index('"request_id": "r1500"')
    edited = text[:middle] + text[middle:].replace('"score": 0.0', '"score": 0.9', 1)
    assert len(edited) == len(text) and middle > 64 * 1024 and len(text) - middle > 64 * 1024
    log.write_text(edited)
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("replaced", 3000)]
    assert query(config, "SELECT _score FROM predictions_fraud WHERE _id = 'r1500'") == [(0.9,)]
    # After an append the whole file is not hashed again: a later write at its length reads it again.
    write_jsonl(log, rows(1, start=3000), mode="a")
    assert [f.action for f in ingest(config).files] == ["appended"]
    os.utime(log, (time.time() + 10, time.time() + 10))
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("replaced", 3001)]
    assert stored(config) == 3001


def test_changed_parquet_replaces_its_rows(tmp_path: Path) -> None:
    log = tmp_path / "p.parquet"
    write_parquet(log, "SELECT 'r' || i AS request_id, '2026-01-01' AS ts, 2 AS score FROM range(10) t(i)")
    config = write_config(tmp_path, model("p.parquet"))
    first = ingest(config)
    assert (first.rows_added, first.rows_quarantined) == (0, 10)  # score 2 is out of range
    write_parquet(log, "SELECT 'r' || i AS request_id, '2026-01-01' AS ts, 0.5 AS score FROM range(8) t(i)")
    summary = ingest(config)
    assert [(f.action, f.rows_added, f.rows_quarantined) for f in summary.files] == [("replaced", 8, 0)]
    assert stored(config) == 8
    assert query(config, "SELECT count(*) FROM _triage_quarantine") == [(0,)]  # its old quarantine went too


def test_unterminated_last_line(tmp_path: Path) -> None:
    log = tmp_path / "p.jsonl"
    log.write_text(
        '{"request_id": "a", "ts": "2026-01-01", "score": 0.1}\n{"request_id": "b", "ts": "2026-01-01", "sc'
    )
    config = write_config(tmp_path, model("p.jsonl"))
    # A fresh, incomplete last line is left for the next poll: its writer is mid-line.
    assert [(f.rows_added, f.rows_quarantined) for f in ingest(config).files] == [(1, 0)]
    with open(log, "a") as handle:
        handle.write('ore": 0.2}')  # complete now, still without a newline
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("appended", 1)]
    with open(log, "a") as handle:
        handle.write('\n{"request_id": "c", "ts": "2026-01-01", "score": 0.3}\n')
    # The consumed region ended mid-line, so the file is read again as a whole.
    assert [(f.action, f.rows_added) for f in ingest(config).files] == [("replaced", 3)]
    assert query(config, "SELECT list(_id ORDER BY _row) FROM predictions_fraud") == [(["a", "b", "c"],)]


def test_follow_appends_with_the_same_code_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from triage.cli import main
    from triage.commands import store_cmd

    log = write_jsonl(tmp_path / "p.jsonl", rows(4))
    config = write_config(tmp_path, model("p.jsonl"))
    batches = iter([rows(3, start=4), rows(2, start=7)])

    def sleep(seconds: float) -> None:
        assert seconds == 0.5
        write_jsonl(log, next(batches), mode="a")

    monkeypatch.setattr(store_cmd.time, "sleep", sleep)
    assert main(["--config", str(config), "ingest", "--follow", "--interval", "0.5", "--polls", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ingested 1 file (1 new): 4 rows added, 0 quarantined")
    assert "+3 rows, 0 quarantined (1 appended)" in out[-2]
    assert "+2 rows, 0 quarantined (1 appended)" in out[-1]
    assert stored(config) == 9


# --- a killed ingest ------------------------------------------------------------------------------


def test_killed_ingest_leaves_no_trace_and_is_picked_up(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "logs" / "a.jsonl", rows(30))
    write_jsonl(tmp_path / "logs" / "b.jsonl", [*rows(40, start=30), "{bad", *rows(2, start=0)])
    config = write_config(tmp_path, model("logs"))
    marker = tmp_path / "paused"
    env = dict(os.environ, **{PAUSE_ENV: "b.jsonl", PAUSE_MARKER_ENV: str(marker)})
    code = (
        "from triage.config import load_config\n"
        "from triage.store import Store\n"
        f"config = load_config({str(config)!r})\n"
        "Store.open(config.store_path).ingest(config)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None, "the ingest finished without pausing"
            assert time.monotonic() < deadline, "the ingest never reached b.jsonl"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    # a.jsonl committed; b.jsonl's rows, quarantine and registry row never happened.
    assert query(config, "SELECT count(*), count(DISTINCT _file_id) FROM predictions_fraud") == [(30, 1)]
    assert query(config, "SELECT count(*) FROM _triage_quarantine") == [(0,)]
    assert [Path(r[0]).name for r in query(config, "SELECT path FROM _triage_files")] == ["a.jsonl"]

    summary = ingest(config)
    assert [(Path(f.path).name, f.action, f.rows_added, f.rows_quarantined) for f in summary.files] == [
        ("a.jsonl", "unchanged", 0, 0),
        ("b.jsonl", "new", 40, 3),
    ]
    assert dict(summary.quarantined_by_reason) == {"unparseable JSON": 1, "duplicate id": 2}
    assert stored(config) == 70
