"""Issue 7: a headless replay of 30 days of 1 M predictions at full speed in under a minute.

The world is the alert-quality benchmark's (triage's generator, 30 days, with incidents), ingested
and warmed once the way `triage ingest` leaves a store (not timed: that is ingest's cost). Then
`triage replay --headless` — `run_replay` — is timed from the end of the reference (its default
start) to the last prediction, one daily window per step, every model evaluated as of each step
and the default rules judged, with the alert timeline as the result; and again from the first
prediction, all 30 days.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from tests.bench.alert_quality import DAYS, _world
from tests.bench.registry import Context, Outcome, benchmark
from tests.bench.report import Target, seconds, table, targets_table, verdict
from triage.config import Config, load_config
from triage.engine import Engine
from triage.replay import CURRENT, Timeline, run_replay
from triage.store import Store

TARGET_S = 60.0


@benchmark("replay", f"headless replay of {DAYS} days at full speed (issue 7: < 1 min on 1 M rows)", order=40)
def run(ctx: Context) -> Outcome:
    config_path, _ = _world(ctx, ctx.rows, quiet=False)
    config = load_config(config_path)
    started = time.perf_counter()
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        engine.warm()
    warm_s = time.perf_counter() - started
    timeline, runs = _timed(ctx, lambda engine: run_replay(config, engine), config)
    track = timeline.tracks[CURRENT]
    first = _first_prediction(config)
    whole, whole_runs = _timed(ctx, lambda engine: run_replay(config, engine, start=first), config)
    best, best_whole = min(runs), min(whole_runs)
    targets = [
        Target(f"replay of {DAYS} days, {ctx.rows / 1e6:g} M rows", best, "<", TARGET_S, "s"),
        Target(
            f"the same from the first prediction, {ctx.rows / 1e6:g} M rows", best_whole, "<", TARGET_S, "s"
        ),
    ]
    lines = [
        [
            "replay (headless, full speed, from the reference's end)",
            seconds(best),
            f"{timeline.steps} steps, {len(track.events)} alert changes",
        ],
        [
            "replay from the first prediction",
            seconds(best_whole),
            f"{whole.steps} steps, {len(whole.tracks[CURRENT].events)} alert changes",
        ],
        ["warm after ingest (not timed)", seconds(warm_s), "all window statistics cached, as ingest does"],
    ]
    report = "\n".join(
        [
            table(("", "time (s)", ""), lines, right=(1,)),
            "",
            targets_table(targets),
            "",
            f"- {ctx.rows:,} predictions over {DAYS} days; best of {len(runs)} run(s); "
            f"{len(track.first_firing())} alerts fired, {len(track.judged)} cells judged",
        ]
    )
    data = {
        "rows": ctx.rows,
        "days": DAYS,
        "runs_s": runs,
        "whole_span_runs_s": whole_runs,
        "whole_span_steps": whole.steps,
        "warm_s": warm_s,
        "steps": timeline.steps,
        "events": len(track.events),
        "targets": [t.to_json() for t in targets],
    }
    return Outcome(report=report, data=data, passed=verdict(targets))


def _timed(
    ctx: Context, replay: Callable[[Engine], Timeline], config: Config
) -> tuple[Timeline, list[float]]:
    """The timeline of `replay` on a read-only engine, and its wall times (best of the repeats)."""
    runs: list[float] = []
    timeline = None
    for _ in range(ctx.repeats if ctx.rows <= 1_000_000 else 1):
        started = time.perf_counter()
        with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
            timeline = replay(engine)
        runs.append(time.perf_counter() - started)
        if sum(runs) > 5 * TARGET_S:
            break
    assert timeline is not None
    return timeline, runs


def _first_prediction(config: Config) -> datetime:
    with Store.open(config.store_path, read_only=True) as store:
        span = store.time_range(config.models[0])
    assert span is not None
    return span[0]
