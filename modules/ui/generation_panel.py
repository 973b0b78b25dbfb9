"""The "Generation" panel of txt2img/img2img (reference §3.2): sampler, schedule, steps, size with ⇅ swap, batch,
CFG, seed 🎲/♻️ with the variation "Extra" block, Hires. fix and Refiner accordions, override settings, Script.

Every control is registered under its `Txt2ImgParams`/`Img2ImgParams` FIELD NAME in the returned dict, so that the
generate handler, infotext paste and send-to buttons map values by name (never by position). Names that are not
params fields (`seed_extra`, `refiner_enable`) are UI-only switches the handler interprets.
"""

from __future__ import annotations

from typing import cast

import gradio as gr

from modules.processing.context import AppContext
from modules.ui.common import (
    DEFAULT_SAMPLER,
    RANDOM_ICON,
    REUSE_ICON,
    SWAP_ICON,
    checkpoint_titles,
    scheduler_labels,
    tool_button,
)
from modules.ui.layout_options import visible_samplers
from modules.ui.scripts_ui import ScriptControls, build_script_controls

Fields = dict[str, gr.components.Component]


def _sampler_row(ctx: AppContext, tab: str, fields: Fields, prefix: str = "") -> None:
    """Sampler and schedule type. Samplers in `hide_samplers` are not offered (A1111 `visible_sampler_names`); the
    main sampler is a radio group when `samplers_in_dropdown` is off (A1111 UI alternatives)."""
    samplers = visible_samplers(ctx)
    default = DEFAULT_SAMPLER if DEFAULT_SAMPLER in samplers else (samplers[0] if samplers else None)
    with gr.Row(elem_id=f"{tab}_{prefix}sampler_row"):
        if not prefix and not ctx.settings.get("samplers_in_dropdown"):
            fields["sampler_name"] = gr.Radio(samplers, value=default, label="Sampling method",
                                              elem_id=f"{tab}_sampling")
        else:
            fields[f"{prefix}sampler_name"] = gr.Dropdown(
                label="Sampling method" if not prefix else "Hires sampling method", elem_id=f"{tab}_{prefix}sampling",
                choices=(["Use same sampler"] if prefix else []) + samplers,
                value="Use same sampler" if prefix else default)
        fields[f"{prefix}scheduler"] = gr.Dropdown(
            label="Schedule type" if not prefix else "Hires schedule type", elem_id=f"{tab}_{prefix}scheduler",
            choices=(["Use same scheduler"] if prefix else []) + scheduler_labels(),
            value="Use same scheduler" if prefix else "Automatic")


def build_sampler(ctx: AppContext, tab: str, fields: Fields) -> None:
    """The "sampler" part: sampler, schedule type and steps (1–150, default 20)."""
    _sampler_row(ctx, tab, fields)
    fields["steps"] = gr.Slider(1, 150, value=20, step=1, label="Sampling steps", elem_id=f"{tab}_steps")


def build_size_rows(tab: str, fields: Fields) -> gr.Button:
    """Width/Height sliders (64–2048 step 8, default 512) and the ⇅ swap button; returns the swap button."""
    with gr.Row(elem_id=f"{tab}_dimensions_row"):
        with gr.Column(scale=4, elem_id=f"{tab}_column_size"):
            fields["width"] = gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id=f"{tab}_width")
            fields["height"] = gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id=f"{tab}_height")
        swap = tool_button(SWAP_ICON, f"{tab}_res_switch_btn")
    swap.click(lambda w, h: (h, w), [fields["width"], fields["height"]], [fields["width"], fields["height"]],
               queue=False)
    return swap


def batch_together(ctx: AppContext) -> bool:
    """A1111 `dimensions_and_batch_together`: Batch count/size in a column beside the size controls (True) or in
    their own row at the "batch" place of the panel (False)."""
    return bool(ctx.settings.get("dimensions_and_batch_together"))


def build_batch(tab: str, fields: Fields, *, column: bool = False) -> None:
    """Batch count (1–100) and Batch size (1–8), as a row or as the column beside the size controls."""
    with gr.Column(elem_id=f"{tab}_column_batch", min_width=160) if column else gr.Row(elem_id=f"{tab}_batch_row"):
        fields["n_iter"] = gr.Slider(1, 100, value=1, step=1, label="Batch count", elem_id=f"{tab}_batch_count")
        fields["batch_size"] = gr.Slider(1, 8, value=1, step=1, label="Batch size", elem_id=f"{tab}_batch_size")


def build_dimensions(ctx: AppContext, tab: str, fields: Fields) -> None:
    """The txt2img "dimensions" part: Width/Height with ⇅, and the batch sliders beside them when together."""
    with gr.Row(elem_id=f"{tab}_dimensions_batch_row"):
        with gr.Column(scale=4):
            build_size_rows(tab, fields)
        if batch_together(ctx):
            build_batch(tab, fields, column=True)


def build_cfg(tab: str, fields: Fields) -> None:
    """CFG Scale 7 (1–30, step 0.5)."""
    fields["cfg_scale"] = gr.Slider(1.0, 30.0, value=7.0, step=0.5, label="CFG Scale", elem_id=f"{tab}_cfg_scale")


def build_seed_controls(tab: str, fields: Fields, *, textbox: bool = False) -> tuple[gr.Button, gr.Button]:
    """Seed -1 with 🎲 (set -1) and ♻️ (reuse last seed), "Extra" → variation seed/strength, seed resize.
    `textbox` (`--use-textbox-seed`) makes the seed fields text boxes, for seeds longer than a number field keeps."""
    def seed_box(label: str, elem_id: str) -> gr.components.Component:
        if textbox:
            return gr.Textbox(label=label, value="-1", elem_id=elem_id, scale=4)
        return gr.Number(label=label, value=-1, precision=0, elem_id=elem_id, scale=4)

    with gr.Row(elem_id=f"{tab}_seed_row"):
        fields["seed"] = seed_box("Seed", f"{tab}_seed")
        random_seed = tool_button(RANDOM_ICON, f"{tab}_random_seed")
        reuse_seed = tool_button(REUSE_ICON, f"{tab}_reuse_seed")
        fields["seed_extra"] = gr.Checkbox(label="Extra", value=False, elem_id=f"{tab}_subseed_show", scale=1)
    with gr.Group(visible=False, elem_id=f"{tab}_seed_extras") as extras:
        with gr.Row():
            fields["subseed"] = seed_box("Variation seed", f"{tab}_subseed")
            random_subseed = tool_button(RANDOM_ICON, f"{tab}_random_subseed")
            fields["subseed_strength"] = gr.Slider(0.0, 1.0, value=0.0, step=0.01, label="Variation strength",
                                                   elem_id=f"{tab}_subseed_strength", scale=4)
        with gr.Row():
            fields["seed_resize_from_w"] = gr.Slider(0, 2048, value=0, step=8, label="Resize seed from width",
                                                     elem_id=f"{tab}_seed_resize_from_w")
            fields["seed_resize_from_h"] = gr.Slider(0, 2048, value=0, step=8, label="Resize seed from height",
                                                     elem_id=f"{tab}_seed_resize_from_h")
    cast(gr.Checkbox, fields["seed_extra"]).change(lambda on: gr.update(visible=bool(on)), fields["seed_extra"], extras, queue=False)
    random_seed.click(lambda: -1, None, fields["seed"], queue=False)
    random_subseed.click(lambda: -1, None, fields["subseed"], queue=False)
    return reuse_seed, random_subseed


def link_accordion(accordion: gr.Accordion, switch: gr.Checkbox) -> None:
    """A1111 `InputAccordion`: the accordion is the on/off switch — opening it enables the feature, closing it
    disables it, and a value set elsewhere (pasted infotext, send-to) opens it. Unticking the box while it is open
    leaves it open (A1111 unlinks the box from the accordion once the user clicks the box itself)."""
    accordion.expand(lambda: True, None, switch, queue=False, show_progress="hidden")
    accordion.collapse(lambda: False, None, switch, queue=False, show_progress="hidden")
    switch.change(lambda on: gr.Accordion(open=True) if on else gr.Accordion(), switch, accordion, queue=False,
                  show_progress="hidden")


def hires_resolution_html(enable: bool, width: float, height: float, hr_scale: float, hr_resize_x: float,
                          hr_resize_y: float) -> str:
    """A1111 `calc_resolution_hires`: "from WxH to WxH" under the hires controls ("" while hires fix is off)."""
    if not enable:
        return ""
    from modules.processing.hires import hires_target

    w, h = int(width or 0), int(height or 0)
    if w <= 0 or h <= 0:
        return ""
    final = hires_target(w, h, float(hr_scale or 1), int(hr_resize_x or 0), int(hr_resize_y or 0)).final_size
    return (f"from <span class='resolution'>{w}x{h}</span> to "
            f"<span class='resolution'>{final[0]}x{final[1]}</span>")


def build_hires(ctx: AppContext, tab: str, fields: Fields) -> gr.HTML:
    """Hires. fix accordion (reference §8): upscaler, steps 0, denoising 0.7, upscale by 2, resize to 0×0; the
    "Upscaled resolution" line; the accordion is the on/off switch (`link_accordion`). The hires checkpoint and
    sampler row shows only with `hires_fix_show_sampler`, the hires prompts only with `hires_fix_show_prompts`
    (A1111 UI alternatives); hidden, they keep their "Use same" values, so the first pass's are used."""
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{tab}_hr") as accordion:
        fields["enable_hr"] = gr.Checkbox(label="Enable Hires. fix", value=False, elem_id=f"{tab}_enable_hr")
        with gr.Row():
            fields["hr_upscaler"] = gr.Dropdown(label="Upscaler", elem_id=f"{tab}_hr_upscaler",
                                                choices=hires_upscalers(ctx), value="Latent")
            fields["hr_second_pass_steps"] = gr.Slider(0, 150, value=0, step=1, label="Hires steps",
                                                       elem_id=f"{tab}_hires_steps")
            fields["denoising_strength"] = gr.Slider(0.0, 1.0, value=0.7, step=0.01, label="Denoising strength",
                                                     elem_id=f"{tab}_denoising_strength")
        with gr.Row():
            final_resolution = gr.HTML("", label="Upscaled resolution", min_width=0,
                                       elem_id="txtimg_hr_finalres" if tab == "txt2img" else f"{tab}_hr_finalres")
            fields["hr_scale"] = gr.Slider(1.0, 4.0, value=2.0, step=0.05, label="Upscale by",
                                           elem_id=f"{tab}_hr_scale")
            fields["hr_resize_x"] = gr.Slider(0, 2048, value=0, step=8, label="Resize width to",
                                              elem_id=f"{tab}_hr_resize_x")
            fields["hr_resize_y"] = gr.Slider(0, 2048, value=0, step=8, label="Resize height to",
                                              elem_id=f"{tab}_hr_resize_y")
        with gr.Column(visible=bool(ctx.settings.get("hires_fix_show_sampler")), elem_id=f"{tab}_hires_fix_row3"):
            fields["hr_checkpoint_name"] = gr.Dropdown(label="Hires checkpoint", elem_id=f"{tab}_hr_checkpoint",
                                                       choices=["Use same checkpoint", *checkpoint_titles(ctx)],
                                                       value="Use same checkpoint")
            _sampler_row(ctx, tab, fields, prefix="hr_")
        with gr.Row(visible=bool(ctx.settings.get("hires_fix_show_prompts")), elem_id=f"{tab}_hires_fix_row4"):
            fields["hr_prompt"] = gr.Textbox(label="Hires prompt", elem_id=f"{tab}_hr_prompt", lines=2,
                                             placeholder="Prompt for hires fix pass.\nLeave empty to use the same "
                                                         "prompt as in first pass.")
            fields["hr_negative_prompt"] = gr.Textbox(label="Hires negative prompt", lines=2,
                                                      elem_id=f"{tab}_hr_negative_prompt",
                                                      placeholder="Negative prompt for hires fix pass.\nLeave empty "
                                                                  "to use the same negative prompt as in first pass.")
    link_accordion(accordion, cast(gr.Checkbox, fields["enable_hr"]))
    return final_resolution


def wire_hires_resolution(final_resolution: gr.HTML, fields: Fields) -> None:
    """Keep the "from WxH to WxH" line current (wired once width and height exist: the panel's parts are built in
    `ui_reorder_list` order)."""
    sources = [fields[n] for n in ("enable_hr", "width", "height", "hr_scale", "hr_resize_x", "hr_resize_y")]
    for source in sources:
        cast(gr.Slider, source).change(hires_resolution_html, sources, final_resolution, queue=False,
                                       show_progress="hidden")


def build_accordions(ctx: AppContext, tab: str, fields: Fields) -> gr.HTML:
    """The txt2img "accordions" part: Hires. fix, then Refiner; returns the hires "Upscaled resolution" line."""
    final_resolution = build_hires(ctx, tab, fields)
    build_refiner(ctx, tab, fields)
    return final_resolution


def hires_upscalers(ctx: AppContext | None = None) -> list[str]:
    """A1111 hires upscalers (`shared.latent_upscale_modes` + `shared.sd_upscalers`): the latent modes first, then
    every upscaler of `ctx.upscalers` — None, Lanczos, Nearest, A1111's named models and the model files."""
    latent = ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
              "Latent (nearest)", "Latent (nearest-exact)"]
    registry = getattr(ctx, "upscalers", None)
    return latent + (list(registry) if registry is not None else ["None", "Lanczos", "Nearest"])


def build_refiner(ctx: AppContext, tab: str, fields: Fields) -> None:
    """Refiner accordion (reference §8): off; checkpoint "", switch at 0.8."""
    with gr.Accordion("Refiner", open=False, elem_id=f"{tab}_refiner") as accordion:
        fields["refiner_enable"] = gr.Checkbox(label="Enable Refiner", value=False, elem_id=f"{tab}_enable_refiner")
        with gr.Row():
            fields["refiner_checkpoint"] = gr.Dropdown(label="Checkpoint", elem_id=f"{tab}_refiner_checkpoint",
                                                       choices=["", *checkpoint_titles(ctx)], value="")
            fields["refiner_switch_at"] = gr.Slider(0.01, 1.0, value=0.8, step=0.01, label="Switch at",
                                                    elem_id=f"{tab}_refiner_switch_at")
    link_accordion(accordion, cast(gr.Checkbox, fields["refiner_enable"]))


def build_override_settings(tab: str, fields: Fields) -> None:
    """Override settings (hidden until a paste fills it)."""
    fields["override_settings"] = gr.Dropdown(label="Override settings", elem_id=f"{tab}_override_settings",
                                              choices=[], value=[], multiselect=True, visible=False)


def build_scripts(ctx: AppContext, tab: str, fields: Fields) -> ScriptControls:
    """The Script dropdown with the selected script's controls and the always-on script accordions
    (`modules.ui.scripts_ui`)."""
    with gr.Column(elem_id=f"{tab}_script_container"):
        controls = build_script_controls(ctx, tab)
    fields["script_name"] = controls.dropdown
    return controls
