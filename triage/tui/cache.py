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

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from triage.tui.data import Snapshot

FORMAT = 2


def cache_path(store_path: Path) -> Path:
    """Where the snapshot of the store at `store_path` is kept."""
    return store_path.with_name(store_path.name + ".snapshot.json")


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and dataclasses.is_dataclass(first := next(iter(kinds))):
            # A table of rows: the field names once, then one array per row (a third of the size,
            # and positional arguments decode faster than keyword ones).
            names = [f.name for f in dataclasses.fields(first)]
            return {"columns": names, "rows": [[_encode(getattr(item, n)) for n in names] for item in value]}
        return [_encode(item) for item in value]
    if isinstance(value, float) and value != value:  # NaN never reaches a panel, but never write it
        return None
    return value


Decoder = Callable[[Any], Any]


@functools.cache
def _decoder(kind: Any) -> Decoder:
    """A function turning parsed JSON into an instance of the annotation `kind` (ValueError if it
    is not one); built once per type, so a snapshot of tens of thousands of rows decodes quickly."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [_decoder(option) for option in typing.get_args(kind) if option is not type(None)]
        nullable = type(None) in typing.get_args(kind)
        return functools.partial(_union, tuple(options), nullable)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            table = _table_decoder(args[0]) if dataclasses.is_dataclass(args[0]) else None
            return lambda value: (
                table(value) if table and isinstance(value, dict) else tuple(item(v) for v in value)
            )
        items = [_decoder(arg) for arg in args]
        return lambda value: tuple(d(v) for d, v in zip(items, value, strict=True))
    if origin is list:
        item = _decoder(typing.get_args(kind)[0])
        return lambda value: [item(v) for v in value]
    if origin in (dict, Mapping) or kind is Mapping:
        args = typing.get_args(kind)
        item = _decoder(args[1]) if args else _any
        return lambda value: {key: item(v) for key, v in _object(value).items()}
    if kind is Any or kind is object:
        return _any
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(kind) if f.init}
        build = typing.cast(Callable[..., Any], kind)
        return lambda value: build(**{k: fields[k](v) for k, v in _object(value).items() if k in fields})
    if kind is datetime:
        return datetime.fromisoformat
    if kind is float:
        return _float
    if isinstance(kind, type):
        return functools.partial(_instance, kind)
    raise ValueError(f"cannot decode {kind}")


def _table_decoder(kind: Any) -> Decoder:
    """Rows written as {"columns": [...], "rows": [[...], ...]} back into a tuple of `kind`."""
    hints = typing.get_type_hints(kind)
    decoders = {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(kind) if f.init}
    build = typing.cast(Callable[..., Any], kind)

    order = list(decoders)
    fields = list(decoders.values())

    def decode(value: Any) -> tuple[Any, ...]:
        if _object(value)["columns"] != order:
            raise ValueError(f"the columns of {kind.__name__} changed")
        return tuple(build(*[d(v) for d, v in zip(fields, row, strict=True)]) for row in value["rows"])

    return decode


def _union(options: tuple[Decoder, ...], nullable: bool, value: Any) -> Any:
    if value is None and nullable:
        return None
    for option in options:
        try:
            return option(value)
        except (TypeError, ValueError):
            continue
    raise ValueError(f"unexpected {value!r}")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return value


def _any(value: Any) -> Any:
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _instance(kind: type, value: Any) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ValueError(f"expected {kind.__name__}, got {value!r}")
    return value


def save_snapshot(path: Path, snapshot: Snapshot) -> None:
    """Write `snapshot` to `path` atomically (a failure to write is not the user's problem)."""
    document = {"format": FORMAT, "snapshot": _encode(snapshot)}
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
        return typing.cast(Snapshot, _decoder(Snapshot)(document["snapshot"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
