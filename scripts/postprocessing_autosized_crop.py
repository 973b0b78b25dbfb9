"""Extras "Auto-sized crop" (A1111 1.6+ `scripts/postprocessing_autosized_crop.py`).

A1111 facts: name "Auto-sized crop", order 4020, an `InputAccordion` (off) with the note "Each image is
center-cropped with an automatically chosen width and height.", "Dimension lower bound" (384) / "Dimension upper
bound" (768) (64–2048 step 8), "Area lower bound" (64·64) / "Area upper bound" (640·640) (64·64–2048·2048),
"Resizing objective" ("Maximize area" / "Minimize error") and "Error threshold" (0.1, 0–1 step 0.01). The image is
replaced by the centre crop of the chosen size; when no size qualifies it is left as it is (A1111 prints
"skipped"). Size rules: `modules.training.autocrop.best_size`, shared with Train → Preprocess.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.compat.ui_components import InputAccordion
from modules.extensions.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing
from modules.training.autocrop import MULTICROP_OBJECTIVES, best_size, center_crop


class ScriptPostprocessingAutosizedCrop(ScriptPostprocessing):
    name = "Auto-sized crop"
    order = 4020

    def ui(self) -> dict[str, Any]:
        with InputAccordion(False, label="Auto-sized crop", elem_id="extras_autosized_crop") as enable:
            gr.Markdown("Each image is center-cropped with an automatically chosen width and height.")
            with gr.Row():
                mindim = gr.Slider(64, 2048, value=384, step=8, label="Dimension lower bound",
                                   elem_id="postprocess_multicrop_mindim")
                maxdim = gr.Slider(64, 2048, value=768, step=8, label="Dimension upper bound",
                                   elem_id="postprocess_multicrop_maxdim")
            with gr.Row():
                minarea = gr.Slider(64 * 64, 2048 * 2048, value=64 * 64, step=1, label="Area lower bound",
                                    elem_id="postprocess_multicrop_minarea")
                maxarea = gr.Slider(64 * 64, 2048 * 2048, value=640 * 640, step=1, label="Area upper bound",
                                    elem_id="postprocess_multicrop_maxarea")
            with gr.Row():
                objective = gr.Radio(list(MULTICROP_OBJECTIVES), value="Maximize area", label="Resizing objective",
                                     elem_id="postprocess_multicrop_objective")
                threshold = gr.Slider(0.0, 1.0, value=0.1, step=0.01, label="Error threshold",
                                      elem_id="postprocess_multicrop_threshold")
        return {"enable": enable, "mindim": mindim, "maxdim": maxdim, "minarea": minarea, "maxarea": maxarea,
                "objective": objective, "threshold": threshold}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("enable"):
            return
        size = best_size(pp.image.width, pp.image.height, int(args["mindim"]), int(args["maxdim"]),
                         int(args["minarea"]), int(args["maxarea"]), str(args["objective"]), float(args["threshold"]))
        if size is None:
            return
        pp.image = center_crop(pp.image, *size)
