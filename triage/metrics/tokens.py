"""Every window's token (`source.WindowToken`), from a scan of the history or from what changed since.

A window's token is four sums over its predictions up to T: their count, the xor of their row
hashes, how many are labelled as of T and the xor of their counting labels' hashes. Counts and
xors can be updated, so an evaluation that follows another one of the same definition (a live
refresh, the next replay step) need not join the whole history to its labels again: it reads
what changed since — predictions ingested since or stamped in (T0, T], labels ingested since or
stamped in (T0, T] — and corrects the sums of the windows they touch: a new prediction adds
itself and its label as of T; an older one whose id got a label takes out its label as of T0
(among the labels there were then) and puts in its label as of T.

"What was there then" is a `Watermark` per table: per file, its last row and the count and xor
of its rows' hashes up to it, and the file's registry entry (`_triage_files`). Before using it,
one scan checks that those rows are still exactly there; if a file was replaced, rows were
deleted, the store rebuilt, or T moved back, the tokens come from a full scan instead. Either way
the tokens are the same. Ingest changes a file's rows only in the transaction that rewrites its
registry entry (a new `ingested_at`), so the scan reads only the files whose entry changed: a
refresh re-checks the log being appended to, not the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from triage.metrics.frame import Scope, timestamp_sql, window_start_sql
from triage.metrics.source import aware, labelled_rows_sql, window_rows_sql
from triage.store.queries import labels_as_of_sql, labels_sql, predictions_sql, stored_rows_sql
from triage.store.schema import FILES_TABLE, KIND_LABELS, KIND_PREDICTIONS
from triage.store.tables import table_exists


def _prediction_hash(table: str = "") -> str:
    """A prediction row's hash: its identity and place (`table`: the alias and dot, or none)."""
    return f"hash({table}_id, {table}_file_id, {table}_row)"


def _counted_label_hash(prediction: str, label: str) -> str:
    """The hash of the label that counts for a prediction, as its window's labelled token has it."""
    return f"hash({prediction}._id, {label}._label, {label}._labeled_at)"


# A label row's hash, for the watermark: also its value and time, so that a replaced label file
# with the same rows but other labels is noticed.
_LABEL_ROW_HASH = "hash(_id, _label, _labeled_at, _file_id, _row)"

_CHANGED = "temp._triage_changed_predictions"  # per connection, inside `window_tokens`' transaction


@dataclass(frozen=True)
class WindowToken:
    """What identifies a window's rows: `rows` (its predictions: count and the xor of their row
    hashes, as `quality.CellCounts.token`) and `labelled` (those and the labels that count as of T);
    `n_labelled` of its rows are labelled, `arrived` of them by labels stamped after the time
    `window_tokens` was given (0 without one)."""

    n: int
    rows: str
    labelled: str
    n_labelled: int
    arrived: int


@dataclass(frozen=True)
class Watermark:
    """The rows of a table an evaluation saw: per file id, (last row, row count, xor of row hashes);
    and the registry entries of the table's files then (None without a registry)."""

    files: dict[int, tuple[int, int, int]]
    registry: dict[int, tuple[object, ...]] | None


@dataclass(frozen=True)
class Sums:
    """A window's token as numbers: predictions, xor of their row hashes, labelled ones, xor of
    their labels' hashes (None while none is labelled, as DuckDB's `bit_xor` of no rows)."""

    n: int
    h: int
    labelled: int
    hl: int | None

    def token(self, arrived: int) -> WindowToken:
        rows = f"{self.n}:{self.h}"
        return WindowToken(self.n, rows, f"{rows}|{self.labelled}:{self.hl}", self.labelled, arrived)


@dataclass(frozen=True)
class TokenState:
    """The windows' sums as of `as_of`, and the rows they were computed from."""

    as_of: datetime
    sums: dict[datetime, Sums]
    predictions: Watermark
    labels: Watermark


def window_tokens(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    previous: TokenState | None = None,
    arrived_after: datetime | None = None,
) -> tuple[dict[datetime, WindowToken], TokenState | None]:
    """Every window's token as of the scope's T, counting the labels stamped after `arrived_after`;
    and the state a later call can start from (None for a scope cut to some windows: `last`,
    `since`, `until`).

    With a `previous` state of the same definition, earlier T and the same `arrived_after` (or
    none), only what changed since is read, when its rows are all still there.
    """
    if scope.last is not None or scope.since is not None or scope.until is not None:
        sums, arrived = _scanned(con, scope, arrived_after)
        return _window_tokens(sums, arrived), None
    # One snapshot of the store: the state's watermarks describe exactly the rows its sums count.
    con.execute("BEGIN TRANSACTION")
    try:
        found = _tokens(con, scope, previous, arrived_after)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return found


def _tokens(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    previous: TokenState | None,
    arrived_after: datetime | None,
) -> tuple[dict[datetime, WindowToken], TokenState]:
    model = scope.model
    predictions = _watermark(
        con,
        predictions_sql(model),
        _prediction_hash(),
        _registry(con, model.name, KIND_PREDICTIONS),
        previous.predictions if previous else None,
    )
    labels = _watermark(
        con,
        labels_sql(model),
        _LABEL_ROW_HASH,
        _registry(con, model.name, KIND_LABELS),
        previous.labels if previous else None,
    )
    usable = (
        previous is not None
        and predictions.kept
        and labels.kept
        and previous.as_of <= scope.as_of
        and arrived_after in (None, previous.as_of)
    )
    if previous is not None and usable:
        fresh = (
            _fresh_sql(previous.predictions, predictions.changed),
            _fresh_sql(previous.labels, labels.changed),
        )
        sums, arrived = _updated(con, scope, previous, fresh, arrived_after is not None)
    else:
        sums, arrived = _scanned(con, scope, arrived_after)
    return _window_tokens(sums, arrived), TokenState(scope.as_of, sums, predictions.now, labels.now)


def _window_tokens(sums: dict[datetime, Sums], arrived: dict[datetime, int]) -> dict[datetime, WindowToken]:
    return {w: s.token(arrived.get(w, 0)) for w, s in sorted(sums.items())}


def _scanned(
    con: duckdb.DuckDBPyConnection, scope: Scope, arrived_after: datetime | None
) -> tuple[dict[datetime, Sums], dict[datetime, int]]:
    """Every window's sums from the scope's predictions joined to their labels as of T, streamed."""
    columns = f"p._labeled_at, {_prediction_hash('p.')} AS _h, {_counted_label_hash('p', 'p')} AS _hl"
    rows = labelled_rows_sql(scope, window_rows_sql(scope), columns)
    new = (
        "0"
        if arrived_after is None
        else f"count(*) FILTER (WHERE _labeled_at > {timestamp_sql(arrived_after)})"
    )
    found = con.execute(
        f"""SELECT window_start, count(*), bit_xor(_h), count(*) FILTER (WHERE _labelled),
            bit_xor(_hl) FILTER (WHERE _labelled), {new} FROM ({rows}) GROUP BY window_start"""
    ).fetchall()
    sums = {aware(start): Sums(n, h, labelled, hl) for start, n, h, labelled, hl, _ in found}
    return sums, {aware(start): arrived for start, *_, arrived in found}


@dataclass(frozen=True)
class _Checked:
    now: Watermark  # the table's rows now
    kept: bool  # every row of the earlier watermark is still there, unchanged
    changed: frozenset[int] | None = None  # the files that may hold rows since (None: any file)


def _registry(con: duckdb.DuckDBPyConnection, model: str, kind: str) -> dict[int, tuple[object, ...]] | None:
    """The registry entry of each of a model's files of one kind (None for a store without one)."""
    if not table_exists(con, FILES_TABLE):
        return None
    found = con.execute(
        f"""SELECT file_id, path, ingested_at, rows_added, bytes_consumed, content_hash
        FROM {FILES_TABLE} WHERE model = ? AND kind = ?""",
        [model, kind],
    ).fetchall()
    return {int(file_id): tuple(entry) for file_id, *entry in found}


def _watermark(
    con: duckdb.DuckDBPyConnection,
    rows: str,
    row_hash: str,
    registry: dict[int, tuple[object, ...]] | None,
    before: Watermark | None,
) -> _Checked:
    """The table's watermark now, and whether `before`'s rows are all still there: one scan of
    the files whose registry entry changed since `before` (of every file without one)."""
    unchanged: dict[int, tuple[int, int, int]] = {}
    if before is not None and registry is not None and before.registry is not None:
        unchanged = {
            f: mark
            for f, mark in before.files.items()
            if f in registry and registry[f] == before.registry.get(f)
        }
    checked = {f: mark for f, mark in before.files.items() if f not in unchanged} if before else {}
    skipped = f"WHERE NOT list_contains({sorted(unchanged)}::INTEGER[], _file_id)" if unchanged else ""
    files, last = list(checked), [mark[0] for mark in checked.values()]
    found = con.execute(
        f"""WITH w AS (SELECT unnest(?::INTEGER[]) AS f, unnest(?::BIGINT[]) AS r)
        SELECT t._file_id, max(t._row), count(*), bit_xor(t._h),
            count(*) FILTER (WHERE t._row <= w.r), bit_xor(t._h) FILTER (WHERE t._row <= w.r)
        FROM (SELECT _file_id, _row, {row_hash} AS _h FROM ({rows}) {skipped}) AS t
            LEFT JOIN w ON t._file_id = w.f
        GROUP BY t._file_id""",
        [files, last],
    ).fetchall()
    now = Watermark(
        unchanged | {int(f): (int(row), int(n), int(h)) for f, row, n, h, _, _ in found}, registry
    )
    if before is None:
        return _Checked(now, False)
    seen = {int(f): (int(n), int(h or 0)) for f, _, _, _, n, h in found}
    kept = all(seen.get(f) == (n, h) for f, (_, n, h) in checked.items())
    return _Checked(now, kept, None if registry is None else frozenset(registry) - set(unchanged))


def _fresh_sql(watermark: Watermark, changed: frozenset[int] | None) -> str:
    """Predicate: the row came after `watermark` (a later row of a file it saw, or another file)
    — in one of the `changed` files, when known: a file whose registry entry is unchanged holds
    the rows it held (`IN` a few ids also lets DuckDB skip row groups of other files).

    The last rows seen are a list indexed by file id (0 where it saw no file; NULL past the end).
    """
    last = [0] * max(watermark.files, default=0)
    for f, (row, _, _) in watermark.files.items():
        last[f - 1] = row
    later = f"_row > coalesce([{', '.join(map(str, last))}][_file_id], 0)"
    if changed is None:
        return later
    return f"(_file_id IN ({', '.join(map(str, sorted(changed)))}) AND {later})" if changed else "false"


def _updated(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    previous: TokenState,
    fresh: tuple[str, str],
    count_arrived: bool,
) -> tuple[dict[datetime, Sums], dict[datetime, int]]:
    """The previous sums corrected by the rows that changed since (module docstring); `fresh`
    tells the predictions and labels ingested since (`_fresh_sql`)."""
    model = scope.model
    t, t0 = scope.as_of_sql, timestamp_sql(previous.as_of)
    fresh_prediction, fresh_label = fresh
    # The changed rows' labels, read once; as of T among all, as of T0 among those there were then.
    now = labels_as_of_sql(model, scope.as_of, rows="SELECT * FROM candidates")
    before = labels_as_of_sql(model, previous.as_of, rows="SELECT * FROM candidates WHERE NOT _fresh")
    start = window_start_sql(scope.window, "c._ts")
    # The changed predictions go to a temporary table: with its exact row count the planner hashes
    # them, not the whole label log, to find their labels. Each part is a filter DuckDB can push
    # into its scan (an OR of them makes it evaluate every part on every row): the new and later
    # predictions, and those whose labels moved, found by their stored id hashes (UNION drops a row
    # found by both: the same row gives the same columns).
    added = f"{fresh_prediction} OR _ts > {t0}"
    columns = f"_id, _idh, _ts, _file_id, _row, {added} AS _added"
    labels = labels_sql(model)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_CHANGED} AS
        WITH moved AS MATERIALIZED (
            SELECT _id, _idh FROM ({labels}) WHERE _labeled_at <= {t} AND _labeled_at > {t0}
            UNION ALL
            SELECT _id, _idh FROM ({labels}) WHERE _labeled_at <= {t} AND {fresh_label})
        SELECT {columns} FROM ({predictions_sql(model)}) WHERE _ts <= {t} AND {fresh_prediction}
        UNION
        SELECT {columns} FROM ({predictions_sql(model)}) WHERE _ts <= {t} AND _ts > {t0}
        UNION
        SELECT {columns} FROM ({stored_rows_sql(predictions_sql(model), "SELECT * FROM moved")})
        WHERE _ts <= {t}"""
    )
    changed = stored_rows_sql(labels_sql(model), f"SELECT _id, _idh FROM {_CHANGED}")
    found = con.execute(
        f"""WITH candidates AS MATERIALIZED (
            SELECT *, {fresh_label} AS _fresh FROM ({changed}) WHERE _labeled_at <= {t})
        SELECT {start} AS window_start,
            count(*) FILTER (WHERE c._added),
            bit_xor({_prediction_hash("c.")}) FILTER (WHERE c._added),
            count(n._label) - count(b._label) FILTER (WHERE NOT c._added),
            bit_xor({_counted_label_hash("c", "n")}) FILTER (WHERE n._label IS NOT NULL),
            bit_xor({_counted_label_hash("c", "b")}) FILTER (WHERE b._label IS NOT NULL AND NOT c._added),
            count(*) FILTER (WHERE n._labeled_at > {t0})
        FROM {_CHANGED} AS c
            LEFT JOIN ({now}) AS n ON c._id = n._id LEFT JOIN ({before}) AS b ON c._id = b._id
        GROUP BY window_start"""
    ).fetchall()
    con.execute(f"DROP TABLE {_CHANGED}")
    sums = dict(previous.sums)
    arrived: dict[datetime, int] = {}
    for start_, added, h, labelled, hl_now, hl_before, new in found:
        window = aware(start_)
        old = sums.get(window, Sums(0, 0, 0, None))
        n_labelled = old.labelled + labelled
        hl = (old.hl or 0) ^ (hl_now or 0) ^ (hl_before or 0)
        sums[window] = Sums(old.n + added, old.h ^ (h or 0), n_labelled, hl if n_labelled else None)
        if count_arrived:
            arrived[window] = new
    return sums, arrived
