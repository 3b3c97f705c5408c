"""What the store holds, per model, and the quarantined rows: aggregated in SQL, returned as dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from triage.config import Config, ModelConfig
from triage.store.schema import (
    FAILURES_TABLE,
    FILES_TABLE,
    KIND_LABELS,
    KIND_PREDICTIONS,
    KIND_REFERENCE,
    QUARANTINE_TABLE,
    REASON_BAD_VALUE,
    labels_table,
    predictions_table,
    quote,
    reference_table,
)
from triage.store.tables import Feature, stored_layout, table_exists


@dataclass(frozen=True)
class ModelInfo:
    """What is stored for one model."""

    name: str
    rows: int
    versions: tuple[tuple[str, int], ...]  # (version, predictions), by version
    first_ts: datetime | None
    last_ts: datetime | None
    segments: tuple[tuple[str, int], ...]  # (segment column, distinct values, "(missing)" one of them)
    features: tuple[Feature, ...]
    label_rows: int
    labeled_predictions: int  # predictions with at least one label
    unknown_label_ids: int  # distinct label ids with no prediction (yet)
    reference_rows: int | None  # rows of the file-set reference; None for other references
    files: tuple[tuple[str, int], ...]  # (kind, files ingested): predictions, labels, reference
    # (reason, entries), most frequent first: quarantined rows, and `REASON_BAD_VALUE` values of kept rows
    quarantined: tuple[tuple[str, int], ...]
    bad_values: tuple[tuple[str, int], ...]  # (column, values of kept rows stored NULL), most first
    # (kind, path, reason) of the files the last ingest could not read, by path
    failed_files: tuple[tuple[str, str, str], ...] = ()

    @property
    def label_coverage(self) -> float | None:
        """Share of predictions with a label; None without predictions."""
        return self.labeled_predictions / self.rows if self.rows else None

    @property
    def quarantined_rows(self) -> int:
        return sum(n for reason, n in self.quarantined if reason != REASON_BAD_VALUE)

    def file_count(self, kind: str) -> int:
        """Files of one kind (predictions, labels, reference) in the registry."""
        return dict(self.files).get(kind, 0)


@dataclass(frozen=True)
class StoreInfo:
    """The config and store paths and what the store holds per model."""

    config_path: str
    store_path: str
    models: tuple[ModelInfo, ...]


@dataclass(frozen=True)
class QuarantinedRow:
    """One quarantined row: where it came from, why, and its raw text."""

    model: str
    kind: str
    file: str
    line: int
    reason: str
    detail: str | None
    raw: str | None


@dataclass(frozen=True)
class QuarantineShare:
    """A model's log of one kind (predictions, labels, reference) with quarantined rows: the rows
    ingested from it, those quarantined, and its most frequent reason with the first such row's detail."""

    kind: str
    rows: int  # stored and quarantined
    quarantined: int
    reason: str
    reason_rows: int
    detail: str | None


def quarantine_shares(con: duckdb.DuckDBPyConnection, model: str) -> tuple[QuarantineShare, ...]:
    """Each kind of log of `model` with quarantined rows: predictions, labels, reference (values
    stored as NULL in kept rows, `REASON_BAD_VALUE`, are no rows). Counts from the file registry."""
    if not table_exists(con, FILES_TABLE):
        return ()
    rows = con.execute(
        f"""
        WITH files AS (
            SELECT kind, sum(rows_added) AS added, sum(rows_quarantined) AS quarantined
            FROM {FILES_TABLE} WHERE model = $model GROUP BY kind
        ),
        reasons AS (
            SELECT kind, reason, count(*) AS n, first(detail ORDER BY file_id, line) AS detail
            FROM {QUARANTINE_TABLE} WHERE model = $model AND reason <> $kept GROUP BY kind, reason
        )
        SELECT f.kind, f.added + f.quarantined, f.quarantined, r.reason, r.n, r.detail
        FROM files AS f JOIN reasons AS r USING (kind)
        WHERE f.quarantined > 0
        QUALIFY row_number() OVER (PARTITION BY f.kind ORDER BY r.n DESC, r.reason) = 1
        ORDER BY list_position($kinds, f.kind)
        """,
        {"model": model, "kept": REASON_BAD_VALUE, "kinds": [KIND_PREDICTIONS, KIND_LABELS, KIND_REFERENCE]},
    ).fetchall()
    return tuple(
        QuarantineShare(str(kind), int(n), int(q), str(reason), int(rn), detail)
        for kind, n, q, reason, rn, detail in rows
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None) -> int:
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def time_range(
    con: duckdb.DuckDBPyConnection, model: ModelConfig, until: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """The first and last prediction time of a model (aware UTC); None when it has no predictions.
    With `until`, the last one at or before it, when there is one."""
    predictions = predictions_table(model.name)
    if not table_exists(con, predictions):
        return None
    before = "max(_ts)" if until is None else "max(_ts) FILTER (WHERE _ts <= ?)"
    params = [] if until is None else [until.astimezone(UTC).replace(tzinfo=None)]
    row = con.execute(
        f"SELECT min(_ts), coalesce({before}, max(_ts)) FROM {quote(predictions)}", params
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return row[0].replace(tzinfo=UTC), row[1].replace(tzinfo=UTC)


def after(con: duckdb.DuckDBPyConnection, model: ModelConfig, at: datetime) -> tuple[int, datetime | None]:
    """How many of a model's predictions are stamped after `at`, and the latest (aware UTC)."""
    predictions = predictions_table(model.name)
    if not table_exists(con, predictions):
        return 0, None
    row = con.execute(
        f"SELECT count(*), max(_ts) FROM {quote(predictions)} WHERE _ts > ?",
        [at.astimezone(UTC).replace(tzinfo=None)],
    ).fetchone()
    assert row is not None
    return int(row[0]), None if row[1] is None else row[1].replace(tzinfo=UTC)


def looks_back(con: duckdb.DuckDBPyConnection, model: ModelConfig, at: datetime, now: datetime) -> bool:
    """Whether a prediction or label of the model is stamped after `at` and by `now`: a view as of
    `at` is then a look back at the past, not the present (a prediction stamped ahead of the clock
    does not make the present a look back)."""
    bounds = [at.astimezone(UTC).replace(tzinfo=None), now.astimezone(UTC).replace(tzinfo=None)]
    for table, column in ((predictions_table(model.name), "_ts"), (labels_table(model.name), "_labeled_at")):
        if table_exists(con, table):
            row = con.execute(
                f"SELECT EXISTS (SELECT 1 FROM {quote(table)} WHERE {column} > ? AND {column} <= ?)", bounds
            ).fetchone()
            if row is not None and row[0]:
                return True
    return False


def model_info(con: duckdb.DuckDBPyConnection, model: ModelConfig) -> ModelInfo:
    """Row counts, versions, time range, segments, features, label coverage and quarantine of a model."""
    predictions = predictions_table(model.name)
    labels = labels_table(model.name)
    has_predictions = table_exists(con, predictions)
    has_labels = table_exists(con, labels)
    rows, first_ts, last_ts = 0, None, None
    versions: tuple[tuple[str, int], ...] = ()
    segments: tuple[tuple[str, int], ...] = ()
    features: tuple[Feature, ...] = ()
    if has_predictions:
        table = quote(predictions)
        layout = stored_layout(con, model)
        features = layout.features if layout else ()
        segment_names = layout.segments if layout else ()
        # Distinct values as `triage check` slices them: a missing value is the slice "(missing)".
        distinct = "".join(
            f", count(DISTINCT {quote(name)}) + (count({quote(name)}) < count(*))::INTEGER"
            for name in segment_names
        )
        row = con.execute(f"SELECT count(*), min(_ts), max(_ts){distinct} FROM {table}").fetchone()
        assert row is not None
        rows, first_ts, last_ts = int(row[0]), row[1], row[2]
        segments = tuple((name, int(row[3 + i])) for i, name in enumerate(segment_names))
        versions = tuple(
            (str(v), int(n))
            for v, n in con.execute(
                f"SELECT _version, count(*) FROM {table} GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
    label_rows = labeled = unknown = 0
    if has_labels:
        label_rows = _scalar(con, f"SELECT count(*) FROM {quote(labels)}")
        if has_predictions:
            labeled = _scalar(
                con,
                f"SELECT count(*) FROM {quote(predictions)} WHERE _id IN (SELECT _id FROM {quote(labels)})",
            )
            unknown = _scalar(
                con,
                f"SELECT count(DISTINCT _id) FROM {quote(labels)} "
                f"WHERE _id NOT IN (SELECT _id FROM {quote(predictions)})",
            )
        else:
            unknown = _scalar(con, f"SELECT count(DISTINCT _id) FROM {quote(labels)}")
    reference_rows = None
    if model.reference.kind == "files":
        reference = reference_table(model.name)
        reference_rows = (
            _scalar(con, f"SELECT count(*) FROM {quote(reference)}") if table_exists(con, reference) else 0
        )
    quarantined: tuple[tuple[str, int], ...] = ()
    bad_values: tuple[tuple[str, int], ...] = ()
    files: tuple[tuple[str, int], ...] = ()
    if table_exists(con, FILES_TABLE):
        files = tuple(
            (str(kind), int(n))
            for kind, n in con.execute(
                f"SELECT kind, count(*) FROM {FILES_TABLE} WHERE model = ? GROUP BY 1 ORDER BY 1",
                [model.name],
            ).fetchall()
        )
        quarantined = tuple(
            (str(reason), int(n))
            for reason, n in con.execute(
                f"SELECT reason, count(*) FROM {QUARANTINE_TABLE} WHERE model = ? "
                f"GROUP BY 1 ORDER BY 2 DESC, 1",
                [model.name],
            ).fetchall()
        )
        bad_values = tuple(
            (str(column), int(n))
            for column, n in con.execute(
                f"SELECT split_part(detail, ': ', 1), count(*) FROM {QUARANTINE_TABLE} "
                "WHERE model = ? AND reason = ? GROUP BY 1 ORDER BY 2 DESC, 1",
                [model.name, REASON_BAD_VALUE],
            ).fetchall()
        )
    failed_files: tuple[tuple[str, str, str], ...] = ()
    if table_exists(con, FAILURES_TABLE):
        failed_files = tuple(
            (str(kind), str(path), str(reason))
            for kind, path, reason in con.execute(
                f"SELECT kind, path, reason FROM {FAILURES_TABLE} WHERE model = ? ORDER BY path",
                [model.name],
            ).fetchall()
        )
    return ModelInfo(
        name=model.name,
        rows=rows,
        versions=versions,
        first_ts=first_ts,
        last_ts=last_ts,
        segments=segments,
        features=features,
        label_rows=label_rows,
        labeled_predictions=labeled,
        unknown_label_ids=unknown,
        reference_rows=reference_rows,
        files=files,
        quarantined=quarantined,
        bad_values=bad_values,
        failed_files=failed_files,
    )


def store_info(con: duckdb.DuckDBPyConnection, config: Config) -> StoreInfo:
    """`model_info` for every configured model, with the config and store paths."""
    return StoreInfo(
        config_path=str(config.path),
        store_path=str(config.store_path),
        models=tuple(model_info(con, model) for model in config.models),
    )


def quarantined_rows(
    con: duckdb.DuckDBPyConnection,
    model: str | None = None,
    limit: int = 50,
    reason: str | None = None,
) -> tuple[tuple[QuarantinedRow, ...], int]:
    """Up to `limit` quarantined rows (oldest file and line first) and how many match in total."""
    if not table_exists(con, QUARANTINE_TABLE):
        return (), 0
    conditions, params = [], []
    if model is not None:
        conditions.append("model = ?")
        params.append(model)
    if reason is not None:
        conditions.append("reason = ?")
        params.append(reason)
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    total = _scalar(con, f"SELECT count(*) FROM {QUARANTINE_TABLE}{where}", list(params))
    rows = con.execute(
        f"SELECT model, kind, file, line, reason, detail, raw FROM {QUARANTINE_TABLE}{where} "
        f"ORDER BY file_id, line LIMIT {int(limit)}",
        params,
    ).fetchall()
    return tuple(
        QuarantinedRow(str(m), str(k), str(f), int(n), str(r), d, raw) for m, k, f, n, r, d, raw in rows
    ), total
