"""Training endpoints: ``POST /sdapi/v1/create/embedding``, ``/create/hypernetwork``, ``/train/embedding`` and
``/train/hypernetwork``.

Request fields and the ``{info}`` answers are A1111's (reference §12): ``create/embedding`` takes ``{name,
num_vectors_per_token, overwrite_old, init_text}`` and answers ``{info: "create embedding filename: <path>"}``;
``create/hypernetwork`` takes ``{name, enable_sizes, overwrite_old, layer_structure, activation_func, weight_init,
add_layer_norm, use_dropout, dropout_structure}`` and answers ``{info: "create hypernetwork filename: <path>"}``.
``train/embedding`` takes A1111's fields (``embedding_name, learn_rate, batch_size, gradient_step, data_root,
log_directory, training_width, training_height, varsize, steps, clip_grad_mode, clip_grad_value, shuffle_tags,
tag_drop_out, latent_sampling_method, use_weight, save_embedding_every, template_filename`` and the preview fields
``create_image_every, preview_from_txt2img, preview_prompt, preview_negative_prompt, preview_steps,
preview_sampler_name, preview_cfg_scale, preview_seed, preview_width, preview_height``; ``preview_sampler_index``
is accepted as a sampler name too, ``save_image_with_stored_embedding`` is accepted and ignored), waits until training ends or is interrupted (``POST /interrupt``; progress on
``GET /progress``) and answers ``{info: "train embedding complete: filename: <path> error: None"}`` ("interrupted"
instead of "complete" after an interrupt; the file then holds the step reached, and training the same embedding
again resumes from it). ``train/hypernetwork`` takes the same fields with ``hypernetwork_name`` and
``save_hypernetwork_every`` and answers ``{info: "train hypernetwork complete: filename: <path> error: None"}``. A1111 answers bad input with status 200 and ``info: "create embedding error: …"``; here bad input is a 4xx with
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
from modules.training.hypernetwork_train import TrainHypernetworkOptions, train_hypernetwork_job
from modules.training.tasks import (
    ERROR_STATUS,
    EmbeddingSpec,
    HypernetworkSpec,
    create_embedding_job,
    create_hypernetwork_job,
)
from modules.training.textual_inversion import TrainEmbeddingOptions, train_embedding_job
from modules.training.train_common import PreviewOptions


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


class TrainingRequest(BaseModel):
    """The fields both trainers take (A1111 names and defaults)."""

    learn_rate: str | float = "0.005"
    batch_size: int = 1
    gradient_step: int = 1
    data_root: str = ""
    log_directory: str = "textual_inversion"
    training_width: int = Field(512, ge=8, le=4096)
    training_height: int = Field(512, ge=8, le=4096)
    varsize: bool = False
    steps: int = Field(100000, ge=1)
    clip_grad_mode: str = "disabled"
    clip_grad_value: str | float = "0.1"
    shuffle_tags: bool = False
    tag_drop_out: float = 0.0
    latent_sampling_method: str = "once"
    use_weight: bool = False
    create_image_every: int = Field(500, ge=0)
    template_filename: str = "style_filewords.txt"
    preview_from_txt2img: bool = False
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = Field(20, ge=1, le=1000)
    preview_sampler_name: str | None = None
    preview_sampler_index: str | None = None
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    preview_width: int = Field(512, ge=64, le=8192)
    preview_height: int = Field(512, ge=64, le=8192)

    def preview(self) -> PreviewOptions:
        """The preview options (A1111 sends the sampler as ``preview_sampler_name`` or ``preview_sampler_index``)."""
        sampler = self.preview_sampler_name or self.preview_sampler_index or "Euler a"
        return PreviewOptions(self.create_image_every, self.preview_from_txt2img, self.preview_prompt,
                              self.preview_negative_prompt, self.preview_steps, sampler, self.preview_cfg_scale,
                              self.preview_seed, self.preview_width, self.preview_height)

    def options_for(self, cls: Any) -> Any:
        """``cls`` (a trainer's options dataclass) from the request's fields."""
        names = set(cls.__dataclass_fields__) - {"preview"}
        data = self.model_dump()
        data["learn_rate"], data["clip_grad_value"] = str(self.learn_rate), str(self.clip_grad_value)
        return cls(**{k: v for k, v in data.items() if k in names}, preview=self.preview())


class TrainEmbeddingRequest(TrainingRequest):
    """A1111 ``train_embedding`` arguments (``save_image_with_stored_embedding`` is accepted and ignored)."""

    embedding_name: str
    save_embedding_every: int = Field(500, ge=0)
    save_image_with_stored_embedding: bool = True


class TrainHypernetworkRequest(TrainingRequest):
    """A1111 ``train_hypernetwork`` arguments."""

    hypernetwork_name: str
    learn_rate: str | float = "0.00001"
    save_hypernetwork_every: int = Field(500, ge=0)


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


def finished_value_or_partial(job: Job, what: str) -> Any:
    """Like :func:`finished_value`, but an interrupted job that returned (training saves what it reached) counts."""
    if job.status is JobStatus.INTERRUPTED and job.result(timeout=0) is not None:
        return job.result(timeout=0)
    return finished_value(job, what)


def checked_name(name: str) -> None:
    """400 for a name with nothing usable in it (before anything is queued)."""
    try:
        clean_name(name)
    except CreateError as exc:
        raise ApiError(400, str(exc), field="name") from None


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """create/embedding, create/hypernetwork, train/embedding, train/hypernetwork."""

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

    async def train_embedding(req: TrainEmbeddingRequest) -> InfoResponse:
        """Train an embedding on the queue until it ends or is interrupted (A1111 ``train_embedding``); a client
        that goes away does not stop it (training saves its progress; Interrupt does)."""
        options = req.options_for(TrainEmbeddingOptions)
        job = submit(services, train_embedding_job, options, "train_embedding")
        await wait_for_job(job, None)
        result = finished_value_or_partial(job, "train embedding")
        return InfoResponse(info=result.info)

    async def train_hypernetwork(req: TrainHypernetworkRequest) -> InfoResponse:
        """Train a hypernetwork on the queue until it ends or is interrupted (A1111 ``train_hypernetwork``)."""
        options = req.options_for(TrainHypernetworkOptions)
        job = submit(services, train_hypernetwork_job, options, "train_hypernetwork")
        await wait_for_job(job, None)
        result = finished_value_or_partial(job, "train hypernetwork")
        return InfoResponse(info=result.info)

    router.add_api_route("/train/hypernetwork", train_hypernetwork, methods=["POST"], response_model=InfoResponse,
                         summary="train/hypernetwork")
    router.add_api_route("/train/embedding", train_embedding, methods=["POST"], response_model=InfoResponse,
                         summary="train/embedding")
    router.add_api_route("/create/embedding", create_embedding, methods=["POST"], response_model=InfoResponse,
                         summary="create/embedding")
    router.add_api_route("/create/hypernetwork", create_hypernetwork, methods=["POST"], response_model=InfoResponse,
                         summary="create/hypernetwork")
