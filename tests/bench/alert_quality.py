"""Alert quality: are the generator's incidents caught, how late, and how quiet is the quiet world?

For 100 k and 1 M predictions over 30 days, the generator writes an incident world and the same
world with `quiet=True`. Each is ingested, then replayed with `triage replay --headless` (the
same code): as of each window end from the end of the reference period on, the engine evaluates
the model and the effective (default) alert rules are applied to an in-memory alert state with
the same `transition` the store uses — what `triage check` from cron would have recorded.

- Detection: an incident is detected when an alert on its signal (table.field) whose scope
  contains the manifest's scope starts firing; the delay is from the onset. Target for input,
  output and operations signals: by the end of the first full window after the onset window;
  for label-based signals: detected at all (labels arrive when they arrive).
- False alerts (quiet world): alerts that start firing, per 1 000 evaluated cells; a cell is a
  (rule, scope, window) judged on enough data at some replay step. Target: ≤ 1.

Both sizes are reported in one table. On a busy machine `ALERT_QUALITY_SIZES=100000` runs one size.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.bench.registry import Context, Outcome, benchmark
from triage.alerts.rules import is_labelled
from triage.config import AlertRule, load_config, parse_window
from triage.engine import Engine
from triage.generate import Incident, Manifest, generate, read_manifest
from triage.replay import CURRENT, run_replay
from triage.store import Store

SIZES = (100_000, 1_000_000)
DAYS = 30
TARGET_FALSE_PER_1K = 1.0
SCOPE_KEYS = ("version", "segment", "segment_value", "feature", "route")


@dataclass(frozen=True)
class Firing:
    """An alert that started firing during the replay."""

    at: datetime
    rule: str
    signal: str
    scope: dict[str, str]


@dataclass(frozen=True)
class Replay:
    """What one replayed world produced."""

    firings: list[Firing]
    cells: int
    steps: int
    seconds: float


def _world(ctx: Context, rows: int, quiet: bool) -> tuple[Path, Manifest]:
    """Generate (or reuse) and ingest one world; returns its config path and manifest."""
    folder = ctx.data_dir / f"alert-quality-{rows}-d{DAYS}-s{ctx.seed}{'-quiet' if quiet else ''}"
    try:
        manifest = read_manifest(folder)
    except ValueError:
        ctx.log(f"generating {folder.name}")
        manifest = generate(folder, rows, DAYS, ctx.seed, quiet=quiet, overwrite=True)
    config = load_config(folder / "triage.toml")
    with Store.open(config.store_path) as store:
        store.ingest(config)
    return folder / "triage.toml", manifest


def replay(config_path: Path, manifest: Manifest) -> Replay:
    """`triage replay --headless` from the end of the reference to the end of the world, one window
    per step: the firings and the evaluated cells of the configured rules."""
    config = load_config(config_path)
    started = time.perf_counter()
    with Engine(config) as engine:
        timeline = run_replay(
            config,
            engine,
            models=[manifest.model],
            start=manifest.reference_end,
            end=manifest.end,
            step=_step(manifest.window),
        )
    track = timeline.tracks[CURRENT]
    firings = [
        Firing(event.at, event.rule, alert.signal, dict(alert.scope))
        for event in track.events
        if event.event == "firing" and (alert := track.alerts[event.fingerprint])
    ]
    return Replay(firings, len(track.judged), timeline.steps, time.perf_counter() - started)


def _step(window: str) -> timedelta:
    parsed = parse_window(window)
    units = {"h": "hours", "d": "days", "w": "weeks"}
    return timedelta(**{units[parsed.unit]: parsed.count})


def _matches(incident: Incident, firing: Firing) -> bool:
    if firing.signal != incident.signal:
        return False
    wanted = {key: getattr(incident.scope, key) for key in SCOPE_KEYS}
    return all(firing.scope.get(key) == value for key, value in wanted.items() if value is not None)


def _labelled(incident: Incident) -> bool:
    return is_labelled(AlertRule(name="probe", signal=incident.signal, warn=0.0))


def detections(manifest: Manifest, found: Replay) -> list[dict[str, Any]]:
    """Per incident: the first matching firing, its delay, and whether it met the target."""
    step = _step(manifest.window)
    result = []
    for incident in manifest.incidents:
        hits = [f for f in found.firings if f.at >= incident.onset and _matches(incident, f)]
        first = min(hits, key=lambda f: f.at) if hits else None
        onset_window_end = manifest.start + step * (((incident.onset - manifest.start) // step) + 1)
        deadline = None if _labelled(incident) else onset_window_end + step
        delay_h = None if first is None else (first.at - incident.onset).total_seconds() / 3600
        met = first is not None and (deadline is None or first.at <= deadline)
        result.append(
            {
                "incident": incident.id,
                "signal": incident.signal,
                "scope": {k: v for k in SCOPE_KEYS if (v := getattr(incident.scope, k)) is not None},
                "onset": incident.onset.isoformat(),
                "detected_at": None if first is None else first.at.isoformat(),
                "rule": None if first is None else first.rule,
                "alert_scope": None if first is None else first.scope,
                "delay_hours": delay_h,
                "deadline": None if deadline is None else deadline.isoformat(),
                "target_met": met,
            }
        )
    return result


def _scope_text(scope: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in scope.items()) or "all"


def _target_text(item: dict[str, Any]) -> str:
    if item["deadline"] is None:
        return "when labels allow"
    hours = (datetime.fromisoformat(item["deadline"]) - datetime.fromisoformat(item["onset"])).total_seconds()
    return f"≤ {hours / 3600:.0f} h"


def _delay_text(item: dict[str, Any] | None) -> str:
    if item is None:
        return "not run"
    if item["delay_hours"] is None:
        return "MISSED"
    return f"{item['delay_hours']:.0f} h" + ("" if item["target_met"] else " LATE")


def sizes() -> tuple[int, ...]:
    """The sizes to run: `ALERT_QUALITY_SIZES=100000` (comma-separated) narrows the default both."""
    text = os.environ.get("ALERT_QUALITY_SIZES", "").strip()
    return tuple(int(part) for part in text.split(",") if part.strip()) if text else SIZES


def table(results: dict[int, dict[str, Any]]) -> list[str]:
    """One table for every size: per incident its target and delay, then the quiet world's rate."""
    columns = sorted(results)
    incidents: dict[str, dict[str, Any]] = {}
    for rows in columns:
        for item in results[rows]["incidents"]:
            incidents.setdefault(item["incident"], item)
    by_size = {rows: {item["incident"]: item for item in results[rows]["incidents"]} for rows in columns}
    scope_width = max([len("scope"), *(len(_scope_text(i["scope"])) for i in incidents.values())]) + 2
    signal_width = max([len("signal"), *(len(i["signal"]) for i in incidents.values())]) + 2
    name_width = max([len("incident"), *(len(name) for name in incidents)]) + 2
    head = f"{'incident':<{name_width}}{'signal':<{signal_width}}{'scope':<{scope_width}}{'target':<19}"
    lines = [
        f"{DAYS} days of generated traffic, evaluated as of each window end after the reference; "
        "delay = first firing alert on the incident's signal and scope − onset",
        head + "".join(f"{f'{rows:,} rows':>16}" for rows in columns),
    ]
    for name, item in incidents.items():
        cells = "".join(f"{_delay_text(by_size[rows].get(name)):>16}" for rows in columns)
        lines.append(
            f"{name:<{name_width}}{item['signal']:<{signal_width}}{_scope_text(item['scope']):<{scope_width}}"
            f"{_target_text(item):<19}{cells}"
        )
    label = f"quiet world: false alerts per 1 000 evaluated cells (target ≤ {TARGET_FALSE_PER_1K:g})"
    lines.append(
        f"{label:<{name_width + signal_width + scope_width + 19}}"
        + "".join(f"{results[rows]['quiet']['false_per_1k']:>16.2f}" for rows in columns)
    )
    for rows in columns:
        quiet = results[rows]["quiet"]
        by_rule = Counter(f["rule"] for f in quiet["firings"])
        fired = ", ".join(f"{rule} {count}" for rule, count in by_rule.most_common()) or "none"
        seconds = results[rows]["replay_seconds"]
        lines.append(
            f"  {rows:,} rows: {quiet['alerts']} alert(s) over {quiet['cells']:,} cells; rules that fired: "
            f"{fired}; replay {seconds['incidents']:.0f} s + {seconds['quiet']:.0f} s (quiet)"
        )
    return lines


def size_result(manifest: Manifest, found: Replay, quiet: Replay) -> dict[str, Any]:
    """The JSON of one size: detections per incident and the quiet world's false alerts."""
    rate = 1000 * len(quiet.firings) / quiet.cells if quiet.cells else float("nan")
    return {
        "incidents": detections(manifest, found),
        "quiet": {
            "alerts": len(quiet.firings),
            "cells": quiet.cells,
            "false_per_1k": rate,
            "firings": [{"at": f.at.isoformat(), "rule": f.rule, "scope": f.scope} for f in quiet.firings],
        },
        "replay_seconds": {"incidents": found.seconds, "quiet": quiet.seconds},
    }


@benchmark("alert-quality", "incidents detected (delay) and false alerts per 1 000 cells", order=30)
def run(ctx: Context) -> Outcome:
    """Both worlds at 100 k and 1 M predictions (or the sizes in `ALERT_QUALITY_SIZES`)."""
    results: dict[int, dict[str, Any]] = {}
    for rows in sizes():
        incident_config, manifest = _world(ctx, rows, quiet=False)
        quiet_config, quiet_manifest = _world(ctx, rows, quiet=True)
        ctx.log(f"replaying {rows:,} rows (incidents)")
        found = replay(incident_config, manifest)
        ctx.log(f"replaying {rows:,} rows (quiet)")
        quiet = replay(quiet_config, quiet_manifest)
        results[rows] = size_result(manifest, found, quiet)
    passed = all(
        all(item["target_met"] for item in result["incidents"])
        and result["quiet"]["false_per_1k"] <= TARGET_FALSE_PER_1K
        for result in results.values()
    )
    return Outcome(
        report="\n".join(table(results)), data={str(k): v for k, v in results.items()}, passed=passed
    )
