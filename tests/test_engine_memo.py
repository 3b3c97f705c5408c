"""Windows are reused while their token holds — by one engine across as-of times (replay, live
refresh) and, through the store, by another process — and the results equal a fresh evaluation;
a time-range reference of whole windows is read off those windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.store_support import config_of, write_config, write_jsonl, write_parquet
from triage import engine as engine_module
from triage.cli import main
from triage.engine import Engine, ModelReport, _labelled, _ordered
from triage.metrics import profile as profile_module
from triage.metrics.arrival import label_arrival
from triage.metrics.frame import Scope
from triage.metrics.operations import compute_operations
from triage.metrics.profile import SCORE_FEATURE
from triage.metrics.source import LabelledRows, reference_rows_sql
from triage.metrics.window_cache import WindowMemo
from triage.store import Store
from triage.store.info import looks_back
from triage.store.sources import fingerprint
from triage.tui.source import EngineSource

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)

MODEL = """
name = "fraud"
predictions = "{logs}/*.parquet"
labels = "{logs}/labels-*.jsonl"
threshold = 0.5
window = "1d"
min_samples = 20

[model.columns]
id = "request_id"
timestamp = "ts"
version = "model_version"
score = "score"
label = "label"
labeled_at = "labeled_at"
latency_ms = "latency_ms"

[model.features]
numeric = ["amount"]
categorical = ["payment"]

[model.segments]
columns = ["country"]

[model.reference]
start = "2026-01-01T00:00:00Z"
end = "2026-01-03T00:00:00Z"
"""


def day_file(logs: Path, name: str, day: int, n: int, seed: int) -> None:
    """n predictions over day `day`, and their labels arriving 0–4 days later."""
    step = 86_000 // n
    write_parquet(
        logs / f"{name}.parquet",
        f"""SELECT '{name}-' || i AS request_id,
            TIMESTAMP '2026-01-01' + INTERVAL {day} DAY + i * INTERVAL {step} SECOND AS ts,
            CASE WHEN i % 3 = 0 THEN 'v2' ELSE 'v1' END AS model_version,
            (hash(i, {seed}) % 1000) / 1000 AS score,
            (hash(i, {seed}, 1) % 10000) / 10.0 + {day} * 20 AS amount,
            CASE hash(i, {seed}, 2) % 3 WHEN 0 THEN 'card' WHEN 1 THEN 'wire' ELSE 'cash' END AS payment,
            CASE WHEN i % 2 = 0 THEN 'FR' ELSE 'DE' END AS country,
            (hash(i, {seed}, 4) % 500) / 10.0 AS latency_ms
        FROM range({n}) t(i)""",
    )
    labels = []
    for i in range(0, n, 2):
        at = DAY0 + timedelta(days=day, seconds=i * step) + timedelta(hours=(i * 7919 + seed) % 96)
        labels.append(
            {"request_id": f"{name}-{i}", "label": (i * 31 + seed) % 5 == 0, "labeled_at": at.isoformat()}
        )
    write_jsonl(logs / f"labels-{name}.jsonl", labels)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    for day in range(6):
        day_file(logs, f"d{day}", day, 600, seed=day)
    return write_config(tmp_path, MODEL.format(logs=logs))


AS_OF = [DAY0 + timedelta(days=2, hours=12), DAY0 + timedelta(days=4), DAY0 + timedelta(days=5, hours=6)]


def _spy_quality_since(monkeypatch: pytest.MonkeyPatch) -> list[datetime | None]:
    """From here on, the first window of each counting pass over the windows' rows (`since`; None:
    every window)."""
    since: list[datetime | None] = []
    original = engine_module.quality_counts

    def spy(con: object, scope: Scope, *rest: object) -> object:
        since.append(scope.since)
        return original(con, scope, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_module, "quality_counts", spy)
    return since


def test_one_engine_across_as_of_times_matches_fresh_engines(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    computed_since = _spy_quality_since(monkeypatch)
    with Engine(config) as engine:
        stepped = [engine.evaluate("fraud", as_of=at).to_json() for at in AS_OF]
    # The first evaluation computes every window; later ones start at the first window still
    # filling at the previous as-of (day 2, then day 4).
    assert computed_since == [DAY0, DAY0 + timedelta(days=2), DAY0 + timedelta(days=4)]
    for at, report in zip(AS_OF, stepped, strict=True):
        with Engine(config) as fresh:
            assert fresh.evaluate("fraud", as_of=at).to_json() == report


def test_new_rows_in_an_old_window_clear_the_memo(config_path: Path) -> None:
    config = config_of(config_path)
    at = DAY0 + timedelta(days=10)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        engine.refresh()
        before = engine.evaluate("fraud", as_of=at)
        day_file(config_path.parent / "logs", "late", 3, 300, seed=99)
        assert engine.refresh().changed
        after = engine.evaluate("fraud", as_of=at).to_json()
    with Engine(config) as fresh:
        assert fresh.evaluate("fraud", as_of=at).to_json() == after
    (day3,) = [w.n for w in before.windows if w.window_start == DAY0 + timedelta(days=3)]
    late = [w["n"] for w in after["windows"] if w["window_start"] == "2026-01-04T00:00:00Z"]
    assert late == [day3 + 300]


def test_a_reference_of_whole_windows_equals_the_reference_evaluated_on_its_own(config_path: Path) -> None:
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    at = DAY0 + timedelta(days=4, hours=3)
    with Engine(config) as engine:
        report = engine.evaluate("fraud", as_of=at)
        con = engine.store.cursor()
        scope = Scope.of(config.model("fraud"), at, segments=report.segments)
        source = reference_rows_sql(scope)
        calibration, performance = _labelled(con, scope, source)
        operations = compute_operations(con, scope, source)
    assert report.reference.n == 1200
    assert {r.window_start for r in report.reference_calibration} == {DAY0, DAY0 + timedelta(days=1)}
    assert sorted(report.reference_calibration, key=repr) == sorted(calibration, key=repr)
    assert sorted(report.reference_performance, key=repr) == sorted(performance, key=repr)
    assert sorted(report.reference_operations, key=repr) == sorted(operations, key=repr)
    assert any(row.auroc is not None for row in report.reference_performance)


@pytest.mark.parametrize("warm", [False, True])
def test_a_view_of_the_last_windows_judges_against_the_full_checks_reference_windows(
    config_path: Path, warm: bool
) -> None:
    """`--last N` leaves the reference's windows out of its view; the drift and data quality the
    rules draw their bands from are those windows' rows in the full evaluation, row for row —
    whether the reference's windows were cached by an earlier evaluation or not."""
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    at = DAY0 + timedelta(days=5, hours=6)
    with Engine(config) as engine:
        if warm:
            engine.warm()
        view = engine.evaluate("fraud", as_of=at, last=2)
    with Engine(config) as fresh:
        full = fresh.evaluate("fraud", as_of=at)
    end = DAY0 + timedelta(days=2)
    assert {r.window_start for r in view.drift} == {DAY0 + timedelta(days=4), DAY0 + timedelta(days=5)}
    assert view.reference_drift == tuple(r for r in full.drift if r.window_end <= end)
    assert view.reference_quality == tuple(r for r in full.data_quality if r.window_end <= end)
    assert {r.window_start for r in view.reference_drift} == {DAY0, DAY0 + timedelta(days=1)}
    assert sorted(view.reference_operations, key=repr) == sorted(full.reference_operations, key=repr)
    labelled = {"calibration", "performance", "operations"}
    assert full.reference_tables().keys() == labelled
    assert view.reference_tables().keys() == labelled | {"drift", "data_quality"}


def _spy_computations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The families computed rather than read from here on (the label arrival counted too)."""
    computed: list[str] = []
    for name in ("compute_calibration", "compute_performance", "compute_operations", "quality_counts"):
        original = getattr(engine_module, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            computed.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(engine_module, name, spy)
    counted = engine_module.label_arrival
    monkeypatch.setattr(
        engine_module, "label_arrival", lambda *args: computed.append("label_arrival") or counted(*args)
    )
    return computed


def test_a_view_of_the_last_windows_reads_the_reference_windows_of_a_warm_store(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --last N` in cron: the reference's windows it leaves out are those a full check or
    ingest's warm-up stored — their calibration, performance, operations, drift and data quality,
    and the labels' arrival are read, not evaluated again (10 M rows: 15 s → 6 s), and equal the
    full view's, row for row and in its order."""
    config = config_of(config_path)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        engine.refresh()  # ingest and warm, as of now: every label is in
    at = DAY0 + timedelta(days=12)  # every label is in by then: the present state
    computed = _spy_computations(monkeypatch)
    with Engine(config) as engine:
        view = engine.evaluate("fraud", as_of=at, last=9)
    assert computed == []
    monkeypatch.undo()
    with Engine(config) as fresh:
        full = fresh.evaluate("fraud", as_of=at)
    assert {w.window_start for w in view.windows} == {DAY0 + timedelta(days=d) for d in (4, 5)}
    assert view.reference_calibration == full.reference_calibration
    assert view.reference_performance == full.reference_performance
    assert view.reference_operations == full.reference_operations
    assert view.reference_arrival == full.reference_arrival and view.reference_arrival
    assert view.reference_drift == tuple(r for r in full.drift if r.window_end <= DAY0 + timedelta(days=2))
    assert any(r.auroc is not None for r in view.reference_performance)


def test_a_look_back_leaves_the_present_windows_stored(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check --at` an earlier time sees fewer labels in every window and part of its last one;
    stored, its rows would replace the present's, and the next check of the present would
    compute them all again. It stores nothing, and is exact all the same."""
    config = config_of(config_path)
    earlier, at = DAY0 + timedelta(days=3, hours=12), DAY0 + timedelta(days=12)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        engine.refresh()
        back = engine.evaluate("fraud", as_of=earlier).to_json()
        now = datetime.now(UTC)
        con = store.cursor()
        assert looks_back(con, config.model("fraud"), earlier, now)
        assert not looks_back(con, config.model("fraud"), at, now)  # nothing stamped after it
        # What is stamped after "now" (a producer's clock ahead) does not make a look back.
        before = DAY0 - timedelta(days=1)
        assert looks_back(con, config.model("fraud"), before, now)
        assert not looks_back(con, config.model("fraud"), before, DAY0 - timedelta(hours=1))
    computed = _spy_computations(monkeypatch)
    with Engine(config) as engine:
        engine.evaluate("fraud", as_of=at)
    assert computed == []
    monkeypatch.undo()
    with Engine(config) as fresh:
        assert fresh.evaluate("fraud", as_of=earlier).to_json() == back


def test_the_live_view_stores_its_windows_though_its_refresh_brought_rows_stamped_after_it(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live TUI takes its as-of time, then ingests: a prediction logged meanwhile comes in with
    the refresh, stamped after it. The snapshot is still the present: it stores the windows it
    computed (day 3's late rows), and the next check computes only the window of the new
    prediction (audit 42: taken for a look back, nothing was stored)."""
    config = config_of(config_path)
    assert main(["--config", str(config_path), "ingest"]) == 0
    source = EngineSource(config)
    try:
        as_of = datetime.now(UTC)
        logs = config_path.parent / "logs"
        day_file(logs, "late", 3, 300, seed=99)
        stamped = (as_of + timedelta(milliseconds=1)).replace(tzinfo=None).isoformat(sep=" ")
        write_parquet(
            logs / "meanwhile.parquet",
            f"""SELECT 'meanwhile' AS request_id, TIMESTAMP '{stamped}' AS ts, 'v1' AS model_version,
                0.5 AS score, 10.0 AS amount, 'card' AS payment, 'FR' AS country, 5.0 AS latency_ms""",
        )
        assert source.ingest_new() == 300 + 150 + 1  # day 3's, their labels, the one logged meanwhile
        assert source.snapshot(as_of).models
    finally:
        source.close()
    since = _spy_quality_since(monkeypatch)
    with Engine(config) as engine:
        engine.evaluate("fraud")
    assert since == [datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)]


def test_a_reference_off_the_window_bounds_gives_a_view_its_whole_windows_and_no_churn(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference from 06:00 on day 0 to 12:00 on day 2, in daily windows: a view of the last
    windows draws its bands from day 1 alone — the reference's only whole window, as the full
    view's rules do — and evaluates the reference's other tables on their own, storing no
    partial window over the full view's: full and `--last` checks in turn compute nothing new
    (audit 42: each stored its own day 2)."""
    model = MODEL.replace('start = "2026-01-01T00:00:00Z"', 'start = "2026-01-01T06:00:00Z"').replace(
        'end = "2026-01-03T00:00:00Z"', 'end = "2026-01-03T12:00:00Z"'
    )
    logs = config_path.parent / "logs"
    config = config_of(write_config(config_path.parent, model.format(logs=logs)))
    at = DAY0 + timedelta(days=12)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        engine.refresh()
        full = engine.evaluate("fraud", as_of=at)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        view = engine.evaluate("fraud", as_of=at, last=9)
    assert {r.window_start for r in view.reference_drift} == {DAY0 + timedelta(days=1)}
    assert view.reference_drift == tuple(r for r in full.drift if r.window_start == DAY0 + timedelta(days=1))
    assert view.reference_calibration == full.reference_calibration
    assert view.reference_operations == full.reference_operations
    since = _spy_quality_since(monkeypatch)
    computed = _spy_labelled_windows(monkeypatch)
    for last in (None, 9, None):
        with Store.open(config.store_path) as store, Engine(config, store) as engine:
            engine.evaluate("fraud", as_of=at, last=last)
    # Nothing but the reference on its own (all its rows, cut into windows) in each evaluation.
    assert since == [] and computed == [None, None, None]


def test_nothing_is_measured_against_a_reference_whose_period_is_still_open(config_path: Path) -> None:
    """Replaying from the first prediction starts with a reference that has no row yet, then one
    that holds the very windows it would be compared with: drift and data quality wait for its end."""
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    end = DAY0 + timedelta(days=2)
    with Engine(config) as engine:
        empty = engine.evaluate("fraud", as_of=DAY0 - timedelta(hours=1))
        inside = engine.evaluate("fraud", as_of=end - timedelta(hours=1))
        closed = engine.evaluate("fraud", as_of=end)
    assert empty.reference.n == 0 and empty.windows == () and empty.drift == ()
    assert inside.reference.n == sum(w.n for w in inside.windows) > 0
    assert not inside.reference.complete and inside.reference.note is not None
    assert "2026-01-03 00:00 UTC" in inside.reference.note
    assert inside.drift == () and inside.data_quality == () and inside.schema_changes == ()
    assert inside.calibration and inside.operations  # what does not need the reference goes on
    assert closed.reference.complete and closed.reference.note is None
    assert {row.feature for row in closed.drift} >= {"amount", "payment"} and closed.data_quality


def _spy_labelled_windows(monkeypatch: pytest.MonkeyPatch) -> list[list[datetime] | None]:
    """The windows whose calibration and performance are computed from here on."""
    computed: list[list[datetime] | None] = []
    original = LabelledRows.cells

    def spy(self: LabelledRows, reducers: object, windows: list[datetime] | None = None) -> object:
        computed.append(None if windows is None else list(windows))
        return original(self, reducers, windows)  # type: ignore[arg-type]

    monkeypatch.setattr(LabelledRows, "cells", spy)
    return computed


def test_a_warm_store_serves_every_family_to_another_process(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`triage ingest` warms the store; a read-only engine then computes nothing and agrees with
    an evaluation of a store ingested without warming."""
    (tmp_path / "cold").mkdir()
    cold = write_config(tmp_path / "cold", MODEL.format(logs=config_path.parent / "logs"))
    assert main(["--config", str(config_path), "ingest"]) == 0
    assert main(["--config", str(cold), "ingest", "--no-warm"]) == 0
    at = DAY0 + timedelta(days=30)
    computed = _spy_labelled_windows(monkeypatch)
    since: list[object] = []
    monkeypatch.setattr(engine_module, "quality_counts", lambda con, scope, *_: since.append(scope) or {})
    with Engine(config_of(config_path)) as engine:
        warm = engine.evaluate("fraud", as_of=at).to_json()
    assert computed == [] and since == []  # every window of every family came from the store
    monkeypatch.undo()
    with Engine(config_of(cold)) as engine:
        assert engine.evaluate("fraud", as_of=at).to_json() == warm
    assert any(row["auroc"] is not None for row in warm["performance"])


def test_rows_read_back_from_the_store_share_their_repeated_text_and_times(config_path: Path) -> None:
    """Every table's rows from the store hold one object per distinct window time, version, slice,
    feature and note (a high-cardinality check keeps hundreds of thousands of rows in memory)."""
    assert main(["--config", str(config_path), "ingest"]) == 0
    with Engine(config_of(config_path)) as engine:
        report = engine.evaluate("fraud", as_of=DAY0 + timedelta(days=30))
    for table, rows in report.tables().items():
        if table == "feed":
            continue  # a row per slice, computed as of T: never read back
        assert rows, table
        for field in ("window_start", "window_end", "version", "segment", "segment_value", "note", "feature"):
            values = [getattr(row, field) for row in rows if getattr(row, field, None) is not None]
            assert len({id(value) for value in values}) == len(set(values)), (table, field)


def fresh_report(config_path: Path, tmp_path: Path, at: datetime) -> dict[str, Any]:
    """The report of a store built from scratch, from the same logs and config."""
    folder = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    folder.mkdir()
    config = folder / "triage.toml"
    config.write_text(config_path.read_text())
    assert main(["--config", str(config), "ingest"]) == 0
    with Engine(config_of(config)) as engine:
        return engine.evaluate("fraud", as_of=at).to_json()


def rewrite(log: Path) -> None:
    """The same ids on the same rows, other scores and amounts: a corrected or backfilled file."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM '{log}'")
    con.execute(
        "COPY (SELECT * REPLACE (least(score + 0.3, 1.0) AS score, amount * 1.7 AS amount) FROM t) "
        f"TO '{log}'"
    )
    con.close()


def test_a_file_replaced_with_the_same_ids_is_measured_again(config_path: Path, tmp_path: Path) -> None:
    """A log rewritten with the same ids on the same rows but other values moves what it touches —
    a day of traffic, and a day inside the reference (the profile every window is judged by) —
    exactly as in a store built from scratch."""
    at = DAY0 + timedelta(days=10)
    assert main(["--config", str(config_path), "ingest"]) == 0
    with Engine(config_of(config_path)) as engine:
        before = engine.evaluate("fraud", as_of=at).to_json()
    for name in ("d1", "d4"):  # d1 inside the reference (days 0 and 1), d4 after it
        rewrite(config_path.parent / "logs" / f"{name}.parquet")
    assert main(["--config", str(config_path), "ingest"]) == 0
    with Engine(config_of(config_path)) as engine:
        after = engine.evaluate("fraud", as_of=at).to_json()
    assert after == fresh_report(config_path, tmp_path, at)
    for table in ("drift", "calibration"):
        assert after[table] != before[table], table


@pytest.mark.parametrize("older_store", [False, True])
def test_a_rebuild_measures_every_window_again(config_path: Path, tmp_path: Path, older_store: bool) -> None:
    """`ingest --rebuild` reads every log again, and no window keeps what was cached from the
    rows before — here a file changed in a way its registry entry did not show. Also in a store
    made before file ids came from a sequence (its first rebuild must not start them over)."""
    at = DAY0 + timedelta(days=10)
    assert main(["--config", str(config_path), "ingest"]) == 0
    with Engine(config_of(config_path)) as engine:
        before = engine.evaluate("fraud", as_of=at).to_json()
    log = config_path.parent / "logs" / "d4.parquet"
    rewrite(log)
    stat = log.stat()
    with Store.open(config_of(config_path).store_path) as store:
        store.connection.execute(
            "UPDATE _triage_files SET size = ?, mtime = ?, content_hash = ? WHERE path LIKE '%d4.parquet'",
            [stat.st_size, stat.st_mtime, fingerprint(str(log), stat.st_size)],
        )
    assert main(["--config", str(config_path), "ingest"]) == 0  # nothing to read, it seems
    with Engine(config_of(config_path)) as engine:
        assert engine.evaluate("fraud", as_of=at).to_json() == before
    if older_store:
        with Store.open(config_of(config_path).store_path) as store:
            store.connection.execute("DROP SEQUENCE _triage_file_ids")
    assert main(["--config", str(config_path), "ingest", "--rebuild"]) == 0
    with Engine(config_of(config_path)) as engine:
        rebuilt = engine.evaluate("fraud", as_of=at).to_json()
    assert rebuilt == fresh_report(config_path, tmp_path, at) and rebuilt != before


def test_a_changed_threshold_is_refused_until_the_store_is_rebuilt(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stored decisions were taken at the old threshold: a check under the new one would report
    (and cache) the old decision rate, precision and costs. It exits 3 and says what to do."""
    assert main(["--config", str(config_path), "ingest"]) == 0
    config_path.write_text(config_path.read_text().replace("threshold = 0.5", "threshold = 0.3"))
    capsys.readouterr()
    assert main(["--config", str(config_path), "check", "--at", "2026-01-10"]) == 3
    err = capsys.readouterr().err
    assert "threshold changed since the store was built (0.5 → 0.3)" in err and "--rebuild" in err
    assert main(["--config", str(config_path), "ingest", "--rebuild"]) == 0
    at = DAY0 + timedelta(days=10)
    with Engine(config_of(config_path)) as engine:
        assert engine.evaluate("fraud", as_of=at).to_json() == fresh_report(config_path, tmp_path, at)


def test_a_late_label_recomputes_only_its_window(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["--config", str(config_path), "ingest"]) == 0
    logs = config_path.parent / "logs"
    late = {"request_id": "d1-1", "label": True, "labeled_at": (DAY0 + timedelta(days=9)).isoformat()}
    write_jsonl(logs / "labels-late.jsonl", [late])
    computed = _spy_labelled_windows(monkeypatch)
    assert main(["--config", str(config_path), "ingest"]) == 0  # warms what changed
    assert computed == [[DAY0 + timedelta(days=1)]]
    with Engine(config_of(config_path)) as engine:
        report = engine.evaluate("fraud", as_of=DAY0 + timedelta(days=30))
    (cell,) = [
        row
        for row in report.performance
        if row.window_start == DAY0 + timedelta(days=1) and row.version is None and row.segment is None
    ]
    assert cell.n_labeled == 301  # the 300 labels of the window's even rows, and the late one


def _raw_labels(logs: Path) -> list[tuple[datetime, datetime]]:
    """(daily window of its prediction, labeled_at) of every label, from the log files themselves."""
    window_of = {f"d{day}-{i}": DAY0 + timedelta(days=day) for day in range(6) for i in range(600)}
    labels = [
        json.loads(line) for path in logs.glob("labels-*.jsonl") for line in path.read_text().splitlines()
    ]
    return [(window_of[label["request_id"]], datetime.fromisoformat(label["labeled_at"])) for label in labels]


def _expected_slack(
    labels: list[tuple[datetime, datetime]], times: list[datetime], slack: float
) -> list[tuple[list[datetime], dict[datetime, int]]]:
    """Per evaluation after the first: the windows recomputed and the labels pending per settled
    window, by the rule — a window is recomputed when labels arrived since its rows were computed
    and they exceed `slack` × the labelled rows those counted."""

    def count(window: datetime, after: datetime | None, upto: datetime) -> int:
        return sum(1 for w, at in labels if w == window and (after is None or at > after) and at <= upto)

    windows = sorted({w for w, _ in labels})
    base = dict.fromkeys(windows, times[0])
    steps = []
    for t in times[1:]:
        recomputed, pending = [], {}
        for w in windows:
            arrived = count(w, base[w], t)
            if arrived and arrived <= slack * count(w, None, base[w]):
                pending[w] = arrived
            elif arrived:
                recomputed.append(w)
                base[w] = t
        steps.append((recomputed, pending))
    return steps


def _labelled_rows(report: ModelReport, window: datetime) -> list[object]:
    return [r for r in (*report.calibration, *report.performance) if r.window_start == window]


def test_live_label_slack_keeps_windows_until_their_new_labels_pile_up(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a label slack, a window whose predictions did not change keeps its calibration and
    performance while the labels that arrived since are at most that share of those it counts;
    the report says how many it does not count yet; past the slack it is recomputed exactly."""
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    slack = 0.05
    t0 = DAY0 + timedelta(days=6)  # every prediction is in; labels arrive until day 9
    times = [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2), t0 + timedelta(hours=30)]
    steps = _expected_slack(_raw_labels(config_path.parent / "logs"), times, slack)
    assert steps[0][1] and steps[-1][0]  # the data's premise: windows settle, and later recompute
    with Engine(config) as live, Engine(config) as exact:
        live.evaluate("fraud", as_of=t0, label_slack=slack)
        computed = _spy_labelled_windows(monkeypatch)
        for at, (recomputed, pending) in zip(times[1:], steps, strict=True):
            computed.clear()
            report = live.evaluate("fraud", as_of=at, label_slack=slack)
            assert computed == ([recomputed] if recomputed else [])
            assert dict(report.pending_labels) == pending
            truth = exact.evaluate("fraud", as_of=at)
            for window in {w.window_start for w in truth.windows}:
                same = _labelled_rows(report, window) == _labelled_rows(truth, window)
                assert same == (window not in pending), window
            assert report.drift == truth.drift and report.operations == truth.operations
        # Looking back in time is exact, slack or not.
        back = live.evaluate("fraud", as_of=times[1], label_slack=slack)
        assert back.to_json() == exact.evaluate("fraud", as_of=times[1]).to_json()


def test_prepared_reference_ecdfs_serve_the_new_windows(
    config_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `Engine.prepare`, new windows' drift is measured without building a reference ECDF,
    and equals what an engine on a store of its own computes."""
    config = config_of(config_path)
    (tmp_path / "other").mkdir()
    other = config_of(write_config(tmp_path / "other", MODEL.format(logs=config_path.parent / "logs")))
    builds: list[object] = []
    original = profile_module._ReferenceValues.ecdfs

    def spy(*args: object) -> object:
        builds.append(args[1])
        return original(*args)  # type: ignore[arg-type]

    with Store.open(config.store_path) as store:
        store.ingest(config)
        live = Engine(config, store)  # writable, as the TUI's: the profile is stored once
        live.prepare("fraud")
        monkeypatch.setattr(profile_module._ReferenceValues, "ecdfs", spy)
        report = live.evaluate("fraud", as_of=AS_OF[2])
    assert builds == []
    assert len({r.window_start for r in report.drift if r.ks_d is not None}) == 6  # every day
    with Store.open(other.store_path) as store:
        store.ingest(other)
    with Engine(other) as fresh:
        assert report.drift == fresh.evaluate("fraud", as_of=AS_OF[2]).drift
    assert builds  # that engine built its own


def test_prepare_on_a_stored_profile_reads_the_reference_once_and_holds_every_ecdf(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the profile stored already (by an earlier engine), `prepare` builds the ECDFs itself:
    one read of the reference for all numeric features, then the new windows need none."""
    config = config_of(config_path)
    reads: list[list[str]] = []
    builds: list[object] = []
    read, build = profile_module._ReferenceValues.read, profile_module._ReferenceValues.ecdfs

    def read_spy(cls: object, *args: Any) -> Any:
        reads.append([f.name for f in args[2]])
        return read(*args)

    def build_spy(*args: Any) -> Any:
        builds.append(args[1])
        return build(*args)

    with Store.open(config.store_path) as store:
        store.ingest(config)
        Engine(config, store).evaluate("fraud", as_of=AS_OF[0])  # stores the profile, the first windows
        live = Engine(config, store)
        monkeypatch.setattr(profile_module._ReferenceValues, "read", classmethod(read_spy))
        live.prepare("fraud")
        assert reads == [["amount", SCORE_FEATURE]]
        monkeypatch.setattr(profile_module._ReferenceValues, "ecdfs", build_spy)
        report = live.evaluate("fraud", as_of=AS_OF[2])
    assert builds == []
    assert len({r.window_start for r in report.drift if r.ks_d is not None}) == 6  # days 3–5 are new


def test_rows_are_ordered_once_per_window_and_again_when_a_window_is_recomputed(config_path: Path) -> None:
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    with Engine(config) as engine:
        rows = list(engine.evaluate("fraud", as_of=AS_OF[-1]).drift)
    by_window: dict[datetime, list] = {}
    for row in reversed(rows):  # out of order, windows too
        by_window.setdefault(row.window_start, []).append(row)
    memo, calls = WindowMemo(), []

    def order(window_rows: list) -> list:
        calls.append(len(window_rows))
        return _ordered(window_rows)

    memo.put("k", "drift", {}, {})
    assert memo.ordered("k", "drift", by_window, order) == tuple(_ordered(rows))
    assert len(calls) == len(by_window) > 1
    assert memo.ordered("k", "drift", by_window, order) == tuple(_ordered(rows))
    assert len(calls) == len(by_window)  # nothing ordered again
    last = max(by_window)
    by_window[last] = list(reversed(by_window[last]))  # the newest window recomputed
    assert memo.ordered("k", "drift", by_window, order) == tuple(_ordered(rows))
    assert len(calls) == len(by_window) + 1


def test_the_reference_label_arrival_is_kept_while_its_labels_are(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the reference's labels came (`metrics.arrival`) is counted once per state of its
    windows' labels: the same counts while no label of the reference arrives, new ones when one
    does; a view of the last N windows reads the same counts."""
    config = config_of(config_path)
    with Store.open(config.store_path) as store:
        store.ingest(config)
    settled, later, early = (DAY0 + timedelta(days=d) for d in (9, 10, 3))
    everyone = (None, None, None)
    with Engine(config) as engine:
        first = engine.evaluate("fraud", as_of=settled).reference_arrival
        kept = engine.evaluate("fraud", as_of=later).reference_arrival
        assert all(kept[key] is arrival for key, arrival in first.items())
        young = engine.evaluate("fraud", as_of=early).reference_arrival
        assert young[everyone].labelled_counts.sum() < first[everyone].labelled_counts.sum()
        view = engine.evaluate("fraud", as_of=settled, last=2).reference_arrival
    with Engine(config) as fresh:
        again = fresh.evaluate("fraud", as_of=settled).reference_arrival
    assert first == again == view and len(first) == 3 * 3  # (all, v1, v2) × (all, DE, FR)
    assert first[everyone].n == 2 * 600 and first[everyone].labelled_counts.sum() == 600  # every other row
    # warmed into the store by ingest: a check in another process reads it, not the labels
    with Store.open(config.store_path) as store, Engine(config, store) as warm:
        warm.warm()
    counted: list[object] = []
    monkeypatch.setattr(engine_module, "label_arrival", lambda *args: counted.append(args))
    with Engine(config) as reader:
        assert reader.evaluate("fraud").reference_arrival == again
    assert counted == []


def test_a_label_backfilled_before_the_one_that_counts_renews_the_stored_arrival(config_path: Path) -> None:
    """A provisional decision ingested after the label that superseded it changes no counting label
    — nor any window's token — but it changes how the reference's labels stood over time: the
    stored label arrival must be counted again, not read (audit 41)."""
    config = config_of(config_path)
    settled = DAY0 + timedelta(days=9)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        store.ingest(config)
        engine.warm()
        before = engine.evaluate("fraud", as_of=settled).reference_arrival
    logs = config_path.parent / "logs"
    step = 86_000 // 600
    provisional = [
        {
            "request_id": f"d0-{i}",
            "label": (i * 31) % 5 != 0,  # the other class, a second after the prediction
            "labeled_at": (DAY0 + timedelta(seconds=i * step + 1)).isoformat(),
        }
        for i in range(0, 600, 2)
        if (i * 7919) % 96  # its label came hours later: the provisional one never counts
    ]
    write_jsonl(logs / "labels-a-provisional.jsonl", provisional)
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        store.ingest(config)
        engine.warm()
    with Engine(config) as reader:
        after = reader.evaluate("fraud", as_of=settled).reference_arrival
        con = reader.store.cursor()
        scope = Scope.of(config.model("fraud"), as_of=settled, segments=("country",))
        counted = label_arrival(con, scope, reference_rows_sql(scope))
    assert after == counted and after != before
