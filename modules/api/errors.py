"""Errors of the HTTP API and their JSON responses.

A1111 (`modules/api/api.py`, `api_middleware`) answers every failed API call with JSON
`{error: <exception type>, detail: <message>, body: <request body or "">, errors: <str(exception)>}` and status 500
unless the exception carries one; it never shows an HTML traceback page, and the server keeps serving. The same
shape is kept here with more precise statuses so clients can tell their mistakes from ours:

* request validation (pydantic) → 422, `detail` names the first bad field, `errors` lists every problem;
* `ParamError` (a params bound or kind) → 422 naming the field;
* unknown sampler → 400 "Sampler not found: …" (A1111 1.10's `validate_sampler_name`);
* unknown setting key, unknown or unloadable checkpoint → 400, bad setting value → 422, frozen setting → 403;
* `ApiError(status, message)` → that status (404 "Init image not found", 501 for features not built yet);
* anything else → 500 with the exception's type and message; the traceback goes to the server log only.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from modules.processing.params import ParamError
from modules.settings import SettingsError, SettingsFrozenError, SettingValueError, UnknownSettingError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a message for the client; `field` names the request field when there is one."""

    def __init__(self, status_code: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.field = field


class FeatureNotAvailableError(ApiError):
    """The endpoint exists in A1111 but its feature is not built here yet: 501 with a message saying so."""

    def __init__(self, what: str, reason: str = "not built into this version of the web UI yet") -> None:
        super().__init__(501, f"{what}: {reason}")


def _loc_name(loc: Sequence[Any]) -> str:
    """`("body", "init_images", 0)` → `init_images[0]`; the leading "body"/"query" is dropped."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _validation_payload(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        item = {"loc": [str(p) for p in err.get("loc", ())], "field": _loc_name(err.get("loc", ())),
                "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        if "input" in err and isinstance(err["input"], str | int | float | bool | type(None)):
            item["input"] = _shorten(err["input"])
        errors.append(item)
    if not errors:
        return "invalid request", errors
    first = errors[0]
    got = f" (got {json.dumps(first['input'])[:80]})" if "input" in first else ""
    more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['msg']}{got}{more}", errors


def _status_and_detail(exc: BaseException) -> tuple[int, str, Any, dict[str, str] | None]:
    """(status, detail, errors, headers) for any exception."""
    if isinstance(exc, RequestValidationError):
        detail, problems = _validation_payload(exc)
        return 422, detail, problems, None
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return exc.status_code, detail, detail, getattr(exc, "headers", None)
    if isinstance(exc, ApiError):
        errors: Any = [{"field": exc.field, "msg": exc.message}] if exc.field else exc.message
        return exc.status_code, exc.message, errors, None
    if isinstance(exc, ParamError):
        return 422, str(exc), [{"field": exc.field, "msg": exc.message}], None
    if type(exc).__name__ == "UnknownSamplerError":  # modules.sampling.registry; matched by name, no import
        return 400, str(exc), str(exc), None
    if isinstance(exc, SettingsFrozenError):
        return 403, str(exc), str(exc), None
    if isinstance(exc, UnknownSettingError):
        return 400, str(exc), str(exc), None
    if isinstance(exc, SettingValueError | SettingsError):
        return 422, str(exc), str(exc), None
    if type(exc).__name__ in ("UnknownCheckpointError", "CheckpointLoadError", "UnknownArchitectureError"):
        return 400, str(exc), str(exc), None
    return 500, str(exc) or type(exc).__name__, str(exc), None


def error_response(request: Request | None, exc: BaseException) -> JSONResponse:
    """The JSON error response for `exc` in A1111's shape (`error`, `detail`, `body`, `errors`)."""
    status, detail, errors, headers = _status_and_detail(exc)
    if status == 500:
        where = f"{request.method} {request.url.path}" if request is not None else "API"
        log.error("%s failed: %s: %s", where, type(exc).__name__, exc, exc_info=exc)
    name = "ValidationError" if isinstance(exc, RequestValidationError) else type(exc).__name__
    body = getattr(exc, "body", None) if isinstance(exc, RequestValidationError) else None
    if body is not None and not isinstance(body, str | dict | list):
        body = None
    content = {"error": name, "detail": detail, "body": _shorten(body), "errors": errors}
    return JSONResponse(content, status_code=status, headers=headers)


def _shorten(body: Any) -> Any:
    """Request bodies can hold megabytes of base64; echo only short strings back."""
    if isinstance(body, dict):
        return {k: _shorten(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_shorten(v) for v in body[:16]]
    if isinstance(body, str) and len(body) > 200:
        return body[:200] + f"… ({len(body)} characters)"
    if isinstance(body, float) and not math.isfinite(body):
        return str(body)  # JSON has no inf/NaN: echo `1e309` as "inf" instead of failing with a 500
    return body if body is not None else ""


class ApiRoute(APIRoute):
    """An `APIRoute` whose handler turns every exception into an A1111-style JSON error response.

    Catching inside the route (rather than in Starlette's outermost error middleware) means an unexpected error is
    answered and logged once and never propagates to the server, so the next request is served normally.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return error_response(request, exc)

        return guarded


def install_exception_handlers(app: FastAPI) -> None:
    """JSON errors for failures outside our routes' handlers (unknown paths under the API, malformed requests)."""

    async def handle(request: Request, exc: Exception) -> Response:
        return error_response(request, exc)

    for kind in (RequestValidationError, ApiError, ParamError, SettingsError):
        app.add_exception_handler(kind, handle)
