"""The `/sdapi/v1` API: one router built from the topic modules, guarded by one auth dependency.

A1111 (`modules/api/api.py`): the API is mounted with `--api` (on the UI server) or `--nowebui` (alone); every route
is added with `Depends(auth)` when `--api-auth` is set; `--api-log` logs each request's time, status, method, path,
client and duration; `/sdapi/v1/server-kill|restart|stop` exist only with `--api-server-stop`. Routes live in
`routes_*.py` by topic; each module's `add_routes(router, services)` adds its endpoints to the shared router.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from modules.api.auth import AuthGuard
from modules.api.errors import ApiRoute, install_exception_handlers
from modules.processing.context import AppContext

log = logging.getLogger(__name__)

API_PREFIX = "/sdapi/v1"
ServerAction = Callable[[str], None]
"""Called with "stop", "restart" or "kill" by the server-control endpoints."""


@dataclass
class ApiServices:
    """What the route handlers reach: the app context plus server-level switches."""

    ctx: AppContext
    allow_server_stop: bool = False
    server_action: ServerAction | None = None
    restartable: bool = False
    logins_required: bool = False
    """True when the API checks logins (`--api-auth`/`--gradio-auth`): then the login names the job's user."""

    def setting(self, key: str, default: Any = None) -> Any:
        """A global setting's current value, `default` for keys the store does not know."""
        try:
            return self.ctx.settings.get(key)
        except Exception:
            return default

    def settings_view(self) -> dict[str, Any]:
        """Every setting's current value (for image encoding and URL rules)."""
        return dict(self.ctx.settings.values())



def create_api_router(services: ApiServices, guard: AuthGuard) -> APIRouter:
    """The `/sdapi/v1` router with every route, each answering errors as A1111-style JSON."""
    from modules.api import (
        routes_generation,
        routes_images,
        routes_info,
        routes_misc,
        routes_networks,  # extra networks: /loras, /embeddings, /hypernetworks
        routes_options,
        routes_progress,
        routes_train,  # create/embedding, create/hypernetwork, train/embedding
    )

    router = APIRouter(prefix=API_PREFIX, route_class=ApiRoute, dependencies=[Depends(guard)])
    for module in (routes_generation, routes_images, routes_progress, routes_options, routes_info, routes_misc,
                   routes_networks, routes_train):
        module.add_routes(router, services)
    return router


def mount_api(app: FastAPI, services: ApiServices, guard: AuthGuard, *, api_log: bool = False) -> None:
    """Add the API routes (and JSON error handlers, and the request log with `--api-log`) to `app`."""
    app.include_router(create_api_router(services, guard))
    install_exception_handlers(app)
    if api_log:
        app.middleware("http")(_log_api_request)


async def _log_api_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """`--api-log`: one line per API request, as A1111's `api_middleware` prints it."""
    if not request.url.path.startswith(API_PREFIX):
        return await call_next(request)
    started = time.perf_counter()
    response = await call_next(request)
    client = request.client.host if request.client else "-"
    log.info("API %s %s %s %s %s %.3fs", time.strftime("%Y-%m-%d %H:%M:%S"), response.status_code, request.method,
             request.url.path, client, time.perf_counter() - started)
    return response
