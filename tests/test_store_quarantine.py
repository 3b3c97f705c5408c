"""Quarantine reasons and exact counts, duplicates, labels (unknown ids, superseding, as of T), references."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_score, recall_score

from tests.store_support import config_of, ingest, query, write_config, write_jsonl, write_parquet
from triage.cli import main
from triage.metrics.frame import Scope
from triage.metrics.quality import schema_changes
from triage.store import Store, StoreError, labeled_predictions_sql, labels_as_of_sql, reference_sql
from triage.store.schema import REASON_BAD_VALUE

MODEL = """
name = "fraud"
predictions = "{predictions}"
{labels}

[model.columns]
id = "request_id"
timestamp = "ts"
score = "score"
version = "model_version"
latency_ms = "latency"
{label_columns}
"""


def model(predictions: str, labels: str | None = None, label_columns: str = "", extra: str = "") -> str:
    return (
        MODEL.format(
            predictions=predictions,
            labels=f'labels = "{labels}"' if labels else "",
            label_columns=label_columns,
        )
        + extra
    )


def classes_model(predictions: str, labels: str, column: str, positive: str) -> str:
    """A model whose labels are class names (column `y`), with one more column and `[model.positive]`."""
    return (
        f'name = "fraud"\npredictions = "{predictions}"\nlabels = "{labels}"\n\n'
        f'[model.columns]\nid = "request_id"\ntimestamp = "ts"\nscore = "score"\n{column}\n'
        f'label = "y"\n\n[model.positive]\n{positive}\n'
    )


def good(i: int, **extra: object) -> dict[str, object]:
    return {"request_id": f"r{i}", "ts": "2026-01-01T00:00:00Z", "score": 0.5, "model_version": "v1", **extra}


def test_every_jsonl_reason_is_counted_and_nothing_is_lost(tmp_path: Path) -> None:
    lines: list[object] = [good(i) for i in range(10)]
    bad: list[tuple[object, str]] = [
        ('{"request_id": "x1", "ts": ', "unparseable JSON"),
        ("[1, 2, 3]", "unparseable JSON"),
        ({"ts": "2026-01-01", "score": 0.5}, "missing id"),
        ({"request_id": "", "ts": "2026-01-01", "score": 0.5}, "missing id"),
        ({"request_id": "x2", "score": 0.5}, "missing timestamp"),
        ({"request_id": "x3", "ts": "yesterday", "score": 0.5}, "bad timestamp"),
        ({"request_id": "x4", "ts": "2026-01-01"}, "missing score"),
        ({"request_id": "x5", "ts": "2026-01-01", "score": "high"}, "score not a number"),
        ({"request_id": "x6", "ts": "2026-01-01", "score": "NaN"}, "score not a number"),
        ({"request_id": "x7", "ts": "2026-01-01", "score": 1.5}, "score outside [0, 1]"),
        ({"request_id": "x8", "ts": "2026-01-01", "score": -0.1}, "score outside [0, 1]"),
        ({"request_id": "x9", "ts": "2026-01-01", "score": 0.5, "decision": "maybe"}, "bad type"),
        (good(3), "duplicate id"),
        (good(3), "duplicate id"),
    ]
    lines += [line for line, _ in bad]
    lines += ["", "   "]  # blank lines are not rows
    lines += [good(i, latency="NA") for i in range(10, 15)]  # "NA" is a missing latency, not a bad one
    # An optional value of another type costs that value, not the row: stored NULL and recorded.
    lines += [good(15, latency="slow"), good(16, latency="12 ms")]
    write_jsonl(tmp_path / "p.jsonl", lines)
    config = write_config(tmp_path, model("p.jsonl", label_columns='prediction = "decision"'))
    summary = ingest(config)

    expected: dict[str, int] = {}
    for _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(summary.quarantined_by_reason) == expected
    rows_in = 10 + len(bad) + 5 + 2
    assert summary.rows_added + summary.rows_quarantined == rows_in
    assert (summary.rows_added, summary.rows_quarantined) == (17, len(bad))
    assert [f.bad_values for f in summary.files] == [(("latency", 2),)]
    assert query(config, "SELECT count(*), count(_latency_ms) FROM predictions_fraud") == [(17, 0)]
    kept = query(
        config,
        "SELECT line, detail, raw FROM _triage_quarantine WHERE reason = ? ORDER BY line",
        [REASON_BAD_VALUE],
    )
    assert kept == [
        (len(lines) - 1, "latency: slow is not a finite number", json.dumps(lines[-2])),
        (len(lines), "latency: 12 ms is not a finite number", json.dumps(lines[-1])),
    ]
    assert query(config, "SELECT count(*) FROM predictions_fraud WHERE _id IN ('r15', 'r16')") == [(2,)]
    got = query(
        config,
        "SELECT line, reason, raw FROM _triage_quarantine WHERE reason <> ? ORDER BY line",
        [REASON_BAD_VALUE],
    )
    for (_, reason, raw), (original, expected_reason) in zip(got, bad, strict=True):
        assert reason == expected_reason
        assert raw == (original if isinstance(original, str) else json.dumps(original))
    assert [line for line, _, _ in got] == list(range(11, 11 + len(bad)))
    details = dict(query(config, "SELECT reason, detail FROM _triage_quarantine WHERE line IN (18, 22, 23)"))
    assert details == {
        "score not a number": "score high",
        "bad type": "decision: maybe is not true/false, 1/0 or yes/no (class names: [model.positive])",
        "duplicate id": "id r3 first seen at line 4",
    }
    # A row that got as far as the type checks keeps its own time (schema changes count them by it).
    row_ts = query(config, "SELECT reason, row_ts FROM _triage_quarantine WHERE line IN (21, 22)")
    day = datetime(2026, 1, 1)
    assert sorted(row_ts) == [("bad type", day), ("score outside [0, 1]", day)]


INFINITE_OPERATIONS = """
[model.columns]
id = "request_id"
timestamp = "ts"
score = "score"
latency_ms = "latency"
cost = "cost"
tokens = "tokens"

[model.features]
numeric = ["amount"]
"""


def test_an_infinite_latency_cost_or_token_count_is_a_bad_value(tmp_path: Path) -> None:
    """JSON's Infinity, 1e400 (beyond a double) and "inf", and Parquet's native inf, of a latency,
    cost or token count are not numbers an average can use: stored NULL, recorded, the row kept;
    an infinite feature value is a missing value (DESIGN §4), not a bad one."""
    base = {"ts": "2026-01-01T00:00:00Z", "score": 0.5, "latency": 10, "cost": 0.01, "tokens": 5, "amount": 1}
    lines: list[object] = [json.dumps({"request_id": f"r{i}", **base}) for i in range(4)]
    lines += [
        '{"request_id": "a", "ts": "2026-01-01T00:00:00Z", "score": 0.5, "latency": Infinity}',
        '{"request_id": "b", "ts": "2026-01-01T00:00:00Z", "score": 0.5, "cost": 1e400}',
        '{"request_id": "c", "ts": "2026-01-01T00:00:00Z", "score": 0.5, "tokens": "-inf"}',
        '{"request_id": "d", "ts": "2026-01-01T00:00:00Z", "score": 0.5, "amount": Infinity}',
    ]
    write_jsonl(tmp_path / "logs" / "p.jsonl", lines)
    write_parquet(
        tmp_path / "logs" / "q.parquet",
        "SELECT 'e' AS request_id, TIMESTAMPTZ '2026-01-01 00:00:00Z' AS ts, 0.5 AS score, "
        "'inf'::DOUBLE AS latency, 0.01 AS cost, 5 AS tokens, 1.0 AS amount",
    )
    config = write_config(tmp_path, f'name = "m"\npredictions = "logs"\n{INFINITE_OPERATIONS}')
    summary = ingest(config)
    assert (summary.rows_added, summary.rows_quarantined) == (9, 0)
    assert sorted(value for f in summary.files for value in f.bad_values) == [
        ("cost", 1),
        ("latency", 1),
        ("latency", 1),
        ("tokens", 1),
    ]
    stored = query(
        config,
        "SELECT _id, _latency_ms, _cost, _tokens, amount FROM predictions_m "
        "WHERE _id IN ('a', 'b', 'c', 'd', 'e') ORDER BY _id",
    )
    assert stored == [
        ("a", None, None, None, None),
        ("b", None, None, None, None),
        ("c", None, None, None, None),
        ("d", None, None, None, float("inf")),
        ("e", None, 0.01, 5.0, 1.0),
    ]
    details = query(config, "SELECT detail FROM _triage_quarantine ORDER BY detail")
    assert details == [
        ("cost: 1e400 is not a finite number",),
        ("latency: Infinity is not a finite number",),
        ("latency: inf is not a finite number",),
        ("tokens: -inf is not a finite number",),
    ]


def test_a_jsonl_file_without_a_required_key_on_any_line_says_so(tmp_path: Path) -> None:
    """Its rows are quarantined like any row lacking the key, and a warning names the mapping (a
    CSV header without the column is a file error); not when the key is there without a value."""
    lines: list[object] = [{k: v for k, v in good(i).items() if k != "score"} for i in range(5)]
    write_jsonl(tmp_path / "p.jsonl", [*lines, '{"request_id": "x", '])  # and a broken line
    config = write_config(tmp_path, model("p.jsonl"))
    summary = ingest(config)
    assert (summary.rows_added, dict(summary.quarantined_by_reason)) == (
        0,
        {"missing score": 5, "unparseable JSON": 1},
    )
    assert [w for w in summary.warnings if "no line of" in w] == [
        f"model[0]: no line of {tmp_path / 'p.jsonl'} has the key 'score' (model[0].columns.score); "
        "its 5 rows are quarantined as 'missing score': check the mapping"
    ]
    write_jsonl(tmp_path / "p.jsonl", [good(i, score=None) for i in range(5, 8)])  # rewritten
    summary = ingest(config)
    assert dict(summary.quarantined_by_reason) == {"missing score": 3}
    assert not [w for w in summary.warnings if "no line of" in w]


def test_files_without_a_mapped_column_are_one_warning(tmp_path: Path) -> None:
    """A column added one day leaves every earlier file without it: one warning for the column
    (how many files, the first and the last), not one per file; a single file is named."""
    logs = tmp_path / "logs"

    def day(number: int, latency: str = "") -> Path:
        rows = f"SELECT 'r{number}' || i AS request_id, TIMESTAMPTZ '2026-01-0{number} 00:00Z' AS ts, "
        select = f"{rows}0.5 AS score, 'v1' AS model_version{latency} FROM range(3) t(i)"
        return write_parquet(logs / f"d{number}.parquet", select)

    first, *_, last = [day(number) for number in range(1, 4)]  # before the latency was logged
    day(4, ", 5.0 AS latency")
    config = write_config(tmp_path, model("logs/*.parquet"))
    summary = ingest(config)
    assert summary.rows_added == 12
    assert [w for w in summary.warnings if "no column" in w] == [
        "model[0]: 3 predictions files have no column 'latency' (model[0].columns.latency_ms), "
        f"from {first} to {last}; stored as NULL"
    ]
    assert [w for w in ingest(config).warnings if "no column" in w] == []  # nothing new
    fifth = day(5)
    assert [w for w in ingest(config).warnings if "no column" in w] == [
        f"model[0]: predictions file {fifth} has no column 'latency' (model[0].columns.latency_ms); "
        "stored as NULL"
    ]


def test_csv_and_parquet_quarantine(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_text(
        "request_id,ts,score,model_version,latency\n"
        "c1,2026-01-01,0.1,v1,10\n"
        'c2,2026-01-01,0.2,v1,"12\n'  # unbalanced quote
        "c3,2026-01-01,0.3,v1\n"  # a field short
        "c4,2026-01-01,abc,v1,3\n"
        "c5,2026-01-01,0.5,v1,3\n"
    )
    write_parquet(
        logs / "b.parquet",
        "SELECT * FROM (VALUES ('p1', '2026-01-01', 0.5, 'v2', 1.0), (NULL, '2026-01-01', 0.5, 'v2', 1.0), "
        "('p3', '2026-01-01', 'nan'::DOUBLE, 'v2', 1.0), ('c1', '2026-01-01', 0.2, 'v2', 1.0)) "
        "t(request_id, ts, score, model_version, latency)",
    )
    config = write_config(tmp_path, model("logs"))
    summary = ingest(config)
    by_file = {Path(f.path).name: dict(f.quarantined_by_reason) for f in summary.files}
    assert by_file == {
        "a.csv": {"malformed CSV line": 2, "score not a number": 1},
        "b.parquet": {"missing id": 1, "score not a number": 1, "duplicate id": 1},
    }
    assert (summary.rows_added, summary.rows_quarantined) == (3, 6)
    got = query(config, "SELECT file, line, reason, detail, raw FROM _triage_quarantine ORDER BY file, line")
    assert [(Path(f).name, line, reason) for f, line, reason, _, _ in got] == [
        ("a.csv", 3, "malformed CSV line"),
        ("a.csv", 4, "malformed CSV line"),
        ("a.csv", 5, "score not a number"),
        ("b.parquet", 2, "missing id"),
        ("b.parquet", 3, "score not a number"),
        ("b.parquet", 4, "duplicate id"),
    ]
    unclosed = "a quote is not closed on this line (a line break inside a quoted field, or a stray quote)"
    assert got[0][3:] == (unclosed, 'c2,2026-01-01,0.2,v1,"12')
    assert got[1][3:] == ("expected 5 fields, found 4", "c3,2026-01-01,0.3,v1")
    parquet_raw = json.loads(got[3][4])
    assert parquet_raw == {
        "request_id": None,
        "ts": "2026-01-01",
        "score": 0.5,
        "model_version": "v2",
        "latency": 1.0,
    }
    assert got[5][3] == "id c1 already ingested"


def test_labels_and_decisions_named_by_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With `[model.positive]`, a label or decision among the positive class names (trimmed, any
    case) is 1 and any other class 0; a null word is not a class. Precision and recall then equal
    scikit-learn's with `pos_label` on the raw class names."""
    labels = ["Fraud", " legit ", "FRAUD", "chargeback", "legit", "legit", "fraud", "Legit"] * 5
    decisions = ["Block", "allow", "block", "allow", "block", "allow", " BLOCK", "allow"] * 5
    rows = [good(i, decision=d) for i, d in enumerate(decisions)]
    rows.append(good(40, decision=""))  # no decision logged: score 0.5 >= threshold 0.5
    write_jsonl(tmp_path / "p.jsonl", rows)
    label_rows = [{"request_id": f"r{i}", "y": y} for i, y in enumerate(labels)]
    label_rows += [{"request_id": "r40", "y": "NA"}, {"request_id": "r40", "y": ""}]
    write_jsonl(tmp_path / "l.jsonl", label_rows)
    body = (
        'name = "fraud"\npredictions = "p.jsonl"\nlabels = "l.jsonl"\nmin_samples = 5\n\n'
        '[model.columns]\nid = "request_id"\ntimestamp = "ts"\nscore = "score"\nprediction = "decision"\n'
        'label = "y"\n\n[model.positive]\nlabel = ["fraud", "Chargeback"]\nprediction = "block"\n'
    )
    config_path = write_config(tmp_path, body)
    summary = ingest(config_path)
    assert dict(summary.quarantined_by_reason) == {"bad type": 1, "missing label": 1}
    assert summary.warnings == ()  # each class name matched some value
    assert query(config_path, "SELECT detail FROM _triage_quarantine WHERE reason = 'bad type'") == [
        ("y: NA is not a class",)
    ]
    stored = dict(query(config_path, "SELECT _id, _label FROM labels_fraud"))
    assert stored == {
        f"r{i}": float(y.strip().lower() in ("fraud", "chargeback")) for i, y in enumerate(labels)
    }
    decided = dict(query(config_path, "SELECT _id, _decision FROM predictions_fraud"))
    assert decided == {f"r{i}": d.strip().lower() == "block" for i, d in enumerate(decisions)} | {"r40": True}

    assert main(["--config", str(config_path), "check", "--json"]) in (0, 1, 2)
    document = json.loads(capsys.readouterr().out)
    cell = next(
        r for r in document["models"][0]["performance"] if r["version"] is None and r["segment"] is None
    )
    truth = ["fraud" if y.strip().lower() in ("fraud", "chargeback") else "legit" for y in labels]
    said = ["fraud" if d.strip().lower() == "block" else "legit" for d in decisions]
    assert cell["n_labeled"] == len(labels)
    assert cell["precision"] == pytest.approx(precision_score(truth, said, pos_label="fraud"), abs=1e-12)
    assert cell["recall"] == pytest.approx(recall_score(truth, said, pos_label="fraud"), abs=1e-12)


def test_class_names_no_value_has_are_warned_once_per_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A class name of `[model.positive]` that none of the values ingested has (`"flagged"` where
    the log says `FLAG`) turns every decision negative, silently: ingest warns on stderr, once per
    column over all its files, with the column's most frequent values as logged."""
    decisions = ["FLAG", "pass", "pass", "pass", " Flag", "", "pass"]
    rows = [
        {"request_id": f"r{i}", "ts": "2026-01-01", "score": 0.5, "decision": d}
        for i, d in enumerate(decisions)
    ]
    write_jsonl(tmp_path / "p.jsonl", rows[:4])
    (tmp_path / "p.csv").write_text(
        "request_id,ts,score,decision\n"
        + "".join(f"r{i},2026-01-01,0.5,{d}\n" for i, d in enumerate(decisions) if i >= 4)
    )
    labels = ["FRAUD", " fraud ", "legit", "LEGIT", "legit", "Chargeback", "NA", "legit"]
    write_jsonl(tmp_path / "l1.jsonl", [{"request_id": f"r{i}", "y": y} for i, y in enumerate(labels[:5])])
    write_parquet(
        tmp_path / "l2.parquet",
        "SELECT * FROM (VALUES "
        + ", ".join(f"('r{i}', '{y}')" for i, y in enumerate(labels) if i >= 5)
        + ") t(request_id, y)",
    )
    positive = 'label = ["fraudulent", "chargeback"]\nprediction = "flagged"'
    config_path = write_config(tmp_path, classes_model("p.*", "l*", 'prediction = "decision"', positive))
    assert main(["--config", str(config_path), "ingest", "--no-warm"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out

    def seen(values: list[str]) -> str:
        """How many values there are (no null word), and the most frequent, counted here."""
        counts = Counter(v for v in values if v.strip().lower() not in ("", "na"))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
        listed = ", ".join(f"'{value}' {n}" for value, n in ranked)
        return f"{sum(counts.values())} values read by this ingest (most frequent: {listed})"

    expected = (
        "triage: warning: {}: model[0].positive.{}: expected class names that column {!r} holds "
        "(trimmed, in any case): {}"
    )
    assert err.splitlines() == [
        expected.format(config_path, "label", "y", f"'fraudulent' matches none of its {seen(labels)}"),
        expected.format(
            config_path,
            "prediction",
            "decision",
            f"'flagged' matches none of its {seen(decisions)}; every logged decision reads as negative",
        ),
    ]
    # The decisions are what the warning says: every one negative (the blank one left to the threshold).
    decided = dict(query(config_path, "SELECT _id, _decision FROM predictions_fraud"))
    assert decided == {f"r{i}": d == "" for i, d in enumerate(decisions)}
    # A pass that reads nothing new says nothing.
    assert main(["--config", str(config_path), "ingest", "--no-warm"]) == 0
    assert capsys.readouterr().err == ""


def test_a_later_ingest_of_a_rare_class_does_not_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first ingest read the positive class; a later pass reads three new labels, all of the
    other class — the usual tick under `--follow` with a rare positive class: no warning (only a
    first read can tell a wrong name; `config check` reads the files whole)."""
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(6)])
    labels = tmp_path / "labels"
    labels.mkdir()
    write_jsonl(
        labels / "a.jsonl", [{"request_id": f"r{i}", "y": "legit" if i else "fraud"} for i in range(3)]
    )
    body = classes_model("p.jsonl", "labels/*.jsonl", 'version = "model_version"', 'label = "fraud"')
    config_path = write_config(tmp_path, body)
    assert main(["--config", str(config_path), "ingest", "--no-warm"]) == 0
    assert "matches none" not in capsys.readouterr().err
    write_jsonl(labels / "b.jsonl", [{"request_id": f"r{i}", "y": "legit"} for i in range(3, 6)])
    assert main(["--config", str(config_path), "ingest", "--no-warm"]) == 0
    assert "matches none" not in capsys.readouterr().err


def test_class_names_are_part_of_what_built_the_store(tmp_path: Path) -> None:
    """A store built before `[model.positive]` existed reads as one built without it; naming the
    positive class later changes what the stored labels mean, so it asks for a rebuild."""
    write_jsonl(tmp_path / "p.jsonl", [good(0)])
    write_jsonl(tmp_path / "l.jsonl", [{"request_id": "r0", "y": 1}])
    config_path = write_config(tmp_path, model("p.jsonl", "l.jsonl", 'label = "y"'))
    ingest(config_path)
    with Store.open(config_of(config_path).store_path) as store:
        con = store.connection
        (settings,) = con.execute("SELECT settings FROM _triage_models").fetchone()
        older = {key: value for key, value in json.loads(settings).items() if key != "positive"}
        con.execute("UPDATE _triage_models SET settings = ?", [json.dumps(older)])
    assert [f.action for f in ingest(config_path).files] == ["unchanged", "unchanged"]
    config_path.write_text(config_path.read_text() + '\n[model.positive]\nlabel = "fraud"\n')
    with pytest.raises(StoreError, match="positive changed since the store was built"):
        ingest(config_path)


def test_duplicates_of_ids_a_replaced_file_no_longer_holds_are_kept(tmp_path: Path) -> None:
    """b.jsonl repeats ten of a.jsonl's ids: quarantined, a's first. a.jsonl rewritten without them
    leaves b's copies the first: b is read again and keeps them, as a fresh store would."""
    a = write_jsonl(tmp_path / "logs" / "a.jsonl", [good(i) for i in range(30)])
    write_jsonl(tmp_path / "logs" / "b.jsonl", [good(i) for i in range(20, 35)])
    config_path = write_config(tmp_path, model("logs"))
    assert dict(ingest(config_path).quarantined_by_reason) == {"duplicate id": 10}
    write_jsonl(a, [good(i) for i in range(20)])
    summary = ingest(config_path)
    assert [(f.path[-7:], f.action, f.rows_added, f.rows_quarantined) for f in summary.files] == [
        ("a.jsonl", "replaced", 20, 0),
        ("b.jsonl", "replaced", 15, 0),
    ]
    assert query(config_path, "SELECT count(*), count(DISTINCT _id) FROM predictions_fraud") == [(35, 35)]
    assert query(config_path, "SELECT count(*) FROM _triage_quarantine") == [(0,)]


def test_a_replaced_label_file_keeps_its_rank_among_labels_at_one_time(tmp_path: Path) -> None:
    """Two labels of one id at one labeled_at: the later file's wins, also after the earlier file
    is rewritten (its rows read again must not rank after the later file's)."""
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(3)])
    at = "2026-01-02T00:00:00Z"
    first = write_jsonl(
        tmp_path / "labels" / "1.jsonl",
        [{"request_id": f"r{i}", "is_fraud": 1, "labeled_at": at} for i in range(3)],
    )
    write_jsonl(
        tmp_path / "labels" / "2.jsonl",
        [{"request_id": f"r{i}", "is_fraud": 0, "labeled_at": at} for i in range(2)],
    )
    config_path = write_config(
        tmp_path, model("p.jsonl", "labels", 'label = "is_fraud"\nlabeled_at = "labeled_at"')
    )
    ingest(config_path)
    model_config = config_of(config_path).models[0]
    latest = f"SELECT _id, _label FROM ({labels_as_of_sql(model_config)}) ORDER BY _id"
    assert query(config_path, latest) == [("r0", 0.0), ("r1", 0.0), ("r2", 1.0)]
    write_jsonl(first, [{"request_id": f"r{i}", "is_fraud": 1, "labeled_at": at} for i in (9, 0, 1, 2)])
    assert [f.action for f in ingest(config_path).files if f.kind == "labels"] == ["replaced", "unchanged"]
    assert query(config_path, latest) == [("r0", 0.0), ("r1", 0.0), ("r2", 1.0), ("r9", 1.0)]


def test_labels_at_one_time_rank_by_file_path_whatever_was_ingested_first(tmp_path: Path) -> None:
    """Labels of one id at one labeled_at: the file whose path sorts later wins, then the later line
    — the same after an incremental ingest of a file that sorts earlier, a replacement and a rebuild."""
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(4)])
    at = "2026-01-02T00:00:00Z"

    def label(i: int, y: int) -> dict[str, object]:
        return {"request_id": f"r{i}", "is_fraud": y, "labeled_at": at}

    later = write_jsonl(tmp_path / "labels" / "b.jsonl", [label(0, 1), label(1, 1), label(2, 1)])
    config_path = write_config(
        tmp_path, model("p.jsonl", "labels", 'label = "is_fraud"\nlabeled_at = "labeled_at"')
    )
    ingest(config_path)
    # Ingested after b.jsonl, sorting before it: its labels of r0 and r1 lose; r3's second line wins.
    write_jsonl(tmp_path / "labels" / "a.jsonl", [label(0, 0), label(1, 0), label(3, 0), label(3, 1)])
    ingest(config_path)
    model_config = config_of(config_path).models[0]
    latest = f"SELECT _id, _label FROM ({labels_as_of_sql(model_config)}) ORDER BY _id"
    expected = [("r0", 1.0), ("r1", 1.0), ("r2", 1.0), ("r3", 1.0)]
    assert query(config_path, latest) == expected
    write_jsonl(later, [label(9, 1), label(0, 1), label(1, 1), label(2, 1)])
    assert [f.action for f in ingest(config_path).files if f.kind == "labels"] == ["unchanged", "replaced"]
    assert query(config_path, latest) == [*expected, ("r9", 1.0)]
    with Store.open(config_of(config_path).store_path) as store:
        store.ingest(config_of(config_path), rebuild=True)
    assert query(config_path, latest) == [*expected, ("r9", 1.0)]


def test_lines_that_are_not_utf8_are_quarantined_with_their_bytes(tmp_path: Path) -> None:
    """A CSV or JSON Lines line with bytes that are not UTF-8 (a Latin-1 city) is quarantined as
    `not UTF-8`, its raw text showing each such byte as \\xNN; the other lines are stored."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_bytes(
        b"request_id,ts,score,model_version,latency\n"
        b"r1,2026-01-01,0.5,M\xdcNCHEN,1\n"
        b"r2,2026-01-01,0.5,M\xc3\x9cNCHEN,1\n"
    )
    (logs / "b.jsonl").write_bytes(
        b'{"request_id": "r3", "ts": "2026-01-01", "score": 0.5, "model_version": "caf\xe9"}\n'
        + json.dumps(good(4)).encode()
        + b"\n"
    )
    config_path = write_config(tmp_path, model("logs"))
    summary = ingest(config_path)
    assert (summary.rows_added, dict(summary.quarantined_by_reason)) == (2, {"not UTF-8": 2})
    assert query(config_path, "SELECT _id, _version FROM predictions_fraud ORDER BY _id") == [
        ("r2", "M\u00dcNCHEN"),
        ("r4", "v1"),
    ]
    assert query(config_path, "SELECT line, raw FROM _triage_quarantine ORDER BY file_id") == [
        (2, "r1,2026-01-01,0.5,M\\xdcNCHEN,1"),
        (1, '{"request_id": "r3", "ts": "2026-01-01", "score": 0.5, "model_version": "caf\\xe9"}'),
    ]


def test_ids_written_as_whole_floats_meet_the_same_ids_written_as_integers(tmp_path: Path) -> None:
    """A Parquet DOUBLE id 8000.0, a JSON number 8002.0 and the CSV text 8004.00 are the ids 8000,
    8002 and 8004, and meet labels logged with integer ids; a fractional id is kept as written; a
    NaN id is a missing id."""
    write_parquet(
        tmp_path / "p" / "a.parquet",
        "SELECT (8000 + i)::DOUBLE AS request_id, TIMESTAMP '2026-01-01' AS ts, 0.5 AS score, "
        "'v1' AS model_version, 1.0 AS latency FROM range(2) t(i) "
        "UNION ALL SELECT 'nan'::DOUBLE, TIMESTAMP '2026-01-01', 0.5, 'v1', 1.0",
    )
    row = '"ts": "2026-01-01T00:00:00Z", "score": 0.5, "latency": 1'
    write_jsonl(
        tmp_path / "p" / "b.jsonl", [f'{{"request_id": 8002.0, {row}}}', f'{{"request_id": 8003.5, {row}}}']
    )
    (tmp_path / "p" / "c.csv").write_text(
        "request_id,ts,score,model_version,latency\n8004.00,2026-01-01,0.5,v1,1\n"
    )
    labels = [{"request_id": i, "is_fraud": 1} for i in (8000, 8001, 8002, 8004)]
    write_jsonl(tmp_path / "labels" / "l.jsonl", [*labels, {"request_id": "8003.5", "is_fraud": 0}])
    config_path = write_config(tmp_path, model("p", "labels", 'label = "is_fraud"'))
    summary = ingest(config_path)
    assert dict(summary.quarantined_by_reason) == {"missing id": 1}
    assert summary.unknown_label_ids == 0
    model_config = config_of(config_path).models[0]
    joined = f"SELECT _id, _label FROM ({labeled_predictions_sql(model_config)}) ORDER BY _id"
    assert query(config_path, joined) == [
        ("8000", 1.0),
        ("8001", 1.0),
        ("8002", 1.0),
        ("8003.5", 0.0),
        ("8004", 1.0),
    ]


def test_a_store_holding_ids_as_floats_asks_for_a_rebuild(tmp_path: Path) -> None:
    """A store built before ids were normalised: holding an id as "8000.0" it asks for a rebuild;
    holding none, its recorded settings are brought up to date by the next ingest."""
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(3)])
    config_path = write_config(tmp_path, model("p.jsonl"))
    ingest(config_path)

    def as_built_before(float_id: bool) -> None:
        with Store.open(config_of(config_path).store_path) as store:
            con = store.connection
            (settings,) = con.execute("SELECT settings FROM _triage_models").fetchone()
            older = {key: value for key, value in json.loads(settings).items() if key != "ids"}
            con.execute("UPDATE _triage_models SET settings = ?", [json.dumps(older)])
            con.execute(
                "UPDATE predictions_fraud SET _id = ? WHERE _id IN ('r0', '8000.0')",
                ["8000.0" if float_id else "r0"],
            )

    as_built_before(float_id=True)
    with pytest.raises(StoreError, match=r"ids changed since the store was built.*--rebuild"):
        ingest(config_path)
    as_built_before(float_id=False)
    assert [f.action for f in ingest(config_path).files] == ["unchanged"]
    (settings,) = query(config_path, "SELECT settings FROM _triage_models")[0]
    assert json.loads(settings)["ids"] == "whole floats as integers"


def test_labels_unknown_ids_superseding_and_as_of(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(4)])
    write_jsonl(
        tmp_path / "labels" / "1.jsonl",
        [
            {"request_id": "r0", "is_fraud": 0, "labeled_at": "2026-01-02T00:00:00Z"},
            {"request_id": "r1", "is_fraud": "yes", "labeled_at": "2026-01-02T00:00:00Z"},
            {"request_id": "r9", "is_fraud": 1, "labeled_at": "2026-01-02T00:00:00Z"},  # unknown id: kept
            {"request_id": "r2", "labeled_at": "2026-01-02T00:00:00Z"},  # missing label
            {"request_id": "r2", "is_fraud": "maybe", "labeled_at": "2026-01-02T00:00:00Z"},  # bad type
            {"request_id": "r3", "is_fraud": 1, "labeled_at": "soon"},  # bad timestamp
            {"request_id": "r3", "is_fraud": 0.5, "labeled_at": "2026-01-02T00:00:00Z"},  # not 0 or 1
            {"request_id": "r3", "is_fraud": "2", "labeled_at": "2026-01-02T00:00:00Z"},  # not 0 or 1
            {"request_id": "r2", "is_fraud": "1.0", "labeled_at": "2026-01-09T00:00:00Z"},  # 1: kept
        ],
    )
    write_jsonl(
        tmp_path / "labels" / "2.jsonl",
        [
            {
                "request_id": "r0",
                "is_fraud": 1,
                "labeled_at": "2026-01-05T00:00:00Z",
            },  # supersedes from Jan 5
            {
                "request_id": "r1",
                "is_fraud": False,
                "labeled_at": "2026-01-02T00:00:00Z",
            },  # same time, later file
        ],
    )
    config_path = write_config(
        tmp_path,
        model("p.jsonl", "labels", 'label = "is_fraud"\nlabeled_at = "labeled_at"'),
    )
    summary = ingest(config_path)
    labels = [f for f in summary.files if f.kind == "labels"]
    assert [(f.rows_added, f.rows_quarantined, f.unknown_label_ids) for f in labels] == [(4, 5, 1), (2, 0, 0)]
    assert query(config_path, "SELECT count(*) FROM labels_fraud") == [(6,)]  # both labels of r0 are kept
    assert query(config_path, "SELECT detail FROM _triage_quarantine WHERE reason = 'bad type'") == [
        ("is_fraud: maybe is not 0/1 or true/false (class names: [model.positive])",)
    ]
    # A soft or multi-class label would count as a positive: quarantined, named.
    not_binary = query(
        config_path,
        "SELECT line, detail FROM _triage_quarantine WHERE reason = 'label not 0 or 1' ORDER BY line",
    )
    assert not_binary == [
        (7, "is_fraud: 0.5 is not 0, 1, true or false"),
        (8, "is_fraud: 2 is not 0, 1, true or false"),
    ]

    model_config = config_of(config_path).models[0]
    latest = dict(query(config_path, f"SELECT _id, _label FROM ({labels_as_of_sql(model_config)})"))
    assert latest == {"r0": 1.0, "r1": 0.0, "r2": 1.0, "r9": 1.0}
    as_of_jan_3 = datetime(2026, 1, 3, tzinfo=UTC)
    earlier = dict(
        query(config_path, f"SELECT _id, _label FROM ({labels_as_of_sql(model_config, as_of_jan_3)})")
    )
    assert earlier == {"r0": 0.0, "r1": 0.0, "r9": 1.0}
    before = query(
        config_path, f"SELECT count(*) FROM ({labels_as_of_sql(model_config, datetime(2026, 1, 1))})"
    )
    assert before == [(0,)]
    joined = query(
        config_path,
        f"SELECT _id, _label FROM ({labeled_predictions_sql(model_config, as_of_jan_3)}) ORDER BY _id",
    )
    assert joined == [("r0", 0.0), ("r1", 0.0), ("r2", None), ("r3", None)]


def test_labels_without_labeled_at_count_from_ingest_time(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(3)])
    (tmp_path / "labels.csv").write_text("id,truth\nr0,1\nr1,0\n")
    config_path = write_config(tmp_path, model("p.jsonl", "labels.csv", 'label = "truth"\nlabel_id = "id"'))
    before = datetime.now(UTC).replace(tzinfo=None)
    ingest(config_path)
    after = datetime.now(UTC).replace(tzinfo=None)
    got = query(config_path, "SELECT _id, _label, _labeled_at, _ingested_at FROM labels_fraud ORDER BY _id")
    assert [(i, label) for i, label, _, _ in got] == [("r0", 1.0), ("r1", 0.0)]
    for _, _, labeled_at, ingested_at in got:
        assert labeled_at == ingested_at
        assert before - timedelta(seconds=1) <= labeled_at <= after + timedelta(seconds=1)


def test_reference_sql_for_each_kind(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "p.jsonl",
        [
            {
                "request_id": f"r{i}",
                "ts": f"2026-01-{1 + i:02d}T12:00:00Z",
                "score": 0.5,
                "model_version": "v1" if i < 6 else "v2",
                "amount": i,
            }
            for i in range(10)
        ],
    )
    write_jsonl(tmp_path / "train.jsonl", [{"amount": 100 + i, "score": 0.1} for i in range(4)])
    cases = {
        '[model.reference]\nstart = "2026-01-03"\nend = "2026-01-05"\n': ["r2", "r3"],
        '[model.reference]\nversion = "v2"\ndays = 2\n': ["r6", "r7"],
        '[model.reference]\nend = "2026-01-02"\n': ["r0"],
    }
    for index, (reference, expected) in enumerate(cases.items()):
        folder = tmp_path / f"case{index}"
        folder.mkdir()
        config_path = write_config(folder, model("../p.jsonl", extra="\n" + reference))
        ingest(config_path)
        model_config = config_of(config_path).models[0]
        got = query(config_path, f"SELECT _id FROM ({reference_sql(model_config)}) ORDER BY _id")
        assert [r[0] for r in got] == expected, reference

    folder = tmp_path / "files"
    folder.mkdir()
    config_path = write_config(
        folder, model("../p.jsonl", extra='\n[model.reference]\nfiles = "../train.jsonl"\n')
    )
    summary = ingest(config_path)
    assert [(f.kind, f.rows_added, f.rows_quarantined) for f in summary.files] == [
        ("predictions", 10, 0),
        ("reference", 4, 0),
    ]
    model_config = config_of(config_path).models[0]
    got = query(
        config_path, f"SELECT amount, _score, _id FROM ({reference_sql(model_config)}) ORDER BY amount"
    )
    assert got == [(100.0, 0.1, None), (101.0, 0.1, None), (102.0, 0.1, None), (103.0, 0.1, None)]


def test_labels_that_arrive_before_their_predictions(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "labels.jsonl", [{"request_id": f"r{i}", "is_fraud": 1} for i in range(3)])
    config_path = write_config(tmp_path, model("p/*.jsonl", "labels.jsonl", 'label = "is_fraud"'))
    summary = ingest(config_path)
    assert [(f.kind, f.rows_added, f.unknown_label_ids) for f in summary.files] == [("labels", 3, 3)]
    assert summary.unmatched == (("model[0].predictions", "p/*.jsonl"),)
    write_jsonl(tmp_path / "p" / "1.jsonl", [good(i) for i in range(6)])
    summary = ingest(config_path)
    assert [(f.kind, f.action, f.rows_added) for f in summary.files] == [
        ("predictions", "new", 6),
        ("labels", "unchanged", 0),
    ]
    info = query(
        config_path,
        "SELECT count(*) FILTER (_id IN (SELECT _id FROM labels_fraud)), count(*) FROM predictions_fraud",
    )
    assert info == [(3, 6)]


LINE_KINDS = {
    "good": ("{id}", None),
    "duplicate": ("dup", "duplicate id"),
    "bad json": (None, "unparseable JSON"),
    "bad score": ("{id}", "score not a number"),
    "high score": ("{id}", "score outside [0, 1]"),
    "no id": (None, "missing id"),
    "blank": (None, None),
}


def render(kind: str, index: int) -> str:
    if kind == "blank":
        return "   "
    if kind == "bad json":
        return '{"request_id": "x' + str(index)
    row: dict[str, object] = {"request_id": f"g{index}", "ts": "2026-01-01 00:00:00", "score": 0.5}
    if kind == "duplicate":
        row["request_id"] = "dup"
    elif kind == "bad score":
        row["score"] = "?"
    elif kind == "high score":
        row["score"] = 7
    elif kind == "no id":
        del row["request_id"]
    return json.dumps(row)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(sorted(LINE_KINDS)), min_size=1, max_size=40), split=st.integers(0, 40))
def test_rows_in_equal_rows_stored_plus_quarantined(tmp_path_factory, kinds: list[str], split: int) -> None:
    """Whatever the mix of lines, and wherever the log is cut between two ingests, nothing is lost."""
    folder = tmp_path_factory.mktemp("mix")
    lines = [render(kind, i) for i, kind in enumerate(kinds)]
    split = min(split, len(lines))
    log = write_jsonl(folder / "p.jsonl", lines[:split])
    config_path = write_config(folder, model("p.jsonl"))
    first = ingest(config_path)
    write_jsonl(log, lines[split:], mode="a")
    second = ingest(config_path)

    duplicates = max(kinds.count("duplicate") - 1, 0)
    expected: dict[str, int] = {"duplicate id": duplicates} if duplicates else {}
    for kind in kinds:
        reason = LINE_KINDS[kind][1]
        if reason is not None and kind != "duplicate":
            expected[reason] = expected.get(reason, 0) + 1
    stored_rows = kinds.count("good") + min(kinds.count("duplicate"), 1)
    rows_in = len(kinds) - kinds.count("blank")
    got: dict[str, int] = {}
    for summary in (first, second):
        for reason, count in summary.quarantined_by_reason:
            got[reason] = got.get(reason, 0) + count
    assert got == expected
    assert first.rows_added + second.rows_added == stored_rows
    assert stored_rows + sum(expected.values()) == rows_in
    assert query(config_path, "SELECT count(*) FROM predictions_fraud") == [(stored_rows,)]
    assert query(config_path, "SELECT count(*) FROM _triage_quarantine") == [(rows_in - stored_rows,)]


def _labelled_store(folder: Path) -> Path:
    """Five predictions and the labels of two of them, ingested."""
    write_jsonl(folder / "p.jsonl", [good(i) for i in range(5)])
    rows = [{"request_id": f"r{i}", "label": 1, "labeled_at": "2026-01-02T00:00:00Z"} for i in (1, 3)]
    write_jsonl(folder / "l.jsonl", rows)
    labels = 'label = "label"\nlabeled_at = "labeled_at"'
    config = write_config(folder, model("p.jsonl", "l.jsonl", labels))
    ingest(config)
    return config


def test_a_stored_id_hash_equal_to_a_new_ids_is_not_that_id(tmp_path: Path) -> None:
    """Ids are found by their stored 64-bit hash first, then compared: a forged collision (a stored
    row carrying a new id's hash) makes no duplicate, no known label id and no label."""
    config = _labelled_store(tmp_path)
    store = config_of(config).store_path
    con = duckdb.connect(str(store))
    for table in ("predictions_fraud", "labels_fraud"):
        con.execute(f"UPDATE {table} SET _idh = md5_number_lower('r7')")  # every stored row collides
    con.close()
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(5)] + [good(7)])
    rows = [{"request_id": "r7", "label": 0, "labeled_at": "2026-01-03T00:00:00Z"}]
    write_jsonl(tmp_path / "l.jsonl", rows, mode="a")
    summary = ingest(config)
    assert (summary.rows_added, summary.rows_quarantined) == (2, 0)  # r7's prediction and label
    assert sum(f.unknown_label_ids for f in summary.files) == 0
    labelled = f"SELECT _id, _label FROM ({labeled_predictions_sql(config_of(config).model('fraud'))})"
    assert sorted(query(config, labelled)) == [
        ("r0", None),
        ("r1", 1.0),
        ("r2", None),
        ("r3", 1.0),
        ("r4", None),
        ("r7", 0.0),
    ]
    few = labels_as_of_sql(
        config_of(config).model("fraud"), None, "SELECT 'r7' AS _id, md5_number_lower('r7') AS _idh"
    )
    assert query(config, f"SELECT _id, _label FROM ({few})") == [("r7", 0.0)]


def test_a_store_from_before_id_hashes_gets_them_when_opened_for_writing(tmp_path: Path) -> None:
    config = _labelled_store(tmp_path)
    store = config_of(config).store_path
    con = duckdb.connect(str(store))
    for table in ("predictions_fraud", "labels_fraud"):
        con.execute(f"ALTER TABLE {table} DROP COLUMN _idh")
    con.close()
    with pytest.raises(
        StoreError, match=r"made by an earlier triage .*labels_fraud, predictions_fraud.*triage ingest"
    ):
        Store.open(store, read_only=True)
    ingest(config)  # opens it for writing
    for table in ("predictions_fraud", "labels_fraud"):
        assert query(
            config, f"SELECT count(*), count(*) FILTER (WHERE _idh = md5_number_lower(_id)) FROM {table}"
        ) == [(5, 5) if table == "predictions_fraud" else (2, 2)]


def test_a_store_from_before_quarantine_times_is_read_and_upgraded(tmp_path: Path) -> None:
    """Read-only, schema changes do without the rows' times; opened for writing, the quarantine
    gets the column (its old rows without a time)."""
    write_jsonl(tmp_path / "p.jsonl", [good(i) for i in range(5)] + [good(5, score="high")])
    config = write_config(tmp_path, model("p.jsonl"))
    ingest(config)
    store = config_of(config).store_path
    with duckdb.connect(str(store)) as con:
        con.execute("ALTER TABLE _triage_quarantine DROP COLUMN row_ts")
    model_config = config_of(config).model("fraud")
    with Store.open(store, read_only=True) as opened:
        assert schema_changes(opened.connection, Scope.of(model_config, as_of=datetime.now(UTC))) == []
    with Store.open(store):
        pass
    assert query(config, "SELECT reason, row_ts FROM _triage_quarantine") == [("score not a number", None)]


def test_a_nan_category_or_segment_is_missing(tmp_path: Path) -> None:
    """A JSON NaN (Python's json writes a missing value so) or the text NaN in any case (`nan`:
    Python's csv writer) in a categorical feature or a segment is a missing value, not a category
    "NaN"; other text is kept as is."""
    rows = [
        good(0, merchant="shop", country="BR"),
        '{"request_id": "r1", "ts": "2026-01-01T00:00:00Z", "score": 0.5, "merchant": NaN, "country": NaN}',
        good(2, merchant="NaN", country="NA"),
        good(3, merchant="nano", country=""),
        good(4, merchant="nan", country="NAN"),
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    extra = '\n[model.features]\ncategorical = ["merchant"]\n\n[model.segments]\ncolumns = ["country"]\n'
    config = write_config(tmp_path, model("p.jsonl", extra=extra))
    assert ingest(config).rows_added == 5
    assert query(config, "SELECT _id, merchant, country FROM predictions_fraud ORDER BY _id") == [
        ("r0", "shop", "BR"),
        ("r1", None, None),
        ("r2", None, "NA"),
        ("r3", "nano", ""),
        ("r4", None, None),
    ]


def test_a_nan_in_a_float_column_read_as_a_category_is_missing(tmp_path: Path) -> None:
    write_parquet(
        tmp_path / "p.parquet",
        "SELECT * FROM (VALUES ('r0', '2026-01-01', 0.5, 'v1', 1.0, 2.5), "
        "('r1', '2026-01-01', 0.5, 'v1', 1.0, 'nan'::DOUBLE)) "
        "t(request_id, ts, score, model_version, latency, merchant)",
    )
    extra = '\n[model.features]\ncategorical = ["merchant"]\n'
    config = write_config(tmp_path, model("p.parquet", extra=extra))
    assert ingest(config).rows_added == 2
    assert query(config, "SELECT _id, merchant FROM predictions_fraud ORDER BY _id") == [
        ("r0", "2.5"),
        ("r1", None),
    ]


def test_a_time_before_2000_or_after_2099_is_a_bad_timestamp(tmp_path: Path) -> None:
    """A missing time logged as 0 (1970) or a sentinel (9999-12-31) would open windows decades from
    the others: quarantined, for a prediction's timestamp and a label's labeled_at alike."""
    times: list[tuple[object, bool]] = [
        (0, False),
        ("1970-01-01T00:00:00Z", False),
        ("1999-12-31T23:59:59Z", False),
        ("2000-01-01T00:00:00Z", True),
        ("2099-12-31T23:59:59Z", True),
        ("2100-01-01T00:00:00Z", False),
        ("9999-12-31T00:00:00Z", False),
    ]
    write_jsonl(tmp_path / "p.jsonl", [good(i, ts=ts) for i, (ts, _) in enumerate(times)])
    write_jsonl(
        tmp_path / "labels.jsonl",
        [
            {"request_id": "r3", "is_fraud": 1, "labeled_at": 0},
            {"request_id": "r4", "is_fraud": 1, "labeled_at": "2100-01-02T00:00:00Z"},
            {"request_id": "r3", "is_fraud": 0, "labeled_at": "2026-01-02T00:00:00Z"},
        ],
    )
    config = write_config(
        tmp_path, model("p.jsonl", "labels.jsonl", 'label = "is_fraud"\nlabeled_at = "labeled_at"')
    )
    summary = ingest(config)
    assert (summary.rows_added, dict(summary.quarantined_by_reason)) == (3, {"bad timestamp": 7})
    assert query(config, "SELECT _id FROM predictions_fraud ORDER BY _id") == [
        (f"r{i}",) for i, (_, kept) in enumerate(times) if kept
    ]
    assert query(config, "SELECT _id, _label FROM labels_fraud") == [("r3", 0.0)]
    details = query(config, "SELECT kind, line, detail FROM _triage_quarantine ORDER BY kind, line")
    assert details == [
        ("labels", 1, "labeled_at 0 is before 2000 or after 2099"),
        ("labels", 2, "labeled_at 2100-01-02T00:00:00Z is before 2000 or after 2099"),
    ] + [
        ("predictions", i + 1, f"timestamp {ts} is before 2000 or after 2099")
        for i, (ts, kept) in enumerate(times)
        if not kept
    ]
