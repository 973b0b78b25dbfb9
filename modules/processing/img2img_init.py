"""img2img/inpainting set-up and the image conditioning of inpainting and instruct-pix2pix models.

A1111 `StableDiffusionProcessingImg2Img.init` (reference §3.3):
* the mask is binarised, inverted, blurred; "Only masked" crops image and mask to the mask's box + padding grown to
  the W:H ratio and processes the crop at W×H, pasting it back afterwards;
* each init image is flattened onto `img2img_background_color`, resized by the resize mode (growing through the
  `upscaler_for_img2img` upscaler when one is set) (mode 3 keeps the image and resizes the latent
  bilinearly), "fill" replaces the masked pixels by blurred surrounding colours, the untouched pixels are kept as an
  overlay (`overlay_inpaint`);
* latent mask: `nmask` = mask at latent size (1 = regenerate), `mask` = 1 − nmask; "latent noise" puts the seed
  noise in the masked area, "latent nothing" zeros;
* 9-channel inpainting models get `concat` = [mask, VAE(image · (1 − mask))] with the masked image lerped back
  towards the original by `1 − inpainting_mask_weight`; txt2img gives them a full mask and the encoding of a
  grey image. instruct-pix2pix models get the unscaled VAE mode of the init image (A1111 `edit_image_conditioning`)
  and zeros in txt2img.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from modules.processing.conditioning import opt
from modules.processing.image_ops import Resizer, flatten_alpha, lanczos, pil_to_tensor, resize_image
from modules.processing.masks import PreparedMask, fill_masked, latent_mask, masked_overlay, prepare_mask
from modules.processing.params import Img2ImgParams, ParamError
from modules.processing.tiny_vae import taesd_encode
from modules.processing.vae_io import encode_tensor, latent_factor

Tensor = torch.Tensor
log = logging.getLogger(__name__)


def unet_in_channels(model: Any) -> int:
    """4 plain, 8 instruct-pix2pix, 9 inpainting."""
    return int(model.architecture.unet.in_channels)


def txt2img_image_conditioning(model: Any, batch: int, width: int, height: int) -> Tensor | None:
    """Dummy conditioning so inpainting / pix2pix models can do txt2img (A1111 `txt2img_image_conditioning`)."""
    channels = unet_in_channels(model)
    if channels == 9:
        grey = torch.zeros(batch, 3, height, width)
        latent = encode_tensor(model, grey, sample=False)
        return torch.cat([torch.ones(batch, 1, *latent.shape[-2:]), latent], dim=1)
    if channels == 8:
        f = latent_factor(model)
        return torch.zeros(batch, 4, height // f, width // f)
    return None


def inpainting_conditioning(model: Any, source: Tensor, mask: Tensor | None, weight: float) -> Tensor:
    """[mask, latent of the masked image] for a 9-channel UNet; `source` in [-1, 1], `mask` (B|1, 1, H, W) in [0, 1]
    with 1 = regenerate (None = whole image). A1111 `inpainting_image_conditioning`."""
    if mask is None:
        mask = torch.ones(1, 1, *source.shape[-2:])
    mask = mask.round().expand(source.shape[0], 1, *source.shape[-2:])
    masked = source * (1.0 - mask)
    masked = torch.lerp(source, masked, weight)
    latent = encode_tensor(model, masked, sample=False)
    small = F.interpolate(mask, size=latent.shape[-2:])
    return torch.cat([small, latent], dim=1)


@dataclass
class Img2ImgInit:
    """What the img2img pass starts from."""

    init_latent: Tensor
    processed: list[Image.Image]
    image_cond: Tensor | None = None
    mask: Tensor | None = None
    nmask: Tensor | None = None
    prepared_mask: PreparedMask | None = None
    overlays: list[Image.Image | None] = field(default_factory=list)
    originals: list[Image.Image] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def upscaler_resizer(name: str, upscalers: Any, settings: Any, field_name: str) -> Resizer:
    """A1111 `images.resize_image(..., upscaler_name)`'s `resize`: when the image must grow, upscaler `name` of
    the registry (a model upscaler runs at its native scale, downloading A1111's named models on first use) by the
    larger of the two ratios, then Lanczos to the exact size; "None", grey-scale images and shrinking use Lanczos.
    An unknown name falls back to Lanczos with a warning (A1111 prints and goes on); a model that cannot be
    loaded or downloaded is a `ParamError` naming `field_name` (an HTTP 422 with the reason, not a traceback)."""
    if not name or name == "None" or upscalers is None:
        return lanczos

    def resize(image: Image.Image, width: int, height: int) -> Image.Image:
        scale = max(width / image.width, height / image.height)
        if image.mode != "L" and scale > 1.0:
            try:
                image = upscalers.upscale(image, scale, str(name), settings)
            except ValueError as exc:  # unknown upscaler (A1111 prints and uses its first upscaler, "None")
                log.warning("%s: %s; using Lanczos", field_name, exc)
            except RuntimeError as exc:  # UpscalerModelError: unreadable file, failed download
                raise ParamError(field_name, str(exc)) from None
        return image if image.size == (width, height) else lanczos(image, width, height)

    return resize


def img2img_resizer(settings: Any, upscalers: Any) -> Resizer:
    """How img2img scales its init images (A1111 `images.resize_image` with `upscaler_for_img2img`): Lanczos, or
    when the setting names an upscaler and the image must grow, that upscaler (see `upscaler_resizer`)."""
    return upscaler_resizer(str(opt(settings, "upscaler_for_img2img", None) or ""), upscalers, settings,
                            "upscaler_for_img2img")


def background_color(settings: Any) -> tuple[int, int, int]:
    """`img2img_background_color` ("#rrggbb", A1111 default white) as RGB; an unreadable value gives white."""
    text = str(opt(settings, "img2img_background_color", "#ffffff") or "#ffffff").lstrip("#")
    try:
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError:
        return (255, 255, 255)


def _source_images(p: Img2ImgParams, batch: int, settings: Any = None) -> list[Image.Image]:
    if not p.init_images:
        raise ValueError("init_images: img2img needs at least one init image")
    background = background_color(settings)
    images = [flatten_alpha(im, background) for im in p.init_images]
    if len(images) == 1:
        images = images * batch
    if len(images) < batch:
        raise ValueError(f"init_images: {len(images)} images for a batch of {batch}")
    return images[:batch]


def prepare_img2img(model: Any, p: Img2ImgParams, settings: Any, width: int, height: int, batch: int,
                    seeds: list[int], noise: Tensor, resizer: Resizer = lanczos,
                    encoder: torch.nn.Module | None = None) -> Img2ImgInit:
    """Process the init images and mask of one batch; `noise` is the batch's seed noise (for "latent noise");
    `resizer` scales the init images (A1111: the `upscaler_for_img2img` upscaler, see `img2img_resizer`);
    `encoder`: the TAESD encoder that makes the init latent instead of the VAE (`sd_vae_encode_method` "TAESD";
    the inpainting/instruct conditionings stay with the VAE, as in A1111)."""
    originals = _source_images(p, batch, settings)
    prepared: PreparedMask | None = None
    if p.mask is not None:
        blur_x = p.mask_blur if p.mask_blur is not None else p.mask_blur_x
        blur_y = p.mask_blur if p.mask_blur is not None else p.mask_blur_y
        prepared = prepare_mask(p.mask, width=width, height=height, resize_mode=p.resize_mode,
                                invert=bool(p.inpainting_mask_invert), blur_x=blur_x, blur_y=blur_y,
                                round_mask=p.mask_round, only_masked=p.inpaint_full_res,
                                padding=p.inpaint_full_res_padding)
    processed: list[Image.Image] = []
    overlays: list[Image.Image | None] = []
    for image in originals:
        if prepared is not None and prepared.paste_region is not None:
            overlays.append(masked_overlay(image, prepared.overlay_mask)
                            if opt(settings, "overlay_inpaint", True) else None)
            x, y, w, h = prepared.paste_region
            image = resize_image(2, image.crop((x, y, x + w, y + h)), width, height, resizer)
        else:
            if p.resize_mode != 3:
                image = resize_image(p.resize_mode, image, width, height, resizer)
            if prepared is not None:
                overlays.append(masked_overlay(image, prepared.overlay_mask)
                                if opt(settings, "overlay_inpaint", True) and image.size == (width, height)
                                else None)
            else:
                overlays.append(None)
        if prepared is not None and p.inpainting_fill == 0:
            image = fill_masked(image, prepared.mask.resize(image.size))
        processed.append(image)

    pixels = pil_to_tensor(processed)
    init_latent = encode_tensor(model, pixels, seed=seeds[0]) if encoder is None else taesd_encode(encoder, pixels)
    f = latent_factor(model)
    if p.resize_mode == 3 and init_latent.shape[-2:] != (height // f, width // f):
        init_latent = F.interpolate(init_latent, size=(height // f, width // f), mode="bilinear")
        pixels = F.interpolate(pixels, size=(height, width), mode="bilinear")

    result = Img2ImgInit(init_latent, processed, prepared_mask=prepared, overlays=overlays, originals=originals)
    mask_pixels = None
    if prepared is not None:
        nmask = latent_mask(prepared.mask, width // f, height // f, p.mask_round)
        result.nmask, result.mask = nmask, 1.0 - nmask
        if p.inpainting_fill == 2:
            result.init_latent = init_latent * result.mask + noise.to(init_latent) * nmask
        elif p.inpainting_fill == 3:
            result.init_latent = init_latent * result.mask
        mask_pixels = torch.from_numpy(
            pil_to_tensor([prepared.mask.convert("RGB")]).numpy()[:, :1] * 0.5 + 0.5)

    channels = unet_in_channels(model)
    if channels == 9:
        weight = float(opt(settings, "inpainting_mask_weight", 1.0))
        result.image_cond = inpainting_conditioning(model, pixels, mask_pixels, weight)
    elif channels == 8:
        result.image_cond = encode_tensor(model, pixels, sample=False) / float(model.architecture.latent_scale_factor)
    return result
