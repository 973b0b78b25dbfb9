"""The txt2img tab (reference §3.1–3.2): prompt row, Generation panel, output panel; Generate runs
`modules.processing.run.run_txt2img` on the shared job queue.

Values reach `Txt2ImgParams` BY FIELD NAME: the panel registers each control under its params field name, and
`params_from_values` builds the dataclass from those names only (A1111 passes ~100 positional args instead).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from modules.processing import run
from modules.processing.context import AppContext
from modules.processing.params import GenerationParams, ParamError, Txt2ImgParams, validate_params
from modules.ui import generation_panel as panel_ui
from modules.ui.extra_networks import build_extra_networks
from modules.ui.gallery import OutputPanel, build_output_panel, gradio_progress, selected_image, stream_job
from modules.ui.layout_options import apply_extra_options, build_extra_options, build_in_order, settings_column
from modules.ui.output_actions import chosen_folder, is_local, open_folder
from modules.ui.paste import (
    looks_like_infotext,
    override_settings_from_choices,
    read_last_params,
    script_paste_fields,
    updates_from_infotext,
)
from modules.ui.result_options import merge_hires_result, present, print_prompt
from modules.ui.save_files import wire_save_buttons
from modules.ui.scripts_ui import script_values
from modules.ui.toprow import Toprow, build_toprow, wire_toprow

USE_SAME = ("Use same sampler", "Use same scheduler", "Use same checkpoint")


@dataclass
class GenerationTab:
    """What other tabs need from txt2img/img2img: the named fields, prompt row and output panel."""

    name: str
    fields: dict[str, gr.components.Component]
    toprow: Toprow
    output: OutputPanel
    extra: dict[str, Any] = field(default_factory=dict)


def params_from_values(params_type: type[GenerationParams], values: dict[str, Any]) -> GenerationParams:
    """Build `params_type` from UI values keyed by field name; UI-only switches are applied, then bounds checked."""
    names = {f.name for f in dataclasses.fields(params_type)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in names or value is None or value in USE_SAME:
            continue
        kwargs[name] = value
    for seed_name in ("seed", "subseed"):  # text boxes with --use-textbox-seed
        if isinstance(kwargs.get(seed_name), str):
            try:
                kwargs[seed_name] = int(kwargs[seed_name].strip() or "-1")
            except ValueError:
                raise gr.Error(f"Invalid value for {seed_name}: {kwargs[seed_name]!r} is not a whole number") from None
    for int_name in ("seed", "subseed", "steps", "n_iter", "batch_size", "width", "height", "hr_second_pass_steps",
                     "hr_resize_x", "hr_resize_y", "seed_resize_from_w", "seed_resize_from_h", "resize_mode",
                     "mask_blur", "inpainting_fill", "inpaint_full_res_padding", "inpainting_mask_invert"):
        if int_name in kwargs:
            kwargs[int_name] = int(kwargs[int_name])
    if not values.get("seed_extra", True):
        kwargs.update(subseed_strength=0.0, seed_resize_from_w=-1, seed_resize_from_h=-1)
    for name in ("seed_resize_from_w", "seed_resize_from_h"):
        if kwargs.get(name, -1) == 0:
            kwargs[name] = -1
    if not values.get("refiner_enable", False) or not kwargs.get("refiner_checkpoint"):
        kwargs.pop("refiner_checkpoint", None)
        kwargs.pop("refiner_switch_at", None)
    if kwargs.get("script_name") == "None":
        kwargs.pop("script_name")
    kwargs["styles"] = list(values.get("styles") or [])
    kwargs["override_settings"] = override_settings_from_choices(values.get("override_settings"))
    params = params_type(**kwargs)
    try:
        validate_params(params)
    except ParamError as exc:
        raise gr.Error(f"Invalid value for {exc.field}: {exc.message}") from None
    return params


def load_runner(name: str) -> Any:
    """`modules.processing.run.<name>` (`run_txt2img` / `run_img2img`)."""
    return getattr(run, name)


def collect(tab: GenerationTab, data: dict[gr.components.Component, Any]) -> dict[str, Any]:
    """Named values from Gradio's {component: value} input dict."""
    by_component = {id(c): n for n, c in tab.fields.items()}
    return {by_component[id(c)]: v for c, v in data.items() if id(c) in by_component}


def output_components(tab: GenerationTab) -> list[gr.components.Component]:
    """Everything the generate generator may update."""
    o = tab.output
    return [o.gallery, o.preview, o.progress, o.infotext, o.html_log, o.generation_info, o.selected_index]


def wire_generation_tab(ctx: AppContext, tab: GenerationTab, kind: str, build_params: Any, runner_name: str,
                        choose_runner: Any = None) -> None:
    """Generate / Interrupt / Skip / paste / reuse-seed events common to txt2img and img2img.

    `choose_runner(data)` may return another job function `fn(ctx, params, job=)` for this click (img2img Batch);
    None keeps `modules.processing.run.<runner_name>`."""
    fields, row, out = tab.fields, tab.toprow, tab.output
    wire_toprow(ctx, row, fields["steps"])

    def generate(data: dict[gr.components.Component, Any]) -> Any:
        """Build params by name and stream the job's progress and results."""
        values = collect(tab, data)
        if "scripts" in tab.extra:
            values.update(script_values(tab.extra["scripts"], values.get("script_name"), data))
        params = build_params(values, data)
        apply_extra_options(ctx, params, tab.extra.get("extra_options", {}), data)
        if not ctx.models or not len(ctx.models.registry):
            raise gr.Error("No checkpoint found: put a .safetensors or .ckpt file in models/Stable-diffusion "
                           "and press 🔄 next to the checkpoint list")
        runner = choose_runner(data) if choose_runner is not None else None
        print_prompt(ctx, kind, str(values.get("prompt") or ""))
        saved: list[str] = []
        job = stream_job(ctx, keep_saved_paths(runner or load_runner(runner_name), saved), params, kind, out)
        for update in present(ctx, job, out):
            if out.generation_info in update:
                update[saved_state] = list(saved)
            yield update

    saved_state = gr.State([])  # the last job's saved files, for 📂 (open_dir_button_choice)
    inputs = set(fields.values()) | set(tab.extra.get("inputs", [])) | set(tab.extra.get("extra_options", {}).values())
    if "scripts" in tab.extra:
        inputs |= set(tab.extra["scripts"].components())
    shown = gradio_progress(ctx)  # no_progressbar_hiding
    outputs = [*output_components(tab), saved_state]
    row.generate.click(generate, inputs, outputs, show_progress=shown, concurrency_limit=None)
    row.prompt.submit(generate, inputs, outputs, show_progress=shown, concurrency_limit=None)

    def interrupt() -> None:
        """A1111 Interrupt: with `interrupt_after_current` the first click finishes the current image."""
        job = ctx.jobs.current()
        if job is None:
            return
        if ctx.settings.get("interrupt_after_current") and not job.state.stopping_generation \
                and job.state.job_count > 1:
            ctx.jobs.stop_generating()
        else:
            ctx.jobs.interrupt()

    row.interrupt.click(interrupt, None, None, queue=False)
    if out.open_folder is not None:

        def open_chosen(paths: list[str] | None, index: Any, info: str | None, gallery: Any) -> None:
            """📂 with `open_dir_button_choice` (the saved files of the last job come from `saved_state`)."""
            import json

            try:
                first = int(json.loads(info or "{}").get("index_of_first_image", 0))
            except (ValueError, AttributeError):
                first = 0
            shown = selected_image(gallery, index)
            folder = chosen_folder(ctx, kind, paths, int(index or 0), first, shown if isinstance(shown, str) else None)
            open_folder(ctx, kind, folder)

        out.open_folder.click(open_chosen, [saved_state, out.selected_index, out.generation_info, out.gallery], None,
                              queue=False)
    wire_save_buttons(ctx, out)
    if out.upscale is not None and kind == "txt2img":

        def upscale(data: dict[gr.components.Component, Any]) -> Any:
            """✨: only the hires pass on the selected image, with that image's seed (A1111 1.8+)."""
            image = selected_image(data.get(out.gallery), data.get(out.selected_index))
            if image is None:
                raise gr.Error("✨ needs an image: generate one first and select it in the gallery")
            if isinstance(image, str):
                from PIL import Image

                image = Image.open(image)
            values = collect(tab, data)
            values["seed"] = _seed_of(data.get(out.generation_info), data.get(out.selected_index), values)
            params = build_params(values, data)
            params.enable_hr, params.firstpass_image = True, image.convert("RGB")
            job = stream_job(ctx, load_runner(runner_name), params, kind, out)
            yield from present(ctx, merge_hires_result(ctx, job, out, data.get(out.gallery),
                                                      int(data.get(out.selected_index) or 0),
                                                      data.get(out.generation_info)), out)

        out.upscale.click(upscale, inputs | {out.gallery, out.selected_index, out.generation_info},
                          output_components(tab), show_progress=shown, concurrency_limit=None)
    row.skip.click(lambda: ctx.jobs.skip() and None, None, None, queue=False)

    paste_targets = [*fields.values(), row.prompt, row.negative_prompt]

    def paste(prompt: str) -> dict[gr.components.Component, Any]:
        """↙️: parse the prompt box if it holds an infotext, else the last generation's params.txt."""
        text = prompt if looks_like_infotext(prompt or "") else read_last_params(ctx)
        if not text.strip():
            raise gr.Error("Nothing to paste: the prompt box has no generation parameters and params.txt is empty")
        return updates_from_infotext(ctx, text, named_with_prompts(tab))

    pasted = row.paste.click(paste, [row.prompt], list(dict.fromkeys(paste_targets)), queue=False)
    scripts = tab.extra.get("scripts")
    if scripts is not None and scripts.groups:  # a pasted "Script" shows that script's controls
        pasted.then(scripts.show_selected, scripts.dropdown, [g for _t, g in scripts.groups], queue=False,
                    show_progress="hidden")

    def reuse_seed(info: str, index: int) -> int:
        """♻️: the seed of the selected image of the last generation (A1111 `connect_reuse_seed`)."""
        import json

        try:
            data = json.loads(info or "{}")
        except ValueError:
            return -1
        seeds = data.get("all_seeds") or [data.get("seed", -1)]
        first = int(data.get("index_of_first_image", 0))
        idx = max(0, int(index or 0) - first)
        return int(seeds[idx if idx < len(seeds) else 0])

    tab.extra["reuse_seed"].click(reuse_seed, [out.generation_info, out.selected_index], fields["seed"],
                                  queue=False)


def keep_saved_paths(runner: Any, saved: list[str]) -> Any:
    """`runner` that also records the saved files of its result into `saved`."""
    def run_and_keep(*args: Any, **kwargs: Any) -> Any:
        result = runner(*args, **kwargs)
        saved.extend(str(p) for p in getattr(result, "saved_paths", None) or [])
        return result

    return run_and_keep


def _seed_of(info: str | None, index: Any, values: dict[str, Any]) -> Any:
    """The seed of gallery entry `index` from the generation info JSON, else the seed field."""
    import json

    try:
        data = json.loads(info or "{}")
    except ValueError:
        return values.get("seed")
    seeds = data.get("all_seeds") or []
    idx = max(0, int(index or 0) - int(data.get("index_of_first_image", 0)))
    return seeds[idx] if idx < len(seeds) else data.get("seed", values.get("seed"))


def named_with_prompts(tab: GenerationTab) -> dict[str, gr.components.Component]:
    """Fields plus the prompt boxes and the styles dropdown under their params names."""
    return tab.fields | {"prompt": tab.toprow.prompt, "negative_prompt": tab.toprow.negative_prompt,
                         "styles": tab.toprow.styles}


def build_txt2img(ctx: AppContext) -> GenerationTab:
    """Lay out and wire the txt2img tab. The Generation panel's parts are built in `ui_reorder_list` order; with
    `compact_prompt_box` the prompt row is its "prompt" part instead of the row above the tab (A1111)."""
    fields: dict[str, gr.components.Component] = {}
    compact = bool(ctx.settings.get("compact_prompt_box"))
    built: dict[str, Any] = {} if compact else {"row": build_toprow(ctx, "txt2img")}
    together = panel_ui.batch_together(ctx)
    with gr.Row(elem_id="txt2img_settings_row", equal_height=False):
        with settings_column(ctx, "txt2img"), gr.Tabs(elem_id="txt2img_extra_tabs"):
            with gr.Tab("Generation", elem_id="txt2img_generation_tab"):
                built["extra_options"] = build_extra_options(ctx, "txt2img")
                build_in_order(ctx, {
                    "prompt": lambda: built.update(row=build_toprow(ctx, "txt2img")) if compact else None,
                    "sampler": lambda: panel_ui.build_sampler(ctx, "txt2img", fields),
                    "accordions": lambda: built.update(hr_line=panel_ui.build_accordions(ctx, "txt2img", fields)),
                    "dimensions": lambda: panel_ui.build_dimensions(ctx, "txt2img", fields),
                    "batch": lambda: None if together else panel_ui.build_batch("txt2img", fields),
                    "cfg": lambda: panel_ui.build_cfg("txt2img", fields),
                    "seed": lambda: built.update(reuse=panel_ui.build_seed_controls(
                        "txt2img", fields, textbox=bool(ctx.flags.use_textbox_seed))[0]),
                    "override_settings": lambda: panel_ui.build_override_settings("txt2img", fields),
                    "scripts": lambda: built.update(scripts=panel_ui.build_scripts(ctx, "txt2img", fields)),
                })
                scripts = built["scripts"]
                panel_ui.wire_hires_resolution(built["hr_line"], fields)
                fields.update(script_paste_fields(ctx, "txt2img", scripts))
            build_extra_networks(ctx, "txt2img")  # extra networks tabs (modules/ui/extra_networks.py)
        with gr.Column(scale=1):
            output = build_output_panel("txt2img", local=is_local(ctx))
    row, reuse = built["row"], built["reuse"]
    tab = GenerationTab("txt2img", fields, row, output)
    tab.extra.update(reuse_seed=reuse, scripts=scripts, extra_options=built["extra_options"])
    tab.fields.update({"prompt": row.prompt, "negative_prompt": row.negative_prompt, "styles": row.styles})

    def build(values: dict[str, Any], _data: Any) -> GenerationParams:
        return params_from_values(Txt2ImgParams, values)

    wire_generation_tab(ctx, tab, "txt2img", build, "run_txt2img")
    return tab

