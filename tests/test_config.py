"""Config mistakes through the CLI: one line naming the file and the key, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.store_support import write_jsonl, write_parquet
from triage.cli import main
from triage.config import Reference, parse_time

GOOD = """
[store]
path = "triage.duckdb"

[[model]]
name = "fraud"
predictions = "logs/predictions/*.parquet"
labels = "logs/labels/*.jsonl"
threshold = 0.5
window = "1d"

[model.columns]
id = "request_id"
timestamp = "ts"
version = "model_version"
score = "score"
label = "is_fraud"
labeled_at = "labeled_at"

[model.features]
numeric = ["amount"]
categorical = ["payment_type"]

[model.segments]
columns = ["country"]

[model.reference]
start = "2026-01-01"
end = "2026-02-01"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "triage.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str) -> tuple[int, str, str]:
    path = write(tmp_path, text)
    status = main(["--config", str(path), "config", "check", *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status: int, err: str, path: Path, key: str) -> str:
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"triage: {path}: {key}: "), lines[0]
    return lines[0]


def write_logs(tmp_path: Path, score_column: str = "score", day: int = 1, extra: str = "") -> None:
    """A day's predictions (`extra`: more columns, as SQL) and one label."""
    write_parquet(
        tmp_path / "logs" / "predictions" / f"day{day}.parquet",
        f"SELECT 'r{day}-' || i AS request_id, '2026-01-0{day} 00:00:00' AS ts, 'v1' AS model_version, "
        f"0.5 AS {score_column}, i * 2.0 AS amount, 'card' AS payment_type, 'FR' AS country{extra} "
        "FROM range(3) t(i)",
    )
    write_jsonl(
        tmp_path / "logs" / "labels" / "l.jsonl",
        [{"request_id": "r0", "is_fraud": 1, "labeled_at": "2026-01-02T00:00:00Z"}],
    )


@pytest.mark.parametrize(
    ("mistake", "key", "expected"),
    [
        (("threshold = 0.5", "treshold = 0.5"), "model[0].treshold", "unknown key (expected one of: "),
        (('id = "request_id"', 'idd = "request_id"'), "model[0].columns.id", "missing; expected a string"),
        (('timestamp = "ts"\n', ""), "model[0].columns.timestamp", "missing; expected a string"),
        (('window = "1d"', 'window = "1day"'), "model[0].window", "expected a window like 1h, 6h, 1d"),
        (('window = "1d"', 'window = "20000w"'), "model[0].window", "(at most ten years), got '20000w'"),
        # ASCII digits and the unit, nothing around them (as the README writes them).
        (('window = "1d"', 'window = "1d "'), "model[0].window", "got '1d '"),
        (('window = "1d"', 'window = " 1d"'), "model[0].window", "got ' 1d'"),
        (('window = "1d"', 'window = "1 mo"'), "model[0].window", "got '1 mo'"),
        (('window = "1d"', 'window = "\uff11d"'), "model[0].window", "got '\uff11d'"),
        (('window = "1d"', 'window = "1d\\n"'), "model[0].window", "got '1d\\n'"),
        # A duration as a window is written: "1 h", " 2h" and a fullwidth "１h" were read as ones.
        (('window = "1d"', 'window = "1d"\nstale_after = "1 h"'), "model[0].stale_after", "got '1 h'"),
        (('window = "1d"', 'window = "1d"\nstale_after = " 2h"'), "model[0].stale_after", "got ' 2h'"),
        (
            ('window = "1d"', 'window = "1d"\nstale_after = "\uff11h"'),
            "model[0].stale_after",
            "got '\uff11h'",
        ),
        (("threshold = 0.5", "threshold = 5"), "model[0].threshold", "expected a score threshold in [0, 1]"),
        (
            (
                "[model.reference]",
                '[[model.alert]]\nname = "x"\nsignal = "drift.psi"\nwarn = 0.1\nwhere = { feature = "amout" }'
                "\n\n[model.reference]",
            ),
            "model[0].alert[0].where.feature",
            'expected "*", a feature or "!" and one (amount, payment_type, __score__), got \'amout\'',
        ),
        (('score = "score"', "score = 3"), "model[0].columns.score", "expected a string, got an integer"),
        (("[store]", "[stor]"), "stor", "unknown key (expected one of: "),
        (
            ('[model.segments]\ncolumns = ["country"]', '[model.segments]\ncolumn = ["country"]'),
            "model[0].segments.column",
            "unknown key",
        ),
        (('labels = "logs/labels/*.jsonl"\n', ""), "model[0].labels", "missing; columns.label is set"),
        (
            ('numeric = ["amount"]', 'numeric = ["amount", "country", 3]'),
            "model[0].features.numeric",
            "expected a list of column names",
        ),
        (
            ('columns = ["country"]', 'columns = ["country", "country"]'),
            "model[0].segments.columns",
            "column 'country' is listed twice",
        ),
        (
            ('numeric = ["amount"]', 'numeric = ["amount", "amount"]'),
            "model[0].features.numeric",
            "column 'amount' is listed twice",
        ),
        (
            ('categorical = ["payment_type"]', 'categorical = ["payment_type", "country"]'),
            "model[0].segments.columns",
            "column 'country' is a feature too",
        ),
        (
            ('categorical = ["payment_type"]', 'categorical = ["payment_type", "Country"]'),
            "model[0].features.categorical",
            "column 'Country' and 'country' differ only in case, which the store ignores",
        ),
        # Names triage gives its own columns (any case), which ingest would refuse.
        *(
            (
                (old, old.replace(column, name)),
                f"model[0].{key}",
                f"column {name!r} clashes with a column triage adds (see the README's reserved names)",
            )
            for old, column, key, name in (
                ('numeric = ["amount"]', "amount", "features.numeric", "_score"),
                ('categorical = ["payment_type"]', "payment_type", "features.categorical", "_Latency_MS"),
                ('columns = ["country"]', "country", "segments.columns", "_file_id"),
                ('numeric = ["amount"]', "amount", "features.numeric", "_src3"),
            )
        ),
        # A feature would share the score's drift and data quality rows.
        (
            ('categorical = ["payment_type"]', 'categorical = ["__score__"]'),
            "model[0].features.categorical",
            "column '__score__' clashes with the score's name in the drift and data quality rows",
        ),
        (
            ("[model.segments]", "[model.costs]\nfalse_positive = -1\n\n[model.segments]"),
            "model[0].costs.false_positive",
            "expected a finite cost >= 0, got -1",
        ),
        (
            ("[model.segments]", "[model.costs]\nfalse_negative = nan\n\n[model.segments]"),
            "model[0].costs.false_negative",
            "expected a finite cost >= 0, got nan",
        ),
        (
            (
                "[model.segments]",
                "[model.costs.by_segment.device]\nweb = { false_negative = 9 }\n\n[model.segments]",
            ),
            "model[0].costs.by_segment.device",
            "expected a column of [model.segments] (segments: country)",
        ),
        (
            ("[model.segments]", "[model.costs.by_segment.country]\nUS = 300\n\n[model.segments]"),
            "model[0].costs.by_segment.country.US",
            "expected a table, got an integer",
        ),
        (
            ("[model.segments]", "[model.costs.by_segment.country]\nUS = { fn = 3 }\n\n[model.segments]"),
            "model[0].costs.by_segment.country.US.fn",
            "unknown key (expected one of: false_negative, false_positive)",
        ),
        (
            ("[model.segments]", '[model.positive]\nlabel = ["fraud", " "]\n\n[model.segments]'),
            "model[0].positive.label",
            "expected non-empty class names, got ' '",
        ),
        (
            ("[model.segments]", "[model.positive]\nlabel = 1\n\n[model.segments]"),
            "model[0].positive.label",
            "expected a class name or a list of class names, got an integer",
        ),
        (
            ("[model.segments]", '[model.positive]\nprediction = "block"\n\n[model.segments]'),
            "model[0].positive.prediction",
            "columns.prediction is not mapped, so no prediction is read",
        ),
        (
            ("[model.segments]", '[model.positive]\nlabels = "fraud"\n\n[model.segments]'),
            "model[0].positive.labels",
            "unknown key (expected one of: label, prediction)",
        ),
        (
            ("threshold = 0.5\n", 'task = "regression"\npositive = { label = "high" }\n'),
            "model[0].positive",
            'does not apply to a regression model (task = "regression")',
        ),
    ],
)
def test_a_mistake_is_one_line_naming_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mistake: tuple[str, str], key: str, expected: str
) -> None:
    text = GOOD.replace(*mistake)
    assert text != GOOD
    status, out, err = check(tmp_path, capsys, text, "--no-logs")  # no logs here: only this mistake
    line = one_line_error(status, err, tmp_path / "triage.toml", key)
    assert expected in line
    assert out == ""


REFERENCE = '[model.reference]\nstart = "2026-01-01"\nend = "2026-02-01"\n'


@pytest.mark.parametrize(
    ("reference", "key", "expected"),
    [
        (
            '[model.reference]\nstart = "2026-01-01"\nfiles = "train/*.parquet"\n',
            "model[0].reference",
            "expected one of start/end, files or version+days; got start/end and files",
        ),
        (
            "",
            "model[0].reference",
            "missing; expected what is normal: a time range (start, end), a file set (files) or the "
            "first days of a version (version, days)",
        ),
        ("[model.reference]\n", "model[0].reference", "missing; expected what is normal"),
        (
            '[model.reference]\nstart = "2026-01-01"\n',
            "model[0].reference.end",
            "missing; expected the end of the reference period (one running to now would hold the "
            "windows compared with it)",
        ),
    ],
)
def test_reference_is_one_kind_and_ends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reference: str, key: str, expected: str
) -> None:
    """What is normal must be said, and must end: a range to now would hold the windows it judges."""
    assert GOOD.count(REFERENCE) == 1
    status, _, err = check(tmp_path, capsys, GOOD.replace(REFERENCE, reference), "--no-logs")
    assert expected in one_line_error(status, err, tmp_path / "triage.toml", key)


def test_a_reference_may_start_at_the_first_prediction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.replace(REFERENCE, '[model.reference]\nend = "2026-02-01"\n')
    status, out, err = check(tmp_path, capsys, text, "--no-logs")
    assert (status, err) == (0, "")
    assert "ok (1 model(s): fraud" in out


def test_invalid_toml_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = check(tmp_path, capsys, "[[model]\nname = 1")
    assert status == 2 and "not valid TOML" in err and len(err.splitlines()) == 1
    status = main(["--config", str(tmp_path / "absent.toml"), "config", "check"])
    err = capsys.readouterr().err
    assert status == 2 and "config file not found" in err and len(err.splitlines()) == 1


def test_config_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    write_logs(tmp_path)
    monkeypatch.setenv("TRIAGE_CONFIG", str(write(tmp_path, GOOD)))
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.strip().endswith("ok (1 model(s): fraud; 0 target(s))")


def test_check_without_logs_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = check(tmp_path, capsys, GOOD, "--no-logs")
    assert (status, err) == (0, "")
    assert "ok (1 model(s): fraud" in out


def test_check_against_the_logs_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_logs(tmp_path)
    status, out, err = check(tmp_path, capsys, GOOD)
    assert (status, err) == (0, "")
    assert out.strip() == f"{tmp_path / 'triage.toml'}: ok (1 model(s): fraud; 0 target(s))"


def test_a_column_missing_from_the_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_logs(tmp_path, score_column="proba")
    status, _, err = check(tmp_path, capsys, GOOD)
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].columns.score")
    assert "expected a column 'score' in logs/predictions/day1.parquet (it has: request_id, ts, " in line
    assert "proba" in line


def test_a_feature_or_label_column_missing_from_the_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_logs(tmp_path)
    status, _, err = check(
        tmp_path, capsys, GOOD.replace('categorical = ["payment_type"]', 'categorical = ["pay"]')
    )
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].features.categorical")
    assert "expected a column 'pay' in logs/predictions/day1.parquet" in line

    status, _, err = check(tmp_path, capsys, GOOD.replace('label = "is_fraud"', 'label = "fraud"'))
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].columns.label")
    assert "expected a column 'fraud' in the first MiB of logs/labels/l.jsonl" in line


def test_a_rule_naming_an_inferred_feature_the_logs_lack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Inferred features are the logs' columns: a rule's feature is looked for there."""
    write_logs(tmp_path)
    features = '[model.features]\nnumeric = ["amount"]\ncategorical = ["payment_type"]\n'
    rule = '\n[[model.alert]]\nname = "x"\nsignal = "drift.psi"\nwarn = 0.1\nwhere = {{ feature = "{}" }}\n'
    inferred = GOOD.replace(features, "")
    status, _, err = check(tmp_path, capsys, inferred + rule.format("amout"))
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].alert[0].where.feature")
    assert "expected a column 'amout' in logs/predictions/day1.parquet (it has: request_id" in line
    for named in ("amount", "!__score__"):
        status, _, err = check(tmp_path, capsys, inferred + rule.format(named))
        assert (status, err) == (0, "")
    # A mapped column or a segment is in the logs too, but no feature: its rule judged nothing.
    for named in ("ts", "country"):
        status, _, err = check(tmp_path, capsys, inferred + rule.format(named))
        line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].alert[0].where.feature")
        assert f"got {named!r}, which is mapped or a segment" in line


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (
            (
                "[model.reference]",
                '[[model.alert]]\nname = "v"\nsignal = "drift.psi"\nwarn = 0.1\n'
                'where = { version = "v3" }\n\n[model.reference]',
            ),
            "model[0].alert[0].where.version",
            "expected a version the store's predictions have (v1), got 'v3'",
        ),
        (
            (
                "[model.reference]",
                '[[model.alert]]\nname = "r"\nsignal = "operations.n"\nwarn = 1.0\n'
                'where = { route = "!llm" }\n\n[model.reference]',
            ),
            "model[0].alert[0].where.route",
            "expected a route the store's predictions have (none), got '!llm'",
        ),
        (
            (REFERENCE, '[model.reference]\nversion = "v9"\ndays = 3\n'),
            "model[0].reference.version",
            "expected a version the store's predictions have (v1), got 'v9'",
        ),
        (
            (REFERENCE, '[model.reference]\nstart = "2030-01-01"\nend = "2030-02-01"\n'),
            "model[0].reference.start",
            "expected a time no later than the store's latest prediction (2026-01-01T00:00:00+00:00): "
            "a reference that has not begun holds no rows, got 2030-01-01T00:00:00+00:00",
        ),
    ],
)
def test_what_only_the_ingested_predictions_can_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], key: str, expected: str
) -> None:
    """A version, route or reference the predictions never had would judge nothing: check said OK.
    A row stamped decades ahead (a producer's clock) does not make a future reference look begun."""
    write_logs(tmp_path)
    write_parquet(
        tmp_path / "logs" / "predictions" / "ahead.parquet",
        "SELECT 'r-ahead' AS request_id, '2090-01-01 00:00:00' AS ts, 'v1' AS model_version, 0.5 AS score, "
        "1.0 AS amount, 'card' AS payment_type, 'FR' AS country",
    )
    assert main(["--config", str(write(tmp_path, GOOD)), "ingest", "--no-warm"]) == 0
    capsys.readouterr()
    text = GOOD.replace(*change)
    assert text != GOOD
    status, _, err = check(tmp_path, capsys, text)
    assert line_is(one_line_error(status, err, tmp_path / "triage.toml", key), key, expected)
    # Before the first ingest there is nothing to compare with; --no-logs compares nothing either.
    assert check(tmp_path, capsys, text, "--no-logs")[0] == 0
    (tmp_path / "triage.duckdb").unlink()
    assert check(tmp_path, capsys, text)[:3:2] == (0, "")


def test_names_from_the_store_are_listed_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The versions a store holds are logged text: an error listing them shows their escapes."""
    write_logs(tmp_path)
    write_parquet(
        tmp_path / "logs" / "predictions" / "odd.parquet",
        "SELECT 'r-odd' AS request_id, '2026-01-01 00:00:00' AS ts, "
        "'v' || chr(27) || '[2J' AS model_version, 0.5 AS score, 1.0 AS amount, 'card' AS payment_type, "
        "'FR' AS country",
    )
    assert main(["--config", str(write(tmp_path, GOOD)), "ingest", "--no-warm"]) == 0
    capsys.readouterr()
    rule = '[[model.alert]]\nname = "r"\nsignal = "operations.n"\nwarn = 1.0\nwhere = { version = "v3" }\n\n'
    status, _, err = check(tmp_path, capsys, GOOD.replace("[model.reference]", rule + "[model.reference]"))
    key = "model[0].alert[0].where.version"
    line = one_line_error(status, err, tmp_path / "triage.toml", key)
    assert "have (v\\x1b[2J, v1), got 'v3'" in line and "\x1b" not in line


def test_a_store_built_from_another_config_is_not_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its versions may not be this config's: a note says what was not checked."""
    write_logs(tmp_path)
    assert main(["--config", str(write(tmp_path, GOOD)), "ingest", "--no-warm"]) == 0
    capsys.readouterr()
    text = GOOD.replace("threshold = 0.5", "threshold = 0.7").replace(
        REFERENCE, '[model.reference]\nversion = "v9"\ndays = 3\n'
    )
    status, out, err = check(tmp_path, capsys, text)
    assert (status, err) == (0, "")
    assert out.startswith("note: model[0]: not checked against the store: model 'fraud': threshold changed")


def line_is(line: str, key: str, expected: str) -> bool:
    return line.endswith(f"{key}: {expected}")


def test_predictions_that_match_nothing_or_cannot_be_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = check(tmp_path, capsys, GOOD)
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].predictions")
    assert "expected readable log files matching 'logs/predictions/*.parquet'; none found" in line

    broken = tmp_path / "logs" / "predictions" / "broken.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PAR1 not parquet at all")
    status, _, err = check(tmp_path, capsys, GOOD)
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].predictions")
    assert "expected a readable parquet file" in line and "broken.parquet" in line


def test_labels_not_arrived_yet_is_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_logs(tmp_path)
    (tmp_path / "logs" / "labels" / "l.jsonl").unlink()
    status, out, err = check(tmp_path, capsys, GOOD)
    assert (status, err) == (0, "")
    assert "note: model[0].labels: no files match 'logs/labels/*.jsonl' yet" in out


def test_label_id_names_the_label_logs_id_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_logs(tmp_path)
    text = GOOD.replace('labeled_at = "labeled_at"', 'labeled_at = "labeled_at"\nlabel_id = "txn"')
    status, _, err = check(tmp_path, capsys, text)
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].columns.label_id")
    assert "expected a column 'txn'" in line


LABELED_AT = "2026-01-02T00:00:00Z"  # a label log's `labeled_at`


def test_a_label_log_without_the_prediction_logs_id_names_label_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A label log naming the id its own way: the error says which key maps it (`columns.label_id`,
    documented far from `columns.id`), and with it set the config passes."""
    write_logs(tmp_path)
    write_jsonl(
        tmp_path / "logs" / "labels" / "l.jsonl", [{"txn": "r1-0", "is_fraud": 1, "labeled_at": LABELED_AT}]
    )
    status, _, err = check(tmp_path, capsys, GOOD)
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].columns.id")
    assert line.endswith(
        "expected a column 'request_id' in the first MiB of logs/labels/l.jsonl "
        "(it has: txn, is_fraud, labeled_at); "
        "set model[0].columns.label_id to the label log's id column if it names the id differently"
    )
    labelled = GOOD.replace('labeled_at = "labeled_at"', 'labeled_at = "labeled_at"\nlabel_id = "txn"')
    assert check(tmp_path, capsys, labelled)[:3:2] == (0, "")


# Labels as a label log names its classes: "NA" and null are no class (a missing label).
NAMED_LABELS = ["FRAUD", " fraud ", "legit", "LEGIT", "legit", "Chargeback", "NA", None]


def _most_frequent(values: list[str | None]) -> str:
    """The values a class name is looked for among, most frequent first (then as text), counted here."""
    counts = Counter(v for v in values if v is not None and v.strip().lower() not in ("", "na"))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
    return f"{sum(counts.values())} values in the sampled files (most frequent: " + ", ".join(
        f"'{value}' {n}" for value, n in ranked
    )


@pytest.mark.parametrize(
    ("label", "prediction", "key", "expected"),
    [
        (
            '["fraudulent"]',
            '"flag"',
            "model[0].positive.label",
            "expected class names that column 'is_fraud' holds (trimmed, in any case): 'fraudulent' "
            f"matches none of its {_most_frequent(NAMED_LABELS)}); every label reads as 0",
        ),
        (
            '"Fraud"',
            '"flagged"',
            "model[0].positive.prediction",
            "expected class names that column 'decision' holds (trimmed, in any case): 'flagged' "
            f"matches none of its {_most_frequent(['FLAG', 'pass', 'pass'])}); "
            "every logged decision reads as negative",
        ),
    ],
)
def test_class_names_no_logged_value_has_are_a_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str, prediction: str, key: str, expected: str
) -> None:
    """`[model.positive]` naming a class no sampled label (or logged decision) has reads every one
    as negative: `check` said OK with precision 0. The mistake names the column and what it holds,
    in a JSON Lines label log and a Parquet prediction log alike."""
    write_named_classes(tmp_path)
    status, _, err = check(tmp_path, capsys, with_classes(label, prediction))
    assert line_is(one_line_error(status, err, tmp_path / "triage.toml", key), key, expected)


def test_class_names_match_trimmed_in_any_case_and_one_of_several_unseen_is_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As ingest matches them: `" FRAUD "` is `fraud`. A name among others that no sampled value has
    may be a rare class the sample lacks: a note, not a mistake."""
    write_named_classes(tmp_path)
    status, out, err = check(tmp_path, capsys, with_classes('[" FRAUD ", "chargeback"]', '" Flag "'))
    assert (status, err) == (0, "")
    assert out.strip() == f"{tmp_path / 'triage.toml'}: ok (1 model(s): fraud; 0 target(s))"
    status, out, err = check(tmp_path, capsys, with_classes('["fraud", "chargebak"]', '"flag"'))
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == (
        "note: model[0].positive.label: expected class names that column 'is_fraud' holds (trimmed, in "
        f"any case): 'chargebak' matches none of its {_most_frequent(NAMED_LABELS)})"
    )


def write_named_classes(tmp_path: Path) -> None:
    """Logs naming their classes: decisions FLAG / pass (Parquet), labels `NAMED_LABELS` (JSON Lines)."""
    write_logs(tmp_path, extra=", CASE WHEN i = 0 THEN 'FLAG' ELSE 'pass' END AS decision")
    rows = [
        {"request_id": f"r1-{i}", "is_fraud": y, "labeled_at": LABELED_AT} for i, y in enumerate(NAMED_LABELS)
    ]
    write_jsonl(tmp_path / "logs" / "labels" / "l.jsonl", rows)


def with_classes(label: str, prediction: str) -> str:
    """GOOD with a logged decision and class names (TOML values) for its labels and decisions."""
    positive = f"[model.positive]\nlabel = {label}\nprediction = {prediction}\n\n[model.reference]"
    mapped = GOOD.replace('label = "is_fraud"', 'label = "is_fraud"\nprediction = "decision"')
    return mapped.replace("[model.reference]", positive)


def test_a_log_whose_rows_are_all_quarantined_is_a_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once ingested: a log with quarantined rows is a note (how many of how many, the top reason
    with an example, the command listing them); one whose every row was quarantined — text labels
    without `[model.positive]` — a mistake, not "ok": `check` would judge the model on none."""
    write_logs(tmp_path)
    labels = ["fraud", "legit", "legit", None]
    write_jsonl(
        tmp_path / "logs" / "labels" / "l.jsonl",
        [{"request_id": "r1-0", "is_fraud": y, "labeled_at": LABELED_AT} for y in labels],
    )
    config = write(tmp_path, GOOD)
    assert main(["--config", str(config), "ingest", "--no-warm"]) == 0
    capsys.readouterr()
    status, _, err = check(tmp_path, capsys, GOOD)
    key = "model[0].labels"
    bad_type = [y for y in labels if y is not None]
    expected = (
        f"expected rows the store keeps, got all {len(labels)} label rows ingested quarantined: "
        f"{len(bad_type)} as 'bad type' (e.g. is_fraud: {bad_type[0]} is not 0/1 or true/false "
        "(class names: [model.positive])); `triage quarantine --model fraud` lists them"
    )
    assert line_is(one_line_error(status, err, config, key), key, expected)

    labels = [1, 0, "maybe", 0, 1]
    write_jsonl(
        tmp_path / "logs" / "labels" / "l.jsonl",
        [{"request_id": "r1-0", "is_fraud": y, "labeled_at": LABELED_AT} for y in labels],
    )
    assert main(["--config", str(config), "ingest", "--no-warm"]) == 0
    capsys.readouterr()
    status, out, err = check(tmp_path, capsys, GOOD)
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"note: {key}: 1 of the {len(labels)} label rows ingested are quarantined: 1 as 'bad type' (e.g. "
        "is_fraud: maybe is not 0/1 or true/false (class names: [model.positive])); "
        "`triage quarantine --model fraud` lists them",
        f"{config}: ok (1 model(s): fraud; 0 target(s))",
    ]
    assert main(["--config", str(config), "quarantine", "--model", "fraud"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 of 1 quarantined rows shown"


@pytest.mark.parametrize("module", ["triage", "triage.cli"])
def test_python_dash_m_keeps_the_error_contract(tmp_path: Path, module: str) -> None:
    """`python -m triage` and `python -m triage.cli` are the command too: a command's mistake (here
    `check` before any ingest) is one line and check's status 3, not a traceback and status 1."""
    config = write(tmp_path, GOOD)
    done = subprocess.run(
        [sys.executable, "-m", module, "--config", str(config), "check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("triage: ") and "no store yet" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_an_optional_column_the_older_logs_lack_is_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A feature logged from the third day on: the oldest files lack it, the newest has it —
    ingest stores it as NULL where absent, so the check notes it; a required column missing from
    one sampled file, or an optional one from all of them, stays an error."""
    for day in (1, 2, 3):
        write_logs(tmp_path, day=day, extra=", 7.0 AS tenure" if day == 3 else "")
    added = GOOD.replace('numeric = ["amount"]', 'numeric = ["amount", "tenure"]')
    status, out, err = check(tmp_path, capsys, added)
    assert (status, err) == (0, "")
    assert (
        "note: model[0].features.numeric: 'tenure' is not in logs/predictions/day1.parquet and 1 more "
        "sampled file(s); ingest stores it as NULL where it is absent"
    ) in out
    status, _, err = check(tmp_path, capsys, added.replace('"tenure"', '"tenur"'))
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].features.numeric")
    assert line.endswith("; not in logs/predictions/day2.parquet, logs/predictions/day3.parquet either")
    status, _, err = check(tmp_path, capsys, GOOD.replace('score = "score"', 'score = "tenure"'))
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].columns.score")
    assert "expected a column 'tenure' in logs/predictions/day1.parquet" in line


def test_check_finds_the_alert_rules_mistakes_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`config check` validates the rules as `check` and `alerts rules` do: one line, file and key."""
    rule = '\n[[model.alert]]\nname = "x"\nsignal = "drift.nope"\nwarn = 1\n'
    status, _, err = check(tmp_path, capsys, GOOD + rule, "--no-logs")
    line = one_line_error(status, err, tmp_path / "triage.toml", "model[0].alert[0].signal")
    assert "drift has no numeric field 'nope'" in line


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        ("2026-01-01T01:00:00+01:00", "2026-01-05", "2026-01-01 00:00 UTC .. 2026-01-05 00:00 UTC"),
        (None, "2026-01-05T00:00:30Z", "the first prediction .. 2026-01-05 00:00:30 UTC"),
        (
            "2025-12-31T23:00:00.25-01:00",
            "2026-01-05",
            "2026-01-01 00:00:00.250000 UTC .. 2026-01-05 00:00 UTC",
        ),
    ],
)
def test_a_reference_range_is_described_in_utc(start: str | None, end: str, text: str) -> None:
    reference = Reference(start=parse_time(start) if start else None, end=parse_time(end))
    assert reference.describe() == text


def test_every_part_of_the_config_names_its_own_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One reading finds each model's, each alert rule's and each target's first mistake — a line
    each, in the file's order — not only the first of the file."""
    model = GOOD[GOOD.index("[[model]]") :]
    text = (
        GOOD.replace("threshold = 0.5", "threshold = 1.5")
        + model.replace('name = "fraud"', 'name = "second"').replace('window = "1d"', 'window = "3x"')
        + model.replace('name = "fraud"', 'name = "third"')
        + '\n[[model.alert]]\nname = "a"\nsignal = "drift.psi"\nwarn = "high"\n'
        + '\n[[model.alert]]\nname = "b"\nsignal = "drift.psi"\nwarn = 0.2\nfor_windows = "two"\n'
        + '\n[targets.kserve]\nbase_url = "ftp://models"\n'
        + '\n[targets.argo]\nbase_url = "https://argo"\ntoken = "s3cret"\n'
    )
    status, out, err = check(tmp_path, capsys, text, "--no-logs")
    path = tmp_path / "triage.toml"
    assert (status, out) == (2, "")
    assert [line.split(": ")[2] for line in err.splitlines()] == [
        "model[0].threshold",
        "model[1].window",
        "model[2].alert[0].warn",
        "model[2].alert[1].for_windows",
        "targets.kserve.base_url",
        "targets.argo.token",
    ]
    assert all(line.startswith(f"triage: {path}: ") for line in err.splitlines())
    assert "s3cret" not in err


def test_config_check_names_every_rule_and_log_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules that parse but cannot run, in two models, and a model whose logs match nothing: all
    of them, one line each, exit status 2."""
    model = GOOD[GOOD.index("[[model]]") :]
    text = (
        GOOD
        + '\n[[model.alert]]\nname = "x"\nsignal = "drift.nope"\nwarn = 1\n'
        + model.replace('name = "fraud"', 'name = "second"')
        + '\n[[model.alert]]\nname = "y"\nsignal = "drift.psi"\nwarn = 0.2\n'
        + '\n[[model.alert]]\nname = "y"\nsignal = "drift.psi"\nwarn = 0.3\n'
    )
    status, _, err = check(tmp_path, capsys, text)
    keys = [line.split(": ")[2] for line in err.splitlines()]
    assert status == 2 and "Traceback" not in err
    assert keys[:2] == ["model[0].alert[0].signal", "model[1].alert[1].name"]
    assert "drift has no numeric field 'nope'" in err and "duplicate rule name 'y'" in err
    assert {"model[0].predictions", "model[1].predictions"} <= set(keys[2:])
