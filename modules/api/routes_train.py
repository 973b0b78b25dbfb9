"""Training endpoints: ``POST /sdapi/v1/create/embedding``, ``/create/hypernetwork`` and ``/train/embedding``.

Request fields and the ``{info}`` answers are A1111's (reference §12): ``create/embedding`` takes ``{name,
num_vectors_per_token, overwrite_old, init_text}`` and answers ``{info: "create embedding filename: <path>"}``;
``create/hypernetwork`` takes ``{name, enable_sizes, overwrite_old, layer_structure, activation_func, weight_init,
add_layer_norm, use_dropout, dropout_structure}`` and answers ``{info: "create hypernetwork filename: <path>"}``.
A1111 answers bad input with status 200 and ``info: "create embedding error: …"``; here bad input is a 4xx with
the usual error JSON (400 invalid, 409 file exists without ``overwrite_old``), so clients can tell. Work runs on
the shared job queue (429 when it is full).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from modules.api.app import ApiServices
from modules.api.errors import ApiError
from modules.api.routes_generation import wait_for_job
from modules.runtime.jobs import Job, JobFailedError, JobStatus, QueueFullError
from modules.training.create_networks import DEFAULT_HYPERNETWORK_SIZES, CreateError, clean_name
from modules.training.tasks import (
    ERROR_STATUS,
    EmbeddingSpec,
    HypernetworkSpec,
    create_embedding_job,
    create_hypernetwork_job,
)


class CreateEmbeddingRequest(BaseModel):
    """A1111 ``create_embedding`` arguments."""

    name: str
    num_vectors_per_token: int = Field(1, ge=1, le=75)
    overwrite_old: bool = False
    init_text: str = "*"


class CreateHypernetworkRequest(BaseModel):
    """A1111 ``create_hypernetwork`` arguments."""

    name: str
    enable_sizes: list[int | str] = Field(default_factory=lambda: list[int | str](DEFAULT_HYPERNETWORK_SIZES))
    overwrite_old: bool = False
    layer_structure: str | list[float] | None = None
    activation_func: str | None = None
    weight_init: str | None = None
    add_layer_norm: bool = False
    use_dropout: bool = False
    dropout_structure: str | list[float] | None = None


class InfoResponse(BaseModel):
    """A1111 ``CreateResponse`` / ``TrainResponse``."""

    info: str


def submit(services: ApiServices, fn: Any, spec: Any, kind: str) -> Job:
    """Queue ``fn(ctx, spec)`` (429 when the queue is full)."""
    try:
        return services.ctx.jobs.submit(fn, services.ctx, spec, kind=kind)
    except QueueFullError as exc:
        raise ApiError(429, str(exc)) from None


def finished_value(job: Job, what: str) -> Any:
    """The job's return value; its error as a 4xx/500 API error; 409 when it was interrupted."""
    if job.status is JobStatus.INTERRUPTED:
        raise ApiError(409, f"{what} was interrupted")
    try:
        return job.result(timeout=0)
    except JobFailedError as exc:
        raise ApiError(ERROR_STATUS.get(exc.error.type, 500), f"{what} failed: {exc.error.message}") from None


def checked_name(name: str) -> None:
    """400 for a name with nothing usable in it (before anything is queued)."""
    try:
        clean_name(name)
    except CreateError as exc:
        raise ApiError(400, str(exc), field="name") from None


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """create/embedding, create/hypernetwork."""

    async def create_embedding(req: CreateEmbeddingRequest, request: Request) -> InfoResponse:
        """Create an empty textual-inversion embedding (A1111 ``create_embedding``)."""
        checked_name(req.name)
        spec = EmbeddingSpec(req.name, req.num_vectors_per_token, req.overwrite_old, req.init_text)
        job = submit(services, create_embedding_job, spec, "create_embedding")
        await wait_for_job(job, request)
        return InfoResponse(info=f"create embedding filename: {finished_value(job, 'create embedding')}")

    async def create_hypernetwork(req: CreateHypernetworkRequest, request: Request) -> InfoResponse:
        """Create a hypernetwork with fresh weights (A1111 ``create_hypernetwork``)."""
        checked_name(req.name)
        spec = HypernetworkSpec(req.name, list(req.enable_sizes), req.overwrite_old, req.layer_structure or "1, 2, 1",
                                req.activation_func, req.weight_init, req.add_layer_norm, req.use_dropout,
                                req.dropout_structure)
        job = submit(services, create_hypernetwork_job, spec, "create_hypernetwork")
        await wait_for_job(job, request)
        return InfoResponse(info=f"create hypernetwork filename: {finished_value(job, 'create hypernetwork')}")

    router.add_api_route("/create/embedding", create_embedding, methods=["POST"], response_model=InfoResponse,
                         summary="create/embedding")
    router.add_api_route("/create/hypernetwork", create_hypernetwork, methods=["POST"], response_model=InfoResponse,
                         summary="create/hypernetwork")
