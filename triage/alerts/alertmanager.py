"""Delivery to Prometheus Alertmanager's v2 API (`POST /api/v2/alerts`).

Firing alerts are posted with `endsAt` = now + `ttl`, so Alertmanager resolves them by itself if
triage stops re-posting (run `triage check --push-alertmanager` more often than `ttl`); resolved
alerts are posted with `endsAt` = when they resolved. Pending and silenced alerts are not sent.
Labels: `alertname` (the rule), `model`, `severity`, the scope (`feature`, `version`, `segment`,
`segment_value`, `route`), `signal` and `fingerprint`; annotations: `summary`, `description`,
`runbook_url` (when the rule has a runbook), `value`, `threshold`, `window`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from triage.alerts.evaluate import FIRING
from triage.alerts.rules import value_text
from triage.alerts.state import RESOLVED, Alert
from triage.printable import printable, without_credentials

DEFAULT_TTL = timedelta(hours=1)


class AlertmanagerError(Exception):
    """Alertmanager could not be reached or refused the alerts."""


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary(alert: Alert) -> str:
    """One line: model, rule, scope, and the value against the threshold."""
    scope = " ".join(f"{key}={value}" for key, value in alert.scope) or "all traffic"
    field = alert.signal.partition(".")[2]
    shown = f"{field} {value_text(alert.signal, alert.value, NOT_AVAILABLE)}"
    if alert.threshold is not None:
        direction = alert.evidence.get("direction")
        relation = {"above": ">=", "below": "<="}.get(str(direction), "vs")
        shown += f" {relation} {value_text(alert.signal, alert.threshold, NOT_AVAILABLE)}"
    return f"{alert.model}: {alert.rule} ({scope}): {shown}"


def description(alert: Alert) -> str:
    """The evidence in words: window, rows, baseline and significance."""
    evidence = alert.evidence
    parts = [f"{alert.severity or 'warning'} {alert.signal} in window {evidence.get('window_start')}"]
    parts.append(f"..{evidence.get('window_end')} over {evidence.get('n')} rows")
    if evidence.get("n_labeled") is not None:
        parts.append(f" ({evidence['n_labeled']} labelled)")
    if evidence.get("baseline") is not None:
        parts.append(f"; baseline {_number(evidence['baseline'])}")
    if evidence.get("p_adjusted") is not None:
        parts.append(f"; BH-adjusted p {evidence['p_adjusted']:.3g}")
    parts.append(f"; {evidence.get('run')} window(s) in a row (for_windows {evidence.get('for_windows')})")
    return "".join(parts)


NOT_AVAILABLE = "n/a"


def _number(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.4g}"


def payload(
    alerts: Sequence[Alert], now: datetime, ttl: timedelta = DEFAULT_TTL, generator_url: str | None = None
) -> list[dict[str, Any]]:
    """The request body for `POST /api/v2/alerts`: firing alerts (not silenced) and resolved ones."""
    body: list[dict[str, Any]] = []
    for alert in alerts:
        if alert.state == FIRING and not alert.silenced(now):
            ends = now + ttl
        elif alert.state == RESOLVED and alert.resolved_at is not None:
            ends = alert.resolved_at
        else:
            continue
        labels = {
            "alertname": alert.rule,
            "model": alert.model,
            "severity": alert.severity or "warning",
            "signal": alert.signal,
            "fingerprint": alert.fingerprint,
            **dict(alert.scope),
        }
        annotations = {
            "summary": summary(alert),
            "description": description(alert),
            "value": value_text(alert.signal, alert.value, NOT_AVAILABLE),
            "threshold": value_text(alert.signal, alert.threshold, NOT_AVAILABLE),
            "window": f"{_time(alert.window_start)}/{_time(alert.window_end)}"
            if alert.window_start and alert.window_end
            else "",
        }
        if alert.runbook:
            annotations["runbook_url"] = alert.runbook
        if alert.ack is not None:
            annotations["acknowledged_by"] = f"{alert.ack.by}: {alert.ack.note}"
        base = generator_url or "triage://alerts"
        body.append(
            {
                "labels": labels,
                "annotations": {key: value for key, value in annotations.items() if value},
                "startsAt": _time(alert.fired_at or alert.started_at),
                "endsAt": _time(ends),
                "generatorURL": f"{base.rstrip('/')}/{alert.model}/{alert.fingerprint}",
            }
        )
    return body


def push(
    url: str,
    alerts: Sequence[Alert],
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    timeout_s: float = 10.0,
    generator_url: str | None = None,
) -> int:
    """Post the alerts to the Alertmanager at `url` (its base URL); return how many were sent."""
    body = payload(alerts, now, ttl, generator_url)
    if not body:
        return 0
    endpoint = url.rstrip("/") + "/api/v2/alerts"
    shown = without_credentials(endpoint)  # a user:password in the URL is never printed
    try:
        response = httpx.post(endpoint, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise AlertmanagerError(
            f"cannot reach Alertmanager at {shown}: {without_credentials(str(exc))}"
        ) from None
    if response.status_code >= 300:
        answer = printable(response.text.strip(), 200)
        raise AlertmanagerError(f"Alertmanager at {shown} answered {response.status_code}: {answer}")
    return len(body)
