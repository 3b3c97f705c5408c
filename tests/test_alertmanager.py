"""Delivery to a real Prometheus Alertmanager on 127.0.0.1, read back through its v2 API."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import pytest

from tests.test_alert_evaluate import DAY, T0, drift_row, model_config
from triage.alerts.alertmanager import AlertmanagerError, payload, push
from triage.alerts.evaluate import evaluate_rules
from triage.alerts.state import Alert, AlertStore
from triage.config import AlertRule

BINARIES = ("prometheus-alertmanager", "alertmanager")
CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""
RULE = AlertRule(
    name="feature-drift",
    signal="drift.psi",
    where={"segment": "country"},
    warn=0.1,
    critical=0.25,
    runbook="runbooks/kserve-canary-shift.md#shift-to-baseline",
)


def _binary() -> str:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    message = "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the Alertmanager round trip")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager on a free loopback port with its own storage; yields its base URL."""
    binary = _binary()
    folder = tmp_path_factory.mktemp("alertmanager")
    (folder / "alertmanager.yml").write_text(CONFIG)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={folder / 'alertmanager.yml'}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single local instance
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"Alertmanager did not start: {(folder / 'alertmanager.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _alerts(store: AlertStore, history: list[float], day: int, value: str = "BR") -> list[Alert]:
    rows = [
        drift_row(day - len(history) + 1 + i, psi, segment="country", segment_value=value)
        for i, psi in enumerate(history)
    ]
    evaluations = evaluate_rules([RULE], {"drift": rows}, model_config(), T0 + (day + 1) * DAY)
    return store.record(evaluations, T0 + (day + 1) * DAY)


def _active(url: str) -> dict[str, dict]:
    response = httpx.get(f"{url}/api/v2/alerts", timeout=5)
    response.raise_for_status()
    return {alert["labels"]["fingerprint"]: alert for alert in response.json()}


def test_firing_and_resolved_alerts_round_trip(alertmanager):
    store = AlertStore(duckdb.connect())
    (firing,) = _alerts(store, [0.3], 10)
    (other,) = _alerts(store, [0.15], 10, "US")
    now = datetime.now(UTC)
    assert push(alertmanager, [firing, other], now, ttl=timedelta(minutes=30)) == 2

    active = _active(alertmanager)
    alert = active[firing.fingerprint]
    assert alert["labels"] == {
        "alertname": "feature-drift",
        "model": "fraud",
        "severity": "critical",
        "signal": "drift.psi",
        "fingerprint": firing.fingerprint,
        "feature": "amount",
        "segment": "country",
        "segment_value": "BR",
    }
    assert alert["annotations"]["runbook_url"] == "runbooks/kserve-canary-shift.md#shift-to-baseline"
    assert alert["annotations"]["summary"] == (
        "fraud: feature-drift (feature=amount segment=country segment_value=BR): psi 0.3 >= 0.25"
    )
    assert "over 5000 rows" in alert["annotations"]["description"]
    assert alert["annotations"]["threshold"] == "0.25"
    assert alert["startsAt"] == "2026-01-12T00:00:00.000Z"
    ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    assert abs(ends - (now + timedelta(minutes=30))) < timedelta(seconds=1)
    assert alert["generatorURL"] == f"triage://alerts/fraud/{firing.fingerprint}"
    assert alert["status"]["state"] == "active"
    assert active[other.fingerprint]["labels"]["severity"] == "warning"

    (resolved,) = _alerts(store, [0.3, 0.01], 11)
    assert resolved.state == "resolved"
    assert push(alertmanager, [resolved], datetime.now(UTC)) == 1
    active = _active(alertmanager)
    assert firing.fingerprint not in active and other.fingerprint in active


def test_pending_and_silenced_alerts_are_not_sent():
    store = AlertStore(duckdb.connect())
    pending_rule = dataclasses.replace(RULE, for_windows=2)
    rows = [drift_row(10, 0.3, segment="country", segment_value="BR")]
    (pending,) = store.record(
        evaluate_rules([pending_rule], {"drift": rows}, model_config(), T0 + 11 * DAY), T0 + 11 * DAY
    )
    (firing,) = _alerts(store, [0.3], 10, "US")
    silenced = store.silence(firing.fingerprint, T0 + 20 * DAY, "ana", None, T0 + 11 * DAY)
    now = T0 + 12 * DAY
    assert pending.state == "pending"
    assert payload([pending, silenced], now) == []
    assert [item["labels"]["segment_value"] for item in payload([firing], now)] == ["US"]


def test_unreachable_alertmanager_is_a_clear_error():
    store = AlertStore(duckdb.connect())
    alerts = _alerts(store, [0.3], 10)
    with pytest.raises(AlertmanagerError, match="cannot reach Alertmanager") as raised:
        push(f"http://oncall:s3cret@127.0.0.1:{_free_port()}", alerts, datetime.now(UTC), timeout_s=2)
    assert "s3cret" not in str(raised.value) and "http://***@127.0.0.1:" in str(raised.value)
