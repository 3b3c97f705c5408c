"""Incremental, transactional ingest of prediction, label and reference logs into the store.

For each configured source file the registry (`_triage_files`) decides what to do:

- unseen → read it whole;
- same size and mtime (and, for text logs, fully consumed) → nothing;
- a plain CSV / JSON Lines file that grew, whose consumed prefix still has the same fingerprint
  and ended with a newline → read only the lines after it;
- anything else that changed (Parquet, gzip'd logs, a text log that was rewritten, truncated or
  whose unterminated last line grew) → delete its earlier rows and quarantine entries, read it whole;
- written since at the length read (touched, copied, or edited in place) → every byte compared
  with the `digest` taken when the file was last read whole: identical → only the registry's
  size/mtime are updated; else (or after an append, whose digest is not taken) → read it whole.

Each file is one transaction: its rows, its quarantined rows and its registry row commit together,
so a process killed mid-file leaves the store as if the file had never been seen.

A file is read in chunks (32 MiB of text, or a million Parquet rows), so memory stays bounded.
Each chunk is staged in a temporary table by one SQL query that coerces every value (see
`coerce.py`) and picks the first reason that applies (order of `schema.QUARANTINE_REASONS`); good
rows go to the model's table, the others to `_triage_quarantine` with the raw line. An optional
value (a numeric feature, latency, cost, tokens, error, fallback) that cannot be coerced does not
quarantine its row: the row is stored with the value NULL, and the value is recorded in the
quarantine as `REASON_BAD_VALUE`, one entry per value. Nothing is dropped: for every file, rows
read = rows added + rows quarantined (blank lines and the CSV header are not rows). A prediction id
seen before (in the store, or earlier in the file) is a duplicate: the first is kept. Labels are
all kept; the latest per id wins at query time (`queries.py`).

Cost of a pass: a stat per file and, per changed file, its new bytes plus one scan of the model's
stored `_id` column per chunk (duplicate detection) — proportional to new data plus that scan.
"""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from triage.config import OPTIONAL_ROLES, REQUIRED_ROLES, Config, ModelConfig, label_id_hint
from triage.store import readers
from triage.store.classes import ClassTally, class_tallies
from triage.store.coerce import (
    blank_sql,
    bool_sql,
    category_sql,
    class_sql,
    double_sql,
    finite_double_sql,
    id_sql,
    label_sql,
    literal,
    nullish_sql,
    number_sql,
    optional_double_sql,
    shown_sql,
    text_sql,
    timestamp_sql,
)
from triage.store.errors import StoreError
from triage.store.queries import hashed_ids_sql, stored_rows_sql
from triage.store.schema import (
    FAILURES_TABLE,
    FILES_TABLE,
    KIND_LABELS,
    KIND_PREDICTIONS,
    KIND_REFERENCE,
    QUARANTINE_TABLE,
    REASON_BAD_TIMESTAMP,
    REASON_BAD_TYPE,
    REASON_BAD_VALUE,
    REASON_DUPLICATE_ID,
    REASON_LABEL_NOT_BINARY,
    REASON_LABEL_NOT_FINITE,
    REASON_MISSING_ID,
    REASON_MISSING_LABEL,
    REASON_MISSING_SCORE,
    REASON_MISSING_TIMESTAMP,
    REASON_SCORE_NOT_A_NUMBER,
    REASON_SCORE_NOT_FINITE,
    REASON_SCORE_OUT_OF_RANGE,
    labels_table,
    predictions_table,
    quote,
    reference_table,
)
from triage.store.sources import (
    SourceError,
    SourceFile,
    TailCheck,
    TextReader,
    csv_header,
    digest,
    expand,
    fingerprint,
    read_error,
)
from triage.store.tables import (
    ID_HASH,
    LABEL_COLUMNS,
    NUMERIC,
    STORED_COLUMNS,
    Layout,
    check_settings,
    create_model_tables,
    create_shared_tables,
    drop_model,
    infer_layout,
    next_file_id,
    record_settings,
    stored_layout,
    table_exists,
)

STAGED = "_triage_staged"  # one file's rows, coerced, with their quarantine reason
# The staged columns before the stored ones: the row's line, its quarantine reason, detail and raw
# text, and the bad values of a kept row (`REASON_BAD_VALUE`: "column: value is not …", one each).
STAGED_HEAD = (
    ("_row", "BIGINT"),
    ("_reason", "VARCHAR"),
    ("_detail", "VARCHAR"),
    ("_raw", "VARCHAR"),
    ("_issues", "VARCHAR[]"),
)
ROWS = "_triage_rows"  # one chunk of a file's rows as its reader yields them
PARQUET_CHUNK_ROWS = 1_000_000
# Test hook: pause inside the file's transaction (after its rows are written, before commit) when
# the file's path contains this text, after touching the marker file. Lets a test SIGKILL mid-ingest.
PAUSE_ENV = "TRIAGE_TEST_PAUSE_INGEST"
PAUSE_MARKER_ENV = "TRIAGE_TEST_PAUSE_MARKER"

NEW, APPENDED, REPLACED, UNCHANGED, FAILED = "new", "appended", "replaced", "unchanged", "error"


@dataclass(frozen=True)
class FileIngest:
    """What one ingest pass did with one file."""

    model: str
    kind: str
    path: str
    action: str  # new | appended | replaced | unchanged | error
    rows_added: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: tuple[tuple[str, int], ...] = ()
    unknown_label_ids: int = 0
    message: str = ""
    bad_values: tuple[tuple[str, int], ...] = ()  # (column, values stored as NULL in kept rows)


@dataclass(frozen=True)
class IngestSummary:
    """The result of one ingest pass over every configured source."""

    files: tuple[FileIngest, ...]
    warnings: tuple[str, ...] = ()
    unmatched: tuple[tuple[str, str], ...] = ()  # (config key, pattern) of sources matching no file
    duration_s: float = 0.0

    @property
    def rows_added(self) -> int:
        return sum(f.rows_added for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def quarantined_by_reason(self) -> tuple[tuple[str, int], ...]:
        """Quarantined rows of this pass per reason, most frequent first."""
        return most_first(pair for f in self.files for pair in f.quarantined_by_reason)

    @property
    def unknown_label_ids(self) -> int:
        return sum(f.unknown_label_ids for f in self.files)

    @property
    def errors(self) -> tuple[FileIngest, ...]:
        return tuple(f for f in self.files if f.action == FAILED)

    def count(self, action: str) -> int:
        """How many files had this action (new, appended, replaced, unchanged, error)."""
        return sum(1 for f in self.files if f.action == action)

    @property
    def changed(self) -> bool:
        """Whether this pass stored or quarantined anything (a live view should refresh)."""
        return any(f.action in (NEW, APPENDED, REPLACED) for f in self.files)


def most_first(pairs: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """The counts summed per name, most frequent first (ties by name)."""
    counts: Counter[str] = Counter()
    for name, count in pairs:
        counts[name] += count
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class _Registered:
    file_id: int
    size: int
    mtime: float
    content_hash: str
    bytes_consumed: int
    lines_consumed: int
    ends_with_newline: bool
    rows_added: int
    rows_quarantined: int
    first_ingested_at: datetime
    full_hash: str | None  # `digest` of the bytes consumed; None after an append (not hashed again)


@dataclass
class _Run:
    """State of one ingest pass."""

    con: duckdb.DuckDBPyConnection
    config: Config
    now: str  # the pass's UTC time as an ISO string (label ingest time, registry times)
    files: list[FileIngest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    # The current model's class columns (`[model.positive]`) by kind of log, over the files read
    tallies: dict[str, ClassTally] = field(default_factory=dict)
    # Per (model key, kind, column, config key): the files without that column, in the order read
    absent: dict[tuple[str, str, str, str], list[str]] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def absent_warnings(self) -> list[str]:
        """One warning per mapped column that files lack (a column added or dropped one day leaves
        every earlier or later file without it): how many, and the first and last of them."""
        found = []
        for (key, kind, name, config_key), paths in self.absent.items():
            column = f"no column {name!r} ({key}.{config_key})"
            if len(paths) == 1:
                found.append(f"{key}: {kind} file {paths[0]} has {column}; stored as NULL")
            else:
                found.append(
                    f"{key}: {len(paths)} {kind} files have {column}, from {paths[0]} to {paths[-1]}; "
                    "stored as NULL"
                )
        return found


def ingest(con: duckdb.DuckDBPyConnection, config: Config) -> IngestSummary:
    """Ingest what is new in every configured source of every model; see the module docstring."""
    started = time.monotonic()
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    run = _Run(con, config, now)
    create_shared_tables(con)
    for index, model in enumerate(config.models):
        _ingest_model(run, model, index)
    return IngestSummary(
        files=tuple(run.files),
        warnings=(*run.warnings, *run.absent_warnings()),
        unmatched=tuple(run.unmatched),
        duration_s=time.monotonic() - started,
    )


def _expand(run: _Run, pattern: str, key: str) -> list[SourceFile]:
    resolved = run.config.resolve(pattern)
    try:
        files = expand(resolved)
    except SourceError as exc:
        raise StoreError(f"{run.config.path}: {key}: {exc}") from None
    # A broad glob must not read triage's own files as logs.
    store = os.path.abspath(run.config.store_path)
    own = {store, store + ".wal", store + ".tmp", os.path.abspath(run.config.path)}
    files = [f for f in files if f.path not in own]
    if not files:
        run.unmatched.append((key, pattern))
    return files


def _ingest_model(run: _Run, model: ModelConfig, index: int) -> None:
    key = f"model[{index}]"
    con = run.con
    built = check_settings(con, model, upgrade=True)
    predictions = _expand(run, model.predictions, f"{key}.predictions")
    layout = stored_layout(con, model) if built else None
    if layout is None and (predictions or not model.features_inferred):
        partition_keys = {k for f in predictions for k, _ in f.partitions}
        log_columns = readers.union_columns(con, predictions) if model.features_inferred else {}
        layout = infer_layout(model, log_columns, partition_keys)
    # Without a layout (inferred features, no prediction file yet) only the labels table exists.
    con.begin()
    try:
        create_model_tables(con, model, layout)  # also reference_m after switching to a file set
        if not built:
            record_settings(con, model, run.now)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    registry = _registry(run, model.name)
    # After an earlier ingest of a kind, a pass over a few new rows (a `--follow` tick of three
    # legitimate labels) cannot tell a rare class from a wrong name: only a first read warns.
    read_before = {kind for kind, _ in registry}
    first = len(run.files)
    run.tallies = class_tallies(model)
    for source in predictions if layout is not None else []:
        _ingest_file(run, model, key, KIND_PREDICTIONS, source, layout, registry)
    if any(f.action == REPLACED for f in run.files[first:]):
        _reread_duplicates(run, model, key, predictions, layout)
    if model.labels:
        for source in _expand(run, model.labels, f"{key}.labels"):
            _ingest_file(run, model, key, KIND_LABELS, source, layout, registry)
    if layout is not None and model.reference.kind == "files" and model.reference.files:
        references = _expand(run, model.reference.files, f"{key}.reference.files")
        _forget_unlisted_references(con, model, {run.config.within(f.path) for f in references}, registry)
        for source in references:
            _ingest_file(run, model, key, KIND_REFERENCE, source, layout, registry)
    _record_failures(run, model, run.files[first:])
    for kind, tally in run.tallies.items():
        mistake = None if kind in read_before else tally.mistake(run.config.path, key, "read by this ingest")
        if mistake is not None:
            run.warn(str(mistake))


def _record_failures(run: _Run, model: ModelConfig, files: list[FileIngest]) -> None:
    """Keep the files of the model that failed in this pass, with why (`triage info` lists them
    until a pass reads them): the failures of its previous pass are forgotten."""
    failed = [f for f in files if f.action == FAILED]
    run.con.begin()
    try:
        run.con.execute(f"DELETE FROM {FAILURES_TABLE} WHERE model = ?", [model.name])
        for f in failed:
            run.con.execute(
                f"INSERT INTO {FAILURES_TABLE} VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP))",
                [model.name, f.kind, run.config.within(f.path), f.message, run.now],
            )
        run.con.commit()
    except BaseException:
        run.con.rollback()
        raise


def _reread_duplicates(
    run: _Run, model: ModelConfig, key: str, sources: list[SourceFile], layout: Layout | None
) -> None:
    """Read again, whole, the prediction files with rows quarantined as duplicate ids, after a file
    was replaced: it may no longer hold the first copy of their ids. Whichever copy comes first now
    is kept, the others are quarantined again; each such file is listed once, as replaced."""
    holding = {
        int(row[0])
        for row in run.con.execute(
            f"SELECT DISTINCT file_id FROM {QUARANTINE_TABLE} WHERE model = ? AND kind = ? AND reason = ?",
            [model.name, KIND_PREDICTIONS, REASON_DUPLICATE_ID],
        ).fetchall()
    }
    registry = _registry(run, model.name)
    for source in sources:
        entry = registry.get((KIND_PREDICTIONS, run.config.within(source.path)))
        if entry is None or entry.file_id not in holding:
            continue
        run.files[:] = [
            f for f in run.files if (f.model, f.kind, f.path) != (model.name, KIND_PREDICTIONS, source.path)
        ]
        _ingest_file(run, model, key, KIND_PREDICTIONS, source, layout, registry, again=True)


def _registry(run: _Run, model_name: str) -> dict[tuple[str, str], _Registered]:
    """The model's registered files by (kind, path as `Config.within` names it); an entry written
    with an absolute path inside the project is found by its relative name."""
    rows = run.con.execute(
        f"SELECT kind, path, file_id, size, mtime, content_hash, bytes_consumed, lines_consumed, "
        f"ends_with_newline, rows_added, rows_quarantined, first_ingested_at, full_hash "
        f"FROM {FILES_TABLE} WHERE model = ?",
        [model_name],
    ).fetchall()
    return {(str(row[0]), run.config.within(str(row[1]))): _Registered(*row[2:]) for row in rows}


def _forget_unlisted_references(
    con: duckdb.DuckDBPyConnection,
    model: ModelConfig,
    listed: set[str],
    registry: dict[tuple[str, str], _Registered],
) -> None:
    """A reference is exactly its file set: rows of files no longer in it are removed."""
    for (kind, path), entry in list(registry.items()):
        if kind != KIND_REFERENCE or path in listed:
            continue
        con.begin()
        try:
            _delete_file_rows(con, reference_table(model.name), entry.file_id)
            con.execute(f"DELETE FROM {FILES_TABLE} WHERE file_id = ?", [entry.file_id])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        del registry[(kind, path)]


def _delete_file_rows(con: duckdb.DuckDBPyConnection, table: str, file_id: int) -> None:
    con.execute(f"DELETE FROM {quote(table)} WHERE _file_id = ?", [file_id])
    con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE file_id = ?", [file_id])


def _target_table(model: ModelConfig, kind: str) -> str:
    if kind == KIND_LABELS:
        return labels_table(model.name)
    if kind == KIND_REFERENCE:
        return reference_table(model.name)
    return predictions_table(model.name)


@dataclass(frozen=True)
class _Plan:
    action: str
    start_byte: int = 0
    start_line: int = 0


def _plan(source: SourceFile, stat: os.stat_result, previous: _Registered | None) -> _Plan:
    if previous is None:
        return _Plan(NEW)
    size, mtime = stat.st_size, stat.st_mtime
    fully_consumed = not source.appendable or previous.bytes_consumed == size
    if previous.size == size and previous.mtime == mtime and fully_consumed:
        return _Plan(UNCHANGED)
    if size == previous.bytes_consumed:
        # Written since, at the length read: touched, copied, or edited in place (an edit in the
        # middle keeps both ends, so only every byte tells). Unknown after an append: read again.
        same = previous.full_hash is not None and digest(source.path, size) == previous.full_hash
        return _Plan(UNCHANGED if same else REPLACED)
    if source.appendable:
        consumed = previous.bytes_consumed
        grew = size > consumed and fingerprint(source.path, consumed) == previous.content_hash
        if grew and previous.ends_with_newline:
            return _Plan(APPENDED, consumed, previous.lines_consumed)
    return _Plan(REPLACED)


def _ingest_file(
    run: _Run,
    model: ModelConfig,
    key: str,
    kind: str,
    source: SourceFile,
    layout: Layout | None,
    registry: dict[tuple[str, str], _Registered],
    again: bool = False,
) -> None:
    """Ingest one file as its plan says (`_plan`); `again`: read it whole, whatever changed."""
    con = run.con
    previous = registry.get((kind, run.config.within(source.path)))
    try:
        stat = os.stat(source.path)
        plan = _Plan(REPLACED) if again and previous is not None else _plan(source, stat, previous)
    except FileNotFoundError:
        return  # removed since it was listed; its rows stay
    except OSError as exc:
        run.files.append(FileIngest(model.name, kind, source.path, FAILED, message=f"cannot read ({exc})"))
        return
    if plan.action == UNCHANGED:
        if previous is not None and (previous.size, previous.mtime) != (stat.st_size, stat.st_mtime):
            con.execute(
                f"UPDATE {FILES_TABLE} SET size = ?, mtime = ? WHERE file_id = ?",
                [stat.st_size, stat.st_mtime, previous.file_id],
            )
        run.files.append(FileIngest(model.name, kind, source.path, UNCHANGED))
        return
    con.begin()
    try:
        result = _load(run, model, key, kind, source, layout, previous, plan, stat)
        _pause_for_tests(source.path)
        con.commit()
    except (duckdb.Error, SourceError, UnicodeError, OSError, EOFError, zlib.error) as exc:
        con.rollback()
        run.files.append(FileIngest(model.name, kind, source.path, FAILED, message=read_error(exc)))
        return
    except BaseException:
        con.rollback()
        raise
    finally:
        con.execute(f"DROP TABLE IF EXISTS temp.{STAGED}")
        con.execute(f"DROP TABLE IF EXISTS temp.{ROWS}")
    run.files.append(result)


def _pause_for_tests(path: str) -> None:
    needle = os.environ.get(PAUSE_ENV)
    if needle and needle in path:
        marker = os.environ.get(PAUSE_MARKER_ENV)
        if marker:
            with open(marker, "w", encoding="utf-8") as handle:
                handle.write(path)
        time.sleep(600)


@dataclass(frozen=True)
class _Column:
    """A user column the ingest query reads: its alias in the reader's rows and the type of its values."""

    alias: str
    duckdb_type: str


def _load(
    run: _Run,
    model: ModelConfig,
    key: str,
    kind: str,
    source: SourceFile,
    layout: Layout | None,
    previous: _Registered | None,
    plan: _Plan,
    stat: os.stat_result,
) -> FileIngest:
    """Stage, store and register one file inside the caller's transaction."""
    con = run.con
    layout = layout or Layout((), ())  # label logs do not depend on the predictions' layout
    target = _target_table(model, kind)
    if plan.action == REPLACED and previous is not None:
        _delete_file_rows(con, target, previous.file_id)
    # A replaced file's rows get a new file id, so that they hash unlike the rows they replace —
    # but a label file keeps its own: a label's hash holds its value and time. (Labels of one id
    # at one time rank by their file's path, not by file id: `queries.labels_as_of_sql`.)
    appended = plan.action == APPENDED and previous is not None
    keeps_id = appended or kind == KIND_LABELS
    file_id = previous.file_id if keeps_id and previous is not None else next_file_id(con)

    wanted = _wanted_columns(model, kind, layout)
    names = list(dict.fromkeys(wanted.values()))
    header = csv_header(source) if source.format == "csv" else None
    file_types: dict[str, str] = {}
    if source.format == "parquet":
        file_types = readers.file_columns(con, source)
        present = set(file_types)
    elif header is not None:
        present = set(header.names) | {k for k, _ in source.partitions}
    else:
        present = set(names)  # JSON Lines: a key missing from a line is a per-row problem
    empty = source.format == "csv" and header is None  # not even a header yet: a file with no rows
    if not empty:
        _check_present(run, model, key, kind, source, wanted, present)
    columns: dict[str, _Column] = {}
    for index, name in enumerate(names):
        columns[name] = _Column(readers.alias(index), readers.value_type(source, file_types, name))

    tally = run.tallies.get(kind)
    # This file's values apart, so that a file that cannot be read whole counts none of them.
    read = (tally.fresh(), columns[tally.column]) if tally is not None and tally.column in columns else None
    staged_columns = _staged_columns(kind, layout)
    sink = _ChunkSink(
        con,
        stage=_stage_sql(model, kind, layout, wanted, columns, target, run.now),
        stored=[name for name, _ in staged_columns[len(STAGED_HEAD) :]],
        target=target,
        file_id=file_id,
        quarantine_params=[model.name, kind, file_id, source.path, run.now],
        known_ids=_known_ids_sql(con, model) if kind == KIND_LABELS else None,
        classes=read,
    )
    lines_consumed = bytes_consumed = 0
    ends_with_newline = True
    partitions = dict(source.partitions)
    if source.format == "parquet":
        total = readers.parquet_rows(con, source)
        for first in range(0, max(total, 1), PARQUET_CHUNK_ROWS):
            rows = (first, first + PARQUET_CHUNK_ROWS)
            sink.add(
                readers.parquet_sql(source, names, file_types, rows),
                raw_sql=readers.parquet_raw_sql(source, file_types, rows),
            )
        bytes_consumed = stat.st_size
    elif empty:
        bytes_consumed = 0 if source.appendable else stat.st_size
    else:
        if source.format == "csv":
            assert header is not None
            reader_sql = readers.csv_sql(names, header, partitions)
        else:
            reader_sql = readers.jsonl_sql(names, partitions)
        text = TextReader(
            source,
            plan.start_byte,
            plan.start_line,
            stat.st_size,
            TailCheck(source.format, header),
            stat.st_mtime,
        )
        for chunk in text.chunks():
            sink.add(reader_sql, readers.chunk_params(chunk))
        lines_consumed, ends_with_newline = text.end_line, text.ends_with_newline
        bytes_consumed = text.end_byte if source.appendable else stat.st_size
    added, unknown = sink.added, sink.unknown_ids
    quarantined = most_first(sink.reasons.items())
    quarantined_total = sum(n for _, n in quarantined)
    if header is None and source.format != "parquet" and not added:
        for reason in quarantined:
            _warn_key_nowhere(run, key, source, file_id, wanted, reason)

    rows_added = added + (previous.rows_added if appended and previous else 0)
    rows_quarantined = quarantined_total + (previous.rows_quarantined if appended and previous else 0)
    content_hash = fingerprint(source.path, bytes_consumed)
    full_hash = None if appended else digest(source.path, bytes_consumed)
    values = [
        run.config.within(source.path),
        source.format,
        source.compressed,
        stat.st_size,
        stat.st_mtime,
        content_hash,
        bytes_consumed,
        lines_consumed,
        ends_with_newline,
        rows_added,
        rows_quarantined,
        run.now,
        full_hash,
    ]
    if previous is None:
        con.execute(
            f"INSERT INTO {FILES_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            f"CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), ?)",
            [file_id, model.name, kind, *values[:-2], run.now, run.now, full_hash],
        )
    else:
        con.execute(
            f"UPDATE {FILES_TABLE} SET file_id = ?, path = ?, format = ?, compressed = ?, size = ?, "
            f"mtime = ?, content_hash = ?, bytes_consumed = ?, lines_consumed = ?, ends_with_newline = ?, "
            f"rows_added = ?, rows_quarantined = ?, ingested_at = CAST(? AS TIMESTAMP), full_hash = ? "
            f"WHERE file_id = ?",
            [file_id, *values, previous.file_id],
        )
    if tally is not None and read is not None:
        tally.merge(read[0])
    return FileIngest(
        model=model.name,
        kind=kind,
        path=source.path,
        action=plan.action,
        rows_added=added,
        rows_quarantined=quarantined_total,
        quarantined_by_reason=quarantined,
        unknown_label_ids=unknown,
        bad_values=most_first(sink.bad_values.items()),
    )


def _warn_key_nowhere(
    run: _Run, key: str, source: SourceFile, file_id: int, wanted: dict[str, str], reason: tuple[str, int]
) -> None:
    """Warn when a JSON Lines part's lines were all quarantined, `reason`'s for lacking a required
    key that no line has: the mapping is likely wrong (a CSV header without the column is a file
    error). The rows stay quarantined and counted, as any row lacking it is."""
    absent = [k for k in _MISSING_KEYS.get(reason[0], ()) if k in wanted]
    if not absent:
        return
    name = wanted[absent[0]]
    row = run.con.execute(
        f"SELECT count(*) FROM {QUARANTINE_TABLE} "
        "WHERE file_id = ? AND json_valid(raw) AND list_contains(json_keys(raw), ?)",
        [file_id, name],
    ).fetchone()
    if row is not None and row[0] == 0:
        run.warn(
            f"{key}: no line of {source.path} has the key {name!r} ({key}.{absent[0]}); its "
            f"{reason[1]:,} rows are quarantined as {reason[0]!r}: check the mapping"
        )


def _known_ids_sql(con: duckdb.DuckDBPyConnection, model: ModelConfig) -> str:
    """The staged label ids that have a prediction (none before the model's first prediction)."""
    predictions = predictions_table(model.name)
    if not table_exists(con, predictions):
        return "(SELECT NULL::VARCHAR AS _id WHERE false)"
    # Built on the chunk's ids, probing the stored id hashes: cost grows with the chunk, plus one
    # scan of integers.
    stored = stored_rows_sql(f"SELECT * FROM {quote(predictions)}", hashed_ids_sql(STAGED))
    return f"(SELECT DISTINCT _id FROM ({stored}))"


class _ChunkSink:
    """Stores a file chunk by chunk: stage (coerce + classify), then good rows and quarantined rows.

    A chunk's reader rows are materialised before the staging query runs over them: composed into one
    query, DuckDB's expression rewriter inlines the parsing into every use of a column (≈5× slower).
    Memory stays bounded by the chunk size; duplicate ids are found against the target table, which
    already holds the earlier chunks (same transaction).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        stage: _Stage,
        stored: list[str],
        target: str,
        file_id: int,
        quarantine_params: list[object],
        known_ids: str | None,
        classes: tuple[ClassTally, _Column] | None,
    ) -> None:
        self.con = con
        self.stage = stage.sql.replace("{source}", ROWS)
        self.checks_values = stage.checks_values
        self.columns = ", ".join(quote(c) for c in stored)
        # A quarantined row's own time, when it got as far as the type checks (a bad type).
        self.row_ts = quote("_ts") if "_ts" in stored else "NULL"
        self.target = target
        self.file_id = file_id
        self.quarantine_params = quarantine_params
        self.known_ids = known_ids
        self.classes = classes  # the values of a class column (`[model.positive]`) are counted there
        self.added = 0
        self.unknown_ids = 0
        self.reasons: Counter[str] = Counter()
        self.bad_values: Counter[str] = Counter()

    def add(
        self, reader_sql: str, params: dict[str, object] | None = None, raw_sql: str | None = None
    ) -> None:
        """Store one chunk: the rows `reader_sql` yields (with its parameters).

        `raw_sql` yields (_row, _raw) for the chunk when the reader keeps no raw line (Parquet).
        """
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE {ROWS} AS {reader_sql}", params)
        if self.classes is not None:
            tally, column = self.classes
            tally.add(con, f"SELECT * FROM {ROWS}", None, column.alias, column.duckdb_type)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED} AS {self.stage}")
        counts = con.execute(f"SELECT _reason, count(*) FROM {STAGED} GROUP BY ALL").fetchall()
        quarantined = 0
        for reason, count in counts:
            if reason is None:
                self.added += int(count)
            else:
                self.reasons[str(reason)] += int(count)
                quarantined += int(count)
        issues = (
            con.execute(
                f"SELECT split_part(issue, ': ', 1), count(*) FROM "
                f"(SELECT unnest(_issues) AS issue FROM {STAGED} WHERE _reason IS NULL) GROUP BY ALL"
            ).fetchall()
            if self.checks_values
            else []
        )
        for column, count in issues:
            self.bad_values[str(column)] += int(count)
        if (quarantined or issues) and raw_sql is not None:
            # The raw text of a Parquet row is built only for the rows that need it.
            con.execute(
                f"UPDATE {STAGED} SET _raw = r._raw FROM ({raw_sql}) AS r "
                f"WHERE {STAGED}._row = r._row "
                f"AND ({STAGED}._reason IS NOT NULL OR len({STAGED}._issues) > 0)"
            )
        if self.known_ids is not None:
            row = con.execute(
                f"SELECT count(*) FROM {STAGED} AS s LEFT JOIN {self.known_ids} AS k ON s._id = k._id "
                f"WHERE s._reason IS NULL AND k._id IS NULL"
            ).fetchone()
            self.unknown_ids += int(row[0]) if row else 0
        con.execute(
            f"INSERT INTO {quote(self.target)} ({self.columns}, _file_id, _row, _idh) "
            f"SELECT {self.columns}, {self.file_id}, _row, {ID_HASH} FROM {STAGED} "
            f"WHERE _reason IS NULL ORDER BY _row"
        )
        if quarantined:
            con.execute(
                f"INSERT INTO {QUARANTINE_TABLE} SELECT ?, ?, ?, ?, _row, _reason, _detail, _raw, "
                f"CAST(? AS TIMESTAMP), {self.row_ts} FROM {STAGED} WHERE _reason IS NOT NULL ORDER BY _row",
                self.quarantine_params,
            )
        if issues:
            con.execute(
                f"INSERT INTO {QUARANTINE_TABLE} SELECT ?, ?, ?, ?, _row, ?, unnest(_issues), _raw, "
                f"CAST(? AS TIMESTAMP), {self.row_ts} FROM {STAGED} "
                f"WHERE _reason IS NULL AND len(_issues) > 0 ORDER BY _row",
                [*self.quarantine_params[:4], REASON_BAD_VALUE, self.quarantine_params[4]],
            )


def _wanted_columns(model: ModelConfig, kind: str, layout: Layout) -> dict[str, str]:
    """Config key → user column for every column this kind of file is read for."""
    columns = model.columns
    if kind == KIND_LABELS:
        wanted = {"columns.label_id" if columns.label_id else "columns.id": columns.label_id or columns.id}
        if columns.label:
            wanted["columns.label"] = columns.label
        if columns.labeled_at:
            wanted["columns.labeled_at"] = columns.labeled_at
        return wanted
    wanted = {
        f"columns.{role}": name for role, name in columns.mapped(REQUIRED_ROLES + OPTIONAL_ROLES).items()
    }
    for name in layout.segments:
        wanted[f"segments.columns[{name}]"] = name
    for feature in layout.features:
        group = "numeric" if feature.kind == NUMERIC else "categorical"
        wanted[f"features.{group}[{feature.name}]"] = feature.name
    return wanted


# The config keys whose column a row lacks when quarantined for this reason.
_MISSING_KEYS = {
    REASON_MISSING_ID: ("columns.label_id", "columns.id"),
    REASON_MISSING_TIMESTAMP: ("columns.timestamp",),
    REASON_MISSING_SCORE: ("columns.score",),
    REASON_MISSING_LABEL: ("columns.label",),
}

_REQUIRED_KEYS = {
    KIND_PREDICTIONS: ("columns.id", "columns.timestamp", "columns.score"),
    KIND_LABELS: ("columns.id", "columns.label_id", "columns.label"),
    KIND_REFERENCE: (),
}


def _check_present(
    run: _Run,
    model: ModelConfig,
    key: str,
    kind: str,
    source: SourceFile,
    wanted: dict[str, str],
    present: set[str],
) -> None:
    for config_key, name in wanted.items():
        if name in present:
            continue
        if config_key in _REQUIRED_KEYS[kind]:
            # The label log's id read under the prediction log's name: it may have its own.
            hint = f"; {label_id_hint(key)}" if (kind, config_key) == (KIND_LABELS, "columns.id") else ""
            raise SourceError(f"no column {name!r} ({key}.{config_key}){hint}")
        if kind == KIND_REFERENCE and config_key.startswith("columns."):
            continue  # training data rarely has ids, times or scores
        run.absent.setdefault((key, kind, name, config_key), []).append(str(source.path))


def _staged_columns(kind: str, layout: Layout) -> tuple[tuple[str, str], ...]:
    if kind == KIND_LABELS:
        return STAGED_HEAD + LABEL_COLUMNS
    return STAGED_HEAD + tuple(c for c in layout.columns() if c not in STORED_COLUMNS)


@dataclass(frozen=True)
class _Stage:
    """The staging query of one file's rows (over `{source}`), and whether it checks any optional
    value (without such a check no kept row has a bad value to count)."""

    sql: str
    checks_values: bool


@dataclass(frozen=True)
class _Check:
    """One quarantine rule: when `condition` holds (and no earlier rule did), the row gets `reason`."""

    condition: str
    reason: str
    detail: str


# The years a prediction's or a label's time can be in: a missing time written as 0 reads as 1970,
# a sentinel as 9999; either would open windows decades from the others.
YEARS = (2000, 2099)


def _outside_span(name: str, coerced: str, expr: str, duckdb_type: str) -> _Check:
    """A time (`coerced`, of column `name`) that reads as one but is not in `YEARS`."""
    first, last = YEARS
    return _Check(
        f"year({coerced}) NOT BETWEEN {first} AND {last}",
        REASON_BAD_TIMESTAMP,
        f"'{name} ' || {shown_sql(expr, duckdb_type)} || ' is before {first} or after {last}'",
    )


def _stage_sql(
    model: ModelConfig,
    kind: str,
    layout: Layout,
    wanted: dict[str, str],
    columns: dict[str, _Column],
    target: str,
    now: str,
) -> _Stage:
    """The query (over `{source}`, a reader's rows) that yields the staged columns of one file."""
    values: dict[str, str] = {}
    checks: list[_Check] = []  # a row that fails one is quarantined
    issues: list[_Check] = []  # a kept row's value that fails one is stored NULL and recorded

    def source(config_key: str) -> tuple[str, str] | None:
        name = wanted.get(config_key)
        if name is None:
            return None
        column = columns[name]
        return column.alias, column.duckdb_type

    def bad(config_key: str, coerced: str, expected: str, *, row: bool = False) -> None:
        """A present value whose coerced form (`coerced`, SQL) is NULL: a "bad type" that quarantines
        the `row`, else a bad value of a kept row (stored NULL, recorded as `REASON_BAD_VALUE`)."""
        src = source(config_key)
        if src is None:
            return
        expr, duckdb_type = src
        name = wanted[config_key]
        (checks if row else issues).append(
            _Check(
                f"NOT {nullish_sql(expr, duckdb_type)} AND ({coerced}) IS NULL",
                REASON_BAD_TYPE,
                f"{literal(name + ': ')} || {shown_sql(expr, duckdb_type)} "
                f"|| {literal(' is not ' + expected)}",
            )
        )

    if kind == KIND_LABELS:
        id_key = "columns.label_id" if "columns.label_id" in wanted else "columns.id"
        id_expr, id_type = source(id_key) or ("NULL", "VARCHAR")
        values["_id"] = id_sql(id_expr, id_type)
        checks.append(_Check(blank_sql('"_id"', "VARCHAR"), REASON_MISSING_ID, "NULL"))
        label = source("columns.label")
        if label is not None:
            expr, duckdb_type = label
            regression = model.task == "regression"  # the true value: a number, not a yes/no
            named = model.positive.label  # classes by name: the positive ones 1, any other 0
            if regression:
                coerced, expected = number_sql(expr, duckdb_type), "a number"
            elif named:
                coerced, expected = class_sql(expr, duckdb_type, named, "1.0", "0.0"), "a class"
            else:
                coerced, expected = (
                    label_sql(expr, duckdb_type),
                    "0/1 or true/false (class names: [model.positive])",
                )
            values["_label"] = coerced
            checks.append(_Check(blank_sql(expr, duckdb_type), REASON_MISSING_LABEL, "NULL"))
            shown = f"{literal(wanted['columns.label'] + ': ')} || {shown_sql(expr, duckdb_type)}"
            checks.append(
                _Check(
                    '"_label" IS NULL OR isnan("_label")', REASON_BAD_TYPE, f"{shown} || ' is not {expected}'"
                )
            )
            if regression:
                checks.append(
                    _Check('isinf("_label")', REASON_LABEL_NOT_FINITE, f"{shown} || ' is not finite'")
                )
            else:
                # Precision, recall … count label > 0 as positive: a soft or multi-class label would
                # count silently.
                checks.append(
                    _Check(
                        '"_label" NOT IN (0, 1)',
                        REASON_LABEL_NOT_BINARY,
                        f"{shown} || ' is not 0, 1, true or false'",
                    )
                )
        else:
            values["_label"] = "NULL::DOUBLE"
        ingested = f"CAST({literal(now)} AS TIMESTAMP)"
        labeled_at = source("columns.labeled_at")
        if labeled_at is not None:
            expr, duckdb_type = labeled_at
            coerced = timestamp_sql(expr, duckdb_type)
            values["_labeled_at"] = f"coalesce({coerced}, {ingested})"
            checks.append(
                _Check(
                    f"NOT {nullish_sql(expr, duckdb_type)} AND ({coerced}) IS NULL",
                    REASON_BAD_TIMESTAMP,
                    f"'labeled_at ' || {shown_sql(expr, duckdb_type)} || ' is not a time'",
                )
            )
            checks.append(_outside_span("labeled_at", coerced, expr, duckdb_type))
        else:
            values["_labeled_at"] = ingested
        values["_ingested_at"] = ingested
    else:
        required = kind == KIND_PREDICTIONS
        id_src = source("columns.id")
        if id_src is not None:
            values["_id"] = id_sql(*id_src)
            if required:
                checks.append(_Check(blank_sql('"_id"', "VARCHAR"), REASON_MISSING_ID, "NULL"))
        ts_src = source("columns.timestamp")
        if ts_src is not None:
            expr, duckdb_type = ts_src
            coerced = timestamp_sql(expr, duckdb_type)
            values["_ts"] = coerced
            if required:
                checks.append(_Check(blank_sql(expr, duckdb_type), REASON_MISSING_TIMESTAMP, "NULL"))
            checks.append(
                _Check(
                    f'NOT {blank_sql(expr, duckdb_type)} AND "_ts" IS NULL',
                    REASON_BAD_TIMESTAMP,
                    f"'timestamp ' || {shown_sql(expr, duckdb_type)} || ' is not a time'",
                )
            )
            checks.append(_outside_span("timestamp", '"_ts"', expr, duckdb_type))
        score_src = source("columns.score")
        score = "NULL::DOUBLE"
        if score_src is not None:
            expr, duckdb_type = score_src
            score = (number_sql if model.task == "regression" else double_sql)(expr, duckdb_type)
            values["_score"] = score
            shown = f"'score ' || {shown_sql(expr, duckdb_type)}"
            if required:
                checks.append(_Check(blank_sql(expr, duckdb_type), REASON_MISSING_SCORE, "NULL"))
            not_blank = f"NOT {blank_sql(expr, duckdb_type)}"
            not_number = '"_score" IS NULL OR isnan("_score")'
            checks.append(_Check(f"{not_blank} AND ({not_number})", REASON_SCORE_NOT_A_NUMBER, shown))
            if model.task == "regression":  # the predicted value: any finite number
                checks.append(_Check(f'{not_blank} AND isinf("_score")', REASON_SCORE_NOT_FINITE, shown))
            else:  # the positive class's probability
                out_of_range = '"_score" < 0 OR "_score" > 1'
                checks.append(_Check(f"{not_blank} AND ({out_of_range})", REASON_SCORE_OUT_OF_RANGE, shown))
        # A regression model takes no decision (config refuses a prediction column for it).
        threshold = (
            "NULL::BOOLEAN" if model.task == "regression" else f"(({score}) >= {float(model.threshold)!r})"
        )
        version_src = source("columns.version")
        if version_src is not None:
            values["_version"] = f"coalesce(nullif(trim({text_sql(*version_src)}), ''), 'default')"
        else:
            values["_version"] = "'default'"
        prediction_src = source("columns.prediction")
        if prediction_src is not None and model.positive.prediction:
            decision = class_sql(*prediction_src, model.positive.prediction, "true", "false")
            values["_decision"] = f"coalesce({decision}, {threshold})"
        elif prediction_src is not None:
            decision = bool_sql(*prediction_src)
            values["_decision"] = f"coalesce({decision}, {threshold})"
            bad(
                "columns.prediction",
                decision,
                "true/false, 1/0 or yes/no (class names: [model.positive])",
                row=True,
            )
        else:
            values["_decision"] = threshold
        for role in ("latency_ms", "cost", "tokens"):
            src = source(f"columns.{role}")
            if src is not None:
                values[f"_{role}"] = finite_double_sql(*src)
                bad(f"columns.{role}", quote(f"_{role}"), "a finite number")
        for role in ("error", "fallback"):
            src = source(f"columns.{role}")
            if src is not None:
                values[f"_{role}"] = f"CASE WHEN {nullish_sql(*src)} THEN NULL ELSE {bool_sql(*src)} END"
                bad(f"columns.{role}", quote(f"_{role}"), "true/false, 1/0 or yes/no")
        route_src = source("columns.route")
        if route_src is not None:
            values["_route"] = text_sql(*route_src)
        for name in layout.segments:
            src = source(f"segments.columns[{name}]")
            values[name] = category_sql(*src) if src else "NULL::VARCHAR"
        for feature in layout.features:
            group = "numeric" if feature.kind == NUMERIC else "categorical"
            config_key = f"features.{group}[{feature.name}]"
            src = source(config_key)
            if src is None:
                continue
            if feature.kind == NUMERIC:
                values[feature.name] = optional_double_sql(*src)
                bad(config_key, quote(feature.name), "a number")
            else:
                values[feature.name] = category_sql(*src)

    staged = _staged_columns(kind, layout)
    coerced_columns = ", ".join(
        f"CAST({values.get(name, 'NULL')} AS {duckdb_type}) AS {quote(name)}"
        for name, duckdb_type in staged[len(STAGED_HEAD) :]
    )
    reason_case = " ".join(f"WHEN {c.condition} THEN {literal(c.reason)}" for c in checks)
    detail_case = " ".join(f"WHEN {c.condition} THEN {c.detail}" for c in checks)
    found = ", ".join(f"CASE WHEN {c.condition} THEN {c.detail} END" for c in issues)
    issues_sql = f"list_filter([{found}], lambda x: x IS NOT NULL)" if issues else "[]::VARCHAR[]"
    output = ", ".join(quote(name) for name, _ in staged[len(STAGED_HEAD) :])
    classified = f"""
        SELECT *,
            CASE WHEN _perr IS NOT NULL THEN _perr {reason_case} END AS _reason1,
            CASE WHEN _perr IS NOT NULL THEN _pdetail {detail_case} END AS _detail1,
            CAST({issues_sql} AS VARCHAR[]) AS _issues1
        FROM (
            SELECT _row, _line, _perr, _pdetail, {coerced_columns}, * EXCLUDE (_row, _line, _perr, _pdetail)
            FROM {{source}}
        )
    """
    if kind != KIND_PREDICTIONS:
        return _Stage(
            f"""
            SELECT _row, CAST(_reason1 AS VARCHAR) AS _reason, CAST(_detail1 AS VARCHAR) AS _detail,
                CAST(CASE WHEN _reason1 IS NOT NULL OR len(_issues1) > 0 THEN _line END AS VARCHAR) AS _raw,
                CASE WHEN _reason1 IS NULL THEN _issues1 ELSE [] END AS _issues, {output}
            FROM ({classified})
        """,
            bool(issues),
        )
    # A good row whose id came earlier in the chunk, or is already stored (earlier files and chunks),
    # is a duplicate. Both lookups are hash joins built on the chunk's ids, probing the stored ids
    # (by their hashes first).
    stored = stored_rows_sql(f"SELECT * FROM {quote(target)}", hashed_ids_sql("rows WHERE _reason1 IS NULL"))
    return _Stage(
        f"""
        WITH rows AS MATERIALIZED ({classified}),
        firsts AS (
            SELECT _id, min(_row) AS _first_row FROM rows WHERE _reason1 IS NULL
            GROUP BY _id HAVING count(*) > 1
        ),
        stored AS (SELECT DISTINCT _id FROM ({stored}))
        SELECT _row,
            CAST(CASE WHEN _dup THEN {literal(REASON_DUPLICATE_ID)} ELSE _reason1 END AS VARCHAR) AS _reason,
            CAST(CASE WHEN _dup THEN 'id ' || _id || CASE WHEN _first_row < _row
                    THEN ' first seen at line ' || _first_row ELSE ' already ingested' END
                ELSE _detail1 END AS VARCHAR) AS _detail,
            CAST(CASE WHEN _dup OR _reason1 IS NOT NULL OR len(_issues1) > 0 THEN _line END AS VARCHAR)
                AS _raw,
            CASE WHEN _dup OR _reason1 IS NOT NULL THEN [] ELSE _issues1 END AS _issues,
            {output}
        FROM (
            SELECT r.*, f._first_row,
                (r._reason1 IS NULL AND (f._first_row < r._row OR s._id IS NOT NULL)) AS _dup
            FROM rows AS r
            LEFT JOIN firsts AS f ON r._id = f._id
            LEFT JOIN stored AS s ON r._id = s._id
        )
    """,
        bool(issues),
    )


def rebuild_model(con: duckdb.DuckDBPyConnection, model_name: str) -> None:
    """Forget a model's stored rows so that the next ingest reads its logs from scratch."""
    con.begin()
    try:
        create_shared_tables(con)  # the file id sequence first, from the ids the rows had
        drop_model(con, model_name)
        con.commit()
    except BaseException:
        con.rollback()
        raise
