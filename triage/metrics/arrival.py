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
would take it for an older one (audit 26's hourly world). A judged window starts after the
reference's windows, so at its age every one of theirs is older: the reference's labels at that
age are all observed as of T, even while its latest windows still wait for their last labels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import duckdb
import numpy as np

from triage.metrics.calibration import N_BINS, UNIFORM_EDGES
from triage.metrics.frame import Scope, cell_grouping
from triage.metrics.source import plain_rows_sql
from triage.store.queries import label_history_sql

# Ages are bucketed geometrically: bucket 0 holds labels within AGE_FIRST seconds of their window's
# start, bucket k those up to AGE_FIRST·AGE_RATIO^k, the last everything later (past 450 days).
AGE_FIRST = 60.0
AGE_RATIO = 1.25
AGE_BUCKETS = 62

ArrivalKey = tuple[str | None, ...]  # version, segment, segment_value
# What a stored count means (part of its cache token): a change to the buckets, the bins or the
# counting must change this, or a store would serve counts of another layout.
ARRIVAL_LAYOUT = f"arrival 1: bins {N_BINS}, ages {AGE_FIRST} × {AGE_RATIO}^k, {AGE_BUCKETS} buckets"


@dataclass(frozen=True)
class LabelArrival:
    """One scope's reference rows (`n`) and when their labels came: `labelled[k]` counts the rows
    (scored or not) first labelled in age bucket k, `classes[b][y][k]` how many more scored rows of
    uniform bin b were labelled class y (0 negative, 1 positive) in age bucket k — fewer when
    corrections took rows out of the class (negative counts); summed up to bucket k, the rows of
    each class as their labels stood at that age. Plain tuples: kept in the store's window cache,
    and equal counts compare equal (an evaluation that counts the reference afresh — a `--last`
    view, a version's reference — keeps the rules' judgements while they are unchanged)."""

    version: str | None
    segment: str | None
    segment_value: str | None
    n: int
    labelled: tuple[int, ...]
    classes: tuple[tuple[tuple[int, ...], ...], ...]

    @functools.cached_property
    def labelled_counts(self) -> np.ndarray:
        return np.asarray(self.labelled, dtype=np.int64)

    @functools.cached_property
    def class_counts(self) -> np.ndarray:
        """`classes` as an array [N_BINS, 2, AGE_BUCKETS]."""
        return np.asarray(self.classes, dtype=np.int64).reshape(N_BINS, 2, AGE_BUCKETS)

    @functools.cached_property
    def settled_age(self) -> float:
        """The age (seconds from a window's start) by which every label the reference holds had
        come, corrections included: the upper edge of its latest bucket with any (0 without)."""
        filled = np.flatnonzero((self.labelled_counts != 0) | self.class_counts.any(axis=(0, 1)))
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
        counts = self.class_counts
        classes = np.cumsum(counts, axis=2)
        come = (classes[..., k - 1] if k else 0.0) + fraction * counts[..., k]
        total = classes[..., -1].astype(float)
        return np.divide(come, total, out=np.ones_like(total), where=total > 0)


def _upper_edge(bucket: int) -> float:
    """The latest age (seconds) bucket `bucket` holds (the last bucket: any age)."""
    return math.inf if bucket >= AGE_BUCKETS - 1 else AGE_FIRST * AGE_RATIO**bucket


def label_arrival(
    con: duckdb.DuckDBPyConnection, scope: Scope, source: str
) -> dict[ArrivalKey, LabelArrival]:
    """Each scope's `LabelArrival` over `source` (a SELECT of the reference's prediction rows), from
    every label up to T (`label_history_sql`): a label counts for its class from its age on, and
    against the class it superseded (a provisional "legitimate" flipped by a chargeback was a
    labelled negative until then); one GROUPING SETS pass."""
    joined = label_history_sql(scope.model, scope.as_of, source)
    score_bin = " + ".join(f"(p._score > {edge!r})::INT" for edge in UNIFORM_EDGES[1:-1].tolist())
    rows = plain_rows_sql(scope, joined, f"{score_bin} AS _bin, p._event, p._previous, p._event_at")
    age = "(date_diff('microsecond', window_start, _event_at) / 1e6)"
    bucket = (
        f"CASE WHEN {age} <= {AGE_FIRST} THEN 0 "
        f"ELSE least({AGE_BUCKETS - 1}, ceil(ln({age} / {AGE_FIRST}) / ln({AGE_RATIO})))::INT END"
    )
    grouping = cell_grouping(scope, extra=["_bin", "_bucket"], by_window=False)
    found = con.execute(
        f"""SELECT {grouping.select},
                count(*) FILTER (WHERE _previous IS NULL) AS n,
                count(*) FILTER (WHERE _event IS NOT NULL AND _previous IS NULL) AS first,
                count(*) FILTER (WHERE _event <= 0) - count(*) FILTER (WHERE _previous <= 0) AS negatives,
                count(*) FILTER (WHERE _event > 0) - count(*) FILTER (WHERE _previous > 0) AS positives
            FROM (SELECT *, CASE WHEN _event IS NOT NULL THEN {bucket} END AS _bucket FROM ({rows}))
            GROUP BY {grouping.group_by}"""
    ).fetchall()
    counts: dict[ArrivalKey, tuple[list[int], np.ndarray, np.ndarray]] = {}
    for _, version, segment, value, score_bin_, age_bucket, n, first, negatives, positives in found:
        total, labelled, classes = counts.setdefault(
            (version, segment, value),
            ([0], np.zeros(AGE_BUCKETS, dtype=np.int64), np.zeros((N_BINS, 2, AGE_BUCKETS), dtype=np.int64)),
        )
        total[0] += n
        if age_bucket is None:
            continue
        labelled[age_bucket] += first
        if score_bin_ is not None:
            classes[score_bin_, :, age_bucket] += (negatives, positives)
    return {
        key: LabelArrival(key[0], key[1], key[2], total[0], tuple(labelled.tolist()), _nested(classes))
        for key, (total, labelled, classes) in counts.items()
    }


def _nested(counts: np.ndarray) -> tuple[tuple[tuple[int, ...], ...], ...]:
    return tuple(tuple(tuple(by_age) for by_age in by_class) for by_class in counts.tolist())
