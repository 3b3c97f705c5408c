"""One HTTP call to a configured target, with the executor's safety rules, on httpx.

- Only the target's own scheme, host and port: the URL is the base URL plus a rendered path, and
  a redirect elsewhere is refused (never followed, so credentials never leave the target).
- TLS is verified, against the target's `ca_file` when given; a failed verification is refused,
  not retried. Every phase has the target's explicit timeout; proxies from the environment are
  ignored.
- Retries only what is safe to retry: connection errors, timeouts and dropped connections, and
  429, 502, 503, 504, with exponential backoff and equal jitter, waiting at least `Retry-After`.
  Never 400, 401, 403, 404, 409, 422 or any other status.
- Never raises for HTTP failures: the result says what happened, redacted.
"""

from __future__ import annotations

import email.utils
import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import certifi
import httpx

from triage.config import Target
from triage.runbooks.redact import Credentials, Redactor

RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_BODY_CHARS = 4000


class Clock(Protocol):
    """Time as the executor sees it; tests may pass one that records the waits."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: delay n is min(max, base·2ⁿ⁻¹)·U(½, 1), or Retry-After."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0  # a server asking for longer than this is given up on

    def backoff_s(self, retry: int, rng: random.Random) -> float:
        """The jittered delay before retry number `retry` (1-based)."""
        cap = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


@dataclass(frozen=True)
class Attempt:
    """One try of a call: the wait before it, and its status or (redacted) error."""

    number: int
    delay_before_s: float
    status: int | None
    error: str | None
    elapsed_ms: float


@dataclass(frozen=True)
class CallResult:
    """What a call came to. `body` is decoded JSON (or text) of the last response."""

    method: str
    url: str
    status: int | None
    body: Any
    attempts: tuple[Attempt, ...]
    error: str | None = None  # why it failed without a usable response, redacted
    refused: bool = False  # our safety rules stopped it: wrong host, redirect, TLS
    ambiguous: bool = False  # an attempt may have reached the server without an answer

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None

    @property
    def sent(self) -> bool:
        """Whether the server may have acted on the request."""
        return self.ambiguous or self.status is not None


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: an integer, or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _tls_refusal(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _decode(response: httpx.Response) -> Any:
    text = response.text
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text[:MAX_BODY_CHARS]


def tls_context(target: Target) -> ssl.SSLContext | bool:
    """How httpx should verify the target: its `ca_file`, else the certifi bundle, or not at all
    when `verify_tls = false`. Raises OSError / ssl.SSLError for an unreadable CA file."""
    if not target.verify_tls:
        return False
    return ssl.create_default_context(cafile=target.ca_file or certifi.where())


def tls_description(target: Target) -> str:
    """How the target's certificate is checked, for dry runs."""
    if not target.base_url.startswith("https://"):
        return "plain HTTP"
    if not target.verify_tls:
        return "TLS NOT VERIFIED (verify_tls = false)"
    return f"TLS verified against {target.ca_file}" if target.ca_file else "TLS verified (system CAs)"


class TargetClient:
    """Calls one target; use as a context manager so the connection pool is closed."""

    def __init__(
        self,
        target: Target,
        credentials: Credentials,
        redactor: Redactor,
        *,
        verify: ssl.SSLContext | bool,
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.target = target
        self.credentials = credentials
        self.redactor = redactor
        self.retry = retry
        self.clock = clock
        self.rng = rng
        self.origin = _origin(target.base_url)
        self._http = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(target.timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        """The absolute URL of a rendered path on this target."""
        return self.target.base_url + path

    def headers(self, extra: Mapping[str, str], has_body: bool) -> dict[str, str]:
        """Target headers, then the step's, then auth (which nothing can override)."""
        headers = {"Accept": "application/json", **self.target.headers, **extra}
        if has_body and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return {**headers, **self.credentials.headers}

    def call(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        notify: Callable[[str], None] | None = None,
    ) -> CallResult:
        """Send `method path` with retries; never raises for network or HTTP failures."""
        url = self.url(path)
        content = None if body is None else json.dumps(body).encode()
        all_headers = self.headers(headers or {}, content is not None)
        attempts: list[Attempt] = []
        ambiguous = False
        delay = 0.0
        for number in range(1, self.retry.max_attempts + 1):
            if delay:
                self.clock.sleep(delay)
            started = self.clock.monotonic()
            try:
                response, final_url = self._send(method, url, all_headers, content)
            except _Refused as refusal:
                attempts.append(Attempt(number, delay, refusal.status, str(refusal), self._ms(started)))
                return self._result(
                    method, url, refusal.status, None, attempts, str(refusal), True, ambiguous
                )
            except httpx.HTTPError as exc:
                error, retryable, maybe_sent = self._classify(exc)
                ambiguous = ambiguous or maybe_sent
                attempts.append(Attempt(number, delay, None, error, self._ms(started)))
                if _tls_refusal(exc):
                    return self._result(method, url, None, None, attempts, error, True, ambiguous)
                if not retryable or number == self.retry.max_attempts:
                    return self._result(method, url, None, None, attempts, error, False, ambiguous)
                delay = self.retry.backoff_s(number, self.rng)
                self._tell(notify, f"attempt {number}: {error}; retrying in {delay:.1f} s")
                continue
            status = response.status_code
            attempts.append(Attempt(number, delay, status, None, self._ms(started)))
            if status not in RETRY_STATUSES or number == self.retry.max_attempts:
                return self._result(
                    method, final_url, status, _decode(response), attempts, None, False, ambiguous
                )
            wait = retry_after_s(response.headers.get("Retry-After"))
            if wait is not None and wait > self.retry.max_retry_after_s:
                error = f"HTTP {status}; the server asks to retry after {wait:.0f} s, longer than we wait"
                return self._result(
                    method, final_url, status, _decode(response), attempts, error, False, ambiguous
                )
            delay = wait if wait is not None else self.retry.backoff_s(number, self.rng)
            self._tell(notify, f"attempt {number}: HTTP {status}; retrying in {delay:.1f} s")
        raise AssertionError("unreachable: the last attempt always returns")

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | None
    ) -> tuple[httpx.Response, str]:
        """Send, following only same-origin redirects (307/308 for writes, any for GET)."""
        for _ in range(MAX_REDIRECTS + 1):
            if _origin(url) != self.origin:
                raise _Refused(f"refused to call {self._host(url)}: not target {self.target.name}", None)
            response = self._http.request(method, url, headers=headers, content=content)
            if response.status_code not in REDIRECT_STATUSES or "location" not in response.headers:
                return response, url
            location = urljoin(url, response.headers["location"])
            if _origin(location) != self.origin:
                raise _Refused(
                    f"refused a redirect from target {self.target.name} to another host "
                    f"({self._host(location)})",
                    response.status_code,
                )
            if method != "GET" and response.status_code not in (307, 308):
                raise _Refused(
                    f"refused a {response.status_code} redirect of a {method}", response.status_code
                )
            url = location
        raise _Refused(f"more than {MAX_REDIRECTS} redirects", None)

    @staticmethod
    def _host(url: str) -> str:
        scheme, host, port = _origin(url)
        return f"{scheme}://{host}:{port}"

    def _classify(self, exc: httpx.HTTPError) -> tuple[str, bool, bool]:
        """(redacted message, retryable, may have reached the server)."""
        name = type(exc).__name__
        detail = self.redactor.text(str(exc)) or name
        if _tls_refusal(exc):
            return f"TLS certificate of {self.target.name} not trusted ({detail})", False, False
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
            return f"cannot connect to {self.target.name}: {name} ({detail})", True, False
        if isinstance(exc, httpx.TimeoutException):
            return (
                f"no answer from {self.target.name} within {self.target.timeout_s:g} s ({name})",
                True,
                True,
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return f"connection to {self.target.name} dropped: {name} ({detail})", True, True
        return f"request to {self.target.name} failed: {name} ({detail})", False, True

    def _ms(self, started: float) -> float:
        return round((self.clock.monotonic() - started) * 1000, 1)

    def _tell(self, notify: Callable[[str], None] | None, message: str) -> None:
        if notify is not None:
            notify(self.redactor.text(message))

    def _result(
        self,
        method: str,
        url: str,
        status: int | None,
        body: Any,
        attempts: list[Attempt],
        error: str | None,
        refused: bool,
        ambiguous: bool,
    ) -> CallResult:
        return CallResult(
            method=method,
            url=url,
            status=status,
            body=self.redactor.value(body),
            attempts=tuple(attempts),
            error=None if error is None else self.redactor.text(error),
            refused=refused,
            ambiguous=ambiguous,
        )


class _Refused(Exception):
    """Our own rules stopped the call (host, redirect)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
