"""Poor man's outpainting (img2img): enlarge the canvas and inpaint the new border tile by tile.

A1111 `scripts/poor_mans_outpainting.py` (reference §9): Pixels to expand 128, Mask blur 4, Masked content
(fill/original/latent noise/latent nothing, default fill), Outpainting direction left/right/up/down.  The new area
starts as the stretched edge pixels; each tile of the job's size that touches the mask is inpainted.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import (
    DIRECTIONS,
    ScriptInputError,
    Tile,
    combine_tiles,
    outpaint_canvas,
    split_tiles,
)

MASKED_CONTENT = ["fill", "original", "latent noise", "latent nothing"]


class PoorMansOutpainting(Script):
    """The "Poor man's outpainting" entry of the img2img Script dropdown."""

    def title(self) -> str:
        return "Poor man's outpainting"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("pixels", "Pixels to expand", 128, kind="slider", minimum=8, maximum=256, step=8),
                ScriptArg("mask_blur", "Mask blur", 4, kind="slider", minimum=0, maximum=64, step=1),
                ScriptArg("inpainting_fill", "Masked content", "fill", kind="radio", choices=MASKED_CONTENT),
                ScriptArg("direction", "Outpainting direction", list(DIRECTIONS), kind="multiselect",
                          choices=list(DIRECTIONS))]

    def run(self, p: Any, pixels: int, mask_blur: int, inpainting_fill: Any, direction: list[str]) -> Any:
        if not p.init_images:
            raise ScriptInputError("Poor man's outpainting needs an initial image")
        fill = MASKED_CONTENT.index(inpainting_fill) if isinstance(inpainting_fill, str) else int(inpainting_fill)
        canvas, mask = outpaint_canvas(p.init_images[0], int(pixels), list(direction), mask_blur=int(mask_blur))
        seed = p.seed if p.seed not in (-1, None) else random.randrange(4294967294)
        image_rows = split_tiles(canvas, p.width, p.height, int(pixels))
        mask_rows = split_tiles(mask, p.width, p.height, int(pixels))
        results, out_rows = [], []
        for image_row, mask_row in zip(image_rows, mask_rows, strict=True):
            out_row = []
            for tile, tile_mask in zip(image_row, mask_row, strict=True):
                if tile_mask.image.getbbox() is None:
                    out_row.append(tile)
                    continue
                q = copy_params(p, init_images=[tile.image], mask=tile_mask.image, mask_blur=int(mask_blur),
                                inpainting_fill=fill, inpaint_full_res=False, batch_size=1, n_iter=1, seed=seed,
                                do_not_save_grid=True)
                result = process_images(q)
                results.append(result)
                out_row.append(Tile(tile.x, tile.y, result.images[getattr(result, "index_of_first_image", 0)]))
            out_rows.append(out_row)
        if not results:
            raise ScriptInputError("Poor man's outpainting: nothing to paint")
        combined = combine_tiles(out_rows, canvas.width, canvas.height, int(pixels))
        first = results[0]
        changes = {"images": [combined], "infotexts": first.infotexts[:1], "index_of_first_image": 0,
                   "width": canvas.width, "height": canvas.height}
        return dataclasses.replace(first, **changes) if dataclasses.is_dataclass(first) else changes
