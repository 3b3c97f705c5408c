"""Helpers for the store tests: write logs and configs in a temporary folder, ingest, query."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import duckdb

from triage.config import Config, load_config
from triage.store import IngestSummary, Store

# The reference of a model body without its own: one ending before the logs these tests write.
EARLY_REFERENCE = '[model.reference]\nend = "2025-12-01"\n'


def write_config(folder: Path, model: str, *, name: str = "triage.toml") -> Path:
    """A triage.toml in `folder` with a store beside it and one [[model]] whose body is `model`
    (`EARLY_REFERENCE` added when the body has no [model.reference])."""
    path = folder / name
    body = model.strip() + "\n"
    if "[model.reference]" not in body:
        body += "\n" + EARLY_REFERENCE
    path.write_text(f'[store]\npath = "store.duckdb"\n\n[[model]]\n{body}', encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any], *, compress: bool = False, mode: str = "w") -> Path:
    """Write rows (dicts as JSON, strings verbatim) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    if compress:
        with gzip.open(path, mode + "t", encoding="utf-8") as handle:
            handle.write(text)
    else:
        with open(path, mode, encoding="utf-8") as handle:
            handle.write(text)
    return path


def write_parquet(path: Path, select_sql: str) -> Path:
    """Write the result of a DuckDB SELECT to a Parquet file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()
    return path


def ingest(config_path: Path) -> IngestSummary:
    """Open the config's store, ingest, close."""
    config = load_config(config_path)
    with Store.open(config.store_path) as store:
        return store.ingest(config)


def query(config_path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a query against the config's store (opened read-only, then closed)."""
    config = load_config(config_path)
    with Store.open(config.store_path, read_only=True) as store:
        return store.connection.execute(sql, params or []).fetchall()


def config_of(config_path: Path) -> Config:
    return load_config(config_path)
