"""What the embedding and hypernetwork trainers share: epochs, the settings file, the training-time model set-up and
preview images.

A1111 behaviour implemented (A1111 ``textual_inversion.py`` / ``hypernetworks/hypernetwork.py``, ``saving_settings``;
reference §3.7 and the Training settings):

* Epochs: the dataset holds every image ``training_image_repeats_per_epoch`` times, so an epoch is
  ``images × repeats // batch_size // gradient_step`` steps (at least 1); the progress text is
  ``[Epoch e: s/steps_per_epoch]loss: …`` with ``e = step // steps_per_epoch`` and ``s = step % steps_per_epoch + 1``.
  The setting only changes this display (A1111: "used only for displaying epoch number").
* ``save_training_settings_to_txt`` (default on): ``<log dir>/settings-<YYYY-mm-dd-HH-MM-SS>.json`` holds the
  training parameters (A1111's key set: model name/hash, initial step, dataset size, learn rate, batch size, …; the
  preview keys only with "Read parameters from txt2img tab") plus ``datetime``.
* ``training_xattention_optimizations`` off (default): the model's attention runs the original (unoptimised)
  implementation while training, as A1111's ``sd_hijack.undo_optimizations()``; the app's backend is put back for
  previews and at the end.
* ``unload_models_when_training``: the VAE (when latents are cached, i.e. not "random" sampling) and, for
  hypernetworks, the text encoder are moved to the CPU while training and back for previews and at the end; on a
  CPU-only machine they already are there.
* ``pin_memory``: the cached latents are pinned (page-locked) for faster host→device copies, when a CUDA device
  exists (A1111's DataLoader ``pin_memory``; pinning needs CUDA).
* Preview ("Save an image to log directory every N steps, 0 to disable"): a txt2img image made through the normal
  pipeline with the network being trained, saved as ``<log dir>/images/<name>-<step>.<samples_format>`` with its
  infotext. With "Read parameters (prompt, etc...) from txt2img tab when making previews" the prompt, negative
  prompt, steps, sampler, CFG scale, seed and size are the txt2img tab's; otherwise the prompt is the batch's first
  training prompt, 20 steps and the training width/height (A1111 defaults for the rest).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modules.images.saving import save_image
from modules.memory.attention import set_attention_backend
from modules.models.sd_model import StableDiffusionModel
from modules.processing.context import AppContext
from modules.processing.params import Txt2ImgParams
from modules.processing.run import run_txt2img
from modules.runtime.jobs import Job

log = logging.getLogger(__name__)

SAVED_SHARED = ("model_name", "model_hash", "initial_step", "num_of_dataset_images", "learn_rate", "batch_size",
                "clip_grad_mode", "clip_grad_value", "gradient_step", "data_root", "log_directory", "training_width",
                "training_height", "steps", "create_image_every", "template_file", "latent_sampling_method")
SAVED_TI = ("embedding_name", "num_vectors_per_token", "save_embedding_every", "save_image_with_stored_embedding")
SAVED_HYPERNET = ("hypernetwork_name", "layer_structure", "activation_func", "weight_init", "add_layer_norm",
                  "use_dropout", "save_hypernetwork_every")
SAVED_PREVIEWS = ("preview_prompt", "preview_negative_prompt", "preview_steps", "preview_sampler_index",
                  "preview_cfg_scale", "preview_seed", "preview_width", "preview_height")
"""A1111 ``saving_settings.saved_params_*``: the keys the settings file may hold."""


@dataclass
class PreviewOptions:
    """A1111's preview fields of ``train/embedding`` and ``train/hypernetwork`` (names and defaults as A1111)."""

    create_image_every: int = 500
    preview_from_txt2img: bool = False
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = 20
    preview_sampler_name: str = "Euler a"
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    preview_width: int = 512
    preview_height: int = 512


@dataclass(kw_only=True)
class TrainingOptions:
    """The fields A1111's ``train/embedding`` and ``train/hypernetwork`` share (names and defaults as A1111; each
    trainer's options class adds its name and save-every field and its own learning-rate default)."""

    learn_rate: str = "0.005"
    batch_size: int = 1
    gradient_step: int = 1
    data_root: str = ""
    log_directory: str = "textual_inversion"
    training_width: int = 512
    training_height: int = 512
    varsize: bool = False
    steps: int = 100000
    clip_grad_mode: str = "disabled"
    clip_grad_value: str = "0.1"
    shuffle_tags: bool = False
    tag_drop_out: float = 0.0
    latent_sampling_method: str = "once"
    use_weight: bool = False
    template_filename: str = "style_filewords.txt"
    preview: PreviewOptions = field(default_factory=PreviewOptions)


@dataclass
class TrainingResult:
    """Where a training run ended; ``KIND`` names the trainer in A1111's API answer."""

    KIND = "embedding"

    path: Path
    step: int
    steps_done: int
    loss: float | None
    interrupted: bool
    log_dir: Path
    previews: list[Path] = field(default_factory=list)

    @property
    def info(self) -> str:
        """A1111's API answer text."""
        word = "interrupted" if self.interrupted else "complete"
        return f"train {self.KIND} {word}: filename: {self.path} error: None"


def steps_per_epoch(images: int, repeats: int, batch_size: int, gradient_step: int) -> int:
    """Optimizer steps in one epoch (rule in the module docstring)."""
    return max(1, images * max(1, repeats) // max(1, batch_size) // max(1, gradient_step))


def epoch_text(step: int, per_epoch: int, loss: float) -> str:
    """A1111's progress description after ``step`` steps (``step`` counts finished steps, so the current one is
    ``step - 1``)."""
    current = max(0, step - 1)
    return f"[Epoch {current // per_epoch}: {current % per_epoch + 1}/{per_epoch}]loss: {loss:.7f}"


def save_settings_file(ctx: AppContext, log_dir: Path, params: Mapping[str, Any]) -> Path | None:
    """Write ``settings-<time>.json`` when ``save_training_settings_to_txt`` is on; returns the path."""
    if not ctx.settings.get("save_training_settings_to_txt"):
        return None
    now = datetime.datetime.now()
    keys = set(SAVED_SHARED) | set(SAVED_TI) | set(SAVED_HYPERNET)
    if params.get("preview_from_txt2img"):
        keys |= set(SAVED_PREVIEWS)
    data: dict[str, Any] = {"datetime": now.strftime("%Y-%m-%d %H:%M:%S")}
    data.update({k: v for k, v in params.items() if k in keys})
    path = log_dir / f"settings-{now.strftime('%Y-%m-%d-%H-%M-%S')}.json"
    log_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, default=str), encoding="utf-8")
    return path


class TrainingModelState:
    """The training-time changes of the model (attention implementation, parts on the CPU) and their undoing."""

    def __init__(self, ctx: AppContext, model: StableDiffusionModel, *, unload_vae: bool, unload_text: bool) -> None:
        self.ctx, self.model = ctx, model
        self.plain_attention = not bool(ctx.settings.get("training_xattention_optimizations"))
        unload = bool(ctx.settings.get("unload_models_when_training"))
        self.unloaded = [m for m, wanted in ((model.vae, unload_vae), (model.text_encoder_module, unload_text))
                         if unload and wanted and m is not None]
        self.device = model.device
        self.active = self.active_once = False

    def enter(self) -> None:
        """Switch to training mode (see the module docstring)."""
        if self.plain_attention:
            for module in (self.model.unet, self.model.vae):
                set_attention_backend(module, "None")
            if not self.active_once:
                log.info("Training with the original attention implementation (training_xattention_optimizations "
                         "is off)")
        for module in self.unloaded:
            module.to("cpu")
        self.active = self.active_once = True

    def leave(self) -> None:
        """Back to the app's attention backend and devices."""
        if self.plain_attention:
            backend = self.ctx.models.attention.current()
            for module in (self.model.unet, self.model.vae):
                set_attention_backend(module, backend)
        for module in self.unloaded:
            module.to(self.device)
        self.active = False

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Normal generation inside the block (previews)."""
        self.leave()
        try:
            yield
        finally:
            self.enter()


def pinned(tensor: torch.Tensor, ctx: AppContext) -> torch.Tensor:
    """``tensor`` in page-locked memory when ``pin_memory`` is on and CUDA exists (else unchanged)."""
    if ctx.settings.get("pin_memory") and torch.cuda.is_available() and tensor.device.type == "cpu":
        return tensor.pin_memory()
    return tensor


def make_preview(ctx: AppContext, job: Job, options: PreviewOptions, *, name: str, step: int, prompt: str,
                 width: int, height: int, images_dir: Path) -> Path | None:
    """Generate and save one preview image (rules in the module docstring); None when the pipeline made none."""
    if options.preview_from_txt2img:
        params = Txt2ImgParams(prompt=options.preview_prompt, negative_prompt=options.preview_negative_prompt,
                               steps=int(options.preview_steps), sampler_name=options.preview_sampler_name or None,
                               cfg_scale=float(options.preview_cfg_scale), seed=int(options.preview_seed),
                               width=int(options.preview_width), height=int(options.preview_height))
    else:
        params = Txt2ImgParams(prompt=prompt, steps=20, width=int(width), height=int(height))
    params.do_not_save_samples = params.do_not_save_grid = True
    result = run_txt2img(ctx, params, job)
    if not result.images:
        return None
    index = result.index_of_first_image
    saved = save_image(result.images[index], images_dir, "", settings=ctx.settings.values(), seed=result.all_seeds[0],
                       prompt=result.all_prompts[0], info=result.infotexts[index],
                       forced_filename=f"{name}-{step}", save_to_dirs=False)
    log.info("Training preview saved: %s", saved.path)
    return saved.path


def draw_batch(order: list[Any], samples: list[Any], size: int, rng: Any) -> list[Any]:
    """The next `size` samples, each epoch in a fresh random order (`order` is the rest of the current epoch and is
    refilled with a shuffled copy of `samples` when it runs out; A1111's dataset loader shuffles per epoch)."""
    batch = []
    for _ in range(size):
        if not order:
            order.extend(rng.sample(samples, len(samples)))
        batch.append(order.pop())
    return batch
