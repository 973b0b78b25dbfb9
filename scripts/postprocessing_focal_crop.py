"""Extras "Auto focal point crop" (A1111 1.6+ `scripts/postprocessing_focal_crop.py`).

A1111 facts: name "Auto focal point crop", order 4010, an `InputAccordion` (off) with "Focal point face weight"
(0.9), "Focal point entropy weight" (0.15), "Focal point edges weight" (0.5), all 0–1 step 0.05, and "Create debug
image". The crop size is the Upscale's target size (`pp.shared`); the crop replaces the image and the debug image
is an extra result tagged "focal-crop-debug" that later operations skip (`disable_processing`). The crop rules are
`modules.training.autocrop.focal_crop`, shared with Train → Preprocess (no face detector weights: face weight has
no effect there).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.compat.ui_components import InputAccordion
from modules.extensions.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing
from modules.training.autocrop import FocalSettings, focal_crop


class ScriptPostprocessingFocalCrop(ScriptPostprocessing):
    name = "Auto focal point crop"
    order = 4010

    def ui(self) -> dict[str, Any]:
        with InputAccordion(False, label="Auto focal point crop", elem_id="extras_focal_crop") as enable:
            face = gr.Slider(0.0, 1.0, value=0.9, step=0.05, label="Focal point face weight",
                             elem_id="postprocess_focal_crop_face_weight")
            entropy = gr.Slider(0.0, 1.0, value=0.15, step=0.05, label="Focal point entropy weight",
                                elem_id="postprocess_focal_crop_entropy_weight")
            edges = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Focal point edges weight",
                              elem_id="postprocess_focal_crop_edges_weight")
            debug = gr.Checkbox(value=False, label="Create debug image", elem_id="train_process_focal_crop_debug")
        return {"enable": enable, "face_weight": face, "entropy_weight": entropy, "edges_weight": edges,
                "debug": debug}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("enable"):
            return
        width, height = pp.shared.target_width, pp.shared.target_height
        if not width or not height:
            return
        settings = FocalSettings(int(width), int(height), float(args.get("face_weight") or 0.0),
                                 float(args.get("entropy_weight") or 0.0), float(args.get("edges_weight") or 0.0),
                                 bool(args.get("debug")))
        result, *others = focal_crop(pp.image, settings)
        pp.image = result
        pp.extra_images = [pp.create_copy(x, nametags=["focal-crop-debug"], disable_processing=True) for x in others]
