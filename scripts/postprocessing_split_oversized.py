"""Extras "Split oversized images" (A1111 1.6+ `scripts/postprocessing_split_oversized.py`).

A1111 facts: name "Split oversized images", order 4000, an `InputAccordion` (off) with "Threshold" (0.5, 0–1 step
0.05) and "Overlap ratio" (0.2, 0–0.9 step 0.05). The target size is the Upscale's ("Scale by"/"Scale to", set in
`pp.shared` before any script runs); an image whose aspect mismatch `ratio` (≤ 1) is below 1 and at most the
threshold is cut into target-sized pieces (`modules.training.autocrop.split_image`, shared with Train →
Preprocess): the first replaces the image, the others become extra results.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.compat.ui_components import InputAccordion
from modules.extensions.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing
from modules.training.autocrop import aspect_mismatch, split_image


class ScriptPostprocessingSplitOversized(ScriptPostprocessing):
    name = "Split oversized images"
    order = 4000

    def ui(self) -> dict[str, Any]:
        with InputAccordion(False, label="Split oversized images", elem_id="extras_split") as enable, gr.Row():
            threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Threshold",
                                  elem_id="postprocess_split_threshold")
            overlap = gr.Slider(0.0, 0.9, value=0.2, step=0.05, label="Overlap ratio",
                                elem_id="postprocess_overlap_ratio")
        return {"enable": enable, "split_threshold": threshold, "overlap_ratio": overlap}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("enable"):
            return
        width, height = pp.shared.target_width, pp.shared.target_height
        if not width or not height:
            return
        ratio, _tall = aspect_mismatch(pp.image, width, height)
        if ratio >= 1.0 or ratio > float(args.get("split_threshold") or 0.0):
            return
        first, *others = split_image(pp.image, width, height, float(args.get("overlap_ratio") or 0.0))
        pp.image = first
        pp.extra_images = [pp.create_copy(x) for x in others]
