"""Image utility routes: `png-info`, `extra-single-image`, `extra-batch-images`, `interrogate`.

A1111 facts (reference §12): `POST /sdapi/v1/png-info {image}` → `{info, items, parameters}` where `info` is the
infotext (PNG `parameters` text chunk or JPEG/WebP EXIF UserComment), `items` the other metadata entries and
`parameters` the parsed infotext (`parse_generation_parameters`); an empty `image` gives `info: ""`. The extras
routes take A1111's extras fields (`resize_mode` 0, `upscaling_resize` 2, `upscaler_1`/`upscaler_2` "None", …)
and answer `{image|images, html_info}`; `interrogate {image, model: "clip"|"deepdanbooru"}` → `{caption}`.
The extras (upscalers, face restoration) and interrogation pipelines are not built yet: after the request is
validated (bad images are still 422 naming the field) those routes answer 501 saying so.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from modules.api.app import ApiServices
from modules.api.errors import ApiError, FeatureNotAvailableError
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
    return PNGInfoResponse(info=geninfo or "", items=items, parameters=_json_safe(parameters))


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """png-info, extras and interrogate."""

    def png_info_route(req: PNGInfoRequest) -> PNGInfoResponse:
        return png_info(services, req)

    def extra_single_image(req: ExtrasSingleImageRequest) -> dict[str, Any]:
        """Upscale / restore faces of one image (A1111 `extras_single_image_api`)."""
        decode_image(req.image, "image", services.settings_view())
        raise FeatureNotAvailableError("Extras (upscaling and face restoration)")

    def extra_batch_images(req: ExtrasBatchImagesRequest) -> dict[str, Any]:
        """Upscale / restore faces of several images (A1111 `extras_batch_images_api`)."""
        settings = services.settings_view()
        for index, item in enumerate(req.imageList):
            decode_image(item.data, f"imageList[{index}].data", settings)
        raise FeatureNotAvailableError("Extras (upscaling and face restoration)")

    def interrogate(req: InterrogateRequest) -> dict[str, Any]:
        """Caption an image with CLIP or DeepBooru (A1111 `interrogateapi`)."""
        if not req.image.strip():
            raise ApiError(404, "Image not found", field="image")
        if req.model not in ("clip", "deepdanbooru"):
            raise ApiError(404, f"model: Model not found: {req.model!r} (clip or deepdanbooru)", field="model")
        decode_image(req.image, "image", services.settings_view())
        raise FeatureNotAvailableError(f"Interrogate ({req.model})")

    router.add_api_route("/png-info", png_info_route, methods=["POST"], response_model=PNGInfoResponse)
    router.add_api_route("/extra-single-image", extra_single_image, methods=["POST"])
    router.add_api_route("/extra-batch-images", extra_batch_images, methods=["POST"])
    router.add_api_route("/interrogate", interrogate, methods=["POST"])
