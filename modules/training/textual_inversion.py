"""Train a textual-inversion embedding (Train tab "Train Embedding", ``POST /sdapi/v1/train/embedding``).

A1111 behaviour implemented (reference §3.7; A1111 ``textual_inversion.train_embedding``):

* Only the embedding's vectors learn (AdamW, weight decay 0); the model is frozen. A step is one optimizer step over
  ``gradient_step`` batches of ``batch_size`` images; the loss of a batch is the MSE between the UNet's prediction
  and its target (the noise; for v-prediction models ``√ᾱ·noise − √(1−ᾱ)·x₀``) at a random timestep, for the
  conditioning of a template prompt that names the embedding. "Use PNG alpha channel as loss weight" weights it.
* Learning rate and gradient-clipping value accept the schedule syntax of :func:`~.ti_dataset.parse_schedule`;
  clipping is ``disabled``, ``value`` or ``norm``. Latents are sampled ``once`` (at the start), ``deterministic``
  (the VAE's mean) or ``random`` (re-sampled every time the image is used).
* Training resumes from the step stored in the embedding file and stops at ``steps`` (or when the schedule ends).
  Every ``save_embedding_every`` steps (0: never) a copy ``<log dir>/<date>/<name>/embeddings/<name>-<step>.pt`` is written
  (and the main file is updated, so a crash loses at most that many steps); at the end — also after an interrupt —
  ``embeddings/<name>.pt`` holds the vectors and the step reached. ``textual_inversion_loss.csv`` (step, epoch,
  epoch_step, loss, learn_rate) gets a row every ``training_write_csv_every`` steps. With the
  ``save_optimizer_state`` setting the AdamW state goes to ``<name>.pt.optim`` and is picked up when resuming the
  same vectors.
* Progress (step of steps, loss) is the job's progress (``/sdapi/v1/progress``); Interrupt stops after the current
  batch. SDXL, inpainting and instruct-pix2pix models are refused (A1111 trains SD1/SD2 txt2img models).
  Previews (``create_image_every``), epochs, the settings file and the training-time model set-up:
  :mod:`modules.training.train_common` (the preview prompt names the embedding, so it shows the current vectors).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from modules.models.fp8_storage import compute_dtype
from modules.models.networks.embeddings import Embedding
from modules.models.nn.text_encoders import encode_prompts
from modules.models.safe_unpickle import load_torch_file
from modules.models.sd_model import StableDiffusionModel
from modules.processing.conditioning import find_text_encoders
from modules.processing.context import AppContext
from modules.processing.sampling_glue import model_schedule
from modules.processing.vae_io import encode_tensor
from modules.prompts.chunking import EmbeddingLookup, TextualInversionEmbedding
from modules.prompts.tokenizer import get_tokenizer
from modules.runtime.jobs import Interrupted, Job
from modules.training.atomic import atomic_torch_save
from modules.training.create_networks import A1111_STRING_TO_TOKEN
from modules.training.tasks import loaded_model
from modules.training.tensorboard_log import open_tensorboard
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

LATENT_SAMPLING = ("once", "deterministic", "random")
CLIP_GRAD_MODES = ("disabled", "value", "norm")


@dataclass
class TrainEmbeddingOptions(TrainingOptions):
    """The A1111 ``train/embedding`` fields this trainer uses (names and defaults as A1111)."""

    embedding_name: str
    save_embedding_every: int = field(default=500, kw_only=True)


@dataclass
class TrainResult(TrainingResult):
    """Where training ended."""

    KIND = "embedding"


@dataclass
class _Trainable:
    """What the chunker splices: the trainable vectors under the embedding's name."""

    name: str
    vector_count: int
    vec: torch.Tensor


def trainable_lookup(name: str, vec: torch.Tensor, flavor: str) -> EmbeddingLookup:
    """An embedding lookup that finds ``name``'s tokens and splices ``vec`` (with its gradient) there."""
    ids = tuple(get_tokenizer(flavor).encode(name))
    entry = _Trainable(name, int(vec.shape[0]), vec)

    def lookup(tokens: Sequence[int], position: int) -> tuple[TextualInversionEmbedding, int] | None:
        if ids and tuple(tokens[position:position + len(ids)]) == ids:
            return entry, len(ids)
        return None

    return lookup


def diffusion_loss(model: StableDiffusionModel, context: torch.Tensor, latents: torch.Tensor,
                   generator: torch.Generator, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean (weighted) MSE of the UNet's prediction at random timesteps (rules in the module docstring)."""
    alphas = model_schedule(model).alphas_cumprod.to(torch.float32)
    batch = latents.shape[0]
    t = torch.randint(0, alphas.numel(), (batch,), generator=generator)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    a = alphas[t].to(latents).view(batch, 1, 1, 1)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    target = a.sqrt() * noise - (1 - a).sqrt() * latents if model.prediction_type == "v" else noise
    unet = model.unet
    dtype = compute_dtype(unet)  # FP8-stored weights compute in their compute dtype (fp8_storage)
    with model.dtypes.autocast_context():
        predicted = unet(noisy.to(dtype), t.to(latents.device), context=context.to(dtype))
    error = (predicted.float() - target) ** 2
    if weight is not None:
        error = error * weight.to(error)
    return error.mean()


def checksum(vec: torch.Tensor) -> str:
    """Short hash of the vectors (pairs a saved optimizer state with the vectors it belongs to)."""
    return hashlib.sha256(vec.detach().cpu().float().numpy().tobytes()).hexdigest()[:16]


def save_embedding(vec: torch.Tensor, name: str, step: int, model: StableDiffusionModel, path: Path,
                   optimizer: torch.optim.Optimizer | None = None) -> Path:
    """A1111's embedding dict (see create_networks) with the trained vectors and step; ``optimizer`` also writes
    ``<path>.optim``."""
    data = {"string_to_token": dict(A1111_STRING_TO_TOKEN), "string_to_param": {"*": vec.detach().cpu().float()},
            "name": name, "step": int(step), "sd_checkpoint": model.checkpoint.shorthash,
            "sd_checkpoint_name": model.checkpoint.model_name}
    atomic_torch_save(data, path)
    if optimizer is not None:
        atomic_torch_save({"hash": checksum(vec), "optimizer_state_dict": optimizer.state_dict()},
                          path.with_name(path.name + ".optim"))
    return path


def _check(ctx: AppContext, options: TrainEmbeddingOptions, model: StableDiffusionModel) -> tuple[Embedding, Path]:
    if model.is_sdxl:
        raise TrainingError("Training embeddings for SDXL models is not supported (neither in A1111); "
                            "load an SD1 or SD2 checkpoint")
    if int(model.architecture.unet.in_channels) != 4:
        raise TrainingError(f"Training embeddings needs a txt2img model; the loaded one is {model.family}")
    ctx.networks.sync_embeddings(model)
    embedding = ctx.networks.embeddings.get(options.embedding_name)
    if embedding is None:
        skipped = options.embedding_name in ctx.networks.embeddings.skipped
        raise TrainingError(f"Embedding {options.embedding_name!r} " + (
            "was made for another model" if skipped else "not found; create it first (Train → Create embedding)"))
    if isinstance(embedding.vec, dict):
        raise TrainingError(f"Embedding {options.embedding_name!r} is an SDXL embedding")
    template = list_templates(ctx.paths.textual_inversion_templates_dir).get(options.template_filename)
    if template is None:
        raise TrainingError(f"Prompt template {options.template_filename!r} not found in "
                            f"{ctx.paths.textual_inversion_templates_dir}")
    for what, value in (("batch_size", options.batch_size), ("gradient_step", options.gradient_step),
                        ("steps", options.steps)):
        if int(value) < 1:
            raise TrainingError(f"{what} must be at least 1, got {value}")
    if options.latent_sampling_method not in LATENT_SAMPLING:
        raise TrainingError(f"latent_sampling_method must be one of {', '.join(LATENT_SAMPLING)}")
    if options.clip_grad_mode not in CLIP_GRAD_MODES:
        raise TrainingError(f"clip_grad_mode must be one of {', '.join(CLIP_GRAD_MODES)}")
    if options.varsize and options.batch_size > 1:
        raise TrainingError("Do not resize images needs batch size 1 (images of different sizes cannot be batched)")
    if not 0 <= float(options.tag_drop_out) < 1:
        raise TrainingError("tag_drop_out must be in [0, 1)")
    if int(options.preview.create_image_every) < 0 or int(options.save_embedding_every) < 0:
        raise TrainingError("create_image_every and save_embedding_every must be 0 (off) or more")
    return embedding, template


def train_embedding_job(ctx: AppContext, options: TrainEmbeddingOptions, *, job: Job) -> TrainResult:
    """Train on the queue (see the module docstring)."""
    model = loaded_model(ctx)
    embedding, template = _check(ctx, options, model)
    name, start = embedding.name, int(embedding.step or 0)
    if start >= options.steps:
        raise TrainingError(f"Embedding {name!r} is already trained to step {start}; raise Max steps to go on")
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
    vec = nn.Parameter(embedding.vectors_for().detach().clone().float().to(device))
    lookup = trainable_lookup(name, vec, encoder.tokenizer_flavor)
    optimizer = torch.optim.AdamW([vec], lr=rates[0][0], weight_decay=0.0)
    target = Path(ctx.paths.embeddings_dir) / f"{name}.pt"
    keep_optimizer = bool(settings.get("save_optimizer_state"))
    optim_file = target.with_name(target.name + ".optim")
    if keep_optimizer and optim_file.is_file():
        saved = load_torch_file(optim_file, map_location="cpu")  # start-up torch.load + allow-list (security §12)
        if isinstance(saved, dict) and saved.get("hash") == checksum(vec):
            optimizer.load_state_dict(saved["optimizer_state_dict"])
    log_dir = Path(ctx.paths.data_dir) / options.log_directory / datetime.date.today().isoformat() / name
    (log_dir / "embeddings").mkdir(parents=True, exist_ok=True)
    save_settings_file(ctx, log_dir, {
        **vars(options), **vars(options.preview), "model_name": model.checkpoint.model_name,
        "model_hash": model.checkpoint.shorthash, "initial_step": start, "num_of_dataset_images": len(samples),
        "template_file": str(template), "num_vectors_per_token": int(vec.shape[0])})
    csv_every = max(1, int(settings.get("training_write_csv_every") or 500))
    board = open_tensorboard(ctx.settings, log_dir)
    per_epoch = steps_per_epoch(len(samples), int(settings.get("training_image_repeats_per_epoch") or 1),
                                int(options.batch_size), int(options.gradient_step))
    rng = random.Random()
    generator = torch.Generator().manual_seed(rng.randrange(2 ** 63))
    clip_skip = int(settings.get("CLIP_stop_at_last_layers") or 1)
    frozen = [(p, p.requires_grad) for part in model.components().values() for p in part.parameters()]
    for parameter, _ in frozen:
        parameter.requires_grad_(False)

    def latents_of(sample: Sample) -> torch.Tensor:
        pixels = sample.pixels.unsqueeze(0).to(device)
        return encode_tensor(model, pixels, seed=rng.randrange(2 ** 31),
                             sample=options.latent_sampling_method != "deterministic")

    random_latents = options.latent_sampling_method == "random"
    cached = {id(s): pinned(latents_of(s).detach().cpu(), ctx) for s in samples} if not random_latents else {}
    model_state = TrainingModelState(ctx, model, unload_vae=not random_latents, unload_text=False)
    order: list[Sample] = []
    step, loss_value = start, None
    recent: list[float] = []
    previews: list[Path] = []
    job.state.set_sampling_steps(options.steps - start)
    job.state.set_textinfo(f"Training embedding {name}")
    interrupted = False
    model_state.enter()
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
                context = encode_prompts(encoder, prompts, embedding_lookup=lookup, clip_skip=clip_skip).cond
                latents = torch.cat([cached[id(s)].to(device) if cached else latents_of(s) for s in batch])
                weights = [s.weight for s in batch if s.weight is not None]
                weight = nn.functional.interpolate(torch.stack(weights), size=latents.shape[-2:], mode="area") \
                    if options.use_weight and len(weights) == len(batch) else None
                loss = diffusion_loss(model, context, latents, generator, weight) / int(options.gradient_step)
                loss.backward()
                total += float(loss.detach())
            clip = rate_at(clips, step) if clips else None
            if clip is not None and options.clip_grad_mode == "value":
                nn.utils.clip_grad_value_([vec], clip)
            elif clip is not None:
                nn.utils.clip_grad_norm_([vec], clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step, loss_value = step + 1, total
            recent = [*recent[-31:], total]
            mean_loss = sum(recent) / len(recent)
            job.state.step(step - start)
            job.state.set_textinfo(f"Training embedding {epoch_text(step - start, per_epoch, mean_loss)}")
            if step % csv_every == 0 or step == options.steps:
                write_loss_csv(log_dir / "textual_inversion_loss.csv", step, (step - 1) // per_epoch,
                               (step - 1) % per_epoch + 1, mean_loss, rate)
                if board is not None:
                    board.add_scalars(loss=mean_loss, learn_rate=rate, global_step=step, epoch=(step - 1) // per_epoch,
                                      epoch_step=(step - 1) % per_epoch + 1)
            if options.save_embedding_every > 0 and step % options.save_embedding_every == 0 \
                    and step < options.steps:
                save_embedding(vec, name, step, model, log_dir / "embeddings" / f"{name}-{step}.pt")
                save_embedding(vec, name, step, model, target, optimizer if keep_optimizer else None)
            every = int(options.preview.create_image_every)
            if every > 0 and step % every == 0:
                save_embedding(vec, name, step, model, target, optimizer if keep_optimizer else None)
                ctx.networks.embeddings.load(force=True)
                with model_state.suspended():
                    preview = make_preview(ctx, job, options.preview, name=name, step=step, prompt=first_prompt,
                                           width=options.training_width, height=options.training_height,
                                           images_dir=log_dir / "images")
                if preview is not None:
                    previews.append(preview)
                    if board is not None:
                        board.add_preview(preview, global_step=step, epoch=(step - 1) // per_epoch)
                job.state.set_sampling_steps(options.steps - start)
                job.state.step(step - start)
    except Interrupted:
        interrupted = True
    finally:
        if board is not None:
            board.close()
        if model_state.active:
            model_state.leave()
        for parameter, flag in frozen:
            parameter.requires_grad_(flag)
    save_embedding(vec, name, step, model, target, optimizer if keep_optimizer else None)
    ctx.networks.embeddings.load(force=True)
    return TrainResult(target, step, step - start, loss_value, interrupted, log_dir, previews)


def write_loss_csv(path: Path, step: int, epoch: int, epoch_step: int, loss: float, rate: float) -> None:
    """Append a row to the loss CSV (A1111 ``write_loss``: step, epoch, epoch_step, loss, learn_rate)."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["step", "epoch", "epoch_step", "loss", "learn_rate"])
        writer.writerow([step, epoch, epoch_step, f"{loss:.7f}", rate])
