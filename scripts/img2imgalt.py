"""img2img alternative test (img2img): sample from the noise found by inverting the original image.

A1111 `scripts/img2imgalt.py` (reference §9), same fields in the same order: an info text, "Override `Sampling
method` to Euler?" (on), "Override `prompt` to the same value as `original prompt`?" (on), "Original prompt",
"Original negative prompt", "Override `Sampling Steps` to the same value as `Decode steps`?" (on), "Decode steps"
(50), "Override `Denoising strength` to 1?" (on), "Decode CFG scale" (1.0), "Randomness" (0.0), "Sigma adjustment
for finding noise for image" (off). The found noise is kept while the image latent (to a tenth), the decode prompts,
CFG scale, steps and the sigma adjustment stay the same (A1111's cache). Infotext: "Decode prompt", "Decode
negative prompt", "Decode CFG scale", "Decode steps", "Randomness", "Sigma Adjustment". The maths is in
`modules/processing/img2img_alt.py`.
"""

from __future__ import annotations

import threading
from typing import Any

import torch

from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.extensions.builtin_logic import ScriptInputError
from modules.processing.img2img_alt import combine_noise, find_noise, starting_latent

INFO = ("<p style=\"margin-bottom:0.75em\">It will find the noise that turns the original image into itself with "
        "the original prompt, then sample from it with the new prompt (Euler inversion).</p>")


class Img2ImgAlternative(Script):
    """The "img2img alternative test" entry of the img2img Script dropdown."""

    def __init__(self) -> None:
        self._cache: tuple[tuple[Any, ...], torch.Tensor, torch.Tensor] | None = None
        self._lock = threading.Lock()

    def title(self) -> str:
        return "img2img alternative test"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("info", "Info", INFO, kind="html"),
                ScriptArg("override_sampler", "Override `Sampling method` to Euler?(this method is built for it)",
                          True, kind="checkbox"),
                ScriptArg("override_prompt", "Override `prompt` to the same value as `original prompt`?(and "
                          "`negative prompt`)", True, kind="checkbox"),
                ScriptArg("original_prompt", "Original prompt", "", kind="textarea"),
                ScriptArg("original_negative_prompt", "Original negative prompt", "", kind="textarea"),
                ScriptArg("override_steps", "Override `Sampling Steps` to the same value as `Decode steps`?", True,
                          kind="checkbox"),
                ScriptArg("st", "Decode steps", 50, kind="slider", minimum=1, maximum=150, step=1),
                ScriptArg("override_strength", "Override `Denoising strength` to 1?", True, kind="checkbox"),
                ScriptArg("cfg", "Decode CFG scale", 1.0, kind="slider", minimum=0.0, maximum=15.0, step=0.1),
                ScriptArg("randomness", "Randomness", 0.0, kind="slider", minimum=0.0, maximum=1.0, step=0.01),
                ScriptArg("sigma_adjustment", "Sigma adjustment for finding noise for image", False,
                          kind="checkbox")]

    def run(self, p: Any, info: Any, override_sampler: bool, override_prompt: bool, original_prompt: str,
            original_negative_prompt: str, override_steps: bool, st: int, override_strength: bool, cfg: float,
            randomness: float, sigma_adjustment: bool) -> Any:
        if not p.init_images:
            raise ScriptInputError("img2img alternative test needs an initial image")
        st, cfg, randomness = int(st), float(cfg), float(randomness)
        if st < 1 or not 0.0 <= randomness <= 1.0:
            raise ScriptInputError("img2img alternative test: Decode steps must be at least 1 and Randomness "
                                   "between 0 and 1")
        original_prompt = original_prompt or ""
        original_negative_prompt = original_negative_prompt or ""
        changes: dict[str, Any] = {}
        if override_sampler:
            changes.update(sampler_name="Euler", scheduler="Automatic")
        if override_prompt:
            changes.update(prompt=original_prompt, negative_prompt=original_negative_prompt)
        if override_steps:
            changes["steps"] = st
        if override_strength:
            changes["denoising_strength"] = 1.0
        q = copy_params(p, **changes)
        fields = dict(getattr(q, "extra_generation_params", None) or {})
        fields.update({"Decode prompt": original_prompt, "Decode negative prompt": original_negative_prompt,
                       "Decode CFG scale": cfg, "Decode steps": st, "Randomness": randomness,
                       "Sigma Adjustment": bool(sigma_adjustment)})
        q.extra_generation_params = fields
        prompts_match = override_prompt

        def sample_start(start: Any) -> torch.Tensor:
            key = (original_prompt, original_negative_prompt, cfg, st, bool(sigma_adjustment))
            coarse = (start.init_latent.float().cpu() * 10).to(torch.int64)
            with self._lock:
                cached = self._cache
            if cached is not None and cached[0] == key and torch.equal(cached[1], coarse):
                found = cached[2].to(start.init_latent)
            else:
                stage = start.stage
                if not prompts_match:
                    count = len(start.run.prompts)
                    stage, _ = start.run.conds(start.model, start.spec, st, start.index, start.run.width,
                                               start.run.height, prompts=[original_prompt] * count,
                                               negatives=[original_negative_prompt] * count)
                    stage.image_cond = start.stage.image_cond
                found = find_noise(start, stage, cfg, st, bool(sigma_adjustment))
                with self._lock:
                    self._cache = (key, coarse, found.detach().cpu())
            combined = combine_noise(found, start.noise, randomness)
            return starting_latent(start, combined, int(q.steps))

        q.sample_start = sample_start
        return process_images(q)
