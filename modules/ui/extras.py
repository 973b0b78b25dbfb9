"""Extras tab (reference §3.4): Single Image / Batch Process / Batch from Directory, Upscale, GFPGAN, CodeFormer.

Processing is modules.postprocessing's `ExtrasChain` over the registries `webui.py` puts in
`ctx.upscalers` and `ctx.face_restorers` (A1111 `postprocessing.run_postprocessing`): results
are saved to `outputs/extras-images` (or the Batch-from-Directory output folder) with the `postprocessing` text
chunk; the html info shows A1111's infotext plus notices (e.g. that no face was found).
Extras-tab scripts of extensions (`ScriptPostprocessing`, `ctx.scripts.postprocessing`) lay out their `ui()` below
the built-in operations (A1111 `scripts_postproc.setup_ui()`); their values reach `process(pp, **args)` by name,
and `image_changed()` runs when the source image changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import gradio as gr

from modules.postprocessing.face_restorers import FaceRestorerRegistry
from modules.postprocessing.upscalers import UpscalerRegistry
from modules.processing.context import AppContext
from modules.ui.common import error_html
from modules.ui.layout_options import scale_for_upscaler
from modules.ui.send_to import ParamBinding, register_early


def _registries(ctx: AppContext) -> tuple[UpscalerRegistry, FaceRestorerRegistry]:
    """The app's postprocessing registries."""
    return ctx.upscalers, ctx.face_restorers


def upscaler_names(ctx: AppContext) -> list[str]:
    """"None", Lanczos, Nearest, then the model upscalers found in the upscaler folders (A1111 order)."""
    return list(_registries(ctx)[0].names())


def _settings(ctx: AppContext) -> dict[str, Any]:
    values = getattr(ctx.settings, "values", None)
    return dict(values()) if callable(values) else {}


def _send_to_buttons(ctx: AppContext, gallery: gr.Gallery) -> None:
    """"Send to img2img / inpaint / extras" under the result gallery (A1111 `create_output_panel("extras")`): the
    selected result goes to that tab's image, through the page's send-to registry (`modules.ui.send_to`)."""
    with gr.Row(elem_id="extras_tools_buttons"):
        for tab, label in (("img2img", "Send to img2img"), ("inpaint", "Send to inpaint"),
                           ("extras", "Send to extras")):
            button = gr.Button(label, elem_id=f"extras_send_to_{tab}", size="sm")
            register_early(ctx, ParamBinding(button, tab, source_image_component=gallery))


def build_extras(ctx: AppContext) -> dict[str, gr.components.Component]:
    """Lay out and wire the Extras tab; returns its components by name (`image` receives send-to)."""
    c: dict[str, gr.components.Component] = {}
    mode = gr.Number(value=0, precision=0, visible=False)
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            with gr.Tabs(elem_id="mode_extras"):
                with gr.Tab("Single Image", elem_id="extras_single_tab") as t0:
                    c["image"] = gr.Image(label="Source", type="pil", elem_id="extras_image", height=360)
                with gr.Tab("Batch Process", elem_id="extras_batch_process_tab") as t1:
                    c["files"] = gr.File(label="Batch Process", file_count="multiple", elem_id="extras_image_batch")
                with gr.Tab("Batch from Directory", elem_id="extras_batch_directory_tab") as t2:
                    c["input_dir"] = gr.Textbox(label="Input directory", elem_id="extras_batch_input_dir")
                    c["output_dir"] = gr.Textbox(label="Output directory", elem_id="extras_batch_output_dir")
                    c["show_results"] = gr.Checkbox(label="Show result images", value=True,
                                                    elem_id="extras_show_extras_results")
            for index, sub in enumerate((t0, t1, t2)):
                sub.select(lambda i=index: i, None, mode, queue=False)
            submit = gr.Button("Generate", elem_id="extras_generate", variant="primary")
            with gr.Accordion("Upscale", open=True, elem_id="extras_upscale"):
                with gr.Tabs():
                    with gr.Tab("Scale by", elem_id="extras_scale_by_tab") as s0:
                        c["scale"] = gr.Slider(1.0, 8.0, value=4.0, step=0.05, label="Resize",
                                               elem_id="extras_upscaling_resize")
                        c["max_side"] = gr.Slider(0, 8000, value=0, step=8, label="Max side length")
                    with gr.Tab("Scale to", elem_id="extras_scale_to_tab") as s1:
                        c["width"] = gr.Slider(64, 8000, value=512, step=8, label="Width")
                        c["height"] = gr.Slider(64, 8000, value=512, step=8, label="Height")
                        c["crop"] = gr.Checkbox(label="Crop to fit", value=True)
                size_mode = gr.Number(value=0, precision=0, visible=False)
                s0.select(lambda: 0, None, size_mode, queue=False)
                s1.select(lambda: 1, None, size_mode, queue=False)
                names = upscaler_names(ctx)
                c["upscaler_1"] = gr.Dropdown(names, value="None", label="Upscaler 1", elem_id="extras_upscaler_1")
                c["upscaler_2"] = gr.Dropdown(names, value="None", label="Upscaler 2", elem_id="extras_upscaler_2")
                cast(gr.Dropdown, c["upscaler_1"]).change(  # set_scale_by_when_changing_upscaler
                    lambda name: scale_for_upscaler(ctx, name), c["upscaler_1"], c["scale"], queue=False,
                    show_progress="hidden")
                c["upscaler_2_visibility"] = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility")
            with gr.Accordion("GFPGAN", open=False, elem_id="extras_gfpgan"):
                c["gfpgan_visibility"] = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Visibility",
                                                   elem_id="extras_gfpgan_visibility")
            with gr.Accordion("CodeFormer", open=False, elem_id="extras_codeformer"):
                c["codeformer_visibility"] = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Visibility",
                                                       elem_id="extras_codeformer_visibility")
                c["codeformer_weight"] = gr.Slider(0.0, 1.0, value=0.0, step=0.001,
                                                   label="Weight (0 = maximum effect, 1 = minimum effect)",
                                                   elem_id="extras_codeformer_weight")
            c["restore_whole_image"] = gr.Checkbox(
                label="Restore the whole image as one face (skip face detection; resized to 512×512)", value=False,
                elem_id="extras_restore_whole_image")
            script_inputs = ctx.scripts.postprocessing.setup_ui(_settings(ctx))
        with gr.Column(elem_id="extras_results", elem_classes=["results"]):
            gallery = gr.Gallery(label="Result", elem_id="extras_gallery", columns=3, height=420, format="png",
                                 object_fit="contain", interactive=False)
            _send_to_buttons(ctx, gallery)
            log = gr.HTML(elem_id="html_log_extras")

    def run(mode_i: int, image: Any, files: Any, input_dir: str, output_dir: str, show: bool, size_i: int,
            scale: float, max_side: int, width: int, height: int, crop: bool, up1: str, up2: str, vis2: float,
            gfpgan: float, codeformer: float, cf_weight: float, whole: bool, *script_values: Any
            ) -> tuple[Any, str]:
        """Process the chosen source(s) with the postprocessing chain and save them (A1111 run_postprocessing)."""
        from modules.images import read_info_from_image, save_image
        from modules.postprocessing import (
            ExtrasChain,
            ExtrasInputError,
            ExtrasOptions,
            FaceRestorerError,
            UpscalerModelError,
            extras_output_dir,
            folder_sources,
            save_kwargs,
        )
        from modules.postprocessing.captions import write_caption

        upscalers, restorers = _registries(ctx)
        options = ExtrasOptions(resize_mode=int(size_i), upscaling_resize=float(scale), max_side_length=int(max_side),
                                upscaling_resize_w=int(width), upscaling_resize_h=int(height),
                                upscaling_crop=bool(crop), upscaler_1=up1, upscaler_2=up2,
                                upscaler_2_visibility=float(vis2), gfpgan_visibility=float(gfpgan),
                                codeformer_visibility=float(codeformer), codeformer_weight=float(cf_weight),
                                restore_whole_image=bool(whole))
        try:
            if int(mode_i) == 0:
                if image is None:
                    raise gr.Error("Extras: upload an image first")
                sources: list[tuple[Any, str | None]] = [(image, None)]
            elif int(mode_i) == 1:
                sources = [(Path(str(getattr(f, "name", f))), Path(str(getattr(f, "orig_name", None) or
                                                                         getattr(f, "name", f))).name)
                           for f in files or []]
            else:
                sources = list(folder_sources(input_dir))
            if not sources:
                raise gr.Error("Extras: no images to process")
            settings = _settings(ctx)
            out_dir = extras_output_dir(settings, Path(ctx.paths.script_dir),
                                        output_dir if int(mode_i) == 2 else "")
            chain = ExtrasChain(upscalers, restorers, read_info=read_info_from_image)

            def save(done: Any) -> Path:
                path = save_image(done.image, out_dir, **save_kwargs(done, settings)).path
                # a script's `pp.caption` goes to `<image>.txt`, per `postprocessing_existing_caption_action`
                source = Path(input_dir).expanduser() / done.name if int(mode_i) == 2 and done.name else None
                write_caption(path, done.caption, settings, source)
                return path

            scripts = ctx.scripts.postprocessing.bind(list(script_values), settings)
            errors_before = len(ctx.scripts.postprocessing.hook_errors)
            with ctx.jobs.exclusive():
                result = chain.run(sources, options, settings=settings, save=save,
                                   show_results=int(mode_i) != 2 or bool(show), scripts=scripts)
            # a script that failed (e.g. Caption without interrogator weights) is shown, not only logged
            for message in ctx.scripts.postprocessing.hook_errors[errors_before:]:
                if message not in result.notices:
                    result.notices.append(message)
        except (ExtrasInputError, FaceRestorerError, UpscalerModelError) as exc:
            raise gr.Error(f"Extras: {exc}") from None
        images = [done.image for done in result.images]
        html_info = result.html_info if result.saved or images else error_html("Nothing was produced")
        return images, html_info

    submit.click(run, [mode, c["image"], c["files"], c["input_dir"], c["output_dir"], c["show_results"], size_mode,
                       c["scale"], c["max_side"], c["width"], c["height"], c["crop"], c["upscaler_1"],
                       c["upscaler_2"], c["upscaler_2_visibility"], c["gfpgan_visibility"],
                       c["codeformer_visibility"], c["codeformer_weight"], c["restore_whole_image"], *script_inputs],
                 [gallery, log])
    source = c["image"]
    if isinstance(source, gr.Image):
        source.change(ctx.scripts.postprocessing.image_changed, None, None, queue=False)
    return c
