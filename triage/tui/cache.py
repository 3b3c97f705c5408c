"""The last live snapshot, kept beside the store so the next `triage` shows it at once.

Evaluating a large store takes seconds; an engineer paged at 2 a.m. should see the last known
picture immediately — marked as cached, with its as-of time — while the fresh one computes. The
live UI writes every snapshot it shows here (JSON, written to a temporary name and renamed, so a
reader never sees half a file); the UI reads it once at start-up. Anything unreadable (another
triage version, a torn file, hand edits) is ignored: the cache only ever saves time.

Like Dolphie's replay files, this records exactly what the panels consumed, through the same
typed values, so a cached screen renders through the same code as a fresh one.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path

from triage.metrics.codec import decoder, encode
from triage.tui.data import Snapshot

FORMAT = 3  # 3: drift rows carry ks_d_psi_blind


def cache_path(store_path: Path) -> Path:
    """Where the snapshot of the store at `store_path` is kept."""
    return store_path.with_name(store_path.name + ".snapshot.json")


def save_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Write `snapshot` to `path` atomically (a failure to write is not the user's problem)."""
    document = {"format": FORMAT, "snapshot": encode(snapshot)}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(document, allow_nan=False), encoding="utf-8")
        temporary.replace(path)
    except (OSError, ValueError):
        temporary.unlink(missing_ok=True)


def load_snapshot(path: Path) -> Snapshot | None:
    """The cached snapshot, or None when there is none this version can read."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            return None
        return typing.cast(Snapshot, decoder(Snapshot)(document["snapshot"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
