"""The local control plane: the API subsets it speaks, auth, faults, state, and its CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from triage.cli import main
from triage.runbooks.simulator import ControlPlane, Faults, merge_patch

TOKEN = "plane-token-0123456789"
ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud"
ROLLOUT = "/apis/argoproj.io/v1alpha1/namespaces/models/rollouts/fraud"
MLFLOW = "/api/2.0/mlflow"
PATCH_HEADERS = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
def plane():
    with ControlPlane(token=TOKEN, settle_s=0.0) as control_plane:
        yield control_plane


@pytest.fixture
def http(plane):
    with httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def test_merge_patch_follows_rfc_7386():
    # Examples from RFC 7386, appendix A.
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a", "b"], {"a": "c"}) == {"a": "c"}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}


def test_bearer_token_is_required_except_for_health(plane):
    assert httpx.get(plane.url + "/healthz").status_code == 200
    missing = httpx.get(plane.url + ISVC)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.get(plane.url + ISVC, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_kserve_patch_rules_and_traffic_status(plane, http):
    isvc = http.get(ISVC).json()
    version = isvc["metadata"]["resourceVersion"]
    assert http.patch(ISVC, json={"spec": {}}).status_code == 415  # a merge patch must say so
    stale = http.patch(ISVC, content=b'{"metadata":{"resourceVersion":"1"}}', headers=PATCH_HEADERS)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    bad = http.patch(
        ISVC, content=b'{"spec":{"predictor":{"canaryTrafficPercent":150}}}', headers=PATCH_HEADERS
    )
    assert bad.status_code == 422
    body = (
        b'{"metadata":{"resourceVersion":"%s"},"spec":{"predictor":{"canaryTrafficPercent":40}}}'
        % version.encode()
    )
    patched = http.patch(ISVC, content=body, headers=PATCH_HEADERS).json()
    assert patched["metadata"]["resourceVersion"] != version
    assert patched["metadata"]["generation"] == isvc["metadata"]["generation"] + 1
    traffic = patched["status"]["components"]["predictor"]["traffic"]
    assert [(t["tag"], t["percent"]) for t in traffic] == [("latest", 40), ("prev", 60)]
    assert plane.canary_percent() == 40
    assert (
        patched["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/v2"
    )  # merged, not replaced


def test_status_reflects_a_change_only_after_settling():
    with ControlPlane(token=None, settle_s=0.3) as plane:
        response = httpx.patch(
            plane.url + ISVC,
            content=b'{"spec":{"predictor":{"canaryTrafficPercent":0}}}',
            headers=PATCH_HEADERS,
        )
        assert response.json()["spec"]["predictor"]["canaryTrafficPercent"] == 0
        assert plane.canary_percent() == 10
        time.sleep(0.35)
        assert plane.canary_percent() == 0


def test_argo_abort_and_retry_through_the_status_subresource(plane, http):
    assert http.patch(ROLLOUT, content=b'{"status":{"abort":true}}', headers=PATCH_HEADERS).status_code == 405
    aborted = http.patch(
        ROLLOUT + "/status", content=b'{"status":{"abort":true}}', headers=PATCH_HEADERS
    ).json()
    assert aborted["status"]["phase"] == "Degraded" and aborted["status"]["abort"] is True
    assert aborted["status"]["message"].startswith("RolloutAborted")
    assert aborted["status"]["canary"]["weights"]["canary"]["weight"] == 0
    retried = http.patch(
        ROLLOUT + "/status", content=b'{"status":{"abort":false}}', headers=PATCH_HEADERS
    ).json()
    assert retried["status"]["phase"] == "Progressing"


def test_mlflow_registry_subset_behaves_like_mlflow_3(plane, http):
    assert (
        http.get(f"{MLFLOW}/registered-models/alias", params={"name": "fraud", "alias": "champion"}).json()[
            "model_version"
        ]["version"]
        == "3"
    )
    missing = http.get(f"{MLFLOW}/registered-models/alias", params={"name": "fraud", "alias": "nope"})
    assert missing.status_code == 400 and missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    unknown = http.post(
        f"{MLFLOW}/registered-models/alias", json={"name": "fraud", "alias": "champion", "version": "9"}
    )
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    search = http.get(
        f"{MLFLOW}/model-versions/search",
        params={
            "filter": "name='fraud' AND version_number<3",
            "order_by": "version_number DESC",
            "max_results": 1,
        },
    ).json()
    assert [v["version"] for v in search["model_versions"]] == ["2"]
    assert (
        http.post(
            f"{MLFLOW}/registered-models/alias", json={"name": "fraud", "alias": "x", "version": "1"}
        ).json()
        == {}
    )
    model = http.get(f"{MLFLOW}/registered-models/get", params={"name": "fraud"}).json()["registered_model"]
    assert model["aliases"] == [{"alias": "champion", "version": "3"}, {"alias": "x", "version": "1"}]
    assert (
        http.request(
            "DELETE", f"{MLFLOW}/registered-models/alias", json={"name": "fraud", "alias": "x"}
        ).json()
        == {}
    )
    assert plane.snapshot()["registered_models"][0]["aliases"] == {"champion": "3"}


def test_kill_switch_webhook(plane, http):
    assert http.post("/v1/kill-switch", json={"model": "fraud", "route": "sideways"}).status_code == 422
    assert http.post("/v1/kill-switch", json={"model": "nope", "route": "fallback"}).status_code == 404
    flipped = http.post(
        "/v1/kill-switch", json={"model": "fraud", "route": "fallback", "requested_by": "me"}
    ).json()
    assert flipped["route"] == "fallback" and flipped["updated_by"] == "me"
    assert http.get("/v1/kill-switch/fraud").json()["route"] == "fallback" == plane.kill_switch_route()


def test_faults_can_be_flipped_through_the_admin_endpoint(plane, http):
    assert http.put("/_admin/faults", json={"bogus": 1}).status_code == 400
    faults = http.put(
        "/_admin/faults", json={"error_next": 1, "error_status": 503, "retry_after_s": 2}
    ).json()
    assert faults["error_next"] == 1
    failed = http.get("/v1/kill-switch/fraud")
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "2"
    assert http.get("/v1/kill-switch/fraud").status_code == 200
    http.put("/_admin/faults", json={"drop_next": 1, "methods": ["POST"]})
    assert http.get("/v1/kill-switch/fraud").status_code == 200  # GETs are not affected
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/kill-switch", json={"model": "fraud", "route": "fallback"})
    plane.set_faults(Faults(redirect_to="http://localhost:1"))
    redirect = http.get("/v1/kill-switch/fraud")
    assert (
        redirect.status_code == 307
        and redirect.headers["Location"] == "http://localhost:1/v1/kill-switch/fraud"
    )
    recorded = http.get("/_admin/requests").json()
    assert [r["fault"] for r in recorded] == ["error", None, None, "drop", "redirect"]
    state = http.get("/_admin/state").json()
    assert state["inferenceservices"][0]["spec"]["predictor"]["canaryTrafficPercent"] == 10


def test_control_plane_command_serves_on_loopback_until_stopped():
    env = {**os.environ, "TRIAGE_CP_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "triage.cli", "control-plane", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("control plane on http://127.0.0.1:"), line + (
            process.stderr.read() if process.stderr else ""
        )
        url = line.split()[3]
        assert (
            httpx.get(url + ISVC, headers={"Authorization": f"Bearer {TOKEN}"}).json()["kind"]
            == "InferenceService"
        )
        assert TOKEN not in line
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_control_plane_command_needs_a_token(monkeypatch, capsys):
    monkeypatch.delenv("TRIAGE_TEST_UNSET_VAR", raising=False)
    assert main(["control-plane", "--port", "0", "--token-env", "TRIAGE_TEST_UNSET_VAR"]) == 2
    assert "TRIAGE_TEST_UNSET_VAR" in capsys.readouterr().err
