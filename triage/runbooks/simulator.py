"""A local control plane that speaks the API subsets the shipped runbooks call, for demos and tests.

Served with the standard library on loopback, bearer-token protected:

- KServe `InferenceService` GET and PATCH (`application/merge-patch+json`, 409 on a stale
  `metadata.resourceVersion`); `status.components.predictor.traffic` follows
  `spec.predictor.canaryTrafficPercent` after `settle_s`, as a controller would.
- Argo Rollouts `Rollout` GET and PATCH of the `status` subresource: `{"status":{"abort":true}}`
  aborts (phase Degraded, a Progressing condition with reason RolloutAborted, canary weight 0);
  `{"status":{"abort":false}}` retries it.
- MLflow Model Registry: `registered-models/get`, `registered-models/alias` (GET, POST, DELETE),
  `model-versions/get` and `model-versions/search` (`name='m' [AND version_number<N]`,
  `order_by=version_number DESC|ASC`, `max_results`), with MLflow 3's error codes.
- A kill-switch webhook: `GET /v1/kill-switch/{model}`, `POST /v1/kill-switch` with
  `{"model", "route": "fallback"|"primary"}`.
- Admin (same token): `GET /_admin/state` (every object as served now, e.g. the canary split a
  demo generator honours), `GET|PUT /_admin/faults`, `GET /_admin/requests`. `GET /healthz`
  needs no token.

Faults (latency, an error status with `Retry-After`, dropped connections, hanging requests, a
redirect to another host), by rate or for the next N requests, optionally only for some
methods, are set at start and changed while running through `/_admin/faults` or `set_faults`.
"""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import random
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

KSERVE = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}"
ROLLOUT = "/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts/{name}"
MLFLOW = "/api/2.0/mlflow"
MERGE_PATCH = "application/merge-patch+json"
HANG_LIMIT_S = 120.0


@dataclass(frozen=True)
class Faults:
    """What goes wrong, for requests whose method is in `methods` (all when empty)."""

    latency_s: float = 0.0  # added to every request
    slow_next: int = 0  # the next N requests wait `slow_s`, then are processed as usual
    slow_s: float = 0.0
    error_status: int = 503
    error_rate: float = 0.0
    error_next: int = 0
    retry_after_s: int | None = None
    drop_rate: float = 0.0
    drop_next: int = 0
    hang_next: int = 0  # answer nothing until the server stops (or HANG_LIMIT_S)
    redirect_to: str | None = None  # e.g. "http://localhost:9999": 307 there for every request
    methods: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """Faults from a JSON object (unknown keys and wrong types raise ValueError)."""
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r} (known: {', '.join(known)})")
            if key == "methods":
                if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
                    raise ValueError("methods: expected a list of HTTP methods")
                value = tuple(m.upper() for m in value)
            elif key in ("redirect_to",) and value is not None and not isinstance(value, str):
                raise ValueError(f"{key}: expected a URL")
            elif key not in ("redirect_to", "retry_after_s") and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise ValueError(f"{key}: expected a number")
            changes[key] = value
        return replace(base or cls(), **changes)


@dataclass(frozen=True)
class RequestRecord:
    """One request the control plane received, and what it answered (None: dropped or hung)."""

    method: str
    path: str
    status: int | None
    fault: str | None = None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Settling:
    """A Kubernetes object whose status catches up with a change `settle_s` after it."""

    def __init__(self, obj: dict[str, Any], status: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.obj = obj
        self.compute = status
        self.old_status = status(obj)
        self.settle_at = 0.0

    def changed(self, settle_s: float, before: dict[str, Any]) -> None:
        self.old_status = self.compute(before)
        self.settle_at = time.monotonic() + settle_s

    def view(self) -> dict[str, Any]:
        status = self.old_status if time.monotonic() < self.settle_at else self.compute(self.obj)
        return {**copy.deepcopy(self.obj), "status": status}


def _isvc_status(obj: dict[str, Any]) -> dict[str, Any]:
    percent = obj["spec"]["predictor"].get("canaryTrafficPercent")
    latest, previous = obj["_revisions"]
    if percent is None or percent == 100:
        traffic = [{"tag": "latest", "revisionName": latest, "percent": 100, "latestRevision": True}]
    else:
        traffic = [
            {"tag": "latest", "revisionName": latest, "percent": percent, "latestRevision": True},
            {"tag": "prev", "revisionName": previous, "percent": 100 - percent, "latestRevision": False},
        ]
    return {
        "url": f"http://{obj['metadata']['name']}.{obj['metadata']['namespace']}.example.com",
        "components": {
            "predictor": {
                "latestCreatedRevision": latest,
                "latestReadyRevision": latest,
                "previousRolledoutRevision": previous,
                "traffic": traffic,
            }
        },
        "conditions": [{"type": "Ready", "status": "True"}],
        "observedGeneration": obj["metadata"]["generation"],
    }


def _rollout_status(obj: dict[str, Any]) -> dict[str, Any]:
    state = obj["_state"]
    if state["abort"]:
        return {
            "abort": True,
            "abortedAt": state["aborted_at"],
            "phase": "Degraded",
            "message": f"RolloutAborted: Rollout aborted update to revision {state['revision']}",
            "currentStepIndex": 0,
            "canary": {"weights": {"canary": {"weight": 0}, "stable": {"weight": 100}}},
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "RolloutAborted",
                    "message": f"Rollout aborted update to revision {state['revision']}",
                },
                {"type": "Available", "status": "True", "reason": "AvailableReason"},
            ],
        }
    weight = state["weight"]
    return {
        "phase": "Paused" if state["paused"] else "Progressing",
        "message": "CanaryPauseStep" if state["paused"] else "",
        "currentStepIndex": state["step"],
        "canary": {"weights": {"canary": {"weight": weight}, "stable": {"weight": 100 - weight}}},
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": state["progress_reason"]},
            {"type": "Available", "status": "True", "reason": "AvailableReason"},
            *([{"type": "Paused", "status": "True", "reason": "CanaryPauseStep"}] if state["paused"] else []),
        ],
    }


class ControlPlaneState:
    """Everything the control plane serves, behind one lock."""

    def __init__(self, settle_s: float) -> None:
        self.lock = threading.Lock()
        self.settle_s = settle_s
        self.resource_version = 1000
        self.isvcs: dict[tuple[str, str], _Settling] = {}
        self.rollouts: dict[tuple[str, str], _Settling] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.switches: dict[str, dict[str, Any]] = {}
        self.seed()

    def next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def seed(self) -> None:
        """The demo scenario: model `fraud` in namespace `models`, v2 canary at 10 %."""
        isvc = {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                "name": "fraud",
                "namespace": "models",
                "resourceVersion": self.next_version(),
                "generation": 2,
            },
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": 10,
                    "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/fraud/v2"},
                }
            },
            "_revisions": ["fraud-predictor-00002", "fraud-predictor-00001"],
        }
        self.isvcs[("models", "fraud")] = _Settling(isvc, _isvc_status)
        rollout = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {
                "name": "fraud",
                "namespace": "models",
                "resourceVersion": self.next_version(),
                "generation": 3,
            },
            "spec": {
                "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]}}
            },
            "_state": {
                "abort": False,
                "aborted_at": None,
                "paused": True,
                "step": 1,
                "weight": 20,
                "revision": 2,
                "progress_reason": "ReplicaSetUpdated",
            },
        }
        self.rollouts[("models", "fraud")] = _Settling(rollout, _rollout_status)
        created = int(time.time() * 1000) - 3 * 86_400_000
        self.models["fraud"] = {
            "name": "fraud",
            "creation_timestamp": created,
            "last_updated_timestamp": created,
            "versions": {
                str(v): {
                    "name": "fraud",
                    "version": str(v),
                    "creation_timestamp": created + v * 3_600_000,
                    "last_updated_timestamp": created + v * 3_600_000,
                    "current_stage": "None",
                    "description": "",
                    "source": f"s3://models/fraud/{v}",
                    "run_id": "",
                    "status": "READY",
                    "run_link": "",
                }
                for v in (1, 2, 3)
            },
            "aliases": {"champion": "3"},
        }
        self.switches["fraud"] = {
            "model": "fraud",
            "route": "primary",
            "fallback": "fraud-rules-v1",
            "updated_at": _now_text(),
            "updated_by": "seed",
            "reason": "",
        }

    def snapshot(self) -> dict[str, Any]:
        """Every object as it is served now (status settled or not), JSON-able."""
        with self.lock:
            return {
                "inferenceservices": [_public(s.view()) for s in self.isvcs.values()],
                "rollouts": [_public(s.view()) for s in self.rollouts.values()],
                "registered_models": [
                    {
                        "name": m["name"],
                        "aliases": dict(m["aliases"]),
                        "versions": sorted(m["versions"], key=int),
                    }
                    for m in self.models.values()
                ],
                "kill_switches": [dict(s) for s in self.switches.values()],
            }


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class _Answer(Exception):
    """Stop handling and answer with this status and JSON body."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _k8s_error(status: int, reason: str, message: str) -> _Answer:
    return _Answer(
        status,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": status,
        },
    )


def _mlflow_error(status: int, code: str, message: str) -> _Answer:
    return _Answer(status, {"error_code": code, "message": message})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    control: ControlPlane


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are recorded in ControlPlane.requests(), never printed with headers

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        control = self.server.control
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        if path == "/healthz":
            return self._send(200, {"ok": True}, path)
        if not path.startswith("/_admin/"):
            fault = control.take_fault(self.command)
            if fault == "hang":
                control.stopping.wait(HANG_LIMIT_S)
                return self._drop(path, fault)
            if fault == "drop":
                return self._drop(path, fault)
            if fault == "redirect":
                target = (control.faults.redirect_to or "").rstrip("/") + self.path
                return self._send(307, {"redirect": target}, path, {"Location": target}, fault)
            if fault == "error":
                retry = control.faults.retry_after_s
                headers = {} if retry is None else {"Retry-After": str(retry)}
                status = control.faults.error_status
                return self._send(status, {"message": "injected fault"}, path, headers, fault)
        try:
            self._authorize(control.token)
            body = json.loads(raw) if raw else None
            status, answer = control.route_request(
                self.command, path, query, body, self.headers.get("Content-Type", "")
            )
        except _Answer as answer_exc:
            return self._send(answer_exc.status, answer_exc.body, path, answer_exc.headers)
        except ValueError:
            return self._send(400, {"message": "body is not valid JSON"}, path)
        self._send(status, answer, path)

    def _authorize(self, token: str | None) -> None:
        if token is None:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise _Answer(401, {"message": "Unauthorized", "code": 401}, {"WWW-Authenticate": "Bearer"})

    def _send(
        self,
        status: int,
        body: Any,
        path: str,
        headers: Mapping[str, str] | None = None,
        fault: str | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        # Recorded before the answer goes out: a client that has it may count the request at once.
        self.server.control.record(RequestRecord(self.command, path, status, fault))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _drop(self, path: str, fault: str) -> None:
        self.server.control.record(RequestRecord(self.command, path, None, fault))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class ControlPlane:
    """The simulator; a context manager that serves on a free loopback port in a thread.

    `token=None` turns authentication off (tests of the auth error paths set one).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None,
        faults: Faults | None = None,
        settle_s: float = 0.3,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        seed: int = 0,
    ) -> None:
        self.token = token
        self.faults = faults or Faults()
        self.state = ControlPlaneState(settle_s)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._rng = random.Random(seed)
        self._server = _Server((host, port), _Handler)
        self._server.control = self
        self.scheme = "http"
        if tls_cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls_cert, tls_key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:40123."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> ControlPlane:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="control-plane",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the socket."""
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and the request log -------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        """Replace the active faults."""
        with self._lock:
            self.faults = faults

    def take_fault(self, method: str) -> str | None:
        """The fault for this request, if any, consuming one of the `*_next` counts; sleeps
        for latency (outside the lock, so other requests go on)."""
        delay = 0.0
        with self._lock:
            f = self.faults
            if f.methods and method not in f.methods:
                return None
            delay = f.latency_s
            if f.slow_next > 0:
                self.faults = f = replace(f, slow_next=f.slow_next - 1)
                delay += f.slow_s
            fault = self._pick(f)
        if delay:
            time.sleep(delay)
        return fault

    def _pick(self, f: Faults) -> str | None:
        """Which fault hits this request; call with the lock held."""
        for name in ("hang", "drop", "error"):
            if getattr(f, f"{name}_next") > 0:
                self.faults = replace(f, **{f"{name}_next": getattr(f, f"{name}_next") - 1})
                return name
        if f.redirect_to:
            return "redirect"
        if f.drop_rate and self._rng.random() < f.drop_rate:
            return "drop"
        if f.error_rate and self._rng.random() < f.error_rate:
            return "error"
        return None

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def requests(self) -> list[RequestRecord]:
        """Every request received so far (admin and health checks excluded)."""
        with self._lock:
            return [r for r in self._requests if not r.path.startswith("/_admin/") and r.path != "/healthz"]

    # -- state, for demos and tests -------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every object as served now; see ControlPlaneState.snapshot."""
        return self.state.snapshot()

    def canary_percent(self, namespace: str = "models", name: str = "fraud") -> int:
        """The share of traffic the InferenceService's latest revision gets now, per its status."""
        with self.state.lock:
            view = self.state.isvcs[(namespace, name)].view()
        latest = [t for t in view["status"]["components"]["predictor"]["traffic"] if t["latestRevision"]]
        return int(latest[0]["percent"])

    def rollout_phase(self, namespace: str = "models", name: str = "fraud") -> str:
        """The Rollout's status.phase now."""
        with self.state.lock:
            return str(self.state.rollouts[(namespace, name)].view()["status"]["phase"])

    def champion(self, model: str = "fraud") -> str | None:
        """The version the `champion` alias points at."""
        with self.state.lock:
            return self.state.models[model]["aliases"].get("champion")

    def kill_switch_route(self, model: str = "fraud") -> str:
        """The kill switch's route for `model`: primary or fallback."""
        with self.state.lock:
            return str(self.state.switches[model]["route"])

    # -- the API --------------------------------------------------------------------------

    def route_request(
        self, method: str, path: str, query: Mapping[str, str], body: Any, content_type: str
    ) -> tuple[int, Any]:
        """Answer one authorized request: (status, JSON body); raises _Answer for errors."""
        if path.startswith("/_admin/"):
            return self._admin(method, path, body)
        match = re.fullmatch(
            r"/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices/([^/]+)", path
        )
        if match:
            return self._kserve(method, (match[1], match[2]), body, content_type)
        match = re.fullmatch(
            r"/apis/argoproj\.io/v1alpha1/namespaces/([^/]+)/rollouts/([^/]+)(/status)?", path
        )
        if match:
            return self._rollout(method, (match[1], match[2]), bool(match[3]), body, content_type)
        if path.startswith(MLFLOW + "/"):
            return self._mlflow(method, path[len(MLFLOW) :], query, body)
        match = re.fullmatch(r"/v1/kill-switch(?:/([^/]+))?", path)
        if match:
            return self._kill_switch(method, match[1], body)
        raise _Answer(404, {"message": f"no route {method} {path}"})

    def _admin(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/_admin/state" and method == "GET":
            return 200, self.snapshot()
        if path == "/_admin/requests" and method == "GET":
            return 200, [asdict(r) for r in self.requests()]
        if path == "/_admin/faults":
            if method == "PUT":
                if not isinstance(body, dict):
                    raise _Answer(400, {"message": "expected a JSON object of faults"})
                try:
                    self.set_faults(Faults.from_json(body))
                except (ValueError, TypeError) as exc:
                    raise _Answer(400, {"message": str(exc)}) from None
            if method in ("GET", "PUT"):
                return 200, asdict(self.faults)
        raise _Answer(404, {"message": f"no admin route {method} {path}"})

    def _kserve(self, method: str, key: tuple[str, str], body: Any, content_type: str) -> tuple[int, Any]:
        with self.state.lock:
            item = self.state.isvcs.get(key)
            if item is None:
                raise _k8s_error(404, "NotFound", f'inferenceservices.serving.kserve.io "{key[1]}" not found')
            if method == "GET":
                return 200, _public(item.view())
            if method != "PATCH":
                raise _k8s_error(405, "MethodNotAllowed", f"{method} is not supported here")
            before = self._check_patch(
                item, body, content_type, "inferenceservices.serving.kserve.io", key[1]
            )
            patched = merge_patch(item.obj, {k: v for k, v in body.items() if k != "status"})
            percent = patched["spec"]["predictor"].get("canaryTrafficPercent")
            if percent is not None and (
                isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100
            ):
                raise _k8s_error(
                    422,
                    "Invalid",
                    f"spec.predictor.canaryTrafficPercent: Invalid value: {percent!r}: must be 0-100",
                )
            return 200, self._commit(item, patched, before)

    def _check_patch(
        self, item: _Settling, body: Any, content_type: str, kind: str, name: str
    ) -> dict[str, Any]:
        if content_type.split(";")[0].strip() != MERGE_PATCH:
            raise _k8s_error(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{MERGE_PATCH}",
            )
        if not isinstance(body, dict):
            raise _k8s_error(400, "BadRequest", "a merge patch must be a JSON object")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        current = item.obj["metadata"]["resourceVersion"]
        if wanted is not None and str(wanted) != current:
            raise _k8s_error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        return copy.deepcopy(item.obj)

    def _commit(self, item: _Settling, patched: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
        patched["metadata"]["resourceVersion"] = self.state.next_version()
        if patched.get("spec") != before.get("spec"):
            patched["metadata"]["generation"] = before["metadata"]["generation"] + 1
        item.obj = patched
        item.changed(self.state.settle_s, before)
        return _public(item.view())

    def _rollout(
        self, method: str, key: tuple[str, str], status: bool, body: Any, content_type: str
    ) -> tuple[int, Any]:
        with self.state.lock:
            item = self.state.rollouts.get(key)
            if item is None:
                raise _k8s_error(404, "NotFound", f'rollouts.argoproj.io "{key[1]}" not found')
            if method == "GET":
                return 200, _public(item.view())
            if method != "PATCH" or not status:
                raise _k8s_error(405, "MethodNotAllowed", "only the status subresource is patched here")
            before = self._check_patch(item, body, content_type, "rollouts.argoproj.io", key[1])
            abort = (body.get("status") or {}).get("abort")
            patched = copy.deepcopy(item.obj)
            state = patched["_state"]
            if abort is True and not state["abort"]:
                state.update(abort=True, aborted_at=_now_text(), paused=False, step=0, weight=0)
            elif abort is False and state["abort"]:  # `kubectl argo rollouts retry`
                state.update(
                    abort=False,
                    aborted_at=None,
                    paused=False,
                    step=0,
                    weight=20,
                    progress_reason="RolloutRetry",
                )
            return 200, self._commit(item, patched, before)

    def _mlflow(self, method: str, route: str, query: Mapping[str, str], body: Any) -> tuple[int, Any]:
        args = dict(query) if method == "GET" else dict(body or {})
        with self.state.lock:
            if route == "/registered-models/get" and method == "GET":
                model = self._model(args)
                latest = max(model["versions"].values(), key=lambda v: int(v["version"]))
                return 200, {
                    "registered_model": {
                        "name": model["name"],
                        "creation_timestamp": model["creation_timestamp"],
                        "last_updated_timestamp": model["last_updated_timestamp"],
                        "latest_versions": [latest],
                        "aliases": [{"alias": a, "version": v} for a, v in sorted(model["aliases"].items())],
                    }
                }
            if route == "/registered-models/alias":
                model = self._model(args)
                alias = args.get("alias")
                if not alias:
                    raise _mlflow_error(
                        400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'alias'."
                    )
                if method == "GET":
                    if alias not in model["aliases"]:
                        raise _mlflow_error(
                            400, "INVALID_PARAMETER_VALUE", f"Registered model alias {alias} not found."
                        )
                    return 200, {"model_version": self._version(model, model["aliases"][alias])}
                if method == "POST":
                    version = str(args.get("version", ""))
                    if version not in model["versions"]:
                        raise _mlflow_error(
                            404,
                            "RESOURCE_DOES_NOT_EXIST",
                            f"Model Version (name={model['name']}, version={version}) not found",
                        )
                    model["aliases"][alias] = version
                    model["last_updated_timestamp"] = int(time.time() * 1000)
                    return 200, {}
                if method == "DELETE":
                    model["aliases"].pop(alias, None)
                    return 200, {}
            if route == "/model-versions/get" and method == "GET":
                model = self._model(args)
                return 200, {"model_version": self._version(model, str(args.get("version", "")))}
            if route == "/model-versions/search" and method == "GET":
                return 200, self._search(args)
        raise _mlflow_error(404, "ENDPOINT_NOT_FOUND", f"No API endpoint {method} {MLFLOW}{route}")

    def _model(self, args: Mapping[str, Any]) -> dict[str, Any]:
        name = args.get("name")
        if not name:
            raise _mlflow_error(
                400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'name'."
            )
        if name not in self.state.models:
            raise _mlflow_error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found"
            )
        return self.state.models[name]

    @staticmethod
    def _version(model: dict[str, Any], version: str) -> dict[str, Any]:
        if version not in model["versions"]:
            raise _mlflow_error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Model Version (name={model['name']}, version={version}) not found",
            )
        aliases = sorted(a for a, v in model["aliases"].items() if v == version)
        return {**model["versions"][version], "aliases": aliases}

    def _search(self, args: Mapping[str, Any]) -> dict[str, Any]:
        match = re.fullmatch(
            r"\s*name\s*=\s*'([^']+)'\s*(?:AND\s+version_number\s*(<=|>=|<|>|=)\s*(\d+)\s*)?",
            str(args.get("filter", "")),
            re.IGNORECASE,
        )
        if not match:
            raise _mlflow_error(
                400, "INVALID_PARAMETER_VALUE", "filter: expected name='...' [AND version_number<N]"
            )
        model = self.state.models.get(match[1])
        versions = [] if model is None else [int(v) for v in model["versions"]]
        if match[2]:
            limit = int(match[3])
            ops: dict[str, Callable[[int], bool]] = {
                "<": lambda v: v < limit,
                "<=": lambda v: v <= limit,
                ">": lambda v: v > limit,
                ">=": lambda v: v >= limit,
                "=": lambda v: v == limit,
            }
            versions = [v for v in versions if ops[match[2]](v)]
        order = str(args.get("order_by", "version_number DESC")).split()
        versions.sort(reverse=order[-1].upper() != "ASC")
        versions = versions[: int(args.get("max_results", 10000))]
        assert model is not None or not versions
        return {"model_versions": [model["versions"][str(v)] for v in versions] if model else []}

    def _kill_switch(self, method: str, model: str | None, body: Any) -> tuple[int, Any]:
        with self.state.lock:
            if method == "GET" and model is not None:
                if model not in self.state.switches:
                    raise _Answer(404, {"message": f"no kill switch for model {model!r}"})
                return 200, dict(self.state.switches[model])
            if method == "POST" and model is None:
                if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                    raise _Answer(400, {"message": 'expected {"model": ..., "route": "fallback"|"primary"}'})
                switch = self.state.switches.get(body["model"])
                if switch is None:
                    raise _Answer(404, {"message": f"no kill switch for model {body['model']!r}"})
                if body.get("route") not in ("fallback", "primary"):
                    raise _Answer(422, {"message": 'route must be "fallback" or "primary"'})
                switch.update(
                    route=body["route"],
                    updated_at=_now_text(),
                    updated_by=str(body.get("requested_by", "")),
                    reason=str(body.get("reason", "")),
                )
                return 200, dict(switch)
        raise _Answer(405, {"message": f"{method} is not supported here"})
