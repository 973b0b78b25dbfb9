"""Checkpoint Merger tab (reference §3.6; A1111 ``ui.py`` "modelmerger" block and ``extras.run_modelmerger``).

Fields and defaults as A1111: Primary (A) / Secondary (B) / Tertiary (C) model dropdowns with 🔄, Custom Name,
Multiplier (M) 0.3, Interpolation Method, Checkpoint format (safetensors), Save as float16, Copy config from,
Bake in VAE, Discard weights with matching name, and the Metadata accordion (Save metadata, Add merge recipe
metadata, Copy metadata from merged models, the editable JSON and "Read metadata from selected checkpoints").
Ours adds "Prune" (drop EMA/optimizer weights). A1111 has no API route for merging; neither do we.

The merge runs as a job on the shared queue (one device user at a time, visible in ``/sdapi/v1/progress``); the
handler only polls it, so the page stays responsive. Afterwards the checkpoint list is rescanned and every
checkpoint dropdown (this tab's and the top bar's) lists the new file, as A1111 refreshes them.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.runtime.jobs import Job, JobStatus
from modules.training.merge import (
    CHECKPOINT_FORMATS,
    CONFIG_SOURCES,
    METHOD_WEIGHTED_SUM,
    METHODS,
    MergeError,
    MergeModel,
    MergeOptions,
    MergeResult,
    merge_checkpoints,
    models_used,
    with_hashes,
)
from modules.ui.common import REFRESH_ICON, checkpoint_titles, tool_button

POLL_SECONDS = 0.5


def _model(ctx: AppContext, title: str | None, letter: str) -> MergeModel | None:
    if not title:
        return None
    info = ctx.models.registry.get_closest(str(title))
    if info is None:
        raise MergeError(f"Model {letter} {title!r} is not in the checkpoint list; press 🔄 to refresh it")
    return MergeModel.from_checkpoint(info)


def bake_vae_choices(ctx: AppContext) -> list[str]:
    """"None" then every VAE file (A1111 lists ``sd_vae.vae_dict``)."""
    return ["None", *ctx.vaes.refresh()]


def run_merge(ctx: AppContext, options: MergeOptions, *, job: Job) -> MergeResult:
    """The queued job: hash the inputs (for the recipe), merge, save, rescan the checkpoint list and hash the new
    file so its title carries ``[hash]`` (A1111 ``created_model.calculate_shorthash()``)."""
    registry = ctx.models.registry
    job.state.set_textinfo("Hashing models")
    if options.save_metadata and options.add_merge_recipe:
        options = with_hashes(options, registry.hash_cache)

    def progress(done: int, total: int, text: str) -> None:
        if job.state.sampling_steps != total:
            job.state.set_sampling_steps(total)
        job.state.step(done)
        job.state.set_textinfo(text)

    result = merge_checkpoints(options, registry.ckpt_dir or registry.model_dir, progress=progress,
                               check=job.state.check, safe_unpickle=not ctx.flags.disable_safe_unpickle)
    registry.refresh()
    created = next((info for info in registry if info.filename == result.path), None)
    if created is not None and registry.hash_cache is not None:
        created.sha256 = registry.hash_cache.sha256(created.filename, created.hash_cache_key)
    return result


def read_metadata(ctx: AppContext, *titles: str | None) -> str:
    """A1111 "Read metadata from selected checkpoints": the union of their safetensors metadata as JSON."""
    metadata: dict[str, Any] = {}
    for title in titles:
        info = ctx.models.registry.get_closest(str(title)) if title else None
        if info is None:
            continue
        for key, value in info.read_metadata().items():
            try:
                metadata[key] = json.loads(value) if value[:1] in "{[" else value
            except ValueError:
                metadata[key] = value
    return json.dumps(metadata, indent=4, ensure_ascii=False)


def _notice(text: str, error: bool = False) -> str:
    css = "error" if error else "merge-result"
    return f"<div class='{css}'>{html.escape(text)}</div>"


def build_merger(ctx: AppContext, checkpoint_dropdown: gr.Dropdown | None = None) -> None:
    """Lay out and wire the tab; ``checkpoint_dropdown`` (the top bar's) gains the new model after a merge."""
    titles = checkpoint_titles(ctx)
    with gr.Row(equal_height=False):
        with gr.Column(variant="compact"):
            gr.HTML("<p>A merger of the models, producing a new checkpoint in the checkpoint directory.</p>")
            with gr.Row():
                primary = gr.Dropdown(titles, value=None, label="Primary model (A)",
                                      elem_id="modelmerger_primary_model_name")
                secondary = gr.Dropdown(titles, value=None, label="Secondary model (B)",
                                        elem_id="modelmerger_secondary_model_name")
                tertiary = gr.Dropdown(titles, value=None, label="Tertiary model (C)",
                                       elem_id="modelmerger_tertiary_model_name")
                refresh = tool_button(REFRESH_ICON, "modelmerger_refresh_checkpoint_models")
            custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
            multiplier = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Multiplier (M) - set to 0 to get model A",
                                   elem_id="modelmerger_interp_amount")
            method = gr.Radio(list(METHODS), value=METHOD_WEIGHTED_SUM, label="Interpolation Method",
                              elem_id="modelmerger_interp_method")
            with gr.Row():
                fmt = gr.Radio(list(CHECKPOINT_FORMATS), value="safetensors", label="Checkpoint format",
                               elem_id="modelmerger_checkpoint_format")
                save_as_half = gr.Checkbox(value=False, label="Save as float16", elem_id="modelmerger_save_as_half")
                prune = gr.Checkbox(value=False, label="Prune (drop EMA and optimizer weights)",
                                    elem_id="modelmerger_prune")
            config_source = gr.Radio(list(CONFIG_SOURCES), value=CONFIG_SOURCES[0], label="Copy config from",
                                     elem_id="modelmerger_config_method")
            with gr.Row():
                bake_vae = gr.Dropdown(bake_vae_choices(ctx), value="None", label="Bake in VAE",
                                       elem_id="modelmerger_bake_in_vae")
                refresh_vae = tool_button(REFRESH_ICON, "modelmerger_refresh_bake_in_vae")
            discard = gr.Textbox(label="Discard weights with matching name", elem_id="modelmerger_discard_weights")
            with gr.Accordion("Metadata", open=False, elem_id="modelmerger_metadata_accordion"):
                with gr.Row():
                    save_metadata = gr.Checkbox(value=True, label="Save metadata",
                                                elem_id="modelmerger_save_metadata")
                    add_recipe = gr.Checkbox(value=True, label="Add merge recipe metadata",
                                             elem_id="modelmerger_add_recipe")
                    copy_fields = gr.Checkbox(value=True, label="Copy metadata from merged models",
                                              elem_id="modelmerger_copy_metadata")
                metadata_json = gr.TextArea(value="{}", label="Metadata in JSON format",
                                            elem_id="modelmerger_metadata_json")
                read_button = gr.Button("Read metadata from selected checkpoints",
                                        elem_id="modelmerger_read_metadata")
            merge = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
        with gr.Column(variant="compact"):
            result = gr.HTML(elem_id="modelmerger_result", show_label=False)

    dropdowns = [primary, secondary, tertiary] + ([checkpoint_dropdown] if checkpoint_dropdown is not None else [])

    def refreshed() -> list[Any]:
        ctx.models.registry.refresh()
        fresh = checkpoint_titles(ctx)
        return [gr.update(choices=fresh) for _ in dropdowns]

    refresh.click(refreshed, None, dropdowns, queue=False)
    refresh_vae.click(lambda: gr.update(choices=bake_vae_choices(ctx)), None, bake_vae, queue=False)
    read_button.click(lambda a, b, c: read_metadata(ctx, a, b, c), [primary, secondary, tertiary], metadata_json,
                      queue=False)

    def on_merge(a: str | None, b: str | None, c: str | None, name: str, m: float, how: str, checkpoint_format: str,
                 half: bool, drop_ema: bool, config: str, vae_name: str | None, discard_text: str, save_md: bool,
                 recipe: bool, copy_md: bool, md_json: str) -> Iterator[list[Any]]:
        unchanged = [gr.update() for _ in dropdowns]
        try:
            vae_path = ctx.vaes.find(vae_name) if vae_name and vae_name != "None" else None
            if vae_name and vae_name != "None" and vae_path is None:
                raise MergeError(f"Bake in VAE: {vae_name!r} was not found; refresh the VAE list")
            options = MergeOptions(
                _model(ctx, a, "A"), _model(ctx, b, "B"), _model(ctx, c, "C"), method=how, multiplier=float(m),
                custom_name=name or "", checkpoint_format=checkpoint_format, save_as_half=bool(half),
                config_source=config, bake_in_vae=vae_path, bake_in_vae_name=vae_name or "None",
                discard_weights=discard_text or "", save_metadata=bool(save_md), add_merge_recipe=bool(recipe),
                copy_metadata_fields=bool(copy_md), metadata_json=md_json or "", prune=bool(drop_ema))
            models_used(options)
            job = ctx.jobs.submit(run_merge, ctx, options, kind="modelmerger")
        except (MergeError, RuntimeError) as error:  # RuntimeError: the queue is full or shut down
            yield [*unchanged, _notice(f"Error merging checkpoints: {error}", error=True)]
            return
        while not job.wait(POLL_SECONDS):
            info = job.state.progress_info()
            yield [*unchanged, _notice(f"{info.get('textinfo') or 'Waiting in queue'} "
                                       f"({float(info.get('progress') or 0) * 100:.0f}%)")]
        fresh = checkpoint_titles(ctx)
        updates = [gr.update(choices=fresh) for _ in dropdowns]
        if job.status is JobStatus.DONE:
            done: MergeResult = job.result()
            yield [*updates, _notice(done.message)]
        elif job.status is JobStatus.INTERRUPTED:
            yield [*updates, _notice("Merge interrupted; nothing was saved", error=True)]
        else:
            message = job.error.message if job.error is not None else "unknown error"
            yield [*updates, _notice(f"Error merging checkpoints: {message}", error=True)]

    merge.click(on_merge, [primary, secondary, tertiary, custom_name, multiplier, method, fmt, save_as_half, prune,
                           config_source, bake_vae, discard, save_metadata, add_recipe, copy_fields, metadata_json],
                [*dropdowns, result], show_progress="minimal")
