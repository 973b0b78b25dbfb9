"""ASGI guards in front of the whole app (UI, API, files): Host names, protective headers, request size.

Threat model: docs/security.md. Each guard answers with a short JSON error and never reaches the app:

* `HostGuard` — DNS rebinding: a web page the user visits can point its own domain at 127.0.0.1 and drive the API
  from the browser. Requests are served only for the names the server was started for: `localhost` (and
  `*.localhost`), any IP literal (a rebinding attack needs a domain name, so an address is never one), this
  machine's host names (`hostname`, `hostname.local`, its FQDN), `--server-name`, and what the user allows with
  `--allowed-hosts`. With `--share`/`--ngrok` the public tunnel's names are unknown in advance, so any Host is taken
  (the login the app requires there is the guard). Anything else: 421 Misdirected Request naming the flag.
  It also keeps CORS to the origins the user allows: `Access-Control-*` headers (Gradio adds them for every
  localhost origin) are removed from answers to other origins.
* `SecurityHeaders` — `X-Content-Type-Options: nosniff`, `X-Frame-Options: SAMEORIGIN` and
  `Content-Security-Policy: frame-ancestors 'self'` (the UI cannot be framed by another site: clickjacking),
  `Referrer-Policy: same-origin` (prompts in URLs do not leak to other sites); cookies get `HttpOnly` and
  `SameSite=Lax`.
* `BodyLimit` — request bodies above `--max-request-body-mb` (default 128 MiB, A1111 has no limit) are refused with
  413 before they are read: by `Content-Length` at once, and by counting for chunked bodies.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_MB = 128


async def _reject(scope: Scope, send: Send, status: int, error: str, detail: str) -> None:
    """A JSON error answer (HTTP) or a policy close (websocket)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


def _host_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1").strip().lower()
            if host.startswith("["):  # [::1]:7860
                return host[1:host.find("]")] if "]" in host else host
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            # "localhost." is the same DNS name as "localhost" (the root label); browsers send it as typed
            return host[:-1] if host.endswith(".") and not host.endswith("..") else host
    return ""


def machine_names() -> set[str]:
    """This machine's own host names (`hostname`, `hostname.local`, the FQDN)."""
    names = {socket.gethostname().lower()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn().lower())
    names |= {f"{name.split('.')[0]}.local" for name in list(names) if name}
    return {n for n in names if n}


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostGuard:
    """Refuse requests whose Host header names a host this server was not started for (DNS rebinding), and
    cross-site requests that change something (CSRF): a POST/PUT/PATCH/DELETE whose `Origin` is another site than
    the one addressed is refused with 403 unless that origin is allowed by `--cors-allow-origins(-regex)`. Browsers
    send `Origin` with every cross-site POST, so a page on another site cannot interrupt jobs, unload the model or
    stop the server with a form; API scripts (no `Origin`) are unaffected."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str], *, allow_any: bool = False,
                 cors_origins: Iterable[str] = (), cors_regex: str | None = None) -> None:
        self.app = app
        self.allowed = {h.strip().lower() for h in allowed if h and h.strip()}
        self.allow_any = allow_any
        self.cors_origins = {o.strip().rstrip("/").lower() for o in cors_origins if o.strip()}
        self.cors_regex = re.compile(cors_regex) if cors_regex else None

    def origin_allowed(self, scope: Scope) -> bool:
        """Same-origin, CORS-allowed or no Origin header (non-browser clients)."""
        if scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS"):
            return True
        return self.cross_origin_allowed(scope)

    def cross_origin_allowed(self, scope: Scope) -> bool:
        """No `Origin` header, the same origin, or one allowed by `--cors-allow-origins(-regex)` (any method)."""
        headers = {k: v.decode("latin-1") for k, v in scope.get("headers", ()) if k in (b"origin", b"host")}
        origin = headers.get(b"origin", "").strip().rstrip("/").lower()
        if not origin:
            return True
        if origin in self.cors_origins or (self.cors_regex is not None and self.cors_regex.fullmatch(origin)):
            return True
        return urlsplit(origin).netloc == headers.get(b"host", "").strip().lower()

    def allows(self, host: str) -> bool:
        """Rules in the module docstring."""
        if self.allow_any or host in self.allowed or "*" in self.allowed:
            return True
        if host == "localhost" or host.endswith(".localhost") or is_ip_literal(host):
            return True
        return any(pattern.startswith(".") and host.endswith(pattern) for pattern in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = _host_of(scope)
            if host and not self.allows(host):
                await _reject(scope, send, 421, "MisdirectedRequest",
                              f"This server does not answer for the host name {host!r}. If you reach it under "
                              f"that name, start it with --allowed-hosts {host}")
                return
            if scope["type"] == "http" and not self.origin_allowed(scope):
                await _reject(scope, send, 403, "CrossSiteRequest",
                              "A page of another site tried to change something here; refused. To allow a web "
                              "app on another origin, start with --cors-allow-origins <origin>")
                return
            if scope["type"] == "http" and not self.cross_origin_allowed(scope):
                await self.app(scope, receive, _without_cors_headers(send))
                return
        await self.app(scope, receive, send)


def _without_cors_headers(send: Send) -> Send:
    """`send` with every `Access-Control-*` header dropped: Gradio's own CORS middleware answers any `localhost` /
    `127.0.0.1` origin on any port (with credentials), which would let a page of another local web app read the
    UI's config, queue results and output files. Only origins the user allows get CORS (docs/security.md §1)."""

    async def filtered(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                  if not k.lower().startswith(b"access-control-")]
        await send(message)

    return filtered


def _with_cookie_flags(value: bytes) -> bytes:
    lower = value.lower()
    if b"httponly" not in lower:
        value += b"; HttpOnly"
    if b"samesite" not in lower:
        value += b"; SameSite=Lax"
    return value


PROTECTIVE_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """Add the protective headers of the module docstring to every HTTP answer (keeping ones the app set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, _with_cookie_flags(v) if k.lower() == b"set-cookie" else v)
                           for k, v in message.get("headers", [])]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in PROTECTIVE_HEADERS if k not in present]
                csp = [i for i, (k, _) in enumerate(headers) if k.lower() == b"content-security-policy"]
                if not csp:
                    headers.append((b"content-security-policy", b"frame-ancestors 'self'"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """413 for request bodies above `max_bytes` (by Content-Length before reading; by counting otherwise)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return (f"The request body is larger than {self.max_bytes // (1024 * 1024)} MB; send smaller images or "
                "start the server with a larger --max-request-body-mb")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(scope, send, 400, "BadRequest", "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await _reject(scope, send, 413, "PayloadTooLarge", self._detail())
                    return
        seen = 0
        state = {"started": False, "rejected": False}

        async def counting_receive() -> Message:
            nonlocal seen
            if state["rejected"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not state["started"]:
                    # answer 413 now and tell the app the client left, so it stops reading and answers nothing
                    state["rejected"] = True
                    await _reject(scope, send, 413, "PayloadTooLarge", self._detail())
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            if state["rejected"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counting_receive, tracking_send)


INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp",
                          "image/x-icon", "image/vnd.microsoft.icon", "image/tiff", "text/plain", "text/csv",
                          "application/json"})
"""Content types a browser only displays, never runs (raster images, plain text, JSON), plus `audio/*` and
`video/*`: served inline. Every other type (HTML, SVG, XML, JS, CSS, PDF, HTA, MHTML, WML, unknown …) comes back as
a sandboxed download. An allow-list, not a block-list: a type nobody thought of is a download, not a page."""


def is_inline_type(kind: str) -> bool:
    """True for a content type (without parameters, lower case) that may be shown inline (`INLINE_TYPES`)."""
    return kind in INLINE_TYPES or kind.startswith(("audio/", "video/"))


class UploadedFileGuard:
    """Files served through `/file=` and Gradio's `/gradio_api/file=` routes that a browser would execute or
    render as a page (uploaded HTML, SVG, JS …: every type outside `INLINE_TYPES`) are sent as downloads (`Content-Disposition: attachment`) in a sandbox
    (`Content-Security-Policy: sandbox`), so a file a stranger uploaded cannot run script with the app's origin.
    Images keep their real type and display inline. Extension assets (their own JS/CSS from the extension
    folders) are exempt: the page loads them on purpose."""

    def __init__(self, app: ASGIApp, asset_roots: Iterable[str] = ()) -> None:
        self.app = app
        self.asset_roots = tuple(root.rstrip("/") + "/" for root in asset_roots)

    def _is_asset(self, path: str) -> bool:
        target = path.split("file=", 1)[1] if "file=" in path else ""
        return bool(target) and target.startswith(self.asset_roots) and ".." not in target

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or "file=" not in path or self._is_asset(path):
            await self.app(scope, receive, send)
            return

        async def neutralising_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = next((v.decode("latin-1").split(";")[0].strip().lower() for k, v in headers
                             if k.lower() == b"content-type"), "")
                if not is_inline_type(kind):
                    headers = [(k, v) for k, v in headers
                               if k.lower() not in (b"content-disposition", b"content-security-policy")]
                    headers += [(b"content-disposition", b"attachment"),
                                (b"content-security-policy", b"sandbox; default-src 'none'"),
                                (b"x-content-type-options", b"nosniff")]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, neutralising_send)
