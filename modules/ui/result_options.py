"""What the txt2img/img2img handlers do around a job, by setting (A1111 `modules/txt2img.py`, `modules/img2img.py`,
`txt2img_upscale`): console prints, hiding the images from the gallery, and where the ✨ result goes.

- `enable_console_prompts`: the prompt is printed to the console when a job starts ("\\ntxt2img: <prompt>").
- `samples_log_stdout`: the generation info JSON is printed when the job finishes.
- `do_not_show_images`: the gallery stays empty (the images are still saved and their infotext is shown).
- `hires_button_gallery_insert`: ✨ inserts its result after the selected image instead of replacing it.
- `lora_not_found_gradio_warning`: a missing network also shows as a pop-up warning.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.ui.gallery import OutputPanel, gallery_item


def print_prompt(ctx: AppContext, kind: str, prompt: str) -> None:
    """A1111 `enable_console_prompts`: "txt2img: <prompt>" on the console when a generation starts."""
    if ctx.settings.get("enable_console_prompts"):
        print(f"\n{kind}: {prompt}", flush=True)


def present(ctx: AppContext, updates: Iterator[dict[Any, Any]], panel: OutputPanel) -> Iterator[dict[Any, Any]]:
    """Pass a job's UI updates through, applying `samples_log_stdout` and `do_not_show_images` to the final one;
    with `lora_not_found_gradio_warning` a "Networks not found" notice also pops up as a Gradio warning (A1111
    `gr.Warning("Lora not found: …")`)."""
    for update in updates:
        log_html = str(update.get(panel.html_log) or "")
        if "Networks not found: " in log_html and ctx.settings.get("lora_not_found_gradio_warning"):
            found = re.search(r"Networks not found: ([^<]*)", log_html)
            if found:
                gr.Warning("Lora not found: " + html.unescape(found.group(1)).strip())
        if update.get(panel.generation_info):
            if ctx.settings.get("samples_log_stdout"):
                print(update[panel.generation_info], flush=True)
            if ctx.settings.get("do_not_show_images"):
                update[panel.gallery] = []
        yield update


def merge_hires_result(ctx: AppContext, updates: Iterator[dict[Any, Any]], panel: OutputPanel, gallery: Any,
                       index: int, info: str | None) -> Iterator[dict[Any, Any]]:
    """✨ result into the existing gallery (A1111 `txt2img_upscale`): it replaces gallery entry `index`, or with
    `hires_button_gallery_insert` is inserted after it; the infotexts of the info JSON follow the same change and
    the new image is selected."""
    items = [gallery_item(entry) for entry in gallery or []]
    for update in updates:
        result = update.get(panel.gallery)
        if not result or panel.generation_info not in update or not items:
            yield update
            continue
        index = index if 0 <= index < len(items) else 0
        insert = bool(ctx.settings.get("hires_button_gallery_insert"))
        new_items = items[:index + 1] + list(result) + items[index + 1:] if insert else \
            items[:index] + list(result) + items[index + 1:]
        update[panel.gallery] = new_items
        update[panel.selected_index] = index + 1 if insert else index
        update[panel.generation_info] = _merged_info(info, update[panel.generation_info], index, insert)
        yield update


def _merged_info(old: str | None, new: str, index: int, insert: bool) -> str:
    """The gallery's info JSON with the ✨ image's infotext at its place (the rest of the old info kept)."""
    try:
        before, after = json.loads(old or "{}"), json.loads(new or "{}")
    except ValueError:
        return new
    texts = list(before.get("infotexts") or [])
    if not texts:
        return new
    added = list(after.get("infotexts") or [])
    start = index + 1 if insert else index
    texts[start:index + 1] = added
    before["infotexts"] = texts
    return json.dumps(before, ensure_ascii=False, default=str)
