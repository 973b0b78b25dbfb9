"""HTTP Basic authentication for the API and the file routes.

A1111 (`modules/api/api.py`): with `--api-auth "u:p,u2:p2"` every `/sdapi` route depends on `auth`, which reads the
`Authorization: Basic …` header, compares user and password in constant time (`secrets.compare_digest`) and answers
401 "Incorrect username or password" with `WWW-Authenticate: Basic` otherwise. Here the same check is an `AuthGuard`, used for the API (with the
`--api-auth` logins, or the `--gradio-auth` ones when only those are given: A1111 would leave the API open) and for
the UI and file routes (`modules.server`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Mapping

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection


def parse_basic_header(header: str | None) -> tuple[str, str] | None:
    """`"Basic dXNlcjpwYXNz"` → `("user", "pass")`; None for a missing, non-Basic or malformed header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def credentials_match(credentials: Mapping[str, str], user: str, password: str) -> bool:
    """Constant-time check of `user:password` against every known login (no early exit on the user name)."""
    ok = False
    for known_user, known_password in credentials.items():
        user_ok = secrets.compare_digest(user.encode("utf-8"), known_user.encode("utf-8"))
        password_ok = secrets.compare_digest(password.encode("utf-8"), known_password.encode("utf-8"))
        ok |= user_ok and password_ok
    return ok


def client_key(request: HTTPConnection) -> str:
    """Who the brake counts: the client's IPv4 address, or its IPv6 /64 network. One IPv6 subscriber (a home
    line, a cloud VM) gets a whole /64 and could otherwise take a fresh address for every guess (RFC 6177 §2);
    IPv4-mapped IPv6 addresses count as their IPv4 address."""
    host = request.client.host if request.client else "?"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginThrottle:
    """Brute-force brake per client address: `free_attempts` wrong logins within `window` seconds are answered
    normally; then the client is refused (429, `Retry-After`) for `base_lock` seconds, doubling with each further
    lock up to `max_lock`. A correct login clears the record. Other clients are never affected, so the real user on
    another address is not locked out, and one's own typos cost at most half a minute (A1111 has no brake)."""

    def __init__(self, *, free_attempts: int = 5, window: float = 60.0, base_lock: float = 30.0,
                 max_lock: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_attempts, self.window, self.base_lock, self.max_lock = free_attempts, window, base_lock, max_lock
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds this client must still wait (0 when it may try)."""
        with self._lock:
            return max(0.0, self._locked_until.get(client, 0.0) - self.clock())

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window] + [now]
            self._failures[client] = recent
            if len(recent) >= self.free_attempts:
                strikes = self._strikes.get(client, 0) + 1
                self._strikes[client] = strikes
                self._locked_until[client] = now + min(self.max_lock, self.base_lock * 2 ** (strikes - 1))
                self._failures[client] = []
            if len(self._failures) > 10000:  # bounded memory under a distributed attack
                self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] < self.window}
            if len(self._locked_until) > 10000:  # locks that ran out are forgotten (strikes with them)
                expired = [k for k, until in self._locked_until.items() if until <= now]
                for key in expired:
                    self._locked_until.pop(key, None)
                    self._strikes.pop(key, None)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
            self._strikes.pop(client, None)
            self._locked_until.pop(client, None)


class AuthGuard:
    """A FastAPI dependency: passes when no logins are configured, else needs valid Basic credentials.

    Raises 401 with `WWW-Authenticate: Basic realm=…` so browsers and `curl -u` both know what to send, and 429
    with `Retry-After` while the client is braked by the `LoginThrottle` after repeated wrong logins.
    """

    def __init__(self, credentials: Mapping[str, str] | None = None, *, realm: str = "Stable Diffusion",
                 throttle: LoginThrottle | None = None) -> None:
        self.credentials = dict(credentials or {})
        self.realm = realm
        self.throttle = throttle or LoginThrottle()

    @property
    def enabled(self) -> bool:
        """True when logins are required."""
        return bool(self.credentials)

    def user(self, request: HTTPConnection) -> str | None:
        """The authenticated user of a request or websocket, or None (also None when auth is disabled). A wrong
        login is counted for the client's address; a braked client gets None even with the right password."""
        client = client_key(request)
        if self.throttle.retry_after(client) > 0:
            return None
        pair = parse_basic_header(request.headers.get("authorization"))
        if pair is not None and credentials_match(self.credentials, *pair):
            self.throttle.succeeded(client)
            return pair[0]
        if pair is not None:
            self.throttle.failed(client)
        return None

    def refusal(self, request: HTTPConnection) -> HTTPException:
        """429 while the client is braked, else the 401 login request."""
        client = client_key(request)
        wait = self.throttle.retry_after(client)
        if wait > 0:
            return HTTPException(status_code=429, detail=f"Too many wrong logins; try again in {int(wait) + 1} s",
                                 headers={"Retry-After": str(int(wait) + 1)})
        return self.unauthorized()

    def unauthorized(self) -> HTTPException:
        """The 401 answer A1111 gives (`Incorrect username or password`, `WWW-Authenticate: Basic`)."""
        return HTTPException(status_code=401, detail="Incorrect username or password",
                             headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    async def __call__(self, request: Request) -> str | None:
        if not self.enabled:
            return None
        user = self.user(request)
        if user is None:
            raise self.refusal(request)
        return user
