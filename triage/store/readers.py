"""SQL that turns one log file into rows: its columns, their types, and row-level parse errors.

Every reader yields the same shape, so one ingest query serves all formats:
``_row`` (1-based line for text logs, row for Parquet), ``_line`` (the raw line of a text log,
NULL for Parquet), ``_perr`` / ``_pdetail`` (why the line could not be parsed, else NULL), then one
column ``_src0, _src1, …`` per requested source column (NULL when the file does not have it).

Text logs (CSV, JSON Lines) are read as lines — handed to DuckDB as one string per chunk and split
there — so the raw text and the line number of every bad row survive, and a log that grew is read
from where the last ingest stopped. JSON is parsed with `json_valid` / `json_extract_string`, CSV
records with one regular expression (quoted fields with "" escapes; a quoted field cannot span lines).
"""

from __future__ import annotations

import re

import duckdb

from triage.store.coerce import is_numeric_type, literal
from triage.store.schema import REASON_NOT_UTF8, quote
from triage.store.sources import CsvHeader, SourceError, SourceFile, TextChunk, csv_header, head_text

SNIFF_FILES = 10
SAMPLE_PARQUET_ROWS = 1_000_000  # the rows of a Parquet file `sample_sql` reads
# Share of a text log's sampled values that must be numbers for the column to count as numeric;
# the rest are then quarantined as "bad type" instead of turning the feature categorical.
NUMERIC_SHARE = 0.9
# A CSV value written with leading zeros ("01234", a zip code) is a code, not a number: one such value
# in a column makes it categorical, as the same codes logged as JSON strings are.
_ZERO_PADDED = "[+-]?0[0-9]+"


def alias(index: int) -> str:
    """The name a reader gives to the `index`-th requested source column."""
    return f"_src{index}"


# A blank line is not a row. (A regular expression: DuckDB's trim() walks the whole line.)
_BLANK = r"regexp_full_match(_line, '\s*')"


def lines_sql() -> str:
    """Rows (_row, _line) from a chunk of text passed as parameters (text, first line, line count).

    The text has no carriage returns at line ends (`TextReader` drops them).
    """
    return (
        "SELECT unnest(string_split($text, chr(10))) AS _line, unnest(range($first, $first + $count)) AS _row"
    )


def chunk_params(chunk: TextChunk) -> dict[str, object]:
    """Query parameters for `lines_sql` (and `_NOT_UTF8`) from a chunk of text."""
    return {"text": chunk.text, "first": chunk.first_line, "count": chunk.lines, "bad": list(chunk.not_utf8)}


# A line with bytes that are not UTF-8 (shown as \xNN in its text): quarantined, whatever its format.
_NOT_UTF8 = "list_contains($bad::BIGINT[], _row)"
_NOT_UTF8_DETAIL = literal("a byte that is not UTF-8 shows as \\xNN in the raw line")


def _json_path(name: str) -> str:
    return "$." + '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def jsonl_sql(columns: list[str], partitions: dict[str, str]) -> str:
    """Rows of a JSON Lines chunk; blank lines are skipped, a line that is not a JSON object gets an error.

    Each line is parsed once: `try(json_extract_string(...))` is NULL exactly when the line is not JSON.
    """
    wanted = [name for name in columns if name not in partitions]
    if wanted:
        paths = "[" + ", ".join(literal(_json_path(name)) for name in wanted) + "]"
        extract = f"try(json_extract_string(_line, {paths}))"
    else:
        extract = "CASE WHEN json_valid(_line) THEN [] END"
    picks = []
    for index, name in enumerate(columns):
        if name in wanted:
            picks.append(f"_j[{wanted.index(name) + 1}] AS {alias(index)}")
        else:
            picks.append(f"{literal(partitions[name])} AS {alias(index)}")
    return f"""
        SELECT _row, _line,
            CASE WHEN {_NOT_UTF8} THEN {literal(REASON_NOT_UTF8)} WHEN NOT _ok THEN 'unparseable JSON' END
                AS _perr,
            CASE WHEN {_NOT_UTF8} THEN {_NOT_UTF8_DETAIL} WHEN _ok THEN NULL
                WHEN _j IS NULL THEN 'not valid JSON' ELSE 'not a JSON object' END AS _pdetail
            {"".join(", " + pick for pick in picks)}
        FROM (
            SELECT _row, _line, _j, (_j IS NOT NULL AND regexp_matches(_line, '^\\s*[{{]')) AS _ok
            FROM (
                SELECT _row, _line, {extract} AS _j
                FROM ({lines_sql()})
                WHERE NOT {_BLANK}
            )
        )
    """


def _csv_field_regex(delimiter: str) -> str:
    d = re.escape(delimiter)
    return f'{d}("(?:[^"]|"")*"|[^{d}"]*)'


def _csv_value(field: str) -> str:
    return (
        f"CASE WHEN {field} IS NULL OR {field} = '' THEN NULL "
        f"WHEN starts_with({field}, '\"') THEN replace({field}[2:-2], '\"\"', '\"') "
        f"ELSE {field} END"
    )


# A line whose fields are all there but whose quotes do not close: CSV records are read one per line.
_UNCLOSED = literal(
    "a quote is not closed on this line (a line break inside a quoted field, or a stray quote)"
)


def csv_sql(
    columns: list[str], header: CsvHeader, partitions: dict[str, str], skip_header: bool = True
) -> str:
    """Rows of a CSV chunk; a record whose fields do not parse or count wrong gets a parse error."""
    delimiter = literal(header.delimiter)
    regex = literal(_csv_field_regex(header.delimiter))
    width = len(header.names)
    picks = []
    for index, name in enumerate(columns):
        if name in header.names:
            picks.append(f"{_csv_value(f'_f[{header.names.index(name) + 1}]')} AS {alias(index)}")
        elif name in partitions:
            picks.append(f"{literal(partitions[name])} AS {alias(index)}")
        else:
            picks.append(f"NULL::VARCHAR AS {alias(index)}")
    # `_stray`: the fields, joined again, are not the line (a quote that does not close on it).
    return f"""
        SELECT _row, _line,
            CASE WHEN {_NOT_UTF8} THEN {literal(REASON_NOT_UTF8)}
                WHEN _stray OR len(_f) <> {width} THEN 'malformed CSV line' END AS _perr,
            CASE WHEN {_NOT_UTF8} THEN {_NOT_UTF8_DETAIL}
            WHEN len(_f) = {width} AND _stray THEN {_UNCLOSED}
            WHEN len(_f) <> {width} THEN 'expected {width} fields, found ' || len(_f) ||
                CASE WHEN _stray THEN ' (or a stray quote)' ELSE '' END
            END AS _pdetail
            {"".join(", " + pick for pick in picks)}
        FROM (
            SELECT *, array_to_string(_f, {delimiter}) <> _line AS _stray
            FROM (
                SELECT _row, _line, regexp_extract_all({delimiter} || _line, {regex}, 1) AS _f
                FROM ({lines_sql()})
                WHERE NOT {_BLANK} {"AND _row > 1" if skip_header else ""}
            )
        )
    """


def _row_range(rows: tuple[int, int] | None) -> str:
    # file_row_number is 0-based; DuckDB skips the row groups outside the range.
    return f" WHERE file_row_number >= {rows[0]} AND file_row_number < {rows[1]}" if rows else ""


def parquet_sql(
    source: SourceFile, columns: list[str], file_columns: dict[str, str], rows: tuple[int, int] | None = None
) -> str:
    """Rows of a Parquet file (or rows [first, end) of it, 0-based), numbered from 1."""
    partitions = dict(source.partitions)
    picks = []
    for index, name in enumerate(columns):
        if name in file_columns:
            picks.append(f"{quote(name)} AS {alias(index)}")
        elif name in partitions:
            picks.append(f"{literal(partitions[name])} AS {alias(index)}")
        else:
            picks.append(f"NULL::VARCHAR AS {alias(index)}")
    return f"""
        SELECT file_row_number + 1 AS _row, NULL::VARCHAR AS _line,
            NULL::VARCHAR AS _perr, NULL::VARCHAR AS _pdetail
            {"".join(", " + pick for pick in picks)}
        FROM read_parquet({literal(source.path)}, file_row_number = true){_row_range(rows)}
    """


def parquet_rows(con: duckdb.DuckDBPyConnection, source: SourceFile) -> int:
    """The number of rows of a Parquet file, from its footer."""
    row = con.execute(f"SELECT num_rows FROM parquet_file_metadata({literal(source.path)})").fetchone()
    return int(row[0]) if row else 0


def parquet_raw_sql(
    source: SourceFile, file_columns: dict[str, str], rows: tuple[int, int] | None = None
) -> str:
    """(_row, _raw): each Parquet row (of the range) as a JSON object of all its columns."""
    fields = ", ".join(f"{quote(name)} := {quote(name)}" for name in file_columns)
    return (
        f"SELECT file_row_number + 1 AS _row, to_json(struct_pack({fields})) AS _raw "
        f"FROM read_parquet({literal(source.path)}, file_row_number = true){_row_range(rows)}"
    )


def file_columns(con: duckdb.DuckDBPyConnection, source: SourceFile) -> dict[str, str]:
    """The columns of one log file with their DuckDB types, hive partitions included (VARCHAR).

    Parquet: from the file's schema. CSV: the header; a column is DOUBLE when at least 90 % of its
    values in the first MiB parse as numbers and none is a zero-padded integer (`01234`). JSON Lines:
    the keys of the objects in the first MiB; a key is DOUBLE when at least 90 % of its values there
    are JSON numbers, BOOLEAN when all are booleans.
    """
    try:
        if source.format == "parquet":
            rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(source.path)})").fetchall()
            found = {str(row[0]): str(row[1]) for row in rows}
        elif source.format == "csv":
            found = _csv_columns(con, source)
        else:
            found = _jsonl_columns(con, source)
    except duckdb.Error as exc:
        raise SourceError(f"{source.path}: cannot read as {source.format} ({_first_line(exc)})") from None
    for key, _ in source.partitions:
        found.setdefault(key, "VARCHAR")
    return found


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _csv_columns(con: duckdb.DuckDBPyConnection, source: SourceFile) -> dict[str, str]:
    header = csv_header(source)
    if header is None:
        return {}
    names = list(header.names)
    sample = head_text(source)
    sql = csv_sql(names, header, {}, skip_header=True)
    counts = ", ".join(
        f"count({alias(i)}), count(TRY_CAST(trim({alias(i)}) AS DOUBLE)), "
        f"count(*) FILTER (WHERE regexp_full_match(trim({alias(i)}), {literal(_ZERO_PADDED)}))"
        for i in range(len(names))
    )
    row = con.execute(f"SELECT {counts} FROM ({sql}) WHERE _perr IS NULL", chunk_params(sample)).fetchone()
    values = row if row is not None else (0,) * (3 * len(names))
    return {
        name: ("DOUBLE" if _mostly(values[3 * i + 1], values[3 * i]) and not values[3 * i + 2] else "VARCHAR")
        for i, name in enumerate(names)
    }


def _mostly(part: int, whole: int) -> bool:
    """A column is numeric when at least `NUMERIC_SHARE` of its sampled values are numbers."""
    return whole > 0 and part >= NUMERIC_SHARE * whole


def _jsonl_columns(con: duckdb.DuckDBPyConnection, source: SourceFile) -> dict[str, str]:
    sample = head_text(source)
    rows = con.execute(
        f"""
        WITH objects AS (
            SELECT _row, _line FROM ({jsonl_sql([], {})}) WHERE _perr IS NULL
        )
        SELECT e.key,
            min(objects._row * 100000 + CAST(e.id AS BIGINT)) AS seen,
            count(*) FILTER (WHERE e.type <> 'NULL') AS present,
            count(*) FILTER (WHERE e.type IN ('BIGINT', 'UBIGINT', 'DOUBLE')) AS numbers,
            count(*) FILTER (WHERE e.type = 'BOOLEAN') AS booleans
        FROM objects, json_each(objects._line) AS e
        GROUP BY e.key ORDER BY seen
        """,
        chunk_params(sample),
    ).fetchall()
    found: dict[str, str] = {}
    for key, _, present, numbers, booleans in rows:
        if _mostly(numbers, present):
            found[str(key)] = "DOUBLE"
        elif present and booleans == present:
            found[str(key)] = "BOOLEAN"
        else:
            found[str(key)] = "VARCHAR"
    return found


def value_type(source: SourceFile, file_types: dict[str, str], name: str) -> str:
    """The type of a column's values as a reader yields them: a Parquet file's own (`file_types`),
    text for a text log (and for a column the file lacks, which reads as NULL)."""
    return file_types.get(name, "VARCHAR") if source.format == "parquet" else "VARCHAR"


def sample_sql(
    source: SourceFile, names: list[str], file_types: dict[str, str]
) -> tuple[str, dict[str, object] | None]:
    """A reader query over a sample of a log, and its parameters: the complete lines in the first
    MiB of a text log (those `file_columns` reads), the first `SAMPLE_PARQUET_ROWS` of a Parquet
    file (`file_types`: its columns, as `file_columns` gives them)."""
    if source.format == "parquet":
        return parquet_sql(source, names, file_types, (0, SAMPLE_PARQUET_ROWS)), None
    partitions = dict(source.partitions)
    params = chunk_params(head_text(source))
    if source.format == "csv":
        header = csv_header(source) or CsvHeader(",", ())  # an empty file: no rows
        return csv_sql(names, header, partitions), params
    return jsonl_sql(names, partitions), params


def union_columns(con: duckdb.DuckDBPyConnection, sources: list[SourceFile]) -> dict[str, str]:
    """Columns of the first few files of a source, in first-seen order.

    Types that disagree between files widen to VARCHAR (numbers of different widths stay numbers).
    """
    merged: dict[str, str] = {}
    for source in sources[:SNIFF_FILES]:
        try:
            columns = file_columns(con, source)
        except SourceError:
            continue  # reported when the file itself is ingested
        for name, duckdb_type in columns.items():
            if name not in merged:
                merged[name] = duckdb_type
            elif merged[name] != duckdb_type and not (
                is_numeric_type(merged[name]) and is_numeric_type(duckdb_type)
            ):
                merged[name] = "VARCHAR"
    return merged
