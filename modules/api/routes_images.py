"""Image utility routes: `png-info`, `extra-single-image`, `extra-batch-images`, `interrogate`.

A1111 facts (reference §12): `POST /sdapi/v1/png-info {image}` → `{info, items, parameters}` where `info` is the
infotext (PNG `parameters` text chunk or JPEG/WebP EXIF UserComment), `items` the other metadata entries and
`parameters` the parsed infotext (`parse_generation_parameters`); an empty `image` gives `info: ""`. The extras
routes take A1111's extras fields (`resize_mode` 0, `upscaling_resize` 2, `upscaler_1`/`upscaler_2` "None", …)
and answer `{image|images, html_info}`; `interrogate {image, model: "clip"|"deepdanbooru"}` → `{caption}`.
The extras routes run the modules.postprocessing chain in the job queue (A1111 does not save API extras results;
images come back as PNG with the original `parameters` chunk and the new `postprocessing` chunk). Interrogation
runs `ctx.interrogators` in the job queue (bad images are 422 naming the field; an unknown model 404 as in A1111).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from modules.api.app import ApiServices
from modules.api.errors import ApiError
from modules.api.images_b64 import decode_image


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class PNGInfoRequest(_Request):
    image: str = Field(description="Base64 image (PNG, JPEG or WebP) whose metadata to read")


class PNGInfoResponse(BaseModel):
    info: str = Field(description="The infotext stored in the image, or empty")
    items: dict[str, Any] = Field(default_factory=dict, description="Other metadata entries of the image")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The infotext parsed into fields")


class ExtrasBaseRequest(_Request):
    """A1111 `ExtrasBaseRequest` fields and defaults."""

    resize_mode: int = Field(0, ge=0, le=1, description="0 = scale by upscaling_resize, 1 = to width/height")
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0, ge=0, le=1)
    codeformer_visibility: float = Field(0, ge=0, le=1)
    codeformer_weight: float = Field(0, ge=0, le=1)
    upscaling_resize: float = Field(2, ge=1, le=8)
    upscaling_resize_w: int = Field(512, ge=1, le=16384)
    upscaling_resize_h: int = Field(512, ge=1, le=16384)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1)
    upscale_first: bool = False
    restore_whole_image: bool = Field(False, description="Restore the whole image as one face at 512 (no face detection)")


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    image: str = Field(description="Base64 image to process")


class FileData(_Request):
    data: str = Field(description="Base64 image")
    name: str = Field("", description="File name")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    imageList: list[FileData] = Field(description="Images to process")


class InterrogateRequest(_Request):
    image: str = Field("", description="Base64 image")
    model: str = Field("clip", description="clip or deepdanbooru")


def _json_safe(value: Any) -> Any:
    """Metadata values as JSON (tuples → lists, bytes dropped by the caller)."""
    if isinstance(value, tuple | list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items() if not isinstance(v, bytes)}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def png_info(services: ApiServices, req: PNGInfoRequest) -> PNGInfoResponse:
    """Read and parse the generation parameters of an image (A1111 `pnginfoapi`)."""
    from modules.images import parse_infotext, read_info_from_image

    if not req.image.strip():
        return PNGInfoResponse(info="", items={}, parameters={})
    image = decode_image(req.image, "image", services.settings_view())
    geninfo, items = read_info_from_image(image)
    items = {k: _json_safe(v) for k, v in items.items() if not isinstance(v, bytes)}
    parameters = parse_infotext(geninfo) if geninfo else {}
    services.ctx.callbacks.fire("infotext_pasting", geninfo or "", parameters)  # A1111 pnginfoapi
    return PNGInfoResponse(info=geninfo or "", items=items, parameters=_json_safe(parameters))


def extras_options(req: ExtrasBaseRequest) -> Any:
    """The request as `modules.postprocessing.ExtrasOptions` (A1111 `run_extras` argument mapping)."""
    from modules.postprocessing import ExtrasOptions

    return ExtrasOptions(resize_mode=req.resize_mode, upscaling_resize=req.upscaling_resize,
                         upscaling_resize_w=req.upscaling_resize_w, upscaling_resize_h=req.upscaling_resize_h,
                         upscaling_crop=req.upscaling_crop, upscaler_1=req.upscaler_1, upscaler_2=req.upscaler_2,
                         upscaler_2_visibility=req.extras_upscaler_2_visibility,
                         gfpgan_visibility=req.gfpgan_visibility, codeformer_visibility=req.codeformer_visibility,
                         codeformer_weight=req.codeformer_weight, restore_whole_image=req.restore_whole_image)


def run_extras(services: ApiServices, req: ExtrasBaseRequest, sources: list[tuple[Any, str | None]]) -> Any:
    """Validate, then run the extras chain in the job queue (one job at a time, like A1111's queue_lock)."""
    from modules.api.routes_info import face_restorer_registry, upscaler_registry
    from modules.images import read_info_from_image
    from modules.postprocessing import ExtrasChain, ExtrasInputError
    from modules.runtime.jobs import JobFailedError

    chain = ExtrasChain(upscaler_registry(services), face_restorer_registry(services), read_info=read_info_from_image)
    options = extras_options(req)
    try:
        chain.check(options)
    except ExtrasInputError as exc:
        raise ApiError(422, str(exc), field=exc.field) from None
    settings = services.settings_view()

    # Extras-tab scripts get None for each argument, as A1111's API passes them (`create_args_for_run`)
    scripts = services.ctx.scripts.postprocessing.bind(None, settings)

    def job_fn(job: Any) -> Any:
        return chain.run(sources, options, settings=settings, state=job.state, scripts=scripts)

    job = services.ctx.jobs.submit(job_fn, kind="extras")
    try:
        return job.result()
    except JobFailedError as exc:
        status = 422 if exc.error.type in ("ExtrasInputError", "FaceRestorerError", "UpscalerModelError") else 500
        raise ApiError(status, f"extras failed: {exc.error}") from None


def encode_extras_image(done: Any, settings: dict[str, Any]) -> str:
    """Base64 image in `samples_format`; PNG keeps the original chunks plus `postprocessing` (A1111 encodes
    `image.info`); JPEG/WebP carry the original `parameters` (or the postprocessing text) as EXIF UserComment."""
    import base64
    import io

    from modules.images import save_image_with_geninfo

    fmt = str(settings.get("samples_format") or "png").lower().lstrip(".")
    fmt = {"jpeg": "jpg"}.get(fmt, fmt) if fmt in ("jpg", "jpeg", "webp") else "png"
    image = done.image if fmt == "png" or done.image.mode in ("RGB", "L") else done.image.convert("RGB")
    buffer = io.BytesIO()
    if fmt == "png":
        save_image_with_geninfo(image, done.infotext, buffer, ".png", existing_pnginfo=done.chunks,
                                pnginfo_section_name="postprocessing",
                                enable_pnginfo=bool(settings.get("enable_pnginfo", True)))
    else:
        save_image_with_geninfo(image, done.chunks.get("parameters") or done.infotext, buffer, f".{fmt}",
                                enable_pnginfo=bool(settings.get("enable_pnginfo", True)),
                                jpeg_quality=int(settings.get("jpeg_quality", 80)),
                                webp_lossless=bool(settings.get("webp_lossless", False)))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def run_interrogate(services: ApiServices, image: Any, model: str) -> str:
    """Interrogate in the job queue (A1111 `interrogateapi` holds `queue_lock`); missing weights that cannot be
    downloaded answer 503 naming the file and folder, unusable weights 500."""
    from modules.runtime.jobs import JobFailedError

    interrogators = services.ctx.interrogators
    job = services.ctx.jobs.submit(lambda job: interrogators.interrogate(image, model), kind="interrogate")
    try:
        return str(job.result() or "")
    except JobFailedError as exc:
        status = 503 if exc.error.type == "ModelFilesMissing" else 500
        raise ApiError(status, f"interrogate failed: {exc.error.message}") from None


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """png-info, extras and interrogate."""

    def png_info_route(req: PNGInfoRequest) -> PNGInfoResponse:
        return png_info(services, req)

    def extra_single_image(req: ExtrasSingleImageRequest) -> dict[str, Any]:
        """Upscale / restore faces of one image (A1111 `extras_single_image_api`)."""
        image = decode_image(req.image, "image", services.settings_view())
        result = run_extras(services, req, [(image, None)])
        if not result.images:
            raise ApiError(500, "extras produced no image")
        return {"image": encode_extras_image(result.images[0], services.settings_view()),
                "html_info": result.html_info}

    def extra_batch_images(req: ExtrasBatchImagesRequest) -> dict[str, Any]:
        """Upscale / restore faces of several images (A1111 `extras_batch_images_api`)."""
        settings = services.settings_view()
        sources = [(decode_image(item.data, f"imageList[{index}].data", settings), item.name or None)
                   for index, item in enumerate(req.imageList)]
        result = run_extras(services, req, sources)
        return {"images": [encode_extras_image(done, settings) for done in result.images],
                "html_info": result.html_info}

    def interrogate(req: InterrogateRequest) -> dict[str, Any]:
        """Caption an image with CLIP or DeepBooru (A1111 `interrogateapi`)."""
        if not req.image.strip():
            raise ApiError(404, "Image not found", field="image")
        if req.model not in ("clip", "deepdanbooru"):
            raise ApiError(404, f"model: Model not found: {req.model!r} (clip or deepdanbooru)", field="model")
        image = decode_image(req.image, "image", services.settings_view())
        return {"caption": run_interrogate(services, image.convert("RGB"), req.model)}

    router.add_api_route("/png-info", png_info_route, methods=["POST"], response_model=PNGInfoResponse)
    router.add_api_route("/extra-single-image", extra_single_image, methods=["POST"])
    router.add_api_route("/extra-batch-images", extra_batch_images, methods=["POST"])
    router.add_api_route("/interrogate", interrogate, methods=["POST"])
