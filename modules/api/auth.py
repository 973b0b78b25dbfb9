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
import secrets
from collections.abc import Mapping

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


class AuthGuard:
    """A FastAPI dependency: passes when no logins are configured, else needs valid Basic credentials.

    Raises 401 with `WWW-Authenticate: Basic realm=…` so browsers and `curl -u` both know what to send.
    """

    def __init__(self, credentials: Mapping[str, str] | None = None, *, realm: str = "Stable Diffusion") -> None:
        self.credentials = dict(credentials or {})
        self.realm = realm

    @property
    def enabled(self) -> bool:
        """True when logins are required."""
        return bool(self.credentials)

    def user(self, request: HTTPConnection) -> str | None:
        """The authenticated user of a request or websocket, or None (also None when auth is disabled)."""
        pair = parse_basic_header(request.headers.get("authorization"))
        if pair is not None and credentials_match(self.credentials, *pair):
            return pair[0]
        return None

    def unauthorized(self) -> HTTPException:
        """The 401 answer A1111 gives (`Incorrect username or password`, `WWW-Authenticate: Basic`)."""
        return HTTPException(status_code=401, detail="Incorrect username or password",
                             headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    async def __call__(self, request: Request) -> str | None:
        if not self.enabled:
            return None
        user = self.user(request)
        if user is None:
            raise self.unauthorized()
        return user
