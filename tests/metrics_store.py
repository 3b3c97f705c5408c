"""Canonical store tables built straight from numpy arrays, and the raw rows of a cell, for tests
that compare triage's statistics with scikit-learn / scipy / numpy on the same rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np

from triage.config import Columns, Costs, ModelConfig, Window
from triage.store.schema import labels_table, predictions_table
from triage.store.tables import create_shared_tables

T0 = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


DAY = Window(1, "d")
COSTS = Costs(5.0, 120.0)


def model_config(
    name: str = "fraud",
    segments: tuple[str, ...] = ("country",),
    min_samples: int = 1,
    window: Window = DAY,
    route: bool = True,
    costs: Costs = COSTS,
) -> ModelConfig:
    columns = Columns(
        id="id", timestamp="ts", score="score", version="version", route="route" if route else None
    )
    return ModelConfig(
        name=name,
        predictions="unused",
        labels="unused",
        columns=columns,
        window=window,
        segments=segments,
        min_samples=min_samples,
        costs=costs,
    )


@dataclass
class Data:
    """Raw prediction and label columns, as written to the store."""

    ids: np.ndarray
    ts: np.ndarray  # datetime64[us], naive UTC
    version: np.ndarray
    score: np.ndarray
    decision: np.ndarray
    latency: np.ndarray  # NaN = NULL
    cost: np.ndarray
    tokens: np.ndarray
    error: np.ndarray
    fallback: np.ndarray
    route: np.ndarray
    segments: dict[str, np.ndarray]
    label_ids: np.ndarray
    label: np.ndarray
    labeled_at: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def generate(
    n: int,
    seed: int = 0,
    days: int = 3,
    labelled: float = 0.7,
    round_scores: int | None = 2,
    threshold: float = 0.5,
) -> Data:
    """Scores with ties and exact bin edges, delayed labels (some corrected later), NULL ops values."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(T0.replace(tzinfo=None), "us")
    ts = start + (rng.random(n) * days * 86_400e6).astype("timedelta64[us]")
    score = rng.beta(2, 3, n)
    if round_scores is not None:
        score = np.round(score, round_scores)
    score[rng.random(n) < 0.02] = 1.0
    score[rng.random(n) < 0.02] = 0.0
    truth = rng.random(n) < np.clip(score * 1.2, 0, 1)
    latency = rng.gamma(2.0, 40.0, n)
    latency[rng.random(n) < 0.1] = np.nan
    ids = np.array([f"p{i}" for i in range(n)])
    has_label = rng.random(n) < labelled
    lag = (rng.exponential(12 * 3600e6, n)).astype("timedelta64[us]")
    label_ids = ids[has_label]
    label = truth[has_label].astype(float)
    labeled_at = ts[has_label] + lag[has_label]
    # A quarter of the labels are corrected (flipped) a day later: the later label counts once it exists.
    fix = rng.random(len(label_ids)) < 0.25
    label_ids = np.concatenate([label_ids, label_ids[fix]])
    labeled_at = np.concatenate([labeled_at, labeled_at[fix] + np.timedelta64(86_400, "s")])
    label = np.concatenate([label, 1.0 - label[fix]])
    return Data(
        ids=ids,
        ts=ts,
        version=np.where(rng.random(n) < 0.2, "v2", "v1"),
        score=score,
        decision=score >= threshold,
        latency=latency,
        cost=np.where(rng.random(n) < 0.05, np.nan, rng.random(n) * 0.01),
        tokens=np.where(rng.random(n) < 0.3, np.nan, rng.integers(10, 500, n).astype(float)),
        error=rng.random(n) < 0.03,
        fallback=rng.random(n) < 0.05,
        route=rng.choice(np.array(["primary", "canary"]), n),
        segments={"country": rng.choice(np.array(["US", "DE", "FR"]), n, p=[0.6, 0.3, 0.1])},
        label_ids=label_ids,
        label=label,
        labeled_at=labeled_at,
    )


def write(con: duckdb.DuckDBPyConnection, model: ModelConfig, data: Data) -> None:
    """Create predictions_m and labels_m with the canonical columns (NaN → NULL), and the shared
    tables (an empty registry: the labels' file order is not needed, one file holds them all)."""
    create_shared_tables(con)
    n = len(data.ids)
    columns = {
        "_id": data.ids,
        "_ts": data.ts,
        "_version": data.version,
        "_score": data.score,
        "_decision": data.decision,
        "_latency_ms": data.latency,
        "_cost": data.cost,
        "_tokens": data.tokens,
        "_error": data.error,
        "_fallback": data.fallback,
        "_route": data.route,
        **data.segments,
        **data.extra,
        "_file_id": np.zeros(n, dtype=np.int32),
        "_row": np.arange(1, n + 1),
    }
    con.register("_p", columns)
    doubles = ("_score", "_latency_ms", "_cost", "_tokens")
    select = ", ".join(
        f"CASE WHEN isnan({name}) THEN NULL ELSE {name} END AS {name}" if name in doubles else name
        for name in columns
    )
    con.execute(f"CREATE OR REPLACE TABLE {predictions_table(model.name)} AS SELECT {select} FROM _p")
    con.unregister("_p")
    m = len(data.label_ids)
    con.register(
        "_l",
        {
            "_id": data.label_ids,
            "_label": data.label,
            "_labeled_at": data.labeled_at,
            "_ingested_at": data.labeled_at,
            "_file_id": np.ones(m, dtype=np.int32),
            "_row": np.arange(1, m + 1),
        },
    )
    con.execute(f"CREATE OR REPLACE TABLE {labels_table(model.name)} AS SELECT * FROM _l")
    con.unregister("_l")


def as_of_labels(data: Data, as_of: datetime) -> dict[str, float]:
    """id → the label that counts as of T (the latest with labeled_at <= T), computed in Python."""
    cut = np.datetime64(as_of.astimezone(UTC).replace(tzinfo=None), "us")
    order = np.argsort(data.labeled_at, kind="stable")
    out: dict[str, float] = {}
    for i in order:
        if data.labeled_at[i] <= cut:
            out[str(data.label_ids[i])] = float(data.label[i])
    return out


def cell_mask(
    data: Data,
    start: datetime,
    end: datetime,
    version: str | None,
    segment: str | None,
    value: str | None,
    as_of: datetime,
) -> np.ndarray:
    """The rows of one cell: [start, end) ∩ (_ts <= as_of), the version (None = all) and slice."""
    naive = [np.datetime64(t.astimezone(UTC).replace(tzinfo=None), "us") for t in (start, end, as_of)]
    mask = (data.ts >= naive[0]) & (data.ts < naive[1]) & (data.ts <= naive[2])
    if version is not None:
        mask &= data.version == version
    if segment is not None:
        mask &= data.segments[segment] == value
    return mask


def one_window(
    scores: np.ndarray, labels: np.ndarray, label_delay_h: float = 1.0, segments: dict | None = None
) -> Data:
    """A one-window data set with the given scores; every row labelled `label_delay_h` hours later."""
    n = len(scores)
    start = np.datetime64(day(0).replace(tzinfo=None), "us")
    ts = start + (np.arange(n) * 1_000_000).astype("timedelta64[us]")
    ids = np.array([f"s{i}" for i in range(n)])
    return Data(
        ids=ids,
        ts=ts,
        version=np.full(n, "v1"),
        score=np.asarray(scores, dtype=float),
        decision=np.asarray(scores) >= 0.5,
        latency=np.full(n, np.nan),
        cost=np.full(n, np.nan),
        tokens=np.full(n, np.nan),
        error=np.zeros(n, dtype=bool),
        fallback=np.zeros(n, dtype=bool),
        route=np.full(n, "primary"),
        segments=segments or {},
        label_ids=ids,
        label=np.asarray(labels, dtype=float),
        labeled_at=ts + np.timedelta64(int(label_delay_h * 3600e6), "us"),
    )


def day(offset: int) -> datetime:
    return T0 + timedelta(days=offset)
