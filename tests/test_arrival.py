"""When the reference's labels came (`metrics.arrival`) against a count on the raw rows, and the
calibration test that expects a young window's labels to hold the classes that come first."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest
from scipy import stats

from tests.metrics_store import Data, day, generate, model_config, write
from triage.alerts.evaluate import CROSSED, OK, UNKNOWN, CellResult, JudgeMemo, evaluate_rules, reliability_p
from triage.alerts.rules import effective_rules
from triage.config import ModelConfig, Reference
from triage.metrics.arrival import AGE_FIRST, AGE_RATIO, label_arrival
from triage.metrics.calibration import compute_calibration
from triage.metrics.frame import Scope
from triage.metrics.results import ReliabilityPoint
from triage.metrics.source import reference_rows_sql


def labels_then(data: Data, cutoffs: np.ndarray) -> np.ndarray:
    """Each prediction row's label as it stood at its cutoff (the latest with labeled_at ≤ it, a
    later row of the log winning a tie, as the store's one file orders them; NaN: none yet)."""
    history: dict[str, list[tuple[np.datetime64, float]]] = {}
    for i in np.argsort(data.labeled_at, kind="stable"):
        history.setdefault(str(data.label_ids[i]), []).append((data.labeled_at[i], float(data.label[i])))
    found = np.full(data.ids.size, np.nan)
    for row, (name, cutoff) in enumerate(zip(data.ids.tolist(), cutoffs, strict=True)):
        for at, label in history.get(name, []):
            if at > cutoff:
                break
            found[row] = label
    return found


def class_skewed(data: Data, seed: int) -> Data:
    """The labels re-timed as a fraud team's: flagged rows reviewed within hours, frauds charged
    back within 1–8 days, legitimate rows confirmed after 2–20 days (and only 70 % of them)."""
    rng = np.random.default_rng(seed)
    keep = (data.label > 0) | (rng.random(len(data.label)) < 0.7)
    first = ~np.isin(np.arange(len(data.label_ids)), np.unique(data.label_ids, return_index=True)[1])
    keep &= ~first  # the first label of each id only: no corrections
    ids = data.label_ids[keep]
    label = data.label[keep]
    flagged = np.isin(ids, data.ids[data.decision])
    days = np.where(label > 0, rng.uniform(1, 8, ids.size), rng.uniform(2, 20, ids.size))
    hours = np.where(flagged, rng.uniform(0, 6, ids.size), days * 24)
    ts = dict(zip(data.ids.tolist(), data.ts, strict=True))
    at = np.array([ts[i] for i in ids.tolist()]) + (hours * 3600e6).astype("timedelta64[us]")
    return dataclasses.replace(data, label_ids=ids, label=label, labeled_at=at)


def test_label_arrival_counts_the_reference_rows_by_bin_class_and_age() -> None:
    """Exact at every bucket edge against each row's label as it stood then — corrections
    included: a quarter of the labels are flipped a day later, and 40 % of the ids get a
    provisional negative label half an hour after their prediction (a "legitimate" that a
    chargeback overturns is a labelled negative until it does)."""
    data = generate(4000, seed=5, days=6, round_scores=3)
    rng = np.random.default_rng(6)
    provisional = rng.choice(data.ids, 1600, replace=False)
    ts = dict(zip(data.ids.tolist(), data.ts, strict=True))
    data = dataclasses.replace(
        data,
        label_ids=np.concatenate([data.label_ids, provisional]),
        label=np.concatenate([data.label, np.zeros(provisional.size)]),
        labeled_at=np.concatenate(
            [data.labeled_at, np.array([ts[i] for i in provisional.tolist()]) + np.timedelta64(30, "m")]
        ),
    )
    model = dataclasses.replace(model_config(), reference=Reference(end=day(4)))
    as_of = day(5) + timedelta(hours=7)
    con = duckdb.connect()
    write(con, model, data)
    scope = Scope.of(model, as_of=as_of)
    found = label_arrival(con, scope, reference_rows_sql(scope))

    inside = data.ts < np.datetime64(day(4).replace(tzinfo=None), "us")
    start = data.ts.astype("datetime64[D]").astype("datetime64[us]")  # the row's 1d window
    cut = np.datetime64(as_of.replace(tzinfo=None), "us")
    final = labels_then(data, np.full(data.ids.size, cut))
    score_bin = np.searchsorted(np.linspace(0, 1, 11)[1:-1], data.score)  # calibration_curve's rule
    edges = [AGE_FIRST * AGE_RATIO**k for k in (20, 30, 33, 36, 38)]
    then = {
        k: labels_then(data, np.minimum(start + np.timedelta64(round(edge * 1e6), "us"), cut))
        for k, edge in zip((20, 30, 33, 36, 38), edges, strict=True)
    }
    checked = 0
    for key, arrival in found.items():
        version, segment, value = key
        rows = inside.copy()
        if version is not None:
            rows &= data.version == version
        if segment is not None:
            rows &= data.segments[segment] == value
        assert arrival.n == rows.sum()
        assert arrival.labelled_counts.sum() == (rows & ~np.isnan(final)).sum()
        for k, labels in then.items():
            assert arrival.labelled_counts[: k + 1].sum() == (rows & ~np.isnan(labels)).sum()
            shares = arrival.class_shares(AGE_FIRST * AGE_RATIO**k)
            for b in range(10):
                stood = [(rows & (score_bin == b) & (labels > 0 if c else labels <= 0)).sum() for c in (0, 1)]
                assert list(arrival.class_counts[b, :, : k + 1].sum(axis=1)) == stood
                if shares is None:  # a small slice's labels all in by then
                    assert AGE_FIRST * AGE_RATIO**k >= arrival.settled_age
                    continue
                # what the calibration test expects of the labels at that age, from the final
                # positive rate e: e·r1 / (e·r1 + (1 − e)·r0) — the rate among them, exactly
                ends = [(rows & (score_bin == b) & (final > 0 if c else final <= 0)).sum() for c in (0, 1)]
                if min(ends) and sum(stood):
                    e = ends[1] / sum(ends)
                    expected = e * shares[b, 1] / (e * shares[b, 1] + (1 - e) * shares[b, 0])
                    assert expected == pytest.approx(stood[1] / sum(stood), abs=1e-12)
                    checked += 1
        # by the age every label had come: nothing to correct
        assert arrival.class_shares(arrival.settled_age) is None
    assert len(found) == 1 + 2 + 3 + 2 * 3  # all, each version; all traffic, each country
    assert checked > len(found) * 5 * 8
    assert (found[(None, None, None)].class_counts < 0).any()  # labels overturned: rows leave a class


def test_the_reliability_test_expects_the_classes_labelled_so_far() -> None:
    """One bin: 1 000 labelled rows of mean score 0.2, 380 of them positive; the reference's
    positive rate there is its mean score + 0.05. Calibrated like it, the bin expects 0.25 — of
    all its rows. If the reference had all its positives of that bin labelled at that stage and
    half its negatives, its labels expect 0.25·1 / (0.25·1 + 0.75·0.5) = 0.4."""
    cell = [ReliabilityPoint(0.1, 0.2, 1000, 0.2, 0.38)]
    reference = [ReliabilityPoint(0.1, 0.2, 100_000, 0.18, 0.23)]
    shares = np.ones((10, 2))
    shares[1] = (0.5, 1.0)  # (negatives, positives) of bin 1 labelled by then

    def p_value(expected: float, reference_rows: float) -> float:
        # the reference's residual is itself estimated, on the rows labelled at that age
        variance = 1000 * expected * (1 - expected) * (1 + 1000 / reference_rows)
        return float(stats.chi2.sf((380 - 1000 * expected) ** 2 / variance, 1))

    labelled_then = 100_000 * (0.23 * 1.0 + 0.77 * 0.5)
    assert reliability_p(cell, reference, shares) == pytest.approx(p_value(0.4, labelled_then), rel=1e-9)
    assert reliability_p(cell, reference) == pytest.approx(p_value(0.25, 100_000), rel=1e-9)
    assert reliability_p(cell, reference) < 1e-9 and reliability_p(cell, reference, shares) > 0.1


def skewed_world(miscalibrated_from: int | None = None) -> tuple[Data, ModelConfig]:
    """Three weeks of a calibrated fraud model, every row labelled (`class_skewed`), reference the
    first two; from day `miscalibrated_from` on its scores read 40 % low."""
    data = generate(30_000, seed=11, days=21)
    rng = np.random.default_rng(12)
    score = rng.beta(2, 5, data.ids.size)
    truth = rng.random(data.ids.size) < score
    if miscalibrated_from is not None:
        late = data.ts >= np.datetime64(day(miscalibrated_from).replace(tzinfo=None), "us")
        score = np.where(late, score * 0.6, score)
    data = dataclasses.replace(
        data,
        score=score,
        decision=score >= 0.5,
        label_ids=data.ids,
        label=truth.astype(float),
        labeled_at=data.ts,
    )
    model = dataclasses.replace(model_config(min_samples=200), reference=Reference(start=day(0), end=day(14)))
    return class_skewed(data, seed=13), model


def ece_cells(
    data: Data, model: ModelConfig, as_of: datetime, with_arrival: bool
) -> dict[datetime, CellResult]:
    """The default calibration-ece rule's cells over all traffic, by window."""
    con = duckdb.connect()
    write(con, model, data)
    scope = Scope.of(model, as_of=as_of)
    rows = compute_calibration(con, scope)
    arrival = label_arrival(con, scope, reference_rows_sql(scope)) if with_arrival else None
    rule = next(r for r in effective_rules(model) if r.name == "calibration-ece")
    evaluations = evaluate_rules([rule], {"calibration": rows}, model, as_of, arrival=arrival)
    (overall,) = [e for e in evaluations if not e.scope]
    return {cell.window_start: cell for cell in overall.cells}


def test_a_young_window_is_judged_against_the_reference_labelled_as_much() -> None:
    """Frauds are charged back within 8 days, legitimate requests confirmed over 20: two weeks after
    a window its labels pass the settled gate (80 % of the reference's share) yet hold too many
    frauds, and its ECE crosses. Against the reference's windows as their labels stood at the
    same age it is calibrated; a window whose scores do read 40 % low still fires."""
    as_of = day(35) + timedelta(hours=1)
    data, model = skewed_world()
    plain = ece_cells(data, model, as_of, with_arrival=False)
    matched = ece_cells(data, model, as_of, with_arrival=True)
    judged = [w for w, cell in plain.items() if cell.status != UNKNOWN or cell.p_value is not None]
    false_alarms = [w for w in judged if plain[w].status == CROSSED]
    assert false_alarms, "the world must show the bias the arrival corrects"
    assert all(matched[w].status in (OK, UNKNOWN) for w in plain)
    for w in false_alarms:
        assert matched[w].p_value > plain[w].p_value
    broken, model = skewed_world(miscalibrated_from=14)
    fired = ece_cells(broken, model, as_of, with_arrival=True)
    assert any(cell.status == CROSSED for w, cell in fired.items() if w >= day(14))


def test_kept_judgements_of_young_windows_move_with_now() -> None:
    """A replay step or a live refresh keeps the judgements of windows whose rows did not change
    (`JudgeMemo`) — but a young window's calibration test depends on its age: judged again; and
    the reference's label arrival counted afresh to the same counts keeps them."""
    data, model = skewed_world()
    con = duckdb.connect()
    write(con, model, data)
    as_of = day(35) + timedelta(hours=1)
    scope = Scope.of(model, as_of=as_of)
    tables = {"calibration": compute_calibration(con, scope)}
    arrival = label_arrival(con, scope, reference_rows_sql(scope))
    rules = [r for r in effective_rules(model) if r.name == "calibration-ece"]
    memo = JudgeMemo()
    for now in (day(28), as_of - timedelta(hours=5), as_of):
        kept = evaluate_rules(rules, tables, model, now, memo=memo, arrival=arrival)
        fresh = evaluate_rules(rules, tables, model, now, arrival=arrival)
        assert [e.cells for e in kept] == [e.cells for e in fresh]
    assert any(cell.p_value is not None for e in fresh for cell in e.cells)
    # the same counts counted again (a `--last` view, a version's reference): judgements kept
    recounted = label_arrival(con, scope, reference_rows_sql(scope))
    assert recounted is not arrival
    again = evaluate_rules(rules, tables, model, as_of, memo=memo, arrival=recounted)
    assert all(
        a is b for e, f in zip(kept, again, strict=True) for a, b in zip(e.cells, f.cells, strict=True)
    )
