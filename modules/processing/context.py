"""The application context passed explicitly to every job: flags, paths, settings, models and every registry.

A1111 reaches all of these through module globals (`shared.opts`, `shared.sd_model`, `shared.state`, …). Here one
`AppContext` is built at start-up by the composition root (`webui.build_context`, docs/architecture.md) and handed
to the UI, the API and each job; nothing is global, so two apps (e.g. two test servers) can live in one process.
Every field is required: a collaborator that is missing is a start-up error, never a feature silently switched off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from modules.cli.flags import FlagValues
from modules.cli.paths import Paths
from modules.extensions.callbacks import CallbackRegistry
from modules.extensions.manager import Extension
from modules.extensions.runner import ScriptRunner
from modules.extensions.scripts_postprocessing import PostprocessingScripts
from modules.interrogate import Interrogators
from modules.models.manager import ModelManager
from modules.models.vae_files import VaeRegistry
from modules.postprocessing.face_restorers import FaceRestorerRegistry
from modules.postprocessing.upscalers import UpscalerRegistry
from modules.processing.cond_cache import CondCache
from modules.processing.extra_networks import NetworkLibrary
from modules.processing.tiny_vae import TinyVaes
from modules.prompts.styles import StyleDatabase
from modules.runtime.jobs import JobQueue
from modules.settings.store import Settings


@dataclass(frozen=True)
class ScriptRunners:
    """The Script runners of the two generation tabs (A1111 `scripts.scripts_txt2img` / `scripts_img2img`)."""

    txt2img: ScriptRunner
    img2img: ScriptRunner
    postprocessing: PostprocessingScripts = field(default_factory=PostprocessingScripts)
    """The Extras-tab scripts (A1111 `scripts.scripts_postproc`)."""

    def for_kind(self, kind: str) -> ScriptRunner:
        """The runner of a "txt2img" or "img2img" job."""
        if kind not in ("txt2img", "img2img"):
            raise ValueError(f"unknown job kind {kind!r}")
        return self.img2img if kind == "img2img" else self.txt2img


@dataclass
class AppContext:
    """Everything the UI, the API and a job reach; built only by `webui.build_context`."""

    flags: FlagValues
    paths: Paths
    settings: Settings
    models: ModelManager
    vaes: VaeRegistry
    jobs: JobQueue
    styles: StyleDatabase
    networks: NetworkLibrary
    upscalers: UpscalerRegistry
    face_restorers: FaceRestorerRegistry
    interrogators: Interrogators
    """CLIP and DeepBooru interrogation (A1111 `shared.interrogator`, `deepbooru.model`)."""
    tiny_vaes: TinyVaes
    """Approx NN and TAESD networks: live previews, `sd_vae_encode_method`/`sd_vae_decode_method` "TAESD"."""
    scripts: ScriptRunners
    callbacks: CallbackRegistry
    extensions: list[Extension]
    """Every discovered extension (enabled or not) in load order; their scripts are in `scripts`, their
    javascript/, style.css and localizations/ go to the page."""
    startup_warnings: list[str] = field(default_factory=list)
    cond_cache: CondCache = field(default_factory=CondCache)
    """The last job's prompt conds, kept for the next job with `persistent_cond_cache` (A1111 `cached_c`)."""
    request_restart: Callable[[], None] | None = None
    """Set only when a launcher restarts the server (webui.sh exports SD_WEBUI_RESTART; `webui.wire_restart`)."""


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
            "notices": self.notices,
        }
