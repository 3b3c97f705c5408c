"""Opt-in: the MLflow runbook against a real `mlflow server` (SQLite backend, 127.0.0.1).

Not part of the required suite: installing MLflow takes about a minute and the server about
30 s to start, on top of a suite that runs in well under a minute. To run it:

    python3 -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/bin/pip install mlflow
    TRIAGE_TEST_MLFLOW=/tmp/mlflow-venv/bin/mlflow .venv/bin/pytest tests/test_runbook_mlflow_server.py -s
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from triage.config import Target
from triage.runbooks import audit as outcomes
from triage.runbooks.audit import AuditLog
from triage.runbooks.executor import AlertContext, Executor
from triage.runbooks.format import load_runbook

MLFLOW = os.environ.get("TRIAGE_TEST_MLFLOW", "")
RUNBOOK = Path(__file__).resolve().parent.parent / "runbooks" / "mlflow-champion-rollback.md"

pytestmark = pytest.mark.skipif(
    not MLFLOW,
    reason="opt-in: set TRIAGE_TEST_MLFLOW to an mlflow executable to test the MLflow runbook against a real "
    "mlflow server (install ~60 s + start ~30 s, too slow for the required suite)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{directory}/mlflow.db",
         "--default-artifact-root", str(directory / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server forks workers: stop them all with its process group
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        while time.monotonic() - started < 180:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode}")
            time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer /health within 180 s")
        print(f"\nmlflow server ready in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_mlflow_runbook_against_a_real_tracking_server(mlflow_url, tmp_path):
    api = mlflow_url + "/api/2.0/mlflow"
    httpx.post(f"{api}/registered-models/create", json={"name": "fraud"}).raise_for_status()
    for version in (1, 2, 3):
        create = {"name": "fraud", "source": f"s3://models/fraud/{version}"}
        httpx.post(f"{api}/model-versions/create", json=create).raise_for_status()
    champion = {"name": "fraud", "alias": "champion", "version": "3"}
    httpx.post(f"{api}/registered-models/alias", json=champion).raise_for_status()

    def alias() -> str:
        query = {"name": "fraud", "alias": "champion"}
        return str(
            httpx.get(f"{api}/registered-models/alias", params=query).json()["model_version"]["version"]
        )

    runbook = load_runbook(RUNBOOK)
    executor = Executor({"mlflow": Target("mlflow", mlflow_url)}, AuditLog(tmp_path / "audit.jsonl"), env={})
    inspect = executor.run_step(executor.plan(runbook, "inspect", params={"model": "fraud"}))
    assert inspect.outcome == outcomes.OK and inspect.captured["alias_version"] == "3", inspect.message

    alert = AlertContext("fp-real-mlflow", {"model": "fraud", "version": "3"})
    result = executor.run_step(executor.plan(runbook, "rollback", alert=alert))
    assert result.outcome == outcomes.OK, result.message
    assert alias() == "2"

    noop = executor.run_step(executor.plan(runbook, "rollback", alert=AlertContext("fp-2", alert.values)))
    assert noop.outcome == outcomes.NOOP

    undo = executor.run_step(executor.plan(runbook, "rollback", alert=alert, undo=True))
    assert undo.outcome == outcomes.OK, undo.message
    assert alias() == "3"
