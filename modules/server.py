"""The HTTP server: FastAPI app with the API, the Gradio UI, login, CORS, file serving; binding and running uvicorn.

A1111 behaviour kept (`webui.py`, `modules/api/api.py`, reference §1.1 and §12):
* the REST API is mounted under `/sdapi/v1` with `--api` or `--nowebui` (API only; default port 7861);
* `--gradio-auth u:p[,u2:p2]` / `--gradio-auth-path FILE` guard the UI, `--api-auth` the API (HTTP Basic, as A1111).
  Two deliberate differences: the UI login is HTTP Basic for every route (pages, Gradio's routes, files) handed
  to Gradio through its `auth_dependency`, because Gradio's login page shows the app's API description to anonymous
  visitors; and with only `--gradio-auth` the API accepts the same logins (A1111 leaves it open);
* `--subpath P` serves everything under `/P` (A1111 mounts the UI at `/P` and redirects `/` there);
* `--cors-allow-origins a,b` / `--cors-allow-origins-regex RE`: CORS with all methods and headers, credentials on;
* `--tls-keyfile` + `--tls-certfile`: HTTPS through uvicorn;
* files: only the output folders, the temp folder and static assets of extensions are ever served
  (`/file=<path>`, A1111's URL form, and Gradio's own file route through `allowed_paths`); traversal out of them
  (`..`, symlinks, absolute paths) is refused with 403;
* without `--port`, a busy 7860 moves to the next free port up to 7959 as Gradio does; with `--port` (or in API-only
  mode) a busy port is a one-line error naming the port and suggesting `--port` with a free one.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.requests import HTTPConnection
from starlette.responses import Response

from modules.api.app import API_PREFIX, ApiServices, mount_api
from modules.api.auth import AuthGuard, LoginThrottle
from modules.cli.server import api_credentials, server_name, server_port, ui_credentials
from modules.http_guards import BodyLimit, HostGuard, SecurityHeaders, UploadedFileGuard, machine_names
from modules.processing.context import AppContext

log = logging.getLogger(__name__)

GRADIO_PORT_RANGE = 100
"""Gradio tries the requested port and the next 99 (7860–7959) when the port was not given explicitly."""
EXTENSION_ASSET_SUFFIXES = frozenset({".js", ".mjs", ".css", ".map", ".png", ".jpg", ".jpeg", ".gif", ".webp",
                                      ".svg", ".ico", ".woff", ".woff2", ".ttf", ".otf", ".csv", ".txt", ".json"})
"""Static files an extension folder may serve (scripts, styles, images, fonts, and the data files extensions' page
scripts fetch: csv, txt, json — tag lists, wildcards); its Python code, configs and models never are."""
EXTENSION_DATA_SUFFIXES = frozenset({".csv", ".txt", ".json"})
"""Data files also served from the install's `tmp/` folder, where A1111 extensions write what their page script
reads back as `file=tmp/<name>` (a1111-sd-webui-tagcomplete's `tmp/tagAutocompletePath.txt`; A1111 serves paths
relative to its install folder)."""


class PortInUseError(OSError):
    """The port is taken; `str()` is the one-line message for the console."""

    def __init__(self, host: str, port: int, suggestion: int | None) -> None:
        from modules.runtime.diagnostics import port_in_use_message

        super().__init__(errno.EADDRINUSE, port_in_use_message(host, port, suggestion))
        self.host, self.port, self.suggestion = host, port, suggestion

    def __str__(self) -> str:
        return str(self.strerror)


# ---------------------------------------------------------------------------------------------- sockets

def _try_bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if sys.platform != "win32":  # on Windows SO_REUSEADDR would let us steal a port in use
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _free_port_after(host: str, port: int) -> int | None:
    for candidate in range(port + 1, min(port + GRADIO_PORT_RANGE, 65536)):
        try:
            _try_bind(host, candidate).close()
            return candidate
        except OSError:
            continue
    return None


def bind_server_socket(host: str, port: int, *, scan: bool = False) -> socket.socket:
    """A listening socket on (host, port); with `scan`, the next free port of Gradio's range instead of an error.

    Raises `PortInUseError` (one-line message naming the port and `--port`) when the port is taken.
    """
    last = min(port + GRADIO_PORT_RANGE, 65536) if scan else port + 1
    for candidate in range(port, last):
        try:
            sock = _try_bind(host, candidate)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1)):
                raise
            if exc.errno == errno.EACCES and candidate < 1024:
                raise OSError(exc.errno, f"port {candidate} needs administrator rights (ports below 1024); "
                                         "start with --port 7860 or another port above 1023") from None
            continue
        if candidate != port:
            log.warning("Port %d is in use; using port %d instead", port, candidate)
        return sock
    raise PortInUseError(host, port, _free_port_after(host, port))


# ---------------------------------------------------------------------------------------------- files

def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def output_roots(ctx: AppContext) -> list[Path]:
    """Folders whose files may be served: the outputs dir, every output-dir setting, the temp dir."""
    paths = ctx.paths
    roots = [Path(paths.outputs_dir)]
    values = ctx.settings.values()
    for key in ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
                "outdir_grids", "outdir_txt2img_grids", "outdir_img2img_grids", "outdir_save",
                "outdir_init_images"):
        value = values.get(key)
        if isinstance(value, str) and value.strip():
            roots.append(paths.resolve_user_path(value))
    roots.append(temp_dir(ctx))
    return [_resolved(r) for r in roots]


def temp_dir(ctx: AppContext) -> Path:
    """The `temp_dir` setting, else Gradio's temp dir (`GRADIO_TEMP_DIR`, default `<tmp>/gradio`)."""
    value = ctx.settings.values().get("temp_dir")
    if isinstance(value, str) and value.strip():
        return ctx.paths.resolve_user_path(value)
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def servable_file(ctx: AppContext, requested: str) -> Path | None:
    """The real file `requested` names if it lies in an output/temp folder or is an extension's static asset."""
    if "\x00" in requested:
        return None
    target = _resolved(ctx.paths.resolve_user_path(requested))
    if not target.is_file():
        return None
    if any(target.is_relative_to(root) for root in output_roots(ctx)):
        return target
    if target.suffix.lower() in EXTENSION_ASSET_SUFFIXES:
        for root in (ctx.paths.extensions_dir, ctx.paths.extensions_builtin_dir):
            if target.is_relative_to(_resolved(root)):
                return target
    install_tmp = _resolved(ctx.paths.script_dir / "tmp")
    if target.suffix.lower() in EXTENSION_DATA_SUFFIXES and target.is_relative_to(install_tmp):
        return target
    return None


# ---------------------------------------------------------------------------------------------- login

class LoginRequired:
    """ASGI middleware: with UI logins set, every request (HTTP and websocket) outside the API needs them.

    Gradio's own login form cannot be used as the guard: its login page embeds the app's API description for
    anonymous visitors. So pages, Gradio's config/queue/upload/file routes and `/file=` all answer 401 with
    `WWW-Authenticate: Basic` (the browser asks for the login once and sends it with every request); the API
    routes and docs are passed through to their own guard (which accepts the same logins unless `--api-auth`).
    """

    def __init__(self, app: Any, guard: AuthGuard, passthrough: tuple[str, ...]) -> None:
        self.app = app
        self.guard = guard
        self.passthrough = passthrough

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or not self.guard.enabled:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if path.startswith(self.passthrough) or self.guard.user(HTTPConnection(scope)) is not None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "login required"})
            return
        error = self.guard.refusal(HTTPConnection(scope))
        response = JSONResponse({"error": "Unauthorized" if error.status_code == 401 else "TooManyRequests",
                                 "detail": error.detail}, status_code=error.status_code, headers=error.headers)
        await response(scope, receive, send)


# ---------------------------------------------------------------------------------------------- app

def build_app(ctx: AppContext, ui: Any = None, *, server_action: Callable[[str], None] | None = None,
              env: Mapping[str, str] | None = None) -> FastAPI:
    """The complete ASGI app for `ctx.flags`: API (with `--api`/`--nowebui`), UI `ui` (a Gradio Blocks) at `/`."""
    flags = ctx.flags
    env = os.environ if env is None else env
    ui_logins = dict(ui_credentials(flags))
    api_logins = api_credentials(flags)
    throttle = LoginThrottle()  # one brake for both logins, so alternating UI/API guesses gain nothing
    api_guard = AuthGuard(api_logins or ui_logins, realm="Stable Diffusion API", throttle=throttle)
    ui_guard = AuthGuard(ui_logins, realm="Stable Diffusion", throttle=throttle)
    with_ui = ui is not None and not flags.nowebui

    app = FastAPI(title="Stable Diffusion web UI API", docs_url=None, redoc_url=None, openapi_url=None)
    if flags.api or flags.nowebui:
        services = ApiServices(ctx, allow_server_stop=bool(flags.api_server_stop), server_action=server_action,
                               restartable=bool(env.get("SD_WEBUI_RESTART")), logins_required=api_guard.enabled)
        mount_api(app, services, api_guard, api_log=bool(flags.api_log))
        _add_docs(app, api_guard)
    if with_ui:
        _add_file_route(app, ctx, ui_guard)
        _mount_ui(app, ctx, ui, ui_guard)
        app.add_middleware(LoginRequired, guard=ui_guard, passthrough=(API_PREFIX, "/docs", "/openapi.json"))
    elif not (flags.api or flags.nowebui):
        log.warning("Neither the UI nor the API is enabled: only a status page is served")
    if not with_ui:
        @app.get("/", include_in_schema=False, dependencies=[Depends(api_guard)])
        def root() -> JSONResponse:
            return JSONResponse({"message": "Stable Diffusion web UI API server; see /docs"})
    _add_cors(app, flags)
    served = _under_subpath(app, flags.subpath) if flags.subpath else app
    _add_guards(served, flags, [str(_resolved(ctx.paths.extensions_dir)),
                                str(_resolved(ctx.paths.extensions_builtin_dir))])
    return served


def _add_guards(app: FastAPI, flags: Any, asset_roots: list[str]) -> None:
    """Host names, request size, protective headers and uploaded active content for every route
    (modules/http_guards.py)."""
    app.add_middleware(UploadedFileGuard, asset_roots=asset_roots)
    allowed = [*_split(flags.allowed_hosts), *machine_names()]
    if flags.server_name:
        allowed.append(str(flags.server_name))
    app.add_middleware(HostGuard, allowed=allowed, allow_any=bool(flags.share or flags.ngrok),
                       cors_origins=_split(flags.cors_allow_origins), cors_regex=flags.cors_allow_origins_regex)
    app.add_middleware(BodyLimit, max_bytes=max(0, int(flags.max_request_body_mb or 0)) * 1024 * 1024)
    app.add_middleware(SecurityHeaders)


def _add_docs(app: FastAPI, guard: AuthGuard) -> None:
    """`/docs` and `/openapi.json` behind the same login as the API (FastAPI's defaults would be open)."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(guard)])
    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(guard)])
    def docs(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="Stable Diffusion web UI API")


def _add_file_route(app: FastAPI, ctx: AppContext, guard: AuthGuard) -> None:
    """`/file=<path>`: outputs, temp and extension assets only. Anything else answers exactly like a missing file
    (404, same body), so the route cannot be used to learn which files exist on the machine."""

    @app.api_route("/file={path:path}", methods=["GET", "HEAD"], include_in_schema=False,
                   dependencies=[Depends(guard)])
    def serve_file(path: str) -> Response:
        target = servable_file(ctx, path)
        if target is None:
            return JSONResponse({"error": "FileNotFound",
                                 "detail": "File not found (only output, temp and extension asset files are served)"},
                                status_code=404)
        return FileResponse(target, headers={"Cache-Control": "no-cache"})


def _mount_ui(app: FastAPI, ctx: AppContext, ui: Any, guard: AuthGuard) -> None:
    """Mount the Gradio Blocks at `/` with the `gradio_theme` theme (`modules.ui.theme`); Gradio learns the user
    from our Basic login (`auth_dependency`)."""
    import gradio as gr

    from modules.ui.theme import load_theme

    allowed = [str(p) for p in output_roots(ctx)]
    blocked = [str(ctx.paths.models_dir), str(ctx.paths.settings_file), str(ctx.paths.data_dir / "config.json"),
               str(ctx.paths.script_dir / "modules")]
    gr.mount_gradio_app(app, ui, path="/", allowed_paths=allowed, blocked_paths=blocked,
                        auth_dependency=guard.user if guard.enabled else None, theme=load_theme(ctx))


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _add_cors(app: FastAPI, flags: Any) -> None:
    origins = _split(flags.cors_allow_origins)
    regex = flags.cors_allow_origins_regex
    if origins or regex:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_origin_regex=regex or None,
                           allow_methods=["*"], allow_headers=["*"], allow_credentials=True)


def _under_subpath(app: FastAPI, subpath: str) -> FastAPI:
    """Serve `app` at `/<subpath>` and redirect `/` there (A1111 `--subpath`)."""
    prefix = "/" + subpath.strip("/")
    outer = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @outer.get("/", include_in_schema=False)
    def to_subpath() -> RedirectResponse:
        return RedirectResponse(prefix + "/")

    outer.mount(prefix, app)
    return outer


# ---------------------------------------------------------------------------------------------- running

class ServerHandle:
    """The running uvicorn server; `action("stop" | "restart" | "kill")` is what the server-control routes call."""

    def __init__(self, restart_file: Path | None = None) -> None:
        self.server: Any = None
        self.restart_file = restart_file
        self.exit_code = 0
        self.on_signal: Callable[[], None] | None = None
        """Called when Ctrl+C / SIGTERM arrives, before the shutdown starts (`dump_stacks_on_signal`)."""

    def action(self, what: str) -> None:
        if what == "restart" and self.restart_file is not None:
            self.restart_file.parent.mkdir(parents=True, exist_ok=True)
            self.restart_file.touch()
        if what == "kill":
            threading.Timer(0.2, os._exit, args=(0,)).start()
            return
        if self.server is not None:
            threading.Timer(0.2, setattr, args=(self.server, "should_exit", True)).start()


def run_server(app: FastAPI, sock: socket.socket, flags: Any, handle: ServerHandle | None = None) -> int:
    """Serve `app` on the bound socket until stopped (Ctrl+C or server-stop); returns the exit code."""
    import uvicorn

    tls = bool(flags.tls_keyfile and flags.tls_certfile)
    config = uvicorn.Config(app, log_level="warning", timeout_keep_alive=int(flags.timeout_keep_alive or 30),
                            ssl_keyfile=flags.tls_keyfile if tls else None,
                            ssl_certfile=flags.tls_certfile if tls else None)
    server = uvicorn.Server(config)
    if handle is not None:
        handle.server = server
        if handle.on_signal is not None:
            on_signal, graceful = handle.on_signal, server.handle_exit

            def handle_exit(sig: int, frame: Any) -> None:  # uvicorn installs this for SIGINT/SIGTERM
                on_signal()
                graceful(sig, frame)

            server.handle_exit = handle_exit  # type: ignore[method-assign]
    server.run(sockets=[sock])
    return handle.exit_code if handle is not None else 0


def local_url(flags: Any, sock: socket.socket) -> str:
    """`http(s)://host:port/subpath/` for the console line A1111 prints ("Running on local URL: …")."""
    host, port = sock.getsockname()[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "https" if flags.tls_keyfile and flags.tls_certfile else "http"
    sub = "/" + flags.subpath.strip("/") if flags.subpath else ""
    return f"{scheme}://{shown}:{port}{sub}/"


def bind_for_flags(flags: Any, env: Mapping[str, str] | None = None) -> socket.socket:
    """Bind the socket the flags ask for (Gradio's port scan only when no port was given in UI mode)."""
    env = os.environ if env is None else env
    scan = not flags.nowebui and flags.port is None and not env.get("GRADIO_SERVER_PORT")
    return bind_server_socket(server_name(flags), server_port(flags, env), scan=scan)
