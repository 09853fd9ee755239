"""The console's secrets: password hashes, API tokens, session ids, and the login rate limit.

- Passwords: argon2id (argon2-cffi's defaults: 64 MiB, 3 passes), stored as PHC strings;
  a hash made with weaker parameters is replaced at the next successful login.
- API tokens and session ids: 32 random bytes. They carry their own entropy, so a plain
  SHA-256 is enough to keep a database reader from using them (argon2 would only add
  latency to every request); the token itself is shown once and never stored.
- Login rate limit: a sliding window of failed attempts per (user, client address), held in
  memory. One `faceloop up` process serves the console, so memory is the one place every
  attempt passes; a restart clears it, which takes an operator, not an attacker. Running
  several API processes needs a shared store instead (docs/console.md says so).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "LoginRateLimiter",
    "check_password_strength",
    "hash_password",
    "new_secret",
    "new_token",
    "password_needs_rehash",
    "sha256_hex",
    "verify_password",
]

MIN_PASSWORD_LENGTH = 12
# tokens say what they are, so a leaked one is recognised by secret scanners
TOKEN_PREFIX = "flt_"

_hasher = PasswordHasher()
# verified against when the user does not exist, so a login for an unknown name takes as
# long as one with a wrong password (no user enumeration by timing)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_password_strength(password: str, username: str) -> list[str]:
    """What is wrong with a new password (empty: acceptable)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"password: at least {MIN_PASSWORD_LENGTH} characters")
    if username and username.casefold() in password.casefold():
        problems.append("password: must not contain the username")
    return problems


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def new_secret() -> str:
    """32 random bytes, URL-safe: session ids and CSRF tokens."""
    return secrets.token_urlsafe(32)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class LoginRateLimiter:
    """At most `limit` failed logins per (user, address) in any `window_s` seconds; while
    over the limit every attempt is refused, the right password too."""

    def __init__(
        self,
        limit: int = 5,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self.window_s
        while q and q[0] <= cutoff:
            q.popleft()
        return q

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until the next attempt is allowed (0: allowed now)."""
        with self._lock:
            q = self._recent((user, address))
            if len(q) < self.limit:
                return 0.0
            return max(q[0] + self.window_s - self._clock(), 1.0)

    def failed(self, user: str, address: str) -> None:
        with self._lock:
            self._recent((user, address)).append(self._clock())

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._failures.pop((user, address), None)
