"""SQL expressions that coerce a log's values to the store's canonical types.

Each builder takes a SQL expression `expr` and the DuckDB type of its values (`VARCHAR` for CSV and
JSON Lines, the file's own type for Parquet) and returns a SQL expression. A value that cannot be
coerced becomes NULL, so the ingest query can tell "missing" (the input is NULL) from "bad" (the
input is present but the coerced value is NULL) and quarantine the row with the right reason.
Nothing here depends on the session time zone.
"""

from __future__ import annotations

import re

INTEGER_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }
)
FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})
NAIVE_TIMESTAMP_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"})
ZONED_TIMESTAMP_TYPES = frozenset({"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"})

TRUE_WORDS = ("true", "t", "yes", "y", "1", "1.0")
FALSE_WORDS = ("false", "f", "no", "n", "0", "0.0")
# Spellings of "no value" that CSV and JSON writers use; only optional values treat them as missing.
NULL_WORDS = ("", "na", "n/a", "nan", "null", "none")

_NUMBER_RE = r"[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?"
# A date or date-time with no zone: it is read as UTC.
_NAIVE_TIME_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def _one_of(expr: str, words: tuple[str, ...]) -> str:
    """TRUE when `expr`, trimmed, is one of `words` in any case.

    A regular expression, not IN or list_contains: DuckDB plans a constant list of six or more
    values as a hash join, one per occurrence, which made ingest several times slower.
    """
    alternatives = "|".join(re.escape(word) for word in words if word)
    optional = "?" if "" in words else ""
    return f"regexp_full_match({expr}, '\\s*({alternatives}){optional}\\s*', 'i')"


def is_numeric_type(duckdb_type: str) -> bool:
    """Whether a DuckDB type holds numbers (integers, floats, decimals)."""
    kind = duckdb_type.upper()
    return kind in INTEGER_TYPES or kind in FLOAT_TYPES or kind.startswith("DECIMAL")


def text_sql(expr: str, duckdb_type: str) -> str:
    """The value as VARCHAR."""
    return expr if duckdb_type == "VARCHAR" else f"CAST({expr} AS VARCHAR)"


# A whole number written as a float: "8000.0" (JSON Lines and CSV text; DuckDB reads a JSON 8e3 as it).
_INTEGRAL_FLOAT_RE = r"([+-]?[0-9]+)\.0+"


def id_sql(expr: str, duckdb_type: str) -> str:
    """An id as VARCHAR: a whole number written as a float — a Parquet FLOAT/DOUBLE/DECIMAL value,
    a JSON number or CSV text such as `8000.0` — is its integer's text (`8000`), so that it meets
    the same id logged as an integer; a float NaN or infinity is no id (NULL); any other value is
    its text as logged (`8000.5`, `007`)."""
    kind = duckdb_type.upper()
    if kind in FLOAT_TYPES or kind.startswith("DECIMAL"):
        finite = "true" if kind.startswith("DECIMAL") else f"isfinite({expr})"
        return (
            f"CASE WHEN NOT {finite} THEN NULL "
            f"WHEN {expr} = trunc({expr}) AND abs({expr}) < 1e38 "
            f"THEN CAST(CAST({expr} AS HUGEINT) AS VARCHAR) "
            f"ELSE CAST({expr} AS VARCHAR) END"
        )
    text = text_sql(expr, duckdb_type)
    # `contains` first: most ids have no dot, and it costs a fraction of the regex (5 M ids: 0.15 s).
    return (
        f"CASE WHEN contains({text}, '.') AND regexp_full_match({text}, '{_INTEGRAL_FLOAT_RE}') "
        f"THEN regexp_extract({text}, '^{_INTEGRAL_FLOAT_RE}$', 1) ELSE {text} END"
    )


def category_sql(expr: str, duckdb_type: str) -> str:
    """A categorical or segment value as VARCHAR; NaN is missing (NULL): a float NaN, or the text
    NaN in any case, as writers put a missing value (`NaN`: Python's json, JavaScript; `nan`:
    Python's csv writer, `str` of a float NaN)."""
    if duckdb_type.upper() in FLOAT_TYPES:
        return f"CASE WHEN NOT isnan({expr}) THEN CAST({expr} AS VARCHAR) END"
    text = text_sql(expr, duckdb_type)
    return f"CASE WHEN length({text}) <> 3 OR lower({text}) <> 'nan' THEN {text} END"


def blank_sql(expr: str, duckdb_type: str) -> str:
    """TRUE when a required value is absent: NULL, or an empty string."""
    if duckdb_type == "VARCHAR":
        return f"({expr} IS NULL OR trim({expr}) = '')"
    return f"({expr} IS NULL)"


def nullish_sql(expr: str, duckdb_type: str) -> str:
    """TRUE when an optional value is absent: NULL, NaN, or a null word such as "NA" or "null"."""
    if duckdb_type == "VARCHAR":
        return f"({expr} IS NULL OR {_one_of(expr, NULL_WORDS)})"
    if duckdb_type.upper() in FLOAT_TYPES:
        return f"({expr} IS NULL OR isnan({expr}))"
    return f"({expr} IS NULL)"


def double_sql(expr: str, duckdb_type: str) -> str:
    """The value as DOUBLE; NULL when it is not a number (NaN stays NaN)."""
    kind = duckdb_type.upper()
    if is_numeric_type(kind):
        return f"CAST({expr} AS DOUBLE)"
    if kind == "BOOLEAN":
        return f"CAST(CAST({expr} AS INTEGER) AS DOUBLE)"
    if kind == "VARCHAR":
        return f"TRY_CAST(trim({expr}) AS DOUBLE)"
    return f"TRY_CAST({expr} AS DOUBLE)"


def number_sql(expr: str, duckdb_type: str) -> str:
    """The value as DOUBLE when it is a number (a numeric column, or the text of one); NULL when not
    — a boolean included: a regression model's values are numbers, and a yes/no column mapped to one
    is a mistake to quarantine, not a 0/1 to average."""
    return "NULL::DOUBLE" if duckdb_type.upper() == "BOOLEAN" else double_sql(expr, duckdb_type)


def optional_double_sql(expr: str, duckdb_type: str) -> str:
    """An optional number: NULL when absent (see `nullish_sql`), else the value as DOUBLE."""
    return f"CASE WHEN {nullish_sql(expr, duckdb_type)} THEN NULL ELSE {double_sql(expr, duckdb_type)} END"


def finite_double_sql(expr: str, duckdb_type: str) -> str:
    """An optional finite number: NULL when absent or not a finite number (±inf, say `1e400`)."""
    value = double_sql(expr, duckdb_type)
    return f"CASE WHEN {nullish_sql(expr, duckdb_type)} THEN NULL WHEN isfinite({value}) THEN {value} END"


def bool_sql(expr: str, duckdb_type: str) -> str:
    """The value as BOOLEAN: true/false, 1/0, "1"/"0", "yes"/"no" (any case); else NULL."""
    kind = duckdb_type.upper()
    if kind == "BOOLEAN":
        return expr
    if is_numeric_type(kind):
        return f"CASE WHEN {expr} = 1 THEN true WHEN {expr} = 0 THEN false END"
    word = text_sql(expr, duckdb_type)
    return f"CASE WHEN {_one_of(word, TRUE_WORDS)} THEN true WHEN {_one_of(word, FALSE_WORDS)} THEN false END"


def class_absent_sql(expr: str, duckdb_type: str) -> str:
    """TRUE where a class column holds no class: a null, a blank, a null word such as "NA"."""
    return nullish_sql(text_sql(expr, duckdb_type), "VARCHAR")


def class_name_sql(expr: str, duckdb_type: str, names: tuple[str, ...]) -> str:
    """TRUE where the value (as text, trimmed, any case) is one of the class `names`."""
    return _one_of(text_sql(expr, duckdb_type), names)


def class_sql(expr: str, duckdb_type: str, positive: tuple[str, ...], yes: str, no: str) -> str:
    """`yes` where the value is one of the `positive` class names (`class_name_sql`), `no` for any
    other class; NULL for none (`class_absent_sql`)."""
    absent, named = class_absent_sql(expr, duckdb_type), class_name_sql(expr, duckdb_type, positive)
    return f"CASE WHEN {absent} THEN NULL WHEN {named} THEN {yes} ELSE {no} END"


def label_sql(expr: str, duckdb_type: str) -> str:
    """A label as DOUBLE: a number, or a boolean word (true/yes → 1, false/no → 0)."""
    if duckdb_type.upper() == "VARCHAR":
        as_bool = bool_sql(expr, duckdb_type)
        return f"coalesce({double_sql(expr, duckdb_type)}, CAST(CAST({as_bool} AS INTEGER) AS DOUBLE))"
    return double_sql(expr, duckdb_type)


def epoch_sql(number: str) -> str:
    """Epoch seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude) → TIMESTAMP.

    |x| < 1e11 is seconds (up to year 5138), < 1e14 milliseconds, < 1e17 microseconds, else nanoseconds.
    """
    x = number
    return (
        f"CASE WHEN {x} IS NULL OR NOT isfinite({x}) OR abs({x}) >= 9.2e18 THEN NULL "
        f"WHEN abs({x}) >= 1e17 THEN make_timestamp(CAST(round({x} / 1000) AS BIGINT)) "
        f"WHEN abs({x}) >= 1e14 THEN make_timestamp(CAST(round({x}) AS BIGINT)) "
        f"WHEN abs({x}) >= 1e11 THEN make_timestamp(CAST(round({x} * 1000) AS BIGINT)) "
        f"ELSE make_timestamp(CAST(round({x} * 1000000) AS BIGINT)) END"
    )


def timestamp_sql(expr: str, duckdb_type: str) -> str:
    """The value as a naive UTC TIMESTAMP; NULL when it cannot be read as a time.

    Strings: ISO 8601 or `YYYY-MM-DD HH:MM:SS`, `T` or space, with an offset, `Z` or a zone name
    (converted to UTC) or without one (taken as UTC); a string of digits is an epoch number.
    Numbers are epochs (see `epoch_sql`); zoned timestamps are converted to UTC.
    """
    kind = duckdb_type.upper()
    if kind in NAIVE_TIMESTAMP_TYPES:
        return f"CAST({expr} AS TIMESTAMP)"
    if kind in ZONED_TIMESTAMP_TYPES:
        return f"timezone('UTC', {expr})"
    if is_numeric_type(kind):
        return epoch_sql(f"CAST({expr} AS DOUBLE)")
    text = f"trim({text_sql(expr, duckdb_type)})"
    # Naive strings are cast to TIMESTAMP (no session zone involved); zoned strings go through
    # TIMESTAMPTZ, where the zone written in the value decides.
    return (
        f"CASE WHEN regexp_full_match({text}, '{_NUMBER_RE}') "
        f"THEN {epoch_sql(f'TRY_CAST({text} AS DOUBLE)')} "
        f"WHEN regexp_full_match({text}, '{_NAIVE_TIME_RE}') THEN TRY_CAST({text} AS TIMESTAMP) "
        f"ELSE timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) END"
    )


def shown_sql(expr: str, duckdb_type: str, width: int = 60) -> str:
    """The value as short text for a quarantine detail."""
    return f"left({text_sql(expr, duckdb_type)}, {width})"
