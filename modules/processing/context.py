"""The application context passed explicitly to every job: settings, paths, flags, models, queue, registries.

A1111 reaches all of these through module globals (`shared.opts`, `shared.sd_model`, `shared.state`, …). Here one
`AppContext` object is built at start-up by `webui.py` (or by a test) and handed to the UI, the API and each job;
nothing is global, so two apps (e.g. two test servers) can live in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class AppContext:
    """Everything a job needs. `models` is the `ModelManager`; `jobs` the `JobQueue`; `flags` the parsed flags."""

    flags: Any
    paths: Any
    settings: Any
    models: Any
    jobs: Any
    styles: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationResult:
    """What a txt2img/img2img job returns to the gallery or the API (A1111 `Processed`).

    `images` holds the generated images first and then any grid (`index_of_first_image` says where the single
    images start, as A1111's `Processed` does); `infotexts` is one text per entry of `images`.
    """

    images: list[Image.Image]
    infotexts: list[str]
    all_prompts: list[str]
    all_negative_prompts: list[str]
    all_seeds: list[int]
    all_subseeds: list[int]
    index_of_first_image: int = 0
    width: int = 0
    height: int = 0
    sampler_name: str = ""
    cfg_scale: float = 0.0
    steps: int = 0
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    sd_model_name: str = ""
    sd_model_hash: str = ""
    clip_skip: int = 1
    job_timestamp: str = ""
    notices: list[str] = field(default_factory=list)
    saved_paths: list[str] = field(default_factory=list)
    time_taken: float = 0.0
    peak_memory_bytes: int = 0

    def info_dict(self) -> dict[str, Any]:
        """The JSON object A1111 API clients read from `info` (they parse it from a string)."""
        return {
            "prompt": self.all_prompts[0] if self.all_prompts else "",
            "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0] if self.all_negative_prompts else "",
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed, "all_seeds": self.all_seeds,
            "subseed": self.subseed, "all_subseeds": self.all_subseeds,
            "subseed_strength": self.subseed_strength,
            "width": self.width, "height": self.height,
            "sampler_name": self.sampler_name, "cfg_scale": self.cfg_scale, "steps": self.steps,
            "batch_size": len(self.all_seeds), "sd_model_name": self.sd_model_name,
            "sd_model_hash": self.sd_model_hash, "clip_skip": self.clip_skip,
            "job_timestamp": self.job_timestamp, "infotexts": self.infotexts,
            "index_of_first_image": self.index_of_first_image, "styles": [],
            "extra_generation_params": {}, "restore_faces": False, "is_using_inpainting_conditioning": False,
        }
