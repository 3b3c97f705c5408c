"""When the reference's labels came, by score bin and class: what a window's early labels sample.

Labels arrive class by class: reviewed flags within hours, a fraud team's chargebacks within days,
"no dispute" after a month. A window whose labels are still coming holds more of the classes that
come first, so its reliability diagram reads off the one its rows will show (audit 23: a window
labelled on 58 % of its rows read ECE 0.155, 0.105 once its labels were in). The reference's own
windows went through the same stages: `label_arrival` counts its labelled rows by calibration's
uniform score bin, class and age — seconds from the start of the row's window to its label, in
geometric buckets — per scope (all versions and each, all traffic and each slice), as of T.
`LabelArrival.class_shares` reads off, for a window as old as the one judged, the share of each
bin's positives and negatives that had come by that age: what the window's labelled rows are a
sample of. The age, not the window's label coverage, is matched: a window of more frauds than the
reference's (the afternoon's) is labelled further at the same age, and matching its coverage
would take it for an older one (audit 26's hourly world).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import duckdb
import numpy as np

from triage.metrics.calibration import N_BINS, UNIFORM_EDGES
from triage.metrics.frame import Scope, cell_grouping
from triage.metrics.source import labelled_rows_sql

# Ages are bucketed geometrically: bucket 0 holds labels within AGE_FIRST seconds of their window's
# start, bucket k those up to AGE_FIRST·AGE_RATIO^k, the last everything later (past 450 days).
AGE_FIRST = 60.0
AGE_RATIO = 1.25
AGE_BUCKETS = 62

ArrivalKey = tuple[str | None, ...]  # version, segment, segment_value


@dataclass(frozen=True, eq=False)
class LabelArrival:
    """One scope's reference rows (`n`) and when their labels came: `labelled` counts labelled rows
    by age bucket (scored or not), `classes[b, y, k]` the scored ones of uniform bin b and class y
    (0 negative, 1 positive) in age bucket k."""

    version: str | None
    segment: str | None
    segment_value: str | None
    n: int
    labelled: np.ndarray
    classes: np.ndarray

    @functools.cached_property
    def settled_age(self) -> float:
        """The age (seconds from a window's start) by which every label the reference holds had
        come: the upper edge of its latest bucket with any (0 without labels)."""
        filled = np.flatnonzero(self.labelled)
        return 0.0 if not filled.size else _upper_edge(int(filled[-1]))

    def class_shares(self, age: float) -> np.ndarray | None:
        """`[b, y]`: the share of bin b's labelled rows of class y (as of T) that had come `age`
        seconds after their window's start (linear within a bucket); 1 where a bin holds none of a
        class; None from `settled_age` on (nothing to correct)."""
        if age >= self.settled_age:
            return None
        k = 0 if age <= AGE_FIRST else min(AGE_BUCKETS - 1, math.ceil(math.log(age / AGE_FIRST, AGE_RATIO)))
        low = -math.inf if k == 0 else _upper_edge(k - 1)
        fraction = 1.0 if k == 0 else min(max((age - low) / (_upper_edge(k) - low), 0.0), 1.0)
        classes = np.cumsum(self.classes, axis=2)
        come = (classes[..., k - 1] if k else 0.0) + fraction * self.classes[..., k]
        total = classes[..., -1].astype(float)
        return np.divide(come, total, out=np.ones_like(total), where=total > 0)


def _upper_edge(bucket: int) -> float:
    """The latest age (seconds) bucket `bucket` holds (the last bucket: any age)."""
    return math.inf if bucket >= AGE_BUCKETS - 1 else AGE_FIRST * AGE_RATIO**bucket


def label_arrival(
    con: duckdb.DuckDBPyConnection, scope: Scope, source: str
) -> dict[ArrivalKey, LabelArrival]:
    """Each scope's `LabelArrival` over `source` (a SELECT of the reference's prediction rows), with
    the labels that count as of T; one GROUPING SETS pass."""
    rows = labelled_rows_sql(scope, source, "p._score, p._ts AS _at")
    score_bin = " + ".join(f"(_score > {edge!r})::INT" for edge in UNIFORM_EDGES[1:-1].tolist())
    age = "(date_diff('microsecond', window_start, _at) / 1e6 + _lag_s)"
    bucket = (
        f"CASE WHEN {age} <= {AGE_FIRST} THEN 0 "
        f"ELSE least({AGE_BUCKETS - 1}, ceil(ln({age} / {AGE_FIRST}) / ln({AGE_RATIO})))::INT END"
    )
    grouping = cell_grouping(scope, extra=["_bin", "_class", "_bucket"], by_window=False)
    found = con.execute(
        f"""SELECT {grouping.select}, count(*) FROM (
            SELECT *, {score_bin} AS _bin,
                CASE WHEN _labelled THEN _positive::INT END AS _class,
                CASE WHEN _labelled THEN {bucket} END AS _bucket
            FROM ({rows})) GROUP BY {grouping.group_by}"""
    ).fetchall()
    counts: dict[ArrivalKey, tuple[list[int], np.ndarray, np.ndarray]] = {}
    for _, version, segment, value, score_bin_, label, age_bucket, count in found:
        n, labelled, classes = counts.setdefault(
            (version, segment, value),
            ([0], np.zeros(AGE_BUCKETS, dtype=np.int64), np.zeros((N_BINS, 2, AGE_BUCKETS), dtype=np.int64)),
        )
        n[0] += count
        if age_bucket is None:
            continue
        labelled[age_bucket] += count
        if score_bin_ is not None:
            classes[score_bin_, label, age_bucket] += count
    return {
        key: LabelArrival(key[0], key[1], key[2], n[0], labelled, classes)
        for key, (n, labelled, classes) in counts.items()
    }
