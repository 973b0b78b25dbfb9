"""Prompt matrix: every combination of the "|"-separated optional prompt parts, in one labelled grid.

A1111 `scripts/prompt_matrix.py` (reference §9): the first part is always used and every subset of the others
(2^(n-1) images); options Put variable parts at start, Use different seed for each picture, Select prompt
positive/negative, Select joining char comma/space, Grid margins.  Difference: each combination runs as its own
job (batch size 1) instead of packing combinations into batches; images and seeds are the same.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import ScriptInputError, prompt_matrix_prompts, prompt_matrix_rows
from modules.images import draw_prompt_matrix, image_grid


class PromptMatrix(Script):
    """The "Prompt matrix" entry of the Script dropdown."""

    def title(self) -> str:
        return "Prompt matrix"

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("put_at_start", "Put variable parts at start of prompt", False, kind="checkbox"),
                ScriptArg("different_seeds", "Use different seed for each picture", False, kind="checkbox"),
                ScriptArg("prompt_type", "Select prompt", "positive", kind="radio", choices=["positive", "negative"]),
                ScriptArg("variations_delimiter", "Select joining char", "comma", kind="radio",
                          choices=["comma", "space"]),
                ScriptArg("margin_size", "Grid margins (px)", 0, kind="slider", minimum=0, maximum=500, step=2)]

    def run(self, p: Any, put_at_start: bool, different_seeds: bool, prompt_type: str, variations_delimiter: str,
            margin_size: int) -> Any:
        if prompt_type not in ("positive", "negative"):
            raise ScriptInputError(f"Prompt matrix: prompt type must be positive or negative, got {prompt_type!r}")
        source = p.prompt if prompt_type == "positive" else p.negative_prompt
        delimiter = ", " if variations_delimiter == "comma" else " "
        prompts = prompt_matrix_prompts(source, put_at_start=put_at_start, delimiter=delimiter)
        seed = p.seed if p.seed not in (-1, None) else random.randrange(4294967294)
        results = []
        for i, prompt in enumerate(prompts):
            field = "prompt" if prompt_type == "positive" else "negative_prompt"
            q = copy_params(p, **{field: prompt}, seed=seed + (i if different_seeds else 0), batch_size=1, n_iter=1,
                            do_not_save_grid=True)
            results.append(process_images(q))
        images = [r.images[getattr(r, "index_of_first_image", 0)] for r in results]
        parts = source.split("|")
        grid = image_grid(images, rows=prompt_matrix_rows(len(parts)))
        grid = draw_prompt_matrix(grid, images[0].width, images[0].height, parts, int(margin_size),
                                  settings=getattr(p, "settings", None))
        first = results[0]
        infotexts = [r.infotexts[getattr(r, "index_of_first_image", 0)] for r in results]
        changes = {"images": [grid, *images], "infotexts": [infotexts[0], *infotexts], "index_of_first_image": 1,
                   "all_prompts": [x for r in results for x in r.all_prompts],
                   "all_seeds": [x for r in results for x in r.all_seeds]}
        return dataclasses.replace(first, **changes) if dataclasses.is_dataclass(first) else changes
