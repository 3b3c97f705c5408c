"""`{name}` templates in runbook steps, JSON paths into responses, and the conditions on them.

Templates: `{name}` is replaced by a variable (a parameter, a captured value or a builtin). A JSON
string that is exactly one `{name}` becomes the variable's own value (an integer stays an
integer); anywhere else the value is inserted as text. In a URL path each value is
percent-encoded, so a parameter can never change the route.

Paths: dotted keys with list steps — `status.phase`, `items[0].name`,
`status.conditions[type=Progressing].reason`, `model_versions[version<3].version`. A filter
`[key OP value]` (OP one of `= != < <= > >=`) selects the first list element whose `key`
compares true; numbers and numeric strings compare as numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

VAR_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SEGMENT_RE = re.compile(
    r"(?P<key>[^.\[\]]+)|\[(?P<index>\d+)\]|\[(?P<fkey>[^\]=<>!]+)(?P<op>=|!=|<=|>=|<|>)(?P<fvalue>[^\]]*)\]"
)
OPERATORS = ("equals", "not_equals", "in", "exists", "gt", "gte", "lt", "lte")


class Missing:
    """The value at a path that leads nowhere (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = Missing()


class Placeholder(str):
    """A value known only at run time (a capture); renders as `{name}` in dry runs."""


def placeholder(name: str) -> Placeholder:
    """The stand-in for variable `name` until it is captured."""
    return Placeholder("{" + name + "}")


def variables(value: Any) -> set[str]:
    """Every `{name}` used in a string, list or table, recursively."""
    if isinstance(value, str):
        return set(VAR_RE.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(variables(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(variables(v) for v in value)) if value else set()
    return set()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render_text(template: str, values: Mapping[str, Any], *, url: bool = False) -> str:
    """Substitute every `{name}`; with `url`, each value is percent-encoded (nothing is safe)."""

    def substitute(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        text = _text(value)
        return quote(text, safe="") if url and not isinstance(value, Placeholder) else text

    return VAR_RE.sub(substitute, template)


def render_value(template: Any, values: Mapping[str, Any]) -> Any:
    """Render a JSON template: a string that is exactly `{name}` takes the value's own type."""
    if isinstance(template, str):
        whole = VAR_RE.fullmatch(template)
        if whole:
            return values[whole.group(1)]
        return render_text(template, values)
    if isinstance(template, Mapping):
        return {key: render_value(item, values) for key, item in template.items()}
    if isinstance(template, list | tuple):
        return [render_value(item, values) for item in template]
    return template


def check_path(path: str) -> None:
    """Raise ValueError unless `path` is a well-formed JSON path (templates allowed in filters)."""
    position = 0
    text = path
    while position < len(text):
        match = _SEGMENT_RE.match(text, position)
        if not match:
            raise ValueError(f"bad path {path!r} at {text[position:]!r}")
        position = match.end()
        if position < len(text) and text[position] == ".":
            position += 1
            if position == len(text):
                raise ValueError(f"bad path {path!r}: ends with '.'")
    if not text:
        raise ValueError("empty path")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def same(left: Any, right: Any) -> bool:
    """Equality where 3, 3.0 and "3" are the same value (MLflow versions are strings)."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    return left == right


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return same(left, right) or _text(left) == _text(right)
    if op == "!=":
        return not (same(left, right) or _text(left) == _text(right))
    a, b = _number(left), _number(right)
    if a is None or b is None:
        if not (isinstance(left, str) and isinstance(right, str)):
            return False
        a_s, b_s = left, right
        return {"<": a_s < b_s, "<=": a_s <= b_s, ">": a_s > b_s, ">=": a_s >= b_s}[op]
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def lookup(document: Any, path: str) -> Any:
    """The value at `path` in a decoded JSON document, or MISSING."""
    current = document
    for match in _SEGMENT_RE.finditer(path):
        if match.group("key") is not None:
            if not isinstance(current, Mapping) or match.group("key") not in current:
                return MISSING
            current = current[match.group("key")]
        elif match.group("index") is not None:
            index = int(match.group("index"))
            if not isinstance(current, list) or index >= len(current):
                return MISSING
            current = current[index]
        else:
            if not isinstance(current, list):
                return MISSING
            key, op, wanted = match.group("fkey"), match.group("op"), match.group("fvalue")
            current = next(
                (
                    item
                    for item in current
                    if isinstance(item, Mapping) and key in item and _compare(item[key], op, wanted)
                ),
                MISSING,
            )
            if current is MISSING:
                return MISSING
    return current


@dataclass(frozen=True)
class Condition:
    """`path OP value` on a JSON document; `value` may hold templates, rendered before testing."""

    path: str
    op: str  # one of OPERATORS
    value: Any

    def render(self, values: Mapping[str, Any]) -> Condition:
        """This condition with its path filters and value rendered."""
        return Condition(render_text(self.path, values), self.op, render_value(self.value, values))

    def holds(self, document: Any) -> tuple[bool, Any]:
        """Whether the (rendered) condition holds, and the value found at the path."""
        found = lookup(document, self.path)
        if self.op == "exists":
            return (found is not MISSING) == bool(self.value), found
        if found is MISSING:
            return False, found
        if self.op == "equals":
            return same(found, self.value), found
        if self.op == "not_equals":
            return not same(found, self.value), found
        if self.op == "in":
            return any(same(found, option) for option in self.value), found
        number, limit = _number(found), _number(self.value)
        if number is None or limit is None:
            return False, found
        result = {"gt": number > limit, "gte": number >= limit, "lt": number < limit, "lte": number <= limit}
        return result[self.op], found

    def describe(self) -> str:
        """`path == value` for people."""
        symbols = {"equals": "==", "not_equals": "!=", "in": "in", "gt": ">", "gte": ">=", "lt": "<"}
        symbols["lte"] = "<="
        if self.op == "exists":
            return f"{self.path} {'exists' if self.value else 'is absent'}"
        return f"{self.path} {symbols[self.op]} {self.value!r}"


def all_hold(conditions: Iterable[Condition], document: Any) -> tuple[bool, list[str]]:
    """Whether every condition holds, and one line per condition that does not."""
    failures = []
    for condition in conditions:
        ok, found = condition.holds(document)
        if not ok:
            failures.append(f"{condition.describe()} (found {found!r})")
    return not failures, failures
