"""Issue 7: a headless replay of 30 days of 1 M predictions at full speed in under a minute.

The world is the alert-quality benchmark's (triage's generator, 30 days, with incidents), ingested
and warmed once the way `triage ingest` leaves a store (not timed: that is ingest's cost). Then
`triage replay --headless` — `run_replay` — is timed from the end of the reference to the last
prediction, one daily window per step, every model evaluated as of each step and the default
rules judged, with the alert timeline as the result.
"""

from __future__ import annotations

import time

from tests.bench.alert_quality import DAYS, _world
from tests.bench.registry import Context, Outcome, benchmark
from tests.bench.report import Target, seconds, table, targets_table, verdict

TARGET_S = 60.0


@benchmark("replay", f"headless replay of {DAYS} days at full speed (issue 7: < 1 min on 1 M rows)", order=40)
def run(ctx: Context) -> Outcome:
    from triage.config import load_config
    from triage.engine import Engine
    from triage.replay import CURRENT, run_replay
    from triage.store import Store

    config_path, _ = _world(ctx, ctx.rows, quiet=False)
    config = load_config(config_path)
    started = time.perf_counter()
    with Store.open(config.store_path) as store, Engine(config, store) as engine:
        engine.warm()
    warm_s = time.perf_counter() - started
    runs = []
    timeline = None
    for _ in range(ctx.repeats if ctx.rows <= 1_000_000 else 1):
        started = time.perf_counter()
        with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
            timeline = run_replay(config, engine)
        runs.append(time.perf_counter() - started)
        if sum(runs) > 5 * TARGET_S:
            break
    assert timeline is not None
    track = timeline.tracks[CURRENT]
    best = min(runs)
    targets = [Target(f"replay of {DAYS} days, {ctx.rows / 1e6:g} M rows", best, "<", TARGET_S, "s")]
    lines = [
        [
            "replay (headless, full speed)",
            seconds(best),
            f"{timeline.steps} steps, {len(track.events)} alert changes",
        ],
        ["warm after ingest (not timed)", seconds(warm_s), "drift windows cached by `triage ingest`"],
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
        "warm_s": warm_s,
        "steps": timeline.steps,
        "events": len(track.events),
        "targets": [t.to_json() for t in targets],
    }
    return Outcome(report=report, data=data, passed=verdict(targets))
