"""Loopback (img2img): each output becomes the next loop's input, with a denoising strength curve.

A1111 `scripts/loopback.py` (reference §9): Loops 4, Final denoising strength 0.5, Denoising strength curve
Aggressive/Linear/Lazy; seed + 1 each loop; masked content switches to "original" after the first loop; with a
batch count above 1 each batch starts again from the original image.  "Append interrogated prompt" needs an
interrogator (CLIP/DeepBooru), which this build does not have: only "None" is accepted.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import ScriptInputError, loopback_strength
from modules.images import image_grid


class Loopback(Script):
    """The "Loopback" entry of the img2img Script dropdown."""

    def title(self) -> str:
        return "Loopback"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("loops", "Loops", 4, kind="slider", minimum=1, maximum=32, step=1),
                ScriptArg("final_denoising_strength", "Final denoising strength", 0.5, kind="slider", minimum=0,
                          maximum=1, step=0.01),
                ScriptArg("denoising_curve", "Denoising strength curve", "Linear", kind="dropdown",
                          choices=["Aggressive", "Linear", "Lazy"]),
                ScriptArg("append_interrogation", "Append interrogated prompt at each iteration", "None",
                          kind="dropdown", choices=["None"])]

    def run(self, p: Any, loops: int, final_denoising_strength: float, denoising_curve: str,
            append_interrogation: str = "None") -> Any:
        if append_interrogation not in (None, "", "None"):
            raise ScriptInputError(f"Loopback: interrogation {append_interrogation!r} is not available; use None")
        if not p.init_images:
            raise ScriptInputError("Loopback needs an initial image")
        loops = int(loops)
        loopback_strength(0, loops, p.denoising_strength, final_denoising_strength, denoising_curve)
        seed = p.seed if p.seed not in (-1, None) else random.randrange(4294967294)
        initial_strength, batch_count = p.denoising_strength, p.n_iter
        histories, results = [], []
        for n in range(batch_count):
            q = copy_params(p, n_iter=1, batch_size=1, do_not_save_grid=True, seed=seed + n * loops)
            history = []
            for i in range(loops):
                result = process_images(q)
                results.append(result)
                last = result.images[getattr(result, "index_of_first_image", 0)]
                history.append(last)
                q = copy_params(q, init_images=[last], seed=q.seed + 1, inpainting_fill=1,
                                denoising_strength=loopback_strength(i + 1, loops, initial_strength,
                                                                     final_denoising_strength, denoising_curve))
            histories.append(history)
        grids = [image_grid(h, rows=1) for h in histories]
        images = [im for h in histories for im in h]
        infos = [r.infotexts[getattr(r, "index_of_first_image", 0)] for r in results]
        first = results[0]
        changes = {"images": [*grids, *images], "infotexts": [infos[0]] * len(grids) + infos,
                   "index_of_first_image": len(grids), "all_seeds": [x for r in results for x in r.all_seeds],
                   "all_prompts": [x for r in results for x in r.all_prompts]}
        return dataclasses.replace(first, **changes) if dataclasses.is_dataclass(first) else changes
