"""The DuckDB log store: ingest, registry, quarantine, label joins."""
