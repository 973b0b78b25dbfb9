"""Paste generation parameters into a tab: infotext → params fields → components, matched BY NAME.

A1111 `modules/infotext_utils.py`: the ↙️ button parses the prompt box (or `params.txt` when the box is empty),
each parsed key is mapped to a control, settings found in the text go to "Override settings", and
"Send to txt2img/img2img/…" does the same with an image's infotext (`send_seed`, `send_size` settings decide
whether seed and size are copied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from modules.images import parse_infotext
from modules.processing.extra_networks import rewrite_pasted_fields
from modules.processing.infotext_fields import params_from_fields

SEED_FIELDS = ("seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h")
SIZE_FIELDS = ("width", "height")


def looks_like_infotext(text: str) -> bool:
    """True when the prompt box holds a full infotext (A1111 checks for a "Steps:" parameters line)."""
    return "\nSteps: " in f"\n{text}" or text.startswith("Steps: ")


def read_last_params(ctx: Any) -> str:
    """The last generation's infotext from `params.txt` ("" if prompt history is off or nothing was generated)."""
    path = getattr(ctx.paths, "params_file", None)
    if path is None or not Path(path).is_file():
        return ""
    return Path(path).read_text(encoding="utf-8", errors="replace")


def parsed_infotext(ctx: Any, text: str) -> dict[str, Any]:
    """Parse with the `infotext_styles` setting and the style database (styles are taken back out of prompts);
    `<lora:alias:…>` is renamed to the local LoRA with the `Lora hashes` hash (A1111 Lora `infotext_pasted`)."""
    extractor = ctx.styles.extract_styles_from_prompt if ctx.styles is not None else None
    parsed = parse_infotext(text, style_extractor=extractor,
                            infotext_styles=str(ctx.settings.get("infotext_styles")))
    return rewrite_pasted_fields(ctx.networks, parsed)


def override_choices(ctx: Any, settings: dict[str, Any]) -> list[str]:
    """"Label: value" entries for settings in the text that differ from the current ones (A1111 override box)."""
    out: list[str] = []
    for key, value in settings.items():
        info = ctx.settings.registry.get(key)
        if info is None:
            continue
        try:
            if str(ctx.settings.get(key)) == str(value):
                continue
        except Exception:
            pass
        out.append(f"{key}: {value}")
    return out


def updates_from_infotext(ctx: Any, text: str, fields: dict[str, gr.components.Component], *,
                          for_send: bool = False) -> dict[gr.components.Component, Any]:
    """Component updates for every params field named in `text`; unknown names are ignored (A1111 is tolerant).

    With `for_send`, seed and size follow the `send_seed` / `send_size` settings as A1111's send-to buttons do.
    """
    parsed = parsed_infotext(ctx, text)
    values, settings = params_from_fields(parsed)
    if "Styles array" in parsed:
        values["styles"] = list(parsed["Styles array"])
    if values.get("scheduler") is None and "Schedule type" in parsed:
        values["scheduler"] = parsed["Schedule type"]
    if for_send and not ctx.settings.get("send_seed"):
        for name in SEED_FIELDS:
            values.pop(name, None)
    if for_send and not ctx.settings.get("send_size"):
        for name in SIZE_FIELDS:
            values.pop(name, None)
    if values.get("subseed_strength") or (values.get("seed_resize_from_w") or 0) > 0:
        values["seed_extra"] = True
    if values.get("refiner_checkpoint"):
        values["refiner_enable"] = True
    updates: dict[gr.components.Component, Any] = {}
    for name, value in values.items():
        component = fields.get(name)
        if component is not None:
            updates[component] = gr.update(value=value)
    if "override_settings" in fields:
        choices = override_choices(ctx, settings)
        updates[fields["override_settings"]] = gr.update(choices=choices, value=choices, visible=bool(choices))
    return updates


def override_settings_from_choices(choices: list[str] | None) -> dict[str, Any]:
    """The `override_settings` dict from the "key: value" entries still selected in the override box."""
    out: dict[str, Any] = {}
    for item in choices or []:
        key, sep, value = str(item).partition(": ")
        if sep:
            out[key.strip()] = value
    return out
