"""A regression model (`task = "regression"`): the score is the predicted value and the label the
true one. From logs written here, through `triage ingest` and `triage check --json`: MAE, RMSE and
MAPE per window × version × slice against scikit-learn on the raw rows, with labels as of T; no
calibration; the classifier's fields null; the quarantine of values that are not finite; the
config's refusals; and the default rule that fires when the error grows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error
from textual.widgets import DataTable

from tests.test_tui_app import settle, text_of
from triage.cli import main
from triage.commands.check_cmd import _pooled_error
from triage.config import load_config
from triage.metrics.intervals import Z95
from triage.tui.app import TriageApp
from triage.tui.clock import FixedClock
from triage.tui.source import EngineSource
from triage.tui.widgets.charts import TimeChart

TOL = 1e-9
START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 4

CONFIG = """
[store]
path = "store.duckdb"

[[model]]
name = "eta"
task = "regression"
predictions = "predictions.jsonl"
labels = "labels.jsonl"
window = "1d"
min_samples = 30

[model.columns]
id = "id"
timestamp = "ts"
score = "minutes"
version = "version"
label = "actual"
labeled_at = "arrived"

[model.features]
numeric = ["distance"]

[model.segments]
columns = ["city"]

[model.reference]
start = "2026-03-02"
end = "2026-03-03"
"""
CLASSIFIER_FIELDS = ("precision", "recall", "f1", "fpr", "fnr", "accuracy", "auroc", "average_precision")


@dataclass(frozen=True)
class World:
    config: Path
    ts: np.ndarray  # datetime64[us], naive UTC
    version: np.ndarray
    city: np.ndarray
    prediction: np.ndarray
    actual: np.ndarray
    arrived: np.ndarray  # datetime64[us]: when each row's label arrived


def _iso(value: np.datetime64) -> str:
    return str(value.astype("datetime64[us]")) + "Z"


def _write_world(
    folder: Path, config: str, seed: int, worse_from_day: int | None = None, bias: float = 0.0
) -> World:
    """Predictions of travel minutes over DAYS days; each row's true value arrives 1–30 hours
    later; some actual values are 0 (cancelled trips), from `worse_from_day` on version v2's
    errors quadruple, and every prediction is off by `bias` more."""
    rng = np.random.default_rng(seed)
    n = 2400
    start = np.datetime64(START.replace(tzinfo=None), "us")
    ts = np.sort(start + rng.integers(0, DAYS * 86_400_000_000, n).astype("timedelta64[us]"))
    version = rng.choice(np.array(["v1", "v2"]), n)
    city = rng.choice(np.array(["paris", "lyon", "nice"]), n, p=[0.6, 0.3, 0.1])
    distance = rng.gamma(2.0, 3.0, n)
    actual = np.round(4.0 + 3.0 * distance + rng.normal(0, 2.0, n), 1)
    actual[rng.random(n) < 0.02] = 0.0
    error = rng.normal(0, 2.5, n)
    if worse_from_day is not None:
        late = (ts >= start + np.timedelta64(worse_from_day, "D")) & (version == "v2")
        error[late] *= 4.0
    prediction = np.round(actual + error, 2) + bias
    prediction[::97] = prediction[::97].round()  # ties
    arrived = ts + (rng.uniform(1, 30, n) * 3_600_000_000).astype("timedelta64[us]")
    with open(folder / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for i in range(n):
            row = {
                "id": f"t{i}",
                "ts": _iso(ts[i]),
                "minutes": float(prediction[i]),
                "version": str(version[i]),
                "city": str(city[i]),
                "distance": float(distance[i]),
            }
            handle.write(json.dumps(row) + "\n")
    labelled = rng.random(n) < 0.9
    with open(folder / "labels.jsonl", "w", encoding="utf-8") as handle:
        for i in np.flatnonzero(labelled):
            handle.write(
                json.dumps({"id": f"t{i}", "actual": float(actual[i]), "arrived": _iso(arrived[i])}) + "\n"
            )
    arrived = np.where(labelled, arrived, np.datetime64("NaT"))
    path = folder / "triage.toml"
    path.write_text(config, encoding="utf-8")
    return World(path, ts, version, city, prediction, actual, arrived)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("regression")
    made = _write_world(folder, CONFIG, seed=5)
    assert main(["--config", str(made.config), "ingest"]) == 0
    return made


def check(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    status = main(["--config", str(config), "check", "--json", *args])
    out, err = capsys.readouterr()
    assert status in (0, 1, 2), err

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in the JSON document")

    return status, json.loads(out, parse_constant=no_constants)


def _mean_interval(values: np.ndarray) -> tuple[float, float]:
    """x̄ ± z·s/√n (s with ddof 1), floored at 0: computed on the raw per-row values."""
    half = Z95 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return max(0.0, float(values.mean()) - half), float(values.mean()) + half


def test_errors_match_sklearn_per_cell_with_the_labels_of_t(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    at = START + timedelta(days=2, hours=15)
    _, document = check(capsys, world.config, "--at", at.isoformat())
    (model,) = document["models"]
    assert model["task"] == "regression"
    cut = np.datetime64(at.replace(tzinfo=None), "us")
    compared = 0
    for row in model["performance"]:
        start = np.datetime64(row["window_start"][:-1], "us")
        mask = (world.ts >= start) & (world.ts < start + np.timedelta64(1, "D")) & (world.ts <= cut)
        if row["version"] is not None:
            mask &= world.version == row["version"]
        if row["segment"] is not None:
            mask &= world.city == row["segment_value"]
        known = mask & (world.arrived <= cut)
        assert (row["n"], row["n_labeled"]) == (mask.sum(), known.sum())
        for name in CLASSIFIER_FIELDS:
            assert (
                row[name] is None
                and row[f"{name}_ci_low" if name in ("precision", "auroc") else name] is None
            )
        if known.sum() < 30:
            assert row["mae"] is None and row["rmse"] is None and not row["enough_data"]
            continue
        y, p = world.actual[known], world.prediction[known]
        assert row["mae"] == pytest.approx(mean_absolute_error(y, p), abs=TOL)
        assert row["rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, p)), abs=TOL)
        assert row["mape"] == pytest.approx(mean_absolute_percentage_error(y, p), rel=1e-9)
        assert (row["mae_ci_low"], row["mae_ci_high"]) == pytest.approx(
            _mean_interval(np.abs(p - y)), abs=TOL
        )
        low, high = _mean_interval((p - y) ** 2)
        assert (row["rmse_ci_low"], row["rmse_ci_high"]) == pytest.approx(
            (math.sqrt(low), math.sqrt(high)), abs=TOL
        )
        ape = np.abs(p - y) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
        assert (row["mape_ci_low"], row["mape_ci_high"]) == pytest.approx(_mean_interval(ape), rel=1e-9)
        if (y == 0).any():
            zeros = int((y == 0).sum())
            assert f"for {'a label' if zeros == 1 else f'{zeros} labels'} of 0" in row["note"]
        compared += 1
    assert compared >= 20
    assert model["calibration"] == [] and model["reference"]["calibration"] == []
    reference = model["reference"]["performance"]
    assert reference and all(r["mae"] is not None for r in reference if r["enough_data"])


def test_a_score_outside_0_1_is_kept_and_a_value_that_is_not_finite_is_quarantined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _write_world(tmp_path, CONFIG, seed=6)
    with open(tmp_path / "predictions.jsonl", "a", encoding="utf-8") as handle:
        handle.write(
            json.dumps({"id": "big", "ts": "2026-03-03T10:00:00Z", "minutes": 1e6, "version": "v1"}) + "\n"
        )
        handle.write('{"id": "inf", "ts": "2026-03-03T10:00:00Z", "minutes": "Infinity", "version": "v1"}\n')
    with open(tmp_path / "labels.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "big", "actual": "-inf", "arrived": "2026-03-03T11:00:00Z"}\n')
        handle.write('{"id": "t1", "actual": -12.5, "arrived": "2026-03-03T11:00:00Z"}\n')
        for i, value in ((2, '"yes"'), (3, "true"), (4, "NaN")):  # a yes/no column mapped by mistake
            handle.write(f'{{"id": "t{i}", "actual": {value}, "arrived": "2026-03-03T11:00:00Z"}}\n')
    assert main(["--config", str(made.config), "ingest"]) == 0
    capsys.readouterr()
    assert main(["--config", str(made.config), "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    (model,) = info["models"]
    assert model["task"] == "regression"
    assert model["quarantined"] == {"score not finite": 1, "label not finite": 1, "bad type": 3}
    assert main(["--config", str(made.config), "quarantine"]) == 0
    listed = capsys.readouterr().out
    assert "actual: yes is not a number" in listed and "true/false" not in listed
    assert model["rows"] == len(made.ts) + 1  # 1e6 is a prediction like any other


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ("threshold = 0.3\n", "model[0].threshold", "does not apply to a regression model"),
        ("[model.costs]\nfalse_positive = 1.0\n", "model[0].costs", "does not apply to a regression model"),
        ('task = "multiclass"\n', "model[0].task", "expected one of 'binary', 'regression'"),
    ],
)
def test_the_config_refuses_what_a_regression_model_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str, expected: str
) -> None:
    text = CONFIG.replace('task = "regression"\n', "" if "task" in extra else 'task = "regression"\n')
    head, tail = text.split("[model.columns]")
    config = tmp_path / "triage.toml"
    config.write_text(head + extra + "[model.columns]" + tail if "costs" not in extra else text + extra)
    assert main(["--config", str(config), "check"]) == 3
    err = capsys.readouterr().err
    assert key in err and expected in err and "Traceback" not in err


def test_prediction_column_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG.replace('score = "minutes"\n', 'score = "minutes"\nprediction = "late"\n'))
    assert main(["--config", str(config), "check"]) == 3
    err = capsys.readouterr().err
    assert "model[0].columns.prediction" in err and "its score is the prediction" in err


def test_changing_the_task_asks_for_a_rebuild(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = world.config.parent
    binary = folder / "binary.toml"
    binary.write_text(CONFIG.replace('task = "regression"\n', ""), encoding="utf-8")
    assert main(["--config", str(binary), "ingest"]) == 2
    err = capsys.readouterr().err
    assert "task changed since the store was built" in err and "--rebuild" in err


def test_the_default_rule_fires_when_a_version_errs_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _write_world(tmp_path, CONFIG, seed=7, worse_from_day=2)
    assert main(["--config", str(made.config), "ingest"]) == 0
    capsys.readouterr()
    at = (START + timedelta(days=DAYS, hours=6)).isoformat()
    status = main(["--config", str(made.config), "check", "--at", at])
    out = capsys.readouterr().out
    assert status == 2, out
    assert "mae-rise" in out and "version=v2" in out
    assert "Calibration" not in out and "MAE" in out and "as scikit-learn does" in out
    # Each version's reference errors are those of the reference's labelled rows, pooled.
    cut = np.datetime64((START + timedelta(days=DAYS, hours=6)).replace(tzinfo=None), "us")
    for version in ("v1", "v2"):
        line = next(line for line in out.splitlines() if line.startswith(f"  {version} "))
        mine = (made.version == version) & (made.ts < np.datetime64("2026-03-03")) & (made.arrived <= cut)
        error = made.prediction[mine] - made.actual[mine]
        shown = [float(cell.strip("()")) for cell in line.split() if cell.startswith("(")]
        assert shown[:2] == [round(float(np.abs(error).mean()), 2), round(math.sqrt(np.mean(error**2)), 2)]
    (tmp_path / "quiet").mkdir()
    quiet = _write_world(tmp_path / "quiet", CONFIG, seed=7)
    assert main(["--config", str(quiet.config), "ingest"]) == 0
    capsys.readouterr()
    assert main(["--config", str(quiet.config), "check", "--at", at]) == 0, capsys.readouterr().out


async def test_the_tui_shows_errors_not_precision_and_no_calibration(world: World) -> None:
    """Performance lists MAE, RMSE and MAPE per slice and charts them; Calibration says there is
    nothing to calibrate; both on the real store, at 80x24."""
    source = EngineSource(load_config(world.config), record_alerts=False)
    at = START + timedelta(days=DAYS)
    app = TriageApp(lambda: source, FixedClock(at, lambda: at))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("4")
            await settle(pilot)
            table = app.screen.query_one("#slices", DataTable)
            assert [str(c.label) for c in table.columns.values()][4:] == ["MAE", "RMSE", "MAPE"]
            assert table.row_count == 4  # all and three cities
            overall = [str(cell) for cell in table.get_row("all")]
            assert overall[4] != "-" and "[" in overall[4]  # MAE with its interval
            assert "mae per window" in str(app.screen.query_one("#metric", TimeChart).border_title)
            await pilot.press("m")
            assert "rmse per window" in str(app.screen.query_one("#metric", TimeChart).border_title)
            await pilot.press("3")
            await settle(pilot)
            assert app.screen.query_one("#versions", DataTable).row_count == 0
            assert "regression" in text_of(app, "#context")
    finally:
        source.close()


@pytest.mark.parametrize(
    ("task", "signal", "expected"),
    [
        ("regression", "calibration.ece", "calibration.ece is a classifier's"),
        ("regression", "performance.precision_ci_low", "performance.precision_ci_low is a classifier's"),
        ("binary", "performance.mae", "performance.mae is a regression model's"),
    ],
)
def test_a_rule_on_a_signal_the_task_never_has_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str, signal: str, expected: str
) -> None:
    text = CONFIG if task == "regression" else CONFIG.replace('task = "regression"\n', "")
    rule = f'\n[[model.alert]]\nname = "r"\nsignal = "{signal}"\nwarn = 1.0\n'
    config = tmp_path / "triage.toml"
    config.write_text(text + rule, encoding="utf-8")
    assert main(["--config", str(config), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "model[0].alert[0].signal" in err and expected in err
    _write_world(tmp_path, text + rule.replace(signal, "performance.label_coverage"), seed=8)
    assert main(["--config", str(config), "config", "check"]) == 0, capsys.readouterr().err


def test_the_incident_report_compares_errors_before_and_during(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _write_world(tmp_path, CONFIG, seed=7, worse_from_day=2)
    assert main(["--config", str(made.config), "ingest"]) == 0
    markdown = tmp_path / "report.md"
    end = (START + timedelta(days=DAYS)).isoformat()
    assert main(["--config", str(made.config), "report", "--to", end, "--out", str(markdown)]) == 0
    text = markdown.read_text(encoding="utf-8")
    assert "| version | phase | windows | n | mae | rmse | mape | label_coverage |" in text
    assert "ece" not in text and "MAE (" in text
    assert "mae-rise" in text
    chart = text[text.index("MAE (") :]
    last = {line.split()[0]: float(line.split()[-1]) for line in chart.splitlines()[1:4]}
    assert last["v2"] > 2 * last["v1"]  # v2's errors quadrupled from day 2


def test_the_intervals_keep_their_spread_when_every_error_is_large(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors of 1e8 ± 2.5: a variance from Σx² − n·x̄² would cancel to noise; each interval's width
    is the one numpy gets from the raw errors."""
    made = _write_world(tmp_path, CONFIG, seed=9, bias=1e8)
    assert main(["--config", str(made.config), "ingest"]) == 0
    capsys.readouterr()
    _, document = check(capsys, made.config, "--at", (START + timedelta(days=DAYS + 2)).isoformat())
    (model,) = document["models"]
    rows = [r for r in model["performance"] if r["version"] is None and r["segment"] is None]
    for row in rows:
        start = np.datetime64(row["window_start"][:-1], "us")
        known = (world_ts := made.ts) >= start
        known &= (world_ts < start + np.timedelta64(1, "D")) & ~np.isnat(made.arrived)
        y, p = made.actual[known], made.prediction[known]
        error = np.abs(p - y)
        assert row["mae"] == pytest.approx(mean_absolute_error(y, p), rel=1e-12)
        for name, values in (("mae", error), ("rmse", error**2)):
            low, high = _mean_interval(values)
            width = high - low if name == "mae" else math.sqrt(high) - math.sqrt(low)
            assert row[f"{name}_ci_high"] - row[f"{name}_ci_low"] == pytest.approx(width, rel=1e-6)
    assert len(rows) == DAYS


def test_the_summary_pools_the_reference_errors_over_its_labelled_rows() -> None:
    """Two reference windows: 100 labelled rows with RMSE 1 and MAE 0.8 (of 1 000 rows), 300 with
    RMSE 3 and MAE 2.4 (of 400): the reference's RMSE is √((100·1² + 300·3²)/400) = √7 and its MAE
    (100·0.8 + 300·2.4)/400 = 2.0 — not means of the windows' values weighted by their rows."""
    windows = [
        SimpleNamespace(n=1000, n_labeled=100, rmse=1.0, mae=0.8),
        SimpleNamespace(n=400, n_labeled=300, rmse=3.0, mae=2.4),
        SimpleNamespace(n=50, n_labeled=0, rmse=None, mae=None),
    ]
    assert _pooled_error(windows, "rmse") == pytest.approx(math.sqrt(7))  # type: ignore[arg-type]
    assert _pooled_error(windows, "mae") == pytest.approx(2.0)  # type: ignore[arg-type]
    assert _pooled_error(windows[2:], "mae") is None  # type: ignore[arg-type]
