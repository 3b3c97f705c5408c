"""DESIGN §8: triage's full drift grid vs Evidently, NannyML and one bare DuckDB scan, same data, same run.

The data is `synthetic.py`'s table (N predictions vs an N-row reference, 20 numeric + 5 categorical
features, 30 days, segment `region`, versions v1/v2), loaded into a triage store. Measured:

- **triage**: `triage.metrics.drift.compute_drift(con, scope)` for every feature (and the score)
  × every cell (30 daily windows × {all, v1, v2} × {all traffic, each of 4 regions}) vs the
  reference, with every statistic of DESIGN §4. *Cold* starts from a copy of the freshly ingested
  store, so the reference profile and every cell are computed inside the timing, as the peers fit
  their reference inside theirs: the ratios use cold. Also shown: the profile alone, the grid
  alone with the profile already stored, and the same call *again* on the same store (no new
  rows: triage reuses its stored profile and per-window results).
- **bare scan**: one query over the same 25 columns of the predictions and reference tables
  (`sum` of each numeric, `sum(length(...))` of each categorical), through a fresh connection
  like triage's: the floor.
- **Evidently** `DataDriftPreset` and **NannyML** `UnivariateDriftCalculator`, each in its own
  venv, timed inside their subprocess (see `peer_runner.py`: start-up, imports and loading the
  Parquet files into pandas are excluded).

triage and the bare scan are repeated (`--repeats`, best kept; repeats stop once a measurement has
taken `measure.REPEAT_BUDGET_S`); the peers run once. The peers do less work than triage:
Evidently compares each feature once (whole table vs reference) and NannyML once per feature and
day, while triage computes every window × version × slice.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import duckdb

from tests.bench import peers, synthetic
from tests.bench.measure import Timing, best_of, load_average
from tests.bench.registry import Context, Outcome, benchmark
from tests.bench.report import Target, seconds, short, table, targets_table, verdict
from triage.config import load_config
from triage.metrics.frame import Scope
from triage.store.schema import predictions_table, quote, reference_table

# Set (to anything) to measure triage and the bare scan only, while iterating on triage: the peers
# take minutes and their numbers do not change. Their ratios are then reported as not measured.
SKIP_PEERS_ENV = "TRIAGE_BENCH_SKIP_PEERS"
EVIDENTLY_TARGET = 100.0  # Evidently / triage ≥ 100×
NANNYML_TARGET = 10.0  # NannyML / triage ≥ 10×
SCAN_TARGET = 3.0  # triage / bare scan ≤ 3×


def bare_scan_sql() -> str:
    """One statement reading the 25 feature columns of both tables once: the floor for triage.

    `sum(length(c))` rather than `max(c)` for the categoricals: DuckDB answers `max` of a string
    column from its block statistics without reading the values.
    """
    aggregates = ", ".join(
        [f"sum({quote(name)})" for name in synthetic.NUMERIC]
        + [f"sum(length({quote(name)}))" for name in synthetic.CATEGORICAL]
    )
    predictions = quote(predictions_table(synthetic.MODEL))
    reference = quote(reference_table(synthetic.MODEL))
    return (
        f"SELECT * FROM (SELECT count(*), {aggregates} FROM {predictions}) AS p, "
        f"(SELECT count(*), {aggregates} FROM {reference}) AS r"
    )


def _fresh_copy(store: Path, work: Path) -> None:
    """The store as ingest left it (no stored profile), for a cold triage run."""
    for suffix in ("", ".wal"):
        target = work.with_name(work.name + suffix)
        target.unlink(missing_ok=True)
        source = store.with_name(store.name + suffix)
        if source.exists():
            shutil.copyfile(source, target)


def _drift_engine() -> Callable[..., Sequence[Any]] | None:
    """triage's `compute_drift`, or None while `triage/metrics/drift.py` is not there yet."""
    try:
        module = importlib.import_module("triage.metrics.drift")
    except ModuleNotFoundError as exc:
        if exc.name in ("triage.metrics.drift", "triage.metrics.profile"):
            return None
        raise
    engine = getattr(module, "compute_drift", None)
    return engine if callable(engine) else None


@dataclass(frozen=True)
class TriageResult:
    """triage's timings; `cold` is the one compared with the peers and the bare scan."""

    cold: Timing  # reference profile + every cell, from the store as ingest left it
    profile: Timing | None  # `ensure_profile` alone, from the store as ingest left it
    grid: Timing | None  # every cell with the profile already stored (nothing cached yet)
    again: Timing  # the same call once more: no new rows, so stored profile and cached windows
    rows: Sequence[Any]  # DriftRow


def _scope(config_path: Path) -> Scope:
    model = load_config(config_path).model(synthetic.MODEL)
    # As of the end of the last day: every window of the 30 days, all slices.
    as_of = synthetic.PREDICTIONS_START + timedelta(days=synthetic.DAYS) - timedelta(microseconds=1)
    return Scope.of(model, as_of=as_of)


def _run_on(path: Path, engine: Callable[..., Sequence[Any]], scope: Scope) -> Sequence[Any]:
    con = synthetic.connect(path)
    try:
        return engine(con, scope)
    finally:
        con.close()


def measure_triage(
    engine: Callable[..., Sequence[Any]], store: synthetic.Store, work: Path, repeats: int
) -> TriageResult:
    """Cold runs, the profile alone, the grid alone, and a repeated call (see `TriageResult`).

    Every run but `again` starts from a fresh copy of the ingested store, made outside the timing,
    because triage keeps its reference profile and per-window results in the store.
    """
    scope = _scope(store.config)
    fresh = partial(_fresh_copy, store.path, work)
    cold, rows = best_of(repeats, lambda: _run_on(work, engine, scope), prepare=fresh)
    again, _ = best_of(repeats, lambda: _run_on(work, engine, scope))
    build = _profile_builder()
    if build is None:
        return TriageResult(cold, None, None, again, cast(Sequence[Any], rows))

    def fresh_with_profile() -> None:
        fresh()
        _run_on(work, build, scope)

    profile, _ = best_of(repeats, lambda: _run_on(work, build, scope), prepare=fresh)
    grid, _ = best_of(repeats, lambda: _run_on(work, engine, scope), prepare=fresh_with_profile)
    return TriageResult(cold, profile, grid, again, cast(Sequence[Any], rows))


def _profile_builder() -> Callable[[duckdb.DuckDBPyConnection, Scope], Any] | None:
    """`triage.metrics.profile.ensure_profile` for a scope, or None when it is not there."""
    try:
        from triage.metrics.profile import ensure_profile
    except ImportError:
        return None

    def build(con: duckdb.DuckDBPyConnection, scope: Scope) -> Any:
        return ensure_profile(con, scope.model, scope.segments, scope.as_of)

    return build


def measure_bare_scan(work: Path, repeats: int) -> Timing:
    """Best of `repeats` runs of `bare_scan_sql`, each through a new connection like triage's."""
    sql = bare_scan_sql()

    def scan() -> object:
        con = synthetic.connect(work)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    timing, _ = best_of(repeats, scan)
    return timing


def _grid_summary(rows: Sequence[Any]) -> dict[str, Any]:
    """What triage computed, and the strongest signals (the injected drifts should lead)."""
    cells = {(r.window_start, r.version, r.segment, r.segment_value) for r in rows}
    enough = [r for r in rows if r.enough_data and r.psi is not None]
    strongest = sorted(enough, key=lambda r: r.psi, reverse=True)[:5]
    return {
        "drift_rows": len(rows),
        "cells": len(cells),
        "features": len({r.feature for r in rows}),
        "rows_with_enough_data": sum(1 for r in rows if r.enough_data),
        "rows_psi_ge_0_1": sum(1 for r in enough if r.psi >= 0.1),
        "strongest_psi": [
            {
                "feature": r.feature,
                "window_start": r.window_start.date().isoformat(),
                "version": r.version,
                "slice": f"{r.segment}={r.segment_value}" if r.segment else "all",
                "psi": round(r.psi, 4),
            }
            for r in strongest
        ],
    }


def _machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


@benchmark(
    "drift-grid",
    "triage's full drift grid vs Evidently, NannyML and a bare DuckDB scan (DESIGN §8)",
    order=10,
)
def run(ctx: Context) -> Outcome:
    # The peers' installs are the slow, uncertain part: start them before anything else.
    chosen = [] if os.environ.get(SKIP_PEERS_ENV) else peers.PEERS
    installs = [peers.start_install(peer, ctx.venv_dir) for peer in chosen]
    data = synthetic.ensure(ctx.data_dir, ctx.rows, ctx.seed, ctx.log)
    store = synthetic.ensure_store(data, ctx.log)
    work = data.directory / "work.duckdb"
    _fresh_copy(store.path, work)

    errors: dict[str, str] = {}
    ready: list[peers.Install] = []
    install_s: dict[str, float] = {}
    for install in installs:
        if install.process is not None:
            ctx.log(f"waiting for the {install.peer.name} install (log: {install.log}) …")
        try:
            install_s[install.peer.name] = peers.finish_install(install)
            ready.append(install)
        except peers.PeerError as exc:
            errors[install.peer.name] = str(exc)

    # Nothing else of ours runs from here on; the load average tells whether something else did.
    loads: dict[str, float | None] = {"bare scan": load_average()}
    ctx.log(f"bare DuckDB scan × {ctx.repeats} …")
    bare = measure_bare_scan(work, ctx.repeats)

    engine = _drift_engine()
    triage: TriageResult | None = None
    if engine is None:
        errors["triage"] = "triage.metrics.drift.compute_drift is not there yet"
    else:
        ctx.log("triage drift grid: cold, again, profile alone, grid alone (minutes) …")
        loads["triage"] = load_average()
        try:
            triage = measure_triage(engine, store, work, ctx.repeats)
        except Exception as exc:  # report it with the peers' numbers rather than lose them
            errors["triage"] = short(f"{type(exc).__name__}: {exc}")

    peer_results: dict[str, dict[str, Any]] = {}
    for install in ready:
        ctx.log(f"{install.peer.name} (one run; minutes) …")
        loads[install.peer.name] = load_average()
        try:
            peer_results[install.peer.name] = peers.run(install, data.directory, ctx.results_dir / "peers")
        except peers.PeerError as exc:
            errors[install.peer.name] = str(exc)

    triage_s = triage.cold.best if triage else None
    evidently_s = peer_results.get("evidently", {}).get("compute_s")
    nannyml_s = peer_results.get("nannyml", {}).get("compute_s")
    targets = [
        Target("Evidently / triage", _ratio(evidently_s, triage_s), ">=", EVIDENTLY_TARGET),
        Target("NannyML / triage", _ratio(nannyml_s, triage_s), ">=", NANNYML_TARGET),
        Target("triage / bare scan", _ratio(triage_s, bare.best), "<=", SCAN_TARGET),
    ]
    summary = _grid_summary(triage.rows) if triage else None

    lines: list[list[object]] = []
    if triage:
        stats = "psi js ks chi2 wasserstein (+p-values)"
        cells = f"{summary['drift_rows']:,}" if summary else "?"
        lines.append(["triage, cold: profile + grid", seconds(triage.cold.best), cells, stats])
        if triage.profile and triage.grid:
            lines.append(["  reference profile alone", seconds(triage.profile.best), "", ""])
            lines.append(["  grid alone (profile stored)", seconds(triage.grid.best), cells, ""])
        lines.append(["triage, again (no new rows)", seconds(triage.again.best), cells, "cached windows"])
    else:
        lines.append(["triage", "–", "", errors.get("triage", "")])
    lines.append(["bare DuckDB scan", seconds(bare.best), "", "one aggregate query: 25 columns × 2 tables"])
    for peer in peers.PEERS:
        result = peer_results.get(peer.name)
        if result is None:
            why = errors.get(peer.name, "not run" if chosen else f"not run ({SKIP_PEERS_ENV} set)")
            lines.append([peer.name, "–", "", short(why, 120)])
            continue
        label = f"{peer.name} {result['versions'].get(peer.name, '?')}"
        cells = f"{result['feature_cells']:,}"
        lines.append([label, seconds(result["compute_s"]), cells, " ".join(result["statistics"])])
    header = (
        f"drift grid: {ctx.rows:,} predictions vs {ctx.rows:,} reference rows, "
        f"{len(synthetic.NUMERIC)} numeric + {len(synthetic.CATEGORICAL)} categorical features, "
        f"{synthetic.DAYS} daily windows × {{all, v1, v2}} × {{all, 4 regions}}"
    )
    notes = [
        f"store built with {store.method} in {store.build_s:.1f} s (not timed below)",
        f"triage and bare scan: best of up to {ctx.repeats} runs; peers: one run each, timed inside their "
        "subprocess, excluding interpreter start-up, imports and data loading",
        "feature-cells: one feature in one window/chunk/slice compared with the reference",
    ]
    measured_loads = [value for value in loads.values() if value is not None]
    if measured_loads:
        shown = ", ".join(f"{name} {value:.1f}" for name, value in loads.items() if value is not None)
        busy = max(measured_loads) > (os.cpu_count() or 1)
        notes.append(
            f"1-min load average as each measurement started ({os.cpu_count()} CPUs): {shown}"
            + ("; above the CPU count: other work shared the machine and the times are noisy" if busy else "")
        )
    if summary:
        top = ", ".join(
            f"{s['feature']} {s['window_start']} {s['version'] or 'all'} {s['slice']} {s['psi']}"
            for s in summary["strongest_psi"][:3]
        )
        notes.append(f"triage's strongest PSI cells: {top}")
    report = "\n".join(
        [
            header,
            "",
            table(("", "time (s)", "feature-cells", "statistics"), lines, right=(1, 2)),
            "",
            targets_table(targets),
            "",
            *(f"- {note}" for note in notes),
            *(f"! {name}: {short(message)}" for name, message in errors.items()),
        ]
    )
    data_json: dict[str, Any] = {
        "rows": ctx.rows,
        "reference_rows": ctx.rows,
        "numeric_features": len(synthetic.NUMERIC),
        "categorical_features": len(synthetic.CATEGORICAL),
        "machine": _machine(),
        "store": {"method": store.method, "build_s": store.build_s},
        "triage": None
        if triage is None
        else {
            "cold": triage.cold.to_json(),
            "profile": triage.profile.to_json() if triage.profile else None,
            "grid": triage.grid.to_json() if triage.grid else None,
            "again": triage.again.to_json(),
            "cells": summary,
        },
        "bare_scan": {"sql": bare_scan_sql(), **bare.to_json()},
        "peers": peer_results,
        "peer_install_s": install_s,
        "ratios": {t.name: t.measured for t in targets},
        "targets": [t.to_json() for t in targets],
        "errors": errors,
        "load_average_1min": loads,
        "timing_note": "triage and bare scan: wall time in this process, best of repeats; peers: inside "
        "their subprocess, excluding interpreter start-up, imports and data loading",
    }
    return Outcome(report=report, data=data_json, passed=verdict(targets))
