"""Outpainting mk2 (img2img): enlarge the canvas, fill the border with matched noise, inpaint it in one job.

A1111 `scripts/outpainting_mk_2.py` (reference §9): Pixels to expand 128, Mask blur 8, directions
left/right/up/down, Fall-off exponent 1.0, Color variation 0.05.  The border is filled with noise shaped like the
known image (`matched_noise_fill`), then the whole enlarged image is inpainted with masked content "original"
at the canvas size rounded to a multiple of 8.
"""

from __future__ import annotations

import random
from typing import Any

from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import DIRECTIONS, ScriptInputError, matched_noise_fill, outpaint_canvas


class OutpaintingMk2(Script):
    """The "Outpainting mk2" entry of the img2img Script dropdown."""

    def title(self) -> str:
        return "Outpainting mk2"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("info", "Info", "", kind="html"),
                ScriptArg("pixels", "Pixels to expand", 128, kind="slider", minimum=8, maximum=256, step=8),
                ScriptArg("mask_blur", "Mask blur", 8, kind="slider", minimum=0, maximum=64, step=1),
                ScriptArg("direction", "Outpainting direction", list(DIRECTIONS), kind="multiselect",
                          choices=list(DIRECTIONS)),
                ScriptArg("noise_q", "Fall-off exponent (lower=higher detail)", 1.0, kind="slider", minimum=0.0,
                          maximum=4.0, step=0.01),
                ScriptArg("color_variation", "Color variation", 0.05, kind="slider", minimum=0.0, maximum=1.0,
                          step=0.01)]

    def run(self, p: Any, info: Any, pixels: int, mask_blur: int, direction: list[str], noise_q: float,
            color_variation: float) -> Any:
        if not p.init_images:
            raise ScriptInputError("Outpainting mk2 needs an initial image")
        seed = p.seed if p.seed not in (-1, None) else random.randrange(4294967294)
        canvas, mask = outpaint_canvas(p.init_images[0], int(pixels), list(direction), mask_blur=0)
        filled = matched_noise_fill(canvas, mask, falloff=float(noise_q), color_variation=float(color_variation),
                                    seed=seed)
        width, height = canvas.width // 8 * 8, canvas.height // 8 * 8
        q = copy_params(p, init_images=[filled], mask=mask, mask_blur=int(mask_blur), inpainting_fill=1,
                        inpaint_full_res=False, width=width, height=height, seed=seed, resize_mode=0)
        return process_images(q)
