"""`triage alerts`: list current alerts, print the effective rules, acknowledge, silence, history."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from triage.alerts.groups import excess, slice_groups, unsliced
from triage.alerts.rules import render_rules, validate_rules, value_text
from triage.cli import UserError
from triage.config import Config, load_config, parse_time
from triage.printable import columns, pad, printable
from triage.store import Store, StoreError

if TYPE_CHECKING:  # the state module loads numpy/scipy: only when an alerts command runs
    from triage.alerts.state import Alert

STATUS_ORDER = ("firing", "acknowledged", "silenced", "pending", "resolved")  # as `Alert.status` says
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="list current alerts; rules, ack, silence, history",
        description="Without an action: the current (pending and firing) alerts, worst first. "
        "Fingerprints may be shortened to any unique prefix.",
    )
    parser.add_argument("--model", metavar="NAME", help="only this model")
    parser.add_argument("--all", action="store_true", help="include resolved alerts")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run_list)
    actions = parser.add_subparsers(dest="alerts_command", metavar="[ACTION]", title="actions")

    rules = actions.add_parser("rules", help="print the effective alert rules as TOML")
    rules.add_argument("--model", metavar="NAME", help="only this model")
    rules.set_defaults(handler=run_rules)

    ack = actions.add_parser("ack", help="acknowledge an alert (until it resolves)")
    ack.add_argument("fingerprint", metavar="FINGERPRINT")
    ack.add_argument("--note", required=True, help="what you are doing about it")
    ack.add_argument("--by", metavar="WHO", help="who acknowledges (default: the current user)")
    ack.set_defaults(handler=run_ack)

    silence = actions.add_parser("silence", help="do not notify about an alert until a time")
    silence.add_argument("fingerprint", metavar="FINGERPRINT")
    silence.add_argument(
        "--until",
        required=True,
        metavar="T",
        help="an ISO time (UTC unless it says otherwise), a duration from now like 30m, 4h, 2d, "
        "or `now` to end a silence",
    )
    silence.add_argument("--note", help="why")
    silence.add_argument("--by", metavar="WHO", help="who silences (default: the current user)")
    silence.set_defaults(handler=run_silence)

    history = actions.add_parser("history", help="state changes, acknowledgements and silences")
    history.add_argument("fingerprint", nargs="?", metavar="FINGERPRINT", help="only this alert")
    history.add_argument("--model", metavar="NAME", help="only this model")
    history.add_argument("--limit", type=int, default=50, metavar="N", help="the last N events (default 50)")
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    history.set_defaults(handler=run_history)


def _user() -> str:
    return os.environ.get("TRIAGE_USER") or getpass.getuser()


def _open(config: Config, read_only: bool) -> Store:
    try:
        return Store.open(config.store_path, read_only=read_only)
    except StoreError as exc:
        raise UserError(str(exc)) from None


def _model(config: Config, name: str | None) -> str | None:
    return None if name is None else config.model(name).name


def until_time(text: str, now: datetime) -> datetime:
    """`now`, a duration from now (30m, 4h, 2d, 1w) or an ISO time, as an aware UTC datetime."""
    if text.strip().lower() == "now":
        return now
    match = _DURATION_RE.match(text)
    if match:
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        return parse_time(text)
    except ValueError:
        raise UserError(f"--until: expected an ISO time, a duration like 4h, or now; got {text!r}") from None


def _scope(alert: Alert) -> str:
    return " ".join(f"{key}={printable(value)}" for key, value in alert.scope) or "all"


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def time_text(value: datetime) -> str:
    """A time in UTC as its date, with the time unless it is midnight: `2026-01-30`, `2026-01-30 12:00Z`."""
    value = value.astimezone(UTC) if value.tzinfo else value
    return value.strftime("%Y-%m-%d %H:%MZ" if value.hour or value.minute else "%Y-%m-%d")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(columns(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(pad(cell, width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def run_list(args: argparse.Namespace) -> int:
    from triage.alerts.state import AlertStore

    config = load_config(args.config)
    model = _model(config, args.model)
    now = datetime.now(UTC)
    with _open(config, read_only=True) as store:
        alerts = AlertStore(store.connection, read_only=True).alerts(model, include_resolved=args.all)
    if args.json:
        document = {
            "generated_at": now.isoformat().replace("+00:00", "Z"),
            "alerts": [a.to_json(now) for a in alerts],
        }
        print(json.dumps(document, indent=2))
        return 0
    if not alerts:
        print("no alerts" if args.all else "no active alerts (--all shows resolved ones)")
        return 0
    print(alerts_table(alerts, now))
    return 0


def alerts_table(alerts: Sequence[Alert], now: datetime, others: Sequence[int] | None = None) -> str:
    """Alerts as a text table, one line each (worst first, as given); with `others`, each line's
    count of other slices that fire the same (`groups.slice_groups`), as a last column."""
    header = (
        "FINGERPRINT",
        "STATUS",
        "SEVERITY",
        "MODEL",
        "RULE",
        "SCOPE",
        "VALUE",
        "THRESHOLD",
        "WINDOW",
        "SINCE",
    )
    rows = [
        (
            a.fingerprint,
            a.status(now),
            a.severity or "-",
            a.model,
            a.rule,
            _scope(a),
            value_text(a.signal, a.value),
            value_text(a.signal, a.threshold),
            "-" if a.window_start is None else time_text(a.window_start),
            _when(a.fired_at or a.started_at),
        )
        for a in alerts
    ]
    if others is None:
        return _table(header, rows)
    more = [f"+{n}" if n else "" for n in others]
    return _table((*header, "OTHER SLICES"), [(*row, n) for row, n in zip(rows, more, strict=True)])


def alerts_text(alerts: Sequence[Alert], now: datetime) -> str:
    """`check`'s Alerts section: the count per status, then the alerts, those of one status,
    severity and rule that differ only in their slice as one line (`groups.slice_groups`: the
    all-traffic alert, else the slice furthest past its threshold). Worst first: by status and
    severity, then a line whose alert covers all traffic, then the furthest past its threshold (a
    canary at twice it before the mix that just crosses it), then the line with the most slices."""
    from triage.alerts.state import alert_rank

    if not alerts:
        return "Alerts\n  none"
    groups = slice_groups(
        alerts,
        _scope_map,
        lambda a: (a.status(now), a.severity, a.model, a.rule),
        lambda a: -excess(a.value, a.threshold),
    )
    groups.sort(
        key=lambda group: (
            alert_rank(group[0])[:2],
            not unsliced(_scope_map(group[0])),
            -excess(group[0].value, group[0].threshold),
            -group[1],
            group[0].model,
            group[0].rule,
            _scope(group[0]),
        )
    )
    title = f"Alerts: {_counts(alerts, now)}"
    if len(groups) == len(alerts):
        return f"{title}\n{alerts_table([a for a, _ in groups], now)}"
    lines = f"{len(groups)} line" + ("s" if len(groups) > 1 else "")
    title += f" on {lines}: one line for alerts that differ only in their slice (--json lists each)"
    return f"{title}\n{alerts_table([a for a, _ in groups], now, [n for _, n in groups])}"


def _counts(alerts: Sequence[Alert], now: datetime) -> str:
    """How many alerts in each status, the firing ones by severity too:
    `5 firing (2 critical, 3 warning), 1 resolved`."""
    statuses = Counter(a.status(now) for a in alerts)
    levels = Counter(a.severity or "no severity" for a in alerts if a.status(now) == "firing")
    by_level = ", ".join(f"{levels[level]} {level}" for level in sorted(levels, key=_severity_order))

    def count(status: str) -> str:
        return f"{statuses[status]} {status}" + (f" ({by_level})" if status == "firing" else "")

    order = sorted(
        statuses, key=lambda s: (STATUS_ORDER.index(s) if s in STATUS_ORDER else len(STATUS_ORDER), s)
    )
    return ", ".join(count(status) for status in order)


def _scope_map(alert: Alert) -> dict[str, str]:
    return dict(alert.scope)


def _severity_order(level: str) -> tuple[int, str]:
    return ({"critical": 0, "warning": 1}.get(level, 2), level)


def run_rules(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    validate_rules(config)
    models = [config.model(args.model)] if args.model else list(config.models)
    print("\n".join(render_rules(model) for model in models), end="")
    return 0


def run_ack(args: argparse.Namespace) -> int:
    from triage.alerts.state import AlertError, AlertStore

    config = load_config(args.config)
    now = datetime.now(UTC)
    with _open(config, read_only=False) as store:
        try:
            alert = AlertStore(store.connection).acknowledge(
                args.fingerprint, args.by or _user(), args.note, now
            )
        except AlertError as exc:
            raise UserError(str(exc)) from None
    assert alert.ack is not None
    print(f"acknowledged {alert.fingerprint} ({alert.model} {alert.rule} {_scope(alert)}) by {alert.ack.by}")
    return 0


def run_silence(args: argparse.Namespace) -> int:
    from triage.alerts.state import AlertError, AlertStore

    config = load_config(args.config)
    now = datetime.now(UTC)
    until = until_time(args.until, now)
    with _open(config, read_only=False) as store:
        try:
            alert = AlertStore(store.connection).silence(
                args.fingerprint, until, args.by or _user(), args.note, now
            )
        except AlertError as exc:
            raise UserError(str(exc)) from None
    what = f"{alert.fingerprint} ({alert.model} {alert.rule} {_scope(alert)})"
    if until <= now:
        print(f"silence of {what} ended")
    else:
        print(f"silenced {what} until {until.isoformat().replace('+00:00', 'Z')}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from triage.alerts.state import AlertError, AlertStore

    config = load_config(args.config)
    model = _model(config, args.model)
    with _open(config, read_only=True) as store:
        alerts = AlertStore(store.connection, read_only=True)
        try:
            fingerprint = alerts.resolve(args.fingerprint).fingerprint if args.fingerprint else None
        except AlertError as exc:
            raise UserError(str(exc)) from None
        events = alerts.history(fingerprint, model, limit=args.limit)
        signals = {a.fingerprint: a.signal for a in alerts.alerts(include_resolved=True)}
    if args.json:
        print(json.dumps({"events": [event.to_json() for event in events]}, indent=2))
        return 0
    if not events:
        print("no alert history")
        return 0
    header = (
        "AT",
        "FINGERPRINT",
        "EVENT",
        "STATE",
        "SEVERITY",
        "RULE",
        "VALUE",
        "THRESHOLD",
        "N",
        "BY / NOTE",
    )
    rows = [
        (
            _when(e.at),
            e.fingerprint,
            e.event,
            f"{e.from_state or '-'} -> {e.to_state or '-'}",
            e.severity or "-",
            e.rule,
            value_text(signals.get(e.fingerprint, ""), e.value),
            value_text(signals.get(e.fingerprint, ""), e.threshold),
            "-" if e.n is None else str(e.n),
            printable(" / ".join(part for part in (e.actor, e.note) if part) or "-", width=None),
        )
        for e in events
    ]
    print(_table(header, rows))
    return 0


def find_alert(config: Config, prefix: str) -> Alert | None:
    """The stored alert whose fingerprint starts with `prefix`, or None when the store has none."""
    from triage.alerts.state import AlertError, AlertStore

    if not config.store_path.exists():
        return None
    with _open(config, read_only=True) as store:
        try:
            return AlertStore(store.connection, read_only=True).resolve(prefix)
        except AlertError:
            return None
