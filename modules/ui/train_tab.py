"""Train tab (reference §3.7; A1111 ``ui.py`` "train" block): Create embedding, Create hypernetwork, Train.

Create embedding: Name, Initialization text ("*"), Number of vectors per token (1, 1–75), Overwrite Old Embedding →
``embeddings/<name>.pt`` initialised from the loaded model's token embeddings. Create hypernetwork: Name, Modules
(768, 1024, 320, 640, 1280; default 768, 320, 640, 1280), layer structure "1, 2, 1", activation function
("linear"), weight initialisation ("Normal"), Add layer normalization, Use dropout, dropout structure "0, 0, 0",
Overwrite Old Hypernetwork → ``models/hypernetworks/<name>.pt``. Both run as jobs on the shared queue; the outcome
("Created: <file>" or the error) is shown under the buttons, as A1111's ``ti_output``. Train: embedding dropdown,
learning rate (schedule syntax), gradient clipping, batch size, gradient accumulation, dataset directory, log
directory, prompt template (``textual_inversion_templates/``), width/height, "Do not resize images", max steps,
save-every, PNG alpha as loss weight, shuffle / drop out tags, latent sampling method, Train Embedding and Interrupt;
the outcome line shows the epoch, step and loss while it runs. As A1111, the same sub-tab trains a hypernetwork
(Hypernetwork dropdown, "Hypernetwork Learning rate" 0.00001, Train Hypernetwork; the save-every number is shared)
and makes previews: "Save an image to log directory every N steps, 0 to disable" (500) and "Read parameters
(prompt, etc...) from txt2img tab when making previews" (the txt2img prompt, negative prompt, steps, sampler, CFG,
seed and size; ``modules.training.train_common``). Preprocess images (A1111 1.0–1.6 sub-tab): source and
destination directories, width/height, existing caption action, keep original size, flipped copies, split
oversized images (threshold, overlap), auto focal point crop (face/entropy/edge weights, debug image), auto-sized
crop (dimension and area bounds, objective, error threshold), BLIP/DeepBooru captions, Preprocess and Interrupt
(``modules.training.preprocess``).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.runtime.jobs import Job, JobStatus
from modules.training.autocrop import MULTICROP_OBJECTIVES
from modules.training.create_networks import (
    DEFAULT_HYPERNETWORK_SIZES,
    HYPERNETWORK_SIZE_CHOICES,
    WEIGHT_INITS,
    activation_names,
)
from modules.training.hypernetwork_train import TrainHypernetworkOptions, train_hypernetwork_job
from modules.training.preprocess import CAPTION_ACTIONS, PreprocessOptions, preprocess_job
from modules.training.tasks import EmbeddingSpec, HypernetworkSpec, create_embedding_job, create_hypernetwork_job
from modules.training.textual_inversion import (
    CLIP_GRAD_MODES,
    LATENT_SAMPLING,
    TrainEmbeddingOptions,
    train_embedding_job,
)
from modules.training.ti_dataset import list_templates
from modules.training.train_common import PreviewOptions
from modules.ui.common import REFRESH_ICON, tool_button

POLL_SECONDS = 0.5


def outcome_html(text: str, error: bool = False) -> str:
    """The line under the buttons (A1111 ``ti_outcome``)."""
    css = "error" if error else "train-outcome"
    return f"<div class='{css}'>{html.escape(text)}</div>"


def follow_job(ctx: AppContext, submit: Callable[[], Job], done_text: Callable[[Any], str], *,
               partial_ok: bool = False) -> Iterator[str]:
    """Submit a job and yield the outcome line while it waits, runs and finishes (the handler never blocks the
    page: it polls the job). ``partial_ok``: an interrupted job that returned a value reports it (training)."""
    try:
        job = submit()
    except RuntimeError as exc:  # queue full / shut down
        yield outcome_html(str(exc), error=True)
        return
    while not job.wait(POLL_SECONDS):
        info = job.state.progress_info()
        yield outcome_html(str(info.get("textinfo") or "Waiting in queue…"))
    if job.status is JobStatus.DONE or (partial_ok and job.status is JobStatus.INTERRUPTED
                                        and job.result(timeout=0) is not None):
        yield outcome_html(done_text(job.result()))
    elif job.status is JobStatus.INTERRUPTED:
        yield outcome_html("Interrupted", error=True)
    else:
        yield outcome_html(f"Error: {job.error.message if job.error else 'unknown error'}", error=True)


def build_create_embedding(ctx: AppContext) -> Any:
    """The Create embedding sub-tab; returns the button's click event (the Train sub-tab refreshes its list after
    it, as A1111 does)."""
    name = gr.Textbox(label="Name", elem_id="train_new_embedding_name")
    init_text = gr.Textbox(label="Initialization text", value="*", elem_id="train_initialization_text")
    nvpt = gr.Slider(1, 75, value=1, step=1, label="Number of vectors per token", elem_id="train_nvpt")
    overwrite = gr.Checkbox(value=False, label="Overwrite Old Embedding", elem_id="train_overwrite_old_embedding")
    button = gr.Button("Create embedding", variant="primary", elem_id="train_create_embedding")
    outcome = gr.HTML(elem_id="train_create_embedding_outcome")

    def run(new_name: str, text: str, vectors: float, replace: bool) -> Iterator[str]:
        spec = EmbeddingSpec(new_name or "", int(vectors), bool(replace), text or "")
        yield from follow_job(ctx, lambda: ctx.jobs.submit(create_embedding_job, ctx, spec, kind="create_embedding"),
                              lambda path: f"Created: {path}")

    return button.click(run, [name, init_text, nvpt, overwrite], outcome, show_progress="minimal")


def build_create_hypernetwork(ctx: AppContext) -> gr.HTML:
    """The Create hypernetwork sub-tab; returns its outcome box."""
    name = gr.Textbox(label="Name", elem_id="train_new_hypernetwork_name")
    sizes = gr.CheckboxGroup([str(s) for s in HYPERNETWORK_SIZE_CHOICES],
                             value=[str(s) for s in DEFAULT_HYPERNETWORK_SIZES], label="Modules",
                             elem_id="train_new_hypernetwork_sizes")
    layers = gr.Textbox("1, 2, 1", label="Layer structure", info="width multipliers; first and last must be 1",
                        elem_id="train_new_hypernetwork_layer_structure")
    activation = gr.Dropdown(activation_names(), value="linear", label="Activation function",
                             info="linear = none", elem_id="train_new_hypernetwork_activation_func")
    weight_init = gr.Dropdown(list(WEIGHT_INITS), value="Normal", label="Layer weight initialization",
                              elem_id="train_new_hypernetwork_initialization_option")
    layer_norm = gr.Checkbox(label="Add layer normalization", elem_id="train_new_hypernetwork_add_layer_norm")
    dropout = gr.Checkbox(label="Use dropout", elem_id="train_new_hypernetwork_use_dropout")
    dropout_structure = gr.Textbox("0, 0, 0", label="Dropout structure",
                                   info="one probability per layer-structure entry; first and last must be 0",
                                   elem_id="train_new_hypernetwork_dropout_structure")
    overwrite = gr.Checkbox(value=False, label="Overwrite Old Hypernetwork",
                            elem_id="train_overwrite_old_hypernetwork")
    button = gr.Button("Create hypernetwork", variant="primary", elem_id="train_create_hypernetwork")
    outcome = gr.HTML(elem_id="train_create_hypernetwork_outcome")

    def run(new_name: str, chosen: list[str], structure: str, func: str, init: str, norm: bool, use_dropout: bool,
            dropouts: str, replace: bool) -> Iterator[str]:
        spec = HypernetworkSpec(new_name or "", list(chosen or []), bool(replace), structure, func, init, bool(norm),
                                bool(use_dropout), dropouts)
        yield from follow_job(ctx, lambda: ctx.jobs.submit(create_hypernetwork_job, ctx, spec,
                                                           kind="create_hypernetwork"),
                              lambda path: f"Created: {path}")

    button.click(run, [name, sizes, layers, activation, weight_init, layer_norm, dropout, dropout_structure,
                       overwrite], outcome, show_progress="minimal")
    return outcome


def embedding_names(ctx: AppContext) -> list[str]:
    """Embeddings that fit the loaded model (A1111 lists ``embedding_db.word_embeddings``)."""
    ctx.networks.sync_embeddings(ctx.models.current)
    return sorted(ctx.networks.embeddings.word_embeddings)


def hypernetwork_names(ctx: AppContext) -> list[str]:
    """The hypernetwork files (A1111 lists ``shared.hypernetworks``)."""
    return sorted(ctx.networks.list_hypernetworks(), key=str.lower)


def preview_options(every: float, from_txt2img: bool, values: tuple[Any, ...]) -> PreviewOptions:
    """Preview options from the form and the txt2img fields (prompt, negative, steps, sampler, CFG, seed, w, h)."""
    defaults = PreviewOptions()
    names = ("preview_prompt", "preview_negative_prompt", "preview_steps", "preview_sampler_name",
             "preview_cfg_scale", "preview_seed", "preview_width", "preview_height")
    read = {name: value for name, value in zip(names, values, strict=False) if value is not None}
    for key in ("preview_steps", "preview_seed", "preview_width", "preview_height"):
        if key in read:
            read[key] = int(read[key])
    return PreviewOptions(**{**vars(defaults), **read, "create_image_every": int(every or 0),
                             "preview_from_txt2img": bool(from_txt2img)})


def build_train_embedding(ctx: AppContext, preview_params: list[Any] | None = None) -> gr.Dropdown:
    """The Train sub-tab (embedding and hypernetwork training; A1111's fields, reference §3.7); returns the embedding
    list."""
    with gr.Row():
        embedding = gr.Dropdown(embedding_names(ctx), label="Embedding", elem_id="train_embedding")
        refresh = tool_button(REFRESH_ICON, "train_refresh_embeddings")
    with gr.Row():
        hypernetwork = gr.Dropdown(hypernetwork_names(ctx), label="Hypernetwork", elem_id="train_hypernetwork")
        refresh_hypernetworks = tool_button(REFRESH_ICON, "train_refresh_hypernetworks")
    with gr.Row():
        learn_rate = gr.Textbox("0.005", label="Embedding Learning rate", placeholder="0.005:100, 1e-3:1000, 1e-5",
                                elem_id="train_embedding_learn_rate")
        hypernetwork_rate = gr.Textbox("0.00001", label="Hypernetwork Learning rate",
                                       placeholder="Hypernetwork Learning rate",
                                       elem_id="train_hypernetwork_learn_rate")
    with gr.Row():
        clip_mode = gr.Dropdown(list(CLIP_GRAD_MODES), value="disabled", label="Gradient Clipping",
                                elem_id="train_clip_grad_mode")
        clip_value = gr.Textbox("0.1", label="Clipping value", elem_id="train_clip_grad_value")
    with gr.Row():
        batch_size = gr.Number(1, label="Batch size", precision=0, minimum=1, elem_id="train_batch_size")
        gradient_step = gr.Number(1, label="Gradient accumulation steps", precision=0, minimum=1,
                                  elem_id="train_gradient_step")
    data_root = gr.Textbox(label="Dataset directory", placeholder="Path to directory with input images",
                           elem_id="train_dataset_directory")
    log_directory = gr.Textbox("textual_inversion", label="Log directory", elem_id="train_log_directory")
    templates = list(list_templates(ctx.paths.textual_inversion_templates_dir))
    with gr.Row():
        template = gr.Dropdown(templates, value="style_filewords.txt" if "style_filewords.txt" in templates else None,
                               label="Prompt template", elem_id="train_template_file")
        refresh_templates = tool_button(REFRESH_ICON, "train_refresh_templates")
    with gr.Row():
        width = gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id="train_training_width")
        height = gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id="train_training_height")
    varsize = gr.Checkbox(False, label="Do not resize images", elem_id="train_varsize")
    steps = gr.Number(100000, label="Max steps", precision=0, minimum=1, elem_id="train_steps")
    with gr.Row():
        image_every = gr.Number(500, label="Save an image to log directory every N steps, 0 to disable", precision=0,
                                minimum=0, elem_id="train_create_image_every")
        save_every = gr.Number(500, label="Save a copy of embedding to log directory every N steps, 0 to disable",
                               precision=0, minimum=0, elem_id="train_save_embedding_every")
    use_weight = gr.Checkbox(False, label="Use PNG alpha channel as loss weight", elem_id="use_weight")
    from_txt2img = gr.Checkbox(False, label="Read parameters (prompt, etc...) from txt2img tab when making previews",
                               elem_id="train_preview_from_txt2img")
    with gr.Row():
        shuffle = gr.Checkbox(False, label="Shuffle tags by ',' when creating prompts.", elem_id="train_shuffle_tags")
        drop_out = gr.Slider(0, 0.99, value=0, step=0.01, label="Drop out tags when creating prompts.",
                             elem_id="train_tag_drop_out")
    sampling = gr.Radio(list(LATENT_SAMPLING), value="once", label="Choose latent sampling method",
                        elem_id="train_latent_sampling_method")
    with gr.Row():
        interrupt = gr.Button("Interrupt", elem_id="train_interrupt_training")
        train_hypernetwork = gr.Button("Train Hypernetwork", variant="primary", elem_id="train_train_hypernetwork")
        train = gr.Button("Train Embedding", variant="primary", elem_id="train_train_embedding")
    outcome = gr.HTML(elem_id="train_embedding_outcome")

    refresh.click(lambda: gr.update(choices=embedding_names(ctx)), None, embedding, queue=False)
    refresh_hypernetworks.click(lambda: gr.update(choices=hypernetwork_names(ctx)), None, hypernetwork, queue=False)
    refresh_templates.click(lambda: gr.update(choices=list(list_templates(ctx.paths.textual_inversion_templates_dir))),
                            None, template, queue=False)
    interrupt.click(lambda: ctx.jobs.interrupt() and None, None, None, queue=False)

    def common(rate: str, mode: str, value: str, batch: float, accumulate: float, root: str, log_dir: str,
               template_file: str | None, w: float, h: float, keep_size: bool, max_steps: float, image_at: float,
               weight: bool, shuffle_tags: bool, drop: float, method: str, txt2img: bool,
               previews: tuple[Any, ...]) -> dict[str, Any]:
        return dict(
            learn_rate=rate, batch_size=int(batch or 1), gradient_step=int(accumulate or 1),
            data_root=root or "", log_directory=log_dir or "textual_inversion", training_width=int(w),
            training_height=int(h), varsize=bool(keep_size), steps=int(max_steps or 1), clip_grad_mode=mode,
            clip_grad_value=value, shuffle_tags=bool(shuffle_tags), tag_drop_out=float(drop),
            latent_sampling_method=method, use_weight=bool(weight), template_filename=template_file or "",
            preview=preview_options(image_at, txt2img, previews))

    def run(name: str | None, rate: str, mode: str, value: str, batch: float, accumulate: float, root: str,
            log_dir: str, template_file: str | None, w: float, h: float, keep_size: bool, max_steps: float,
            every: float, image_at: float, weight: bool, shuffle_tags: bool, drop: float, method: str,
            txt2img: bool, *previews: Any) -> Iterator[str]:
        fields = common(rate, mode, value, batch, accumulate, root, log_dir, template_file, w, h, keep_size,
                        max_steps, image_at, weight, shuffle_tags, drop, method, txt2img, previews)
        options = TrainEmbeddingOptions(name or "", save_embedding_every=int(every or 0), **fields)
        yield from follow_job(ctx, lambda: ctx.jobs.submit(train_embedding_job, ctx, options,
                                                           kind="train_embedding"),
                              lambda result: result.info.replace("train embedding", "Training", 1),
                              partial_ok=True)

    def run_hypernetwork(name: str | None, rate: str, mode: str, value: str, batch: float, accumulate: float,
                         root: str, log_dir: str, template_file: str | None, w: float, h: float, keep_size: bool,
                         max_steps: float, every: float, image_at: float, weight: bool, shuffle_tags: bool,
                         drop: float, method: str, txt2img: bool, *previews: Any) -> Iterator[str]:
        fields = common(rate, mode, value, batch, accumulate, root, log_dir, template_file, w, h, keep_size,
                        max_steps, image_at, weight, shuffle_tags, drop, method, txt2img, previews)
        options = TrainHypernetworkOptions(name or "", save_hypernetwork_every=int(every or 0), **fields)
        yield from follow_job(ctx, lambda: ctx.jobs.submit(train_hypernetwork_job, ctx, options,
                                                           kind="train_hypernetwork"),
                              lambda result: result.info.replace("train hypernetwork", "Training", 1),
                              partial_ok=True)

    shared = [clip_mode, clip_value, batch_size, gradient_step, data_root, log_directory, template, width, height,
              varsize, steps, save_every, image_every, use_weight, shuffle, drop_out, sampling, from_txt2img,
              *(preview_params or [])]
    train.click(run, [embedding, learn_rate, *shared], outcome, show_progress="minimal")
    train_hypernetwork.click(run_hypernetwork, [hypernetwork, hypernetwork_rate, *shared], outcome,
                             show_progress="minimal")
    return embedding


def build_preprocess(ctx: AppContext) -> gr.HTML:
    """The Preprocess images sub-tab (A1111 1.6 labels and ids); returns the outcome line."""
    src = gr.Textbox(label="Source directory", elem_id="train_process_src")
    dst = gr.Textbox(label="Destination directory", elem_id="train_process_dst")
    with gr.Row():
        width = gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id="train_process_width")
        height = gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id="train_process_height")
    txt_action = gr.Dropdown(list(CAPTION_ACTIONS), value="ignore", label="Existing Caption txt Action",
                             elem_id="train_preprocess_txt_action")
    with gr.Row():
        keep = gr.Checkbox(False, label="Keep original size", elem_id="train_process_keep_original_size")
        flip = gr.Checkbox(False, label="Create flipped copies", elem_id="train_process_flip")
        split = gr.Checkbox(False, label="Split oversized images", elem_id="train_process_split")
        focal = gr.Checkbox(False, label="Auto focal point crop", elem_id="train_process_focal_crop")
        multicrop = gr.Checkbox(False, label="Auto-sized crop", elem_id="train_process_multicrop")
        caption = gr.Checkbox(False, label="Use BLIP for caption", elem_id="train_process_caption")
        deepbooru = gr.Checkbox(False, label="Use deepbooru for caption", elem_id="train_process_caption_deepbooru")
    with gr.Row():
        threshold = gr.Slider(0, 1, value=0.5, step=0.05, label="Split image threshold",
                              elem_id="train_process_split_threshold")
        overlap = gr.Slider(0, 0.9, value=0.2, step=0.05, label="Split image overlap ratio",
                            elem_id="train_process_overlap_ratio")
    with gr.Row():
        face = gr.Slider(0, 1, value=0.9, step=0.05, label="Focal point face weight (no face detector: unused)",
                         elem_id="train_process_focal_crop_face_weight")
        entropy = gr.Slider(0, 1, value=0.15, step=0.05, label="Focal point entropy weight",
                            elem_id="train_process_focal_crop_entropy_weight")
        edges = gr.Slider(0, 1, value=0.5, step=0.05, label="Focal point edges weight",
                          elem_id="train_process_focal_crop_edges_weight")
        debug = gr.Checkbox(False, label="Create debug image", elem_id="train_process_focal_crop_debug")
    with gr.Row():
        mindim = gr.Slider(64, 2048, value=384, step=8, label="Dimension lower bound",
                           elem_id="train_process_multicrop_mindim")
        maxdim = gr.Slider(64, 2048, value=768, step=8, label="Dimension upper bound",
                           elem_id="train_process_multicrop_maxdim")
    with gr.Row():
        minarea = gr.Slider(64 * 64, 2048 * 2048, value=64 * 64, step=1, label="Area lower bound",
                            elem_id="train_process_multicrop_minarea")
        maxarea = gr.Slider(64 * 64, 2048 * 2048, value=640 * 640, step=1, label="Area upper bound",
                            elem_id="train_process_multicrop_maxarea")
    with gr.Row():
        objective = gr.Radio(list(MULTICROP_OBJECTIVES), value="Maximize area", label="Resizing objective",
                             elem_id="train_process_multicrop_objective")
        error = gr.Slider(0, 1, value=0.1, step=0.01, label="Error threshold",
                          elem_id="train_process_multicrop_threshold")
    with gr.Row():
        interrupt = gr.Button("Interrupt", elem_id="train_interrupt_preprocessing")
        run_button = gr.Button("Preprocess", variant="primary", elem_id="train_run_preprocess")
    outcome = gr.HTML(elem_id="train_preprocess_outcome")
    interrupt.click(lambda: ctx.jobs.interrupt() and None, None, None, queue=False)
    inputs = [src, dst, width, height, txt_action, keep, flip, split, caption, deepbooru, threshold, overlap, focal,
              face, entropy, edges, debug, multicrop, mindim, maxdim, minarea, maxarea, objective, error]

    def run(*values: Any) -> Iterator[str]:
        fields = dict(zip(PreprocessOptions.__dataclass_fields__, values, strict=True))
        for name in ("process_width", "process_height", "process_multicrop_mindim", "process_multicrop_maxdim",
                     "process_multicrop_minarea", "process_multicrop_maxarea"):
            fields[name] = int(fields[name])
        options = PreprocessOptions(**fields)
        yield from follow_job(ctx, lambda: ctx.jobs.submit(preprocess_job, ctx, options, kind="preprocess"),
                              lambda result: result.info, partial_ok=True)

    run_button.click(run, inputs, outcome, show_progress="minimal")
    return outcome


def build_train(ctx: AppContext, preview_params: list[Any] | None = None) -> None:
    """Lay out the Train tab. Inside its `gr.Tabs`, after the built-in sub-tabs, the `ui_train_tabs` callbacks run
    with `UiTrainTabParams(txt2img_preview_params)` (A1111 `ui.py`: `[prompt, negative prompt, steps, sampler,
    cfg scale, seed, width, height]` of txt2img), so a `gr.Tab` an extension opens there is a Train sub-tab."""
    from modules.extensions.callbacks import UiTrainTabParams
    from modules.ui.extension_ui import layout_guard

    with gr.Tabs(elem_id="train_tabs"):
        with gr.Tab("Create embedding", id="create_embedding", elem_id="train_create_embedding_tab"):
            created = build_create_embedding(ctx)
        with gr.Tab("Create hypernetwork", id="create_hypernetwork", elem_id="train_create_hypernetwork_tab"):
            build_create_hypernetwork(ctx)
        with gr.Tab("Preprocess images", id="preprocess_images", elem_id="train_preprocess_tab"):
            build_preprocess(ctx)
        with gr.Tab("Train", id="train_embedding", elem_id="train_train_tab"):
            embeddings = build_train_embedding(ctx, preview_params)
        ctx.callbacks.fire_guarded("ui_train_tabs", layout_guard, UiTrainTabParams(list(preview_params or [])))
    created.then(lambda: gr.update(choices=embedding_names(ctx)), None, embeddings, queue=False)
