"""PNG Info tab (reference §3.5): drop an image → its `parameters` infotext and every other text chunk / EXIF
item; "Send to txt2img / img2img / inpaint / extras" buttons.

A1111 `modules/extras.run_pnginfo`; reading is `modules.images.read_info_from_image` (PNG chunks, JPEG/WebP EXIF
UserComment, NovelAI conversion).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from modules.images import read_info_from_image


@dataclass
class PngInfoTab:
    """Components other tabs wire their send-to events to."""

    image: gr.Image
    html_info: gr.HTML
    parameters: gr.Textbox
    send_to_txt2img: gr.Button
    send_to_img2img: gr.Button
    send_to_inpaint: gr.Button
    send_to_extras: gr.Button


def describe_image(image: Any) -> tuple[str, str]:
    """(HTML listing of every text item, the `parameters` infotext) for the dropped image."""
    if image is None:
        return "", ""
    geninfo, items = read_info_from_image(image)
    rows = []
    if geninfo:
        rows.append(f"<div><p><b>parameters</b></p><p>{html.escape(geninfo).replace(chr(10), '<br>')}</p></div>")
    for key, value in items.items():
        if key == "parameters":
            continue
        rows.append(f"<div><p><b>{html.escape(str(key))}</b></p><p>{html.escape(str(value))}</p></div>")
    if not rows:
        rows.append("<div><p>Nothing found in the image.</p></div>")
    return "".join(rows), geninfo or ""


def build_pnginfo() -> PngInfoTab:
    """Lay out the PNG Info tab."""
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            image = gr.Image(elem_id="pnginfo_image", label="Source", type="pil", height=420,
                             sources=["upload", "clipboard"], image_mode=None)
        with gr.Column(variant="panel"):
            html_info = gr.HTML(elem_id="pnginfo_html_info")
            parameters = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
            with gr.Row():
                to_txt2img = gr.Button("Send to txt2img", elem_id="pnginfo_send_to_txt2img", size="sm")
                to_img2img = gr.Button("Send to img2img", elem_id="pnginfo_send_to_img2img", size="sm")
            with gr.Row():
                to_inpaint = gr.Button("Send to inpaint", elem_id="pnginfo_send_to_inpaint", size="sm")
                to_extras = gr.Button("Send to extras", elem_id="pnginfo_send_to_extras", size="sm")
    image.change(describe_image, image, [html_info, parameters], queue=False)
    return PngInfoTab(image, html_info, parameters, to_txt2img, to_img2img, to_inpaint, to_extras)
