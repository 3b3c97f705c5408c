"""The DuckDB log store: ingest, registry, quarantine, label joins.

Start with `Store.open(config.store_path)`; the concurrency model is described in `triage.store.db`,
the tables in `triage.store.schema`, the SQL for reference rows and labels in `triage.store.queries`.
"""

from triage.store.db import Store, connect
from triage.store.errors import StoreError
from triage.store.info import ModelInfo, QuarantinedRow, StoreInfo
from triage.store.ingest import FileIngest, IngestSummary
from triage.store.queries import labeled_predictions_sql, labels_as_of_sql, predictions_sql, reference_sql
from triage.store.tables import Feature, Layout

__all__ = [
    "Feature",
    "FileIngest",
    "IngestSummary",
    "Layout",
    "ModelInfo",
    "QuarantinedRow",
    "Store",
    "StoreError",
    "StoreInfo",
    "connect",
    "labeled_predictions_sql",
    "labels_as_of_sql",
    "predictions_sql",
    "reference_sql",
]
