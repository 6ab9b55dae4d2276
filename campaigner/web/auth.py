"""Who may use the web app: the team password (only its hash kept), signed session cookies
carrying a CSRF token, and the sign-in attempt limit per client."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = (
    "COOKIE",
    "PASSWORD_ENV",
    "PASSWORD_FILE",
    "AttemptLimiter",
    "Password",
    "Session",
    "SessionCodec",
    "csrf_ok",
    "load_secret_key",
)

PASSWORD_ENV = "CAMPAIGNER_WEB_PASSWORD"  # noqa: S105 (a variable name)
COOKIE = "campaigner_session"
SESSION_MAX_AGE_S = 12 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
PASSWORD_FILE = "password.scrypt"  # noqa: S105 (a file name: the generated password's hash)
_KEY_FILE = "session.key"


def _write_private(path: Path, data: bytes) -> None:
    """A file only the owner reads, written whole (a crash leaves the old one or none)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)


@dataclass(frozen=True)
class Password:
    """The team password: from ``CAMPAIGNER_WEB_PASSWORD``, else the hash kept in the
    workspace; at first start without either, a generated one (``generated`` says it, for
    printing once) whose hash alone is kept."""

    salt: bytes
    digest: bytes
    generated: str | None = None

    @classmethod
    def of(cls, password: str) -> Password:
        salt = secrets.token_bytes(16)
        return cls(salt, _scrypt(password, salt))

    @classmethod
    def load(cls, state_dir: Path, environ: Mapping[str, str]) -> Password:
        from_env = environ.get(PASSWORD_ENV)
        if from_env:
            return cls.of(from_env)
        path = state_dir / PASSWORD_FILE
        try:
            salt_hex, digest_hex = path.read_text("ascii").strip().split("$")
            return cls(bytes.fromhex(salt_hex), bytes.fromhex(digest_hex))
        except (FileNotFoundError, ValueError):
            pass
        generated = secrets.token_urlsafe(12)
        made = cls.of(generated)
        _write_private(path, f"{made.salt.hex()}${made.digest.hex()}\n".encode("ascii"))
        return cls(made.salt, made.digest, generated)

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(_scrypt(password, self.salt), self.digest)


def load_secret_key(state_dir: Path) -> bytes:
    """The key that signs session cookies: kept in the workspace so sessions outlive a
    restart (a restart after kill -9 must not sign everyone out)."""
    path = state_dir / _KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    _write_private(path, key)
    return key


@dataclass(frozen=True)
class Session:
    csrf: str
    signed_in: bool = False

    @classmethod
    def fresh(cls, signed_in: bool = False) -> Session:
        return cls(secrets.token_urlsafe(24), signed_in)


class SessionCodec:
    """Sessions as signed, timestamped cookie values."""

    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt="campaigner-session")

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps({"c": session.csrf, "s": session.signed_in})

    def loads(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        return Session(data["c"], data.get("s") is True)


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return (
        session is not None
        and token is not None
        and hmac.compare_digest(session.csrf.encode(), token.encode())
    )


class AttemptLimiter:
    """At most ``limit`` failed sign-ins per client in ``window_s``; then a wait."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def wait_s(self, client: str, now: float | None = None) -> float:
        """Seconds this client must wait before trying again (0: it may try now)."""
        now = time.monotonic() if now is None else now
        failures = self._recent(client, now)
        if len(failures) < self.limit:
            return 0.0
        return failures[0] + self.window_s - now

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(client, now).append(now)
        if len(self._failures) > 10_000:  # bounded: forget clients with no recent failure
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]
