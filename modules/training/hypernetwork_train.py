"""Train a hypernetwork (Train tab "Train Hypernetwork", ``POST /sdapi/v1/train/hypernetwork``).

A1111 behaviour implemented (reference §3.7; A1111 ``hypernetworks/hypernetwork.py`` ``train_hypernetwork``):

* The hypernetwork ``models/hypernetworks/<name>.pt`` (made by Create hypernetwork) is loaded and wrapped around
  every attention ``to_k``/``to_v`` input of the UNet at multiplier 1, exactly as ``<hypernet:name:1>`` applies it;
  only its layers learn (AdamW with torch's defaults, as A1111's default ``optimizer_name``); the model is frozen,
  dropout layers are active while training. The conditioning of a template prompt (``[name]`` = the hypernetwork
  name, ``[filewords]`` the image's words) is computed without gradient; the loss is the same diffusion MSE as the
  embedding trainer (:func:`~.textual_inversion.diffusion_loss`), optionally weighted by the PNG alpha channel.
* Learning rate (default ``0.00001``) and clipping value take the schedule syntax (``0.005:100, 1e-3:1000``);
  batch size, gradient accumulation, shuffle tags, tag dropout and latent sampling (once/deterministic/random) work
  as for embeddings; SDXL, inpainting and instruct-pix2pix models are refused (A1111 trains SD1/SD2).
* Saving: the file keeps A1111's layout (width keys → ``(k_state_dict, v_state_dict)`` plus the metadata the file
  had) with ``step``, ``sd_checkpoint`` (short hash) and ``sd_checkpoint_name`` updated; written atomically. Every
  ``save_hypernetwork_every`` steps a copy goes to ``<log dir>/<date>/<name>/hypernetworks/<name>-<step>.pt`` and
  the main file is updated; at the end (also after Interrupt) the main file holds the step reached, so training the
  same hypernetwork again resumes from it. ``hypernetwork_loss.csv`` gets a row every ``training_write_csv_every``
  steps; ``save_optimizer_state`` writes ``<file>.optim`` (AdamW state, paired with the weights by hash).
* Progress (step of steps, epoch, loss; ETA from ``/sdapi/v1/progress``) is the job's; Interrupt stops after the
  current batch. Previews, epochs and the training settings: :mod:`modules.training.train_common`.
"""

from __future__ import annotations

import datetime
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modules.models.networks.hypernetworks import Hypernetwork, add_hypernetworks, hypernetwork_from_dict
from modules.models.nn.text_encoders import encode_prompts
from modules.models.patcher import ModelPatcher
from modules.models.safe_unpickle import load_torch_file
from modules.models.sd_model import StableDiffusionModel
from modules.processing.conditioning import find_text_encoders
from modules.processing.context import AppContext
from modules.processing.extra_networks import model_components
from modules.processing.vae_io import encode_tensor
from modules.runtime.jobs import Interrupted, Job
from modules.training.atomic import atomic_torch_save
from modules.training.tasks import loaded_model
from modules.training.tensorboard_log import open_tensorboard
from modules.training.textual_inversion import CLIP_GRAD_MODES, LATENT_SAMPLING, diffusion_loss, write_loss_csv
from modules.training.ti_dataset import (
    Sample,
    TrainingError,
    list_templates,
    load_dataset,
    make_prompt,
    parse_schedule,
    rate_at,
    read_template,
)
from modules.training.train_common import (
    PreviewOptions,
    TrainingModelState,
    TrainingOptions,
    TrainingResult,
    draw_batch,
    epoch_text,
    make_preview,
    pinned,
    save_settings_file,
    steps_per_epoch,
)


@dataclass
class TrainHypernetworkOptions(TrainingOptions):
    """The A1111 ``train/hypernetwork`` fields (names and defaults as A1111)."""

    hypernetwork_name: str
    learn_rate: str = field(default="0.00001", kw_only=True)
    save_hypernetwork_every: int = field(default=500, kw_only=True)


@dataclass
class HypernetworkTrainResult(TrainingResult):
    """Where training ended."""

    KIND = "hypernetwork"


def trainable_modules(network: Hypernetwork) -> list[nn.Module]:
    """Every k/v module of ``network``, switched to training (gradients on, dropout active)."""
    modules: list[nn.Module] = []
    for pair in network.layers.values():
        for module in pair:
            module.train().requires_grad_(True)
            modules.append(module)
    return modules


def weights_hash(modules: Sequence[nn.Module]) -> str:
    """Short hash of the weights (pairs a saved optimizer state with the weights it belongs to)."""
    digest = hashlib.sha256()
    for module in modules:
        for tensor in module.state_dict().values():
            digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def hypernetwork_file_data(network: Hypernetwork, original: dict[Any, Any], step: int,
                           model: StableDiffusionModel) -> dict[Any, Any]:
    """The dict to save: the original file's metadata with the trained layers, the step and the checkpoint."""
    data: dict[Any, Any] = {k: v for k, v in original.items() if not isinstance(k, int) or isinstance(k, bool)}
    for width, (k_module, v_module) in network.layers.items():
        data[width] = tuple({key: value.detach().cpu().clone() for key, value in module.state_dict().items()}
                            for module in (k_module, v_module))
    data.update(step=int(step), sd_checkpoint=model.checkpoint.shorthash,
                sd_checkpoint_name=model.checkpoint.model_name)
    return data


def save_hypernetwork(network: Hypernetwork, original: dict[Any, Any], step: int, model: StableDiffusionModel,
                      path: Path, optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write the trained hypernetwork atomically; with ``optimizer`` also ``<path>.optim``."""
    data = hypernetwork_file_data(network, original, step, model)
    if optimizer is not None:
        data["optimizer_name"] = "AdamW"
    atomic_torch_save(data, path)
    if optimizer is not None:
        modules = [m for pair in network.layers.values() for m in pair]
        atomic_torch_save({"hash": weights_hash(modules), "optimizer_state_dict": optimizer.state_dict()},
                          path.with_name(path.name + ".optim"))
    return path


def _check(ctx: AppContext, options: TrainHypernetworkOptions, model: StableDiffusionModel) -> tuple[Path, Path]:
    if model.is_sdxl:
        raise TrainingError("Training hypernetworks for SDXL models is not supported (neither in A1111); "
                            "load an SD1 or SD2 checkpoint")
    if int(model.architecture.unet.in_channels) != 4:
        raise TrainingError(f"Training hypernetworks needs a txt2img model; the loaded one is {model.family}")
    path = ctx.networks.list_hypernetworks().get(options.hypernetwork_name)
    if path is None:
        raise TrainingError(f"Hypernetwork {options.hypernetwork_name!r} not found; create it first "
                            "(Train → Create hypernetwork)")
    template = list_templates(ctx.paths.textual_inversion_templates_dir).get(options.template_filename)
    if template is None:
        raise TrainingError(f"Prompt template {options.template_filename!r} not found in "
                            f"{ctx.paths.textual_inversion_templates_dir}")
    for name, value in (("batch_size", options.batch_size), ("gradient_step", options.gradient_step),
                        ("steps", options.steps)):
        if int(value) < 1:
            raise TrainingError(f"{name} must be at least 1, got {value}")
    if options.latent_sampling_method not in LATENT_SAMPLING:
        raise TrainingError(f"latent_sampling_method must be one of {', '.join(LATENT_SAMPLING)}")
    if options.clip_grad_mode not in CLIP_GRAD_MODES:
        raise TrainingError(f"clip_grad_mode must be one of {', '.join(CLIP_GRAD_MODES)}")
    if options.varsize and options.batch_size > 1:
        raise TrainingError("Do not resize images needs batch size 1 (images of different sizes cannot be batched)")
    if not 0 <= float(options.tag_drop_out) < 1:
        raise TrainingError("tag_drop_out must be in [0, 1)")
    if int(options.preview.create_image_every) < 0 or int(options.save_hypernetwork_every) < 0:
        raise TrainingError("create_image_every and save_hypernetwork_every must be 0 (off) or more")
    return path, template


def _load(ctx: AppContext, path: Path, name: str) -> tuple[dict[Any, Any], Hypernetwork]:
    try:
        data = load_torch_file(path, safe=ctx.networks.safe_unpickle)
        if not isinstance(data, dict):
            raise TrainingError(f"{path.name} is not a hypernetwork file (expected a dict)")
        return data, hypernetwork_from_dict(data, name, path)
    except TrainingError:
        raise
    except Exception as error:  # unreadable / malformed file: the user's input
        raise TrainingError(f"Hypernetwork {name!r} cannot be loaded ({error})") from None


def train_hypernetwork_job(ctx: AppContext, options: TrainHypernetworkOptions, *, job: Job) -> HypernetworkTrainResult:
    """Train on the queue (see the module docstring)."""
    model = loaded_model(ctx)
    target, template = _check(ctx, options, model)
    name = options.hypernetwork_name
    original, network = _load(ctx, target, name)
    start = int(original.get("step") or 0)
    if start >= options.steps:
        raise TrainingError(f"Hypernetwork {name!r} is already trained to step {start}; raise Max steps to go on")
    rates = parse_schedule(options.learn_rate, options.steps, start)
    clips = parse_schedule(options.clip_grad_value, options.steps, start, "gradient clipping") \
        if options.clip_grad_mode != "disabled" else []
    settings = ctx.settings
    samples = load_dataset(options.data_root, int(options.training_width), int(options.training_height),
                           varsize=options.varsize, use_weight=options.use_weight,
                           word_regex=str(settings.get("dataset_filename_word_regex") or ""),
                           join_string=str(settings.get("dataset_filename_join_string") or ""))
    if options.batch_size > len(samples):
        raise TrainingError(f"Batch size {options.batch_size} is larger than the dataset ({len(samples)} images)")
    lines = read_template(template)
    clip_l, open_clip = find_text_encoders(model.text_encoders)
    encoder = clip_l if clip_l is not None else open_clip
    assert encoder is not None
    device = model.device
    network.to(device)
    modules = trainable_modules(network)
    weights = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(weights, lr=rates[0][0])
    keep_optimizer = bool(settings.get("save_optimizer_state"))
    optim_file = target.with_name(target.name + ".optim")
    if keep_optimizer and optim_file.is_file():
        saved = load_torch_file(optim_file, map_location="cpu")  # start-up torch.load + allow-list (security §12)
        if isinstance(saved, dict) and saved.get("hash") == weights_hash(modules):
            optimizer.load_state_dict(saved["optimizer_state_dict"])
    log_dir = Path(ctx.paths.data_dir) / options.log_directory / datetime.date.today().isoformat() / name
    (log_dir / "hypernetworks").mkdir(parents=True, exist_ok=True)
    images_dir = log_dir / "images"
    save_settings_file(ctx, log_dir, {
        **vars(options), **vars(options.preview), "model_name": model.checkpoint.model_name,
        "model_hash": model.checkpoint.shorthash, "initial_step": start, "num_of_dataset_images": len(samples),
        "template_file": str(template), "layer_structure": original.get("layer_structure"),
        "activation_func": original.get("activation_func"), "weight_init": original.get("weight_initialization"),
        "add_layer_norm": original.get("is_layer_norm"), "use_dropout": original.get("use_dropout")})
    csv_every = max(1, int(settings.get("training_write_csv_every") or 500))
    board = open_tensorboard(ctx.settings, log_dir)
    per_epoch = steps_per_epoch(len(samples), int(settings.get("training_image_repeats_per_epoch") or 1),
                                int(options.batch_size), int(options.gradient_step))
    rng = random.Random()
    generator = torch.Generator().manual_seed(rng.randrange(2 ** 63))
    clip_skip = int(settings.get("CLIP_stop_at_last_layers") or 1)
    lookup = ctx.networks.lookup()
    frozen = [(p, p.requires_grad) for part in model.components().values() for p in part.parameters()]
    for parameter, _ in frozen:
        parameter.requires_grad_(False)
    random_latents = options.latent_sampling_method == "random"
    model_state = TrainingModelState(ctx, model, unload_vae=not random_latents, unload_text=True)

    def latents_of(sample: Sample) -> torch.Tensor:
        pixels = sample.pixels.unsqueeze(0).to(device)
        with torch.no_grad():
            return encode_tensor(model, pixels, seed=rng.randrange(2 ** 31), sample=options.latent_sampling_method != "deterministic")

    cached = {id(s): pinned(latents_of(s).cpu(), ctx) for s in samples} if not random_latents else {}
    patcher = ModelPatcher(model_components(model))
    add_hypernetworks(patcher, [(network, 1.0)])
    order: list[Sample] = []
    step, loss_value = start, None
    recent: list[float] = []
    previews: list[Path] = []
    total_steps = options.steps - start
    job.state.set_sampling_steps(total_steps)
    job.state.set_textinfo(f"Training hypernetwork {name}")
    interrupted = False
    text_device = device
    model_state.enter()
    patcher.apply()
    try:
        while step < options.steps:
            rate = rate_at(rates, step)
            if rate is None:
                break
            for group in optimizer.param_groups:
                group["lr"] = rate
            total = 0.0
            first_prompt = ""
            for _ in range(int(options.gradient_step)):
                job.state.check()
                batch = draw_batch(order, samples, int(options.batch_size), rng)
                prompts = [make_prompt(lines, name, s.words, rng, shuffle_tags=options.shuffle_tags,
                                       tag_drop_out=float(options.tag_drop_out)) for s in batch]
                first_prompt = first_prompt or prompts[0]
                with torch.no_grad():
                    context = encode_prompts(encoder, prompts, embedding_lookup=lookup, clip_skip=clip_skip).cond
                context = context.to(text_device)
                latents = torch.cat([cached[id(s)].to(device) if cached else latents_of(s) for s in batch])
                alpha = [s.weight for s in batch if s.weight is not None]
                weight = nn.functional.interpolate(torch.stack(alpha), size=latents.shape[-2:], mode="area") \
                    if options.use_weight and len(alpha) == len(batch) else None
                loss = diffusion_loss(model, context, latents, generator, weight) / int(options.gradient_step)
                loss.backward()
                total += float(loss.detach())
            clip = rate_at(clips, step) if clips else None
            if clip is not None and options.clip_grad_mode == "value":
                nn.utils.clip_grad_value_(weights, clip)
            elif clip is not None:
                nn.utils.clip_grad_norm_(weights, clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step, loss_value = step + 1, total
            recent = [*recent[-31:], total]
            mean_loss = sum(recent) / len(recent)
            job.state.step(step - start)
            job.state.set_textinfo(f"Training hypernetwork {epoch_text(step - start, per_epoch, mean_loss)}")
            if step % csv_every == 0 or step == options.steps:
                write_loss_csv(log_dir / "hypernetwork_loss.csv", step, (step - 1) // per_epoch,
                               (step - 1) % per_epoch + 1, mean_loss, rate)
                if board is not None:
                    board.add_scalars(loss=mean_loss, learn_rate=rate, global_step=step, epoch=(step - 1) // per_epoch,
                                      epoch_step=(step - 1) % per_epoch + 1)
            if options.save_hypernetwork_every > 0 and step % options.save_hypernetwork_every == 0 \
                    and step < options.steps:
                save_hypernetwork(network, original, step, model, log_dir / "hypernetworks" / f"{name}-{step}.pt")
                save_hypernetwork(network, original, step, model, target, optimizer if keep_optimizer else None)
            every = int(options.preview.create_image_every)
            if every > 0 and step % every == 0:
                save_hypernetwork(network, original, step, model, target, optimizer if keep_optimizer else None)
                patcher.restore()
                network.to(device)
                try:
                    with model_state.suspended():
                        preview = _preview(ctx, job, options, first_prompt, step, images_dir)
                finally:
                    patcher.apply()
                if preview is not None:
                    previews.append(preview)
                    if board is not None:
                        board.add_preview(preview, global_step=step, epoch=(step - 1) // per_epoch)
                job.state.set_sampling_steps(total_steps)
                job.state.step(step - start)
    except Interrupted:
        interrupted = True
    finally:
        if board is not None:
            board.close()
        if patcher.is_applied:
            patcher.restore()
        if model_state.active:
            model_state.leave()
        for parameter, flag in frozen:
            parameter.requires_grad_(flag)
    save_hypernetwork(network, original, step, model, target, optimizer if keep_optimizer else None)
    return HypernetworkTrainResult(target, step, step - start, loss_value, interrupted, log_dir, previews)


def _preview(ctx: AppContext, job: Job, options: TrainHypernetworkOptions, prompt: str, step: int,
             images_dir: Path) -> Path | None:
    """A preview with the saved hypernetwork applied as ``<hypernet:name:1>`` (A1111 keeps it loaded)."""
    tag = f" <hypernet:{options.hypernetwork_name}:1>"
    preview = options.preview
    adjusted = PreviewOptions(**{**vars(preview), "preview_prompt": preview.preview_prompt + tag})
    return make_preview(ctx, job, adjusted, name=options.hypernetwork_name, step=step, prompt=prompt + tag,
                        width=options.training_width, height=options.training_height, images_dir=images_dir)
