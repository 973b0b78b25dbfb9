"""Extras "Create flipped copies" (A1111 1.6+ `scripts/postprocessing_create_flipped_copies.py`).

A1111 facts: name "Create flipped copies", order 4030, an `InputAccordion` (off) holding a checkbox group
"Horizontal" / "Vertical" / "Both" (default Horizontal); each chosen option appends one extra image (mirrored
left-right, upside down, or both), saved beside the original as an extra result (one input → up to four outputs).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from modules.compat.ui_components import InputAccordion
from modules.extensions.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing

CHOICES = ("Horizontal", "Vertical", "Both")


def flipped_copies(image: Image.Image, option: list[str]) -> list[Image.Image]:
    """The copies for the chosen options, in A1111's order (Horizontal, Vertical, Both)."""
    out = []
    if "Horizontal" in option:
        out.append(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    if "Vertical" in option:
        out.append(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    if "Both" in option:
        out.append(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return out


class ScriptPostprocessingCreateFlippedCopies(ScriptPostprocessing):
    name = "Create flipped copies"
    order = 4030

    def ui(self) -> dict[str, Any]:
        with InputAccordion(False, label="Create flipped copies", elem_id="extras_flip") as enable:
            option = gr.CheckboxGroup(value=["Horizontal"], choices=list(CHOICES), show_label=False,
                                      elem_id="extras_flip_option")
        return {"enable": enable, "option": option}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("enable"):
            return
        pp.extra_images.extend(flipped_copies(pp.image, list(args.get("option") or [])))
