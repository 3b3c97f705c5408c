"""The typed JSON of cached rows: what goes in comes back with the same values and types, and a
value of another type is refused (a reader of an older format gets an error, never a half-typed row)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from triage.metrics.codec import decoder, encode
from triage.metrics.results import CalibrationRow, DataQualityRow, ReliabilityPoint

START = datetime(2026, 1, 5, tzinfo=UTC)


def _calibration(k: int, **changes: Any) -> CalibrationRow:
    fields: dict[str, Any] = {
        "window_start": START + timedelta(days=k % 2),
        "window_end": START + timedelta(days=k % 2 + 1),
        "version": None if k % 3 == 0 else f"v{k % 3}",
        "segment": "country",
        "segment_value": "FR",
        "n": 200 + k,
        "enough_data": True,
        "note": None,
        "n_labeled": 150,
        "decision_rate": 0.25,
        "ece": None if k % 2 else 0.0125,
        "ece_equal_mass": 0.5,
        "mce": 1.0,
        "brier": 0.1875,
        "log_loss": None,
        "reliability": tuple(
            ReliabilityPoint(b / 10, (b + 1) / 10, b, 0.05 + b / 10, 0.5) for b in range(k % 3)
        ),
    }
    return CalibrationRow(**(fields | changes))


def _round_trip(kind: type, rows: tuple[Any, ...]) -> tuple[Any, ...]:
    text = json.dumps(encode(rows), allow_nan=False)
    return decoder(tuple[kind, ...])(json.loads(text))  # type: ignore[valid-type]


def test_rows_come_back_equal_and_typed() -> None:
    rows = tuple(_calibration(k) for k in range(7))
    back = _round_trip(CalibrationRow, rows)
    assert back == rows
    for row, again in zip(rows, back, strict=True):
        for name in CalibrationRow.__dataclass_fields__:
            assert type(getattr(again, name)) is type(getattr(row, name)), name


def test_a_whole_number_in_a_float_field_comes_back_a_float() -> None:
    """JSON writes 1.0 as 1.0, but a float field read from text written as 1 (an older writer, a
    hand-edited cache) must still hold a float: 1 and 1.0 are equal, their types are not."""
    encoded = encode((_calibration(0),))
    position = encoded["columns"].index("mce")
    encoded["rows"][0][position] = 1
    (row,) = decoder(tuple[CalibrationRow, ...])(encoded)
    assert type(row.mce) is float and row.mce == 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("ece", True), ("ece", "0.5"), ("n", 2.5), ("n", False), ("version", 3), ("window_start", None)],
)
def test_a_value_of_another_type_is_refused(field: str, value: Any) -> None:
    encoded = encode((_calibration(1), _calibration(2)))
    encoded["rows"][1][encoded["columns"].index(field)] = value
    with pytest.raises((ValueError, TypeError)):
        decoder(tuple[CalibrationRow, ...])(encoded)


def test_a_row_of_another_width_or_changed_columns_is_refused() -> None:
    encoded = encode((_calibration(1),))
    short = {"columns": encoded["columns"], "rows": [encoded["rows"][0][:-1]]}
    with pytest.raises(ValueError, match="values, not"):
        decoder(tuple[CalibrationRow, ...])(short)
    renamed = {"columns": [*encoded["columns"][:-1], "points"], "rows": encoded["rows"]}
    with pytest.raises(ValueError, match="columns of CalibrationRow changed"):
        decoder(tuple[CalibrationRow, ...])(renamed)


def test_text_lists_and_times_come_back_shared() -> None:
    base = DataQualityRow(
        window_start=START,
        window_end=START + timedelta(days=1),
        version=None,
        segment="country",
        segment_value="C0",
        n=300,
        enough_data=True,
        note=None,
        feature="merchant",
        kind="categorical",
        n_reference=4000,
        missing_rate=0.0,
        missing_rate_reference=0.0,
        missing_rate_change=0.0,
        unseen_share=0.125,
        unseen_categories=("m-9",),
        unseen_share_expected=0.01,
        unseen_share_expected_se=0.002,
        out_of_range_share=None,
    )
    rows = tuple(
        replace(base, segment_value=f"C{k % 2}", unseen_categories=("m-9", f"m-{k}")) for k in range(4)
    )
    back = _round_trip(DataQualityRow, rows)
    assert back == rows
    assert all(type(row.unseen_categories) is tuple for row in back)
    assert len({id(row.window_start) for row in back}) == 1
    assert len({id(row.segment_value) for row in back}) == 2
