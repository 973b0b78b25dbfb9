"""Soft inpainting: the always-on "Soft Inpainting" accordion of img2img (A1111 1.8+ built-in extension
`soft-inpainting`, reference §3.3).

A1111's arguments, in its order (the API's `alwayson_scripts["soft inpainting"]["args"]`): enabled (False), Schedule
bias 1 (0–8), Preservation strength 0.5 (0.05–8), Transition contrast boost 4 (1–32), Mask influence 0 (0–1),
Difference threshold 0.5 (0–8), Difference contrast 2 (0–8). The blending itself is part of the pipeline
(`modules.processing.soft_inpainting`, which reads these arguments from `p.alwayson_scripts` and writes
"Soft inpainting enabled: True" and the six values to the infotext); this script declares the controls, so the UI
shows them and the API accepts the title, and its `infotext_fields` let a pasted infotext set them again.
"""

from __future__ import annotations

from typing import Any

from modules.extensions.api import AlwaysVisible, Script, ScriptArg
from modules.processing.soft_inpainting import LABELS, NAMES

HINTS = (
    "Shifts when preservation of original content occurs during denoising.",
    "How strongly partially masked content should be preserved.",
    "Amplifies the contrast that may be lost in partially masked regions.",
    "How strongly the original mask should bias the difference threshold.",
    "How much an image region can change before the original pixels are not blended in anymore.",
    "How sharp the transition should be between blended and not blended.",
)
RANGES = ((1.0, 0.0, 8.0, 0.1), (0.5, 0.05, 8.0, 0.05), (4.0, 1.0, 32.0, 0.5), (0.0, 0.0, 1.0, 0.05),
          (0.5, 0.0, 8.0, 0.25), (2.0, 0.0, 8.0, 0.25))
"""(default, minimum, maximum, step) of each slider, in `NAMES` order (A1111's values)."""


class SoftInpainting(Script):
    """Always on in img2img; hidden in txt2img (A1111 `show`: AlwaysVisible only for img2img)."""

    def __init__(self) -> None:
        # (argument name, infotext label) pairs: pasting an infotext sets these controls (A1111 `infotext_fields`)
        self.infotext_fields = [("enabled", "Soft inpainting enabled"), *zip(NAMES, LABELS, strict=True)]

    def title(self) -> str:
        return "Soft Inpainting"

    def show(self, is_img2img: bool) -> Any:
        return AlwaysVisible if is_img2img else False

    def ui(self, is_img2img: bool) -> list[Any]:
        controls = [ScriptArg("enabled", "Soft inpainting", False, kind="checkbox")]
        for name, label, hint, (default, low, high, step) in zip(NAMES, LABELS, HINTS, RANGES, strict=True):
            controls.append(ScriptArg(name, label, default, kind="slider", minimum=low, maximum=high, step=step,
                                      info=hint))
        return controls
