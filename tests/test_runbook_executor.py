"""The executor against the real control plane on 127.0.0.1: every shipped runbook end to end,
and each fault (timeout, 503 with Retry-After, 409, dropped connection, redirect, wrong CA)."""

from __future__ import annotations

import random
import secrets
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from triage.config import Auth, Target
from triage.runbooks import audit as outcomes
from triage.runbooks.audit import AuditLog
from triage.runbooks.client import RetryPolicy
from triage.runbooks.executor import (
    DEDUPED,
    PRECONDITION_FAILED,
    UNCONFIRMED,
    AlertContext,
    Executor,
    PlanError,
    ProgressEvent,
)
from triage.runbooks.format import Runbook, load_runbook, parse_runbook
from triage.runbooks.simulator import ControlPlane, Faults

TOKEN = "tok-" + secrets.token_hex(16)
RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05)
ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud"


def book(name: str) -> Runbook:
    return load_runbook(RUNBOOKS / f"{name}.md")


def targets(url: str, **options: object) -> dict[str, Target]:
    auth = Auth("bearer", token_env="CP_TOKEN")
    return {name: Target(name, url, auth, **options) for name in ("kubernetes", "mlflow", "flags")}  # type: ignore[arg-type]


def make_executor(url: str, audit_path: Path, retry: RetryPolicy = FAST_RETRY, **options: object) -> Executor:
    options.setdefault("timeout_s", 5.0)
    return Executor(
        targets(url, **options),
        AuditLog(audit_path),
        operator="oncall@test",
        env={"CP_TOKEN": TOKEN},
        retry=retry,
        rng=random.Random(7),
    )


@pytest.fixture
def plane():
    with ControlPlane(token=TOKEN, settle_s=0.0) as control_plane:
        yield control_plane


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def executor(plane: ControlPlane, audit_path: Path) -> Executor:
    return make_executor(plane.url, audit_path)


def sent(plane: ControlPlane, method: str) -> int:
    return sum(1 for r in plane.requests() if r.method == method)


# -- the shipped runbooks, end to end ------------------------------------------------------


def test_kserve_shift_traffic_moves_the_split_and_undo_restores_it(plane, executor, audit_path):
    runbook = book("kserve-canary-traffic")
    alert = AlertContext("fp-kserve", {"model": "fraud"})
    events: list[ProgressEvent] = []
    result = executor.run_step(
        executor.plan(runbook, "shift-traffic", alert=alert), on_progress=events.append
    )
    assert result.outcome == outcomes.OK, result.message
    assert plane.canary_percent() == 0
    assert result.verification is not None and result.verification.passed
    assert result.captured["previous_percent"] == 10
    assert any(e.kind == "request" and "PATCH" in e.message for e in events)

    undo = executor.run_step(executor.plan(runbook, "shift-traffic", alert=alert, undo=True))
    assert undo.outcome == outcomes.OK, undo.message
    assert plane.canary_percent() == 10
    entries = AuditLog(audit_path).read().entries
    assert [(e.step, e.outcome) for e in entries] == [("shift-traffic", "ok"), ("shift-traffic.undo", "ok")]
    assert entries[0].runbook_sha256 == runbook.sha256 and entries[0].request["method"] == "PATCH"
    assert entries[0].request["body"]["metadata"]["resourceVersion"] == "1001"
    assert entries[0].before_state == {"resource_version": "1001", "previous_percent": 10}


def test_verification_polls_until_the_status_catches_up(audit_path):
    with ControlPlane(token=TOKEN, settle_s=0.3) as plane:
        executor = make_executor(plane.url, audit_path)
        plan = executor.plan(
            book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud", "percent": "25"}
        )
        result = executor.run_step(plan)
        assert result.outcome == outcomes.OK, result.message
        assert result.verification is not None and result.verification.polls >= 2
        assert plane.canary_percent() == 25


def test_argo_abort_needs_the_typed_phrase_then_aborts_and_undo_retries(plane, executor):
    runbook = book("argo-rollout-abort")
    alert = AlertContext("fp-argo", {"model": "fraud"})
    plan = executor.plan(runbook, "abort", alert=alert)
    assert plan.confirmation == "abort models/fraud"

    refused = executor.run_step(plan, confirmation="abort models/other")
    assert refused.outcome == UNCONFIRMED and sent(plane, "PATCH") == 0
    assert plane.rollout_phase() == "Paused"

    result = executor.run_step(plan, confirmation="abort models/fraud")
    assert result.outcome == outcomes.OK, result.message
    assert plane.rollout_phase() == "Degraded"
    rollout = plane.snapshot()["rollouts"][0]
    assert rollout["status"]["conditions"][0]["reason"] == "RolloutAborted"

    undo = executor.run_step(executor.plan(runbook, "abort", alert=alert, undo=True))
    assert undo.outcome == outcomes.OK, undo.message
    assert plane.rollout_phase() == "Progressing"


def test_mlflow_rollback_moves_champion_to_the_previous_version_and_undo_restores(plane, executor):
    runbook = book("mlflow-champion-rollback")
    alert = AlertContext("fp-mlflow", {"model": "fraud", "version": "3"})
    result = executor.run_step(executor.plan(runbook, "rollback", alert=alert))
    assert result.outcome == outcomes.OK, result.message
    assert plane.champion() == "2"
    assert result.captured == {"current_version": "3", "previous_version": "2"}

    again = executor.run_step(
        executor.plan(runbook, "rollback", alert=AlertContext("fp-other", alert.values))
    )
    assert again.outcome == outcomes.NOOP, "a second rollback for version 3 must not walk further back"
    assert plane.champion() == "2"

    undo = executor.run_step(executor.plan(runbook, "rollback", alert=alert, undo=True))
    assert undo.outcome == outcomes.OK, undo.message
    assert plane.champion() == "3"


def test_kill_switch_routes_to_fallback_and_undo_routes_back(plane, executor):
    runbook = book("kill-switch-fallback")
    alert = AlertContext("fp-switch", {"model": "fraud"})
    plan = executor.plan(runbook, "route-to-fallback", alert=alert)
    result = executor.run_step(plan, confirmation="fallback fraud")
    assert result.outcome == outcomes.OK, result.message
    assert plane.kill_switch_route() == "fallback"
    switch = plane.snapshot()["kill_switches"][0]
    assert switch["updated_by"] == "oncall@test" and "fp-switch" in switch["reason"]

    undo = executor.run_step(executor.plan(runbook, "route-to-fallback", alert=alert, undo=True))
    assert undo.outcome == outcomes.OK, undo.message
    assert plane.kill_switch_route() == "primary"


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("kserve-canary-traffic", {"name": "fraud"}, {"canary_percent": 10, "served_to_latest": 10}),
        ("argo-rollout-abort", {"name": "fraud"}, {"phase": "Paused", "canary_weight": 20}),
        ("mlflow-champion-rollback", {"model": "fraud"}, {"alias_version": "3", "latest_version": "3"}),
        ("kill-switch-fallback", {"model": "fraud"}, {"route": "primary", "fallback": "fraud-rules-v1"}),
    ],
)
def test_inspect_steps_read_without_changing_anything(plane, executor, name, params, expected):
    result = executor.run_step(executor.plan(book(name), "inspect", params=params))
    assert result.outcome == outcomes.OK, result.message
    assert expected.items() <= dict(result.captured).items()
    assert all(r.method == "GET" for r in plane.requests())


# -- no-op, preconditions, dedupe ----------------------------------------------------------


def test_step_whose_state_already_holds_is_a_noop(plane, executor, audit_path):
    plan = executor.plan(
        book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud", "percent": "10"}
    )
    result = executor.run_step(plan)
    assert result.outcome == outcomes.NOOP and result.ok
    assert sent(plane, "PATCH") == 0
    (entry,) = AuditLog(audit_path).read().entries
    assert entry.outcome == outcomes.NOOP and not entry.may_have_applied


def test_failed_precondition_sends_nothing(plane, executor, audit_path):
    plan = executor.plan(
        book("mlflow-champion-rollback"), "rollback", params={"model": "fraud", "version": "2"}
    )
    result = executor.run_step(plan)
    assert result.outcome == PRECONDITION_FAILED
    assert "model_version.version == 2" in result.message and "'3'" in result.message
    assert sent(plane, "POST") == 0 and plane.champion() == "3"
    assert AuditLog(audit_path).read().entries == ()


def test_same_step_for_same_alert_is_not_run_twice_within_cooldown_even_by_another_process(plane, audit_path):
    runbook = book("kserve-canary-traffic")
    alert = AlertContext("fp-dup", {"model": "fraud"})
    first = make_executor(plane.url, audit_path).run_step(
        make_executor(plane.url, audit_path).plan(runbook, "shift-traffic", alert=alert)
    )
    assert first.outcome == outcomes.OK
    other = make_executor(plane.url, audit_path)  # a fresh executor: only the audit file is shared
    second = other.run_step(other.plan(runbook, "shift-traffic", alert=alert, params={"percent": "50"}))
    assert second.outcome == DEDUPED and "cooldown" in second.message
    assert sent(plane, "PATCH") == 1 and plane.canary_percent() == 0


def test_cooldown_expires(plane, audit_path, tmp_path):
    text = """+++
title = "t"
cooldown_s = 0.3
+++
```toml step
id = "flip"
safety = "destructive"
target = "flags"
confirm = "go"
[request]
method = "POST"
path = "/v1/kill-switch"
body = { model = "fraud", route = "fallback" }
```
"""
    runbook = parse_runbook(text, tmp_path / "flip.md")
    executor = make_executor(plane.url, audit_path)
    alert = AlertContext("fp-cool")
    assert executor.run_step(executor.plan(runbook, "flip", alert=alert), confirmation="go").outcome == "ok"
    assert (
        executor.run_step(executor.plan(runbook, "flip", alert=alert), confirmation="go").outcome == DEDUPED
    )
    time.sleep(0.35)
    assert executor.run_step(executor.plan(runbook, "flip", alert=alert), confirmation="go").outcome == "ok"
    assert sent(plane, "POST") == 2


# -- faults --------------------------------------------------------------------------------


def test_409_is_reported_as_someone_changed_it_first_and_does_not_block_a_rerun(plane, executor):
    runbook = book("kserve-canary-traffic")
    alert = AlertContext("fp-409", {"model": "fraud"})
    prepared = executor.prepare(executor.plan(runbook, "shift-traffic", alert=alert))
    # A colleague changes the InferenceService between our read and our patch.
    httpx.patch(
        plane.url + ISVC,
        json={"spec": {"predictor": {"canaryTrafficPercent": 30}}},
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/merge-patch+json"},
    ).raise_for_status()
    result = executor.execute(prepared)
    assert result.outcome == outcomes.CONFLICT and result.status == 409
    assert "someone changed it first" in result.message
    assert len(result.attempts) == 1 and plane.canary_percent() == 30

    rerun = executor.run_step(executor.plan(runbook, "shift-traffic", alert=alert))
    assert rerun.outcome == outcomes.OK and plane.canary_percent() == 0
    assert rerun.captured["previous_percent"] == 30


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_never_retried(plane, executor, status):
    plane.set_faults(Faults(error_next=1, error_status=status, retry_after_s=0, methods=("POST",)))
    plan = executor.plan(
        book("mlflow-champion-rollback"), "rollback", params={"model": "fraud", "version": "3"}
    )
    result = executor.run_step(plan)
    assert len(result.attempts) == 1 and sent(plane, "POST") == 1
    assert result.outcome == (outcomes.CONFLICT if status == 409 else outcomes.REJECTED)
    assert plane.champion() == "3"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_are_retried(plane, executor, status):
    plane.set_faults(Faults(error_next=2, error_status=status, retry_after_s=0, methods=("POST",)))
    plan = executor.plan(
        book("mlflow-champion-rollback"), "rollback", params={"model": "fraud", "version": "3"}
    )
    result = executor.run_step(plan)
    assert result.outcome == outcomes.OK, result.message
    assert [a.status for a in result.attempts] == [status, status, 200]
    assert sent(plane, "POST") == 3 and plane.champion() == "2"


def test_503_with_retry_after_waits_as_asked(plane, executor):
    plane.set_faults(Faults(error_next=1, error_status=503, retry_after_s=1, methods=("POST",)))
    plan = executor.plan(
        book("mlflow-champion-rollback"), "rollback", params={"model": "fraud", "version": "3"}
    )
    result = executor.run_step(plan)
    assert result.outcome == outcomes.OK, result.message
    # Backoff alone would wait at most FAST_RETRY.max_delay_s (0.05 s); the server asked for 1 s.
    assert [(a.status, a.delay_before_s) for a in result.attempts] == [(503, 0.0), (200, 1.0)]


def test_a_retry_after_longer_than_we_wait_gives_up(plane, executor):
    plane.set_faults(Faults(error_next=1, error_status=503, retry_after_s=3600, methods=("POST",)))
    plan = executor.plan(
        book("mlflow-champion-rollback"), "rollback", params={"model": "fraud", "version": "3"}
    )
    result = executor.run_step(plan)
    assert result.outcome == outcomes.FAILED and len(result.attempts) == 1
    assert "retry after 3600 s" in result.message


def test_backoff_without_retry_after_is_exponential_with_jitter(plane, audit_path):
    policy = RetryPolicy(max_attempts=4, base_delay_s=0.02, max_delay_s=1.0)
    executor = make_executor(plane.url, audit_path, retry=policy)
    plane.set_faults(Faults(error_next=3, error_status=502, methods=("POST",)))
    plan = executor.plan(
        book("mlflow-champion-rollback"), "rollback", params={"model": "fraud", "version": "3"}
    )
    result = executor.run_step(plan)
    assert result.outcome == outcomes.OK
    delays = [a.delay_before_s for a in result.attempts[1:]]
    for retry, delay in enumerate(delays, start=1):
        cap = 0.02 * 2 ** (retry - 1)
        assert cap / 2 <= delay <= cap


def test_timeout_fails_the_call_and_blocks_a_blind_rerun(plane, audit_path):
    executor = make_executor(
        plane.url, audit_path, retry=RetryPolicy(max_attempts=2, base_delay_s=0.01), timeout_s=0.2
    )
    plane.set_faults(Faults(latency_s=0.5, methods=("POST",)))
    alert = AlertContext("fp-timeout", {"model": "fraud", "version": "3"})
    result = executor.run_step(executor.plan(book("mlflow-champion-rollback"), "rollback", alert=alert))
    assert result.outcome == outcomes.FAILED and len(result.attempts) == 2
    assert "no answer from mlflow within 0.2 s" in result.message
    (entry,) = AuditLog(audit_path).read().entries
    assert entry.may_have_applied  # the server may have acted: a rerun must not fire blindly
    plane.set_faults(Faults())
    rerun = executor.run_step(executor.plan(book("mlflow-champion-rollback"), "rollback", alert=alert))
    assert rerun.outcome == DEDUPED


def test_lost_answer_then_409_counts_as_applied(plane, audit_path):
    # The first PATCH is slower than our timeout but is applied; the retry then meets our own change.
    executor = make_executor(
        plane.url,
        audit_path,
        retry=RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=1.0),
        timeout_s=0.3,
    )
    plane.set_faults(Faults(slow_next=1, slow_s=0.6, methods=("PATCH",)))
    plan = executor.plan(book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud"})
    result = executor.run_step(plan)
    assert [a.status for a in result.attempts] == [None, 409]
    assert result.outcome == outcomes.OK and "earlier attempt" in result.message
    assert plane.canary_percent() == 0


def test_dropped_connection_is_retried(plane, executor):
    plane.set_faults(Faults(drop_next=1, methods=("PATCH",)))
    plan = executor.plan(book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud"})
    result = executor.run_step(plan)
    assert result.outcome == outcomes.OK, result.message
    assert [a.status for a in result.attempts] == [None, 200]
    assert "dropped" in (result.attempts[0].error or "")
    assert plane.canary_percent() == 0


def test_connections_that_always_drop_fail_after_the_last_attempt(plane, executor):
    plane.set_faults(Faults(drop_rate=1.0, methods=("PATCH",)))
    plan = executor.plan(book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud"})
    result = executor.run_step(plan)
    assert result.outcome == outcomes.FAILED and len(result.attempts) == FAST_RETRY.max_attempts
    assert sent(plane, "PATCH") == FAST_RETRY.max_attempts


def test_connection_refused_is_retried_then_reported(audit_path):
    with ControlPlane(token=TOKEN) as gone:
        url = gone.url
    executor = make_executor(url, audit_path)
    result = executor.run_step(
        executor.plan(book("kill-switch-fallback"), "inspect", params={"model": "fraud"})
    )
    assert result.outcome == outcomes.FAILED and len(result.attempts) == FAST_RETRY.max_attempts
    assert "cannot connect to flags" in result.message


def test_redirect_to_another_host_is_refused(plane, executor):
    with ControlPlane(token=TOKEN) as elsewhere:
        plane.set_faults(Faults(redirect_to=f"http://localhost:{elsewhere.port}", methods=("PATCH",)))
        plan = executor.plan(book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud"})
        result = executor.run_step(plan)
        assert result.outcome == outcomes.REFUSED
        assert "redirect" in result.message and "another host" in result.message
        assert len(result.attempts) == 1
        assert elsewhere.requests() == []
    assert plane.canary_percent() == 10


def test_wrong_token_is_rejected_not_retried(plane, audit_path):
    executor = Executor(
        targets(plane.url, timeout_s=5.0),
        AuditLog(audit_path),
        env={"CP_TOKEN": "wrong-token"},
        retry=FAST_RETRY,
    )
    result = executor.run_step(
        executor.plan(book("kill-switch-fallback"), "inspect", params={"model": "fraud"})
    )
    assert result.outcome == outcomes.REJECTED and result.status == 401 and len(result.attempts) == 1


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    return _self_signed(directory, "server"), _self_signed(directory, "other")


def test_tls_with_the_right_ca_works_and_a_wrong_ca_is_refused(certificates, audit_path):
    (cert, key), (other_cert, _) = certificates
    with ControlPlane(token=TOKEN, tls_cert=cert, tls_key=key) as plane:
        assert plane.url.startswith("https://")
        runbook = book("kill-switch-fallback")
        good = make_executor(plane.url, audit_path, ca_file=str(cert))
        ok = good.run_step(good.plan(runbook, "inspect", params={"model": "fraud"}))
        assert ok.outcome == outcomes.OK, ok.message

        wrong = make_executor(plane.url, audit_path, ca_file=str(other_cert))
        refused = wrong.run_step(wrong.plan(runbook, "inspect", params={"model": "fraud"}))
        assert refused.outcome == outcomes.REFUSED and len(refused.attempts) == 1
        assert "not trusted" in refused.message

        system = make_executor(plane.url, audit_path)  # no ca_file: the system CAs do not know it either
        assert (
            system.run_step(system.plan(runbook, "inspect", params={"model": "fraud"})).outcome == "refused"
        )


# -- plans ---------------------------------------------------------------------------------


def test_plan_errors_are_one_line_user_mistakes(plane, executor, audit_path):
    runbook = book("kserve-canary-traffic")
    with pytest.raises(PlanError, match="needs --param for: name"):
        executor.plan(runbook, "shift-traffic")
    with pytest.raises(PlanError, match="does not match"):
        executor.plan(runbook, "shift-traffic", params={"name": "../../secrets"})
    with pytest.raises(PlanError, match="above the maximum"):
        executor.plan(runbook, "shift-traffic", params={"name": "fraud", "percent": "101"})
    with pytest.raises(PlanError, match="no parameter 'nmae'"):
        executor.plan(runbook, "shift-traffic", params={"nmae": "fraud"})
    with pytest.raises(PlanError, match="no step 'nope'"):
        executor.plan(runbook, "nope")
    with pytest.raises(PlanError, match="nothing to undo"):
        executor.plan(runbook, "shift-traffic", params={"name": "fraud"}, undo=True)
    lonely = Executor({}, AuditLog(audit_path), env={})
    with pytest.raises(PlanError, match=r"add \[targets.kubernetes\]"):
        lonely.plan(runbook, "inspect", params={"name": "fraud"})


def test_dry_run_renders_the_request_with_secrets_redacted(executor):
    plan = executor.plan(
        book("kserve-canary-traffic"), "shift-traffic", params={"name": "fraud"}, alert=AlertContext("fp")
    )
    text = plan.dry_run()
    assert "PATCH http://127.0.0.1:" in text and "/namespaces/models/inferenceservices/fraud" in text
    assert "Authorization: Bearer ***" in text and TOKEN not in text
    assert '"canaryTrafficPercent": 0' in text and '"resourceVersion": "{resource_version}"' in text
    assert "application/merge-patch+json" in text and "Undo: PATCH" in text


def test_missing_token_is_reported_without_a_traceback(plane, audit_path):
    executor = Executor(targets(plane.url), AuditLog(audit_path), env={})
    result = executor.run_step(
        executor.plan(book("kill-switch-fallback"), "inspect", params={"model": "fraud"})
    )
    assert result.outcome == outcomes.REFUSED and "CP_TOKEN is not set" in result.message
    assert plane.requests() == []
