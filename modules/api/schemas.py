"""Pydantic request models derived from `modules.processing.params` — one schema for UI, API and infotext.

Every field of `Txt2ImgParams` / `Img2ImgParams` becomes a request field with the same name, default, bounds and
description, so a bad value is a 422 naming the field. Image fields travel as base64 strings (with or without a
`data:image/...;base64,` prefix, as A1111 accepts). API-only fields are A1111's (reference §12): `sampler_index`
(legacy, default "Euler": a request without `sampler_name` uses Euler), `send_images`, `save_images`, `infotext`,
`force_task_id`, and for img2img `include_init_images`. The API's `steps` default is A1111's 50.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, create_model

from modules.processing.params import GenerationParams, Img2ImgParams, Txt2ImgParams

IMAGE_FIELDS = {"init_images": list[str], "mask": str | None, "firstpass_image": str | None,
                "latent_mask": str | None}
"""Params fields holding PIL images internally and base64 strings on the wire."""

API_EXTRAS: dict[str, tuple[Any, Any]] = {
    "sampler_index": (str, Field("Euler", description="Legacy sampler field; used when sampler_name is empty")),
    "send_images": (bool, Field(True, description="Return the images in the response")),
    "save_images": (bool, Field(False, description="Also save the images to the output folders")),
    "infotext": (str | None, Field(None, description="Fill fields not set in the request from this infotext")),
    "force_task_id": (str | None, Field(None, description="Task id to poll with /internal/progress")),
}


class _RequestBase(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    if TYPE_CHECKING:  # the fields are made at run time from the params dataclasses (`_build`)
        force_task_id: str | None
        init_images: list[Any]
        include_init_images: bool
        send_images: bool

        def __getattr__(self, name: str) -> Any: ...


def _fields_of(params_type: type[GenerationParams]) -> dict[str, tuple[Any, Any]]:
    hints = typing.get_type_hints(params_type)
    fields: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(params_type):
        annotation = IMAGE_FIELDS.get(f.name, hints[f.name])
        meta = f.metadata
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
            info = Field(default, ge=meta.get("ge"), le=meta.get("le"), description=meta.get("doc") or None)
        else:
            factory = cast(Callable[[], Any], f.default_factory)
            info = Field(default_factory=factory, description=meta.get("doc") or None)
        fields[f.name] = (annotation, info)
    return fields


def _build(name: str, params_type: type[GenerationParams], extras: dict[str, tuple[Any, Any]]
           ) -> type[_RequestBase]:
    fields: dict[str, Any] = {**_fields_of(params_type), **API_EXTRAS, **extras}
    return create_model(name, __base__=_RequestBase, **fields)


if TYPE_CHECKING:  # for the type checker the request models are the base class (fields via __getattr__)
    Txt2ImgRequest = _RequestBase
    Img2ImgRequest = _RequestBase
else:
    Txt2ImgRequest = _build("StableDiffusionTxt2ImgProcessingAPI", Txt2ImgParams, {})
    Img2ImgRequest = _build(
        "StableDiffusionImg2ImgProcessingAPI",
        Img2ImgParams,
        {"include_init_images": (bool, Field(False, description="Echo the init images in `parameters`"))},
    )


class GenerationResponse(BaseModel):
    """A1111's response shape: raw base64 images, the request echo, and `info` as a JSON *string*."""

    images: list[str] = Field(default_factory=list, description="Base64 images, no data: prefix")
    parameters: dict[str, Any] = Field(default_factory=dict)
    info: str = ""


def params_field_names(params_type: type[GenerationParams]) -> set[str]:
    """Names the request model shares with the params dataclass (everything else is API-only)."""
    return {f.name for f in dataclasses.fields(params_type)}
