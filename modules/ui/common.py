"""Small helpers shared by the tabs: choices lists read from the registries, tool-button factory, formatting.

A1111 keeps these in `modules/ui_common.py` / `modules/ui_components.py` (`ToolButton`, `FormRow`); here they read
everything from the `AppContext` instead of module globals.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from modules.processing.context import AppContext

RANDOM_ICON = "\U0001f3b2"  # 🎲 A1111 "Set seed to -1"
REUSE_ICON = "\u267b\ufe0f"  # ♻️ A1111 "Reuse seed from last generation"
PASTE_ICON = "\u2199\ufe0f"  # ↙️ read generation parameters
CLEAR_ICON = "\U0001f5d1\ufe0f"  # 🗑️ clear prompt
APPLY_STYLE_ICON = "\U0001f4cb"  # 📋 apply styles
SAVE_STYLE_ICON = "\U0001f4be"  # 💾 save style
REFRESH_ICON = "\U0001f504"  # 🔄 refresh
SWAP_ICON = "\u21c5"  # ⇅ swap width/height

DEFAULT_SAMPLER = "DPM++ 2M"
"""A1111 1.9+ UI default sampler (reference §3.2)."""


def tool_button(value: str, elem_id: str) -> gr.Button:
    """A1111's `ToolButton`: a small square emoji button; its tooltip comes from `javascript/hints.js`."""
    return gr.Button(value=value, elem_id=elem_id, elem_classes=["tool"], size="sm", min_width=40, scale=0)


def sampler_names() -> list[str]:
    """Sampler names in A1111 order (the registry of `modules.sampling`)."""
    from modules.sampling import list_samplers

    return [spec.name for spec in list_samplers()]


def scheduler_labels() -> list[str]:
    """Schedule type labels, "Automatic" first (reference §6)."""
    from modules.sampling import list_schedulers

    return [sched.label for sched in list_schedulers()]


def checkpoint_titles(ctx: AppContext) -> list[str]:
    """Titles "name.safetensors [hash]" of every checkpoint found, as the quicksettings dropdown lists them."""
    if ctx.models is None:
        return []
    return list(ctx.models.registry.titles())


def checkpoint_choices(ctx: AppContext) -> list[str]:
    """The `sd_model_checkpoint` dropdown's entries: titles, or with `sd_checkpoint_dropdown_use_short` the file
    names without folders ("sd15 [hash]" for photo/sd15.safetensors; A1111 `list_checkpoint_tiles(use_short)`)."""
    if ctx.models is None:
        return []
    if ctx.settings.get("sd_checkpoint_dropdown_use_short"):
        return [info.short_title for info in ctx.models.registry]
    return list(ctx.models.registry.titles())


def checkpoint_label(ctx: AppContext, info: Any) -> str:
    """How the dropdown names checkpoint `info` (see `checkpoint_choices`)."""
    return str(info.short_title if ctx.settings.get("sd_checkpoint_dropdown_use_short") else info.title)


def vae_choices(ctx: AppContext) -> list[str]:
    """A1111 `sd_vae` choices: "Automatic", "None", then VAE files of models/VAE (by file name)."""
    names: list[str] = []
    folder = Path(ctx.paths.vae_dir)
    if folder.is_dir():
        names = sorted(p.name for p in folder.rglob("*") if p.suffix.lower() in (".safetensors", ".pt", ".ckpt"))
    return ["Automatic", "None", *names]


def style_names(ctx: AppContext) -> list[str]:
    """Names of the styles in styles.csv (the multiselect dropdown)."""
    if ctx.styles is None:
        return []
    return [name for name in ctx.styles.styles if name != "None"]


def infotext_html(text: str) -> str:
    """Generation info below the gallery: A1111 shows the infotext as paragraphs, HTML-escaped."""
    if not text:
        return "<div class='infotext'></div>"
    lines = "<br>".join(html.escape(line) for line in text.split("\n"))
    return f"<div class='infotext'><p>{lines}</p></div>"


def error_html(message: str) -> str:
    """A visible error line (A1111 shows job errors in the html_log area)."""
    return f"<div class='error'>{html.escape(message)}</div>"


def format_time_taken(seconds: float, peak_bytes: int) -> str:
    """Footer "Time taken: 1 min. 2.3 sec." plus "A: x GB, R: y GB, Sys: …" when memory is known (A1111 format)."""
    minutes, secs = divmod(max(0.0, seconds), 60)
    taken = f"{int(minutes)} min. {secs:.1f} sec." if minutes else f"{secs:.1f} sec."
    text = f"Time taken: <wbr><span class='measurement'>{taken}</span>"
    if peak_bytes:
        text += f" <span class='measurements'>A: <b>{peak_bytes / 2 ** 30:.2f} GB</b></span>"
    return f"<div class='performance'><p class='time'>{text}</p></div>"
