"""The rows a statistic reads, with the labels that count as of T, and the shared labelled aggregates.

A source is a SELECT of prediction rows: the model's predictions up to the as-of time (the
evaluated windows) or its reference rows; either is cut into the scope's windows. Each row carries
the label that counts as of T (`triage.store.queries`: the latest label of its id with
`_labeled_at <= T`); a label > 0 is the positive class.

Calibration and performance both stand on two aggregates built here, once per evaluation:
`CellCounts` (one row per cell: volume, decisions, labels, confusion counts, label lag quantiles)
and `ScoreCounts` (labelled rows per cell × distinct score), from which AUROC, average precision,
DeLong components and every calibration bin follow. DuckDB counts the cells and hands over the
labelled scores with small integer cell codes; numpy sorts them by (cell, score) and accumulates
— DuckDB's GROUP BY (cell, score) and partitioned running sums were several times slower.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

import duckdb
import numpy as np

from triage.metrics.ecdf_merge import ascending
from triage.metrics.frame import (
    Scope,
    cell_grouping,
    grouping_set,
    segment_value_sql,
    text_literal,
    timestamp_sql,
    window_filter_sql,
    window_start_sql,
)
from triage.store.queries import labeled_predictions_sql, predictions_sql, reference_sql
from triage.store.schema import quote

CellKey = tuple[datetime, str | None, str | None, str | None]  # window_start, version, segment, value


def aware(value: datetime) -> datetime:
    """A naive UTC timestamp from the store as an aware UTC datetime."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive_utc(value: datetime) -> datetime:
    """An aware time as the naive UTC timestamp the store keeps."""
    return value.astimezone(UTC).replace(tzinfo=None)


def window_rows_sql(scope: Scope) -> str:
    """The model's predictions up to as-of (and within the last N windows when asked)."""
    return f"SELECT * FROM ({predictions_sql(scope.model)}) WHERE {window_filter_sql(scope)}"


def reference_rows_sql(scope: Scope) -> str:
    """The model's reference rows as of T (a file-set reference is not cut: its times are its own)."""
    rows = reference_sql(scope.model)
    if scope.model.reference.kind == "files":
        return rows
    return f"SELECT * FROM ({rows}) WHERE _ts <= {scope.as_of_sql}"


def _select(scope: Scope, columns: str) -> str:
    # Each segment as its cell's `segment_value`: a NULL and a logged "(missing)" are one slice in
    # every statistic (grouped on the raw column they were two cells with one name).
    segments = "".join(f", {segment_value_sql(s, 'p.')} AS {quote(s)}" for s in scope.segments)
    start = window_start_sql(scope.window, "p._ts")
    return f"SELECT {start} AS window_start, p._version{segments}, {columns}"


def labelled_rows_sql(scope: Scope, source: str, columns: str) -> str:
    """The rows of `source` with `window_start`, `_version`, the segments, `columns` and the as-of
    label: `_labelled`, `_positive` (label > 0), `_lag_s` (seconds from `_ts` to the counting label)."""
    # From some windows on, only their ids' labels are ranked (not the whole label log).
    labelled = labeled_predictions_sql(scope.model, scope.as_of, source, few=scope.since is not None)
    return (
        f"{_select(scope, columns)}, p._label IS NOT NULL AS _labelled, p._label > 0 AS _positive, "
        f"date_diff('microsecond', p._ts, p._labeled_at) / 1e6 AS _lag_s FROM ({labelled}) p"
    )


def plain_rows_sql(scope: Scope, source: str, columns: str) -> str:
    """The rows of `source` with `window_start`, `_version`, the segments and `columns`."""
    return f"{_select(scope, columns)} FROM ({source}) p"


def window_end(scope: Scope, start: datetime) -> datetime:
    """The exclusive end of the window starting at `start` (calendar months for `mo`)."""
    return scope.window.end_of(start)


class CellFields(TypedDict):
    """The cell fields every result row starts with."""

    window_start: datetime
    window_end: datetime
    version: str | None
    segment: str | None
    segment_value: str | None
    n: int


# scikit-learn's `mean_absolute_percentage_error` divides by max(|label|, this): a zero label's
# error counts, enormous, rather than being dropped or dividing by zero.
MAPE_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class ErrorSums:
    """A regression cell's labelled rows (e = prediction − label, ape = |e| / max(|label|,
    `MAPE_EPS`)): the sums behind MAE, RMSE and MAPE, and the sample variances (ddof 1; None below
    two rows) behind their intervals. Sums are compensated (DuckDB's `fsum`), so a cell's sums do not
    depend on the order its rows are read in; variances are DuckDB's `var_samp`, which does not
    subtract two large sums (an error of 1e8 ± 0.01 keeps its spread)."""

    abs_sum: float  # Σ |e|
    sq_sum: float  # Σ e²
    ape_sum: float  # Σ ape
    abs_var: float | None  # s² of |e|
    sq_var: float | None  # s² of e²
    ape_var: float | None  # s² of ape
    zero_labels: int  # labels equal to 0: their ape is |e| / MAPE_EPS


@dataclass(frozen=True)
class CellCounts:
    """Counts of one cell over all its rows, and of its rows labelled as of T."""

    window_start: datetime
    window_end: datetime
    version: str | None
    segment: str | None
    segment_value: str | None
    n: int
    n_decision: int  # rows with _decision true
    n_labeled: int
    tp: int
    fp: int
    fn: int
    tn: int
    lag_p50_s: float | None
    lag_p95_s: float | None
    fp_by_class: tuple[int, ...]  # per cost class (`Costs.classes`)
    fn_by_class: tuple[int, ...]
    errors: ErrorSums | None = None  # a regression model's (its rows have no decision)

    @property
    def cell(self) -> CellFields:
        """The cell fields of a result row."""
        return CellFields(
            window_start=self.window_start,
            window_end=self.window_end,
            version=self.version,
            segment=self.segment,
            segment_value=self.segment_value,
            n=self.n,
        )


@dataclass(frozen=True)
class ScoreCounts:
    """Labelled rows per cell × distinct score, sorted by (cell, score), with cumulative counts.

    Row arrays: `cell` (index into `LabelledCells.cells`), `score`, `n`, `n_pos` and the counts of
    the same cell strictly below the score, `n_below` and `pos_below`. Cell arrays: `m` (labelled
    rows with a score), `p` (positives), and `start`/`end`, the cell's slice of the row arrays.
    Counts are float64 (exact below 2⁵³).
    """

    cell: np.ndarray
    score: np.ndarray
    n: np.ndarray
    n_pos: np.ndarray
    n_below: np.ndarray
    pos_below: np.ndarray
    m: np.ndarray
    p: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def from_counts(
        cls, cells: int, cell: np.ndarray, score: np.ndarray, n: np.ndarray, n_pos: np.ndarray
    ) -> ScoreCounts:
        """Accumulate distinct (cell, score) counts given sorted by (cell, score)."""
        end = np.cumsum(np.bincount(cell, minlength=cells))
        start = end - np.bincount(cell, minlength=cells)
        total, positives = _prefix(n), _prefix(n_pos)
        n_below = total[:-1] - total[start][cell]
        pos_below = positives[:-1] - positives[start][cell]
        m, p = total[end] - total[start], positives[end] - positives[start]
        return cls(cell, score, n, n_pos, n_below, pos_below, m, p, start, end)

    def per_cell(self, values: np.ndarray) -> np.ndarray:
        """Σ of a per-row quantity within each cell."""
        return np.bincount(self.cell, weights=values, minlength=len(self.m))

    def order_statistic(self, cell: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """The score at 0-based `rank` of the sorted labelled scores of each `cell` (m > 0)."""
        total = _prefix(self.n)
        return self.score[np.searchsorted(total[1:], total[self.start[cell]] + rank, side="right")]

    def bin_bounds(self, edges: np.ndarray) -> np.ndarray:
        """Row bounds (cells, len(edges) + 2) of the bins `searchsorted(edges, score, "left")`.

        `edges` is (len,) for all cells or (cells, len) per cell; bin j of cell c holds the rows
        bounds[c, j] .. bounds[c, j + 1] (scores in (e_j, e_{j+1}]).
        """
        cells = len(self.m)
        per_cell = np.broadcast_to(edges, (cells, edges.shape[-1]))
        inner = np.empty((cells, per_cell.shape[1]), dtype=np.int64)
        for c in range(cells):
            scores = self.score[self.start[c] : self.end[c]]
            inner[c] = self.start[c] + np.searchsorted(scores, per_cell[c], side="right")
        return np.column_stack([self.start, inner, self.end])

    def bin_sums(self, values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        """Σ of a per-row quantity over each bin of `bin_bounds`: shape (cells, bins).

        Each bin is summed on its own (not as a difference of running sums), so a cell's sums do
        not depend on the cells before it: the same rows give the same floats in any batch.
        """
        starts, ends = bounds[:, :-1].ravel(), bounds[:, 1:].ravel()
        sums = np.add.reduceat(np.append(values, 0.0), starts)  # bins tile the rows in order
        sums[starts == ends] = 0.0
        return sums.reshape(len(bounds), -1)


def small_codes(codes: np.ndarray) -> np.ndarray:
    """Non-negative integer codes in the narrowest type: numpy radix-sorts 16-bit keys."""
    return codes.astype(np.uint16) if not len(codes) or int(codes.max()) < 1 << 16 else codes


def _prefix(values: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(values)])


# Score rows (cell × distinct score) handled at once; bounds memory to a few hundred MB.
BATCH_SCORE_ROWS = 3_000_000

Reducer = Callable[[ScoreCounts], Sequence[Any]]


@dataclass(frozen=True)
class LabelledCells:
    """The per-cell counts of one evaluation and what reducers made of its score counts.

    `reduced[name][i]` is reducer `name`'s result for `cells[i]` (see `LabelledRows.cells`).
    """

    cells: list[CellCounts]
    reduced: dict[str, list[Any]]

    @classmethod
    def build(
        cls,
        con: duckdb.DuckDBPyConnection,
        scope: Scope,
        reducers: Mapping[str, Reducer],
        source: str | None = None,
    ) -> LabelledCells:
        """The cells of `source` (a SELECT of prediction rows; default: the scope's windows)."""
        return LabelledRows(con, scope, source).cells(reducers)


class LabelledRows:
    """The rows of `source` (default: the scope's windows) joined to their as-of labels.

    `cells` materialises the rows of the windows it computes in a temporary table (dropped when
    done), so an evaluation whose windows are all cached never holds the rows in memory.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: Scope, source: str | None = None) -> None:
        self.con, self.scope = con, scope
        value = ", p._label AS _y" if scope.model.task == "regression" else ""
        self.rows = labelled_rows_sql(
            scope,
            source or window_rows_sql(scope),
            f"p._score, p._decision, {_cost_class_sql(scope)} AS _cost_class{value}",
        )

    def cells(
        self, reducers: Mapping[str, Reducer], windows: Sequence[datetime] | None = None
    ) -> LabelledCells:
        """The cells of the rows (of `windows` only, when given) and what `reducers` make of them.

        The rows are materialised once in a temporary table; from it one GROUPING SETS pass gives
        the per-cell counts; then, for batches of windows of at most about `BATCH_SCORE_ROWS`
        score rows, another pass with the score gives that batch's `ScoreCounts`, which each
        reducer turns into one result per cell (in the batch's cell order). Score rows find their
        cells by small integer codes: only numbers leave DuckDB.
        """
        reduced: dict[str, list[Any]] = {name: [] for name in reducers}
        if windows is not None and not windows:
            return LabelledCells([], reduced)
        table = f"_triage_rows_{uuid.uuid4().hex}"
        where = (
            "" if windows is None else f" WHERE window_start IN ({', '.join(map(timestamp_sql, windows))})"
        )
        try:
            self.con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM ({self.rows}){where}")
            cells = _cell_counts(self.con, self.scope, table)
            order: list[int] = []
            # Without reducers (a regression model's cells) there is no score pass.
            for batch in _batches(cells) if reducers else [list(range(len(cells)))]:
                # The cells of one grouping set together, in `grouping_set`'s order.
                batch.sort(key=lambda i: grouping_set(self.scope, cells[i].version, cells[i].segment))
                order += batch
                if not reducers:
                    continue
                scores = _score_counts(self.con, self.scope, table, [cells[i] for i in batch])
                for name, reduce in reducers.items():
                    reduced[name] += reduce(scores)
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        return LabelledCells([cells[i] for i in order], reduced)


def _batches(cells: list[CellCounts]) -> list[list[int]]:
    """Cell indices grouped by whole windows, each group within about BATCH_SCORE_ROWS score rows."""
    by_window: dict[datetime, list[int]] = {}
    for index, cell in enumerate(cells):
        by_window.setdefault(cell.window_start, []).append(index)
    batches: list[list[int]] = [[]]
    size = 0
    for start in sorted(by_window):
        window_rows = sum(cells[i].n_labeled for i in by_window[start])
        if batches[-1] and size + window_rows > BATCH_SCORE_ROWS:
            batches.append([])
            size = 0
        batches[-1] += by_window[start]
        size += window_rows
    return [batch for batch in batches if batch]


def _cell_counts(con: duckdb.DuckDBPyConnection, scope: Scope, rows: str) -> list[CellCounts]:
    grouping = cell_grouping(scope)
    # The false positives and false negatives of each cost class (`_cost_class_sql`).
    classes = range(len(scope.model.costs.classes))
    wrong = [
        f"count(*) FILTER (WHERE _labelled AND {error} AND _cost_class = {k})"
        for error in ("_decision AND NOT _positive", "NOT _decision AND _positive")
        for k in classes
    ]
    result = con.execute(
        f"""SELECT * FROM (
            SELECT {grouping.select}, count(*) AS n,
            count(*) FILTER (WHERE _decision) AS n_decision,
            count(*) FILTER (WHERE _labelled) AS n_labeled,
            count(*) FILTER (WHERE _labelled AND _decision AND _positive) AS tp,
            count(*) FILTER (WHERE _labelled AND _decision AND NOT _positive) AS fp,
            count(*) FILTER (WHERE _labelled AND NOT _decision AND _positive) AS fn,
            count(*) FILTER (WHERE _labelled AND NOT _decision AND NOT _positive) AS tn,
            quantile_cont(_lag_s, [0.5, 0.95]) FILTER (WHERE _labelled) AS lag,
            {", ".join(wrong + _error_sums_sql(scope))}
        FROM {rows} GROUP BY {grouping.group_by})"""
    ).fetchall()
    cells = []
    for row in result:
        lag = row[11]
        cells.append(
            CellCounts(
                window_start=aware(row[0]),
                window_end=window_end(scope, aware(row[0])),
                version=row[1],
                segment=row[2],
                segment_value=row[3],
                n=row[4],
                n_decision=row[5],
                n_labeled=row[6],
                tp=row[7],
                fp=row[8],
                fn=row[9],
                tn=row[10],
                lag_p50_s=None if lag is None else lag[0],
                lag_p95_s=None if lag is None else lag[1],
                fp_by_class=tuple(row[12 : 12 + len(classes)]),
                fn_by_class=tuple(row[12 + len(classes) : 12 + 2 * len(classes)]),
                errors=_error_sums(row[12 + 2 * len(classes) :]),
            )
        )
    return cells


def _error_sums_sql(scope: Scope) -> list[str]:
    """The aggregates of a regression model's `ErrorSums` (none for a classifier)."""
    if scope.model.task != "regression":
        return []
    error = "(_score - _y)"
    terms = [f"abs{error}", f"{error} ^ 2", f"(abs{error} / greatest(abs(_y), {MAPE_EPS!r}))"]
    return [
        *(f"fsum({term}) FILTER (WHERE _labelled)" for term in terms),
        *(f"var_samp({term}) FILTER (WHERE _labelled)" for term in terms),
        "count(*) FILTER (WHERE _labelled AND _y = 0)",
    ]


def _error_sums(values: Sequence[Any]) -> ErrorSums | None:
    """`_error_sums_sql`'s aggregates as ErrorSums (None: a classifier's cell); no labels sum to 0."""
    if not values:
        return None
    abs_sum, sq_sum, ape_sum, abs_var, sq_var, ape_var, zero_labels = values
    return ErrorSums(abs_sum or 0.0, sq_sum or 0.0, ape_sum or 0.0, abs_var, sq_var, ape_var, zero_labels)


def _cost_class_sql(scope: Scope) -> str:
    """A row's cost class: k when its value of the cost segment is the k-th listed in
    `[model.costs.by_segment]`, else 0 (the default costs)."""
    costs = scope.model.costs
    if costs.segment is None or not costs.by_value:
        return "0"
    cases = " ".join(f"WHEN {text_literal(c.value)} THEN {k}" for k, c in enumerate(costs.by_value, 1))
    return f"CASE {segment_value_sql(costs.segment, 'p.')} {cases} ELSE 0 END"


def _score_counts(
    con: duckdb.DuckDBPyConnection, scope: Scope, rows: str, cells: list[CellCounts]
) -> ScoreCounts:
    """The score counts of `cells` (whole windows, grouped by grouping set in `grouping_set`'s
    order), indexed by position in `cells`.

    DuckDB hands over each labelled row's score, class, window and the position of its version and
    segment values among the cells' (small integers); numpy sorts the rows by score once, then,
    per grouping set, stably by the row's cell in that set (a radix sort of small integers), which
    leaves every cell's rows in score order: the distinct (cell, score) runs are the counts.
    Grouping by (cell, score) in SQL did the same work several times slower.
    """
    windows = sorted({cell.window_start for cell in cells})
    versions = sorted({cell.version for cell in cells if cell.version is not None})
    values = {
        segment: sorted({cell.segment_value or "" for cell in cells if cell.segment == segment})
        for segment in scope.segments
    }
    positions = "".join(
        f", coalesce(list_position(?::VARCHAR[], {segment_value_sql(segment)}), 0) AS _s{k}"
        for k, segment in enumerate(scope.segments)
    )
    listed = ", ".join(timestamp_sql(start) for start in windows)
    # The codes DuckDB gives below: list positions (1-based; 0 = all versions / all traffic).
    window_code = {start: i for i, start in enumerate(windows)}
    version_code = {name: i + 1 for i, name in enumerate(versions)}
    value_code = {
        seg: {value: i + 1 for i, value in enumerate(listed_values)} for seg, listed_values in values.items()
    }
    arrays = con.execute(
        f"""SELECT _score, _positive, list_position([{listed}], window_start) - 1 AS _w,
            coalesce(list_position(?::VARCHAR[], _version::VARCHAR), 0) AS _v{positions}
        FROM {rows} WHERE _labelled AND _score IS NOT NULL AND window_start IN ({listed})""",
        [versions, *values.values()],
    ).fetchnumpy()
    # Scores are in [0, 1] (the store quarantines others); equal ones in any order: `_distinct`
    # counts each (cell, score) run whole.
    by_score, score = ascending(np.asarray(arrays["_score"], dtype=np.float64))
    positive = np.asarray(arrays["_positive"], dtype=np.float64)[by_score]
    window = np.asarray(arrays["_w"], dtype=np.int64)[by_score]
    version = np.asarray(arrays["_v"], dtype=np.int64)[by_score]
    set_of = np.array([grouping_set(scope, cell.version, cell.segment) for cell in cells], dtype=np.int64)
    if np.any(np.diff(set_of) < 0):
        raise RuntimeError("score counts need the cells grouped by grouping set")
    bounds = np.searchsorted(set_of, np.arange(2 * (1 + len(scope.segments)) + 1))
    parts: list[tuple[np.ndarray, ...]] = []
    for by_version in (False, True):
        for k, segment in enumerate((None, *scope.segments)):
            index = grouping_set(scope, "" if by_version else None, segment)
            low, high = int(bounds[index]), int(bounds[index + 1])
            if low == high:
                continue
            # Each cell of the set, and each row, as (window, version or 0, value or 0) in one integer.
            sizes = (len(versions) + 1, len(values[segment]) + 1 if segment else 1)
            lookup = np.full(len(windows) * sizes[0] * sizes[1], -1, dtype=np.int64)
            for position, cell in enumerate(cells[low:high]):
                v = version_code[cell.version] if cell.version is not None else 0
                s = value_code[segment][cell.segment_value or ""] if segment else 0
                lookup[(window_code[cell.window_start] * sizes[0] + v) * sizes[1] + s] = position
            row_value = np.asarray(arrays[f"_s{k - 1}"], dtype=np.int64)[by_score] if segment else 0
            local = lookup[(window * sizes[0] + (version if by_version else 0)) * sizes[1] + row_value]
            if local.size and local.min() < 0:
                raise RuntimeError("a labelled row's cell is not among the cells; report this as a bug")
            order = np.argsort(small_codes(local), kind="stable")  # by cell, rows still in score order
            parts.append(_distinct(local[order] + low, score[order], positive[order]))
    if not parts:
        empty = np.zeros(0)
        return ScoreCounts.from_counts(len(cells), empty.astype(np.int64), empty, empty, empty)
    codes, distinct, n, n_pos = (np.concatenate(column) for column in zip(*parts, strict=True))
    return ScoreCounts.from_counts(len(cells), codes, distinct, n, n_pos)


def _distinct(
    cell: np.ndarray, score: np.ndarray, positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cell, score, rows, positives) of each distinct (cell, score) run of rows sorted by both."""
    new = np.ones(len(cell), dtype=bool)
    new[1:] = (cell[1:] != cell[:-1]) | (score[1:] != score[:-1])
    first = np.flatnonzero(new)
    n = np.diff(np.append(first, len(cell))).astype(np.float64)
    return cell[first], score[first], n, np.add.reduceat(positive, first) if len(first) else n
