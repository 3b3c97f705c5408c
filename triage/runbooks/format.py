"""Runbook files → frozen, validated objects.

A runbook is Markdown: TOML front matter between `+++` lines (title, the alerts it serves,
shared params, a default cooldown), prose for the human, and fenced ```` ```toml step ````
blocks, one per executable step. TOML rather than YAML because Python reads it with the
standard library, it has no implicit typing surprises (`no` stays a string), and GitHub still
renders each step as a highlighted code block. Every mistake raises `RunbookError` naming the
file, the line, the step and the key.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from triage.runbooks.template import OPERATORS, Condition, check_path, variables

SAFETY_CLASSES = ("read_only", "reversible", "destructive")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PARAM_TYPES = ("string", "integer", "number")
# Variables every step may use: who runs it, for which alert, from which runbook and step.
BUILTINS = ("operator", "alert", "runbook", "step")
DEFAULT_COOLDOWN_S = 900.0
DEFAULT_VERIFY_INTERVAL_S = 1.0
DEFAULT_VERIFY_TIMEOUT_S = 60.0

_ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_FENCE_RE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")


class RunbookError(Exception):
    """A mistake in a runbook file, as one line: file:line, step, key and what was expected."""

    def __init__(self, file: str | Path, message: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Param:
    """A typed step input; text from the alert or the user must match `pattern` in full."""

    name: str
    type: str  # one of PARAM_TYPES
    pattern: str | None = None
    source: str | None = None  # the alert value that fills it: model, version, segment …
    default: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""

    def coerce(self, text: str) -> str | int | float:
        """The typed value of `text`; raise ValueError with a one-line reason."""
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise ValueError(f"{self.name}={text!r} does not match {self.pattern}")
        if self.type == "string":
            return text
        try:
            value: int | float = int(text) if self.type == "integer" else float(text)
        except ValueError:
            raise ValueError(
                f"{self.name}={text!r} is not {'an integer' if self.type == 'integer' else 'a number'}"
            ) from None
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name}={text} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{self.name}={text} is above the maximum {self.maximum:g}")
        return value


@dataclass(frozen=True)
class Request:
    """An HTTP request template; `path` is relative to the target's base URL."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # a JSON template, or None for no body


@dataclass(frozen=True)
class Read:
    """A GET before the action: conditions that must hold, and values to capture."""

    get: str
    expect: tuple[Condition, ...] = ()
    capture: Mapping[str, str] = field(default_factory=dict)  # variable → path


@dataclass(frozen=True)
class Verify:
    """Poll `get` every `interval_s` until every condition holds, for at most `timeout_s`."""

    get: str
    expect: tuple[Condition, ...]
    interval_s: float = DEFAULT_VERIFY_INTERVAL_S
    timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S


@dataclass(frozen=True)
class Step:
    """One executable step; `params` already includes the runbook's shared params."""

    id: str
    title: str
    safety: str  # one of SAFETY_CLASSES
    target: str
    request: Request
    params: Mapping[str, Param] = field(default_factory=dict)
    preconditions: tuple[Read, ...] = ()
    capture: Mapping[str, str] = field(default_factory=dict)  # from this step's own response
    verify: Verify | None = None
    undo: Step | None = None
    cooldown_s: float = DEFAULT_COOLDOWN_S
    confirm: str | None = None  # template of the phrase a destructive step needs typed
    line: int = 0

    def captured_names(self) -> tuple[str, ...]:
        """Variables this step captures, in order: preconditions first, then its own response."""
        names = [name for read in self.preconditions for name in read.capture]
        return (*names, *self.capture)


@dataclass(frozen=True)
class Runbook:
    """A parsed runbook file; `sha256` is of the file's bytes, recorded in every audit entry."""

    name: str
    path: Path
    title: str
    alerts: tuple[str, ...]
    steps: tuple[Step, ...]
    sha256: str
    summary: str = ""

    def step(self, step_id: str) -> Step:
        """The step with this id; raise KeyError naming the ids there are."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(
            f"runbook {self.name!r} has no step {step_id!r} (steps: {', '.join(s.id for s in self.steps)})"
        )


class _Table:
    """Reads one TOML table of a step, naming step and key in every error."""

    def __init__(self, file: Path, line: int, where: str, table: Mapping[str, Any]) -> None:
        self.file, self.line, self.where, self.table = file, line, where, table
        self.used: set[str] = set()

    def error(self, key: str, expected: str) -> RunbookError:
        name = f"{self.where}.{key}" if key else self.where
        return RunbookError(self.file, f"{name}: {expected}", self.line)

    def get(self, key: str, kind: type | tuple[type, ...], expected: str, default: Any = None) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise self.error(key, f"expected {expected}, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(key, f"expected {expected}, got {value!r}")
        return value

    def require(self, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
        if key not in self.table:
            raise self.error(key, f"missing; expected {expected}")
        return self.get(key, kind, expected)

    def seconds(self, key: str, default: float) -> float:
        value = float(self.get(key, (int, float), "a number of seconds", default))
        if value < 0:
            raise self.error(key, f"expected a non-negative number of seconds, got {value:g}")
        return value

    def sub(self, key: str) -> _Table:
        return _Table(self.file, self.line, f"{self.where}.{key}", self.get(key, dict, "a table", {}))

    def done(self) -> None:
        for key in self.table:
            if key not in self.used:
                raise self.error(key, f"unknown key (expected one of: {', '.join(sorted(self.used))})")


def _params(table: _Table) -> dict[str, Param]:
    params: dict[str, Param] = {}
    for name in table.table:
        spec = table.sub(name)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in BUILTINS:
            raise spec.error("", f"expected a parameter name that is not one of {', '.join(BUILTINS)}")
        kind = spec.get("type", str, "a type", "string")
        if kind not in PARAM_TYPES:
            raise spec.error("type", f"expected one of {', '.join(PARAM_TYPES)}, got {kind!r}")
        pattern = spec.get("pattern", str, "a regular expression")
        if kind == "string" and pattern is None:
            raise spec.error("pattern", "missing; a string parameter needs a validation pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise spec.error("pattern", f"not a regular expression ({exc})") from None
        default = spec.get("default", (str, int, float), "a default value")
        minimum = spec.get("min", (int, float), "a number")
        maximum = spec.get("max", (int, float), "a number")
        param = Param(
            name=name,
            type=kind,
            pattern=pattern,
            source=spec.get("from", str, "the name of an alert value (model, version, segment …)"),
            default=None if default is None else str(default),
            minimum=None if minimum is None else float(minimum),
            maximum=None if maximum is None else float(maximum),
            description=spec.get("description", str, "a string", ""),
        )
        if param.default is not None:
            try:
                param.coerce(param.default)
            except ValueError as exc:
                raise spec.error("default", str(exc)) from None
        spec.done()
        params[name] = param
    return params


def _conditions(table: _Table, key: str) -> tuple[Condition, ...]:
    raw = table.get(key, list, "a list of conditions like { path = ..., equals = ... }", [])
    conditions = []
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise table.error(where, "expected a table with path and one of " + ", ".join(OPERATORS))
        ops = [op for op in item if op != "path"]
        if len(ops) != 1 or ops[0] not in OPERATORS:
            raise table.error(where, f"expected exactly one of {', '.join(OPERATORS)}, got {ops}")
        op, value = ops[0], item[ops[0]]
        if op == "in" and not isinstance(value, list):
            raise table.error(f"{where}.in", "expected a list of values")
        if op == "exists" and not isinstance(value, bool):
            raise table.error(f"{where}.exists", "expected true or false")
        try:
            check_path(item["path"])
        except ValueError as exc:
            raise table.error(f"{where}.path", str(exc)) from None
        conditions.append(Condition(item["path"], op, value))
    return tuple(conditions)


def _captures(table: _Table, key: str) -> dict[str, str]:
    raw = table.get(key, dict, "a table of variable = path", {})
    for name, path in raw.items():
        if not isinstance(path, str):
            raise table.error(f"{key}.{name}", "expected a JSON path string")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in BUILTINS:
            raise table.error(f"{key}.{name}", "expected a variable name that is not a builtin")
        try:
            check_path(path)
        except ValueError as exc:
            raise table.error(f"{key}.{name}", str(exc)) from None
    return dict(raw)


def _path_template(table: _Table, key: str) -> str:
    path = table.require(key, str, "a path starting with /")
    if not path.startswith("/") or path.startswith("//") or "://" in path or "\\" in path:
        raise table.error(key, f"expected a path on the target starting with a single /, got {path!r}")
    return path


def _request(table: _Table) -> Request:
    method = table.require("method", str, "an HTTP method").upper()
    if method not in METHODS:
        raise table.error("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    headers = table.get("headers", dict, "a table of header names to values", {})
    for name, value in headers.items():
        if not isinstance(value, str):
            raise table.error(f"headers.{name}", "expected a string")
        if name.lower() in ("authorization", "cookie", "proxy-authorization"):
            raise table.error(f"headers.{name}", "credentials come from the target's auth, never a runbook")
    request = Request(
        method, _path_template(table, "path"), dict(headers), table.get("body", (dict, list), "a table")
    )
    table.done()
    if request.body is not None and method == "GET":
        raise table.error("body", "a GET has no body")
    return request


def _reads(table: _Table) -> tuple[Read, ...]:
    raw = table.get("preconditions", list, "a list of [[preconditions]] tables", [])
    reads = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise table.error(f"preconditions[{index}]", "expected a table with get")
        sub = _Table(table.file, table.line, f"{table.where}.preconditions[{index}]", item)
        read = Read(_path_template(sub, "get"), _conditions(sub, "expect"), _captures(sub, "capture"))
        sub.done()
        reads.append(read)
    return tuple(reads)


def _verify(table: _Table) -> Verify | None:
    if "verify" not in table.table:
        table.used.add("verify")
        return None
    sub = table.sub("verify")
    verify = Verify(
        get=_path_template(sub, "get"),
        expect=_conditions(sub, "expect"),
        interval_s=sub.seconds("interval_s", DEFAULT_VERIFY_INTERVAL_S),
        timeout_s=sub.seconds("timeout_s", DEFAULT_VERIFY_TIMEOUT_S),
    )
    sub.done()
    if not verify.expect:
        raise sub.error("expect", "missing; verification needs at least one condition")
    if verify.interval_s <= 0:
        raise sub.error("interval_s", "expected a positive number of seconds")
    return verify


def _check_variables(table: _Table, key: str, value: Any, known: set[str]) -> None:
    unknown = sorted(variables(value) - known)
    if unknown:
        raise table.error(
            key, f"uses {{{unknown[0]}}}, which is not a parameter, a builtin or captured earlier"
        )


@dataclass(frozen=True)
class _Body:
    """The request, reads, captures and verification shared by a step and its undo."""

    request: Request
    preconditions: tuple[Read, ...]
    capture: Mapping[str, str]
    verify: Verify | None
    known: frozenset[str]  # variables available after the step: for its undo


def _body(table: _Table, known: set[str]) -> _Body:
    request = _request(table.sub("request"))
    reads = _reads(table)
    for index, read in enumerate(reads):
        _check_variables(table, f"preconditions[{index}]", (read.get, [c.path for c in read.expect]), known)
        _check_variables(table, f"preconditions[{index}].expect", [c.value for c in read.expect], known)
        _check_variables(table, f"preconditions[{index}].capture", list(read.capture.values()), known)
        known = known | set(read.capture)
    _check_variables(table, "request", (request.path, dict(request.headers), request.body), known)
    capture = _captures(table, "capture")
    _check_variables(table, "capture", list(capture.values()), known)
    verify = _verify(table)
    after = known | set(capture)
    if verify is not None:
        _check_variables(table, "verify", (verify.get, [(c.path, c.value) for c in verify.expect]), after)
    return _Body(request, reads, capture, verify, frozenset(after))


def _step(file: Path, line: int, text: str, shared: dict[str, Param], cooldown_s: float) -> Step:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunbookError(file, f"step block is not valid TOML ({exc})", line) from None
    step_id = data.get("id")
    if not isinstance(step_id, str) or not _ID_RE.match(step_id):
        raise RunbookError(
            file, f"step: id: expected lowercase letters, digits, - or _, got {step_id!r}", line
        )
    table = _Table(file, line, f"step {step_id}", data)
    table.used.add("id")
    safety = table.require("safety", str, "read_only, reversible or destructive")
    if safety not in SAFETY_CLASSES:
        raise table.error("safety", f"expected one of {', '.join(SAFETY_CLASSES)}, got {safety!r}")
    params = shared | _params(table.sub("params"))
    known = set(params) | set(BUILTINS)
    body = _body(table, known)
    confirm = table.get("confirm", str, "a phrase template")
    if confirm is not None:
        _check_variables(table, "confirm", confirm, known)
    step = Step(
        id=step_id,
        title=table.get("title", str, "a string", step_id),
        safety=safety,
        target=table.require("target", str, "the name of a [targets.NAME] in triage.toml"),
        request=body.request,
        params=params,
        preconditions=body.preconditions,
        capture=body.capture,
        verify=body.verify,
        cooldown_s=table.seconds("cooldown_s", cooldown_s),
        confirm=confirm,
        line=line,
    )
    if safety == "read_only" and step.request.method != "GET":
        raise table.error("safety", f"a read_only step must be a GET, not {step.request.method}")
    if safety != "read_only" and step.request.method == "GET":
        raise table.error("safety", "a GET step is read_only")
    if "undo" in data:
        undo_table = table.sub("undo")
        undo_body = _body(undo_table, set(body.known))
        undo_table.done()
        if undo_body.request.method == "GET":
            raise undo_table.error("request.method", "an undo changes state; it cannot be a GET")
        undo = Step(
            id=f"{step_id}.undo",
            title=f"Undo: {step.title}",
            safety="reversible",
            target=step.target,
            request=undo_body.request,
            params=params,
            preconditions=undo_body.preconditions,
            capture=undo_body.capture,
            verify=undo_body.verify,
            cooldown_s=step.cooldown_s,
            line=line,
        )
        step = replace(step, undo=undo)
    table.used.add("undo")
    table.done()
    if safety == "reversible" and step.undo is None:
        raise table.error("undo", "missing; a reversible step needs an undo")
    return step


def _front_matter(file: Path, lines: list[str]) -> tuple[dict[str, Any], int]:
    if not lines or lines[0].strip() != "+++":
        raise RunbookError(file, "expected TOML front matter between +++ lines at the top", 1)
    for index in range(1, len(lines)):
        if lines[index].strip() == "+++":
            try:
                return tomllib.loads("\n".join(lines[1:index])), index + 1
            except tomllib.TOMLDecodeError as exc:
                raise RunbookError(file, f"front matter is not valid TOML ({exc})", 2) from None
    raise RunbookError(file, "front matter is not closed by a +++ line", 1)


def _step_blocks(lines: list[str], start: int) -> list[tuple[int, str]]:
    """(line number, TOML text) of each ```toml step fence, skipping other fenced blocks."""
    blocks: list[tuple[int, str]] = []
    index = start
    while index < len(lines):
        match = _FENCE_RE.match(lines[index].strip())
        if not match:
            index += 1
            continue
        fence, info = match.group("fence"), match.group("info").split()
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence)) and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        if info[:2] == ["toml", "step"]:
            blocks.append((index + 2, "\n".join(lines[index + 1 : end])))
        index = end + 1
    return blocks


def parse_runbook(text: str, path: Path) -> Runbook:
    """Parse and validate one runbook; the runbook's name is the file name without `.md`."""
    lines = text.splitlines()
    front, body_start = _front_matter(path, lines)
    table = _Table(path, 1, "front matter", front)
    title = table.require("title", str, "a string")
    alerts = table.get("alerts", list, "a list of alert rule names", [])
    if not all(isinstance(a, str) for a in alerts):
        raise table.error("alerts", "expected a list of alert rule names")
    summary = table.get("summary", str, "a string", "")
    cooldown_s = table.seconds("cooldown_s", DEFAULT_COOLDOWN_S)
    shared = _params(table.sub("params"))
    table.done()
    steps = [_step(path, line, block, shared, cooldown_s) for line, block in _step_blocks(lines, body_start)]
    if not steps:
        raise RunbookError(path, "no ```toml step blocks found")
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise RunbookError(path, f"duplicate step id {step.id!r}", step.line)
        seen.add(step.id)
    return Runbook(
        name=path.stem,
        path=path,
        title=title,
        alerts=tuple(alerts),
        steps=tuple(steps),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        summary=summary,
    )


def load_runbook(path: Path) -> Runbook:
    """Read and parse one runbook file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError(path, f"cannot read runbook ({exc})") from None
    return parse_runbook(text, path)


def runbook_paths(directory: Path) -> list[Path]:
    """The runbook files in `directory` (`*.md` except README.md), sorted by name."""
    if not directory.is_dir():
        raise RunbookError(directory, "runbooks folder not found")
    return sorted(p for p in directory.glob("*.md") if p.name.lower() != "readme.md")


def find_runbook(directory: Path, name: str) -> Runbook:
    """The runbook called `name` (file name without .md) in `directory`."""
    if not _ID_RE.match(name):
        raise RunbookError(directory, f"no runbook named {name!r}")
    path = directory / f"{name}.md"
    if not path.is_file():
        names = ", ".join(p.stem for p in runbook_paths(directory))
        raise RunbookError(directory, f"no runbook named {name!r} (runbooks: {names or 'none'})")
    return load_runbook(path)
