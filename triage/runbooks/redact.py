"""Target credentials, read from the environment or files named in config, and their redaction.

A secret is only ever held by a `Credentials` object; everything that leaves the executor
(dry runs, progress messages, audit records, errors) goes through `Redactor.text` or
`Redactor.value` first, which replace every secret — and every encoding of it that could be
sent, such as the base64 of a basic-auth pair — with `***`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.config import Target

MASK = "***"


class CredentialError(Exception):
    """A target's secret could not be read; the message names where it was looked for, never its value."""


@dataclass(frozen=True)
class Redactor:
    """Replaces every known secret in text and in JSON-like values."""

    secrets: tuple[str, ...] = ()

    def text(self, text: str) -> str:
        """`text` with each secret replaced by `***` (longest first, so no fragment survives)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string (keys too) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def merged(self, other: Redactor) -> Redactor:
        """A redactor that knows the secrets of both."""
        return Redactor(tuple(dict.fromkeys(self.secrets + other.secrets)))


@dataclass(frozen=True)
class Credentials:
    """The auth headers for one target and the redactor that hides them."""

    headers: Mapping[str, str] = field(default_factory=dict)
    redactor: Redactor = Redactor()


def _read(
    env: Mapping[str, str], target: Target, env_name: str | None, file_name: str | None, what: str
) -> str:
    if env_name is not None:
        value = env.get(env_name, "")
        if not value:
            raise CredentialError(f"target {target.name}: {what} environment variable {env_name} is not set")
        return value
    assert file_name is not None
    try:
        value = Path(file_name).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialError(
            f"target {target.name}: cannot read {what} file {file_name} ({exc.strerror})"
        ) from None
    if not value:
        raise CredentialError(f"target {target.name}: {what} file {file_name} is empty")
    return value


def credentials(target: Target, env: Mapping[str, str]) -> Credentials:
    """Read the target's secret now (never cached on disk) and build its headers and redactor."""
    auth = target.auth
    if auth.type == "bearer":
        token = _read(env, target, auth.token_env, auth.token_file, "token")
        return Credentials({"Authorization": f"Bearer {token}"}, Redactor((token,)))
    if auth.type == "basic":
        user = _read(env, target, auth.username_env, None, "username")
        password = _read(env, target, auth.password_env, None, "password")
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return Credentials({"Authorization": f"Basic {pair}"}, Redactor((password, pair)))
    return Credentials()
