"""SD upscale (img2img): upscale, cut into tiles of the job's size, img2img every tile, stitch with blended overlap.

A1111 `scripts/sd_upscale.py` (reference §9): Tile overlap 64, Scale Factor 2.0, Upscaler (a radio over every
upscaler, `shared.sd_upscalers`); tiles are processed in batches of the job's batch size with seed + 1 per batch;
batch count = number of upscaled results. The upscalers are the running app's registry (None, Lanczos, Nearest,
A1111's named models downloaded on first use, model files); "None" leaves the image as it is (as A1111). Without
a running app (a bare unit test) only the Pillow ones are available.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from PIL import Image

from modules.compat.host import HOST
from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import ScriptInputError, Tile, combine_tiles, split_tiles

UPSCALERS = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}


def _app() -> Any:
    return HOST.current() if HOST.running() else None


def upscaler_names() -> list[str]:
    """The radio's choices: every upscaler of the running app (A1111 order), else None/Lanczos/Nearest."""
    app = _app()
    return list(app.upscalers) if app is not None and app.upscalers is not None else ["None", *UPSCALERS]


def upscale(image: Image.Image, name: str, scale: float) -> Image.Image:
    """The image scaled by `scale` with the named upscaler ("None" leaves it as is); a model that cannot be loaded
    or downloaded is a `ScriptInputError` with the reason."""
    if name in (None, "", "None"):
        return image
    app = _app()
    if app is not None and app.upscalers is not None and name in app.upscalers:
        try:
            return app.upscalers.upscale(image, scale, name, app.settings)
        except RuntimeError as exc:  # UpscalerModelError: unreadable file, failed download
            raise ScriptInputError(f"SD upscale: {exc}") from None
    if name not in UPSCALERS:
        raise ScriptInputError(f"SD upscale: upscaler {name!r} is not available; use one of "
                               f"{', '.join(upscaler_names())}")
    return image.resize((round(image.width * scale), round(image.height * scale)), UPSCALERS[name])


class SDUpscale(Script):
    """The "SD upscale" entry of the img2img Script dropdown."""

    def title(self) -> str:
        return "SD upscale"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("info", "Info", "", kind="html"),
                ScriptArg("overlap", "Tile overlap", 64, kind="slider", minimum=0, maximum=256, step=16),
                ScriptArg("upscaler_name", "Upscaler", "Lanczos", kind="radio", choices=upscaler_names()),
                ScriptArg("scale_factor", "Scale Factor", 2.0, kind="slider", minimum=1.0, maximum=4.0, step=0.05)]

    def run(self, p: Any, info: Any, overlap: int, upscaler_name: str, scale_factor: float) -> Any:
        if not p.init_images:
            raise ScriptInputError("SD upscale needs an initial image")
        seed = p.seed if p.seed not in (-1, None) else random.randrange(4294967294)
        image = upscale(p.init_images[0].convert("RGB"), upscaler_name, float(scale_factor))
        if image.width < p.width or image.height < p.height:
            image = image.resize((max(image.width, p.width), max(image.height, p.height)), Image.Resampling.LANCZOS)
        rows = split_tiles(image, p.width, p.height, int(overlap))
        work = [tile for row in rows for tile in row]
        batch = max(1, p.batch_size)
        outputs, results = [], []
        for n in range(max(1, p.n_iter)):
            q_seed, done = seed + n, []
            for start in range(0, len(work), batch):
                chunk = work[start:start + batch]
                q = copy_params(p, init_images=[t.image for t in chunk], batch_size=len(chunk), n_iter=1,
                                seed=q_seed, do_not_save_grid=True, do_not_save_samples=True)
                result = process_images(q)
                results.append(result)
                done += list(result.images[getattr(result, "index_of_first_image", 0):])[:len(chunk)]
                q_seed += 1
            it = iter(done)
            stitched = [[Tile(t.x, t.y, next(it)) for t in row] for row in rows]
            outputs.append(combine_tiles(stitched, image.width, image.height, int(overlap)))
        first = results[0]
        info_text = first.infotexts[0] if first.infotexts else ""
        changes = {"images": outputs, "infotexts": [info_text] * len(outputs), "index_of_first_image": 0,
                   "width": image.width, "height": image.height}
        return dataclasses.replace(first, **changes) if dataclasses.is_dataclass(first) else changes
