"""The log generator: determinism, the shape of its world, and incidents that move their signals.

Every property is computed here from the written files (DuckDB reads them, numpy/scipy measure),
never taken from the generator's own bookkeeping.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats

import triage.generate as gen
from triage.cli import main
from triage.config import OPTIONAL_ROLES, load_config
from triage.generate import (
    AppendResult,
    GenerateError,
    Manifest,
    append_traffic,
    generate,
    read_manifest,
)

ROWS, DAYS, SEED = 100_000, 30, 11
START = datetime(2026, 1, 1, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Fields of `triage check --json` (issue 3) that an incident may name.
CHECK_FIELDS = {
    "drift": {"psi", "js", "ks_d", "chi2", "wasserstein", "wasserstein_norm"},
    "data_quality": {"missing_rate", "unseen_share"},
    "calibration": {"ece", "ece_equal_mass", "mce", "brier", "log_loss", "decision_rate"},
    "performance": {"label_coverage", "precision", "recall", "f1", "auroc", "average_precision"},
    "operations": {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate", "fallback_rate"}
    | {"cost_per_1k", "tokens_per_request"},
}


@dataclass(frozen=True)
class Logs:
    """A generated folder read back: every prediction column, joined with its label if any."""

    out: Path
    manifest: Manifest
    columns: dict[str, np.ndarray]
    labeled: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def ms(self, when: datetime) -> int:
        return int(when.timestamp() * 1000)


def read_logs(out: Path) -> Logs:
    manifest = read_manifest(out)
    con = duckdb.connect()
    query = f"""
        SELECT p.* EXCLUDE (ts), epoch_ms(p.ts) AS t, l.is_fraud,
               epoch_ms(CAST(l.labeled_at AS TIMESTAMPTZ)) AS labeled_ms
        FROM {_reader(out, manifest.format)} p
        LEFT JOIN read_json('{out}/logs/labels/*.jsonl') l USING (request_id)
        ORDER BY t, request_id
    """
    raw = con.sql(query).fetchnumpy()
    labeled = ~np.ma.getmaskarray(raw["is_fraud"])
    columns = {name: _plain(values) for name, values in raw.items()}
    return Logs(out, manifest, columns, labeled)


def _reader(out: Path, fmt: str) -> str:
    if fmt == "parquet":
        return f"read_parquet('{out}/logs/predictions/*.parquet')"
    if fmt == "csv":
        return f"read_csv('{out}/logs/predictions/*.csv')"
    return f"read_json('{out}/logs/predictions/*.jsonl')"


def _plain(values: np.ndarray) -> np.ndarray:
    """A nullable column as a plain array: numbers as floats with NaN for NULL, others as they are."""
    if values.dtype.kind in "iuf" and np.ma.is_masked(values):
        return np.ma.asarray(values).astype(np.float64).filled(np.nan)
    assert not np.ma.is_masked(values) or values.dtype.kind == "O"
    return np.ma.getdata(values)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Logs]:
    root = tmp_path_factory.mktemp("worlds")
    generate(root / "incidents", ROWS, DAYS, SEED)
    generate(root / "quiet", ROWS, DAYS, SEED, quiet=True)
    return {"incidents": read_logs(root / "incidents"), "quiet": read_logs(root / "quiet")}


@pytest.fixture(scope="module")
def logs(worlds: dict[str, Logs]) -> Logs:
    return worlds["incidents"]


@pytest.fixture(scope="module")
def quiet(worlds: dict[str, Logs]) -> Logs:
    return worlds["quiet"]


def _digests(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


# --- determinism, files and config -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_byte_identical_files(tmp_path: Path, fmt: str) -> None:
    generate(tmp_path / "a", 4000, 3, 5, fmt=fmt)
    generate(tmp_path / "b", 4000, 3, 5, fmt=fmt)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a == b
    assert len(a) > 3 + 3 + 2  # three prediction files, label files, config, manifest


def test_another_seed_gives_another_world(tmp_path: Path, logs: Logs) -> None:
    generate(tmp_path, 4000, 3, SEED + 1)
    first = "logs/predictions/2026-01-01.parquet"
    assert _digests(tmp_path)[first] != _digests(logs.out)[first]


def test_quiet_world_is_the_same_world_until_the_first_incident(logs: Logs, quiet: Logs) -> None:
    first_onset = min(incident.onset for incident in logs.manifest.incidents)
    a, b = _digests(logs.out), _digests(quiet.out)
    files = [f.path for f in logs.manifest.prediction_files]
    before = [path for path in files if path < f"logs/predictions/{first_onset:%Y-%m-%d}"]
    assert len(before) >= 10
    assert all(a[path] == b[path] for path in before)
    assert a[files[-1]] != b[files[-1]]


def test_rows_files_and_ids(logs: Logs) -> None:
    manifest = logs.manifest
    assert logs["request_id"].size == ROWS == manifest.rows
    assert len(set(logs["request_id"].tolist())) == ROWS
    assert len(manifest.prediction_files) == DAYS
    con = duckdb.connect()
    for file in manifest.prediction_files:
        path = logs.out / file.path
        assert con.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0] == (file.rows,)
    label_rows = con.sql(f"SELECT count(*) FROM read_json('{logs.out}/logs/labels/*.jsonl')").fetchall()[0]
    assert label_rows == (manifest.label_rows,) == (int(logs.labeled.sum()),)
    label_files = sorted(p.name for p in (logs.out / "logs" / "labels").iterdir())
    assert label_files == sorted(Path(f.path).name for f in manifest.label_files)
    # A label file holds the labels that arrived in its ISO week (UTC), in order of arrival.
    as_text = "columns = {request_id: 'VARCHAR', is_fraud: 'INTEGER', labeled_at: 'VARCHAR'}"
    for file in manifest.label_files:
        query = f"SELECT labeled_at FROM read_json('{logs.out / file.path}', {as_text})"
        arrived = [row[0] for row in con.sql(query).fetchall()]
        assert arrived == sorted(arrived) and all(text.endswith("Z") for text in arrived)
        weeks = {datetime.fromisoformat(text).isocalendar()[:2] for text in arrived}
        assert {f"{year}-W{week:02d}" for year, week in weeks} == {Path(file.path).stem}


def test_config_loads_and_points_at_the_logs(logs: Logs) -> None:
    manifest = logs.manifest
    config = load_config(logs.out / "triage.toml")
    (model,) = config.models
    assert config.store_path == logs.out / "triage.duckdb"
    assert model.name == "fraud" and model.threshold == 0.5 and model.window.text == "1d"
    assert model.columns.id == "request_id" and model.columns.timestamp == "ts"
    assert model.columns.version == "model_version" and model.columns.prediction == "decision"
    assert (model.columns.label, model.columns.labeled_at) == ("is_fraud", "labeled_at")
    assert (model.columns.cost, model.columns.tokens, model.columns.route) == ("cost_usd", "tokens", "route")
    assert len(model.numeric) + len(model.categorical) == 13
    assert model.categorical == ("payment_type", "merchant_category")
    assert model.segments == ("country", "device", "cohort", "amount_band")
    assert (model.costs.false_positive, model.costs.false_negative) == (5.0, 120.0)
    assert model.reference.kind == "range"
    assert model.reference.start == START == manifest.reference_start
    assert model.reference.end == START + timedelta(days=8) == manifest.reference_end
    assert len(glob.glob(config.resolve(model.predictions))) == DAYS
    assert model.labels is not None
    assert len(glob.glob(config.resolve(model.labels))) == len(manifest.label_files)
    mapped = model.columns.mapped((*OPTIONAL_ROLES, "id", "timestamp", "score")).values()
    expected = {*model.numeric, *model.categorical, *model.segments, *mapped}
    assert expected == set(logs.columns) - {"t", "labeled_ms", "is_fraud"} | {"ts"}


def test_window_and_reference_follow_the_span() -> None:
    assert [gen.choose_window(d) for d in (1, 2, 5, 7, 14, 120, 365)] == [
        "1h",
        "1h",
        "6h",
        "6h",
        "1d",
        "1d",
        "1w",
    ]
    start, end = gen.reference_span(START, 7)
    assert (end - start) == timedelta(hours=42)  # a quarter of 7 days, in whole 6h windows
    start, end = gen.reference_span(START, 14)
    assert (end - start) == timedelta(days=4)


def test_manifest_round_trips_and_names_check_signals(logs: Logs) -> None:
    manifest = logs.manifest
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert [i.kind for i in manifest.incidents] == [
        "feature_drift",
        "new_category",
        "concept_drift",
        "score_compression",
        "latency_cost_spike",
    ]
    onsets = [incident.onset for incident in manifest.incidents]
    assert onsets == sorted(onsets)
    assert onsets[0] > manifest.rollout.switch_at > manifest.reference_end
    assert all(b - a >= timedelta(days=2) for a, b in itertools.pairwise(onsets))
    for incident in manifest.incidents:
        assert incident.scope.model == "fraud"
        assert incident.end is None or manifest.reference_end < incident.end <= manifest.end
        for signal in (
            (incident.signal, incident.direction),
            *((s.signal, s.direction) for s in incident.also),
        ):
            table, name = signal[0].split(".")
            assert name in CHECK_FIELDS[table], signal
            assert signal[1] in ("up", "down")
    assert manifest.incident("amount-drift-br").scope.segment_value == "BR"
    with pytest.raises(KeyError):
        manifest.incident("nope")


# --- the world ---------------------------------------------------------------------------------


def test_timestamps_and_label_times(logs: Logs) -> None:
    t = logs["t"]
    assert t.min() >= logs.ms(START) and t.max() < logs.ms(START + timedelta(days=DAYS))
    assert np.all(logs["labeled_ms"][logs.labeled] >= t[logs.labeled])


def test_label_coverage_and_heavy_tailed_lag(logs: Logs) -> None:
    assert 0.6 <= logs.labeled.mean() <= 0.8
    lag_s = (logs["labeled_ms"] - logs["t"])[logs.labeled] / 1000.0
    p50, p95 = np.percentile(lag_s, [50, 95])
    assert p95 > 5 * p50
    assert lag_s.min() < 3600 and lag_s.max() > 30 * 86400
    # Flagged requests are reviewed within hours; the rest wait for chargebacks.
    flagged = logs["decision"][logs.labeled]
    assert np.median(lag_s[flagged]) < 6 * 3600 < np.median(lag_s[~flagged])


def test_scores_are_calibrated_and_informative_before_incidents(logs: Logs) -> None:
    before = (logs["t"] < logs.ms(logs.manifest.incidents[0].onset)) & logs.labeled
    y, score = logs["is_fraud"][before], logs["score"][before]
    assert 0.05 < y.mean() < 0.13
    assert abs(score.mean() - y.mean()) < 0.015
    assert (
        stats.mannwhitneyu(score[y == 1], score[y == 0]).statistic / ((y == 1).sum() * (y == 0).sum()) > 0.85
    )
    assert np.array_equal(logs["decision"], logs["score"] >= 0.5)


def test_canary_share_before_and_after_the_switch(logs: Logs) -> None:
    switch = logs.ms(logs.manifest.rollout.switch_at)
    is_v2 = logs["model_version"] == "v2"
    assert set(np.unique(logs["model_version"]).tolist()) == {"v1", "v2"}
    assert 0.04 < is_v2[logs["t"] < switch].mean() < 0.06
    assert 0.48 < is_v2[logs["t"] >= switch].mean() < 0.52


def test_diurnal_and_weekly_seasonality(quiet: Logs) -> None:
    t = quiet["t"]
    by_hour = np.bincount((t // 3_600_000) % 24, minlength=24)
    assert by_hour.max() > 2.5 * by_hour.min()
    assert 4 <= int(np.argmin(by_hour)) <= 8  # quietest before dawn (UTC), busiest in the evening
    assert by_hour[15:23].mean() > 2.5 * by_hour[4:9].mean()
    by_weekday = np.bincount((t // 86_400_000 + 3) % 7, minlength=7)  # 0 = Monday
    assert by_weekday[4] > 1.1 * by_weekday[6]  # Friday over Sunday


def test_feature_shapes_and_segments(quiet: Logs) -> None:
    amount = quiet["amount"]
    assert stats.skew(amount) > 3 and abs(stats.skew(np.log(amount))) < 0.3  # lognormal
    country = quiet["country"]
    shares = {c: (country == c).mean() for c in gen.COUNTRIES}
    assert len(shares) == 8 and shares["US"] > 2 * shares["JP"] > 0.1
    assert set(np.unique(quiet["device"]).tolist()) == {"android", "ios", "web"}
    new = quiet["cohort"] == "new"
    assert np.array_equal(new, quiet["account_age_days"] < 30) and 0.1 < new.mean() < 0.2
    assert set(np.unique(quiet["amount_band"]).tolist()) == set(gen.AMOUNT_BANDS)
    assert quiet["txn_count_7d"].min() >= 0 and np.all(quiet["txn_count_7d"] >= quiet["txn_count_24h"])
    assert np.isnan(quiet["avg_amount_30d"]).mean() > 0.01  # accounts without history
    assert set(np.unique(quiet["payment_type"]).tolist()) == {"card", "wallet", "bank_transfer", "bnpl"}


def test_operations_columns(quiet: Logs) -> None:
    route = quiet["route"]
    llm = route == "llm_review"
    assert 0.1 < llm.mean() < 0.2
    assert np.all(np.isnan(quiet["cost_usd"][~llm])) and np.all(quiet["cost_usd"][llm] > 0)
    tokens = quiet["tokens"]
    assert np.all(np.isnan(tokens[~llm])) and np.all(tokens[llm] > 200)
    latency = quiet["latency_ms"]
    is_v2 = quiet["model_version"] == "v2"
    standard = route == "standard"
    assert np.median(latency[standard & is_v2]) > 1.1 * np.median(latency[standard & ~is_v2])
    assert np.median(latency[llm]) > 10 * np.median(latency[standard])
    assert 0.001 < quiet["error"].mean() < 0.01 and np.all(quiet["fallback"][quiet["error"]])


# --- incidents move their signals; the quiet world does not ------------------------------------


def _between(logs: Logs, start: datetime, end: datetime | None = None) -> np.ndarray:
    t = logs["t"]
    mask = t >= logs.ms(start)
    return mask if end is None else mask & (t < logs.ms(end))


def test_amount_drifts_in_br_only(logs: Logs, quiet: Logs) -> None:
    onset = logs.manifest.incident("amount-drift-br").onset
    for world, expect_br in ((logs, True), (quiet, False)):
        reference = world["t"] < world.ms(world.manifest.reference_end)
        after = _between(world, onset)
        for country in gen.COUNTRIES:
            in_country = world["country"] == country
            ks = stats.ks_2samp(world["amount"][reference & in_country], world["amount"][after & in_country])
            if country == "BR" and expect_br:
                assert ks.statistic > 0.15 and ks.pvalue < 1e-12
                shift = np.log(world["amount"][after & in_country]).mean()
                shift -= np.log(world["amount"][reference & in_country]).mean()
                assert 0.45 < shift < 0.75
            else:
                assert ks.statistic < 0.05, (country, ks)


def test_new_payment_type_with_a_null_rate_jump(logs: Logs, quiet: Logs) -> None:
    onset = logs.manifest.incident("new-payment-type").onset
    before, after = ~_between(logs, onset), _between(logs, onset)
    crypto = logs["payment_type"] == "crypto"
    assert not crypto[before].any() and 0.05 < crypto[after].mean() < 0.09
    missing = np.isnan(logs["distance_from_home_km"])
    assert missing[before].mean() < 0.025 and missing[after].mean() > missing[before].mean() + 0.04
    assert missing[after & crypto].all()
    q_missing = np.isnan(quiet["distance_from_home_km"])
    assert not (quiet["payment_type"] == "crypto").any()
    assert abs(q_missing[after].mean() - q_missing[before].mean()) < 0.01


def test_v2_decision_rate_falls_after_compression(logs: Logs, quiet: Logs) -> None:
    onset = logs.manifest.incident("v2-score-compression").onset
    switch = logs.manifest.rollout.switch_at
    for world, compressed in ((logs, True), (quiet, False)):
        before, after = _between(world, switch, onset), _between(world, onset)
        for version in ("v1", "v2"):
            served = world["model_version"] == version
            rate_before = world["decision"][before & served].mean()
            rate_after = world["decision"][after & served].mean()
            if version == "v2" and compressed:
                assert rate_after < 0.35 * rate_before
                ks = stats.ks_2samp(world["score"][before & served], world["score"][after & served])
                assert ks.statistic > 0.07 and ks.pvalue < 1e-12
            else:
                assert 0.7 < rate_after / rate_before < 1.4, (version, rate_before, rate_after)


def test_llm_route_latency_and_cost_spike(logs: Logs, quiet: Logs) -> None:
    incident = logs.manifest.incident("llm-latency-cost-spike")
    assert incident.end is not None
    for world, spiking in ((logs, True), (quiet, False)):
        llm = world["route"] == "llm_review"
        before = _between(world, incident.onset - timedelta(days=3), incident.onset) & llm
        during = _between(world, incident.onset, incident.end) & llm
        p95_before, p95_during = (np.percentile(world["latency_ms"][m], 95) for m in (before, during))
        cost_before, cost_during = (
            np.nansum(world["cost_usd"][m]) / m.sum() * 1000 for m in (before, during)
        )
        fallback_before, fallback_during = world["fallback"][before].mean(), world["fallback"][during].mean()
        if spiking:
            assert p95_during > 1.4 * p95_before and cost_during > 2.5 * cost_before
            assert fallback_during > fallback_before + 0.1
        else:
            assert 0.85 < p95_during / p95_before < 1.15 and 0.9 < cost_during / cost_before < 1.1
        standard = world["route"] == "standard"
        window = _between(world, incident.onset, incident.end)
        earlier = _between(world, incident.onset - timedelta(days=3), incident.onset)
        ratio = np.percentile(world["latency_ms"][window & standard], 95)
        ratio /= np.percentile(world["latency_ms"][earlier & standard], 95)
        assert 0.9 < ratio < 1.1
    after = _between(logs, incident.end) & (logs["route"] == "llm_review")
    assert after.sum() > 200 and np.percentile(logs["latency_ms"][after], 95) < 2500


def test_concept_drift_lowers_precision_while_inputs_stay(logs: Logs, quiet: Logs) -> None:
    manifest = logs.manifest
    onset = manifest.incident("concept-drift").onset
    previous = manifest.incident("new-payment-type").onset
    following = manifest.incident("v2-score-compression").onset
    for world, drifting in ((logs, True), (quiet, False)):
        before, after = _between(world, previous, onset), _between(world, onset, following)
        flagged = world["decision"] & world.labeled
        y = world["is_fraud"]
        precision_before, precision_after = y[before & flagged].mean(), y[after & flagged].mean()
        if drifting:
            assert precision_after < precision_before - 0.2
        else:
            assert abs(precision_after - precision_before) < 0.08
        v1 = world["model_version"] == "v1"
        assert stats.ks_2samp(world["score"][before & v1], world["score"][after & v1]).statistic < 0.05
        assert stats.ks_2samp(world["ip_risk_score"][before], world["ip_risk_score"][after]).statistic < 0.05


# --- appending live traffic, the CLI, the fixture ----------------------------------------------


def test_append_traffic_honours_the_split(tmp_path: Path) -> None:
    manifest = generate(tmp_path, 5000, 7, 2, fmt="jsonl")
    end = manifest.end
    shifted = append_traffic(tmp_path, end, end + timedelta(hours=6), seed=1, canary_percent=0)
    half = append_traffic(
        tmp_path, end + timedelta(hours=6), end + timedelta(hours=8), seed=1, canary_percent=50, rows=4000
    )
    assert isinstance(shifted, AppendResult) and shifted.canary_rows == 0
    assert half.rows == 4000 and 0.45 < half.canary_rows / 4000 < 0.55
    config = load_config(tmp_path / "triage.toml")
    model = config.models[0]
    assert str(half.predictions) in glob.glob(config.resolve(model.predictions))
    assert model.labels is not None and str(half.labels) in glob.glob(config.resolve(model.labels))
    logs = read_logs(tmp_path)
    assert logs["request_id"].size == 5000 + shifted.rows + 4000
    assert len(set(logs["request_id"].tolist())) == logs["request_id"].size
    appended = logs["t"] >= logs.ms(end)
    # Without `rows`, traffic keeps the world's rate: as many requests as in the same hours a week before.
    week_before = _between(logs, end - timedelta(days=7), end - timedelta(days=7, hours=-6)).sum()
    assert abs(shifted.rows - week_before) < 5 * np.sqrt(week_before) + 5
    assert logs["t"].max() < logs.ms(end + timedelta(hours=8))
    assert int(logs.labeled[appended].sum()) == shifted.label_rows + half.label_rows
    # Incidents still running at `end` (all but the bounded spike) continue in appended traffic.
    assert (logs["payment_type"][appended] == "crypto").any()
    with pytest.raises(GenerateError, match="already appended"):
        append_traffic(tmp_path, end, end + timedelta(hours=6), seed=1, canary_percent=0)
    with pytest.raises(GenerateError, match="canary_percent"):
        append_traffic(tmp_path, end, end + timedelta(hours=1), seed=1, canary_percent=120)


def test_append_traffic_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate(tmp_path / name, 2000, 3, 4)
        append_traffic(
            tmp_path / name, START + timedelta(days=3), START + timedelta(days=3, hours=1), 9, 25.0
        )
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")


def test_large_days_are_split_into_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "MAX_ROWS_PER_FILE", 1000)
    manifest = generate(tmp_path, 5000, 2, 8)
    names = [Path(f.path).name for f in manifest.prediction_files]
    assert len(names) >= 6 and "2026-01-01-part01.parquet" in names
    assert sum(f.rows for f in manifest.prediction_files) == 5000
    assert len(set(read_logs(tmp_path)["request_id"].tolist())) == 5000


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["generate", "--out", str(out), "--rows", "3000", "--days", "5", "--seed", "3", "--format", "csv"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3000 predictions" in printed and "v2-score-compression" in printed
    assert (
        read_manifest(out).format == "csv" and load_config(out / "triage.toml").models[0].window.text == "6h"
    )
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force", "--quiet", "--start", "2026-03-01"]) == 0
    manifest = read_manifest(out)
    assert manifest.quiet and manifest.incidents == () and manifest.start == datetime(2026, 3, 1, tzinfo=UTC)
    assert len(list((out / "logs" / "predictions").iterdir())) == 5
    assert main(["generate", "--out", str(tmp_path / "x"), "--start", "soon"]) == 2
    assert main(["generate", "--out", str(tmp_path / "x"), "--rows", "0"]) == 2


def test_existing_logs_are_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "logs" / "predictions").mkdir(parents=True)
    (tmp_path / "logs" / "predictions" / "theirs.parquet").write_bytes(b"x")
    with pytest.raises(GenerateError, match="empty folder"):
        generate(tmp_path, 100, 1, 1)
    assert (tmp_path / "logs" / "predictions" / "theirs.parquet").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["demo-small", "demo-small-quiet"])
def test_committed_fixture_matches_its_manifest(name: str) -> None:
    folder = FIXTURES / name
    manifest = read_manifest(folder)
    assert manifest.quiet == name.endswith("quiet") and (manifest.incidents == ()) == manifest.quiet
    model = load_config(folder / "triage.toml").models[0]
    assert model.reference.end == manifest.reference_end
    con = duckdb.connect()
    for file in (*manifest.prediction_files, *manifest.label_files):
        path = folder / file.path
        reader = "read_json" if path.suffix == ".jsonl" else f"read_{manifest.format}"
        assert con.sql(f"SELECT count(*) FROM {reader}('{path}')").fetchall()[0] == (file.rows,)
    assert sum(f.rows for f in manifest.prediction_files) == manifest.rows
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 4_000_000
