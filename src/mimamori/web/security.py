"""Sign-in primitives: argon2id passwords, TOTP with replay refusal, tokens, rate limits.

Nothing here touches HTTP; ``web.accounts`` uses these for the sign-in flow and the CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with the library's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4)
_HASHER = PasswordHasher()
#: verified against when the user does not exist, so the answer takes as long either way
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

TOTP_STEP = 30
MIN_PASSWORD = 12


def use_hasher(hasher: PasswordHasher) -> None:
    """Replace the argon2id parameters (tests use a cheaper profile; production keeps the default)."""
    global _HASHER, _DUMMY_HASH
    _HASHER = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches; ``stored=None`` (unknown user) checks the dummy hash."""
    try:
        ok = _HASHER.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"password must have at least {MIN_PASSWORD} characters"
    if len(password) > 1024:
        return "password too long"
    return None


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str, issuer: str = "mimamori") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_now(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret).at(int(at if at is not None else time.time()))


def verify_totp(secret: str, code: str, last_step: int, at: float | None = None) -> int | None:
    """The time step ``code`` belongs to (one step of clock drift either way), or None.

    A step not after ``last_step`` is refused: each code signs in once.
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    now_step = int((at if at is not None else time.time()) // TOTP_STEP)
    totp = pyotp.TOTP(secret)
    for step in (now_step - 1, now_step, now_step + 1):
        if step > last_step and hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            return step
    return None


def new_token(prefix: str) -> tuple[str, str]:
    """A random token and the SHA-256 hex digest that is stored instead of it."""
    token = prefix + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


@dataclass
class RateLimiter:
    """Sliding-window counters per key, in memory (one process; a lockout is kept in the DB).

    ``hit`` records an event; ``count`` tells how many fell in the window.
    """

    window_seconds: float
    _events: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _prune(self, key: str, now: float) -> deque[tuple[float, str]]:
        q = self._events.setdefault(key, deque())
        while q and q[0][0] <= now - self.window_seconds:
            q.popleft()
        if not q:
            del self._events[key]
            q = self._events.setdefault(key, deque())
        return q

    def hit(self, key: str, value: str = "", now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._prune(key, now)
            q.append((now, value))
            if len(q) > 10_000:
                q.popleft()
            if len(self._events) > 100_000:  # bound memory under a flood of keys
                self._events.pop(next(iter(self._events)))

    def count(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        with self._lock:
            return len(self._prune(key, now))

    def distinct(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        with self._lock:
            return len({v for _, v in self._prune(key, now)})

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)
