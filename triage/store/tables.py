"""The DDL of the store's tables and the layout of each model's tables (segments, features, kinds).

A model's layout is fixed when its tables are created: configured features, or features inferred
from the first files of its prediction log. The config that shaped the tables is recorded in
`_triage_models`; when it changes (a column mapping, the threshold, segments, features), ingest
refuses to mix old and new rows and asks for `triage ingest --rebuild`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from triage.config import (
    ALL_ROLES,
    OPTIONAL_ROLES,
    REQUIRED_ROLES,
    SCORE_FEATURE,
    ModelConfig,
    case_clash,
)
from triage.store.coerce import is_numeric_type, literal
from triage.store.errors import StoreError
from triage.store.schema import (
    FAILURES_TABLE,
    FILE_IDS,
    FILES_TABLE,
    MODELS_TABLE,
    QUARANTINE_TABLE,
    labels_table,
    predictions_table,
    quote,
    reference_table,
)

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# Canonical columns of predictions_m / reference_m before the segments and features (schema.py).
PREDICTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_id", "VARCHAR"),
    ("_ts", "TIMESTAMP"),
    ("_version", "VARCHAR"),
    ("_score", "DOUBLE"),
    ("_decision", "BOOLEAN"),
    ("_latency_ms", "DOUBLE"),
    ("_cost", "DOUBLE"),
    ("_tokens", "DOUBLE"),
    ("_error", "BOOLEAN"),
    ("_fallback", "BOOLEAN"),
    ("_route", "VARCHAR"),
)
LABEL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_id", "VARCHAR"),
    ("_label", "DOUBLE"),
    ("_labeled_at", "TIMESTAMP"),
    ("_ingested_at", "TIMESTAMP"),
)
ROW_COLUMNS: tuple[tuple[str, str], ...] = (("_file_id", "INTEGER"), ("_row", "BIGINT"))
# A stored 64-bit hash of each row's id (md5: the same in every DuckDB version). Finding the stored
# rows of a few ids then probes integers, not strings (≈ 5× faster); the ids are compared after it.
ID_HASH = "md5_number_lower(_id)"
HASH_COLUMNS: tuple[tuple[str, str], ...] = (("_idh", "UBIGINT"),)
STORED_COLUMNS = ROW_COLUMNS + HASH_COLUMNS  # set by ingest, not read from the logs
# Names triage itself uses in the tables and in the ingest query; a user column may not take them.
RESERVED_NAMES = frozenset(
    [name for name, _ in PREDICTION_COLUMNS + LABEL_COLUMNS + STORED_COLUMNS]
    + ["_reason", "_detail", "_raw", "_line", "_perr", "_pdetail", "_reason1", "_detail1", "_dup"]
    + ["_first_row", "_j", "_f", "_ok", "_stray"]
)
_RESERVED_RE = re.compile(r"^_src[0-9]+$")


def is_reserved(name: str) -> bool:
    """Whether triage uses this column name itself (canonical columns, ingest query internals), in
    any case: DuckDB's column names are case-insensitive."""
    folded = name.lower()
    return folded in RESERVED_NAMES or bool(_RESERVED_RE.match(folded))


SHARED_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {FILES_TABLE} (
        file_id INTEGER NOT NULL, model VARCHAR NOT NULL, kind VARCHAR NOT NULL, path VARCHAR NOT NULL,
        format VARCHAR, compressed BOOLEAN, size BIGINT, mtime DOUBLE, content_hash VARCHAR,
        bytes_consumed BIGINT, lines_consumed BIGINT, ends_with_newline BOOLEAN,
        rows_added BIGINT, rows_quarantined BIGINT, first_ingested_at TIMESTAMP, ingested_at TIMESTAMP,
        full_hash VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
        model VARCHAR, kind VARCHAR, file_id INTEGER, file VARCHAR, line BIGINT, reason VARCHAR,
        detail VARCHAR, raw VARCHAR, quarantined_at TIMESTAMP, row_ts TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS {MODELS_TABLE} (
        model VARCHAR NOT NULL, settings VARCHAR, created_at TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS {FAILURES_TABLE} (
        model VARCHAR NOT NULL, kind VARCHAR, path VARCHAR, reason VARCHAR, failed_at TIMESTAMP)""",
)


@dataclass(frozen=True)
class Feature:
    """A watched input column and its kind ("numeric" → DOUBLE, "categorical" → VARCHAR)."""

    name: str
    kind: str


@dataclass(frozen=True)
class Layout:
    """The user columns of a model's predictions (and reference) table: segments, then features."""

    segments: tuple[str, ...]
    features: tuple[Feature, ...]

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == NUMERIC)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == CATEGORICAL)

    def columns(self) -> tuple[tuple[str, str], ...]:
        """All columns of the predictions table, in order, with their DuckDB types."""
        user = [(name, "VARCHAR") for name in self.segments]
        user += [(f.name, "DOUBLE" if f.kind == NUMERIC else "VARCHAR") for f in self.features]
        return PREDICTION_COLUMNS + tuple(user) + STORED_COLUMNS


def create_shared_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the registry, quarantine and model tables, and the file id sequence, if they do not exist.

    File ids come from a sequence, never reused (not the registry's max + 1): a row's hash (id, file
    id, row) is what window tokens and the reference profile's identity are made of, so the rows of
    a file read again — replaced, or after `--rebuild` — must hash unlike the rows they replace,
    even with the same ids on the same lines, or the windows cached from the old rows would stand.
    """
    for ddl in SHARED_DDL:
        con.execute(ddl)
    con.execute(f"ALTER TABLE {FILES_TABLE} ADD COLUMN IF NOT EXISTS full_hash VARCHAR")  # an older store's
    row = con.execute(f"SELECT coalesce(max(file_id), 0) + 1 FROM {FILES_TABLE}").fetchone()
    con.execute(f"CREATE SEQUENCE IF NOT EXISTS {FILE_IDS} START WITH {int(row[0]) if row else 1}")


def next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    """A file id no file of this store has had (`create_shared_tables`)."""
    row = con.execute(f"SELECT nextval('{FILE_IDS}')").fetchone()
    assert row is not None
    return int(row[0])


def without_id_hashes(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The model tables of a store made before `_idh` was stored (none in a current store)."""
    rows = con.execute(
        """SELECT table_name FROM duckdb_tables() AS t
        WHERE schema_name = 'main' AND NOT temporary
            AND regexp_matches(table_name, '^(predictions|labels|reference)_')
            AND NOT EXISTS (SELECT 1 FROM duckdb_columns() AS c WHERE c.schema_name = 'main'
                AND c.table_name = t.table_name AND c.column_name = '_idh')
        ORDER BY table_name"""
    ).fetchall()
    return [name for (name,) in rows]


def add_id_hashes(con: duckdb.DuckDBPyConnection, tables: list[str]) -> None:
    """Give the tables of an older store their `_idh` column (one pass over each table's ids)."""
    for table in tables:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"ALTER TABLE {quote(table)} ADD COLUMN _idh UBIGINT")
            con.execute(f"UPDATE {quote(table)} SET _idh = {ID_HASH}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def add_quarantine_times(con: duckdb.DuckDBPyConnection) -> None:
    """Give the quarantine of an older store its rows' own times (NULL for the rows it holds); a
    current store is only read, so opening it writes nothing."""
    if table_exists(con, QUARANTINE_TABLE) and not column_exists(con, QUARANTINE_TABLE, "row_ts"):
        con.execute(f"ALTER TABLE {QUARANTINE_TABLE} ADD COLUMN IF NOT EXISTS row_ts TIMESTAMP")


def column_exists(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether a table of the store's main schema has the column."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
        "AND column_name = ?",
        [table, column],
    ).fetchone()
    return bool(row and row[0])


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of a table of the store's main schema, in order (none: no such table)."""
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
        "ORDER BY column_index",
        [table],
    ).fetchall()
    return [row[0] for row in rows]


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a table exists in the store's main schema."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE schema_name = 'main' AND table_name = ? AND NOT temporary",
        [table],
    ).fetchone()
    return bool(row and row[0])


def _check_distinct(model: ModelConfig, names: Sequence[str]) -> None:
    """The segment and inferred feature columns, two of which must not differ only in case
    (`config.case_clash`; configured columns are checked as the config is read)."""
    clash = case_clash(names)
    if clash is not None:
        raise StoreError(
            f"model {model.name!r}: columns {clash[0]!r} and {clash[1]!r} differ only in case, and the "
            "store's column names ignore case: list the features, without one of them"
        )


def role_column_names(model: ModelConfig) -> set[str]:
    """Every user column a model maps to a role (prediction and label roles)."""
    return set(model.columns.mapped(ALL_ROLES).values())


def infer_layout(model: ModelConfig, log_columns: dict[str, str], partition_keys: set[str]) -> Layout:
    """The layout for a model: configured features, else every other column of its log.

    Inferred features are the log's columns that are not mapped to a role, not segments, not hive
    partition keys and not reserved; numeric DuckDB types → numeric, anything else → categorical.
    """
    segments = list(model.segments)
    if not model.features_inferred:  # the config refused reserved names as it was read
        features = [Feature(name, NUMERIC) for name in model.numeric]
        features += [Feature(name, CATEGORICAL) for name in model.categorical]
        return Layout(tuple(segments), tuple(features))
    skip = role_column_names(model) | set(segments) | partition_keys
    inferred = tuple(
        Feature(name, NUMERIC if is_numeric_type(duckdb_type) else CATEGORICAL)
        for name, duckdb_type in log_columns.items()
        if name not in skip and not is_reserved(name)
    )
    if any(f.name == SCORE_FEATURE for f in inferred):
        # Its drift and data quality rows would be the score's (skipping it would hide a column).
        raise StoreError(
            f"model {model.name!r}: the log column {SCORE_FEATURE!r} would be a feature named like the "
            "score in the results: list the features without it ([model.features])"
        )
    _check_distinct(model, segments + [f.name for f in inferred])
    return Layout(tuple(segments), inferred)


def stored_layout(con: duckdb.DuckDBPyConnection, model: ModelConfig) -> Layout | None:
    """The layout of a model's existing predictions table, or None before its first ingest."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [predictions_table(model.name)],
    ).fetchall()
    if not rows:
        return None
    canonical = {name for name, _ in PREDICTION_COLUMNS + STORED_COLUMNS}
    segments = tuple(name for name, _ in rows if name in model.segments)
    features = tuple(
        Feature(name, NUMERIC if data_type == "DOUBLE" else CATEGORICAL)
        for name, data_type in rows
        if name not in canonical and name not in model.segments
    )
    return Layout(segments, features)


def _ddl(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    body = ", ".join(f"{quote(name)} {duckdb_type}" for name, duckdb_type in columns)
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})"


def create_model_tables(con: duckdb.DuckDBPyConnection, model: ModelConfig, layout: Layout | None) -> None:
    """Create labels_m, and with a layout predictions_m (and reference_m for a file set), if absent."""
    con.execute(_ddl(labels_table(model.name), LABEL_COLUMNS + STORED_COLUMNS))
    if layout is None:
        return
    con.execute(_ddl(predictions_table(model.name), layout.columns()))
    if model.reference.kind == "files":
        con.execute(_ddl(reference_table(model.name), layout.columns()))


def model_settings(model: ModelConfig) -> dict[str, object]:
    """The parts of a model's config that decide what its stored rows contain."""
    return {
        "columns": model.columns.mapped(
            REQUIRED_ROLES + OPTIONAL_ROLES + ("label", "labeled_at", "label_id")
        ),
        "threshold": model.threshold,
        "segments": list(model.segments),
        "numeric": list(model.numeric),
        "categorical": list(model.categorical),
        "task": model.task,
        "positive": {"label": list(model.positive.label), "prediction": list(model.positive.prediction)},
        "ids": IDS_INTEGRAL,
    }


# How ids are stored (`coerce.id_sql`). Stores built before ids were normalised hold them as logged:
# a float's whole number as "8000.0", a NaN as "nan".
IDS_INTEGRAL = "whole floats as integers"
IDS_AS_LOGGED = "as logged"
_OLD_FLOAT_ID = r"[+-]?[0-9]+\.0*|nan|-?inf"


def _ids_as_built(con: duckdb.DuckDBPyConnection, model: ModelConfig) -> str:
    """How a store built before `IDS_INTEGRAL` holds a model's ids: as now unless it has an id
    that is now read otherwise (one scan of its ids)."""
    tables = [t for t in (predictions_table(model.name), labels_table(model.name)) if table_exists(con, t)]
    found = " UNION ALL ".join(
        f"SELECT 1 FROM {quote(t)} WHERE regexp_full_match(_id, {literal(_OLD_FLOAT_ID)})" for t in tables
    )
    row = con.execute(f"SELECT EXISTS ({found})").fetchone() if found else None
    return IDS_AS_LOGGED if row and row[0] else IDS_INTEGRAL


def check_settings(con: duckdb.DuckDBPyConnection, model: ModelConfig, *, upgrade: bool = False) -> bool:
    """True when the model's tables were built from this config; False when not built yet.

    Raises StoreError naming what changed when they were built from a different config. With
    `upgrade` (a writer), settings recorded by an earlier triage get what it left out.
    """
    row = con.execute(f"SELECT settings FROM {MODELS_TABLE} WHERE model = ?", [model.name]).fetchone()
    if row is None:
        return False
    # A store built before tasks holds a binary model; before class names, 0/1 labels and decisions.
    recorded = json.loads(row[0])
    stored = {"task": "binary", "positive": {"label": [], "prediction": []}} | recorded
    if "ids" not in stored:
        stored["ids"] = _ids_as_built(con, model)
    current = model_settings(model)
    changed = [key for key in current if stored.get(key) != current[key]]
    if not changed:
        if upgrade and stored != recorded:
            con.execute(
                f"UPDATE {MODELS_TABLE} SET settings = ? WHERE model = ?",
                [json.dumps(stored, sort_keys=True), model.name],
            )
        return True
    key = changed[0]
    before, after = _differing(stored.get(key), current[key])
    raise StoreError(
        f"model {model.name!r}: {key} changed since the store was built "
        f"({_short(before)} → {_short(after)}); "
        f"run `triage ingest --rebuild` to rebuild it from the logs"
    )


def _differing(before: object, after: object) -> tuple[object, object]:
    """What two settings differ in: of two tables (the columns' mapping), only the keys whose
    values differ — cut to 80 characters, the whole mappings would show the same start twice."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return before, after
    keys = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return {k: before[k] for k in keys if k in before}, {k: after[k] for k in keys if k in after}


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def record_settings(con: duckdb.DuckDBPyConnection, model: ModelConfig, created_at: str) -> None:
    """Remember the config that shaped a model's tables."""
    con.execute(
        f"INSERT INTO {MODELS_TABLE} VALUES (?, ?, CAST({literal(created_at)} AS TIMESTAMP))",
        [model.name, json.dumps(model_settings(model), sort_keys=True)],
    )


def drop_model(con: duckdb.DuckDBPyConnection, model_name: str) -> None:
    """Forget everything stored for a model: its tables, registry, quarantine and settings."""
    for table in (predictions_table(model_name), labels_table(model_name), reference_table(model_name)):
        con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
    for table in (FILES_TABLE, QUARANTINE_TABLE, MODELS_TABLE, FAILURES_TABLE):
        con.execute(f"DELETE FROM {table} WHERE model = ?", [model_name])
