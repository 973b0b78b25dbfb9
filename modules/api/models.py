"""Compatibility: A1111 `modules.api.models` names for extensions that declare routes with A1111's request and
response models (re-exports of this API's pydantic models; docs/extensions.md)."""

from __future__ import annotations

from modules.api.routes_images import (
    ExtrasBatchImagesRequest,
    ExtrasSingleImageRequest,
    InterrogateRequest,
    PNGInfoRequest,
    PNGInfoResponse,
)
from modules.api.routes_progress import ProgressResponse
from modules.api.schemas import GenerationResponse, Img2ImgRequest, Txt2ImgRequest

StableDiffusionTxt2ImgProcessingAPI = Txt2ImgRequest
StableDiffusionImg2ImgProcessingAPI = Img2ImgRequest
TextToImageResponse = GenerationResponse
ImageToImageResponse = GenerationResponse

__all__ = ["ExtrasBatchImagesRequest", "ExtrasSingleImageRequest", "ImageToImageResponse", "InterrogateRequest",
           "PNGInfoRequest", "PNGInfoResponse", "ProgressResponse", "StableDiffusionImg2ImgProcessingAPI",
           "StableDiffusionTxt2ImgProcessingAPI", "TextToImageResponse"]
