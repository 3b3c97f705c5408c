"""The tables triage keeps in DuckDB: the contract between the store and everything above it.

Per model (``m`` is `table_suffix(model.name)`):

``predictions_m`` — one row per scored request, in canonical columns:
    _id VARCHAR (unique), _ts TIMESTAMP (UTC, naive), _version VARCHAR ('default' when the log
    has no version column), _score DOUBLE in [0, 1] (a regression model's: any finite number),
    _decision BOOLEAN (the prediction column, or _score >= threshold; NULL for a regression
    model), _latency_ms DOUBLE, _cost DOUBLE, _tokens DOUBLE, _error BOOLEAN, _fallback BOOLEAN,
    _route VARCHAR (unmapped optional roles are NULL),
    then each segment column (VARCHAR) and each feature under the user's own name (numeric as
    DOUBLE, categorical as VARCHAR), then _file_id INTEGER, _row BIGINT (1-based row / line),
    _idh UBIGINT (`md5_number_lower(_id)`: ids are looked up by it first).

``labels_m`` — every label row ever ingested (a later label for an id supersedes an earlier one;
    both are kept): _id VARCHAR, _label DOUBLE, _labeled_at TIMESTAMP (UTC; ingest time when the
    log has no labeled_at column), _ingested_at TIMESTAMP, _file_id INTEGER, _row BIGINT, _idh UBIGINT.

``reference_m`` — only when the reference is a file set: the same columns as ``predictions_m``.

Shared tables:

``_triage_files`` — the registry: one row per ingested source file.
``_triage_quarantine`` — rows that could not be ingested, with the reason and the raw text.

Their columns (added to the contract, see `triage.store.tables` for the DDL):

``_triage_files``: file_id INTEGER (the ``_file_id`` of its rows), model, kind ('predictions' |
    'labels' | 'reference'), path, format ('parquet' | 'csv' | 'jsonl'), compressed, size, mtime
    (epoch seconds), content_hash, bytes_consumed, lines_consumed, ends_with_newline, rows_added,
    rows_quarantined (both cumulative for the file), first_ingested_at, ingested_at (UTC), full_hash
    (sha256 of the bytes consumed, for a file read whole; NULL after an append).
``_triage_quarantine``: model, kind, file_id, file, line (1-based line of a text log, row of a
    Parquet file), reason (one of `QUARANTINE_REASONS`, or `REASON_BAD_VALUE` for a value of a kept
    row), detail, raw (the line, or the Parquet row as JSON), quarantined_at (UTC), row_ts.
``_triage_models``: model, settings (JSON of the config that shaped its tables), created_at.
``_triage_failures``: model, kind, path (as the registry names it), reason, failed_at (UTC): the
    files of a model that could not be read at its last ingest pass (not registered, or their rows
    as the pass before stored them).
"""

from __future__ import annotations

import re

VERSION_DEFAULT = "default"

ROLE_COLUMNS: dict[str, str] = {
    "id": "_id",
    "timestamp": "_ts",
    "version": "_version",
    "score": "_score",
    "prediction": "_decision",
    "latency_ms": "_latency_ms",
    "cost": "_cost",
    "tokens": "_tokens",
    "error": "_error",
    "fallback": "_fallback",
    "route": "_route",
}

FILES_TABLE = "_triage_files"
FILE_IDS = "_triage_file_ids"  # the sequence file ids come from (`tables.create_shared_tables`)
QUARANTINE_TABLE = "_triage_quarantine"
MODELS_TABLE = "_triage_models"
FAILURES_TABLE = "_triage_failures"

KIND_PREDICTIONS = "predictions"
KIND_LABELS = "labels"
KIND_REFERENCE = "reference"

# Why a row is in quarantine; the first that applies wins, in this order.
REASON_NOT_UTF8 = "not UTF-8"  # a text log's line with bytes that are not UTF-8
REASON_UNPARSEABLE_JSON = "unparseable JSON"
REASON_MALFORMED_CSV = "malformed CSV line"
REASON_MISSING_ID = "missing id"
REASON_MISSING_TIMESTAMP = "missing timestamp"
REASON_BAD_TIMESTAMP = "bad timestamp"
REASON_MISSING_SCORE = "missing score"
REASON_SCORE_NOT_A_NUMBER = "score not a number"
REASON_SCORE_OUT_OF_RANGE = "score outside [0, 1]"
REASON_SCORE_NOT_FINITE = "score not finite"  # a regression model's prediction: any finite number
REASON_MISSING_LABEL = "missing label"
REASON_LABEL_NOT_BINARY = "label not 0 or 1"  # a number a binary classifier's label cannot be
REASON_LABEL_NOT_FINITE = "label not finite"  # a regression model's true value: any finite number
REASON_BAD_TYPE = "bad type"
REASON_DUPLICATE_ID = "duplicate id"
# Not a row's reason: one optional value of a kept row (a feature, latency, cost, tokens, error,
# fallback) that is not of its type. The row is stored with that value NULL, and the value is
# recorded here, one entry per value, so a retyped column costs its own values, not the monitoring
# of every other column.
REASON_BAD_VALUE = "bad value (row kept)"
QUARANTINE_REASONS = (
    REASON_NOT_UTF8,
    REASON_UNPARSEABLE_JSON,
    REASON_MALFORMED_CSV,
    REASON_MISSING_ID,
    REASON_MISSING_TIMESTAMP,
    REASON_BAD_TIMESTAMP,
    REASON_MISSING_SCORE,
    REASON_SCORE_NOT_A_NUMBER,
    REASON_SCORE_OUT_OF_RANGE,
    REASON_SCORE_NOT_FINITE,
    REASON_MISSING_LABEL,
    REASON_LABEL_NOT_BINARY,
    REASON_LABEL_NOT_FINITE,
    REASON_BAD_TYPE,
    REASON_DUPLICATE_ID,
)


def table_suffix(model_name: str) -> str:
    """A model name made safe for a table name (`fraud-v2` → `fraud_v2`)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", model_name).lower()


def predictions_table(model_name: str) -> str:
    return f"predictions_{table_suffix(model_name)}"


def labels_table(model_name: str) -> str:
    return f"labels_{table_suffix(model_name)}"


def reference_table(model_name: str) -> str:
    return f"reference_{table_suffix(model_name)}"


def quote(identifier: str) -> str:
    """Quote a column or table name for DuckDB SQL."""
    return '"' + identifier.replace('"', '""') + '"'
