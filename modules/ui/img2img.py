"""The img2img tab (reference §3.3): sub-tabs img2img, Sketch, Inpaint, Inpaint sketch, Inpaint upload, Batch;
resize mode, denoising, inpaint mask controls; Generate runs `run_img2img` on the shared job queue.

The selected sub-tab is A1111's `mode` index (0–5). Masks: Inpaint = the painted layer's alpha (white = inpaint),
Inpaint sketch = pixels where the sketch differs from the original, Inpaint upload = the uploaded mask image.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, cast

import gradio as gr
import numpy as np
from PIL import Image

from modules.processing.context import AppContext
from modules.processing.img2img_batch import Img2ImgBatchSpec, list_images, run_img2img_batch_for_gallery
from modules.processing.params import INPAINTING_FILL_LABELS, RESIZE_MODE_LABELS, GenerationParams, Img2ImgParams
from modules.ui import generation_panel as panel_ui
from modules.ui.extra_networks import build_extra_networks
from modules.ui.gallery import build_output_panel
from modules.ui.interrogate_buttons import wire_interrogate_buttons
from modules.ui.layout_options import build_extra_options, build_in_order, settings_column
from modules.ui.output_actions import is_local
from modules.ui.paste import script_paste_fields
from modules.ui.toprow import build_toprow
from modules.ui.txt2img import GenerationTab, params_from_values, wire_generation_tab

MODES = ("img2img", "Sketch", "Inpaint", "Inpaint sketch", "Inpaint upload", "Batch")
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
INPAINT_AREAS = ("Whole picture", "Only masked")


def _editor_layers(value: Any) -> tuple[Image.Image | None, Image.Image | None, list[Image.Image]]:
    """(background, composite, layers) of an ImageEditor value (dict or EditorValue)."""
    if value is None:
        return None, None, []
    get = value.get if isinstance(value, dict) else (lambda k, d=None: getattr(value, k, d))
    return get("background"), get("composite"), list(get("layers") or [])


def mask_from_layers(layers: list[Image.Image], size: tuple[int, int]) -> Image.Image | None:
    """White where any painted layer has alpha > 0 (A1111 inpaint brush mask)."""
    mask = np.zeros((size[1], size[0]), dtype=bool)
    for layer in layers:
        if layer is None:
            continue
        alpha = np.asarray(layer.convert("RGBA").resize(size))[:, :, 3]
        mask |= alpha > 0
    return Image.fromarray((mask * 255).astype(np.uint8), "L") if mask.any() else None


def mask_from_sketch(background: Image.Image, composite: Image.Image) -> Image.Image | None:
    """Inpaint sketch: pixels the sketch changed (A1111 compares the sketched image with the original)."""
    a = np.asarray(background.convert("RGB").resize(composite.size), dtype=np.int16)
    b = np.asarray(composite.convert("RGB"), dtype=np.int16)
    changed = np.abs(a - b).sum(axis=2) > 0
    return Image.fromarray((changed * 255).astype(np.uint8), "L") if changed.any() else None


def init_and_mask(mode: int, inputs: dict[str, Any]) -> tuple[list[Image.Image], Image.Image | None]:
    """Init image(s) and mask for sub-tab `mode`; a clear error names the missing input."""
    if mode == 0:
        image = inputs["init_img"]
        if image is None:
            raise gr.Error("img2img: upload an image first")
        return [image.convert("RGB")], None
    if mode in (1, 2, 3):
        background, composite, layers = _editor_layers(inputs[("sketch", "inpaint", "inpaint_sketch")[mode - 1]])
        if background is None:
            raise gr.Error(f"{MODES[mode]}: upload an image first")
        if mode == 1:
            return [(composite or background).convert("RGB")], None
        if mode == 2:
            mask = mask_from_layers(layers, background.size)
            if mask is None:
                raise gr.Error("Inpaint: paint the area to change on the image (the mask is empty)")
            return [background.convert("RGB")], mask
        mask = mask_from_sketch(background, composite) if composite is not None else None
        if mask is None or composite is None:
            raise gr.Error("Inpaint sketch: draw on the image (nothing was changed)")
        return [composite.convert("RGB")], mask
    if mode == 4:
        if inputs["inpaint_upload"] is None or inputs["inpaint_mask"] is None:
            raise gr.Error("Inpaint upload: upload both the image and the mask (white = inpaint)")
        return [inputs["inpaint_upload"].convert("RGB")], inputs["inpaint_mask"].convert("L")
    folder = Path(inputs["batch_input_dir"] or "")
    if not str(inputs["batch_input_dir"] or "").strip() or not folder.is_dir():
        raise gr.Error(f"Batch: input directory {str(folder)!r} does not exist")
    masks = str(inputs.get("batch_inpaint_mask_dir") or "").strip()
    if masks and not Path(masks).is_dir():
        raise gr.Error(f"Batch: inpaint mask directory {masks!r} does not exist")
    files = list_images(folder)
    if not files:
        raise gr.Error(f"Batch: no images in {folder}")
    with Image.open(files[0]) as first:  # sizes "Resize by"; each file is opened by the batch job itself
        return [first.convert("RGB")], None


def batch_spec(inputs: dict[str, Any], scale_by: float | None) -> Img2ImgBatchSpec:
    """The Batch tab's folders (A1111 `img2img_batch_input_dir`, `_output_dir`, `_inpaint_mask_dir`)."""
    def text(name: str) -> str:
        return str(inputs.get(name) or "").strip()

    return Img2ImgBatchSpec(text("batch_input_dir"), text("batch_output_dir"), text("batch_inpaint_mask_dir"),
                            scale_by=scale_by)


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """A1111 "Resize by": each side times the scale, rounded down to a multiple of 8 (at least 64)."""
    return tuple(max(64, int(side * scale) // 8 * 8) for side in size)  # type: ignore[return-value]


def build_resize_tabs(fields: dict[str, gr.components.Component],
                      image: gr.components.Component) -> tuple[gr.Number, gr.Slider]:
    """Tabs "Resize to" (Width/Height) and "Resize by" (Scale 0.05–4, with "resize: from AxB to CxD");
    returns (selected tab index, scale)."""
    selected = gr.Number(value=0, precision=0, visible=False, elem_id="img2img_selected_scale_tab")
    with gr.Tabs(elem_id="img2img_tabs_resize"):
        with gr.Tab("Resize to", elem_id="img2img_tab_resize_to") as to_tab:
            panel_ui.build_size_rows("img2img", fields)
        with gr.Tab("Resize by", elem_id="img2img_tab_resize_by") as by_tab:
            scale = gr.Slider(0.05, 4.0, value=1.0, step=0.05, label="Scale", elem_id="img2img_scale")
            preview = gr.HTML(elem_id="img2img_scale_resolution_preview")
    to_tab.select(lambda: 0, None, selected, queue=False)
    by_tab.select(lambda: 1, None, selected, queue=False)

    def describe(factor: float, img: Image.Image | None) -> str:
        if img is None:
            return "<span>resize: upload an image first</span>"
        w, h = scaled_size(img.size, float(factor or 1))
        return f"<span class='resolution'>resize: from {img.width}x{img.height} to {w}x{h}</span>"

    scale.change(describe, [scale, image], preview, queue=False, show_progress="hidden")
    cast(gr.Image, image).change(describe, [scale, image], preview, queue=False, show_progress="hidden")
    return selected, scale


COPY_TARGETS = (("img2img", "img2img", "img2img_tab", 0), ("sketch", "sketch", "sketch_tab", 1),
                ("inpaint", "inpaint", "inpaint_tab", 2), ("inpaint sketch", "inpaint_sketch", "inpaint_sketch_tab", 3))
"""(button title, name, sub-tab id, mode index) of A1111's "Copy image to:" destinations."""
IMAGE_KEYS = {"img2img": "init_img"}


def copy_image_row(source: str) -> list[tuple[gr.Button, str, str]]:
    """A1111 "Copy image to:" row under an image sub-tab: one button per other sub-tab (its own is disabled);
    returns (button, source key, destination key)."""
    out: list[tuple[gr.Button, str, str]] = []
    with gr.Row(elem_id=f"img2img_copy_to_{source}", elem_classes=["copy-image-row"]):
        gr.HTML("Copy image to: ", elem_id=f"img2img_label_copy_to_{source}")
        for title, key, _tab_id, _index in COPY_TARGETS:
            button = gr.Button(title, size="sm", interactive=key != source, min_width=60,
                               elem_id=f"img2img_copy_{source}_to_{key}")
            if key != source:
                out.append((button, source, key))
    return out


def copied_image(value: Any) -> Image.Image | None:
    """The picture a sub-tab shows: a plain image, or an editor's composite (the inpaint mask layer is left
    behind: only the background is copied from Inpaint)."""
    if value is None or isinstance(value, Image.Image):
        return value
    background, composite, _layers = _editor_layers(value)
    return background if composite is None else composite


def wire_copy_image(buttons: list[tuple[gr.Button, str, str]], images: dict[str, gr.components.Component],
                    tabs: gr.Tabs, mode: gr.Number) -> None:
    """Copy the source image into the destination sub-tab and switch to it (A1111 `switch_to_<tab>`)."""
    where = {key: (tab_id, index) for _title, key, tab_id, index in COPY_TARGETS}
    for button, source, dest in buttons:
        tab_id, index = where[dest]
        from_inpaint = source == "inpaint"

        def copy(value: Any, tab_id: str = tab_id, index: int = index, from_inpaint: bool = from_inpaint) -> Any:
            image = _editor_layers(value)[0] if from_inpaint and value is not None else copied_image(value)
            if image is None:
                raise gr.Error("Copy image to: there is no image to copy")
            return image, gr.Tabs(selected=tab_id), index

        button.click(copy, images[IMAGE_KEYS.get(source, source)], [images[IMAGE_KEYS.get(dest, dest)], tabs, mode],
                     queue=False)


def build_inpaint_controls(fields: dict[str, gr.components.Component]) -> None:
    """The "inpaint" part: mask blur 4, mask mode, masked content "original", inpaint area, padding 32."""
    with gr.Group(elem_id="inpaint_controls"):
        fields["mask_blur"] = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur")
        fields["inpainting_mask_invert"] = gr.Radio(list(MASK_MODES), value=MASK_MODES[0], label="Mask mode",
                                                    type="index", elem_id="img2img_mask_mode")
        fields["inpainting_fill"] = gr.Radio(list(INPAINTING_FILL_LABELS), value=INPAINTING_FILL_LABELS[1],
                                             type="index", label="Masked content", elem_id="img2img_inpainting_fill")
        fields["inpaint_full_res"] = gr.Radio(list(INPAINT_AREAS), value=INPAINT_AREAS[0], label="Inpaint area",
                                              type="index", elem_id="img2img_inpaint_full_res")
        fields["inpaint_full_res_padding"] = gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                                                       elem_id="img2img_inpaint_full_res_padding")


def build_img2img_cfg(fields: dict[str, gr.components.Component]) -> None:
    """The "cfg" part: CFG Scale, then Image CFG Scale 1.5 (0–3; used by instruct-pix2pix models)."""
    panel_ui.build_cfg("img2img", fields)
    fields["image_cfg_scale"] = gr.Slider(0.0, 3.0, value=1.5, step=0.05, label="Image CFG Scale",
                                          elem_id="img2img_image_cfg_scale")


def editor_options(ctx: AppContext) -> dict[str, Any]:
    """Height and brushes of the image editors from the settings (A1111 `ui.create_ui`): every img2img image box
    is `img2img_editor_height` pixels high; Sketch and Inpaint sketch start with their default brush colour (the
    palette stays), the Inpaint mask brush has the one `img2img_inpaint_mask_brush_color`."""
    def colour(key: str) -> str:
        return str(ctx.settings.get(key) or "#ffffff")

    return {"height": int(ctx.settings.get("img2img_editor_height") or 720),
            "sketch": gr.Brush(default_color=colour("img2img_sketch_default_brush_color")),
            "mask": gr.Brush(colors=[colour("img2img_inpaint_mask_brush_color")], color_mode="fixed"),
            "inpaint_sketch": gr.Brush(default_color=colour("img2img_inpaint_sketch_default_brush_color"))}


def autosize(ctx: AppContext, value: Any) -> tuple[Any, Any]:
    """A1111 `img2img_autosize`: Width and Height take the size of an image loaded into an img2img input (upload,
    paste, copy or send-to); without the setting, or without an image, they stay."""
    image = copied_image(value) if ctx.settings.get("img2img_autosize") else None
    if image is None:
        return gr.update(), gr.update()
    return image.width, image.height


def wire_autosize(ctx: AppContext, images: dict[str, gr.components.Component],
                  fields: dict[str, gr.components.Component]) -> None:
    """Each image input of the img2img sub-tabs updates Width/Height through `autosize` (read when the image
    changes, so the setting acts without reloading the UI)."""
    for key in ("init_img", "sketch", "inpaint", "inpaint_sketch", "inpaint_upload"):
        cast(gr.Image, images[key]).change(lambda value: autosize(ctx, value), images[key],
                                           [fields["width"], fields["height"]], queue=False, show_progress="hidden")


def build_img2img(ctx: AppContext) -> GenerationTab:
    """Lay out and wire the img2img tab; the Generation panel's parts are built in `ui_reorder_list` order and
    `compact_prompt_box` makes the prompt row its "prompt" part (A1111)."""
    fields: dict[str, gr.components.Component] = {}
    images: dict[str, gr.components.Component] = {}
    copy_buttons: list[tuple[gr.Button, str, str]] = []
    compact = bool(ctx.settings.get("compact_prompt_box"))
    built: dict[str, Any] = {} if compact else {"row": build_toprow(ctx, "img2img")}
    together = panel_ui.batch_together(ctx)
    editor = editor_options(ctx)
    with gr.Row(elem_id="img2img_settings_row", equal_height=False):
        with settings_column(ctx, "img2img"):
            mode = gr.Number(value=0, precision=0, visible=False, elem_id="img2img_mode")
            with gr.Tabs(elem_id="mode_img2img") as mode_tabs:
                with gr.Tab("img2img", id="img2img_tab", elem_id="img2img_img2img_tab") as t0:
                    images["init_img"] = gr.Image(label="Image for img2img", type="pil", elem_id="img2img_image",
                                                  height=editor["height"], sources=["upload", "clipboard"])
                    copy_buttons += copy_image_row("img2img")
                with gr.Tab("Sketch", id="sketch_tab", elem_id="img2img_img2img_sketch_tab") as t1:
                    images["sketch"] = gr.ImageEditor(label="Sketch", type="pil", elem_id="img2img_sketch",
                                                      height=editor["height"], brush=editor["sketch"])
                    copy_buttons += copy_image_row("sketch")
                with gr.Tab("Inpaint", id="inpaint_tab", elem_id="img2img_inpaint_tab") as t2:
                    images["inpaint"] = gr.ImageEditor(label="Image for inpainting with mask", type="pil",
                                                       elem_id="img2maskimg", height=editor["height"],
                                                       brush=editor["mask"])
                    copy_buttons += copy_image_row("inpaint")
                with gr.Tab("Inpaint sketch", id="inpaint_sketch_tab", elem_id="img2img_inpaint_sketch_tab") as t3:
                    images["inpaint_sketch"] = gr.ImageEditor(label="Color sketch inpainting", type="pil",
                                                              elem_id="inpaint_sketch", height=editor["height"],
                                                              brush=editor["inpaint_sketch"])
                    copy_buttons += copy_image_row("inpaint_sketch")
                with gr.Tab("Inpaint upload", id="inpaint_upload_tab", elem_id="img2img_inpaint_upload_tab") as t4:
                    images["inpaint_upload"] = gr.Image(label="Image for img2img", type="pil",
                                                        elem_id="img_inpaint_base", height=editor["height"])
                    images["inpaint_mask"] = gr.Image(label="Mask", type="pil", elem_id="img_inpaint_mask",
                                                      height=editor["height"], image_mode="L")
                with gr.Tab("Batch", id="batch_tab", elem_id="img2img_batch_tab") as t5:
                    gr.HTML("<p>Process images in a directory on the same machine where the server is running."
                            "</p>")
                    images["batch_input_dir"] = gr.Textbox(label="Input directory", elem_id="img2img_batch_input_dir")
                    images["batch_output_dir"] = gr.Textbox(label="Output directory",
                                                            elem_id="img2img_batch_output_dir")
                    images["batch_inpaint_mask_dir"] = gr.Textbox(
                        label="Inpaint batch mask directory (required for inpaint batch processing only)",
                        elem_id="img2img_batch_inpaint_mask_dir")
            for index, sub in enumerate((t0, t1, t2, t3, t4, t5)):
                sub.select(lambda i=index: i, None, mode, queue=False)
            wire_copy_image(copy_buttons, images, mode_tabs, mode)
            with gr.Tabs(elem_id="img2img_extra_tabs") as extra_tabs, \
                    gr.Tab("Generation", elem_id="img2img_generation_tab"):
                built["extra_options"] = build_extra_options(ctx, "img2img")
                fields["resize_mode"] = gr.Radio(list(RESIZE_MODE_LABELS), value=RESIZE_MODE_LABELS[0],
                                                 label="Resize mode", elem_id="resize_mode", type="index")

                def dimensions() -> None:
                    with gr.Row(elem_id="img2img_dimensions_batch_row"):
                        with gr.Column(scale=4, elem_id="img2img_column_size"):
                            built["resize"] = build_resize_tabs(fields, images["init_img"])
                        if together:
                            panel_ui.build_batch("img2img", fields, column=True)

                build_in_order(ctx, {
                    "prompt": lambda: built.update(row=build_toprow(ctx, "img2img")) if compact else None,
                    "inpaint": lambda: build_inpaint_controls(fields),
                    "sampler": lambda: panel_ui.build_sampler(ctx, "img2img", fields),
                    "accordions": lambda: panel_ui.build_refiner(ctx, "img2img", fields),
                    "dimensions": dimensions,
                    "batch": lambda: None if together else panel_ui.build_batch("img2img", fields),
                    "cfg": lambda: build_img2img_cfg(fields),
                    "denoising": lambda: fields.update(denoising_strength=gr.Slider(
                        0.0, 1.0, value=0.75, step=0.01, label="Denoising strength",
                        elem_id="img2img_denoising_strength")) and None,
                    "seed": lambda: built.update(reuse=panel_ui.build_seed_controls(
                        "img2img", fields, textbox=bool(ctx.flags.use_textbox_seed))[0]),
                    "override_settings": lambda: panel_ui.build_override_settings("img2img", fields),
                    "scripts": lambda: built.update(scripts=panel_ui.build_scripts(ctx, "img2img", fields)),
                })
                scripts, resize = built["scripts"], built["resize"]
                fields.update(script_paste_fields(ctx, "img2img", scripts))
            with extra_tabs:  # extra networks tabs after "Generation" (modules/ui/extra_networks.py)
                build_extra_networks(ctx, "img2img")
        with gr.Column(scale=1):
            output = build_output_panel("img2img", local=is_local(ctx))
    wire_autosize(ctx, images, fields)
    row, reuse = built["row"], built["reuse"]
    tab = GenerationTab("img2img", fields, row, output,
                        extra={"reuse_seed": reuse, "scripts": scripts, "images": images, "mode": mode, "mode_tabs": mode_tabs,
                               "inputs": [*images.values(), mode, *resize], "extra_options": built["extra_options"]})
    tab.fields.update({"prompt": row.prompt, "negative_prompt": row.negative_prompt, "styles": row.styles})
    wire_interrogate_buttons(ctx, tab)

    def build(values: dict[str, Any], data: dict[gr.components.Component, Any]) -> GenerationParams:
        """Img2ImgParams by name, plus init images and mask from the selected sub-tab."""
        mode_index = int(data.get(mode) or 0)
        inputs = {name: data.get(component) for name, component in images.items()}
        init_images, mask = init_and_mask(mode_index, inputs)
        values = dict(values)
        if int(data.get(resize[0]) or 0) == 1:  # "Resize by": the size follows the first init image
            values["width"], values["height"] = scaled_size(init_images[0].size, float(data.get(resize[1]) or 1))
        values["inpaint_full_res"] = bool(values.get("inpaint_full_res"))
        values["mask_blur_x"] = values["mask_blur_y"] = int(values.get("mask_blur") or 0)
        if ctx.models is not None and not _is_pix2pix(ctx):
            values.pop("image_cfg_scale", None)
        params = cast(Img2ImgParams, params_from_values(Img2ImgParams, values))
        params.init_images = init_images
        params.mask = mask
        return params

    def choose_runner(data: dict[gr.components.Component, Any]) -> Any:
        """Batch (mode 5): one job per input file (A1111 `process_batch`), results joined for the gallery."""
        if int(data.get(mode) or 0) != 5:
            return None
        inputs = {name: data.get(component) for name, component in images.items()}
        scale_by = float(data.get(resize[1]) or 1) if int(data.get(resize[0]) or 0) == 1 else None
        limit = int(ctx.settings.get("img2img_batch_show_results_limit"))
        return functools.partial(run_img2img_batch_for_gallery, spec=batch_spec(inputs, scale_by), show_limit=limit)

    wire_generation_tab(ctx, tab, "img2img", build, "run_img2img", choose_runner)
    return tab


def _is_pix2pix(ctx: AppContext) -> bool:
    """Image CFG scale only applies to instruct-pix2pix models (A1111 hides the slider otherwise)."""
    current = ctx.models.current
    return getattr(getattr(current, "family", None), "startswith", lambda _p: False)("ip2p")
