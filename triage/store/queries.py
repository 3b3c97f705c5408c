"""SQL the statistics engine builds on: reference rows, labels as of a time, labelled predictions.

Each function returns a SELECT (no trailing semicolon) to use as a subquery; times are naive UTC.
Keeping these here means "what is the reference" and "which label counts" have one definition.
"""

from __future__ import annotations

from datetime import UTC, datetime

from triage.config import ModelConfig
from triage.store.coerce import literal
from triage.store.schema import (
    FILES_TABLE,
    KIND_LABELS,
    labels_table,
    predictions_table,
    quote,
    reference_table,
)
from triage.store.tables import ID_HASH


def timestamp_literal(at: datetime) -> str:
    """A TIMESTAMP literal for a datetime (aware values are converted to UTC; naive ones are UTC)."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return f"TIMESTAMP '{at.isoformat(sep=' ')}'"


def stored_rows_sql(rows: str, ids: str) -> str:
    """The rows of `rows` (a SELECT of stored rows) whose id is one of those `ids` selects (a SELECT
    of `_id` and its hash `_idh`, evaluated once): found by the stored hash first (an integer probe
    of every row), then compared (strings, the hits only; materialised, or the planner probes
    both on every row)."""
    return (
        f"WITH _ids AS MATERIALIZED ({ids}), "
        f"_hits AS MATERIALIZED (SELECT * FROM ({rows}) WHERE _idh IN (SELECT _idh FROM _ids)) "
        f"SELECT * FROM _hits WHERE _id IN (SELECT _id FROM _ids)"
    )


def hashed_ids_sql(source: str) -> str:
    """The `_id` and `_idh` of rows that have no stored hash (a chunk being ingested): `source` is
    what follows FROM (a table, optionally with its WHERE)."""
    return f"SELECT _id, {ID_HASH} AS _idh FROM {source}"


def predictions_sql(model: ModelConfig) -> str:
    """All stored predictions of a model."""
    return f"SELECT * FROM {quote(predictions_table(model.name))}"


def reference_sql(model: ModelConfig) -> str:
    """The rows that define "normal" for a model, with the columns of its predictions table.

    - time range: predictions with start <= _ts < end (an open side is unbounded);
    - first N days of a version: that version's predictions with _ts < its first _ts + N days;
    - file set: the rows of reference_m.
    """
    reference = model.reference
    if reference.kind == "files":
        return f"SELECT * FROM {quote(reference_table(model.name))}"
    table = quote(predictions_table(model.name))
    if reference.kind == "version":
        version = (reference.version or "").replace("'", "''")
        days = int(reference.days or 0)
        return (
            f"SELECT * FROM {table} WHERE _version = '{version}' AND _ts < "
            f"(SELECT min(_ts) FROM {table} WHERE _version = '{version}') + INTERVAL {days} DAY"
        )
    conditions = []
    if reference.start is not None:
        conditions.append(f"_ts >= {timestamp_literal(reference.start)}")
    if reference.end is not None:
        conditions.append(f"_ts < {timestamp_literal(reference.end)}")
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    return f"SELECT * FROM {table}{where}"


def labels_sql(model: ModelConfig) -> str:
    """Every stored label row of a model."""
    return f"SELECT * FROM {quote(labels_table(model.name))}"


def label_file_ranks_sql(model: ModelConfig) -> str:
    """(_rank_file_id, _file_rank) of a model's label files: their place in path order, as the
    registry names them (from the config's folder, absolute outside it) — the order ingest reads
    a source's files in. It depends on the files, not on when each was ingested."""
    return (
        f"SELECT file_id AS _rank_file_id, row_number() OVER (ORDER BY path) AS _file_rank "
        f"FROM {FILES_TABLE} WHERE model = {literal(model.name)} AND kind = {literal(KIND_LABELS)}"
    )


def labels_as_of_sql(
    model: ModelConfig, at: datetime | None = None, ids: str | None = None, rows: str | None = None
) -> str:
    """One label per id: the latest with _labeled_at <= `at` (all labels when `at` is None), of
    the ids `ids` selects when given (a SELECT of `_id` and `_idh`), among `rows` (a SELECT of
    label rows; default: every stored label).

    "Latest" orders by (_labeled_at, the file's place in path order, _row): a later label
    supersedes an earlier one, and between labels stamped at the same time the one in the later
    file (`label_file_ranks_sql`) / line wins — the same whichever file was ingested first.
    Columns: _id, _label, _labeled_at, _ingested_at, _file_id, _row.
    """
    rows = rows or labels_sql(model)
    if ids is not None:
        rows = stored_rows_sql(rows, ids)
    return (
        f"SELECT _id, _label, _labeled_at, _ingested_at, _file_id, _row "
        f"{_ranked_labels_sql(model, at, rows)} "
        f"QUALIFY row_number() OVER "
        f"(PARTITION BY _id ORDER BY _labeled_at DESC, _file_rank DESC, _row DESC) = 1"
    )


def label_history_sql(model: ModelConfig, at: datetime, source: str) -> str:
    """The rows of `source` (a SELECT of stored prediction rows), each joined to every label of its
    id with _labeled_at <= `at` — one row with NULLs where none — and the label each superseded
    (`_previous`: the one before it in `labels_as_of_sql`'s order, NULL for the first): how the
    row's label stood at any time up to `at`. Adds _event, _event_at and _previous.

    The history is ordered on the rows' keys alone and joined back to their other columns (a row
    is one `(_file_id, _row)`): ordering the whole rows took 0.8 GB for a 2.7 M-row reference
    with four segments, this 0.5 GB."""
    ranked = _ranked_labels_sql(model, at, labels_sql(model))
    labels = f"SELECT _id, _label, _labeled_at, _file_rank, _row {ranked}"
    history = (
        # A label file without a rank sorts first here as it sorts last in labels_as_of_sql's DESC.
        f"SELECT p._file_id AS _history_file, p._row AS _history_row, l._label AS _event, "
        f"l._labeled_at AS _event_at, lag(l._label) OVER (PARTITION BY p._file_id, p._row "
        f"ORDER BY l._labeled_at, l._file_rank NULLS FIRST, l._row) AS _previous "
        f"FROM (SELECT _id, _file_id, _row FROM ({source})) AS p LEFT JOIN ({labels}) AS l ON p._id = l._id"
    )
    return (
        f"SELECT p.*, h._event, h._event_at, h._previous FROM ({source}) AS p "
        f"JOIN ({history}) AS h ON p._file_id = h._history_file AND p._row = h._history_row"
    )


def label_history_token_sql(model: ModelConfig, at: datetime, source: str) -> str:
    """One row: how many labels up to `at` the ids of `source` (a SELECT of stored prediction rows)
    have, and the xor of their hashes — every label, not only those that count (a provisional
    label ingested after the one that superseded it changes no counting label, but the history
    `label_history_sql` reads). Ids are matched by their stored hash (`_idh`): another id's label
    that shares one only adds to the digest."""
    return (
        f"SELECT count(*), bit_xor(hash(_idh, _label, _labeled_at, _file_id, _row)) "
        f"FROM ({labels_sql(model)}) "
        f"WHERE _labeled_at <= {timestamp_literal(at)} AND _idh IN (SELECT _idh FROM ({source}))"
    )


def _ranked_labels_sql(model: ModelConfig, at: datetime | None, rows: str) -> str:
    """FROM the label `rows` (up to `at`) with each file's `_file_rank`."""
    where = f" WHERE _labeled_at <= {timestamp_literal(at)}" if at is not None else ""
    # The registry is small: joining it costs a hash probe per label row.
    return f"FROM ({rows}) LEFT JOIN ({label_file_ranks_sql(model)}) ON _file_id = _rank_file_id{where}"


def labeled_predictions_sql(
    model: ModelConfig, at: datetime | None = None, source: str | None = None, few: bool = False
) -> str:
    """Predictions (or the rows of `source`, a SELECT) left-joined to their label as of `at`.

    Adds _label (NULL when not labelled yet) and _labeled_at to every prediction column. With
    `few` (a source of a small part of the predictions) only the labels of its ids are ranked.
    """
    rows = source or predictions_sql(model)
    labels = labels_as_of_sql(model, at, f"SELECT _id, _idh FROM ({rows})" if few else None)
    return (
        f"SELECT p.*, l._label, l._labeled_at FROM ({rows}) AS p LEFT JOIN ({labels}) AS l ON p._id = l._id"
    )
