"""Alert rules: the default set, semantic validation naming file and key, and the printed rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.alerts.rules import (
    check_rule,
    default_rules,
    direction,
    effect_floor,
    effective_rules,
    elapsed_text,
    render_rules,
    significance_q,
    validate_rules,
)
from triage.config import AlertRule, ConfigError, parse_config

PATH = Path("/etc/triage/triage.toml")

MODEL = """
[[model]]
name = "fraud"
predictions = "logs/*.parquet"
{extra}

[model.columns]
id = "request_id"
timestamp = "ts"
score = "score"
{columns}

[model.reference]
end = "2026-01-01"
"""


def config(alerts: str = "", extra: str = "", columns: str = ""):
    return parse_config(MODEL.format(extra=extra, columns=columns) + alerts, PATH)


FULL = (
    'labels = "labels/*.jsonl"',
    'label = "is_fraud"\nlatency_ms = "lat"\nerror = "err"\nfallback = "fb"\ncost = "usd"\nroute = "route"',
)


def test_defaults_follow_the_logged_signals():
    bare = config().models[0]
    assert not bare.alerts_configured
    names = [
        "feature-drift",
        "feature-shift",
        "score-drift",
        "missing-rate",
        "unseen-categories",
        "decision-rate",
    ]
    assert [rule.name for rule in effective_rules(bare)] == names
    # Volume rules are opt-in (`volume_alerts`): steady, on-time traffic only.
    volume = ["volume-drop", "volume-spike"]
    opted = config(extra="volume_alerts = true").models[0]
    assert [rule.name for rule in effective_rules(opted)] == [*names, *volume]
    full = config(extra=FULL[0], columns=FULL[1]).models[0]
    assert [rule.name for rule in effective_rules(full)] == [
        *names,
        "calibration-ece",
        "precision-drop",
        "recall-drop",
        "latency-p95",
        "error-rate",
        "fallback-rate",
        "cost-per-1k",
    ]
    for rule in effective_rules(full):
        assert check_rule(rule) is None, rule.name
    routes = {rule.name: rule.where for rule in effective_rules(full)}
    assert routes["latency-p95"] == routes["cost-per-1k"] == {"version": "*", "route": "*"}


def test_configured_rules_replace_the_defaults_and_an_empty_list_means_none():
    one = config('[[model.alert]]\nname = "psi"\nsignal = "drift.psi"\nwarn = 0.2\n').models[0]
    assert [rule.name for rule in effective_rules(one)] == ["psi"]
    none = parse_config(MODEL.format(extra="alert = []", columns=""), PATH).models[0]
    assert none.alerts_configured and effective_rules(none) == ()


def test_rendered_rules_parse_back_to_the_same_rules():
    model = config(extra=FULL[0], columns=FULL[1]).models[0]
    text = render_rules(model)
    assert text.startswith("# model fraud: 13 rule(s), the defaults")
    assert '# direction = "below"  (inferred)' in text
    reparsed = config(text, extra=FULL[0], columns=FULL[1]).models[0]
    assert reparsed.alerts == default_rules(model)
    # Hourly windows: every rule that compares with the reference is gated by its time of day's band.
    hourly = config(extra=f'{FULL[0]}\nwindow = "1h"', columns=FULL[1]).models[0]
    text = render_rules(hourly)
    assert text.count('outside_band = "3sigma"') == 12  # all but error-rate's fixed share
    assert config(text, extra=f'{FULL[0]}\nwindow = "1h"', columns=FULL[1]).models[0].alerts == default_rules(
        hourly
    )


def test_inferred_settings():
    psi = AlertRule(name="a", signal="drift.psi", warn=0.1)
    assert direction(psi) == "above"
    assert direction(AlertRule(name="a", signal="performance.auroc", warn=0.7)) == "below"
    assert (
        direction(
            AlertRule(name="a", signal="operations.cost_per_1k", baseline="reference", warn_change=-0.3)
        )
        == "below"
    )
    ks = AlertRule(name="a", signal="drift.ks_p")
    assert direction(ks) == "below"
    assert significance_q(ks) == 0.05 and significance_q(psi) is None
    assert effect_floor(ks) == ("wasserstein_norm", 0.1)
    assert effect_floor(AlertRule(name="a", signal="drift.chi2_p", effect="js", min_effect=0.2)) == (
        "js",
        0.2,
    )
    assert effect_floor(AlertRule(name="a", signal="calibration.ece", warn=0.1, min_effect=0.05)) == (
        "ece",
        0.05,
    )


@pytest.mark.parametrize(
    ("rule", "key", "message"),
    [
        ('signal = "latency.p95"\nwarn = 1', "signal", "expected a table of drift"),
        ('signal = "drift.psx"\nwarn = 1', "signal", "drift has no numeric field 'psx'"),
        (
            'signal = "drift.psi"\nwarn = 1\nwhere = { route = "*" }',
            "where.route",
            "drift rows can be filtered by",
        ),
        ('signal = "operations.latency_p99_ms"\nwarn = 1\nq = 0.05', "q", "significance applies to"),
        (
            'signal = "drift.psi"\nwarn = 1\neffect = "nope"\nmin_effect = 1',
            "effect",
            "no numeric field 'nope'",
        ),
        ('signal = "drift.psi"\nwarn = 1\neffect = "js"', "min_effect", "missing"),
        ('signal = "drift.ks_p"\nwarn = 0.01', "warn", "a p-value signal is thresholded by q"),
        ('signal = "drift.ks_p"\noutside_band = "3sigma"', "outside_band", "a p-value signal is thresholded"),
        (
            'signal = "drift.psi"\nwarn = 1\nmin_label_coverage = 0.5',
            "min_label_coverage",
            "not computed from labels",
        ),
        ('signal = "feed.silence_s"\nwarn = 60\nwhere = { version = "*" }', "where.version", "all versions"),
        ('signal = "feed.silence_s"\nbaseline = "reference"\nwarn_change = 1', "baseline", "no reference"),
        ('signal = "feed.silence_s"\nwarn = 60\noutside_band = "3sigma"', "outside_band", "give warn"),
    ],
)
def test_semantic_mistakes_name_file_and_key(rule, key, message):
    good = '[[model.alert]]\nname = "ok"\nsignal = "drift.psi"\nwarn = 1\n'
    parsed = config(f'{good}\n[[model.alert]]\nname = "bad"\n{rule}\n')
    with pytest.raises(ConfigError) as caught:
        validate_rules(parsed)
    assert caught.value.file == str(PATH)
    assert caught.value.key == f"model[0].alert[1].{key}"
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "key", "message"),
    [
        (
            'signal = "drift.psi"\nwarn = 0.5\ncritical = 0.1',
            "critical",
            "expected a value >= warn (0.5): the rule alerts above its thresholds (direction above), got 0.1",
        ),
        (
            'signal = "performance.auroc"\nwarn = 0.6\ncritical = 0.7',
            "critical",
            "expected a value <= warn (0.6): the rule alerts below its thresholds (direction below), got 0.7",
        ),
        (
            'signal = "drift.psi"\ndirection = "below"\nwarn = 0.1\ncritical = 0.5',
            "critical",
            "<= warn (0.1)",
        ),
        ('signal = "drift.psi"\ndirection = "both"\nwarn = -0.5\ncritical = 0.2', "critical", "in size"),
        (
            'signal = "performance.precision"\nbaseline = "reference"\nwarn_change = -0.2\n'
            "critical_change = -0.1",
            "critical_change",
            "expected a change as large as warn_change (-0.2) in size, got -0.1",
        ),
    ],
)
def test_inverted_thresholds_are_refused(rule, key, message):
    """A critical threshold inside the warning one would make every crossing critical."""
    with pytest.raises(ConfigError) as caught:
        validate_rules(config(f'[[model.alert]]\nname = "inverted"\n{rule}\n'))
    assert caught.value.key == f"model[0].alert[0].{key}"
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "rule",
    [
        'signal = "drift.psi"\nwarn = 0.1\ncritical = 0.1',
        'signal = "performance.auroc"\nwarn = 0.7\ncritical = 0.6',
        'signal = "drift.psi"\ndirection = "both"\nwarn = 0.2\ncritical = -0.5',
        'signal = "performance.precision"\nbaseline = "reference"\nwarn_change = -0.1\n'
        "critical_change = -0.2",
    ],
)
def test_ordered_thresholds_pass(rule):
    validate_rules(config(f'[[model.alert]]\nname = "ordered"\n{rule}\n'))


SLICED = (
    '[model.features]\nnumeric = ["amount"]\ncategorical = ["payment_type"]\n\n'
    '[model.segments]\ncolumns = ["country"]'
)


@pytest.mark.parametrize(
    ("where", "key", "message"),
    [
        (
            'feature = "amout"',
            "where.feature",
            'expected "*", a feature or "!" and one (amount, payment_type, __score__), got \'amout\'',
        ),
        ('feature = "!amout"', "where.feature", "got '!amout'"),
        (
            'feature = "*", segment = "contry"',
            "where.segment",
            'expected "*", a segment column or "!" and one (country), got \'contry\'',
        ),
        ('segment = "!contry"', "where.segment", "(country), got '!contry'"),
    ],
)
def test_a_scope_naming_a_column_the_model_lacks(where, key, message):
    """Configured rules replace the defaults: a misspelt scope would leave the model unwatched."""
    rule = f'[[model.alert]]\nname = "typo"\nsignal = "drift.psi"\nwarn = 0.1\nwhere = {{ {where} }}\n'
    with pytest.raises(ConfigError) as caught:
        validate_rules(config(rule, extra=SLICED))
    assert caught.value.key == f"model[0].alert[0].{key}"
    assert message in str(caught.value)


def test_a_scope_naming_the_models_columns_or_the_score():
    for where in ('feature = "amount"', 'feature = "!__score__"', 'segment = "country"', 'segment = "*"'):
        rule = f'[[model.alert]]\nname = "ok"\nsignal = "drift.psi"\nwarn = 0.1\nwhere = {{ {where} }}\n'
        validate_rules(config(rule, extra=SLICED))
    # Without [model.segments] no segment can be named; inferred features are checked against the logs.
    rule = '[[model.alert]]\nname = "a"\nsignal = "drift.psi"\nwarn = 0.1\nwhere = { segment = "country" }\n'
    with pytest.raises(ConfigError, match=r"where\.segment: .*\(the model has none\), got 'country'"):
        validate_rules(config(rule))
    validate_rules(config(rule.replace("segment", "feature")))


def test_duplicate_rule_names():
    rule = '[[model.alert]]\nname = "same"\nsignal = "drift.psi"\nwarn = 1\n'
    with pytest.raises(ConfigError, match=r"model\[0\]\.alert\[1\]\.name: duplicate rule name 'same'"):
        validate_rules(config(rule + "\n" + rule))


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("q = 1.5", "q", "expected a false discovery rate in (0, 1)"),
        ('effect = "PSI!"', "effect", "expected a field of the signal's table"),
        ("min_effect = -1", "min_effect", "expected a number >= 0"),
        ('direction = "sideways"', "direction", 'expected "above", "below" or "both"'),
        ('outside_band = "3 sigma"', "outside_band", 'expected a band like "3sigma"'),
        ('baseline = "previous"', "baseline", 'expected "reference" or "previous:30d"'),
        # Beyond the calendar (it ended in an OverflowError traceback).
        ('baseline = "previous:9999999999w"', "baseline", "(a span up to ten years)"),
        (
            'baseline = "previous:0d"',
            "baseline",
            "(a span up to ten years), got 'previous:0d'",
        ),  # judged nothing
        ('baseline = "previous:\uff13d"', "baseline", 'expected "reference" or "previous:30d"'),
        ('baseline = "previous:3d\\n"', "baseline", 'expected "reference" or "previous:30d"'),
    ],
)
def test_new_keys_are_checked_by_the_config_parser(line, key, message):
    with pytest.raises(ConfigError) as caught:
        config(f'[[model.alert]]\nname = "a"\nsignal = "drift.psi"\nwarn = 0.1\n{line}\n')
    assert caught.value.key == f"model[0].alert[0].{key}"
    assert message in str(caught.value)


def test_a_p_value_rule_needs_no_other_threshold():
    model = config('[[model.alert]]\nname = "ks"\nsignal = "drift.ks_p"\nq = 0.01\n').models[0]
    assert model.alerts[0].q == 0.01
    validate_rules(config('[[model.alert]]\nname = "ks"\nsignal = "drift.ks_p"\nq = 0.01\n'))
    with pytest.raises(ConfigError, match="a rule needs warn/critical"):
        config('[[model.alert]]\nname = "psi"\nsignal = "drift.psi"\n')


def test_ece_is_tested_against_the_reference_reliability_and_mce_is_not_testable():
    full = config(extra=FULL[0], columns=FULL[1]).models[0]
    ece = {rule.name: rule for rule in effective_rules(full)}["calibration-ece"]
    assert ece.q == 0.05 and ece.min_effect == 0.05 and ece.min_label_coverage == 0.5
    assert check_rule(AlertRule(name="a", signal="calibration.ece", warn=0.05, q=0.05)) is None
    mistake = check_rule(AlertRule(name="a", signal="calibration.mce", warn=0.2, q=0.05))
    assert mistake is not None and mistake[0] == "q"


def test_stale_after_adds_the_feed_rules_to_the_defaults():
    """`stale_after` warns after that silence and is critical after four times it, for the model
    and (behind it) for each slice; the rules print and parse back like the others. With own rules,
    feed rules are written among them instead."""
    segments = '\n[model.segments]\ncolumns = ["country"]\n'
    model = config(segments, extra='stale_after = "30m"').models[0]
    assert effective_rules(config(extra='stale_after = "30m"').models[0])[-1].name == "feed-stale"
    stale, behind = effective_rules(model)[-2:]
    assert (stale.name, stale.signal, stale.where) == ("feed-stale", "feed.silence_s", {})
    assert (behind.name, behind.signal) == ("slice-feed-stale", "feed.unusual_s")
    assert behind.where == {"segment": "*"}
    for rule in (stale, behind):
        assert (rule.warn, rule.critical) == (1800, 7200)
        assert check_rule(rule) is None and direction(rule) == "above"
    names = [rule.name for rule in effective_rules(config().models[0])]
    assert "feed-stale" not in names and "slice-feed-stale" not in names
    text = render_rules(model)
    assert config(segments + text, extra='stale_after = "30m"').models[0].alerts == default_rules(model)
    for text in ("soon", "10000000000w"):  # the second beyond any timedelta
        with pytest.raises(ConfigError) as caught:
            config(extra=f'stale_after = "{text}"')
        assert caught.value.key == "model[0].stale_after" and "a duration like 30m" in str(caught.value)
    own = '[[model.alert]]\nname = "psi"\nsignal = "drift.psi"\nwarn = 0.2\n'
    with pytest.raises(ConfigError) as caught:
        validate_rules(config(own, extra='stale_after = "30m"'))
    assert caught.value.key == "model[0].stale_after" and "write a feed.silence_s rule" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        validate_rules(config(segments + own, extra='stale_after = "30m"'))
    assert "write feed.silence_s and feed.unusual_s rules" in str(caught.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59.4, "59s"),
        (59.6, "1m 0s"),
        (3 * 3600 + 59, "3h 0m"),
        (26 * 3600 + 30 * 60, "1d 2h"),
        (-(3600 + 5 * 60), "-1h 5m"),
    ],
)
def test_an_elapsed_time_reads_in_its_two_largest_units(seconds: float, text: str) -> None:
    """The TUI's ages and the report's time to detect and to mitigate: whole seconds, then the
    two largest units (not their rounding: 3 h 59 s is 3h 0m); a negative one keeps its sign."""
    assert elapsed_text(seconds) == text
