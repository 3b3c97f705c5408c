"""`triage.toml` → frozen, validated objects.

This is the only module that parses configuration. Every mistake raises `ConfigError`, whose
message is one line naming the file, the key and what was expected.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_CONFIG = "triage.toml"
DEFAULT_MIN_SAMPLES = 200
TASKS = ("binary", "regression")

# Roles a prediction log may map; `label`, `labeled_at` and `label_id` are read from the label log
# (`label_id`: the label log's id column when it is not named like the prediction log's `id`).
REQUIRED_ROLES = ("id", "timestamp", "score")
OPTIONAL_ROLES = (
    "version",
    "prediction",
    "latency_ms",
    "cost",
    "tokens",
    "error",
    "fallback",
    "route",
)
LABEL_ROLES = ("label", "labeled_at", "label_id")
ALL_ROLES = REQUIRED_ROLES + OPTIONAL_ROLES + LABEL_ROLES

# ASCII digits then the unit, nothing around them: `\d` would take any script's digits ("１d").
_WINDOW_RE = re.compile(r"([0-9]+)(h|d|w|mo)")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
T = TypeVar("T")


class ConfigError(Exception):
    """A configuration mistake: where it is and what was expected, in one line."""

    def __init__(self, file: str | Path, key: str, expected: str) -> None:
        self.file = str(file)
        self.key = key
        self.expected = expected
        where = f"{self.file}: {key}" if key else self.file
        super().__init__(f"{where}: {expected}")

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Each mistake: one line each."""
        return (self,)


class ConfigErrors(ConfigError):
    """Several configuration mistakes, found in one reading (each model, alert rule and target
    stops at its own first one): `problems`, one line each; where and what of the first."""

    def __init__(self, problems: Sequence[ConfigError]) -> None:
        first = problems[0]
        super().__init__(first.file, first.key, first.expected)
        self.args = ("\n".join(str(problem) for problem in problems),)
        self._problems = tuple(problems)

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        return self._problems


class Mistakes:
    """Collects the mistakes of independent parts of a config (`part`), to raise them together."""

    def __init__(self) -> None:
        self.found: list[ConfigError] = []

    def part(self, read: Callable[[], T]) -> T | None:
        """`read()`, or None with its mistakes kept."""
        try:
            return read()
        except ConfigError as exc:
            self.found.extend(exc.problems)
            return None

    def add(self, problem: ConfigError) -> None:
        self.found.append(problem)

    def raise_any(self) -> None:
        """Raise what was found: the one mistake, or all of them."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise ConfigErrors(self.found)


# The feature name of the model's score in drift and data-quality rows (and a rule's `where`).
SCORE_FEATURE = "__score__"
_BUCKET_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
# ASCII digits, the unit right after them (a prompt's or an option's surrounding spaces are let go).
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)(s|m|h|d|w)\s*$")


@dataclass(frozen=True)
class Window:
    """A fixed UTC time bucket: `count` hours, days, weeks or calendar months.

    Buckets are counted from Monday 2000-01-03 00:00 UTC, or from `origin` (trailing windows: one
    of them ends there); months are calendar months and take no origin.
    """

    count: int
    unit: str  # "h" | "d" | "w" | "mo"
    origin: datetime | None = None  # aware UTC

    @property
    def text(self) -> str:
        return f"{self.count}{self.unit}"

    @property
    def trailing(self) -> bool:
        """Whether the buckets are counted from an as-of time: they move with it, so nothing
        computed on them is stored (caches keep fixed windows only)."""
        return self.origin is not None

    @property
    def key(self) -> str:
        """What tells two windowings apart (caches): the size, and the origin of trailing ones."""
        return self.text if self.origin is None else f"{self.text}@{self.origin.isoformat()}"

    def ending_at(self, end: datetime) -> Window:
        """The same size, counted so that one window ends at `end` (not for months)."""
        if self.unit == "mo":
            raise ValueError("calendar months cannot trail")
        return replace(self, origin=end.astimezone(UTC))

    @property
    def under_a_day(self) -> bool:
        """Whether the window is shorter than a day: it sees a part of the daily cycle."""
        return self.unit == "h" and self.count < 24

    @property
    def at_most_a_day(self) -> bool:
        """Whether the window is a day or shorter: it sees a part of the daily cycle, or one day of
        the weekly one."""
        return self.under_a_day or (self.unit, self.count) in (("h", 24), ("d", 1))

    @property
    def duckdb_interval(self) -> str:
        names = {"h": "hours", "d": "days", "w": "weeks", "mo": "months"}
        return f"INTERVAL '{self.count} {names[self.unit]}'"

    def start_of(self, at: datetime) -> datetime:
        """The start of the window `at` falls in, as DuckDB's `time_bucket` cuts it (aware UTC):
        months counted from January 2000, other sizes from Monday 2000-01-03 00:00 UTC."""
        at = at.astimezone(UTC)
        if self.unit == "mo":
            months = (at.year - 2000) * 12 + at.month - 1
            first = months - months % self.count
            return datetime(2000 + first // 12, first % 12 + 1, 1, tzinfo=UTC)
        size = timedelta(hours={"h": 1, "d": 24, "w": 168}[self.unit] * self.count)
        origin = self.origin or _BUCKET_ORIGIN
        return origin + ((at - origin) // size) * size

    def count_between(self, first: datetime, last: datetime) -> int:
        """How many windows there are from the one `first` falls in to the one `last` falls in."""
        start, end = self.start_of(first), self.start_of(last)
        if self.unit == "mo":
            return ((end.year - start.year) * 12 + end.month - start.month) // self.count + 1
        return (end - start) // (self.end_of(start) - start) + 1

    def end_of(self, start: datetime) -> datetime:
        """The exclusive end of the window that starts at `start` (calendar months for `mo`)."""
        if self.unit == "mo":
            months = start.month - 1 + self.count
            return start.replace(year=start.year + months // 12, month=months % 12 + 1)
        return start + timedelta(hours={"h": 1, "d": 24, "w": 168}[self.unit] * self.count)


# The longest window, per unit (about ten years): dates a few hundred windows away stay in range.
MAX_WINDOW = {"h": 24 * 3652, "d": 3652, "w": 521, "mo": 120}
WINDOW_EXPECTED = "a window like 1h, 6h, 1d, 7d, 1w or 1mo (at most ten years)"


def parse_window(text: str) -> Window:
    """Parse ASCII digits immediately followed by h, d, w or mo (`1h`, `6h`, `1d`, `7d`, `1w`, `1mo` …)
    up to MAX_WINDOW; else ValueError."""
    match = _WINDOW_RE.fullmatch(text)
    if not match or not 0 < int(match.group(1)) <= MAX_WINDOW[match.group(2)]:
        raise ValueError(text)
    return Window(int(match.group(1)), match.group(2))


def case_clash(names: Sequence[str]) -> tuple[str, str] | None:
    """The first two names that differ only in case (earlier, later), or None: the store keeps the
    segments and features as columns, and DuckDB's column names ignore case."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            return other, name
    return None


def parse_duration(text: str) -> timedelta | None:
    """`90s`, `30m`, `2h`, `1d`, `1w` → a positive timedelta; None when it is not one."""
    match = _DURATION_RE.match(text)
    if not match or float(match.group(1)) == 0:
        return None
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    try:
        return timedelta(**{units[match.group(2)]: float(match.group(1))})
    except OverflowError:  # beyond timedelta's million millennia
        return None


def parse_time(text: str) -> datetime:
    """Parse an ISO date or date-time; naive values are UTC. Returns an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Columns:
    """Role → column name in the user's logs; None where the role is not mapped."""

    id: str
    timestamp: str
    score: str
    version: str | None = None
    prediction: str | None = None
    latency_ms: str | None = None
    cost: str | None = None
    tokens: str | None = None
    error: str | None = None
    fallback: str | None = None
    route: str | None = None
    label: str | None = None
    labeled_at: str | None = None
    label_id: str | None = None

    def mapped(self, roles: tuple[str, ...]) -> dict[str, str]:
        """The given roles that are mapped, as role → user column."""
        return {role: getattr(self, role) for role in roles if getattr(self, role) is not None}


def label_id_hint(model_key: str) -> str:
    """What to do when a label log lacks the prediction log's id column (`columns.id`): map its own."""
    return f"set {model_key}.columns.label_id to the label log's id column if it names the id differently"


@dataclass(frozen=True)
class Reference:
    """What "normal" means: a time range, a file set, or the first days of a version."""

    start: datetime | None = None
    end: datetime | None = None
    files: str | None = None
    version: str | None = None
    days: int | None = None

    @property
    def kind(self) -> str:
        if self.files is not None:
            return "files"
        if self.version is not None:
            return "version"
        return "range"

    def describe(self) -> str:
        if self.kind == "files":
            return f"files {self.files}"
        if self.kind == "version":
            return f"first {self.days} days of version {self.version}"
        start = _utc_text(self.start) if self.start else "the first prediction"
        end = _utc_text(self.end) if self.end else "now"
        return f"{start} .. {end}"


def _utc_text(at: datetime) -> str:
    """`2026-01-05 00:00 UTC`; seconds and microseconds only when there are some."""
    at = at.astimezone(UTC)
    seconds = ":%S.%f" if at.microsecond else ":%S" if at.second else ""
    return at.strftime(f"%Y-%m-%d %H:%M{seconds} UTC")


@dataclass(frozen=True)
class SegmentCost:
    """The costs of wrong decisions in one value of the cost segment (`Costs.segment`)."""

    value: str
    false_positive: float
    false_negative: float


@dataclass(frozen=True)
class Costs:
    """Cost of each wrong decision, in the team's currency: these, or in the rows whose value of
    the segment column `segment` is listed in `by_value`, that value's."""

    false_positive: float = 1.0
    false_negative: float = 1.0
    segment: str | None = None
    by_value: tuple[SegmentCost, ...] = ()

    @property
    def classes(self) -> tuple[tuple[float, float], ...]:
        """(false positive, false negative) costs per cost class: 0 the default, k the k-th value."""
        listed = ((c.false_positive, c.false_negative) for c in self.by_value)
        return ((self.false_positive, self.false_negative), *listed)


@dataclass(frozen=True)
class Positive:
    """The values (trimmed, any case) that mean the positive class where the logs name classes
    ("fraud" / "legit"): a label or logged decision among them is 1, any other 0. Empty: the label
    is 0/1 (or true/false, yes/no), and so is the decision."""

    label: tuple[str, ...] = ()
    prediction: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertRule:
    """One `[[model.alert]]` table; see the README's Alerts section for each field."""

    name: str
    signal: str
    where: Mapping[str, str] = field(default_factory=dict)
    warn: float | None = None
    critical: float | None = None
    direction: str | None = None  # "above" | "below" | "both"; inferred from the signal when None
    baseline: str | None = None  # "reference" | "previous:30d"
    warn_change: float | None = None
    critical_change: float | None = None
    band: str | None = None  # "3sigma"
    # "3sigma": a crossed cell alerts only outside that band of the reference windows (those at its
    # time of day, for windows shorter than a day): a daily cycle is not an incident.
    outside_band: str | None = None
    for_windows: int = 1
    min_samples: int | None = None
    min_label_coverage: float | None = None
    runbook: str | None = None
    severity: str | None = None
    q: float | None = None  # Benjamini–Hochberg false discovery rate of the significance gate
    effect: str | None = None  # field of the same row that must reach min_effect
    min_effect: float | None = None

    def named(self, key: str) -> str | None:
        """The value `where` names for a scope field (`"x"` and `"!x"` name x); None for `"*"` or
        no filter."""
        value = self.where.get(key, "*")
        return None if value == "*" else value.removeprefix("!")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    predictions: str
    columns: Columns
    labels: str | None = None
    # "binary": the score is the positive class's probability; "regression": the score is the
    # predicted value and the label the true one (no threshold, decision, calibration or costs).
    task: str = "binary"
    threshold: float = 0.5
    window: Window = Window(1, "d")
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    features_inferred: bool = True
    segments: tuple[str, ...] = ()
    reference: Reference = Reference()
    costs: Costs = Costs()
    positive: Positive = Positive()
    min_samples: int = DEFAULT_MIN_SAMPLES
    # A silence of the predictions this long fires the `feed-stale` alert (None: no such alert).
    stale_after: timedelta | None = None
    # The default rules include volume-drop and volume-spike (`FeedRow.volume_ratio`): opt-in, as a
    # feed's hour-to-hour volume is only comparable day to day for steady, on-time traffic.
    volume_alerts: bool = False
    alerts: tuple[AlertRule, ...] = ()
    alerts_configured: bool = False


@dataclass(frozen=True)
class Auth:
    """How to authenticate to a target; secrets are named, never written here."""

    type: str  # "none" | "bearer" | "basic"
    token_env: str | None = None
    token_file: str | None = None
    username_env: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class Target:
    """A named HTTP endpoint that runbook steps may call."""

    name: str
    base_url: str
    auth: Auth = Auth("none")
    ca_file: str | None = None
    verify_tls: bool = True
    timeout_s: float = 10.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    path: Path
    store_path: Path
    models: tuple[ModelConfig, ...]
    targets: Mapping[str, Target] = field(default_factory=dict)
    runbooks_dir: Path = Path("runbooks")
    audit_path: Path = Path("triage-audit.jsonl")

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def model(self, name: str) -> ModelConfig:
        for model in self.models:
            if model.name == name:
                return model
        names = ", ".join(m.name for m in self.models)
        raise ConfigError(self.path, "model", f"no model named {name!r} (configured: {names})")

    def within(self, path: str) -> str:
        """A file's path (a relative one is from the config's folder) relative to the config's folder
        when it lies inside it, else absolute: how the file registry names a log, so that a project
        moved whole keeps its registry."""
        base = Path(os.path.abspath(self.base_dir))
        absolute = Path(os.path.abspath(base / path))
        return str(absolute.relative_to(base)) if absolute.is_relative_to(base) else str(absolute)

    def resolve(self, pattern: str) -> str:
        """A path or glob from the config, made absolute against the config's folder."""
        expanded = os.path.expanduser(pattern)
        if "://" in expanded or os.path.isabs(expanded):
            return expanded
        return str(self.base_dir / expanded)


class _Reader:
    """Walks a TOML table, checking keys and types, and naming the key on every mistake."""

    def __init__(self, file: Path, table: Mapping[str, Any], prefix: str) -> None:
        self.file = file
        self.table = table
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        if not name:
            return self.prefix  # the table itself
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, expected: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), expected)

    def get(self, name: str, kind: type | tuple[type, ...], expected: str, default: Any = None):
        self.used.add(name)
        if name not in self.table:
            return default
        value = self.table[name]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise self.error(name, f"expected {expected}, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(name, f"expected {expected}, got {_describe(value)}")
        return value

    def require(self, name: str, kind: type | tuple[type, ...], expected: str):
        if name not in self.table:
            self.used.add(name)
            raise self.error(name, f"missing; expected {expected}")
        return self.get(name, kind, expected)

    def text(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.require(name, str, "a string") if required else self.get(name, str, "a string", default)
        if value is not None and not value.strip():
            raise self.error(name, "expected a non-empty string")
        return value

    def number(self, name: str, default: float | None = None) -> float | None:
        value = self.get(name, (int, float), "a number", default)
        return None if value is None else float(value)

    def integer(self, name: str, default: int | None = None, minimum: int = 0) -> int | None:
        value = self.get(name, int, "an integer", default)
        if value is not None and value < minimum:
            raise self.error(name, f"expected an integer >= {minimum}, got {value}")
        return value

    def names(self, name: str) -> tuple[str, ...]:
        value = self.get(name, list, "a list of column names", [])
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(name, f"expected a list of column names, got item {item!r}")
            if item in value[:index]:
                raise self.error(name, f"column {item!r} is listed twice")
        return tuple(value)

    def sub(self, name: str) -> _Reader:
        value = self.get(name, dict, "a table", {})
        return _Reader(self.file, value, self.key(name))

    def done(self, allowed_extra: tuple[str, ...] = ()) -> None:
        """Reject unknown keys (typos) with the list of keys this table accepts."""
        known = self.used | set(allowed_extra)
        for name in self.table:
            if name not in known:
                accepted = ", ".join(sorted(known))
                raise self.error(name, f"unknown key (expected one of: {accepted})")


def _describe(value: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    names |= {list: "a list", dict: "a table", datetime: "a date-time"}
    return names.get(type(value), type(value).__name__)


def _time(reader: _Reader, name: str) -> datetime | None:
    reader.used.add(name)
    raw = reader.table.get(name)
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.replace(tzinfo=UTC) if raw.tzinfo is None else raw.astimezone(UTC)
    if hasattr(raw, "isoformat"):  # a TOML local date
        return parse_time(raw.isoformat())
    if isinstance(raw, str):
        try:
            return parse_time(raw)
        except ValueError:
            pass
    raise reader.error(name, f"expected an ISO date or date-time like 2026-01-31, got {raw!r}")


def _positive(reader: _Reader, columns: Columns) -> Positive:
    """`[model.positive]`: `label` and `prediction`, each a class name or a list of them."""
    found: dict[str, tuple[str, ...]] = {}
    for role in ("label", "prediction"):
        value = reader.get(role, (str, list), "a class name or a list of class names", [])
        names = [value] if isinstance(value, str) else value
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise reader.error(role, f"expected non-empty class names, got {name!r}")
        if names and getattr(columns, role) is None:
            raise reader.error(role, f"columns.{role} is not mapped, so no {role} is read")
        found[role] = tuple(dict.fromkeys(name.strip().lower() for name in names))
    reader.done()
    return Positive(**found)


def _costs(reader: _Reader, segments: Sequence[str]) -> Costs:
    """`[model.costs]`: the cost matrix, and optionally other costs in some values of one segment
    column (`[model.costs.by_segment.<column>]`, `"<value>" = {false_negative = …}`; a cost not
    given there is the default one)."""
    default = Costs(_cost(reader, "false_positive"), _cost(reader, "false_negative"))
    by_segment = reader.sub("by_segment")
    if len(by_segment.table) > 1:
        raise by_segment.error("", f"expected one segment column, got {', '.join(by_segment.table)}")
    costs = default
    for column in by_segment.table:
        if column not in segments:
            listed = ", ".join(segments) or "none"
            raise by_segment.error(column, f"expected a column of [model.segments] (segments: {listed})")
        values = by_segment.sub(column)
        found = []
        for value in values.table:
            one = values.sub(value)
            found.append(
                SegmentCost(
                    value,
                    _cost(one, "false_positive", default.false_positive),
                    _cost(one, "false_negative", default.false_negative),
                )
            )
            one.done()
        costs = replace(default, segment=column, by_value=tuple(found))
    by_segment.done()
    reader.done()
    return costs


def _cost(reader: _Reader, name: str, default: float = 1.0) -> float:
    """One cost of the cost matrix: a number >= 0 (default 1, so that without `[model.costs]` the
    expected cost is the error rate)."""
    value = reader.number(name, default) or 0.0
    if not math.isfinite(value) or value < 0:  # TOML has nan and inf
        raise reader.error(name, f"expected a finite cost >= 0, got {value:g}")
    return value


def _columns(reader: _Reader) -> Columns:
    values: dict[str, str | None] = {}
    for role in ALL_ROLES:
        values[role] = reader.text(role, required=role in REQUIRED_ROLES)
    reader.done()
    return Columns(**values)  # type: ignore[arg-type]


def _reference(reader: _Reader) -> Reference:
    start, end = _time(reader, "start"), _time(reader, "end")
    files = reader.text("files")
    version = reader.text("version")
    days = reader.integer("days", minimum=1)
    reader.done()
    given = {"start/end": start or end, "files": files, "version": version}
    chosen = [kind for kind, value in given.items() if value]
    if len(chosen) > 1:
        raise reader.error(
            "", f"expected one of start/end, files or version+days; got {' and '.join(chosen)}"
        )
    if not chosen:
        raise reader.error(
            "",
            "missing; expected what is normal: a time range (start, end), a file set (files) or "
            "the first days of a version (version, days)",
        )
    if start is not None and end is None:
        raise reader.error(
            "end",
            "missing; expected the end of the reference period (one running to now would hold "
            "the windows compared with it)",
        )
    if version is not None and days is None:
        raise reader.error("days", "missing; expected the number of days of the version to use")
    if days is not None and version is None:
        raise reader.error("version", "missing; `days` needs the version whose first days are the reference")
    if start and end and start >= end:
        raise reader.error("end", f"expected a time after start ({start.isoformat()})")
    return Reference(start=start, end=end, files=files, version=version, days=days)


_SIGNAL_RE = re.compile(r"^[a-z_]+\.[a-z0-9_]+$")
_BASELINE_RE = re.compile(r"reference|previous:([0-9]+)(h|d|w)")


def _alert(reader: _Reader) -> AlertRule:
    name = reader.text("name", required=True)
    signal = reader.text("signal", required=True)
    assert name is not None and signal is not None
    if not _SIGNAL_RE.match(signal):
        raise reader.error("signal", f"expected table.field like drift.psi, got {signal!r}")
    where_raw = reader.get("where", dict, "a table of scope filters", {})
    for key, value in where_raw.items():
        if not isinstance(value, str):
            raise reader.error(f"where.{key}", f'expected a string (a value or "*"), got {value!r}')
    direction = reader.text("direction")
    if direction not in (None, "above", "below", "both"):
        raise reader.error("direction", f'expected "above", "below" or "both", got {direction!r}')
    baseline = reader.text("baseline")
    matched = None if baseline is None else _BASELINE_RE.fullmatch(baseline)
    if baseline is not None and (
        matched is None
        or (matched.group(1) and not 0 < int(matched.group(1)) <= MAX_WINDOW[matched.group(2)])
    ):
        raise reader.error(
            "baseline", f'expected "reference" or "previous:30d" (a span up to ten years), got {baseline!r}'
        )
    band, outside_band = reader.text("band"), reader.text("outside_band")
    for key, value in (("band", band), ("outside_band", outside_band)):
        if value is not None and not re.match(r"^\d+(\.\d+)?sigma$", value):
            raise reader.error(key, f'expected a band like "3sigma", got {value!r}')
    severity = reader.text("severity")
    if severity not in (None, "warning", "critical"):
        raise reader.error("severity", f'expected "warning" or "critical", got {severity!r}')
    coverage = reader.number("min_label_coverage")
    if coverage is not None and not 0 <= coverage <= 1:
        raise reader.error("min_label_coverage", f"expected a share in [0, 1], got {coverage}")
    q = reader.number("q")
    if q is not None and not 0 < q < 1:
        raise reader.error("q", f"expected a false discovery rate in (0, 1), got {q}")
    effect = reader.text("effect")
    if effect is not None and not re.match(r"^[a-z0-9_]+$", effect):
        raise reader.error("effect", f"expected a field of the signal's table like psi, got {effect!r}")
    min_effect = reader.number("min_effect")
    if min_effect is not None and min_effect < 0:
        raise reader.error("min_effect", f"expected a number >= 0, got {min_effect}")
    rule = AlertRule(
        name=name,
        signal=signal,
        where=dict(where_raw),
        warn=reader.number("warn"),
        critical=reader.number("critical"),
        direction=direction,
        baseline=baseline,
        warn_change=reader.number("warn_change"),
        critical_change=reader.number("critical_change"),
        band=band,
        outside_band=outside_band,
        for_windows=reader.integer("for_windows", 1, minimum=1) or 1,
        min_samples=reader.integer("min_samples", minimum=1),
        min_label_coverage=coverage,
        runbook=reader.text("runbook"),
        severity=severity,
        q=q,
        effect=effect,
        min_effect=min_effect,
    )
    reader.done()
    thresholds = (rule.warn, rule.critical, rule.warn_change, rule.critical_change, rule.band)
    if all(t is None for t in thresholds) and not signal.endswith("_p"):
        raise reader.error(
            "warn", "missing; a rule needs warn/critical, warn_change or band (a p-value signal: q)"
        )
    if (rule.warn_change is not None or rule.critical_change is not None) and not baseline:
        raise reader.error("baseline", "missing; warn_change needs a baseline")
    return rule


def _alerts(reader: _Reader, tables: list[Any]) -> list[AlertRule]:
    """The `[[model.alert]]` tables under `reader`'s model table."""
    alerts: list[AlertRule] = []
    mistakes = Mistakes()
    for i, alert_table in enumerate(tables):
        if not isinstance(alert_table, dict):
            mistakes.add(reader.error(f"alert[{i}]", "expected a [[model.alert]] table"))
            continue
        rule = mistakes.part(partial(_alert, _Reader(reader.file, alert_table, reader.key(f"alert[{i}]"))))
        if rule is not None:
            alerts.append(rule)
    mistakes.raise_any()
    return alerts


def _model(file: Path, table: Mapping[str, Any], index: int) -> ModelConfig:
    reader = _Reader(file, table, f"model[{index}]")
    name = reader.text("name", required=True)
    assert name is not None
    if not _NAME_RE.match(name):
        raise reader.error("name", f"expected letters, digits, - or _ (starting with a letter), got {name!r}")
    predictions = reader.text("predictions", required=True)
    assert predictions is not None
    labels = reader.text("labels")
    task = reader.text("task", "binary")
    if task not in TASKS:
        raise reader.error("task", f"expected one of {', '.join(map(repr, TASKS))}, got {task!r}")
    regression = task == "regression"
    for key in ("threshold", "costs", "positive") if regression else ():
        if key in table:
            raise reader.error(key, 'does not apply to a regression model (task = "regression")')
    threshold = reader.number("threshold", 0.5)
    assert threshold is not None
    if not 0.0 <= threshold <= 1.0:
        raise reader.error("threshold", f"expected a score threshold in [0, 1], got {threshold}")
    window_text = reader.text("window", "1d")
    assert window_text is not None
    try:
        window = parse_window(window_text)
    except ValueError:
        raise reader.error("window", f"expected {WINDOW_EXPECTED}, got {window_text!r}") from None
    volume_alerts = reader.get("volume_alerts", bool, "true or false", False)
    min_samples = reader.integer("min_samples", DEFAULT_MIN_SAMPLES, minimum=1)
    assert min_samples is not None
    stale_text = reader.text("stale_after")
    # As a window is written: nothing around it.
    stale_after = (
        None if stale_text is None or stale_text != stale_text.strip() else parse_duration(stale_text)
    )
    if stale_text is not None and stale_after is None:
        raise reader.error("stale_after", f"expected a duration like 30m, 2h or 1d, got {stale_text!r}")

    columns = _columns(reader.sub("columns"))
    if regression and columns.prediction is not None:
        raise reader.error(
            "columns.prediction", "does not apply to a regression model: its score is the prediction"
        )
    if columns.label is not None and labels is None:
        raise reader.error("labels", "missing; columns.label is set but no label log is configured")
    if labels is not None and columns.label is None:
        raise reader.error("columns.label", "missing; expected the label column of the label log")

    features = reader.sub("features")
    numeric, categorical = features.names("numeric"), features.names("categorical")
    features.done()
    segments_reader = reader.sub("segments")
    segments = segments_reader.names("columns")
    segments_reader.done()
    roles = set(columns.mapped(OPTIONAL_ROLES + REQUIRED_ROLES).values())
    # The store names its own columns (imported here: the store imports this module).
    from triage.store.tables import is_reserved

    for key, names in (
        ("features.numeric", numeric),
        ("features.categorical", categorical),
        ("segments.columns", segments),
    ):
        for column in names:
            if column in roles:
                raise reader.error(key, f"column {column!r} is already mapped to a role in columns")
            if is_reserved(column):
                raise reader.error(
                    key,
                    f"column {column!r} clashes with a column triage adds (see the README's reserved names)",
                )
            # A feature of that name would share the score's drift and data quality rows.
            if column == SCORE_FEATURE and key != "segments.columns":
                raise reader.error(
                    key, f"column {column!r} clashes with the score's name in the drift and data quality rows"
                )
    both = set(numeric) & set(categorical)
    if both:
        raise reader.error("features", f"column {sorted(both)[0]!r} is both numeric and categorical")
    # One column of the store per name: a slice column cannot be watched as a feature as well.
    sliced = set(segments) & (set(numeric) | set(categorical))
    if sliced:
        name = sorted(sliced)[0]
        raise reader.error("segments.columns", f"column {name!r} is a feature too; list it in one of the two")
    listed = dict.fromkeys(segments, "segments.columns") | dict.fromkeys(numeric, "features.numeric")
    listed |= dict.fromkeys(categorical, "features.categorical")
    clash = case_clash(list(listed))  # the store's column names ignore case
    if clash is not None:
        earlier, later = clash
        raise reader.error(
            listed[later], f"column {later!r} and {earlier!r} differ only in case, which the store ignores"
        )

    reference = _reference(reader.sub("reference"))
    costs = _costs(reader.sub("costs"), segments)
    positive = _positive(reader.sub("positive"), columns)

    alert_tables = reader.get("alert", list, "a list of [[model.alert]] tables", None)
    alerts = _alerts(reader, alert_tables or [])
    reader.done()
    return ModelConfig(
        name=name,
        predictions=predictions,
        labels=labels,
        columns=columns,
        task=task,
        threshold=threshold,
        window=window,
        numeric=numeric,
        categorical=categorical,
        features_inferred=not numeric and not categorical,
        segments=segments,
        reference=reference,
        costs=costs,
        positive=positive,
        min_samples=min_samples,
        stale_after=stale_after,
        volume_alerts=volume_alerts,
        alerts=tuple(alerts),
        alerts_configured=alert_tables is not None,
    )


def _target(file: Path, name: str, table: Any) -> Target:
    if not isinstance(table, dict):
        raise ConfigError(file, f"targets.{name}", "expected a table with base_url")
    reader = _Reader(file, table, f"targets.{name}")
    base_url = reader.text("base_url", required=True)
    assert base_url is not None
    if not re.match(r"^https?://[^/\s]+", base_url):
        raise reader.error("base_url", f"expected an http(s) URL, got {base_url!r}")
    auth_reader = reader.sub("auth")
    auth_type = auth_reader.text("type", "none")
    auth = Auth(
        type=auth_type or "none",
        token_env=auth_reader.text("token_env"),
        token_file=auth_reader.text("token_file"),
        username_env=auth_reader.text("username_env"),
        password_env=auth_reader.text("password_env"),
    )
    for secret_key in ("token", "password", "secret"):
        if secret_key in auth_reader.table:
            raise auth_reader.error(
                secret_key, "secrets are never written in config; use token_env or token_file"
            )
    auth_reader.done()
    if auth.type == "bearer" and not (auth.token_env or auth.token_file):
        raise auth_reader.error("token_env", "missing; bearer auth needs token_env or token_file")
    if auth.type == "basic" and not (auth.username_env and auth.password_env):
        raise auth_reader.error("username_env", "missing; basic auth needs username_env and password_env")
    if auth.type not in ("none", "bearer", "basic"):
        raise auth_reader.error("type", f'expected "none", "bearer" or "basic", got {auth.type!r}')
    ca_file = reader.text("ca_file")
    verify = reader.get("verify_tls", bool, "true or false", True)
    timeout = reader.number("timeout_s", 10.0)
    assert timeout is not None
    if timeout <= 0:
        raise reader.error("timeout_s", f"expected a positive number of seconds, got {timeout}")
    headers = reader.get("headers", dict, "a table of header names to values", {})
    for header, value in headers.items():
        if not isinstance(value, str):
            raise reader.error(f"headers.{header}", "expected a string")
        if header.lower() in ("authorization", "cookie"):
            raise reader.error(f"headers.{header}", "secrets are never written in config; use auth")
    reader.done()
    return Target(
        name=name,
        base_url=base_url.rstrip("/"),
        auth=auth,
        ca_file=ca_file,
        verify_tls=bool(verify),
        timeout_s=timeout,
        headers=dict(headers),
    )


def _store(reader: _Reader) -> tuple[str, str]:
    """The `[store]` table: the store's path and the audit log's."""
    store = reader.sub("store")
    store_path = store.text("path", "triage.duckdb")
    audit_path = store.text("audit", "triage-audit.jsonl")
    store.done()
    assert store_path is not None and audit_path is not None
    return store_path, audit_path


def parse_config(text: str, path: Path) -> Config:
    """Validate the TOML text of a config found at `path` (paths resolve against its folder)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML ({exc})") from None
    reader = _Reader(path, data, "")
    mistakes = Mistakes()
    store = mistakes.part(partial(_store, reader))
    runbooks_dir = mistakes.part(partial(reader.text, "runbooks", "runbooks"))
    model_tables = mistakes.part(partial(reader.require, "model", list, "at least one [[model]] table"))
    if model_tables == []:
        mistakes.add(reader.error("model", "expected at least one [[model]] table"))
    models: dict[int, ModelConfig] = {}
    for index, table in enumerate(model_tables or []):
        if not isinstance(table, dict):
            mistakes.add(reader.error(f"model[{index}]", "expected a [[model]] table"))
            continue
        model = mistakes.part(partial(_model, path, table, index))
        if model is not None:
            models[index] = model
    seen: set[str] = set()
    for index, model in models.items():
        if model.name in seen:
            mistakes.add(reader.error(f"model[{index}].name", f"duplicate model name {model.name!r}"))
        seen.add(model.name)
    target_tables = mistakes.part(
        partial(reader.get, "targets", dict, "a table of [targets.NAME] tables", {})
    )
    targets: dict[str, Target] = {}
    for name, table in (target_tables or {}).items():
        target = mistakes.part(partial(_target, path, name, table))
        if target is not None:
            targets[name] = target
    mistakes.part(reader.done)
    mistakes.raise_any()
    base = path.parent
    assert store is not None and runbooks_dir is not None
    store_path, audit_path = store
    return Config(
        path=path,
        store_path=(base / store_path) if store_path != ":memory:" else Path(store_path),
        models=tuple(models.values()),
        targets=targets,
        runbooks_dir=base / runbooks_dir,
        audit_path=base / audit_path,
    )


def load_rules(path: str | Path, config: Config) -> dict[str, tuple[AlertRule, ...]]:
    """A rule set to back-test (`triage replay --rules`): `[[model]]` tables with `name` and
    `[[model.alert]]` tables, as in triage.toml. Returns model name → rules for the models it names."""
    chosen = Path(path)
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(chosen, "", "rules file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(chosen, "", f"cannot read rules ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(chosen, "", f"not valid TOML ({exc})") from None
    reader = _Reader(chosen, data, "")
    tables = reader.require("model", list, "at least one [[model]] table with [[model.alert]] tables")
    reader.done()
    rules: dict[str, tuple[AlertRule, ...]] = {}
    mistakes = Mistakes()
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            mistakes.add(reader.error(f"model[{index}]", "expected a [[model]] table"))
            continue
        mistakes.part(partial(_model_rules, _Reader(chosen, table, f"model[{index}]"), config, rules))
    mistakes.raise_any()
    return rules


def _model_rules(reader: _Reader, config: Config, rules: dict[str, tuple[AlertRule, ...]]) -> None:
    """One `[[model]]` table of a rule set: its model's rules, into `rules`."""
    known = [model.name for model in config.models]
    name = reader.text("name", required=True)
    if name not in known:
        raise reader.error(
            "name", f"expected one of the configured models ({', '.join(known)}), got {name!r}"
        )
    if name in rules:
        raise reader.error("name", f"expected each model once, got {name!r} again")
    alert_tables = reader.require("alert", list, "a list of [[model.alert]] tables")
    rules[name] = tuple(_alerts(reader, alert_tables))
    reader.done()


def load_config(path: str | Path | None = None) -> Config:
    """Load `path`, else `$TRIAGE_CONFIG`, else `./triage.toml`."""
    chosen = Path(path or os.environ.get("TRIAGE_CONFIG") or DEFAULT_CONFIG)
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            chosen, "", "config file not found (pass --config PATH or set TRIAGE_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(chosen, "", f"cannot read config ({exc})") from None
    return parse_config(text, chosen.resolve())
