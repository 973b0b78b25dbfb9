"""Prompts from file or textbox: one job per line; lines are prompts or `--key value` options.

A1111 `scripts/prompts_from_file.py` (reference §9): options "Iterate seed every line", "Use same random seed for
all lines", "Insert prompts at the" start/end (of the UI prompt), and the list of prompt inputs; line syntax in
`modules.extensions.builtin_logic.parse_prompt_line`.  `--sd_model` becomes the job's checkpoint override.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import ScriptInputError, combine_prompt, parse_prompt_lines

_IGNORED = {"outpath_samples", "outpath_grids", "prompt_for_display", "sampler_index"}


class PromptsFromFile(Script):
    """The "Prompts from file or textbox" entry of the Script dropdown."""

    def title(self) -> str:
        return "Prompts from file or textbox"

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("checkbox_iterate", "Iterate seed every line", False, kind="checkbox"),
                ScriptArg("checkbox_iterate_batch", "Use same random seed for all lines", False, kind="checkbox"),
                ScriptArg("prompt_position", "Insert prompts at the", "start", kind="radio", choices=["start", "end"]),
                ScriptArg("prompt_txt", "List of prompt inputs", "", kind="textarea")]

    def run(self, p: Any, checkbox_iterate: bool, checkbox_iterate_batch: bool, prompt_position: str,
            prompt_txt: str) -> Any:
        jobs = parse_prompt_lines(prompt_txt or "")
        if not jobs:
            raise ScriptInputError("Prompts from file or textbox: the list of prompt inputs is empty")
        if (checkbox_iterate or checkbox_iterate_batch) and p.seed in (-1, None):
            p.seed = random.randrange(4294967294)
        results = []
        for job in jobs:
            q = copy_params(p)
            for key, value in job.items():
                if key == "sd_model":
                    q.override_settings = {**q.override_settings, "sd_model_checkpoint": value}
                elif key not in _IGNORED:
                    setattr(q, key, value)
            q.prompt = combine_prompt(job.get("prompt"), p.prompt, prompt_position)
            q.negative_prompt = combine_prompt(job.get("negative_prompt"), p.negative_prompt, prompt_position)
            results.append(process_images(q))
            if checkbox_iterate:
                p.seed = p.seed + p.batch_size * p.n_iter
        first = results[0]
        changes = {"images": [im for r in results for im in r.images[getattr(r, "index_of_first_image", 0):]],
                   "infotexts": [t for r in results for t in r.infotexts[getattr(r, "index_of_first_image", 0):]],
                   "all_prompts": [x for r in results for x in r.all_prompts],
                   "all_negative_prompts": [x for r in results for x in r.all_negative_prompts],
                   "all_seeds": [x for r in results for x in r.all_seeds],
                   "all_subseeds": [x for r in results for x in r.all_subseeds], "index_of_first_image": 0}
        return dataclasses.replace(first, **changes) if dataclasses.is_dataclass(first) else changes
