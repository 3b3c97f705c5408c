"""`triage ingest`, `triage info` and `triage quarantine` end to end through `triage.cli.main`."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.store_support import EARLY_REFERENCE, query, write_jsonl, write_parquet
from triage.cli import main
from triage.store import StoreError, connect
from triage.store.schema import REASON_BAD_VALUE


def minimal_config(predictions: str) -> str:
    return (
        f'[[model]]\nname = "m"\npredictions = "{predictions}"\n\n'
        '[model.columns]\nid = "id"\ntimestamp = "at"\nscore = "p"\n\n' + EARLY_REFERENCE
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_log_nobody_here_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Parquet with string timestamps, labels in a separate file without labeled_at, a hand-written config."""
    exports = tmp_path / "exports"
    # 500 transactions every 7 minutes from 2026-02-01 00:00 UTC; every 5th served by 2.4.0. Timestamps are
    # strings, half ISO with Z, half "YYYY-MM-DD HH:MM:SS" with an explicit +00:00 zone.
    write_parquet(
        exports / "scored_2026_02.parquet",
        "SELECT 'txn-' || i AS txn_id, "
        "CASE WHEN i % 2 = 0 THEN strftime(TIMESTAMP '2026-02-01' + i * INTERVAL 7 MINUTE, "
        "'%Y-%m-%dT%H:%M:%SZ') "
        "ELSE strftime(TIMESTAMP '2026-02-01' + i * INTERVAL 7 MINUTE, '%Y-%m-%d %H:%M:%S') || '+00:00' END "
        "AS event_time, "
        "CASE WHEN i % 5 = 0 THEN '2.4.0' ELSE '2.3.1' END AS mdl_ver, (i % 100) / 100.0 AS proba, "
        "CASE WHEN i % 50 <> 49 THEN ['DE', 'FR', 'ES'][i % 3 + 1] END AS merchant_country, "
        "['web', 'app'][i % 2 + 1] AS channel, "
        "round(10 + i * 1.7, 2) AS amount_eur, i % 7 AS items "
        "FROM range(500) t(i)",
    )
    # Chargebacks for every 4th transaction (125), txn-0 twice (a correction), and 3 for unknown ids.
    write_parquet(
        exports / "chargebacks.parquet",
        "SELECT txn_id, chargeback FROM ("
        "SELECT 'txn-' || i AS txn_id, i % 8 = 0 AS chargeback FROM range(0, 500, 4) t(i) "
        "UNION ALL SELECT 'txn-0', true UNION ALL SELECT 'other-' || i, false FROM range(3) t(i))",
    )
    config = tmp_path / "triage.toml"
    config.write_text(
        """
[store]
path = "state/triage.duckdb"

[[model]]
name = "payments-risk"
predictions = "exports/scored_*.parquet"
labels = "exports/chargebacks.parquet"
threshold = 0.7

[model.columns]
id = "txn_id"
timestamp = "event_time"
version = "mdl_ver"
score = "proba"
label = "chargeback"

[model.segments]
columns = ["merchant_country", "channel"]

[model.reference]
end = "2026-02-02"
""",
        encoding="utf-8",
    )
    status, out, err = run(capsys, "--config", str(config), "config", "check")
    assert (status, err) == (0, "")
    status, out, err = run(capsys, "--config", str(config), "ingest")
    assert (status, err) == (0, "")
    assert out.splitlines()[0].startswith("ingested 2 files (2 new): 629 rows added, 0 quarantined")
    assert (
        "payments-risk labels: +129 rows, 0 quarantined (1 file); 3 labels for ids with no prediction" in out
    )

    status, out, err = run(capsys, "--config", str(config), "info")
    assert (status, err) == (0, "")
    lines = [line.strip() for line in out.splitlines()]
    assert f"config: {config}" in lines
    assert f"store:  {tmp_path / 'state' / 'triage.duckdb'}" in lines[1]
    assert "predictions  500 rows from 1 file" in lines
    assert "versions     2.3.1 400, 2.4.0 100" in lines
    # Last: 499 * 7 min = 58 h 13 min after the first.
    assert "time range   2026-02-01 00:00:00 .. 2026-02-03 10:13:00 UTC" in lines
    # A missing country is a value of its own, as `triage check` slices it ("(missing)").
    assert "segments     merchant_country (4 values), channel (2 values)" in lines
    assert "features     amount_eur (numeric), items (numeric)" in lines
    assert (
        "labels       129 rows from 1 file; coverage 25.0 % (125 of 500 predictions); "
        "3 labelled ids with no prediction" in lines
    )
    assert "quarantined  0 rows" in lines
    assert "reference    the first prediction .. 2026-02-02 00:00 UTC" in lines

    status, out, _ = run(capsys, "--config", str(config), "info", "--json")
    model = json.loads(out)["models"][0]
    assert (model["rows"], model["versions"], model["label_coverage"]) == (
        500,
        {"2.3.1": 400, "2.4.0": 100},
        0.25,
    )
    assert (model["first_ts"], model["last_ts"]) == ("2026-02-01T00:00:00", "2026-02-03T10:13:00")

    status, out, _ = run(capsys, "--config", str(config), "ingest")
    assert status == 0
    assert out.splitlines()[0].startswith("ingested 2 files (2 unchanged): 0 rows added, 0 quarantined")
    # The decision is score >= threshold 0.7 when the log has no prediction column.
    assert query(config, 'SELECT count(*) FILTER (_decision) FROM "predictions_payments_risk"') == [(150,)]


def test_bad_lines_are_listed_with_reasons_and_nothing_else_is_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # paths are shown relative to the working directory
    good = [{"id": f"p{i}", "at": "2026-01-01T00:00:00Z", "p": 0.2} for i in range(20)]
    write_jsonl(
        tmp_path / "logs" / "predictions.jsonl",
        [
            *good[:10],
            "<<<truncated by logrotate>>>",
            '{"id": "p100", "at": "2026-01-01T00:00:00Z", "p": "zero point two"}',
            *good[10:],
            '{"id": "p101", "at": ',
        ],
    )
    config = tmp_path / "triage.toml"
    config.write_text(minimal_config("logs"))
    status, out, err = run(capsys, "--config", str(config), "ingest")
    assert (status, err) == (0, "")
    assert out.splitlines()[0].startswith("ingested 1 file (1 new): 20 rows added, 3 quarantined")
    assert "quarantined by reason: unparseable JSON 2, score not a number 1" in out

    status, out, err = run(capsys, "--config", str(config), "quarantine")
    assert status == 0
    assert out.splitlines() == [
        "logs/predictions.jsonl:11  m predictions  unparseable JSON: not valid JSON",
        "    <<<truncated by logrotate>>>",
        "logs/predictions.jsonl:12  m predictions  score not a number: score zero point two",
        '    {"id": "p100", "at": "2026-01-01T00:00:00Z", "p": "zero point two"}',
        "logs/predictions.jsonl:23  m predictions  unparseable JSON: not valid JSON",
        '    {"id": "p101", "at": ',
        "3 of 3 quarantined rows shown",
    ]
    status, out, _ = run(
        capsys, "--config", str(config), "quarantine", "--reason", "score not a number", "--limit", "5"
    )
    assert out.splitlines()[-1] == "1 of 1 quarantined rows shown"
    status, out, _ = run(capsys, "--config", str(config), "quarantine", "--model", "nope")
    assert status == 2
    status, out, err = run(capsys, "--config", str(config), "quarantine", "--reason", "score not number")
    assert (status, out) == (2, "")
    assert err.startswith("triage: --reason: expected one of 'not UTF-8', 'unparseable JSON', ")
    assert err.endswith(f"'{REASON_BAD_VALUE}'; got 'score not number'\n")

    assert query(config, "SELECT count(*) FROM predictions_m") == [(20,)]
    status, out, _ = run(capsys, "--config", str(config), "ingest")
    assert out.splitlines()[0].startswith("ingested 1 file (1 unchanged): 0 rows added, 0 quarantined")


def test_ingest_errors_are_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "triage.toml"
    config.write_text(minimal_config("nothing/*.parquet"))
    status, _, err = run(capsys, "--config", str(config), "ingest")
    assert status == 2
    expected = "model[0].predictions: expected log files matching 'nothing/*.parquet'; none found"
    assert err == f"triage: {config}: {expected}\n"

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "broken.parquet").write_bytes(b"PAR1 this is not really parquet")
    write_jsonl(tmp_path / "logs" / "ok.jsonl", [{"id": "a", "at": "2026-01-01", "p": 0.1}])
    config.write_text(minimal_config("logs"))
    status, out, err = run(capsys, "--config", str(config), "ingest")
    assert status == 1
    assert "1 new, 1 error" in out.splitlines()[0]
    assert err.startswith("triage: ") and "broken.parquet" in err and len(err.splitlines()) == 1

    config.write_text(minimal_config("logs").replace('name = "m"', 'name = "m"\nthreshold = 0.9'))
    status, _, err = run(capsys, "--config", str(config), "ingest")
    assert status == 2
    assert "threshold changed since the store was built (0.5 → 0.9)" in err and "--rebuild" in err
    # Of a changed mapping, what changed in it (whole, both would show the same first 80 characters).
    config.write_text(minimal_config("logs").replace('score = "p"', 'score = "p"\nlatency_ms = "lat"'))
    status, _, err = run(capsys, "--config", str(config), "ingest")
    assert status == 2 and 'columns changed since the store was built ({} → {"latency_ms": "lat"})' in err
    config.write_text(minimal_config("logs").replace('name = "m"', 'name = "m"\nthreshold = 0.9'))
    status, out, _ = run(capsys, "--config", str(config), "ingest", "--rebuild")
    assert status == 1 and "1 rows added" in out  # broken.parquet is still broken
    assert query(config, "SELECT count(*) FROM predictions_m") == [(1,)]


def test_empty_csvs_are_files_without_rows_and_a_truncated_gzip_is_listed_by_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty CSV (no bytes, or a header only) is a file with no rows, and reads its lines when it
    grows. A truncated gzip'd log fails alone (one line, exit 1), the others are ingested, and
    `triage info` lists it with why until an ingest reads it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_text("id,at,p\nx1,2026-01-01,0.1\n")
    (logs / "b.csv").write_bytes(b"")
    (logs / "c.csv").write_text("id,at,p\n")
    whole = gzip.compress(b"id,at,p\n" + b"".join(b"z%d,2026-01-01,0.5\n" % i for i in range(2000)))
    (logs / "d.csv.gz").write_bytes(whole[: len(whole) // 2])
    config = tmp_path / "triage.toml"
    config.write_text(minimal_config("logs"))
    status, out, err = run(capsys, "--config", str(config), "ingest", "--no-warm")
    assert status == 1
    assert "ingested 4 files (3 new, 1 error): 1 rows added" in out.splitlines()[0]
    truncated = "truncated gzip: it ends before its end-of-stream marker (cut short, or corrupt)"
    assert err == f"triage: {logs / 'd.csv.gz'}: {truncated}\n"
    status, out, _ = run(capsys, "--config", str(config), "info")
    assert f"  not read     logs/d.csv.gz (predictions, last ingest): {truncated}" in out.splitlines()
    status, out, _ = run(capsys, "--config", str(config), "info", "--json")
    failed = json.loads(out)["models"][0]["failed_files"]
    assert failed == [{"kind": "predictions", "path": "logs/d.csv.gz", "reason": truncated}]

    (logs / "b.csv").write_text("id,at,p\nx2,2026-01-01,0.2\n")
    (logs / "d.csv.gz").write_bytes(whole)
    status, out, err = run(capsys, "--config", str(config), "ingest", "--no-warm")
    assert (status, err) == (0, "")
    assert "(1 new, 1 appended, 2 unchanged): 2001 rows added" in out.splitlines()[0]
    status, out, _ = run(capsys, "--config", str(config), "info")
    assert "not read" not in out
    assert query(config, "SELECT count(*) FROM predictions_m") == [(2002,)]


def test_info_shows_names_and_paths_from_the_logs_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inferred features are the logs' column names — text as logged, like the values: `info` shows
    their control characters as escapes (a column named to clear the screen did), and so the paths
    of logs it could not read."""
    logs = tmp_path / "logs"
    logs.mkdir()
    hostile = "amt\x1b[2J\x1b]0;pwn\x07\nx"
    rows = [{"id": f"r{i}", "at": "2026-01-01T00:00:00Z", "p": 0.5, hostile: float(i)} for i in range(3)]
    (logs / "a.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (logs / "b\x1b[31m.csv.gz").write_bytes(gzip.compress(b"id,at,p\nz,2026-01-01,0.5\n")[:20])
    config = tmp_path / "triage.toml"
    config.write_text(minimal_config("logs"))
    status, _, err = run(capsys, "--config", str(config), "ingest", "--no-warm")
    assert status == 1 and "b\\x1b[31m.csv.gz" in err and "\x1b" not in err
    status, out, _ = run(capsys, "--config", str(config), "info")
    assert status == 0 and "amt\\x1b[2J\\x1b]0;pwn\\x07\\nx (numeric)" in out
    assert "b\\x1b[31m.csv.gz" in out and not any(char in out for char in "\x1b\x07")


def test_a_label_log_without_the_prediction_logs_id_names_label_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label file whose id column is named its own way is not read, and the error says which key
    would map it (`columns.label_id`), not only the prediction log's `columns.id`."""
    write_jsonl(tmp_path / "logs" / "a.jsonl", [{"id": "r0", "at": "2026-01-01T00:00:00Z", "p": 0.5}])
    write_parquet(tmp_path / "labels" / "l.parquet", "SELECT 'r0' AS txn_ref, 1 AS y")
    config = tmp_path / "triage.toml"
    text = minimal_config("logs").replace('score = "p"', 'score = "p"\nlabel = "y"')
    config.write_text(text.replace('predictions = "logs"', 'predictions = "logs"\nlabels = "labels"'))
    status, _, err = run(capsys, "--config", str(config), "ingest", "--no-warm")
    assert status == 1
    assert err == (
        f"triage: {tmp_path / 'labels' / 'l.parquet'}: no column 'id' (model[0].columns.id); "
        "set model[0].columns.label_id to the label log's id column if it names the id differently\n"
    )
    config.write_text(config.read_text().replace('label = "y"', 'label = "y"\nlabel_id = "txn_ref"'))
    assert run(capsys, "--config", str(config), "ingest", "--no-warm", "--rebuild")[::2] == (0, "")
    assert query(config, "SELECT _id, _label FROM labels_m") == [("r0", 1.0)]


def test_info_before_any_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "triage.toml"
    config.write_text(minimal_config("x"))
    status, out, err = run(capsys, "--config", str(config), "info")
    assert (status, err) == (0, "")
    assert "not created yet; run `triage ingest`" in out


def test_a_store_locked_by_another_process_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time\ncon = duckdb.connect({str(path)!r})\n"
            "print('locked', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked by another process"):
            connect(path, read_only=True, wait_s=0.3)
        assert time.monotonic() - started >= 0.3  # it waited for the lock before giving up
    finally:
        holder.kill()
        holder.wait()
    connect(path, read_only=True).close()  # free again once the holder is gone


def test_a_rule_that_cannot_run_is_named_and_the_logs_are_still_ingested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in an alert rule does not hold back the logs (a cron ingest keeps collecting): the
    rows are stored, the warning names the file and key, and `check` refuses the config."""
    write_jsonl(
        tmp_path / "logs" / "a.jsonl", [{"id": f"r{i}", "at": "2026-01-01", "p": 0.1} for i in range(3)]
    )
    config = tmp_path / "triage.toml"
    rule = '\n[[model.alert]]\nname = "typo"\nsignal = "drift.pssi"\nwarn = 0.2\n'
    config.write_text(minimal_config("logs") + rule)
    status, out, err = run(capsys, "--config", str(config), "ingest")
    assert status == 0 and "3 rows added" in out.splitlines()[0]
    assert err.startswith(
        f"triage: warning: {config}: model[0].alert[0].signal: drift has no numeric field 'pssi'"
    )
    assert err.rstrip().endswith("(ingesting anyway; check, ui and replay refuse it)")
    assert len(err.splitlines()) == 1
    assert query(config, "SELECT count(*) FROM predictions_m") == [(3,)]
    status, _, err = run(capsys, "--config", str(config), "check")
    assert status == 3 and "model[0].alert[0].signal: drift has no numeric field 'pssi'" in err
