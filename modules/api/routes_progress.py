"""`GET /sdapi/v1/progress`, `POST /sdapi/v1/interrupt`, `POST /sdapi/v1/skip`.

A1111 facts (reference §12): progress is `{progress 0–1, eta_relative, state: {skipped, interrupted,
stopping_generation, job, job_count, job_timestamp, job_no, sampling_step, sampling_steps}, current_image, textinfo}`;
`current_image` is the latest live preview as raw base64 (null when there is none or with
`skip_current_image=true`); when idle the progress is 0. `interrupt` answers `{}`, `skip` answers null. Both act on
the running job of the shared queue (the UI's buttons do the same).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from modules.api.app import ApiServices
from modules.api.images_b64 import encode_image


class ProgressResponse(BaseModel):
    progress: float = Field(description="Fraction done, 0 to 1")
    eta_relative: float = Field(description="Estimated seconds left (0 while unknown)")
    state: dict[str, Any] = Field(description="The running job's state counters")
    current_image: str | None = Field(None, description="Latest live preview, raw base64 PNG")
    textinfo: str | None = Field(None, description="Status text")


def progress(services: ApiServices, skip_current_image: bool = False) -> ProgressResponse:
    """The running job's progress (A1111 `progressapi`)."""
    info = dict(services.ctx.jobs.progress_info())
    image = info.pop("current_image", None)
    encoded = None
    if image is not None and not skip_current_image:
        encoded = image if isinstance(image, str) else encode_image(image, None, {}, "png")
    eta = info.get("eta_relative")
    return ProgressResponse(progress=float(info.get("progress") or 0.0), eta_relative=float(eta or 0.0),
                            state=dict(info.get("state") or {}), current_image=encoded,
                            textinfo=info.get("textinfo"))


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """progress, interrupt, skip."""

    # async: these run on the event loop, never waiting for a worker thread behind queued generation requests
    async def progress_route(skip_current_image: bool = False) -> ProgressResponse:
        return progress(services, skip_current_image)

    async def interrupt() -> dict[str, Any]:
        """Stop the running job at its next step (A1111 `interruptapi`)."""
        services.ctx.jobs.interrupt()
        return {}

    async def skip() -> None:
        """Abandon the image being sampled and go on with the next one (A1111 `skip`)."""
        services.ctx.jobs.skip()

    router.add_api_route("/progress", progress_route, methods=["GET"], response_model=ProgressResponse)
    router.add_api_route("/interrupt", interrupt, methods=["POST"])
    router.add_api_route("/skip", skip, methods=["POST"])
