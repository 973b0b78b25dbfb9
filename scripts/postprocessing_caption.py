"""Extras "Caption" (A1111 1.6+ `scripts/postprocessing_caption.py`): sets `pp.caption` from DeepBooru tags and/or
the BLIP/CLIP interrogator; the Extras save step writes it to `<image>.txt`, combined with an existing caption per
`postprocessing_existing_caption_action` (`modules.postprocessing.captions`).

A1111 facts: name "Caption", order 4040, an `InputAccordion` (off) holding a checkbox group "Deepbooru" / "BLIP"
(default Deepbooru); the caption is the earlier `pp.caption`, the DeepBooru tags and the interrogator's answer
(A1111 `shared.interrogator.interrogate`, ours `ctx.interrogators.interrogate(image, "clip")`), the non-empty ones
joined by ", ". The API's extras routes pass None for every argument (off), as A1111's `create_args_for_run`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.compat.host import HOST
from modules.compat.ui_components import InputAccordion
from modules.extensions.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing

CHOICES = ("Deepbooru", "BLIP")
MODELS = {"Deepbooru": "deepdanbooru", "BLIP": "clip"}


def caption_for(image: Any, option: list[str] | None, earlier: str | None = None) -> str:
    """`earlier`, then the chosen interrogators' answers (A1111 order: Deepbooru, BLIP), non-empty ones joined by
    ", " (A1111 `ScriptPostprocessingCeption.process`)."""
    app = HOST.current()
    captions = [earlier]
    for choice in CHOICES:
        if choice in (option or []):
            captions.append(app.interrogators.interrogate(image.convert("RGB"), MODELS[choice]))
    return ", ".join(c for c in captions if c)


class ScriptPostprocessingCaption(ScriptPostprocessing):
    name = "Caption"
    order = 4040

    def ui(self) -> dict[str, Any]:
        with InputAccordion(False, label="Caption", elem_id="extras_caption") as enable:
            option = gr.CheckboxGroup(value=["Deepbooru"], choices=list(CHOICES), show_label=False,
                                      elem_id="extras_caption_option")
        return {"enable": enable, "option": option}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("enable"):
            return
        pp.caption = caption_for(pp.image, list(args.get("option") or []), pp.caption)
