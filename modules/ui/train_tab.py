"""Train tab (reference §3.7; A1111 ``ui.py`` "train" block): Create embedding and Create hypernetwork sub-tabs.

Create embedding: Name, Initialization text ("*"), Number of vectors per token (1, 1–75), Overwrite Old Embedding →
``embeddings/<name>.pt`` initialised from the loaded model's token embeddings. Create hypernetwork: Name, Modules
(768, 1024, 320, 640, 1280; default 768, 320, 640, 1280), layer structure "1, 2, 1", activation function
("linear"), weight initialisation ("Normal"), Add layer normalization, Use dropout, dropout structure "0, 0, 0",
Overwrite Old Hypernetwork → ``models/hypernetworks/<name>.pt``. Both run as jobs on the shared queue; the outcome
("Created: <file>" or the error) is shown under the buttons, as A1111's ``ti_output``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.runtime.jobs import Job, JobStatus
from modules.training.create_networks import (
    DEFAULT_HYPERNETWORK_SIZES,
    HYPERNETWORK_SIZE_CHOICES,
    WEIGHT_INITS,
    activation_names,
)
from modules.training.tasks import EmbeddingSpec, HypernetworkSpec, create_embedding_job, create_hypernetwork_job

POLL_SECONDS = 0.5


def outcome_html(text: str, error: bool = False) -> str:
    """The line under the buttons (A1111 ``ti_outcome``)."""
    css = "error" if error else "train-outcome"
    return f"<div class='{css}'>{html.escape(text)}</div>"


def follow_job(ctx: AppContext, submit: Callable[[], Job], done_text: Callable[[Any], str]) -> Iterator[str]:
    """Submit a job and yield the outcome line while it waits, runs and finishes (the handler never blocks the
    page: it polls the job)."""
    try:
        job = submit()
    except RuntimeError as exc:  # queue full / shut down
        yield outcome_html(str(exc), error=True)
        return
    while not job.wait(POLL_SECONDS):
        info = job.state.progress_info()
        yield outcome_html(str(info.get("textinfo") or "Waiting in queue…"))
    if job.status is JobStatus.DONE:
        yield outcome_html(done_text(job.result()))
    elif job.status is JobStatus.INTERRUPTED:
        yield outcome_html("Interrupted", error=True)
    else:
        yield outcome_html(f"Error: {job.error.message if job.error else 'unknown error'}", error=True)


def build_create_embedding(ctx: AppContext) -> gr.HTML:
    """The Create embedding sub-tab; returns its outcome box."""
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

    button.click(run, [name, init_text, nvpt, overwrite], outcome, show_progress="minimal")
    return outcome


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


def build_train(ctx: AppContext) -> None:
    """Lay out the Train tab."""
    with gr.Tabs(elem_id="train_tabs"):
        with gr.Tab("Create embedding", id="create_embedding", elem_id="train_create_embedding_tab"):
            build_create_embedding(ctx)
        with gr.Tab("Create hypernetwork", id="create_hypernetwork", elem_id="train_create_hypernetwork_tab"):
            build_create_hypernetwork(ctx)
