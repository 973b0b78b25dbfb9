"""img2img's "Interrogate CLIP" / "Interrogate DeepBooru" buttons: describe the input image into the prompt.

A1111 facts (`modules/ui.py` `process_interrogate`): the image of the selected img2img sub-tab is interrogated
(img2img, Sketch and Inpaint sketch use what is drawn, Inpaint the uploaded picture, Inpaint upload its image) and
the answer replaces the prompt; on the Batch sub-tab every image of the input directory is interrogated and the
text is appended to `<output dir>/<image name>.txt`, the prompt staying as it is. The work runs in the job queue,
like every other device user.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from modules.processing.context import AppContext
from modules.processing.img2img_batch import list_images
from modules.runtime.jobs import JobFailedError
from modules.ui.txt2img import GenerationTab

SINGLE_IMAGES = ("init_img", "sketch", "inpaint", "inpaint_sketch", "inpaint_upload")
"""The image component of each img2img mode 0–4; mode 5 is Batch."""
_DRAWN = {"sketch", "inpaint_sketch"}


def mode_image(mode: int, values: list[Any]) -> Image.Image | None:
    """The image to interrogate for img2img `mode` from the five single-image inputs (editor values or images)."""
    if not 0 <= mode < len(SINGLE_IMAGES):
        return None
    value = values[mode]
    if isinstance(value, Image.Image) or value is None:
        return value
    get = value.get if isinstance(value, dict) else (lambda key, default=None: getattr(value, key, default))
    key = ("composite", "background") if SINGLE_IMAGES[mode] in _DRAWN else ("background", "composite")
    image = get(key[0]) or get(key[1])
    return image if isinstance(image, Image.Image) else None


def interrogate_in_queue(ctx: AppContext, image: Image.Image, model: str) -> str:
    """Run one interrogation as a job and wait for it; failures become a UI notice naming what is missing."""
    job = ctx.jobs.submit(lambda job: ctx.interrogators.interrogate(image.convert("RGB"), model), kind="interrogate")
    try:
        return str(job.result() or "")
    except JobFailedError as exc:
        raise gr.Error(f"Interrogate: {exc.error.message}") from None


def interrogate_batch(ctx: AppContext, model: str, input_dir: str, output_dir: str) -> int:
    """Append each input image's interrogation to `<output_dir>/<stem>.txt` (A1111 batch interrogation)."""
    if not (input_dir or "").strip():
        raise gr.Error("Interrogate: enter an input directory on the Batch tab")
    try:
        files = list_images(input_dir.strip())
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    target = Path(output_dir.strip()) if (output_dir or "").strip() else None
    for path in files:
        with Image.open(path) as opened:
            prompt = interrogate_in_queue(ctx, opened.convert("RGB"), model)
        if target is not None:
            target.mkdir(parents=True, exist_ok=True)
            with (target / f"{path.stem}.txt").open("a", encoding="utf-8") as out:
                out.write(prompt)
    return len(files)


def wire_interrogate_buttons(ctx: AppContext, tab: GenerationTab) -> None:
    """Connect the img2img prompt row's Interrogate buttons to the selected sub-tab's image and the prompt."""
    row, images, mode = tab.toprow, tab.extra["images"], tab.extra["mode"]
    inputs = [mode, *(images[name] for name in SINGLE_IMAGES), images["batch_input_dir"], images["batch_output_dir"]]
    for button, model in ((row.interrogate, "clip"), (row.deepbooru, "deepdanbooru")):
        if button is None:
            continue

        def run(mode_value: Any, *values: Any, model: str = model) -> Any:
            index = int(mode_value or 0)
            if index == len(SINGLE_IMAGES):
                interrogate_batch(ctx, model, values[-2], values[-1])
                return gr.update()
            image = mode_image(index, list(values[: len(SINGLE_IMAGES)]))
            if image is None:
                raise gr.Error("Interrogate: put an image into the img2img tab first")
            return interrogate_in_queue(ctx, image, model)

        button.click(run, inputs, [row.prompt], show_progress="minimal")


__all__ = ["interrogate_batch", "interrogate_in_queue", "mode_image", "wire_interrogate_buttons"]
