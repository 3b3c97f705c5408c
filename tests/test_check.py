"""`triage check`: the JSON document's shape, as-of semantics, the text summary and the error exits,
on a store built by `triage ingest` from logs written here."""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from scipy import stats
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from tests.metrics_store import as_of_labels, generate
from triage.alerts.rules import duration_text
from triage.cli import main
from triage.config import load_config, parse_window
from triage.engine import Engine
from triage.metrics.drift import CACHE_TABLE as DRIFT
from triage.metrics.window_cache import CACHE_TABLE as WINDOWS
from triage.replay import replay_span

CELL_FIELDS = [
    "window_start",
    "window_end",
    "version",
    "segment",
    "segment_value",
    "n",
    "enough_data",
    "note",
]
# The fields issue 3 names for each table (the JSON contract).
TABLE_FIELDS = {
    "drift": [
        "feature",
        "kind",
        "n_reference",
        "psi",
        "js",
        "ks_d",
        "ks_p",
        "chi2",
        "chi2_p",
        "wasserstein",
        "wasserstein_norm",
    ],
    "data_quality": [
        "feature",
        "kind",
        "missing_rate",
        "missing_rate_reference",
        "unseen_share",
        "out_of_range_share",
    ],
    "calibration": [
        "n_labeled",
        "ece",
        "ece_equal_mass",
        "mce",
        "brier",
        "log_loss",
        "decision_rate",
        "reliability",
    ],
    "performance": [
        "n_labeled",
        "label_coverage",
        "label_lag_p50_s",
        "label_lag_p95_s",
        "precision",
        "recall",
        "f1",
        "fpr",
        "fnr",
        "accuracy",
        "auroc",
        "average_precision",
        "expected_cost",
        "precision_ci_low",
        "precision_ci_high",
        "recall_ci_low",
        "recall_ci_high",
        "fpr_ci_low",
        "fpr_ci_high",
        "fnr_ci_low",
        "fnr_ci_high",
        "accuracy_ci_low",
        "accuracy_ci_high",
        "auroc_ci_low",
        "auroc_ci_high",
        "expected_cost_ci_low",
        "expected_cost_ci_high",
    ],
    "operations": [
        "route",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "error_rate",
        "fallback_rate",
        "cost_per_1k",
        "tokens_per_request",
    ],
}

CONFIG = """
[store]
path = "store.duckdb"

[[model]]
name = "fraud"
predictions = "logs/predictions.jsonl"
labels = "logs/labels.jsonl"
window = "1d"
min_samples = 20

[model.columns]
id = "id"
timestamp = "ts"
score = "score"
version = "version"
latency_ms = "latency_ms"
cost = "cost"
tokens = "tokens"
error = "error"
fallback = "fallback"
route = "route"
label = "label"
labeled_at = "labeled_at"

[model.features]
numeric = ["amount"]
categorical = ["merchant"]

[model.segments]
columns = ["country"]

[model.reference]
start = "2026-01-05"
end = "2026-01-06"

[model.costs]
false_positive = 5.0
false_negative = 120.0
"""


def _iso(value: np.datetime64) -> str:
    return str(value.astype("datetime64[us]")) + "Z"


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A config and its store, ingested with `triage ingest` from generated JSON Lines logs."""
    folder = tmp_path_factory.mktemp("check")
    data = generate(1500, seed=21, days=3)
    rng = np.random.default_rng(4)
    amount = rng.gamma(2.0, 50.0, len(data.ids)) * np.where(data.ts > np.datetime64("2026-01-07"), 3.0, 1.0)
    merchant = rng.choice(np.array(["shop", "travel", "games"]), len(data.ids))
    logs = folder / "logs"
    logs.mkdir()
    with open(logs / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for i in range(len(data.ids)):
            row = {
                "id": str(data.ids[i]),
                "ts": _iso(data.ts[i]),
                "score": float(data.score[i]),
                "version": str(data.version[i]),
                "latency_ms": _number(data.latency[i]),
                "cost": _number(data.cost[i]),
                "tokens": _number(data.tokens[i]),
                "error": bool(data.error[i]),
                "fallback": bool(data.fallback[i]),
                "route": str(data.route[i]),
                "country": str(data.segments["country"][i]),
                "amount": float(amount[i]),
                "merchant": str(merchant[i]),
            }
            handle.write(json.dumps(row) + "\n")
    with open(logs / "labels.jsonl", "w", encoding="utf-8") as handle:
        for i in range(len(data.label_ids)):
            row = {
                "id": str(data.label_ids[i]),
                "label": int(data.label[i]),
                "labeled_at": _iso(data.labeled_at[i]),
            }
            handle.write(json.dumps(row) + "\n")
    config = folder / "triage.toml"
    config.write_text(CONFIG, encoding="utf-8")
    assert main(["--config", str(config), "ingest"]) == 0
    return config, data


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    status = main(["--config", str(config), "check", *args])
    out, err = capsys.readouterr()
    return status, out, err


def check_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict[str, Any]:
    status, out, err = run(capsys, config, "--json", *args)
    assert status in (0, 1, 2), err

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the JSON document")

    return json.loads(out, parse_constant=no_constants)


def test_json_document_shape(store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = store
    at = "2026-01-07T18:00:00Z"
    document = check_json(capsys, config, "--at", at)
    assert {"generated_at", "as_of", "models"} <= set(document)
    assert document["as_of"] == at
    (model,) = document["models"]
    assert model["name"] == "fraud"
    assert {"reference", "windows", *TABLE_FIELDS} <= set(model)
    reference = model["reference"]
    assert reference["kind"] == "range" and reference["n"] > 0
    assert reference["start"] == "2026-01-05T00:00:00Z" and reference["end"] == "2026-01-06T00:00:00Z"
    assert [w["window_start"] for w in model["windows"]] == [f"2026-01-0{d}T00:00:00Z" for d in (5, 6, 7)]
    for table, fields in TABLE_FIELDS.items():
        rows = model[table]
        assert rows, table
        for row in rows:
            assert {*CELL_FIELDS, *fields} <= set(row), (table, {*CELL_FIELDS, *fields} - set(row))
            assert row["segment"] in (None, "country")
            assert (row["segment"] is None) == (row["segment_value"] is None)
            assert row["version"] in (None, "v1", "v2")
            assert row["window_start"] < row["window_end"] and row["window_start"].endswith("Z")
            if not row["enough_data"]:
                assert row["note"]
    for row in model["drift"]:
        if row["kind"] == "numeric":
            assert row["chi2"] is None and row["chi2_p"] is None
        else:
            assert row["ks_d"] is None and row["wasserstein"] is None
    for table in ("calibration", "performance", "operations"):
        assert model["reference"][table], table
        assert all(r["window_start"] < "2026-01-06" for r in model["reference"][table])
    routes = {row["route"] for row in model["operations"]}
    assert routes == {None, "primary", "canary"}


def test_json_values_match_sklearn_and_as_of(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = store
    at = datetime(2026, 1, 7, 12, tzinfo=UTC)
    document = check_json(capsys, config, "--at", at.isoformat())
    rows = document["models"][0]["performance"]
    day = next(
        r
        for r in rows
        if r["window_start"] == "2026-01-06T00:00:00Z" and r["version"] is None and r["segment"] is None
    )
    # The raw rows of that window and the labels that had arrived by `at`.
    start = np.datetime64("2026-01-06T00:00:00", "us")
    mask = (data.ts >= start) & (data.ts < start + np.timedelta64(1, "D"))
    cut = np.datetime64(at.replace(tzinfo=None), "us")
    labels: dict[str, float] = {}
    for i in np.argsort(data.labeled_at, kind="stable"):
        if data.labeled_at[i] <= cut:
            labels[str(data.label_ids[i])] = float(data.label[i])
    has = np.array([str(i) in labels for i in data.ids[mask]])
    y = np.array([labels[str(i)] for i in data.ids[mask][has]]) > 0
    assert day["n"] == mask.sum() and day["n_labeled"] == has.sum()
    assert day["auroc"] == pytest.approx(roc_auc_score(y, data.score[mask][has]), abs=1e-9)
    # A day later more labels (and corrections) have arrived: the same window changes.
    later = check_json(capsys, config, "--at", (at + timedelta(days=1)).isoformat())
    same = next(
        r
        for r in later["models"][0]["performance"]
        if r["window_start"] == day["window_start"] and r["version"] is None and r["segment"] is None
    )
    assert same["n"] == day["n"] and same["n_labeled"] > day["n_labeled"]


def test_enough_only_leaves_out_exactly_the_thin_rows(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = store
    view = ("--at", "2026-01-07T18:00Z", "--window", "6h", "--slice", "merchant")
    full = check_json(capsys, config, *view)["models"][0]
    lean = check_json(capsys, config, *view, "--enough-only")
    (model,) = lean["models"]
    assert model["windows"] == full["windows"] and model["reference"]["n"] == full["reference"]["n"]
    for table in TABLE_FIELDS:
        assert any(not row["enough_data"] for row in full[table]), table  # the test has thin cells
        assert model[table] == [row for row in full[table] if row["enough_data"]], table
    for table in ("calibration", "performance", "operations"):
        kept = [row for row in full["reference"][table] if row["enough_data"]]
        assert model["reference"][table] == kept, table
    status, _, err = run(capsys, config, "--enough-only")
    assert status == 3 and "give --json too" in err


def test_options_last_slice_window(store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = store
    document = check_json(capsys, config, "--at", "2026-01-07T18:00Z", "--last", "1", "--slice", "merchant")
    model = document["models"][0]
    assert [w["window_start"] for w in model["windows"]] == ["2026-01-07T00:00:00Z"]
    assert {r["segment"] for r in model["calibration"]} == {None, "merchant"}
    weekly = check_json(capsys, config, "--at", "2026-01-07T18:00Z", "--window", "1w", "--model", "fraud")
    assert [w["window_start"] for w in weekly["models"][0]["windows"]] == ["2026-01-05T00:00:00Z"]
    monthly = check_json(capsys, config, "--at", "2026-01-07T18:00Z", "--window", "1mo")
    (window,) = monthly["models"][0]["windows"]
    assert (window["window_start"], window["window_end"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")


@pytest.mark.parametrize(
    ("window", "last"), [("365d", "1000000"), ("12mo", "1000000"), ("3650d", "600000"), ("87600h", "1000000")]
)
def test_last_windows_back_past_the_year_2000_are_every_window(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], window: str, last: str
) -> None:
    """`--last N` of windows reaching back past any time the store keeps (2000) is the view of every
    window: it crashed with DuckDB's timestamp and integer overflows, and an empty document."""
    config, _ = store
    every = check_json(capsys, config, "--at", "2026-01-07T18:00Z", "--window", window)
    last_n = check_json(capsys, config, "--at", "2026-01-07T18:00Z", "--window", window, "--last", last)
    assert last_n["models"] == every["models"] and every["models"][0]["windows"]


def test_count_between_counts_the_windows_from_one_time_to_another() -> None:
    at = datetime(2026, 1, 7, 18, tzinfo=UTC)
    assert parse_window("1d").count_between(datetime(2026, 1, 1, 23, tzinfo=UTC), at) == 7
    assert parse_window("1w").count_between(datetime(2026, 1, 4, tzinfo=UTC), at) == 2  # Sunday, Wednesday
    assert parse_window("1mo").count_between(datetime(2025, 11, 30, tzinfo=UTC), at) == 3
    assert parse_window("2mo").count_between(datetime(2025, 11, 30, tzinfo=UTC), at) == 2  # Nov-Dec, Jan-Feb
    assert parse_window("6h").count_between(at, at) == 1


def test_trailing_windows_end_with_the_window_that_holds_t(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--window 2d --trailing` at 01-07 18:00 (daily model windows): two-day windows counted back
    from 01-08 00:00, so the latest is 01-06 and 01-07 up to T. Its cells equal scipy and
    scikit-learn on those raw rows; nothing of this view is stored or recorded."""
    config, data = store
    at = datetime(2026, 1, 7, 18, tzinfo=UTC)
    document = check_json(capsys, config, "--at", at.isoformat(), "--window", "2d", "--trailing")
    model = document["models"][0]
    assert [(w["window_start"], w["window_end"]) for w in model["windows"]] == [
        ("2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z"),
        ("2026-01-06T00:00:00Z", "2026-01-08T00:00:00Z"),
    ]
    start, cut = np.datetime64("2026-01-06T00:00:00", "us"), np.datetime64(at.replace(tzinfo=None), "us")
    mask = (data.ts >= start) & (data.ts <= cut)
    labels = as_of_labels(data, at)
    has = np.array([str(i) in labels for i in data.ids[mask]])
    y = np.array([labels[str(i)] for i in data.ids[mask][has]]) > 0

    def latest(table: str, **where: Any) -> dict[str, Any]:
        return next(
            r
            for r in model[table]
            if r["window_start"] == "2026-01-06T00:00:00Z"
            and r["version"] is None
            and r["segment"] is None
            and all(r[k] == v for k, v in where.items())
        )

    performance = latest("performance")
    assert performance["n"] == mask.sum() and performance["n_labeled"] == has.sum()
    assert performance["auroc"] == pytest.approx(roc_auc_score(y, data.score[mask][has]), abs=1e-9)
    reference = (data.ts >= np.datetime64("2026-01-05", "us")) & (data.ts < np.datetime64("2026-01-06", "us"))
    score = latest("drift", feature="__score__")
    expected = ks_2samp(data.score[mask], data.score[reference], method="asymp")
    assert score["ks_d"] == pytest.approx(expected.statistic, abs=1e-9)
    assert score["ks_p"] == pytest.approx(expected.pvalue, rel=1e-6)
    assert latest("operations", route=None)["n"] == mask.sum()

    # Its text names the view. Its windows move with T: nothing of them is stored, in memory only.
    def cached() -> list[int]:
        with duckdb.connect(str(config.parent / "store.duckdb"), read_only=True) as con:
            return [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (WINDOWS, DRIFT)]

    before = cached()
    _, out, _ = run(capsys, config, "--at", "2026-01-08T09:00Z", "--window", "2d", "--trailing")
    assert "window(s) of 2d (trailing)" in out.splitlines()[2]
    assert cached() == before
    status, _, err = run(capsys, config, "--window", "1mo", "--trailing")
    assert status == 3 and "--trailing: --window 1mo is calendar months, which cannot trail" in err


def test_text_summary(store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, data = store
    status, out, _ = run(capsys, config, "--at", "2026-01-07T18:00Z")
    assert status in (0, 1, 2)
    for heading in ("fraud:", "Drift", "Calibration", "Performance", "Operations"):
        assert heading in out
    assert "amount" in out  # the shifted feature is among the worst drift cells
    assert "stale" not in out  # the window of the as-of time has predictions
    # A day and a half after the last window with predictions: the feed stopped, and the summary says so.
    windows = check_json(capsys, config, "--at", "2026-01-07T18:00Z")["models"][0]["windows"]
    last_end = datetime.fromisoformat(windows[-1]["window_end"])
    _, later, _ = run(capsys, config, "--at", (last_end + timedelta(hours=36)).isoformat())
    last = data.ts.max().astype(datetime)
    silence = (last_end.replace(tzinfo=None) + timedelta(hours=36) - last).total_seconds()
    stale = [
        f"  stale: last prediction at {last:%Y-%m-%d %H:%M}Z, {silence / 86400:.1f}d before the as-of time;",
        f"         below is the window of {last_end - timedelta(days=1):%Y-%m-%d}",
    ]
    at = later.splitlines().index(stale[0])
    assert later.splitlines()[at : at + 2] == stale
    # Within a window, silence is stale once the last window's rate would have brought 10 rows.
    end = (last_end - timedelta(seconds=1)).isoformat()  # the last window, whole
    (full,) = check_json(capsys, config, "--at", end, "--last", "1")["models"][0]["windows"]
    rate = full["n"] / 86_400
    for seconds, said in ((9 / rate, False), (11 / rate, True)):
        _, soon, _ = run(capsys, config, "--at", (last_end + timedelta(seconds=seconds)).isoformat())
        assert ("  stale: last prediction at" in soon) is said, seconds
    # Drift and data quality read the latest ended window, as the distribution rules judge: at 18:00
    # the day before; at midnight the day of tripled amounts.
    assert "Drift, window 2026-01-06 " in out and "Data quality — window 2026-01-06" in out
    _, out, _ = run(capsys, config, "--at", "2026-01-08T00:00Z")
    drift = out.split("\nDrift")[1].split("\n\n")[0].splitlines()[2:]  # after title and header
    features = [line.split()[0] for line in drift if not line.lstrip().startswith("…")]
    assert features and len(features) == len(set(features))  # one line per feature
    assert features[0] == "amount"
    rows = check_json(capsys, config, "--at", "2026-01-08T00:00Z")["models"][0]["drift"]
    latest = max(r["window_start"] for r in rows)
    amount = [r for r in rows if r["feature"] == "amount" and r["window_start"] == latest]
    enough = [r for r in amount if r["enough_data"] and r["psi"] is not None]
    drifted = [r for r in enough if (r["psi"] >= 0.1 or r["ks_d"] >= 0.25) and r["ks_p"] <= 0.01]
    assert drifted  # the count is of cells with both effect and evidence
    assert drift[0].split()[-1] == f"{len(drifted)}/{len(enough)}"
    # KS D for a numeric feature; a categorical's test is the chi-square, whose statistic (n-sized)
    # is no effect size to read beside KS D's: "-" there.
    kinds = {r["feature"]: r["kind"] for r in rows}
    ks_column = {line.split()[0]: line.split()[-4] for line in drift if not line.lstrip().startswith("…")}
    assert {kinds[f] for f in ks_column} == {"numeric", "categorical"}
    assert all((ks == "-") == (kinds[f] == "categorical") for f, ks in ks_column.items()), ks_column
    summary = out.split("\nAlerts")[0]  # the alerts table belongs to triage.alerts
    assert max(len(line) for line in summary.splitlines()) <= 100
    # At 00:30 the day just begun has too few rows to say anything: the sections show yesterday.
    day = check_json(capsys, config, "--at", "2026-01-07T00:30Z")["models"][0]["windows"]
    assert [w["window_start"][:10] for w in day[-2:]] == ["2026-01-06", "2026-01-07"]
    assert day[-1]["n"] < 20 <= day[-2]["n"]  # min_samples 20
    _, early, _ = run(capsys, config, "--at", "2026-01-07T00:30Z")
    titles = [line for line in early.splitlines() if line.startswith(("Drift", "Data quality", "Operations"))]
    assert len(titles) == 3 and all("window 2026-01-06" in title for title in titles), titles


def test_a_stale_feed_names_the_window_the_sections_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The feed stopped ten minutes into a day, after 5 predictions: the sections read the day
    before (the latest with min_samples rows), and the stale: line says so."""
    start = datetime(2026, 3, 2, tzinfo=UTC)
    times = [start + timedelta(minutes=4 * i) for i in range(300)] + [
        start + timedelta(days=1, minutes=2 * i) for i in range(5)
    ]
    logs = tmp_path / "p.jsonl"
    logs.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "ts": t.isoformat(), "score": 0.3}) + "\n" for i, t in enumerate(times)
        ),
        encoding="utf-8",
    )
    config = tmp_path / "triage.toml"
    config.write_text(
        '[store]\npath = "store.duckdb"\n\n[[model]]\nname = "m"\npredictions = "p.jsonl"\n'
        'min_samples = 20\n\n[model.columns]\nid = "id"\ntimestamp = "ts"\nscore = "score"\n\n'
        '[model.reference]\nend = "2026-03-02T12:00:00Z"\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    _, out, _ = run(capsys, config, "--at", "2026-03-05T12:00Z")
    lines = out.splitlines()
    at = next(
        i for i, line in enumerate(lines) if line.startswith("  stale: last prediction at 2026-03-03 00:08Z")
    )
    assert lines[at + 1] == "         below is the window of 2026-03-02"
    titles = [line for line in lines if line.startswith("Operations")]
    assert titles and "window 2026-03-02," in titles[0], titles


def test_text_summary_names_data_quality_changes(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The tripled amounts leave the reference's range; the merchants are as in the reference."""
    config, _ = store
    _, out, _ = run(capsys, config, "--at", "2026-01-08T00:00Z")  # the day of tripled amounts, ended
    section = out.split("\nData quality")[1].split("\n\n")[0].splitlines()
    rows = check_json(capsys, config, "--at", "2026-01-08T00:00Z")["models"][0]["data_quality"]
    latest = max(r["window_start"] for r in rows)
    (amount,) = [
        r
        for r in rows
        if (r["window_start"], r["feature"], r["version"], r["segment"]) == (latest, "amount", None, None)
    ]
    assert amount["out_of_range_share"] >= 0.01
    assert [line.split()[0] for line in section[2:]] == ["amount"]  # merchant: as in the reference
    assert f"{100 * amount['out_of_range_share']:.1f}%" in section[2].split()


def test_text_summary_says_when_no_data_quality_cell_has_enough_data(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Minutes into a day its window holds a few rows: their rates are unknown, not as usual."""
    config, _ = store
    _, out, _ = run(capsys, config, "--at", "2026-01-07T00:05Z", "--last", "1")
    section = out.split("\nData quality")[1].split("\n\n")[0].splitlines()
    assert section[1:] == ["  no cell with enough data"]
    _, out, _ = run(capsys, config, "--at", "2026-01-06T18:00Z", "--last", "1")
    assert out.split("\nData quality")[1].split("\n\n")[0].splitlines()[1:] == ["  as in the reference"]


def test_text_summary_puts_the_expected_unseen_share_beside_the_unseen_one(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A long tail of merchants: 6 seen once and 2 twice in the reference day (Good–Turing: 6/n of
    new values fall outside it, ± Esty's error), and a latest window where a tenth are new. The
    summary shows both, so that a few percent unseen reads as the tail it is, or not; an unseen
    empty string is listed as `""`, not as a blank item."""
    config, _ = store
    shutil.copytree(config.parent, tmp_path / "copy")
    copy = tmp_path / "copy" / "triage.toml"
    (tmp_path / "copy" / "store.duckdb").unlink()
    log = tmp_path / "copy" / "logs" / "predictions.jsonl"
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    reference = [r for r in rows if r["ts"].startswith("2026-01-05")]
    for k, row in enumerate(reference[:10]):
        row["merchant"] = f"rare-{k if k < 6 else 6 + k % 2}"  # rare-0 … rare-5 once, rare-6 and rare-7 twice
    latest = [r for r in rows if r["ts"].startswith("2026-01-07")]  # the day, ended at the as-of time
    for k, row in enumerate(latest[::10]):
        row["merchant"] = f"new-{k % 3}" if k % 3 else ""
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["--config", str(copy), "ingest"]) == 0
    capsys.readouterr()
    _, out, _ = run(capsys, copy, "--at", "2026-01-08T00:00Z")
    section = out.split("\nData quality")[1].split("\n\n")[0].splitlines()
    assert "unseen (expected)" in section[1]
    (line,) = [line for line in section[2:] if line.split()[0] == "merchant"]
    n = len(reference)
    share = len(latest[::10]) / len(latest)
    se = np.sqrt((6 / n + 2 * 2 / n - (6 / n) ** 2) / n)
    assert f"{100 * share:.1f}% ({100 * 6 / n:.1f}% ± {100 * se:.1f}%)" in line
    assert "new-1" in line and '""' in line


def test_text_summary_compares_a_version_without_reference_with_all_versions(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The first day of v1 as the reference: v2 has no reference windows of its own, so it is
    compared with all versions' reference (marked), as the alerts' baselines are."""
    config, _ = store
    shutil.copytree(config.parent, tmp_path / "copy")
    copy = tmp_path / "copy" / "triage.toml"
    reference = '[model.reference]\nstart = "2026-01-05"\nend = "2026-01-06"\n'
    assert reference in CONFIG
    first_day_of_v1 = '[model.reference]\nversion = "v1"\ndays = 1\n'
    copy.write_text(CONFIG.replace(reference, first_day_of_v1), encoding="utf-8")
    _, out, _ = run(capsys, copy, "--at", "2026-01-07T18:00Z")
    lines = out.split("\nPerformance")[1].split("\n\n")[0].splitlines()
    table = lines[2 : next(i for i, line in enumerate(lines) if line.lstrip()[:1] in ("*", "†"))]
    rows = {line.split()[0]: line for line in table}
    assert set(rows) == {"all", "v1", "v2"}
    assert "*)" not in rows["all"] and "*)" not in rows["v1"] and "*)" in rows["v2"]
    references = {name: re.findall(r"\(([^)]*)\)", line) for name, line in rows.items()}
    assert references["v2"] == [f"{value}*" for value in references["all"]]
    assert "  * all versions' reference: no reference window of v2 has enough data" in lines


def test_text_summary_names_schema_changes(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A watched column no log has (a misspelt name) is a schema change, in the text as in the JSON."""
    config, _ = store
    misspelt = tmp_path / "triage.toml"
    misspelt.write_text(
        CONFIG.replace('categorical = ["merchant"]', 'categorical = ["merchant", "merchnat"]')
        .replace('path = "store.duckdb"', f'path = "{tmp_path / "store.duckdb"}"')
        .replace('"logs/', f'"{config.parent / "logs"}/'),
        encoding="utf-8",
    )
    assert main(["--config", str(misspelt), "ingest"]) == 0
    capsys.readouterr()
    assert check_json(capsys, misspelt, "--at", "2026-01-07T18:00Z")["models"][0]["schema_changes"] == [
        {"column": "merchnat", "change": "missing", "reference_type": None, "current_type": None}
    ]
    _, out, _ = run(capsys, misspelt, "--at", "2026-01-07T18:00Z")
    assert "Schema changes: merchnat missing (- → -)" in out


def test_inside_the_reference_period(store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """As of a time inside the reference range, the windows would be compared with themselves."""
    config, _ = store
    model = json.loads(run(capsys, config, "--json", "--at", "2026-01-05T18:00Z")[1])["models"][0]
    reference = model["reference"]
    assert reference["complete"] is False and reference["n"] == model["windows"][0]["n"] > 0
    assert reference["note"].startswith("reference period open until 2026-01-06 00:00 UTC")
    assert model["drift"] == [] and model["data_quality"] == [] and model["schema_changes"] == []
    assert model["calibration"] and model["performance"] and model["operations"]
    status, out, err = run(capsys, config, "--at", "2026-01-05T18:00Z")
    assert status == 3 and "nothing judged" in err  # every window is the reference's
    assert "reference period open until 2026-01-06 00:00 UTC" in err
    assert "reference period open until 2026-01-06 00:00 UTC" in out and "Drift" not in out
    at_end = json.loads(run(capsys, config, "--json", "--at", "2026-01-06T00:00Z")[1])
    assert at_end["models"][0]["reference"]["complete"]


def test_errors_exit_3(store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config, _ = store
    status, _, err = run(capsys, config, "--model", "nope")
    assert status == 3 and "no model named 'nope'" in err
    status, _, err = run(capsys, config, "--slice", "amount")
    assert status == 3 and "cannot slice by 'amount'" in err and "Traceback" not in err
    empty = tmp_path / "triage.toml"
    empty.write_text(CONFIG, encoding="utf-8")
    status, _, err = run(capsys, empty)
    assert status == 3 and "triage ingest" in err
    # A bad argument is a mistake too (3: 2 would mean a critical alert), in one line.
    # Sizes and times that would run the windows off the calendar are refused the same way.
    arguments = (["--window", "fortnight"], ["--at", "yesterday"], ["--last", "0"], ["--jsn"])
    beyond = (
        ["--window", "20000w"],
        ["--window", "121mo"],
        ["--at", "9999-12-31"],
        ["--last", "99999999999"],
    )
    for argument in (*arguments, *beyond):
        with pytest.raises(SystemExit) as usage:
            main(["--config", str(config), "check", *argument])
        assert usage.value.code == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("triage check: ")
        assert ("unrecognized arguments: --jsn" if argument == ["--jsn"] else "expected") in err
    # Nothing to judge (the one window asked for has no prediction) is unknown, not OK.
    status, out, err = run(capsys, config, "--at", "2026-03-01T00:00Z", "--last", "1")
    assert status == 3 and "no predictions in the evaluated windows as of 2026-03-01" in err
    assert "no predictions in the evaluated windows" in out  # the summary is printed all the same
    assert out.splitlines()[0] == "triage check — as of 2026-03-01 — UNKNOWN"
    # --config may follow the command too.
    assert main(["check", "--config", str(config), "--json", "--at", "2026-01-07T18:00Z"]) in (0, 1, 2)
    assert json.loads(capsys.readouterr().out)["as_of"] == "2026-01-07T18:00:00Z"


def _ingested_with(config: Path, extra: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The store fixture's logs under `tmp_path`, its config with `extra` appended, ingested."""
    shutil.copytree(config.parent / "logs", tmp_path / "logs")
    copy = tmp_path / "triage.toml"
    copy.write_text(CONFIG + extra, encoding="utf-8")
    assert main(["--config", str(copy), "ingest"]) == 0
    capsys.readouterr()
    return copy


def test_a_rule_that_looks_back_before_the_year_1_is_judged(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`for_windows` of a hundred million days: how far back a rule's cells count runs off the
    calendar, which must not crash the check (it did, with an OverflowError traceback)."""
    rule = '[[model.alert]]\nname = "patient"\nsignal = "drift.psi"\nwarn = 0.1\nfor_windows = 100000000\n'
    copy = _ingested_with(store[0], rule, tmp_path, capsys)
    document = check_json(capsys, copy, "--at", "2026-01-07T18:00Z")
    assert document["models"][0]["drift"] and not [a for a in document["alerts"] if a["status"] == "firing"]


def test_predictions_stamped_after_the_current_time_are_named_and_end_no_replay(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A row stamped in 2090 (within the years the store takes) is counted by no check until then:
    the document and the summary say so, whatever T; a replay's default span ends at the last
    prediction up to now, not at it (a replay of decades of windows ran for ever)."""
    shutil.copytree(store[0].parent / "logs", tmp_path / "logs")
    with open(tmp_path / "logs" / "predictions.jsonl", "a", encoding="utf-8") as handle:
        for ts in ("2090-01-01T00:00:00Z", "2089-06-30T12:00:00Z"):
            handle.write(json.dumps({"id": f"late-{ts}", "ts": ts, "score": 0.5, "version": "v1"}) + "\n")
    copy = tmp_path / "triage.toml"
    copy.write_text(CONFIG, encoding="utf-8")
    assert main(["--config", str(copy), "ingest"]) == 0
    capsys.readouterr()
    document = check_json(capsys, copy, "--at", "2026-01-07T18:00Z")
    assert document["models"][0]["ahead_of_clock"] == {"predictions": 2, "latest": "2090-01-01T00:00:00Z"}
    assert check_json(capsys, store[0], "--at", "2026-01-07T18:00Z")["models"][0]["ahead_of_clock"] is None
    _, out, _ = run(capsys, copy, "--at", "2026-01-07T18:00Z")
    assert "ahead: 2 prediction(s) stamped after the current time (the latest at 2090-01-01)" in out
    with Engine(load_config(copy)) as engine:
        model = engine.config.models[0]
        _, last = replay_span(engine, [model]) or (None, None)
        assert last == store[1].ts.max().astype("datetime64[us]").item().replace(tzinfo=UTC)


def test_no_nan_anywhere(store: tuple[Path, Any], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = store
    # 20 minutes in: tiny cells, none judged (exit 3), the document written all the same.
    status, out, _ = run(capsys, config, "--json", "--at", "2026-01-05T00:20Z")
    assert status == 3
    document = json.loads(out)

    def walk(value: Any) -> None:
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    assert all(not r["enough_data"] for r in document["models"][0]["calibration"])


def test_a_retyped_and_a_dropped_column_keep_the_rest_monitored(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """On 2026-01-08 `amount` arrives as text ("371 days") and `merchant` no longer: the rows are
    stored (a bad optional value costs that value, not the row), so the window is evaluated; the
    schema changes are those of the latest window (the older ones still had both columns); and the
    retyped feature's missing rate says where its values went."""
    config, _ = store
    shutil.copytree(config.parent / "logs", tmp_path / "logs")
    rows = [
        json.loads(line)
        for line in (tmp_path / "logs" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    ]
    with open(tmp_path / "logs" / "predictions.jsonl", "a", encoding="utf-8") as handle:
        for i, row in enumerate(rows):
            later = {k: v for k, v in row.items() if k != "merchant"}
            later |= {"id": f"late{i}", "ts": f"2026-01-08T{i % 24:02d}:00:00Z", "amount": f"{i} days"}
            handle.write(json.dumps(later) + "\n")
    moved = tmp_path / "triage.toml"
    moved.write_text(CONFIG, encoding="utf-8")
    assert main(["--config", str(moved), "ingest"]) == 0
    assert "bad values stored as NULL, rows kept: amount 300" in capsys.readouterr().out
    document = check_json(capsys, moved, "--at", "2026-01-09T00:00Z")["models"][0]
    assert document["windows"][-1]["window_start"] == "2026-01-08T00:00:00Z"
    assert document["windows"][-1]["n"] == 300
    assert sorted(document["schema_changes"], key=lambda c: c["column"]) == [
        {"column": "amount", "change": "retyped", "reference_type": "DOUBLE", "current_type": "VARCHAR"},
        {"column": "merchant", "change": "missing", "reference_type": "VARCHAR", "current_type": None},
    ]
    latest = [
        row
        for row in document["data_quality"]
        if row["window_start"] == "2026-01-08T00:00:00Z" and row["version"] is None and row["segment"] is None
    ]
    rates = {row["feature"]: row["missing_rate"] for row in latest}
    assert rates == {"amount": 1.0, "merchant": 1.0, "__score__": 0.0}
    # The day before, both columns were as in the reference: no change as of then.
    assert check_json(capsys, moved, "--at", "2026-01-07T23:59Z")["models"][0]["schema_changes"] == []
    assert main(["--config", str(moved), "info"]) == 0
    assert "bad values   amount 300: in kept rows, stored as NULL" in capsys.readouterr().out
    assert main(["--config", str(moved), "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["bad_values"] == {"amount": 300}


def test_a_null_segment_value_and_a_logged_missing_one_are_one_slice_everywhere(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A NULL country and the text "(missing)" share the cell name `"(missing)"`: every table has one
    such cell per window × version (not two with one name), counting both, and its drift is
    measured against the reference rows of both (`n_reference`)."""
    config, _ = store
    shutil.copytree(config.parent / "logs", tmp_path / "logs")
    path = tmp_path / "logs" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for i, row in enumerate(rows):
        row["country"] = {0: None, 1: "(missing)"}.get(i % 10, row["country"])
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    moved = tmp_path / "triage.toml"
    moved.write_text(CONFIG, encoding="utf-8")
    assert main(["--config", str(moved), "ingest"]) == 0
    capsys.readouterr()
    document = check_json(capsys, moved, "--at", "2026-01-08T00:00Z")["models"][0]
    missing = [row for row in rows if row["country"] in (None, "(missing)")]
    expected: dict[tuple[str, str | None], int] = {}
    for row in missing:
        window = row["ts"][:10] + "T00:00:00Z"
        for version in (None, row["version"]):
            expected[(window, version)] = expected.get((window, version), 0) + 1
    reference = sum(1 for row in missing if row["ts"] < "2026-01-06")
    for table in ("drift", "data_quality", "calibration", "performance", "operations"):
        cells: dict[tuple[Any, ...], int] = {}
        for row in document[table]:
            if row["segment"] == "country" and row["segment_value"] == "(missing)":
                key = (row["window_start"], row["version"], row.get("feature"), row.get("route"))
                assert key not in cells, (table, key)
                cells[key] = row["n"]
                if table == "drift" and row["feature"] == "amount":
                    assert row["n_reference"] == reference
        found = {(window, version): n for (window, version, _, _), n in cells.items()}
        assert found == expected, table


def test_the_drift_lines_put_cells_the_test_backs_before_large_psi_alone() -> None:
    """A hundred-category feature has PSI 0.5 in small slices by chance (its pooled chi-square
    says so); one numeric slice at PSI 0.15 with p 1e-6 is the drift to read first."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import drift_row
    from triage.commands.check_cmd import _drift_lines

    noise = [
        drift_row(10, 0.5, "language", kind="categorical", chi2_p=1e-7, chi2_pooled_p=0.3, **scope)
        for scope in ({}, *({"segment": "region", "segment_value": f"r{i}"} for i in range(4)))
    ]
    shift = drift_row(10, 0.15, "amount", ks_p=1e-6, segment="region", segment_value="r2")
    quiet = drift_row(10, 0.02, "amount", ks_p=0.4)
    sparse = drift_row(10, None, "tenure", n=30, enough_data=False, note="not enough data: 30 values")
    model = SimpleNamespace(drift=[*noise, shift, quiet, sparse])
    lines = _drift_lines(model, shift.window_start)  # type: ignore[arg-type]
    first, second = (line.split() for line in lines[2:4])
    assert (first[0], first[1], first[-1]) == ("amount", "region=r2", "1/2")
    # p adjusted (Benjamini–Hochberg) across the window's 7 tested cells, as scipy does it
    adjusted = stats.false_discovery_control([0.3] * 5 + [1e-6, 0.4])
    assert (second[0], float(second[-3]), second[-1]) == ("language", round(adjusted[0], 4), "0/5")
    assert lines[-1] == "  no cell with enough values: tenure"  # not silently left out


def test_a_chance_p_value_among_many_slices_is_not_drifted() -> None:
    """One quiet slice of twenty at PSI 0.2 and p 0.006: adjusted across the window's cells it
    is 0.12, not drifted; with the same p in every slice it stays 0.006, and that slice is."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import DAY, T0, drift_row
    from triage.commands.check_cmd import _drift_lines

    def cells(first: float, rest: float) -> list[Any]:
        return [
            drift_row(
                10,
                0.2 if i == 0 else 0.05,
                "amount",
                ks_p=first if i == 0 else rest,
                segment="store",
                segment_value=f"s{i}",
            )
            for i in range(20)
        ]

    window = T0 + 10 * DAY
    (line,) = _drift_lines(SimpleNamespace(drift=cells(0.006, 0.5)), window)[2:]  # type: ignore[arg-type]
    assert line.split()[-1] == "0/20" and float(line.split()[-3]) == pytest.approx(0.12)
    (line,) = _drift_lines(SimpleNamespace(drift=cells(0.006, 0.006)), window)[2:]  # type: ignore[arg-type]
    assert line.split()[-1] == "1/20"


def test_calibration_and_performance_read_windows_whose_labels_have_come() -> None:
    """Labels arrive days late: the newest window has none, the one before only the reviewed
    (flagged) few. Calibration shows the newest window's decision rate and the latest calibrated
    window; performance the latest window with labels on ≥ 10 % of its rows, with its interval."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import calibration_row, performance_row
    from triage.commands.check_cmd import _calibration_lines, _performance_lines
    from triage.metrics.intervals import wilson

    calibration = [
        calibration_row(12, decision_rate=0.24, n=5000, n_labeled=0, ece=None),
        calibration_row(11, decision_rate=0.11, n=5000, n_labeled=30, ece=None),
        calibration_row(10, decision_rate=0.10, n=5000, n_labeled=3000, ece=0.031),
    ]
    performance = [
        performance_row(
            11, 0.95, n_labeled=300, label_coverage=0.04, decision_label_coverage=0.3, trials=120
        ),
        performance_row(10, 0.62, n_labeled=3000, label_coverage=0.6, auroc=0.8),  # its flagged 0.9
    ]
    reference_calibration = [
        calibration_row(day, decision_rate=0.1, n_labeled=3000, n=5000) for day in range(7)
    ]
    reference_performance = [performance_row(day, 0.6) for day in range(7)]
    model = SimpleNamespace(
        calibration=calibration,
        performance=performance,
        reference_calibration=reference_calibration,
        reference_performance=reference_performance,
    )
    latest = calibration[0].window_start
    (line,) = _calibration_lines(model, latest)[2:]  # type: ignore[arg-type]
    assert line.split()[:7] == ["all", "5,000", "0.240", "(0.100)", time_text_day(10), "3,000", "0.031"]
    # Day 11's flagged rows are still under review (30 % labelled): day 10 it is, its labels 60 %
    # of its rows against the reference's 4000 of 5000 (80 %): under 80 % of it, so its recall,
    # AUROC and cost are marked; precision, on its flagged rows (90 % labelled), is not.
    title, _, line, *notes = _performance_lines(model, "binary", 200)  # type: ignore[arg-type]
    assert "≥ 50% of its flagged rows labelled" in title
    low, high = wilson(round(0.62 * 3000), 3000)
    half = f"{(high - low) / 2:.2f}".removeprefix("0")
    assert line.split()[:5] == ["all", time_text_day(10), "60.0%†", f"0.62±{half}", "(0.60)"]
    assert notes[0] == "  † labels on under 80% of the reference's share: all 80.0%"
    mature = dataclasses.replace(performance[1], label_coverage=0.75, n_labeled=3750)
    settled = SimpleNamespace(**{**vars(model), "performance": [mature]})
    assert "†" not in "".join(_performance_lines(settled, "binary", 200))  # type: ignore[arg-type]


def test_the_reference_in_the_summary_is_the_alerts_baseline() -> None:
    """Precision's reference pools the reference windows' counts, as the alert rules' baseline
    does: 3 reference days at 720 of 900 flagged and 4 at 40 of 100 are 2320 of 3100 = 0.748, not the
    windows' mean 0.571; the decision rate pools its rows (1000 × 0.1 and 9000 × 0.2: 0.19)."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import calibration_row, performance_row
    from triage.alerts.evaluate import baseline_of
    from triage.commands.check_cmd import _calibration_lines, _performance_lines

    reference_performance = [
        *(performance_row(day, 0.8, trials=900) for day in range(3)),
        *(performance_row(day, 0.4, trials=100) for day in range(3, 7)),
    ]
    reference_calibration = [
        calibration_row(0, decision_rate=0.1, n=1000),
        calibration_row(1, decision_rate=0.2, n=9000),
    ]
    model = SimpleNamespace(
        calibration=[calibration_row(10, decision_rate=0.1)],
        performance=[performance_row(10, 0.6)],
        reference_calibration=reference_calibration,
        reference_performance=reference_performance,
    )
    (line,) = _performance_lines(model, "binary", 200)[2:]  # type: ignore[arg-type]
    assert line.split()[4] == f"({2320 / 3100:.2f})" == "(0.75)"
    pooled = baseline_of("performance", "precision", reference_performance)
    assert pooled is not None and pooled.value == pytest.approx(2320 / 3100)
    (line,) = _calibration_lines(model, model.calibration[0].window_start)[2:]  # type: ignore[arg-type]
    assert line.split()[3] == "(0.190)"


def test_a_version_without_enough_data_says_why() -> None:
    """A small canary in short windows stays below min_samples: each table says why its row is
    dashes (or missing) instead of leaving the reader to guess."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import calibration_row, operations_row, performance_row
    from triage.commands.check_cmd import _calibration_lines, _operations_lines, _performance_lines

    thin = {"version": "v2", "n": 36, "enough_data": False}
    note = "not enough data: 36 rows < min_samples 200"
    model = SimpleNamespace(
        calibration=[
            calibration_row(12),
            calibration_row(12, **thin, decision_rate=None, ece=None, note=note),
        ],
        performance=[performance_row(10), performance_row(10, None, **thin, n_labeled=9)],
        operations=[operations_row(12), operations_row(12, **thin, latency_p95_ms=None, error_rate=None)],
        reference_calibration=[calibration_row(day) for day in range(7)],
        reference_performance=[performance_row(day, 0.6) for day in range(7)],
    )
    latest = model.calibration[0].window_start
    calibration = _calibration_lines(model, latest)  # type: ignore[arg-type]
    assert calibration[-1] == f"  v2: {note}"
    assert [line.split()[:3] for line in calibration[2:4]] == [["all", "5,000", "0.100"], ["v2", "36", "-"]]
    performance = _performance_lines(model, "binary", 200)  # type: ignore[arg-type]
    assert performance[-1] == "  v2: no such window yet" and len(performance) == 4
    operations = _operations_lines(model, latest)  # type: ignore[arg-type]
    assert operations[-1] == "  - : not enough data in the cell (fewer than min_samples rows)"
    model.calibration, model.performance, model.operations = (
        rows[:1] for rows in (model.calibration, model.performance, model.operations)
    )
    assert len(_calibration_lines(model, latest)) == 3  # type: ignore[arg-type]
    assert len(_performance_lines(model, "binary", 200)) == 3  # type: ignore[arg-type]
    assert len(_operations_lines(model, latest)) == 3  # type: ignore[arg-type]


def test_calibration_is_shown_for_a_window_labelled_like_the_rule_wants() -> None:
    """The newest window's few early labels are the reviewed, flagged requests (ECE 0.27 on 3 % of
    its rows): the summary shows the latest window with labels on at least half its rows, as the
    ECE rule judges, beside the reference's ECE weighted by labelled rows (0.02·3000 + 0.04·1000)."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import calibration_row
    from triage.commands.check_cmd import _calibration_lines

    model = SimpleNamespace(
        calibration=[
            calibration_row(10, ece=0.061, n=5000, n_labeled=3000),
            calibration_row(12, ece=0.27, n=5000, n_labeled=170),
        ],
        reference_calibration=[
            calibration_row(0, ece=0.02, n=5000, n_labeled=3000),
            calibration_row(1, ece=0.04, n=5000, n_labeled=1000),
        ],
    )
    lines = _calibration_lines(model, model.calibration[1].window_start)  # type: ignore[arg-type]
    assert lines[0].endswith("latest window ≥ 50% labelled, settled (reference)")
    row = lines[2].split()
    assert row[0] == "all" and row[4] == time_text_day(10) and row[5] == "3,000"
    assert row[6:8] == ["0.061", f"({(0.02 * 3000 + 0.04 * 1000) / 4000:.3f})"]
    model.calibration = model.calibration[1:]
    assert _calibration_lines(model, model.calibration[0].window_start)[-1] == "  all: no such window yet"  # type: ignore[arg-type]


def test_calibration_waits_for_labels_as_settled_as_the_reference() -> None:
    """Legitimate requests are confirmed by a month without dispute, frauds by chargebacks within
    days: a window labelled on 60 % of its rows against a reference labelled on 80 % holds too many
    frauds, and its ECE reads high. The summary shows the latest window labelled on at least 90 %
    of the reference's share (72 %) and says which wait."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import calibration_row
    from triage.commands.check_cmd import _calibration_lines

    model = SimpleNamespace(
        calibration=[
            calibration_row(10, ece=0.021, n=5000, n_labeled=3700),  # 74 %
            calibration_row(12, ece=0.09, n=5000, n_labeled=3000),  # 60 %
        ],
        reference_calibration=[calibration_row(day, ece=0.02, n=5000, n_labeled=4000) for day in range(7)],
    )
    *_, row, wait, why = _calibration_lines(model, model.calibration[1].window_start)  # type: ignore[arg-type]
    assert row.split()[4:7] == [time_text_day(10), "3,700", "0.021"]
    assert wait == "  newer windows wait: labels on under 80% of the reference's share: all 80.0%"
    assert why.startswith("    the first labels are the classes that come first")


def test_an_hourly_drift_table_says_what_drifted_is_against() -> None:
    """Drifted cells in an hourly view are against the whole reference, which an hour's mix never
    matches: the table says so, and that the rules compare with the reference's same hour."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import HOUR, drift_row, model_config
    from triage.commands.check_cmd import _drift_by_phase, _drift_lines
    from triage.config import Window

    def rows(length: timedelta) -> list[Any]:
        row = drift_row(3, 0.4, ks_p=1e-9)
        return [dataclasses.replace(row, window_end=row.window_start + length)]

    note = (
        "  against the whole reference; the alert rules compare each window with the reference's"
        " at its time of day"
    )
    hourly = SimpleNamespace(drift=rows(HOUR))
    assert _drift_lines(hourly, hourly.drift[0].window_start, True)[-1] == note  # type: ignore[arg-type]
    daily = SimpleNamespace(drift=rows(24 * HOUR))
    assert note not in _drift_lines(daily, daily.drift[0].window_start, True)  # type: ignore[arg-type]
    # Without a drift rule that compares by phase (a feed-only rule set), nothing to say.
    assert note not in _drift_lines(hourly, hourly.drift[0].window_start, False)  # type: ignore[arg-type]
    hourly_model = model_config(window=Window(1, "h"))
    assert _drift_by_phase(hourly_model)
    assert not _drift_by_phase(dataclasses.replace(hourly_model, alerts=(), alerts_configured=True))


def test_nothing_judged_says_why() -> None:
    """Labels still arriving (every window under the precision rule's coverage gate) is named as
    the reason, not min_samples, which the windows' predictions pass."""
    from types import SimpleNamespace

    from tests.test_alert_evaluate import T0, AlertRule, evaluate, performance_row
    from triage.commands.check_cmd import _why_unjudged

    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, min_label_coverage=0.5)
    young = [
        performance_row(day, 0.9, n=1386, decision_label_coverage=0.14, trials=90) for day in range(10, 12)
    ]
    evaluations = evaluate(rule, performance=young, now=T0 + 12 * timedelta(days=1))
    assert not any(e.judged for e in evaluations)
    summary = SimpleNamespace(reference=SimpleNamespace(complete=True, note=None))
    model = SimpleNamespace(min_samples=200)
    why = _why_unjudged(summary, model, evaluations, 1386)  # type: ignore[arg-type]
    assert why == "its windows wait for their labels (too few labelled rows, or too low a coverage, so far)"
    thin = evaluate(
        rule, performance=[performance_row(10, 0.9, n=150, n_labeled=150)], now=T0 + 11 * timedelta(days=1)
    )
    assert _why_unjudged(summary, model, thin, 150) == (  # type: ignore[arg-type]
        "no rule judged a recent window (the largest holds 150 predictions; min_samples 200)"
    )


def time_text_day(day: int) -> str:
    """A window's start as the summary's tables show it (month-day)."""
    from tests.test_alert_evaluate import DAY, T0

    return f"{T0 + day * DAY:%m-%d}"


def test_a_model_without_predictions_makes_an_otherwise_ok_check_unknown(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two models, no alert rules: one judged, the other's feed not started as of T. Not "OK" for
    a cron job: unknown (3), naming the model; checking the judged one alone is OK."""
    config, _ = store
    shutil.copytree(config.parent / "logs", tmp_path / "logs")
    line = (tmp_path / "logs" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0]
    later = json.loads(line) | {"id": "march-1", "ts": "2026-03-02T00:00:00Z"}
    (tmp_path / "logs" / "later.jsonl").write_text(json.dumps(later) + "\n", encoding="utf-8")
    quiet = CONFIG.replace("min_samples = 20\n", "min_samples = 20\nalert = []\n")
    second = quiet.split("[[model]]")[1].replace('name = "fraud"', 'name = "later"')
    second = second.replace('predictions = "logs/predictions.jsonl"', 'predictions = "logs/later.jsonl"')
    both = tmp_path / "triage.toml"
    both.write_text(quiet + "\n[[model]]" + second, encoding="utf-8")
    assert main(["--config", str(both), "ingest"]) == 0
    capsys.readouterr()
    status, out, err = run(capsys, both, "--at", "2026-01-07T18:00Z")
    assert status == 3 and out.splitlines()[0].endswith("— UNKNOWN")
    assert err.strip() == "triage: no predictions in the evaluated windows of later as of 2026-01-07 18:00Z"
    status, out, _ = run(capsys, both, "--at", "2026-01-07T18:00Z", "--model", "fraud")
    assert status == 0 and out.splitlines()[0].endswith("— OK")


def test_a_check_whose_windows_are_all_too_thin_to_judge_is_unknown(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Predictions in every window, none with min_samples of them (an hourly view of a quiet
    model): every cell is "not enough data", so "OK" would read as healthy — unknown (3), with the
    largest window's count (`AlertEvaluation.judged`: old evidence is not judged either)."""
    config, _ = store
    shutil.copytree(config.parent / "logs", tmp_path / "logs")
    strict = tmp_path / "triage.toml"
    strict.write_text(CONFIG.replace("min_samples = 20\n", "min_samples = 100000\n"), encoding="utf-8")
    assert main(["--config", str(strict), "ingest"]) == 0
    capsys.readouterr()
    status, out, _ = run(capsys, strict, "--json", "--at", "2026-01-07T18:00Z")
    most = max(window["n"] for window in json.loads(out)["models"][0]["windows"])
    assert status == 3 and 0 < most < 100000
    status, out, err = run(capsys, strict, "--at", "2026-01-07T18:00Z")
    assert status == 3 and out.splitlines()[0].endswith("— UNKNOWN")
    assert err.strip() == (
        "triage: nothing judged as of 2026-01-07 18:00Z: no rule judged a recent window (the largest "
        f"holds {most} predictions; min_samples 100000)"
    )
    status, out, _ = run(capsys, config, "--at", "2026-01-07T18:00Z")  # min_samples 20: judged
    assert status != 3 and not out.splitlines()[0].endswith("— UNKNOWN")


def test_the_feed_row_and_a_silence_alert_fire_and_resolve(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`feed`: the latest prediction as of T and the silence since it, from the raw timestamps; a
    `feed.silence_s` rule warns after 6 h, is critical after a day, and resolves when predictions
    come again. The exit status follows it."""
    config, data = store
    rule = '[[model.alert]]\nname = "quiet-feed"\nsignal = "feed.silence_s"\nwarn = 21600\ncritical = 86400\n'
    copy = _ingested_with(config, rule, tmp_path, capsys)
    at = datetime(2026, 1, 6, 15, 30, tzinfo=UTC)
    feed, *slices = check_json(capsys, copy, "--at", at.isoformat())["models"][0]["feed"]
    before = data.ts[data.ts <= np.datetime64(at.replace(tzinfo=None))]
    countries = data.segments["country"][data.ts <= np.datetime64(at.replace(tzinfo=None))]
    assert [(row["segment"], row["segment_value"]) for row in slices] == [
        ("country", value) for value in sorted(set(countries))
    ]
    assert sum(row["n"] for row in slices) == len(before)
    last = before.max().astype(datetime).replace(tzinfo=UTC)
    assert feed["n"] == len(before) and feed["enough_data"] and feed["note"] is None
    assert feed["last_prediction"] == _iso(before.max())
    assert feed["silence_s"] == pytest.approx((at - last).total_seconds(), abs=1e-6)
    assert (feed["window_start"], feed["window_end"]) == ("2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z")
    assert feed["version"] is None and feed["segment"] is None
    assert feed["behind_s"] == 0.0 and feed["usual_n"] is None

    end = data.ts.max().astype(datetime).replace(tzinfo=UTC)
    seen = []
    for hours, shown in ((5, []), (7, ["7.0h", "6.0h"]), (25, ["1.0d", "1.0d"])):
        status, out, _ = run(capsys, copy, "--at", (end + timedelta(hours=hours)).isoformat())
        document = check_json(capsys, copy, "--at", (end + timedelta(hours=hours)).isoformat())
        alerts = [a for a in document["alerts"] if a["rule"] == "quiet-feed"]
        seen.append((status, [(a["status"], a["severity"], a["threshold"]) for a in alerts]))
        if alerts:
            assert alerts[0]["value"] == pytest.approx(hours * 3600, abs=1e-6)
            assert alerts[0]["scope"] == {}
            line = next(line for line in out.splitlines() if "quiet-feed" in line)
            assert line.split()[6:8] == shown  # value and threshold as durations, not seconds
    assert seen == [
        (0, []),
        (1, [("firing", "warning", 21600)]),
        (2, [("firing", "critical", 86400)]),
    ]
    # The last window as a --last view: its silence is measured in it; an empty view has none.
    status, out, _ = run(capsys, copy, "--json", "--at", (end + timedelta(days=2)).isoformat(), "--last", "1")
    (empty,) = json.loads(out)["models"][0]["feed"]  # no slice rows without predictions
    assert status == 3 and empty["last_prediction"] is None and empty["silence_s"] is None
    assert not empty["enough_data"] and empty["note"] == "no predictions in the evaluated windows"
    # Predictions again: the alert resolves, and the check is OK.
    line = (tmp_path / "logs" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0]
    again = end + timedelta(hours=26)
    row = json.loads(line) | {"id": "again-1", "ts": again.isoformat().replace("+00:00", "Z")}
    with open(tmp_path / "logs" / "predictions.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    assert main(["--config", str(copy), "ingest"]) == 0
    capsys.readouterr()
    document = check_json(capsys, copy, "--at", (again + timedelta(minutes=1)).isoformat())
    (alert,) = [a for a in document["alerts"] if a["rule"] == "quiet-feed"]
    assert alert["status"] == "resolved"
    assert run(capsys, copy, "--at", (again + timedelta(minutes=2)).isoformat())[0] == 0
    # The history reads the silences as durations too.
    assert main(["--config", str(copy), "alerts", "history"]) == 0
    fired = [line.split() for line in capsys.readouterr().out.splitlines() if "quiet-feed" in line]
    at = [words.index("quiet-feed") for words in fired]
    assert ["7.0h", "6.0h"] in [words[i + 1 : i + 3] for words, i in zip(fired, at, strict=True)]


def usual_silence(
    stamps: list[datetime], model_last: datetime, first: datetime
) -> tuple[int | None, float | None]:
    """A slice's silence (its last prediction, the model's last] compared by hand, as the README
    says: moved back by 7 consecutive days, from the first day count at least twice the silence;
    or, when one of those would start before `first` (the first prediction), its whole history
    (`first`, last] if that or the silence is a week or more. In them: the fewest predictions, and the longest
    stretch from a span's start or one of its predictions to the 20th prediction after it, looked
    for no later than twice the silence past the moved model's last (the history: its last), at
    most the silence; a stretch that runs out of looking before that is left out. (None, None)
    without either."""
    ordered, last = sorted(stamps), max(stamps)
    behind = model_last - last
    day = timedelta(days=1)
    nearest = max(1, math.ceil(2 * behind / day))
    spans = [
        (last - k * day, model_last - k * day, last + 2 * behind - k * day)
        for k in range(nearest, nearest + 7)
    ]
    if spans[-1][0] < first:
        if last - timedelta(weeks=1) < first and behind < timedelta(weeks=1):
            return None, None
        spans = [(first, last, last)]
    cap = behind.total_seconds()
    counts, gaps = [], []
    for low, high, reach in spans:
        inside = [at for at in ordered if low < at <= high]
        counts.append(len(inside))
        known = []
        for start in [low, *inside]:
            after = [at for at in ordered[bisect.bisect_right(ordered, start) :] if at <= reach]
            if len(after) >= 20:
                known.append(min((after[19] - start).total_seconds(), cap))
            elif (reach - start).total_seconds() >= cap:
                known.append(cap)
        gaps.append(max(known, default=cap))
    return min(counts), max(gaps)


SLICE_FEED_CONFIG = """
[store]
path = "store.duckdb"

[[model]]
name = "feed"
predictions = "predictions.jsonl"
window = "1d"
min_samples = 20
stale_after = "1h"

[model.columns]
id = "id"
timestamp = "ts"
score = "score"

[model.segments]
columns = ["region"]

[model.reference]
start = "2026-03-01"
end = "2026-03-02"
"""


def test_a_slice_whose_traffic_stopped_alerts_where_it_usually_has_predictions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Nine days of traffic: region `busy` every 2 min (with jitter), `north` too until day 9
    09:00, `sparse` every 50 min. As of day 9 14:00, `north`'s row is 5 h behind the model, with
    its fewest predictions in 09:00–14:00 of the 7 days before and the longest it took on them to
    have 20 (both counted here from the raw times): its silence less that wait is over 4 h, a
    critical `slice-feed-stale` (from 4 × `stale_after`); `sparse`, with about six predictions in
    its hours of the earlier days, is not enough data. When the whole feed stops, `feed-stale`
    fires and no slice's does (no storm); with fewer than 7 earlier days there is nothing to
    compare with. A second segment, `tier`, puts `north` and `sparse` in one slice: each slice's
    row is checked against its own raw times."""
    rng = np.random.default_rng(5)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    stop = start + timedelta(days=8, hours=9)
    end = start + timedelta(days=8, hours=14)
    times: dict[str, list[datetime]] = {"busy": [], "north": [], "sparse": []}
    for region, step in (("busy", 120), ("north", 120), ("sparse", 3000)):
        at = start + timedelta(seconds=float(rng.uniform(0, step)))
        while at <= end and (region != "north" or at <= stop):
            times[region].append(at)
            at += timedelta(seconds=step + float(rng.uniform(-30, 30)))
    with open(tmp_path / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for region, stamps in times.items():
            for i, at in enumerate(stamps):
                row = {"id": f"{region}-{i}", "ts": at.isoformat(), "score": 0.5, "region": region}
                row["tier"] = "gold" if region == "busy" else "basic"
                handle.write(json.dumps(row) + "\n")
    config = tmp_path / "triage.toml"
    config.write_text(SLICE_FEED_CONFIG.replace('["region"]', '["region", "tier"]'), encoding="utf-8")
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()

    model_last = max(times["busy"] + times["sparse"])
    first = min(at for stamps in times.values() for at in stamps)
    slices = {("region", region): stamps for region, stamps in times.items()}
    slices |= {("tier", "gold"): times["busy"], ("tier", "basic"): times["north"] + times["sparse"]}

    status, out, _ = run(capsys, config, "--json", "--at", end.isoformat())
    document = json.loads(out)
    model_row, *rows = document["models"][0]["feed"]
    assert model_row["last_prediction"] == model_last.isoformat().replace("+00:00", "Z")
    assert [(row["segment"], row["segment_value"]) for row in rows] == sorted(slices)
    for row in rows:
        stamps = slices[(row["segment"], row["segment_value"])]
        behind = (model_last - max(stamps)).total_seconds()
        count, gap = usual_silence(stamps, model_last, first) if behind >= 60 else (None, None)
        assert row["n"] == len(stamps)
        assert row["last_prediction"] == max(stamps).isoformat().replace("+00:00", "Z")
        assert row["silence_s"] == pytest.approx((end - max(stamps)).total_seconds(), abs=1e-6)
        assert row["behind_s"] == pytest.approx(behind, abs=1e-6)
        assert row["usual_n"] == count
        assert row["usual_gap_s"] == (None if gap is None else pytest.approx(gap, abs=1e-6))
        # The silence the rule judges: how much longer it is than any from those hours before.
        assert row["unusual_s"] == pytest.approx(behind - (gap or 0.0), abs=1e-6)
        assert row["enough_data"]
    feed = {row["segment_value"]: row for row in rows}
    assert feed["north"]["usual_n"] >= 20 and feed["basic"]["usual_n"] is not None
    assert 0 < feed["north"]["usual_gap_s"] < 3600 and feed["north"]["unusual_s"] > 4 * 3600
    assert feed["sparse"]["usual_n"] < 20 and feed["sparse"]["unusual_s"] == 0.0
    assert feed["sparse"]["note"].startswith("a usual silence: ")
    assert feed["busy"]["behind_s"] == 0.0 and feed["busy"]["usual_n"] is None
    firing = [(a["rule"], a["scope"], a["severity"]) for a in document["alerts"] if a["status"] == "firing"]
    north_scope = {"segment": "region", "segment_value": "north"}
    assert firing == [("slice-feed-stale", north_scope, "critical")]
    assert status == 2
    text = run(capsys, config, "--at", end.isoformat())[1]
    line = next(line for line in text.splitlines() if "slice-feed-stale" in line)
    value = duration_text(feed["north"]["unusual_s"])
    assert line.split()[7:9] == [value, "4.0h"]  # value and critical threshold as durations
    # Every slice silent a minute longer than it went without 20 predictions from those hours
    # before, the most unusual first: `north` (`basic`, the tier it belongs to, has `sparse`'s last).
    silent = []
    for (segment, value), stamps in slices.items():
        behind = (model_last - max(stamps)).total_seconds()
        count, gap = usual_silence(stamps, model_last, first) if behind >= 60 else (0, None)
        if gap is not None and behind - gap >= 60:
            silent.append((gap - behind, f"{segment}={value}", behind, count, gap))
    assert [name for _, name, *_ in sorted(silent)][:1] == ["region=north"]
    assert [line for line in text.splitlines() if line.startswith("  silent:")] == [
        f"  silent: {name}, none for {duration_text(behind)} while the model went on "
        f"(at least {count} in those hours on earlier days, at most {duration_text(gap)} without 20)"
        for _, name, behind, count, gap in sorted(silent)
    ]

    # The whole feed stops: the model's silence fires, the slices' rows stay as they were.
    later = end + timedelta(hours=6)
    document = check_json(capsys, config, "--at", later.isoformat())
    firing = [(a["rule"], a["scope"]) for a in document["alerts"] if a["status"] == "firing"]
    assert sorted(firing) == [("feed-stale", {}), ("slice-feed-stale", north_scope)]
    # Six earlier days (the last 7 windows): nothing to compare `north` with, so no judgement.
    document = check_json(capsys, config, "--at", end.isoformat(), "--last", "7")
    north_row = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "north")
    assert north_row["usual_n"] is None and north_row["unusual_s"] is None and not north_row["enough_data"]
    assert north_row["note"] == "its last prediction came within a week of the first: nothing to compare"

    # `north` comes back: a minute behind, with no usual traffic in that minute, its silence is
    # usual again and the alert resolves (it was held as not enough data before).
    back = end + timedelta(hours=7)
    with open(tmp_path / "predictions.jsonl", "a", encoding="utf-8") as handle:
        for i in range(40):
            at = back - timedelta(minutes=40 - i) - timedelta(seconds=90)
            row = {
                "id": f"north-again-{i}",
                "ts": at.isoformat(),
                "score": 0.5,
                "region": "north",
                "tier": "basic",
            }
            handle.write(json.dumps(row) + "\n")
            row = {"id": f"busy-again-{i}", "ts": (at + timedelta(seconds=60)).isoformat(), "score": 0.5}
            handle.write(json.dumps(row | {"region": "busy", "tier": "gold"}) + "\n")
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    document = check_json(capsys, config, "--at", back.isoformat())
    (north_alert,) = [a for a in document["alerts"] if a["rule"] == "slice-feed-stale"]
    assert north_alert["status"] == "resolved"


def ingest_regions(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    times: dict[str, list[datetime]],
    config_text: str = "",
) -> Path:
    """Predictions at `times` per region, a model on them (`config_text`, by default
    `SLICE_FEED_CONFIG` with its reference on Monday 2026-03-02), ingested: the config's path."""
    with open(tmp_path / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for region, stamps in times.items():
            for i, at in enumerate(stamps):
                row = {"id": f"{region}-{i}", "ts": at.isoformat(), "score": 0.5, "region": region}
                handle.write(json.dumps(row) + "\n")
    monday = 'start = "2026-03-02"\nend = "2026-03-03"'
    config = tmp_path / "triage.toml"
    config.write_text(
        config_text or SLICE_FEED_CONFIG.replace('start = "2026-03-01"\nend = "2026-03-02"', monday),
        encoding="utf-8",
    )
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    return config


def test_a_slice_quiet_every_weekend_is_compared_with_earlier_weekends(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Region `office` sends only on weekdays, `web` every day. On the first Saturday at 10:00,
    `office` is 10 h behind with only 5 earlier days, all weekdays: nothing to compare with, no
    alert (it fired with those five). On the second Saturday the 7 days before hold the first, as
    quiet: a usual silence. On the third Sunday at 06:00, `office` is 30 h behind: a silence longer
    than a day is compared with the same hours whole weeks before — the earlier weekends, as quiet
    — so no alert (by 2-day steps it was compared with Thursday and Friday, and fired every
    weekend)."""
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    end = start + timedelta(days=13, hours=6)  # the second Sunday after, 06:00
    steps = [start + timedelta(minutes=2 * i) for i in range(int((end - start) / timedelta(minutes=2)) + 1)]
    times = {"office": [at for at in steps if at.weekday() < 5], "web": steps}
    config = ingest_regions(capsys, tmp_path, times)
    for saturday, usual_n in (
        (start + timedelta(days=5, hours=10), None),
        (start + timedelta(days=12, hours=10), 0),
    ):
        document = check_json(capsys, config, "--at", saturday.isoformat())
        office = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "office")
        assert office["behind_s"] == pytest.approx(10 * 3600, abs=120) and office["usual_n"] == usual_n
        assert office["unusual_s"] == (None if usual_n is None else 0.0)
        assert not [a for a in document["alerts"] if a["rule"] == "slice-feed-stale"]
    status, out, _ = run(capsys, config, "--json", "--at", end.isoformat())
    document = json.loads(out)
    office = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "office")
    assert office["behind_s"] == pytest.approx(30 * 3600, abs=120)
    assert office["usual_n"] == 0 and office["unusual_s"] == 0.0 and office["enough_data"]
    assert not [a for a in document["alerts"] if a["rule"] == "slice-feed-stale"] and status == 0


def test_a_daily_batch_slice_alerts_only_when_later_than_it_ever_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Region `nightly` is a batch job: 120 predictions 5 s apart once a day from about 02:00 (its
    start jitters by up to 15 min), `web` every 2 min. On the tenth day its batch runs at 05:30. At
    01:00 its silence is usual (the days before went as long from those hours). At 02:30, 10 min
    past the last start, `nightly` is a day and 10 min behind: too long a silence for 7 earlier
    days twice as far back in 10 days of logs, so it is compared with its whole history, where it
    went about as long without 20 predictions between two runs — its silence less that stretch
    (counted here from the raw times) is under `stale_after`, no alert (the whole day used to be
    judged, and fired). At 05:15 it is hours later than ever: `slice-feed-stale` warns."""
    start = datetime(2026, 3, 2, tzinfo=UTC)
    jitter = [-5, 12, -14, 3, 9, -10, 0, 7, 10]  # minutes, days 0 to 8; day 9 runs at 05:30
    times: dict[str, list[datetime]] = {"web": [], "nightly": []}
    for day in range(10):
        begin = start + timedelta(days=day, hours=2, minutes=jitter[day] if day < 9 else 210)
        times["nightly"] += [begin + timedelta(seconds=5 * i) for i in range(120)]
    at = start
    while at <= start + timedelta(days=9, hours=6):
        times["web"].append(at)
        at += timedelta(minutes=2)
    config = ingest_regions(capsys, tmp_path, times)
    for as_of, fires in (
        (start + timedelta(days=9, hours=1), False),
        (start + timedelta(days=9, hours=2, minutes=30), False),
        (start + timedelta(days=9, hours=5, minutes=15), True),
    ):
        last = max(at for at in times["nightly"] if at <= as_of)
        model_last = max(at for at in times["web"] + times["nightly"] if at <= as_of)
        behind = model_last - last
        count, gap = usual_silence([at for at in times["nightly"] if at <= as_of], model_last, start)
        document = check_json(capsys, config, "--at", as_of.isoformat())
        nightly = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "nightly")
        assert nightly["behind_s"] == pytest.approx(behind.total_seconds(), abs=1e-6)
        assert nightly["usual_n"] == count and nightly["usual_gap_s"] == pytest.approx(gap, abs=1e-6)
        assert nightly["unusual_s"] == pytest.approx(behind.total_seconds() - (gap or 0.0), abs=1e-6)
        assert (nightly["unusual_s"] >= 3600) is fires
        firing = [(a["rule"], a["severity"]) for a in document["alerts"] if a["status"] == "firing"]
        assert firing == ([("slice-feed-stale", "warning")] if fires else [])


def test_a_long_silence_stays_unusual_and_a_young_store_is_not_judged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Twenty days from a Wednesday, every 2 min: `a` throughout, `b` until day 10 12:00, `c` until
    day 6 12:00. A day after `b` stopped it is compared with 7 earlier days; nine days after, no 7
    earlier days lie far enough back, so its whole history is — it stays unusual (the alert used to
    go quiet after a week, with the slice still dead). Each row is checked against the README's
    definition on the raw times. With weekly windows, `c` two hours after it stopped has less than
    a week of logs before it (the week's window starts on the Monday before them): not judged; a
    week after it stopped, that silence is no weekly cycle, and its short history judges it."""
    start = datetime(2026, 3, 4, tzinfo=UTC)  # a Wednesday
    steps = [start + timedelta(minutes=2 * i) for i in range(20 * 24 * 30)]
    times = {
        "a": steps,
        "b": [at for at in steps if at <= start + timedelta(days=10, hours=12)],
        "c": [at for at in steps if at <= start + timedelta(days=6, hours=12)],
    }
    config = ingest_regions(capsys, tmp_path, times)
    for day in (11, 19):
        as_of = start + timedelta(days=day, hours=12)
        model_last = max(at for at in steps if at <= as_of)
        document = check_json(capsys, config, "--at", as_of.isoformat())
        b = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "b")
        count, gap = usual_silence(times["b"], model_last, start)
        assert (b["usual_n"], b["usual_gap_s"]) == (count, pytest.approx(gap, abs=1e-6)) and gap < 3600
        assert b["unusual_s"] == pytest.approx(b["behind_s"] - gap, abs=1e-6)
        firing = [(a["rule"], a["scope"].get("segment_value"), a["severity"]) for a in document["alerts"]]
        assert ("slice-feed-stale", "b", "critical") in firing
    as_of = start + timedelta(days=6, hours=14)
    document = check_json(capsys, config, "--at", as_of.isoformat(), "--window", "1w")
    c = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "c")
    assert usual_silence(times["c"], max(at for at in steps if at <= as_of), start) == (None, None)
    assert (c["usual_n"], c["usual_gap_s"], c["unusual_s"]) == (None, None, None) and not c["enough_data"]
    # A week after `c` stopped, its silence is no weekly cycle: its 6.5 days of history judge it.
    as_of = start + timedelta(days=13, hours=13)
    document = check_json(capsys, config, "--at", as_of.isoformat())
    c = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "c")
    count, gap = usual_silence(times["c"], max(at for at in steps if at <= as_of), start)
    assert (c["usual_n"], c["usual_gap_s"]) == (count, pytest.approx(gap, abs=1e-6)) and gap < 3600
    assert ("slice-feed-stale", "critical") in [
        (a["rule"], a["severity"]) for a in document["alerts"] if a["scope"].get("segment_value") == "c"
    ]


def test_a_cost_value_no_prediction_has_is_named(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`costs.by_segment` values are matched as the store keeps the segment's text: one that no
    cell has (a typo, "1" for a DOUBLE column's "1.0") costs nothing silently — the summary says so."""
    config, _ = store
    shutil.copytree(config.parent, tmp_path / "copy")
    copy = tmp_path / "copy" / "triage.toml"
    costs = (
        "[model.costs.by_segment.country]\nUS = { false_negative = 300.0 }\nus = { false_negative = 300.0 }\n"
    )
    copy.write_text(CONFIG + costs, encoding="utf-8")
    _, out, _ = run(capsys, copy, "--at", "2026-01-07T18:00Z")
    notes = [line for line in out.splitlines() if "costs.by_segment" in line]
    assert notes == [
        "  costs.by_segment.country: no prediction has 'us' (its values: 'DE', 'FR', 'US'); "
        "those costs apply to no row"
    ]
    _, sliced, _ = run(capsys, copy, "--at", "2026-01-07T18:00Z", "--slice", "merchant")
    assert "costs.by_segment" not in sliced  # a view without the cost segment's cells cannot tell


def test_a_slice_whose_volume_halves_or_spikes_against_every_earlier_day_alerts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Nine days from a Monday, hour by hour (Poisson counts at uniform times): `web` with a daily
    cycle, `office` on weekdays 08–18 only, `eu` and `apac` flat, `bots` a trickle. On day 9 `eu`
    falls to 30 % from 10:00 and `bots` jumps thirtyfold from 11:00; `apac`'s log of the last
    45 minutes has not landed yet. As of 12:00 every feed row's last-hour volume and its fewest and
    most in that hour of the 7 days before are recounted here from the raw times; `eu` alone is a
    drop (warning: ≈ 0.3 of its fewest) and `bots` alone a spike (critical: > 4 × the 50 floor);
    `apac` is behind, not judged a drop; `office`'s hour has weekends among its earlier days."""
    rng = np.random.default_rng(11)
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    at = start + timedelta(days=8, hours=12)
    incident = start + timedelta(days=8)

    def rate(region: str, hour: datetime) -> float:
        if region == "web":
            return 100 * (1 + 0.5 * math.sin(2 * math.pi * hour.hour / 24))
        if region == "office":
            return 200.0 if hour.weekday() < 5 and 8 <= hour.hour < 18 else 0.0
        if region == "eu":
            return 45.0 if hour >= incident + timedelta(hours=10) else 150.0
        if region == "bots":
            return 300.0 if hour >= incident + timedelta(hours=11) else 10.0
        return 150.0  # apac

    times: dict[str, list[datetime]] = {r: [] for r in ("apac", "bots", "eu", "office", "web")}
    for h in range(8 * 24 + 12):
        hour = start + timedelta(hours=h)
        for region, stamps in times.items():
            offsets = np.sort(rng.uniform(0, 3600, rng.poisson(rate(region, hour))))
            stamps += [hour + timedelta(seconds=float(s)) for s in offsets]
    times["apac"] = [t for t in times["apac"] if t <= at - timedelta(minutes=45)]
    times["eu"].append(at - timedelta(seconds=30))  # still flowing at its lower rate
    volume_config = SLICE_FEED_CONFIG.replace('stale_after = "1h"\n', "volume_alerts = true\n")
    config = ingest_regions(capsys, tmp_path, times, volume_config)

    everything = sorted(t for stamps in times.values() for t in stamps)
    model_last = everything[-1]

    def hour_counts(stamps: list[datetime]) -> tuple[int, list[int]]:
        """Predictions in the hour up to the model's last one, and in that hour of the 7 days before."""
        counts = [
            sum(model_last - timedelta(days=k, hours=1) < t <= model_last - timedelta(days=k) for t in stamps)
            for k in range(8)
        ]
        return counts[0], counts[1:]

    status, out, _ = run(capsys, config, "--json", "--at", at.isoformat())
    document = json.loads(out)
    feed = document["models"][0]["feed"]
    assert [row["segment_value"] for row in feed] == [None, *sorted(times)]
    ratios = {}
    for row in feed:
        stamps = everything if row["segment"] is None else times[row["segment_value"]]
        recent, before = hour_counts(stamps)
        fewest, most = min(before), max(before)
        assert (row["recent_n"], row["fewest_n"], row["most_n"]) == (recent, fewest, most)
        behind = (model_last - max(stamps)).total_seconds()
        if recent < fewest and fewest >= 50:  # a drop, unless the slice is behind: stopped or late
            expected = recent / fewest if recent and behind <= max(60, 3 * 3600 / recent) else None
        else:  # a spike over the most, at least 50, of an hour with traffic on every earlier day
            expected = recent / max(most, 50) if recent > max(most, 50) and fewest > 0 else 1.0
        assert row["volume_ratio"] == pytest.approx(expected), row
        ratios[row["segment_value"]] = row["volume_ratio"]
    assert 0.25 < ratios["eu"] <= 0.5 and ratios["bots"] >= 4 and ratios["apac"] is None
    assert ratios["office"] == 1.0 and ratios["web"] < 2 and ratios[None] < 2
    firing = sorted(
        (a["rule"], a["scope"].get("segment_value"), a["severity"])
        for a in document["alerts"]
        if a["status"] == "firing"
    )
    assert firing == [("volume-drop", "eu", "warning"), ("volume-spike", "bots", "critical")]
    assert status == 2
    rows = {row["segment_value"]: row for row in feed}
    text = run(capsys, config, "--at", at.isoformat())[1]
    assert [line for line in text.splitlines() if line.startswith("  volume:")] == [
        f"  volume: region=bots, {rows['bots']['recent_n']} in the last hour, {ratios['bots']:.2f}× the most "
        f"({rows['bots']['most_n']}, taken as 50) in that hour on the 7 days before",
        f"  volume: region=eu, {rows['eu']['recent_n']} in the last hour, {ratios['eu']:.2f}× the fewest "
        f"({rows['eu']['fewest_n']}) in that hour on the 7 days before",
    ]

    # A day earlier nothing was unusual; with only the last window nothing is compared.
    quiet = check_json(capsys, config, "--at", (at - timedelta(days=1)).isoformat())
    assert not [a for a in quiet["alerts"] if a["status"] == "firing"]
    # Fewer than 7 earlier days (here 6): no judgement, as in the first week of a store's history
    # (and no rule judges anything else in this world: constant scores after an empty reference).
    for last in ("1", "7"):
        status, out, err = run(capsys, config, "--json", "--at", at.isoformat(), "--last", last)
        assert status == 3 and "nothing judged" in err
        feed = json.loads(out)["models"][0]["feed"]
        assert all(row["volume_ratio"] is None and row["fewest_n"] is None for row in feed)
    # A slice new today spikes over nothing: not judged (no traffic in that hour on every earlier day).
    with open(tmp_path / "predictions.jsonl", "a", encoding="utf-8") as handle:
        for i in range(300):
            stamp = at - timedelta(minutes=59) + timedelta(seconds=11 * i)
            handle.write(
                json.dumps({"id": f"new-{i}", "ts": stamp.isoformat(), "score": 0.5, "region": "new"}) + "\n"
            )
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    document = check_json(capsys, config, "--at", at.isoformat())
    new = next(row for row in document["models"][0]["feed"] if row["segment_value"] == "new")
    assert (new["recent_n"], new["fewest_n"], new["volume_ratio"]) == (300, 0, 1.0)


def test_the_json_document_is_written_row_by_row_and_reads_as_json_dumps_would() -> None:
    """`write_json` streams the document (rows converted as written); it parses to what
    `json.dumps` of the eager document gives, one row per line, and refuses NaN as it does."""
    import io

    from tests.test_alert_evaluate import drift_row, performance_row
    from triage.metrics.results import JsonRows, write_json

    rows = [drift_row(10, 0.3, "amount", ks_p=1e-9), drift_row(11, 0.02, "amount", ks_p=0.4)]
    performance = [performance_row(10, 0.6)]
    document = {
        "as_of": "2026-03-12T00:00:00Z",
        "models": [
            {"name": "fraud", "drift": JsonRows(rows), "performance": JsonRows(performance), "empty": []}
        ],
        "nothing": {},
    }
    out = io.StringIO()
    write_json(document, out)
    eager = {
        **document,
        "models": [
            {
                **document["models"][0],
                "drift": [r.to_json() for r in rows],
                "performance": [p.to_json() for p in performance],
            }
        ],
    }
    assert json.loads(out.getvalue()) == json.loads(json.dumps(eager))
    lines = out.getvalue().splitlines()
    assert sum(line.strip().startswith('{"window_start"') for line in lines) == 3  # a row a line
    with pytest.raises(ValueError):
        write_json({"x": [float("nan")]}, io.StringIO())


# A version that clears the screen, sets the title and prints a fake verdict; one of 10 000
# characters; a route with a newline and a carriage return.
SPOOF = "\x1b[2J\x1b[H\x1b]0;x\x07triage check — OK\x1b[8m"


def test_logged_values_reach_the_text_escaped_and_cut(
    store: tuple[Path, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Control characters of logged values are shown as escapes in the text summary, long values
    cut; `--json` keeps every value exact."""
    config, _ = store
    shutil.copytree(config.parent / "logs", tmp_path / "logs")
    log = tmp_path / "logs" / "predictions.jsonl"
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    for k, row in enumerate(rows[-300:]):
        row.update(version=SPOOF if k % 2 else "X" * 10_000, route="a\nb\rc")
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    copy = tmp_path / "triage.toml"
    copy.write_text(CONFIG, encoding="utf-8")
    assert main(["--config", str(copy), "ingest"]) == 0
    capsys.readouterr()
    _, out, _ = run(capsys, copy, "--at", "2026-01-08")
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", out)
    assert max(map(len, out.splitlines())) < 400  # not 10 000
    assert out.splitlines()[0].endswith(("WARNING", "CRITICAL"))
    assert "; versions \\x1b[2J\\x1b[H\\x1b]0;x\\x07triage check — OK\\x1b[8m, " + "X" * 59 + "…, v1" in out
    operations = out.split("\nOperations")[1].split("\n\n")[0]
    assert any(
        line.split()[0] == "\\x1b[2J\\x1b[H\\x1b]0;x\\x07triage" and line.split()[4] == "a\\nb\\rc"
        for line in operations.splitlines()
    )
    model = check_json(capsys, copy, "--at", "2026-01-08")["models"][0]
    assert {SPOOF, "X" * 10_000} <= {row["version"] for row in model["operations"]}
    assert "a\nb\rc" in {row["route"] for row in model["operations"]}


def _triage(config: Path, *args: str, stdout: Any, stderr: Any = subprocess.PIPE) -> tuple[int, str]:
    """`triage --config CONFIG ARGS…` in a process of its own; its status and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "triage", "--config", str(config), *args],
        stdout=stdout,
        stderr=stderr,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stderr or ""


FULL = "triage: cannot write output: [Errno 28] No space left on device\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (a disk that is always full) here")
def test_output_that_cannot_be_written_is_one_line_and_an_error_status(store: tuple[Path, Any]) -> None:
    """A full disk: one line on stderr and the command's error status (check's 3: its 1 and 2 say
    an alert is firing) — for a small output too, which fails only when flushed at the end."""
    config, _ = store
    with open("/dev/full", "w") as full:
        assert _triage(config, "check", "--at", "2026-01-07T18:00Z", "--json", stdout=full) == (3, FULL)
        assert _triage(config, "check", "--at", "2026-01-07T18:00Z", stdout=full) == (3, FULL)
        assert _triage(config, "alerts", "rules", stdout=full) == (2, FULL)
        # Its error has nowhere to go either: the status still says what happened.
        assert _triage(config, "check", "--model", "nosuch", stdout=full, stderr=full) == (3, "")
        # What argparse prints (help, version) too: the command's usage status, not 0.
        assert _triage(config, "check", "--help", stdout=full) == (3, FULL)
        assert _triage(config, "--help", stdout=full) == (2, FULL)
        assert _triage(config, "--version", stdout=full) == (2, FULL)


def test_a_closed_stdout_is_one_line_and_an_error_status(store: tuple[Path, Any]) -> None:
    config, _ = store
    closed = ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "triage", "--config", str(config)]
    done = subprocess.run([*closed, "check", "--json"], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stderr) == (3, "triage: cannot write output: standard output is closed\n")


def test_a_reader_that_leaves_ends_the_output_quietly(store: tuple[Path, Any]) -> None:
    """`triage check --json | head -1`: the pipe closes; no traceback, status 141 as SIGPIPE's."""
    config, _ = store
    process = subprocess.Popen(
        [sys.executable, "-m", "triage", "--config", str(config), "check", "--at", "2026-01-08", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(1) == b"{"
    process.stdout.close()  # before the document (far more than a pipe holds) is written
    assert process.wait(timeout=300) == 141
    assert process.stderr.read() == b""
