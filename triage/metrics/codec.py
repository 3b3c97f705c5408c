"""Typed JSON for result rows: dataclasses (and the tuples, lists, mappings, datetimes inside them)
to JSON-able values and back into the same types.

A tuple of rows is written as a table — the field names once, then one array per row — a third of
the size, and positional arguments decode faster than keyword ones. Decoding checks every value
against its annotation (ValueError otherwise), so a reader of an older format gets an error, never
a half-typed object. Used by the per-window cache in the store and the TUI's last-session view.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

Decoder = Callable[[Any], Any]


def encode(value: Any) -> Any:
    if value is None or type(value) in (str, int, bool):  # most values: is_dataclass is slow
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and dataclasses.is_dataclass(first := next(iter(kinds))):
            # A table of rows: the field names once, then one array per row (a third of the size,
            # and positional arguments decode faster than keyword ones).
            names = [f.name for f in dataclasses.fields(first)]
            return {"columns": names, "rows": [[encode(getattr(item, n)) for n in names] for item in value]}
        return [encode(item) for item in value]
    if isinstance(value, float) and value != value:  # NaN never reaches a panel, but never write it
        return None
    return value


@functools.cache
def decoder(kind: Any) -> Decoder:
    """A function turning parsed JSON into an instance of the annotation `kind` (ValueError if it
    is not one); built once per type, so a snapshot of tens of thousands of rows decodes quickly."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [decoder(option) for option in typing.get_args(kind) if option is not type(None)]
        nullable = type(None) in typing.get_args(kind)
        return functools.partial(_union, tuple(options), nullable)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = decoder(args[0])
            table = _tabledecoder(args[0]) if dataclasses.is_dataclass(args[0]) else None
            return lambda value: (
                table(value) if table and isinstance(value, dict) else tuple(map(item, value))
            )
        items = [decoder(arg) for arg in args]
        return lambda value: tuple(d(v) for d, v in zip(items, value, strict=True))
    if origin is list:
        item = decoder(typing.get_args(kind)[0])
        return lambda value: [item(v) for v in value]
    if origin in (dict, Mapping) or kind is Mapping:
        args = typing.get_args(kind)
        item = decoder(args[1]) if args else _any
        return lambda value: {key: item(v) for key, v in _object(value).items()}
    if kind is Any or kind is object:
        return _any
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = {f.name: decoder(hints[f.name]) for f in dataclasses.fields(kind) if f.init}
        build = typing.cast(Callable[..., Any], kind)
        return lambda value: build(**{k: fields[k](v) for k, v in _object(value).items() if k in fields})
    if kind is datetime:
        return datetime.fromisoformat
    if kind is float:
        return _float
    if isinstance(kind, type):
        return functools.partial(_instance, kind)
    raise ValueError(f"cannot decode {kind}")


def _tabledecoder(kind: Any) -> Decoder:
    """Rows written as {"columns": [...], "rows": [[...], ...]} back into a tuple of `kind`.

    Most values are already what their field holds (a float for `float | None`, text for `str`):
    a row's types are looked up once per combination (`to_convert`), and only the other values
    go through their field's decoder — a window of ten thousand rows then costs a few type checks
    a row, not a decoder call a value. Times are read once per text in a table.
    """
    hints = typing.get_type_hints(kind)
    init = [f for f in dataclasses.fields(kind) if f.init]
    order = [f.name for f in init]
    fields = [decoder(hints[f.name]) for f in init]
    plain = [_plain_types(hints[f.name]) for f in init]
    build = typing.cast(Callable[..., Any], kind)
    # Text and times repeat down a table (its windows, versions, slices, features, notes): each
    # row's equal to the first one read, not an object of its own (≈ 50 bytes each, per field).
    repeated = repeating_fields(kind)
    times = [k for k in repeated if datetime in _options(hints[init[k].name])]
    texts = [k for k in repeated if k not in times]
    converted: dict[tuple[type, ...], list[int]] = {}  # per combination of a row's types

    def to_convert(types: tuple[type, ...]) -> list[int]:
        found = converted.get(types)
        if found is None:
            if len(types) != len(fields):
                raise ValueError(f"a row of {kind.__name__} has {len(types)} values, not {len(fields)}")
            found = [k for k, t in enumerate(types) if t not in plain[k] and k not in times]
            converted[types] = found
        return found

    def decode(value: Any) -> tuple[Any, ...]:
        if _object(value)["columns"] != order:
            raise ValueError(f"the columns of {kind.__name__} changed")
        moments: dict[Any, Any] = {}  # each time's text, read
        built = []
        for row in value["rows"]:
            values = list(row)
            for k in to_convert(tuple(map(type, values))):
                values[k] = fields[k](values[k])
            for k in times:
                text = values[k]
                moment = moments.get(text, _UNREAD)
                if moment is _UNREAD:
                    moment = moments[text] = fields[k](text)
                values[k] = moment
            for k in texts:
                if type(text := values[k]) is str:
                    values[k] = sys.intern(text)
            built.append(build(*values))
        return tuple(built)

    return decode


_UNREAD = object()


def _options(hint: Any) -> tuple[Any, ...]:
    """The types a hint allows: a union's members, else the hint itself."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return typing.get_args(hint) if union else (hint,)


def _plain_types(hint: Any) -> frozenset[type]:
    """The JSON value types a field of type `hint` holds as they are (its decoder would return them
    unchanged): text, integers, floats, booleans and None where the hint allows them."""
    return frozenset(option for option in _options(hint) if option in (str, int, float, bool, type(None)))


def repeating_fields(kind: Any) -> list[int]:
    """The positions of a dataclass's fields that hold text or a time (or None): those whose values
    repeat down a table of rows, which `sharing` pays for."""
    hints = typing.get_type_hints(kind)

    def repeats(hint: Any) -> bool:
        return all(option in (str, datetime, type(None)) for option in _options(hint))

    return [k for k, f in enumerate(dataclasses.fields(kind)) if f.init and repeats(hints[f.name])]


def sharing() -> Callable[[Any], Any]:
    """A function that returns, for each value, an equal one already held: text interned (for the
    process, while anything holds it), times the first equal one given to this function. A hundred
    thousand rows read back from the store then hold each version, slice, feature name and note
    once, not once per row. For text and times only (1 == 1.0 == True)."""
    seen: dict[Any, Any] = {}

    def share(value: Any) -> Any:
        return sys.intern(value) if type(value) is str else seen.setdefault(value, value)

    return share


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
