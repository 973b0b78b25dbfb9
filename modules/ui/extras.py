"""Extras tab (reference §3.4): Single Image / Batch Process / Batch from Directory with the Upscale block.

Upscalers available without downloaded weights are A1111's "Lanczos" and "Nearest" (PIL resampling; A1111
`modules/upscaler.py` `UpscalerLanczos` / `UpscalerNearest`); model upscalers appear when the postprocessing
package provides them through `ctx.extra["upscalers"]` ({name: callable(image, scale) -> image}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from modules.ui.common import error_html

PIL_UPSCALERS = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}


def upscaler_names(ctx: Any) -> list[str]:
    """"None", the PIL upscalers, then any model upscalers registered by the postprocessing layer."""
    return ["None", *PIL_UPSCALERS, *ctx.extra.get("upscalers", {})]


def target_size(image: Image.Image, mode: int, scale: float, max_side: int, width: int, height: int) -> tuple[int, int]:
    """A1111 "Scale by" (optionally limited by "Max side length") or "Scale to" W×H."""
    if mode == 1:
        return int(width), int(height)
    w, h = image.width * scale, image.height * scale
    if max_side and max(w, h) > max_side:
        ratio = max_side / max(w, h)
        w, h = w * ratio, h * ratio
    return max(1, round(w)), max(1, round(h))


def upscale(ctx: Any, image: Image.Image, name: str, size: tuple[int, int], crop: bool) -> Image.Image:
    """Resize with upscaler `name`; "Crop to fit" keeps the aspect ratio and crops the centre (A1111)."""
    if name == "None":
        return image
    if name in PIL_UPSCALERS:
        method = PIL_UPSCALERS[name]
        if crop:
            ratio = max(size[0] / image.width, size[1] / image.height)
            big = image.resize((round(image.width * ratio), round(image.height * ratio)), method)
            left, top = (big.width - size[0]) // 2, (big.height - size[1]) // 2
            return big.crop((left, top, left + size[0], top + size[1]))
        return image.resize(size, method)
    scale = size[0] / image.width
    out = ctx.extra["upscalers"][name](image, scale)
    return out.resize(size, Image.Resampling.LANCZOS) if out.size != size else out


def build_extras(ctx: Any) -> dict[str, gr.components.Component]:
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
                c["upscaler_2_visibility"] = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility")
        with gr.Column():
            gallery = gr.Gallery(label="Result", elem_id="extras_gallery", columns=3, height=420, format="png")
            log = gr.HTML(elem_id="html_log_extras")

    def run(mode_i: int, image: Any, files: Any, input_dir: str, output_dir: str, size_i: int, scale: float,
            max_side: int, width: int, height: int, crop: bool, up1: str, up2: str, vis2: float) -> tuple[Any, str]:
        """Process the chosen source(s); Batch from Directory writes into the output directory."""
        sources: list[tuple[str, Image.Image]] = []
        if int(mode_i) == 0:
            if image is None:
                raise gr.Error("Extras: upload an image first")
            sources = [("image", image)]
        elif int(mode_i) == 1:
            sources = [(Path(str(f)).stem, Image.open(str(getattr(f, "name", f)))) for f in files or []]
        else:
            folder = Path(input_dir or "")
            if not folder.is_dir():
                raise gr.Error(f"Extras: input directory {str(folder)!r} does not exist")
            sources = [(p.stem, Image.open(p)) for p in sorted(folder.iterdir()) if p.suffix.lower() in
                       (".png", ".jpg", ".jpeg", ".webp")]
        if not sources:
            raise gr.Error("Extras: no images to process")
        results = []
        for stem, img in sources:
            img = img.convert("RGB")
            size = target_size(img, int(size_i), scale, int(max_side), width, height)
            out = upscale(ctx, img, up1, size, bool(crop) and int(size_i) == 1)
            if up2 != "None" and vis2 > 0:
                out = Image.blend(out, upscale(ctx, img, up2, size, bool(crop) and int(size_i) == 1), vis2)
            results.append(out)
            if int(mode_i) == 2 and output_dir:
                Path(output_dir).mkdir(parents=True, exist_ok=True)
                out.save(Path(output_dir) / f"{stem}.png")
        return results, "" if results else error_html("Nothing was produced")

    submit.click(run, [mode, c["image"], c["files"], c["input_dir"], c["output_dir"], size_mode, c["scale"],
                       c["max_side"], c["width"], c["height"], c["crop"], c["upscaler_1"], c["upscaler_2"],
                       c["upscaler_2_visibility"]], [gallery, log])
    return c
