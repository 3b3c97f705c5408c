"""`triage check`: evaluate every model as of a time; a compact text summary or the JSON document.

Exit status (the monitoring-plugin convention): 0 OK, 1 a warning alert is firing, 2 a critical
one is, 3 the config or the store cannot be used ("unknown"). Alert state is recorded in the store.
The `--json` document is described in the README ("`triage check --json`").
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from triage.alerts.rules import (
    CALIBRATION_MIN_COVERAGE,
    PRECISION_MIN_COVERAGE,
    REGRESSION_MIN_COVERAGE,
    SETTLED_LABELS,
    duration_text,
    effective_rules,
    validate_rules,
)
from triage.cli import UserError
from triage.commands.alerts_cmd import alerts_text, time_text
from triage.commands.argtypes import http_url, time_arg, window_arg, window_count
from triage.config import SCORE_FEATURE, Config, Costs, ModelConfig, load_config
from triage.metrics.operations import FEED_COMPARE_AFTER_S, FEED_USUAL_MIN, VOLUME_USUAL_MIN
from triage.printable import columns, pad, printable
from triage.store import Store, StoreError

if TYPE_CHECKING:
    from triage.alerts.evaluate import AlertEvaluation
    from triage.alerts.state import Alert, AlertStore
    from triage.engine import CheckReport, ModelReport
    from triage.metrics.results import (
        CalibrationRow,
        DataQualityRow,
        DriftRow,
        OperationsRow,
        PerformanceRow,
        Row,
    )

EXIT_UNKNOWN = 3
NO_PREDICTIONS = "no predictions in the evaluated windows"
VERDICTS = {0: "OK", 1: "WARNING", 2: "CRITICAL"}  # by exit status
TOP_DRIFT = 8  # features in the drift and data-quality tables
TOP_UNSEEN = 3  # unseen categories named per feature
NOTABLE = 0.01  # a change in missing rate, or a share out of range, the data-quality table shows
# A drift cell the summary calls drifted: PSI ≥ PSI_WARN (or KS D ≥ KS_SHIFT where PSI is blind) and its
# drift test (KS; chi-square with sparse categories pooled), BH-adjusted across the window's cells, at
# p ≤ this. PSI alone is large on small
# cells by chance: 250 values over a hundred categories give PSI 0.3-0.5 with nothing changed.
DRIFT_P = 0.01
# Performance is shown for the latest window whose labels cover this share of what the default rule
# judges: a classifier's positive decisions (precision's), a regression model's rows (the MAE rule's).
MATURE_COVERAGE = PRECISION_MIN_COVERAGE
R = TypeVar("R", bound="Row")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="evaluate drift, calibration, performance and operations as of a time",
        description="Evaluate every configured model (or --model) per window × version × slice as of "
        "now (or --at) and print a summary of the worst cells, or with --json the whole document. "
        "Exit 3 when the config or the store cannot be used, or the output cannot be written.",
    )
    parser.add_argument(
        "--model", action="append", metavar="NAME", help="only this model (repeatable; default: all)"
    )
    parser.add_argument(
        "--window", type=window_arg, metavar="SIZE", help="window size: 1h, 6h, 1d, 7d, 1w, 1mo"
    )
    parser.add_argument("--last", type=window_count, metavar="N", help="only the last N windows up to --at")
    parser.add_argument(
        "--trailing",
        action="store_true",
        help="count the windows back from the end of the model's window holding --at: with --window 7d "
        "the latest is the last 7 days (not for months)",
    )
    parser.add_argument(
        "--at",
        type=time_arg,
        metavar="TIME",
        help="evaluate as of this ISO time (UTC if no zone; default now)",
    )
    parser.add_argument(
        "--slice",
        action="append",
        metavar="COLUMN",
        help="slice by this column instead of the configured segments (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document instead of text")
    parser.add_argument(
        "--enough-only",
        action="store_true",
        help="with --json: leave out the rows of cells with too little data (enough_data false), "
        "which with many slices are most of the document",
    )
    parser.add_argument(
        "--push-alertmanager",
        type=http_url,
        metavar="URL",
        help="post firing and resolved alerts to this Alertmanager (its base URL, API v2)",
    )
    parser.set_defaults(handler=run_check, config_error_status=EXIT_UNKNOWN)


def run_check(args: argparse.Namespace) -> int:
    from triage.alerts.alertmanager import AlertmanagerError, push
    from triage.alerts.state import EXIT_CRITICAL, EXIT_OK, AlertStore, exit_status
    from triage.engine import Engine, EngineError  # numpy/scipy load only when `check` runs

    config = load_config(args.config)
    for name in args.model or ():
        config.model(name)
    validate_rules(config)
    if args.enough_only and not args.json:
        raise UserError(
            "--enough-only leaves rows out of the --json document; give --json too", status=EXIT_UNKNOWN
        )
    if args.trailing:
        for model in config.models if not args.model else [config.model(name) for name in args.model]:
            if (args.window or model.window).unit == "mo":
                whose = f"--window {args.window.text}" if args.window else f"model {model.name!r}'s window"
                raise UserError(
                    f"--trailing: {whose} is calendar months, which cannot trail; give --window in h, d or w",
                    status=EXIT_UNKNOWN,
                )
    if str(config.store_path) != ":memory:" and not config.store_path.exists():
        raise UserError(f"{config.store_path}: no store yet; run `triage ingest` first", status=EXIT_UNKNOWN)
    # A time ahead of the clock (a typo, a zone slip) is shown but not recorded: recorded, it would
    # be the latest evaluation, and every check until then would count as looking back.
    ahead = args.at is not None and args.at > datetime.now(UTC)
    if ahead:
        print(
            f"triage: note: --at {time_text(args.at)} is after the current time: this check records nothing",
            file=sys.stderr,
        )
    try:
        # Writable: the alert state and history of this evaluation are recorded in the store —
        # unless another process reads it (a check, a replay, a report), which no writer may join.
        with Store.open(config.store_path, or_read_only=True) as store, Engine(config, store) as engine:
            if store.read_only:
                print(
                    f"triage: note: {config.store_path} is open read-only in another process (a "
                    "check, a replay or a report): the alerts move on from their recorded state, "
                    "but this check records nothing",
                    file=sys.stderr,
                )
            report = engine.check(args.model, args.at, args.window, args.last, args.slice, args.trailing)
            alert_store = AlertStore(store.connection, read_only=store.read_only or ahead)
            if args.at is None:
                _mend_recorded_ahead(alert_store, report.models, report.as_of)
            alerts, unjudged = _evaluate(report, config, alert_store, args)
    except (StoreError, EngineError) as exc:
        raise UserError(str(exc), status=EXIT_UNKNOWN) from None
    status = exit_status(alerts, report.as_of)
    # Nothing judged is not "OK" for a cron job: unknown, as with nothing ingested yet — for the
    # whole check, or for one of its models when no alert says worse (`_evaluate`: what counts).
    judged = status != EXIT_OK or not unjudged
    if args.json:
        from triage.metrics.results import write_json

        document = report.to_json(lazy=True, thin=not args.enough_only)
        document["alerts"] = [alert.to_json(report.as_of) for alert in alerts]
        write_json(document, sys.stdout)
        print()
    else:
        print(format_report(report, VERDICTS[status] if judged else "UNKNOWN", config))
        print("\n" + alerts_text(alerts, report.as_of))
    if args.push_alertmanager:
        try:
            push(args.push_alertmanager, alerts, report.generated_at)
        except AlertmanagerError as exc:
            # A critical alert keeps its status: a cron job that pages on 2 must not miss it
            # because the delivery failed too. Anything less becomes unknown (3).
            if status != EXIT_CRITICAL:
                raise UserError(str(exc), status=EXIT_UNKNOWN) from None
            print(f"triage: {exc}", file=sys.stderr)
    if not judged:
        raise UserError(_unjudged_text(unjudged, len(report.models), report.as_of), status=EXIT_UNKNOWN)
    return status


def _evaluate(
    report: CheckReport, config: Config, alert_store: AlertStore, args: argparse.Namespace
) -> tuple[list[Alert], dict[str, str]]:
    """Every model's alerts at the report's time (recorded for a configured view), and why each
    model that nothing judged was not: judged is a rule's cell within its horizon, or evidence
    held over newer windows that are thin or wait for their labels (without rules: a window with
    min_samples predictions)."""
    from triage.alerts.state import check_alerts

    alerts: list[Alert] = []
    unjudged: dict[str, str] = {}
    for summary in report.models:
        model = config.model(summary.name)
        found, evaluations = check_alerts(
            alert_store,
            model,
            summary.tables(),
            report.as_of,
            summary.reference_tables(),
            record=_configured_view(args, model),
            arrival=summary.reference_arrival,
            window=args.window,
        )
        alerts += found
        most = max((w.n for w in summary.windows), default=0)
        if not most:
            unjudged[summary.name] = NO_PREDICTIONS
        elif not effective_rules(model):
            if most < model.min_samples:
                unjudged[summary.name] = (
                    f"no window holds min_samples {model.min_samples} predictions (at most {most})"
                )
        elif not any(e.judged for e in evaluations):
            unjudged[summary.name] = _why_unjudged(summary, model, evaluations, most)
    return alerts, unjudged


def _why_unjudged(
    summary: ModelReport, model: ModelConfig, evaluations: Sequence[AlertEvaluation], most: int
) -> str:
    """Why no rule judged a cell of a model with predictions: its reference still open, its
    windows waiting for their labels, or too thin (the largest window against min_samples)."""
    if not summary.reference.complete and summary.reference.note:
        return summary.reference.note
    if any(cell.awaiting_labels for e in evaluations for cell in e.cells):
        return "its windows wait for their labels (too few labelled rows, or too low a coverage, so far)"
    largest = f"the largest holds {most} predictions; min_samples {model.min_samples}"
    return f"no rule judged a recent window ({largest})"


def _unjudged_text(unjudged: Mapping[str, str], models: int, as_of: datetime) -> str:
    """The error line of a check that judged nothing in some model (named when it has several)."""
    when = time_text(as_of)
    if all(why == NO_PREDICTIONS for why in unjudged.values()):
        which = "" if len(unjudged) == models else f" of {', '.join(unjudged)}"
        return f"{NO_PREDICTIONS}{which} as of {when}"
    reasons = [f"{name}: {why}" if models > 1 else why for name, why in unjudged.items()]
    return f"nothing judged as of {when}: " + "; ".join(reasons)


def _mend_recorded_ahead(alert_store: AlertStore, models: Sequence[ModelReport], now: datetime) -> None:
    """A model's alert state recorded after now — by an earlier version, which recorded a `check
    --at` in the future — made every check of now look back and record nothing: forgotten (said on
    stderr), or named when the store is read-only here."""
    for model in models:
        latest = alert_store.latest_update(model.name)
        if latest is None or latest <= now:
            continue
        if alert_store.read_only:
            print(
                f"triage: note: the alert state of {model.name!r} was recorded as of {time_text(latest)}, "
                "after the current time: this check records nothing (a check that can write forgets it)",
                file=sys.stderr,
            )
            continue
        forgotten = alert_store.forget_ahead(model.name, now)
        print(
            f"triage: note: forgot the state of {forgotten} alert(s) of {model.name!r} recorded as of up to "
            f"{time_text(latest)}, after the current time (a check --at in the future): checks record again",
            file=sys.stderr,
        )


def _configured_view(args: argparse.Namespace, model: ModelConfig) -> bool:
    """Whether the check looks at the model as configured (its window, segments, every window):
    only then does it move the alert state; another view's alerts are its own."""
    return args.window in (None, model.window) and args.last is None and not args.slice and not args.trailing


# --- text summary -------------------------------------------------------------------------------

# Predictions the latest window's rate promises in a silence shorter than a window before it is
# called stale: Poisson's chance of none is e⁻¹⁰ ≈ 5e-5.
STALE_EXPECTED = 10


def _num(value: float | None, digits: int = 3) -> str:
    """A value with `digits` decimals; from a million on (a MAPE over labels of 0), 3 significant digits."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"


def _p_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}" if value >= 1e-3 else f"{value:.0e}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _count(value: int) -> str:
    return f"{value:,}"


def _slice(row: Row) -> str:
    return "all" if row.segment is None else printable(f"{row.segment}={row.segment_value}")


def _table(headers: Sequence[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Aligned columns, each cell `printable`: cells hold logged values (versions, slices, categories)."""
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(columns(h), *(columns(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [pad(cells[0], widths[0])] + [
            pad(c, w, right=True) for c, w in zip(cells[1:], widths[1:], strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def format_report(report: CheckReport, verdict: str, config: Config) -> str:
    """The compact text summary of `triage check` (about 100 columns), its first line ending in
    the verdict (OK, WARNING, CRITICAL as the exit status, or UNKNOWN), as monitoring plugins do."""
    lines = [f"triage check — as of {time_text(report.as_of)} — {verdict}"]
    for model in report.models:
        lines += ["", *_model_lines(model, config.model(model.name))]
    return "\n".join(lines)


def _model_lines(model: ModelReport, config: ModelConfig) -> list[str]:
    total = sum(w.n for w in model.windows)
    versions = sorted({row.version for row in model.performance if row.version is not None})
    lines = [
        f"{model.name}: {_count(total)} predictions in {len(model.windows)} window(s) of {model.window.text}"
        + (" (trailing)" if model.window.trailing else "")
        + (f"; versions {', '.join(map(printable, versions))}" if versions else ""),
        f"  reference: {_reference_text(model)} ({_count(model.reference.n)} rows)",
    ]
    if not model.windows:
        return [*lines, "  no predictions in the evaluated windows"]
    # The sections read the latest window with min_samples rows: at 00:30 the day just begun holds
    # a few dozen and says nothing yet, yesterday does (the latest window when none has enough).
    judged = [window for window in model.windows if window.n >= config.min_samples]
    latest = (judged or model.windows)[-1].window_start
    # Drift and data quality as the distribution rules judge them: in the latest of the model's
    # windows that has ended (at 09:00 the day so far is its night and morning, not a day).
    ended = [w for w in judged if w.window_end <= model.as_of or model.window != config.window]
    distribution = (ended or judged or model.windows)[-1].window_start
    lines += (
        _stale_lines(model, latest)
        + _ahead_lines(model)
        + _silent_slice_lines(model)
        + _volume_lines(model)
        + _unjudged_version_lines(model, config.min_samples)
    )
    if model.reference.complete:
        lines += [
            "",
            *_drift_lines(model, distribution, _drift_by_phase(config)),
            "",
            *_quality_lines(model, distribution),
            *_schema_lines(model),
        ]
    else:
        lines.append(f"  {model.reference.note}")
    if config.task != "regression":  # a regression model has no decision or probability to calibrate
        lines += ["", *_calibration_lines(model, latest)]
    lines += [
        "",
        *_performance_lines(model, config.task, config.min_samples),
        *_cost_lines(model, config.costs),
        "",
        *_operations_lines(model, latest),
    ]
    return lines


def _stale_lines(model: ModelReport, shown: datetime) -> list[str]:
    """A warning when predictions stopped (the feed, or the ingest of its logs): none since the
    latest window with any, for a whole window or for as long as that window's rate would have
    brought `STALE_EXPECTED` — not the first minutes of a window of a quiet model; naming the
    window the sections below show (`shown`). (`stale_after` makes an alert of a silence:
    `feed-stale`.)"""
    last = model.windows[-1]
    silence = (model.as_of - last.window_end).total_seconds()
    span = (last.window_end - last.window_start).total_seconds()
    feed = model.feed[0]
    if silence <= 0 or (silence < span and last.n * silence / span < STALE_EXPECTED):
        return []
    assert feed.last_prediction is not None and feed.silence_s is not None  # `last` has predictions
    return [
        f"  stale: last prediction at {time_text(feed.last_prediction)}, "
        f"{duration_text(feed.silence_s)} before the as-of time;",
        f"         below is the window of {time_text(shown)}",
    ]


def _ahead_lines(model: ModelReport) -> list[str]:
    """A warning when predictions are stamped after the current time: no check counts them until
    then (a producer's clock or time zone, a sentinel date)."""
    count, latest = model.ahead
    if not count:
        return []
    assert latest is not None
    return [
        f"  ahead: {count:,} prediction(s) stamped after the current time (the latest at "
        f"{time_text(latest)}), counted by no check until then"
    ]


def _silent_slice_lines(model: ModelReport, shown: int = 5) -> list[str]:
    """The slices whose predictions stopped while the model's went on (`FeedRow.unusual_s`): a
    region's client that stopped sending — silent a minute longer than it went without
    FEED_USUAL_MIN predictions from those hours before, the most unusual first. (`stale_after`
    makes alerts of them: `slice-feed-stale`.)"""
    compared = (row for row in model.feed[1:] if row.usual_gap_s is not None)
    silent = sorted(
        (row for row in compared if (row.unusual_s or 0.0) >= FEED_COMPARE_AFTER_S),
        key=lambda row: -(row.unusual_s or 0.0),
    )
    lines = [
        f"  silent: {_slice(row)}, none for {duration_text(row.behind_s or 0.0)} while the model went on "
        f"(at least {_count(row.usual_n or 0)} in those hours on earlier days, "
        f"at most {duration_text(row.usual_gap_s or 0.0)} without {FEED_USUAL_MIN})"
        for row in silent[:shown]
    ]
    if len(silent) > shown:
        lines.append(f"          and {len(silent) - shown} more slice(s)")
    return lines


def _unjudged_version_lines(model: ModelReport, minimum: int) -> list[str]:
    """The versions none of whose evaluated windows holds min_samples rows: a canary on 5 % of a
    day's traffic is never judged on its own (its rows still count in all versions' cells), and
    with nothing said a quiet check would look like a healthy canary."""
    most: dict[str, int] = {}
    for row in model.operations:
        if row.version is not None and row.route is None and row.segment is None:
            most[row.version] = max(most.get(row.version, 0), row.n)
    if len(most) < 2:
        return []  # one version's cells are all versions' cells
    return [
        f"  not judged: version {printable(version)} — no window holds min_samples {minimum} of its rows "
        f"(at most {_count(n)})"
        for version, n in sorted(most.items())
        if n < minimum
    ]


def _volume_lines(model: ModelReport, shown: int = 5) -> list[str]:
    """The model and the slices whose last hour's volume is half the fewest, or twice the most, of
    that hour on the 7 days before (`FeedRow.volume_ratio`; the default volume rules' warnings),
    the furthest first."""
    moved = sorted(
        (row for row in model.feed if row.volume_ratio is not None and not 0.5 < row.volume_ratio < 2.0),
        key=lambda row: -abs(math.log(max(row.volume_ratio or 0.0, 1e-9))),
    )
    lines = []
    for row in moved[:shown]:
        ratio = row.volume_ratio or 0.0
        most = row.most_n or 0
        floor = f", taken as {VOLUME_USUAL_MIN}" if most < VOLUME_USUAL_MIN else ""
        compared = f"the fewest ({_count(row.fewest_n or 0)})" if ratio < 1 else f"the most ({most}{floor})"
        lines.append(
            f"  volume: {_slice(row)}, {_count(row.recent_n or 0)} in the last hour, {ratio:.2f}× {compared}"
            " in that hour on the 7 days before"
        )
    if len(moved) > shown:
        lines.append(f"          and {len(moved) - shown} more")
    return lines


def _schema_lines(model: ModelReport) -> list[str]:
    """The columns missing, added or retyped against the reference, when there are any."""
    if not model.schema_changes:
        return []
    shown = [
        f"{printable(c.column)} {c.change} ({c.reference_type or '-'} → {c.current_type or '-'})"
        for c in model.schema_changes
    ]
    return ["", f"Schema changes: {', '.join(shown)}"]


def _reference_text(model: ModelReport) -> str:
    reference = model.reference
    if reference.kind == "files" or reference.start is None or reference.end is None:
        return reference.description
    span = f"{time_text(reference.start)} .. {time_text(reference.end)}"
    return span if reference.kind == "range" else f"{reference.description}, {span}"


def _drift_p(row: DriftRow) -> float | None:
    """The cell's drift test, as the alert rules gate on it: KS, or the pooled chi-square."""
    return row.ks_p if row.kind == "numeric" else row.chi2_pooled_p


def _drift_by_phase(model: ModelConfig) -> bool:
    """Whether a drift rule of the model judges a window against the reference's in its phase."""
    return any(rule.outside_band and rule.signal.startswith("drift.") for rule in effective_rules(model))


def _drift_lines(model: ModelReport, latest: datetime, by_phase: bool = False) -> list[str]:
    """One line per feature, the most drifted first: its worst drifted cell (PSI ≥ PSI_WARN, or
    KS D ≥ KS_SHIFT where PSI's bins cannot see a move, test p ≤ DRIFT_P once Benjamini–Hochberg
    adjusted across the window's cells, as the alert rules adjust theirs: among hundreds of
    slices a few quiet ones reach p 0.006 by chance) in the window, else its worst cell — worst by
    `drift_rank` (PSI, or KS D where PSI is blind) — and how many of its cells with enough data
    are drifted (a new category reaches every slice: one feature's cells would fill the table and
    hide the next feature)."""
    from triage.alerts.fdr import bh_adjusted
    from triage.metrics.results import KS_SHIFT, PSI_WARN, drift_rank

    cells = [r for r in model.drift if r.window_start == latest and r.enough_data and r.psi is not None]
    tested = [r for r in cells if _drift_p(r) is not None]
    p_values = bh_adjusted([_drift_p(r) or 0.0 for r in tested]).tolist()
    adjusted: dict[DriftRow, float] = dict(zip(tested, p_values, strict=True))

    def drifted(r: DriftRow) -> bool:
        p = adjusted.get(r)
        # No rule judges the score by KS D (score-drift is JS): its blind KS does not count.
        blind = r.ks_d_psi_blind if r.feature != SCORE_FEATURE else None
        moved = (r.psi or 0.0) >= PSI_WARN or (blind or 0.0) >= KS_SHIFT
        return moved and p is not None and p <= DRIFT_P

    title = (
        f"Drift, window {time_text(latest)}"
        f" (drifted: PSI ≥ {PSI_WARN:g}, KS D ≥ {KS_SHIFT:g} if PSI is blind; p adj. ≤ {DRIFT_P:g})"
    )
    if not cells:
        return [title, "  no cell with enough data"]
    by_feature: dict[str, list[DriftRow]] = {}
    for r in sorted(cells, key=lambda r: (drifted(r), drift_rank(r)), reverse=True):
        by_feature.setdefault(r.feature, []).append(r)

    def line(found: list[DriftRow]) -> list[str]:
        worst = found[0]
        return [
            worst.feature,
            _slice(worst),
            worst.version or "all",
            _count(worst.n),
            _num(worst.psi),
            _num(worst.js),
            _num(worst.ks_d),  # a categorical's test is the chi-square: its statistic grows with n
            _p_value(adjusted.get(worst)),
            _num(worst.wasserstein_norm),
            f"{sum(map(drifted, found))}/{len(found)}",
        ]

    rows = [line(found) for found in by_feature.values()]
    headers = ["feature", "slice", "version", "n", "PSI", "JS", "KS D", "p adj.", "W1/σ", "drifted"]
    # A feature missing from the table must say why: mostly missing values, or none at all yet.
    thin = sorted({r.feature for r in model.drift if r.window_start == latest} - set(by_feature))
    unjudged = [f"  no cell with enough values: {', '.join(thin)}"] if thin else []
    if by_phase and cells and cells[0].window_end - cells[0].window_start < timedelta(days=1):
        # An hour's mix differs from the whole day's: the rules judge it against the same hours.
        unjudged.append(
            "  against the whole reference; the alert rules compare each window with the reference's"
            " at its time of day"
        )
    return [title, *_table(headers, rows[:TOP_DRIFT]), *_more_features(len(rows)), *unjudged]


def _more_features(shown: int) -> list[str]:
    """The line saying how many features a table of TOP_DRIFT leaves out, if any."""
    return [f"  … {shown - TOP_DRIFT} more feature(s) in --json"] if shown > TOP_DRIFT else []


def _quality_lines(model: ModelReport, latest: datetime) -> list[str]:
    """The features of the latest window (all traffic and versions) with any unseen category, a
    missing rate NOTABLE (1 point) or more off the reference's, or at least NOTABLE of values
    outside the reference's range; the largest share first, with the most frequent unseen
    categories: what a drift number alone does not say."""
    title = f"Data quality — window {time_text(latest)}, all traffic: missing, unseen, out-of-range values"
    cells = [
        r for r in model.data_quality if r.window_start == latest and r.segment is None and r.version is None
    ]

    def change(r: DataQualityRow) -> float:
        return max(abs(r.missing_rate_change or 0.0), r.unseen_share or 0.0, r.out_of_range_share or 0.0)

    def notable(r: DataQualityRow) -> bool:
        return bool(r.unseen_share) or change(r) >= NOTABLE

    changed = sorted(filter(notable, cells), key=change, reverse=True)
    if not changed:
        # Below min_samples a cell's rates are null: nothing is known, not "as usual".
        judged = any(r.enough_data for r in cells)
        return [title, "  as in the reference" if judged else "  no cell with enough data"]
    rows = [
        [
            r.feature,
            f"{_pct(r.missing_rate)} ({_pct(r.missing_rate_reference)})",
            _unseen(r),
            _pct(r.out_of_range_share),
            ", ".join(_category(c) for c in r.unseen_categories[:TOP_UNSEEN]) or "-",
        ]
        for r in changed[:TOP_DRIFT]
    ]
    headers = ["feature", "missing (reference)", "unseen (expected)", "out of range", "top unseen categories"]
    return [title, *_table(headers, rows), *_more_features(len(changed))]


def _category(value: str) -> str:
    """A category as the summary lists it: the empty string as `""`, not nothing between commas."""
    return value or '""'


def _unseen(row: DataQualityRow) -> str:
    """The unseen share, and beside it the share the reference's own rare categories predict, ± its
    standard error: a long tail leaves a few percent unseen with nothing changed."""
    if row.unseen_share is None or row.unseen_share_expected is None:
        return _pct(row.unseen_share)
    spread = f" ± {_pct(row.unseen_share_expected_se)}" if row.unseen_share_expected_se else ""
    return f"{_pct(row.unseen_share)} ({_pct(row.unseen_share_expected)}{spread})"


def _calibration_lines(model: ModelReport, latest: datetime) -> list[str]:
    """Per version (all traffic): the latest window's decision rate against the reference's, and
    the calibration of the latest window with enough labelled rows on at least half its rows (the
    default ECE rule's gate: the first labels are the reviewed, flagged requests, whose calibration
    looks dreadful) — with labels days late, the latest window has none yet — its ECE and Brier
    against the reference's (as the rules' baseline takes them), so that a miscalibrated canary
    stands out from a version as calibrated as ever. MCE and log loss are in the JSON document: a
    window's MCE is its emptiest bin's."""
    from triage.alerts.evaluate import labels_settled

    title = (
        f"Calibration — decision rate in {time_text(latest)}; latest window"
        f" ≥ {CALIBRATION_MIN_COVERAGE:.0%} labelled, settled (reference)"
    )
    rows = []
    borrowed: list[str] = []
    thin: list[str] = []
    unlabelled: list[str] = []
    unsettled: list[str] = []
    for version, mine, reference, mark in _per_version(model.calibration, model.reference_calibration):
        now = next((r for r in mine if r.window_start == latest), None)
        settled = _reference_coverage(reference)
        mature = [
            r for r in mine if r.ece is not None and r.n and r.n_labeled / r.n >= CALIBRATION_MIN_COVERAGE
        ]
        labelled = max(
            (r for r in mature if labels_settled(r.n_labeled, r.n, settled)),
            key=lambda r: r.window_start,
            default=None,
        )
        if mature and (labelled is None or labelled.window_start < max(r.window_start for r in mature)):
            unsettled.append(f"{printable(version or 'all')} {_pct(settled)}")
        unlabelled += [] if labelled else [version or "all"]
        borrowed += [str(version)] if mark else []
        if now is not None and now.decision_rate is None and now.note:
            thin.append(f"  {printable(version or 'all')}: {now.note}")
        rate = _baseline("calibration", "decision_rate", reference)
        rows.append(
            [
                version or "all",
                _count(now.n) if now else "0",
                _versus(now.decision_rate if now else None, rate, mark=mark),
                time_text(labelled.window_start)[5:] if labelled else "-",
                _count(labelled.n_labeled) if labelled else "-",
                *(
                    _versus(getattr(labelled, name), _baseline("calibration", name, reference), mark=mark)
                    if labelled and name in ("ece", "brier")
                    else _num(getattr(labelled, name) if labelled else None)
                    for name in ("ece", "ece_equal_mass", "brier")
                ),
            ]
        )
    headers = [
        "version",
        "n",
        "dec. rate",
        "window",
        "labelled",
        "ECE",
        "ECE mass",
        "Brier",
    ]
    missing = [f"  {', '.join(map(printable, unlabelled))}: no such window yet"] if unlabelled else []
    settling = _unsettled_note(
        "newer windows wait:",
        unsettled,
        "the first labels are the classes that come first, which calibration cannot tell from news",
    )
    return [title, *_table(headers, rows), *_borrowed_note(borrowed), *missing, *settling, *thin]


def _per_version(
    rows: Sequence[R], reference: Sequence[R]
) -> Iterator[tuple[str | None, list[R], list[R], str]]:
    """Per version of the all-traffic rows, all versions first: its rows, and the reference windows
    (all traffic, enough data) it is compared with — its own, else (a version without any, a new
    canary) all versions', marked `*`, as alert baselines are."""
    overall = [r for r in rows if r.segment is None]
    usable = [r for r in reference if r.segment is None and r.enough_data]
    for version in sorted({r.version for r in overall}, key=lambda v: (v is not None, v or "")):
        own = [r for r in usable if r.version == version]
        borrowed = not own and version is not None
        compared = [r for r in usable if r.version is None] if borrowed else own
        yield version, [r for r in overall if r.version == version], compared, "*" if borrowed else ""


def _borrowed_note(versions: Sequence[str]) -> list[str]:
    """The footnote of the versions compared with all versions' reference, if any."""
    if not versions:
        return []
    shown = ", ".join(map(printable, versions))
    return [f"  * all versions' reference: no reference window of {shown} has enough data"]


def _baseline(table: str, field: str, rows: Sequence[Row]) -> float | None:
    """A statistic over the reference windows that have it, as the alert rules' reference baseline
    takes it (`evaluate.baseline_of`): pooled counts of a proportion (precision: all the windows'
    true positives over all their flagged rows), else weighted by the windows' (labelled) rows."""
    from triage.alerts.evaluate import baseline_of

    found = baseline_of(table, field, [row for row in rows if getattr(row, field) is not None])
    return None if found is None else found.value


def _pooled_error(rows: Sequence[PerformanceRow], field: str) -> float | None:
    """A regression error over the labelled rows of all `rows` (the reference windows): MAE and
    MAPE weighted by each window's labelled rows, RMSE the root of its weighted squares."""
    squared = field == "rmse"
    pairs = [
        (row.n_labeled, v * v if squared else v) for row in rows if (v := getattr(row, field)) is not None
    ]
    total = sum(n for n, _ in pairs)
    if not total:
        return None
    mean = sum(n * v for n, v in pairs) / total
    return math.sqrt(mean) if squared else mean


def _versus(
    now: float | None,
    reference: float | None,
    digits: int = 3,
    mark: str = "",
    interval: tuple[float | None, float | None] = (None, None),
) -> str:
    """`0.45±.05 (0.32*)`: the value, half its 95 % interval when given, the reference's and its mark."""
    low, high = interval
    half = (
        ""
        if now is None or low is None or high is None
        else f"±{_num((high - low) / 2, 2)}".replace("±0.", "±.")
    )
    return f"{_num(now, digits)}{half} ({_num(reference, digits)}{mark if reference is not None else ''})"


def _performance_lines(model: ModelReport, task: str, min_samples: int) -> list[str]:
    """Per version (all traffic): the latest window with enough labelled rows and a label coverage
    of at least its default rule's gate (early labels are a biased sample), against the reference,
    each value with half its 95 % interval: a classifier's precision, recall, AUROC and expected
    cost — the window by the coverage of its flagged rows, precision's, its labels marked while they
    cover less than `SETTLED_LABELS` of the reference's share (recall, AUROC and cost need the
    missed positives, which come last) —, a regression model's MAE, RMSE and MAPE."""
    regression = task == "regression"
    from triage.alerts.evaluate import labels_mature, labels_settled

    judged = "mae" if regression else "precision"  # the default rule whose label gate picks the window
    mature_coverage = REGRESSION_MIN_COVERAGE if regression else MATURE_COVERAGE
    shown = ("mae", "rmse", "mape") if regression else ("precision", "recall", "auroc", "expected_cost")
    of = "rows" if regression else "flagged rows"
    title = (
        f"Performance — latest window with ≥ {mature_coverage:.0%} of its {of} labelled,"
        " ±95 % interval (reference)"
    )
    rows = []
    borrowed: list[str] = []
    unlabelled: list[str] = []
    unsettled: list[str] = []
    zeros = False
    for version, mine, reference, mark in _per_version(model.performance, model.reference_performance):
        mature = [r for r in mine if r.enough_data and labels_mature(r, judged, mature_coverage, min_samples)]
        if not mature:
            unlabelled.append(version or "all")
            continue
        now = max(mature, key=lambda r: r.window_start)
        zeros |= regression and "labels of 0" in (now.note or "")
        borrowed += [str(version)] if mark else []
        settled = _reference_coverage(reference)
        arriving = not regression and not labels_settled(now.n_labeled, now.n, settled)
        if arriving:
            unsettled.append(f"{printable(version or 'all')} {_pct(settled)}")
        rows.append(
            [
                version or "all",
                time_text(now.window_start)[5:],
                _pct(now.label_coverage) + ("†" if arriving else ""),
                *(
                    _versus(
                        getattr(now, field),
                        _pooled_error(reference, field)
                        if regression
                        else _baseline("performance", field, reference),
                        3 if field == "mape" else 2,  # a MAPE of 0.066 → 0.074 is a 12 % rise
                        mark,
                        (getattr(now, f"{field}_ci_low"), getattr(now, f"{field}_ci_high")),
                    )
                    for field in shown
                ),
            ]
        )
    if not rows:
        return [title, "  no window has enough labelled rows yet"]
    named = ["MAE", "RMSE", "MAPE"] if regression else ["precision", "recall", "AUROC", "cost/pred"]
    headers = ["version", "window", "labels", *named]
    missing = [f"  {', '.join(map(printable, unlabelled))}: no such window yet"] if unlabelled else []
    if zeros:
        missing.append("  MAPE divides by machine epsilon where a label is 0, as scikit-learn does")
    missing += _unsettled_note(
        "†", unsettled, "missed positives come last: recall, AUROC and cost/pred read off until they settle"
    )
    return [title, *_table(headers, rows), *_borrowed_note(borrowed), *missing]


def _unsettled_note(lead: str, versions: Sequence[str], why: str) -> list[str]:
    """The footnote of the versions whose labels are still arriving (`SETTLED_LABELS`), if any."""
    if not versions:
        return []
    shown = ", ".join(versions)
    return [f"  {lead} labels on under {SETTLED_LABELS:.0%} of the reference's share: {shown}", f"    {why}"]


def _reference_coverage(rows: Sequence[CalibrationRow | PerformanceRow]) -> float | None:
    """The labelled share of the reference windows' rows, pooled."""
    total = sum(r.n for r in rows)
    return sum(r.n_labeled for r in rows) / total if total else None


def _cost_lines(model: ModelReport, costs: Costs) -> list[str]:
    """`costs.by_segment` values that no evaluated cell has: their costs apply to no row (a typo,
    or a value stored as other text: a DOUBLE column's 1 is "1.0"). Only when the view slices by
    the cost segment."""
    if costs.segment is None or costs.segment not in model.segments:
        return []
    seen = sorted({str(r.segment_value) for r in model.calibration if r.segment == costs.segment})
    unmatched = [c.value for c in costs.by_value if c.value not in seen]
    if not unmatched:
        return []
    shown = ", ".join(printable(repr(value)) for value in seen[:TOP_UNSEEN])
    shown += ", …" if len(seen) > TOP_UNSEEN else ""
    return [
        f"  costs.by_segment.{costs.segment}: no prediction has {', '.join(map(repr, unmatched))} "
        f"(its values: {shown}); those costs apply to no row"
    ]


def _operations_lines(model: ModelReport, latest: datetime) -> list[str]:
    cells = [r for r in model.operations if r.window_start == latest and r.segment is None]
    cells.sort(key=lambda r: (r.version is not None, r.version or "", r.route is not None, r.route or ""))
    rows = [_operations_row(r) for r in cells]
    headers = [
        "version",
        "route",
        "n",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "fallback",
        "cost/1k",
        "tokens",
    ]
    thin = (
        ["  - : not enough data in the cell (fewer than min_samples rows)"]
        if any(not r.enough_data for r in cells)
        else []
    )
    return [f"Operations — window {time_text(latest)}, all traffic", *_table(headers, rows), *thin]


def _operations_row(r: OperationsRow) -> list[str]:
    return [
        r.version or "all",
        r.route or "all",
        _count(r.n),
        _num(r.latency_p50_ms, 1),
        _num(r.latency_p95_ms, 1),
        _num(r.latency_p99_ms, 1),
        _pct(r.error_rate),
        _pct(r.fallback_rate),
        _num(r.cost_per_1k, 2),
        _num(r.tokens_per_request, 1),
    ]
