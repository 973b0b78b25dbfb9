"""Server settings derived from flags: bind address, port, login credentials.

A1111 facts: `--port` unset means 7860 (Gradio's default; the env var `GRADIO_SERVER_PORT` also sets it) or 7861 with
`--nowebui`; the bind name is `--server-name`, else `0.0.0.0` with `--listen`, else `127.0.0.1`. Credentials come from
`--gradio-auth` (comma-separated `user:password` pairs, each split at its first `:`) and from every line of
`--gradio-auth-path` in the same format (`webui.py get_gradio_auth_creds`); `--api-auth` has the same format.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_UI_PORT = 7860
DEFAULT_API_PORT = 7861


class AuthFormatError(ValueError):
    """A credential that is not `user:password`, or an unreadable credentials file."""


def server_name(flags: Any) -> str:
    """Host to bind: `--server-name`, else 0.0.0.0 with `--listen`, else 127.0.0.1."""
    if flags.server_name:
        return str(flags.server_name)
    return "0.0.0.0" if flags.listen else "127.0.0.1"


def server_port(flags: Any, env: Mapping[str, str] | None = None) -> int:
    """Port to bind: `--port`, else `GRADIO_SERVER_PORT` (UI mode), else 7860 (UI) or 7861 (`--nowebui`)."""
    if flags.port is not None:
        return int(flags.port)
    if flags.nowebui:
        return DEFAULT_API_PORT
    value = (env or {}).get("GRADIO_SERVER_PORT")
    if value:
        try:
            return int(value)
        except ValueError:
            raise AuthFormatError(f"GRADIO_SERVER_PORT must be a port number, got {value!r}") from None
    return DEFAULT_UI_PORT


def parse_credentials(text: str, source: str) -> list[tuple[str, str]]:
    """`"u1:p1,u2:p2"` → `[("u1", "p1"), ("u2", "p2")]`; blanks skipped; a pair without `:` is an error naming it."""
    creds: list[tuple[str, str]] = []
    for line in text.splitlines():
        for item in line.split(","):
            item = item.strip()
            if not item:
                continue
            user, sep, password = item.partition(":")
            if not sep or not user:
                raise AuthFormatError(f"{source}: {item!r} is not in the form user:password")
            creds.append((user, password))
    return creds


def ui_credentials(flags: Any) -> list[tuple[str, str]]:
    """All UI logins from `--gradio-auth` and `--gradio-auth-path`."""
    creds: list[tuple[str, str]] = []
    if flags.gradio_auth:
        creds += parse_credentials(flags.gradio_auth, "--gradio-auth")
    if flags.gradio_auth_path:
        path = Path(flags.gradio_auth_path)
        try:
            text = path.read_text(encoding="utf8")
        except OSError as exc:
            raise AuthFormatError(f"--gradio-auth-path: cannot read {path}: {exc.strerror or exc}") from None
        creds += parse_credentials(text, f"--gradio-auth-path {path}")
    return creds


def api_credentials(flags: Any) -> dict[str, str]:
    """API logins from `--api-auth` as user → password."""
    return dict(parse_credentials(flags.api_auth, "--api-auth")) if flags.api_auth else {}
