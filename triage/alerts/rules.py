"""Alert rules: the signals they may watch, the default set, validation and the effective rules.

A rule's `signal` is `table.field` of `triage check --json` (e.g. `drift.psi`); its `where` filters
the table's scope fields: `"*"` = each value (including the all-traffic / all-versions row),
`"!x"` = each value except x, `"x"` = exactly x, omitted = the all-traffic / all-versions row
(for `feature`, omitted = each feature). Giving `segment` alone means each of its values.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import timedelta
from functools import partial
from pathlib import Path

from triage.config import SCORE_FEATURE, AlertRule, Config, ConfigError, Mistakes, ModelConfig, Window
from triage.metrics.results import (
    KS_SHIFT,
    KS_SHIFT_CRIT,
    CalibrationRow,
    DataQualityRow,
    DriftRow,
    FeedRow,
    OperationsRow,
    PerformanceRow,
    Row,
)

TABLES: dict[str, type[Row]] = {
    "drift": DriftRow,
    "data_quality": DataQualityRow,
    "calibration": CalibrationRow,
    "performance": PerformanceRow,
    "operations": OperationsRow,
    "feed": FeedRow,
}

# The fields that name a cell besides its window; an alert's scope is their non-null values.
SCOPE_FIELDS: dict[str, tuple[str, ...]] = {
    "drift": ("feature", "version", "segment", "segment_value"),
    "data_quality": ("feature", "version", "segment", "segment_value"),
    "calibration": ("version", "segment", "segment_value"),
    "performance": ("version", "segment", "segment_value"),
    "operations": ("version", "route", "segment", "segment_value"),
    "feed": ("version", "segment", "segment_value"),  # the model (all traffic), then each slice; all versions
}
# Filters that narrow a rule without being part of the scope.
EXTRA_FILTERS: dict[str, tuple[str, ...]] = {"drift": ("kind",), "data_quality": ("kind",)}
# Scope fields with no aggregate row: an omitted filter means each value.
EACH_WHEN_OMITTED = frozenset({"feature"})

P_VALUE_FIELDS = frozenset({"ks_p", "chi2_p"})
DRIFT_STATISTICS = frozenset(
    {"psi", "js", "ks_d", "chi2", "wasserstein", "wasserstein_norm", "ks_d_psi_blind"}
)
# Shares of the cell's `n` rows: tested against their baseline's rows with Fisher's exact test.
RATE_FIELDS = frozenset(
    {
        "decision_rate",
        "error_rate",
        "fallback_rate",
        "missing_rate",
        "missing_rate_change",
        "unseen_share",
        "out_of_range_share",
        "label_coverage",
    }
)
# Proportions whose 95 % interval is Wilson's (DESIGN §4, `triage.metrics.intervals.wilson`): the
# trials behind each are recovered from the interval, so they are tested exactly like rates.
WILSON_FIELDS = frozenset({"precision", "recall", "fpr", "fnr", "accuracy"})
# Calibration errors tested bin by bin from the cell's reliability diagram (10 equal-width bins)
# against the reference's per-bin calibration: a chi-square that knows how noisy a small cell is.
RELIABILITY_FIELDS = frozenset({"ece"})
# A regression model's performance fields; the classifier's performance signals it never has.
REGRESSION_FIELDS = frozenset({"mae", "rmse", "mape"})
CLASSIFIER_SIGNALS = frozenset(
    ("performance", name)
    for name in (
        "precision",
        "recall",
        "f1",
        "fpr",
        "fnr",
        "accuracy",
        "auroc",
        "average_precision",
        "expected_cost",
    )
)
# Signals where a higher value is better; everything else alerts when it rises.
HIGHER_IS_BETTER = frozenset(
    {"precision", "recall", "f1", "accuracy", "auroc", "average_precision", "label_coverage"}
)
# Signals computed on labelled rows only: `min_samples` counts `n_labeled`, coverage is gated.
UNLABELLED = frozenset({"n", "n_labeled", "decision_rate", "label_coverage"})
LABELLED_TABLES = frozenset({"calibration", "performance"})
# The effect-size floor of a p-value signal when the rule names none (DESIGN §4 conventions).
DEFAULT_EFFECT = {"ks_p": ("wasserstein_norm", 0.1), "chi2_p": ("psi", 0.1)}
DEFAULT_Q = 0.05
# The default precision rule's label-coverage gate, on the rows decided positive (precision's
# denominator, `evaluate.label_share`): flagged requests are reviewed within hours while the rest wait
# days for chargebacks, so a window's coverage of all its rows says nothing of precision's.
PRECISION_MIN_COVERAGE = 0.5
# The default MAE rule's: the first labels may be the cases someone looked at first.
REGRESSION_MIN_COVERAGE = 0.5
# The default ECE rule's: calibration needs a representative set, not the reviewed (flagged) requests.
CALIBRATION_MIN_COVERAGE = 0.5
# Labels are settled once they cover this share of the reference's coverage of the same scope. Until
# then a window's labelled rows are the classes that arrive first (a fraud team's chargebacks within
# days, "no dispute" after a month): every calibration statistic is judged on settled labels only,
# the reference's being complete (`_Judge.settled_coverage`). 0.8, not more: a label source that
# levels off at 85 % of the reference's must still be judged (audit 20's world was quiet from 0.8).
SETTLED_LABELS = 0.8

# The feed's silence is judged against fixed thresholds: `stale_after` warns, this many times it is critical.
FEED_SIGNAL = "feed.silence_s"
# A slice's: how much longer its model went on without it than the slice went without 20 predictions
# in those hours before (`FeedRow.unusual_s`).
SLICE_FEED_SIGNAL = "feed.unusual_s"
DURATION_SIGNALS = frozenset({FEED_SIGNAL, "feed.behind_s", SLICE_FEED_SIGNAL, "feed.usual_gap_s"})
# The last hour's predictions against the same hour of the 7 days before (`FeedRow.volume_ratio`).
VOLUME_SIGNAL = "feed.volume_ratio"
STALE_CRITICAL = 4

_BAND_RE = re.compile(r"^(\d+(?:\.\d+)?)sigma$")
_PREVIOUS_RE = re.compile(r"^previous:(\d+)(h|d|w)$")


def numeric_fields(table: str) -> tuple[str, ...]:
    """The fields of a result table a rule may use as its signal or effect."""
    return tuple(
        f.name
        for f in dataclasses.fields(TABLES[table])
        if str(f.type) in ("int", "float | None", "int | None", "float")
    )


def duration_text(seconds: float) -> str:
    """Seconds in the largest unit they fill, one decimal: `45s`, `12.5m`, `7.8h`, `325.6d` (an
    alert's value or threshold, beside others in a column)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def elapsed_text(seconds: float) -> str:
    """Seconds in their two largest units, for people: `3d 4h`, `2h 10m`, `45s`, `-1h 5m`."""
    total = round(seconds)
    sign, total = ("-" if total < 0 else ""), abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs}s"


def value_text(signal: str, value: float | None, missing: str = "-") -> str:
    """A signal's value (or threshold) as people read it: a silence as a duration, else 4 digits."""
    if value is None:
        return missing
    return duration_text(value) if signal in DURATION_SIGNALS else f"{value:.4g}"


def split_signal(signal: str) -> tuple[str, str]:
    """`drift.psi` → ("drift", "psi")."""
    table, _, name = signal.partition(".")
    return table, name


def is_p_value(rule: AlertRule) -> bool:
    """Whether the rule's signal is a p-value (thresholded by Benjamini–Hochberg at `q`)."""
    return split_signal(rule.signal)[1] in P_VALUE_FIELDS


def is_labelled(rule: AlertRule) -> bool:
    """Whether the signal is computed on labelled rows only."""
    return labelled_signal(*split_signal(rule.signal))


def labelled_signal(table: str, name: str) -> bool:
    """Whether `table.name` is computed on labelled rows only."""
    return table in LABELLED_TABLES and name not in UNLABELLED


def has_interval(table: str, name: str) -> bool:
    """Whether rows of `table` carry a 95 % interval for `name` (`name_ci_low`/`name_ci_high`)."""
    fields = {f.name for f in dataclasses.fields(TABLES[table])}
    return f"{name}_ci_low" in fields and f"{name}_ci_high" in fields


def testable(table: str, name: str) -> bool:
    """Whether a significance gate (`q`) can be computed for this signal."""
    return (
        name in P_VALUE_FIELDS
        or (table == "drift" and name in DRIFT_STATISTICS)
        or name in RATE_FIELDS
        or (table == "calibration" and name in RELIABILITY_FIELDS)
        or has_interval(table, name)
    )


def direction(rule: AlertRule) -> str:
    """ "above", "below" or "both": given, else the sign of a relative change, else by signal."""
    if rule.direction is not None:
        return rule.direction
    changes = [c for c in (rule.warn_change, rule.critical_change) if c is not None]
    if changes:
        return "below" if changes[0] < 0 else "above"
    name = split_signal(rule.signal)[1]
    return "below" if name in HIGHER_IS_BETTER or name in P_VALUE_FIELDS else "above"


def significance_q(rule: AlertRule) -> float | None:
    """The false discovery rate of the rule's significance gate; None = no gate."""
    if rule.q is not None:
        return rule.q
    return DEFAULT_Q if is_p_value(rule) else None


def effect_floor(rule: AlertRule) -> tuple[str, float] | None:
    """(field, floor) the cell's effect size must reach; p-value signals always have one."""
    name = split_signal(rule.signal)[1]
    default = DEFAULT_EFFECT.get(name)
    field_name = rule.effect or (default[0] if default else name)
    if rule.min_effect is not None:
        return field_name, rule.min_effect
    if default is not None:
        return field_name, default[1]
    return None


def band_sigmas(band: str) -> float:
    """`"3sigma"` → 3.0."""
    match = _BAND_RE.match(band)
    if not match:
        raise ValueError(band)
    return float(match.group(1))


def previous_span(baseline: str) -> timedelta | None:
    """`"previous:30d"` → 30 days; None for `"reference"`."""
    match = _PREVIOUS_RE.match(baseline)
    if not match:
        return None
    unit = {"h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def default_rules(model: ModelConfig) -> tuple[AlertRule, ...]:
    """The rules that apply when a model has no `[[model.alert]]`: only for the signals it logs.

    With windows of a day or shorter, each rule that compares a window with the reference also
    needs the cell outside the band of the reference windows in its phase (at its time of day; on
    weekends or on weekdays like it): night traffic that differs from the day's every night, or
    weekend traffic from the week's every weekend, is the reference's own pattern, not drift. With
    one-day windows only the distribution rules (drift, missing values, unseen categories) and
    latency p95 and cost per 1k (an operations band: `evaluate._Judge.within_band`) take the
    weekday or weekend band: a band from a week's reference has five weekdays (about ±7σ),
    widened again for a cell smaller than the reference's days — a canary's decision rate on 5 %
    of the traffic by √20, where the generated canary's collapse then never fired — and a day's
    precision or ECE rests on a few hundred labels (a concept drift waited five days).
    """
    each_slice = {"segment": "*"}
    per_version = {"version": "*", "segment": "*"}
    weekly = "3sigma" if model.window.at_most_a_day else None  # the distribution rules'
    cycle = "3sigma" if model.window.under_a_day else None
    rules = [
        AlertRule(
            name="feature-drift",
            signal="drift.psi",
            outside_band=weekly,
            where={"feature": f"!{SCORE_FEATURE}", **each_slice},
            warn=0.1,
            critical=0.25,
            q=DEFAULT_Q,
        ),
        # PSI's bins are the reference's deciles: where every decile is one value (a yes/no flag
        # logged as 0/1, a count that is mostly 0) a move up from it stays in one bin, PSI 0. KS
        # D sees it: judged in those cells only (`ks_d_psi_blind`), where feature-drift cannot.
        AlertRule(
            name="feature-shift",
            signal="drift.ks_d_psi_blind",
            outside_band=weekly,
            where={"feature": f"!{SCORE_FEATURE}", **each_slice},
            warn=KS_SHIFT,
            critical=KS_SHIFT_CRIT,
            q=DEFAULT_Q,
        ),
        AlertRule(
            name="score-drift",
            signal="drift.js",
            outside_band=weekly,
            where={"feature": SCORE_FEATURE, **per_version},
            warn=0.1,
            critical=0.2,
            q=DEFAULT_Q,
        ),
        AlertRule(
            name="missing-rate",
            signal="data_quality.missing_rate_change",
            outside_band=weekly,
            where={"feature": "*", **each_slice},
            warn=0.05,
            critical=0.2,
            q=DEFAULT_Q,
        ),
        AlertRule(
            name="unseen-categories",
            signal="data_quality.unseen_share",
            outside_band=weekly,
            where={"feature": "*", **each_slice},
            warn=0.02,
            critical=0.1,
            # Beyond what the reference's own rare categories predict (Good–Turing), BH across the grid.
            q=DEFAULT_Q,
        ),
    ]
    if model.task == "regression":
        rules += _regression_rules(model, cycle, per_version)
    else:
        rules.append(
            AlertRule(
                name="decision-rate",
                signal="calibration.decision_rate",
                outside_band=cycle,
                where=per_version,
                direction="both",
                baseline="reference",
                warn_change=0.25,
                critical_change=0.5,
                q=DEFAULT_Q,
            )
        )
    if model.labels is not None and model.task != "regression":
        rules += [
            AlertRule(
                name="calibration-ece",
                signal="calibration.ece",
                outside_band=cycle,
                where=per_version,
                band="3sigma",
                critical=0.15,
                min_effect=0.05,
                # A small labelled cell has a large ECE by chance (≈ Σ_b (n_b/n)·√(2·p_b(1−p_b)/(π·n_b))):
                # the cell must also differ from the reference's reliability diagram, bin by bin,
                # beyond sampling noise (chi-square, BH across the grid).
                q=DEFAULT_Q,
                min_label_coverage=CALIBRATION_MIN_COVERAGE,
            ),
            # Flagged requests are labelled first (review), so precision is usable early; recall
            # also needs the missed positives, which arrive late (chargebacks): it waits for
            # nearly mature labels, or the not-yet-labelled misses read as a recall change.
            AlertRule(
                name="precision-drop",
                signal="performance.precision",
                outside_band=cycle,
                where=per_version,
                baseline="reference",
                warn_change=-0.1,
                critical_change=-0.2,
                q=DEFAULT_Q,
                min_label_coverage=PRECISION_MIN_COVERAGE,
            ),
            AlertRule(
                name="recall-drop",
                signal="performance.recall",
                outside_band=cycle,
                where=per_version,
                baseline="reference",
                warn_change=-0.1,
                critical_change=-0.2,
                q=DEFAULT_Q,
                min_label_coverage=0.6,
            ),
        ]
    columns = model.columns
    per_route = {"version": "*", "route": "*"} if columns.route else {"version": "*"}
    if columns.latency_ms:
        rules.append(
            AlertRule(
                name="latency-p95",
                signal="operations.latency_p95_ms",
                outside_band=weekly,
                where=per_route,
                baseline="reference",
                warn_change=0.5,
                critical_change=1.0,
                # A small cell's p95 is one of its few slowest requests (a 200-request canary's,
                # its tenth-largest): the z-test of its interval, as cost-per-1k's.
                q=DEFAULT_Q,
            )
        )
    if columns.error:
        rules.append(
            AlertRule(
                name="error-rate",
                signal="operations.error_rate",
                where=per_route,
                warn=0.02,
                critical=0.05,
                q=DEFAULT_Q,
            )
        )
    if columns.fallback:
        rules.append(
            AlertRule(
                name="fallback-rate",
                signal="operations.fallback_rate",
                outside_band=cycle,
                where=per_route,
                baseline="reference",
                warn_change=1.0,
                critical_change=3.0,
                q=DEFAULT_Q,
                min_effect=0.01,
            )
        )
    if columns.cost:
        rules.append(
            AlertRule(
                name="cost-per-1k",
                signal="operations.cost_per_1k",
                outside_band=weekly,
                # Per route too: an LLM route's bill can triple while the others hide it in the mean.
                where=per_route,
                baseline="reference",
                warn_change=0.25,
                critical_change=0.5,
                # A mean of a few hundred requests' costs, some of them LLM calls, moves by chance
                # (a 12 % canary's day swung ±25 % in a quiet world): the z-test of its interval.
                q=DEFAULT_Q,
            )
        )
    # With `volume_alerts`: the model's or a slice's traffic halved (a client sends half its
    # requests) or doubled (a retry storm, a bot, a campaign: the bill) against every one of the 7
    # days before at that hour.
    if model.volume_alerts:
        rules += [
            AlertRule(
                name="volume-drop",
                signal=VOLUME_SIGNAL,
                where={"segment": "*"},
                direction="below",
                warn=0.5,
                critical=0.25,
            ),
            AlertRule(
                name="volume-spike",
                signal=VOLUME_SIGNAL,
                where={"segment": "*"},
                direction="above",
                warn=2.0,
                critical=4.0,
            ),
        ]
    if model.stale_after is not None:
        # No prediction for `stale_after`: the feed, or the ingest of its logs, stopped.
        seconds = model.stale_after.total_seconds()
        rules.append(
            AlertRule(name="feed-stale", signal=FEED_SIGNAL, warn=seconds, critical=STALE_CRITICAL * seconds)
        )
        if model.segments:
            # One slice's traffic stopped while the rest flows (a region, a client version), for
            # longer than it went without 20 predictions in those hours before (`FeedRow.unusual_s`).
            rules.append(
                AlertRule(
                    name="slice-feed-stale",
                    signal=SLICE_FEED_SIGNAL,
                    where={"segment": "*"},
                    warn=seconds,
                    critical=STALE_CRITICAL * seconds,
                )
            )
    return tuple(rules)


def _regression_rules(model: ModelConfig, cycle: str | None, per_version: dict[str, str]) -> list[AlertRule]:
    """A regression model's default rule, with labels: its mean absolute error rising against the
    reference's beyond sampling noise (a z-test from both intervals, BH across the grid)."""
    if model.labels is None:
        return []
    return [
        AlertRule(
            name="mae-rise",
            signal="performance.mae",
            outside_band=cycle,
            where=per_version,
            baseline="reference",
            warn_change=0.25,
            critical_change=0.5,
            q=DEFAULT_Q,
            min_label_coverage=REGRESSION_MIN_COVERAGE,
        )
    ]


def effective_rules(model: ModelConfig, window: Window | None = None) -> tuple[AlertRule, ...]:
    """The configured rules, or the default set when the model has no `[[model.alert]]` at all —
    for windows of `window` when a view judges another size than the model's (`check --window`):
    the default rules' bands follow the windows they judge (a week holds whole cycles; the band of
    a handful of reference weeks, widened for a canary, would hold its decision rate's collapse)."""
    if model.alerts_configured:
        return model.alerts
    return default_rules(model if window is None else dataclasses.replace(model, window=window))


def check_rule(rule: AlertRule) -> tuple[str, str] | None:
    """The first semantic mistake in a rule as (key, what was expected), or None."""
    table, name = split_signal(rule.signal)
    if table not in TABLES:
        return "signal", f"expected a table of {', '.join(TABLES)}, got {table!r}"
    fields = numeric_fields(table)
    if name not in fields:
        return "signal", f"{table} has no numeric field {name!r} (expected one of: {', '.join(fields)})"
    filters = SCOPE_FIELDS[table] + EXTRA_FILTERS.get(table, ())
    for key in rule.where:
        if key not in filters:
            return f"where.{key}", f"{table} rows can be filtered by {', '.join(filters)}"
    if rule.q is not None and not testable(table, name):
        return "q", (
            "significance applies to p-values, drift statistics, rates and metrics with "
            f"confidence intervals; {rule.signal} is none of them"
        )
    if rule.effect is not None and rule.effect not in fields:
        return "effect", f"{table} has no numeric field {rule.effect!r}"
    if rule.effect is not None and rule.min_effect is None and name not in DEFAULT_EFFECT:
        return "min_effect", "missing; `effect` needs the floor its value must reach"
    if is_p_value(rule):
        fixed = {
            "warn": rule.warn,
            "critical": rule.critical,
            "baseline": rule.baseline,
            "band": rule.band,
            "outside_band": rule.outside_band,
        }
        for key, value in fixed.items():
            if value is not None:
                return key, "a p-value signal is thresholded by q and an effect-size floor"
    inverted = _inverted(rule)
    if inverted is not None:
        return inverted
    if rule.min_label_coverage is not None and not is_labelled(rule):
        return "min_label_coverage", f"{rule.signal} is not computed from labels"
    if table == "feed":
        if "version" in rule.where:
            return "where.version", f"{rule.signal} rows are all versions: filter by segment only"
        relative = {"baseline": rule.baseline, "band": rule.band, "outside_band": rule.outside_band}
        for key, value in relative.items():
            if value is not None:
                return key, f"{rule.signal} has no reference to compare with: give warn, critical (seconds)"
    return None


def _inverted(rule: AlertRule) -> tuple[str, str] | None:
    """A critical threshold a crossing reaches before its warning one (every crossing would be
    critical) as (key, what was expected), or None. Relative changes count by their size."""
    side = direction(rule)
    warn, critical = rule.warn, rule.critical
    if warn is not None and critical is not None:
        expected = {
            "above": (critical >= warn, f">= warn ({warn:g}): the rule alerts above its thresholds"),
            "below": (critical <= warn, f"<= warn ({warn:g}): the rule alerts below its thresholds"),
            "both": (
                abs(critical) >= abs(warn),
                f"as large as warn ({warn:g}) in size: the rule alerts beyond its thresholds either way",
            ),
        }
        ordered, wanted = expected[side]
        if not ordered:
            return "critical", f"expected a value {wanted} (direction {side}), got {critical:g}"
    warn_change, critical_change = rule.warn_change, rule.critical_change
    if warn_change is not None and critical_change is not None and abs(critical_change) < abs(warn_change):
        return "critical_change", (
            f"expected a change as large as warn_change ({warn_change:g}) in size, got {critical_change:g}"
        )
    return None


def validate_rules(config: Config) -> None:
    """Raise ConfigError (file, key, expected) for the rules that cannot be evaluated: each one's
    first mistake (ConfigErrors for several)."""
    mistakes = Mistakes()
    for m, model in enumerate(config.models):
        mistakes.part(partial(validate_rule_list, config.path, f"model[{m}]", model.alerts, model))
        if model.stale_after is not None and model.alerts_configured:
            signals = f"a {FEED_SIGNAL} rule"
            if model.segments:
                signals = f"{FEED_SIGNAL} and {SLICE_FEED_SIGNAL} rules"
            mistakes.add(
                ConfigError(
                    config.path,
                    f"model[{m}].stale_after",
                    f"adds to the default rules; with [[model.alert]] tables write {signals} instead "
                    "(`triage alerts rules` without them prints the defaults)",
                )
            )
    mistakes.raise_any()


def validate_rule_list(path: Path, model_key: str, rules: Sequence[AlertRule], model: ModelConfig) -> None:
    """Raise ConfigError for `model`'s rules (at `model_key` in `path`) that cannot run: each
    one's first mistake."""
    mistakes = Mistakes()
    seen: set[str] = set()
    for a, rule in enumerate(rules):
        prefix = f"{model_key}.alert[{a}]"
        if rule.name in seen:
            mistakes.add(ConfigError(path, f"{prefix}.name", f"duplicate rule name {rule.name!r}"))
            continue
        seen.add(rule.name)
        mistake = check_rule(rule) or _task_mistake(rule, model.task) or _scope_mistake(rule, model)
        if mistake is not None:
            mistakes.add(ConfigError(path, f"{prefix}.{mistake[0]}", mistake[1]))
    mistakes.raise_any()


def _task_mistake(rule: AlertRule, task: str) -> tuple[str, str] | None:
    """A signal the model's task never computes: a classifier's for a regression model, or the reverse."""
    table, name = split_signal(rule.signal)
    name = name.removesuffix("_ci_low").removesuffix("_ci_high")
    if task == "regression" and (table == "calibration" or (table, name) in CLASSIFIER_SIGNALS):
        return (
            "signal",
            f'{rule.signal} is a classifier\'s; a regression model has none (task = "regression")',
        )
    if task != "regression" and table == "performance" and name in REGRESSION_FIELDS:
        return "signal", f"{rule.signal} is a regression model's; this model is a binary classifier"
    return None


def _scope_mistake(rule: AlertRule, model: ModelConfig) -> tuple[str, str] | None:
    """A `where` naming a feature or segment column the model does not have: the rule would judge
    no cell and, as configured rules replace the defaults, leave those signals unwatched. Features
    inferred from the logs are checked against them (`triage config check`)."""
    known = {"segment": ("a segment column", model.segments)}
    if not model.features_inferred:
        known["feature"] = ("a feature", (*model.numeric, *model.categorical, SCORE_FEATURE))
    for key, (what, names) in known.items():
        named = rule.named(key)
        if named is not None and named not in names:
            listed = ", ".join(names) if names else "the model has none"
            return f"where.{key}", f'expected "*", {what} or "!" and one ({listed}), got {rule.where[key]!r}'
    # Inferred features are the logs' other columns: a mapped or segment column is none of them.
    others = {*model.columns.mapped(tuple(f.name for f in fields(model.columns))).values(), *model.segments}
    named = rule.named("feature")
    if model.features_inferred and named in others:
        return "where.feature", (
            f"expected a feature (inferred: a column of the logs other than the mapped ones and the "
            f"segments), got {rule.where['feature']!r}, which is mapped or a segment"
        )
    return None


def _toml(value: object) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + " }"
    return json.dumps(value, ensure_ascii=False)


def render_rules(model: ModelConfig) -> str:
    """The effective rules of a model as `[[model.alert]]` TOML, with the inferred settings noted."""
    rules = effective_rules(model)
    origin = "as configured" if model.alerts_configured else "the defaults (no [[model.alert]] in the config)"
    lines = [f"# model {model.name}: {len(rules)} rule(s), {origin}"]
    for rule in rules:
        lines += ["", "[[model.alert]]"]
        for f in dataclasses.fields(AlertRule):
            value = getattr(rule, f.name)
            if value is None or (f.name == "where" and not value) or (f.name == "for_windows" and value == 1):
                continue
            lines.append(f"{f.name} = {_toml(value)}")
        inferred = {
            "direction": None if rule.direction else direction(rule),
            "q": None if rule.q is not None else significance_q(rule),
            "min_samples": None if rule.min_samples else model.min_samples,
        }
        floor = effect_floor(rule)
        if floor and rule.min_effect is None:
            inferred["effect"], inferred["min_effect"] = floor
        for key, value in inferred.items():
            if value is not None:
                lines.append(f"# {key} = {_toml(value)}  (inferred)")
    return "\n".join(lines) + "\n"
