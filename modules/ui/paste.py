"""Paste generation parameters into a tab: infotext → params fields → components, matched BY NAME.

A1111 `modules/infotext_utils.py`: the ↙️ button parses the prompt box (or `params.txt` when the box is empty),
each parsed key is mapped to a control, settings found in the text go to "Override settings", and
"Send to txt2img/img2img/…" does the same with an image's infotext (`send_seed`, `send_size` settings decide
whether seed and size are copied).

"Override settings" follows A1111's `get_override_settings` / `create_override_settings_dict`: entries
"<infotext label>: <value>" for the settings whose value in the text (cast to the setting's type) differs from the
current one; the checkpoint (`Model hash`) only when `disable_weights_auto_swap` is off. Index radios (Mask mode,
Masked content, Inpaint area, Resize mode) receive their label, not the index. Scripts' `infotext_fields`
((argument name or component, infotext label) pairs, e.g. Soft inpainting's) are pasted into their controls,
registered in the tab's fields as `infotext:<label>`; a "Script" field selects that script in the Script dropdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from modules.images import parse_infotext
from modules.processing.context import AppContext
from modules.processing.extra_networks import rewrite_pasted_fields
from modules.processing.infotext_fields import (
    override_settings_from_infotext,
    params_from_fields,
    setting_for_label,
    setting_labels,
)
from modules.settings import REGISTRY, SettingsError

SCRIPT_FIELD_PREFIX = "infotext:"
SEED_FIELDS = ("seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h")
SIZE_FIELDS = ("width", "height")


def looks_like_infotext(text: str) -> bool:
    """True when the prompt box holds a full infotext (A1111 checks for a "Steps:" parameters line)."""
    return "\nSteps: " in f"\n{text}" or text.startswith("Steps: ")


def read_last_params(ctx: AppContext) -> str:
    """The last generation's infotext from `params.txt` ("" if prompt history is off or nothing was generated)."""
    path = getattr(ctx.paths, "params_file", None)
    if path is None or not Path(path).is_file():
        return ""
    return Path(path).read_text(encoding="utf-8", errors="replace")


def parsed_infotext(ctx: AppContext, text: str) -> dict[str, Any]:
    """Parse with the `infotext_styles`, `infotext_skip_pasting` and `auto_backcompat` settings and the style
    database (styles are taken back out of prompts);
    `<lora:alias:…>` is renamed to the local LoRA with the `Lora hashes` hash (A1111 Lora `infotext_pasted`)."""
    extractor = ctx.styles.extract_styles_from_prompt if ctx.styles is not None else None
    parsed = parse_infotext(text, style_extractor=extractor,
                            infotext_styles=str(ctx.settings.get("infotext_styles")),
                            skip_fields=list(ctx.settings.get("infotext_skip_pasting") or ()),
                            auto_backcompat=bool(ctx.settings.get("auto_backcompat")))
    ctx.callbacks.fire("infotext_pasting", text, parsed)  # A1111 `parse_generation_parameters`: may edit `parsed`
    return rewrite_pasted_fields(ctx.networks, parsed)


def override_choices(ctx: AppContext, parsed: dict[str, Any]) -> list[str]:
    """"Label: value" entries for the settings the parsed infotext changes (A1111 override box)."""
    models = getattr(ctx, "models", None)

    def checkpoint_title(search: str) -> str | None:
        found = models.registry.get(search) if models is not None else None
        return found.title if found is not None else None

    current = models.current if models is not None else None
    overrides = override_settings_from_infotext(
        parsed, ctx.settings, checkpoint_title=checkpoint_title,
        current_checkpoint=current.checkpoint.title if current is not None else None)
    labels = {key: label for label, key in reversed(setting_labels(ctx.settings.registry))}
    return [f"{labels.get(key, key)}: {value}" for key, value in overrides.items()]


def script_paste_fields(ctx: AppContext, kind: str, controls: Any) -> dict[str, gr.components.Component]:
    """`infotext:<label>` → control for every script's `infotext_fields` whose target is one of its controls on
    this tab (an argument name, or a component its `ui()` returned) (A1111 `ScriptRunner.paste_field_names`)."""
    out: dict[str, gr.components.Component] = {}
    for script in ctx.scripts.for_kind(kind).scripts:
        title = script.title()
        pairs = list(controls.alwayson.get(title) or controls.selectable.get(title) or [])
        by_name = dict(pairs)
        on_page = {id(component) for _name, component in pairs}
        for target, label in getattr(script, "infotext_fields", None) or []:
            component = by_name.get(target) if isinstance(target, str) else target
            if isinstance(label, str) and component is not None and id(component) in on_page:
                out[SCRIPT_FIELD_PREFIX + label] = component
    return out


def script_field_value(component: gr.components.Component, text: Any) -> Any:
    """An infotext value as a script control takes it (checkbox → bool, slider/number → number); None if
    unreadable (the control keeps its value, as A1111's paste does)."""
    if isinstance(component, gr.Checkbox):
        return str(text).strip().lower() in ("true", "1")
    if isinstance(component, gr.Slider | gr.Number):
        try:
            return float(text)
        except (TypeError, ValueError):
            return None
    return str(text)


def component_value(component: gr.components.Component, value: Any) -> Any:
    """The value as the component takes it: an index radio (`type="index"`) gets the label at that index."""
    if isinstance(component, gr.Radio) and getattr(component, "type", None) == "index" \
            and isinstance(value, int | bool):
        choices = list(component.choices or [])
        if 0 <= int(value) < len(choices):
            choice = choices[int(value)]
            return choice[1] if isinstance(choice, tuple | list) else choice
    return value


def updates_from_infotext(ctx: AppContext, text: str, fields: dict[str, gr.components.Component], *,
                          for_send: bool = False) -> dict[gr.components.Component, Any]:
    """Component updates for every params field named in `text`; unknown names are ignored (A1111 is tolerant).

    With `for_send`, seed and size follow the `send_seed` / `send_size` settings as A1111's send-to buttons do.
    """
    parsed = parsed_infotext(ctx, text)
    values, _settings = params_from_fields(parsed)
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
            updates[component] = gr.update(value=component_value(component, value))
    for name, component in fields.items():
        label = name.removeprefix(SCRIPT_FIELD_PREFIX)
        if name.startswith(SCRIPT_FIELD_PREFIX) and parsed.get(label) is not None:
            value = script_field_value(component, parsed[label])
            if value is not None:
                updates[component] = gr.update(value=value)
    script = fields.get("script_name")
    if isinstance(script, gr.Dropdown) and parsed.get("Script"):  # A1111 pastes "Script" into the dropdown
        titles = [c[1] if isinstance(c, tuple | list) else c for c in script.choices or []]
        if parsed["Script"] in titles:
            updates[script] = gr.update(value=parsed["Script"])
    if "override_settings" in fields:
        choices = override_choices(ctx, parsed)
        updates[fields["override_settings"]] = gr.update(choices=choices, value=choices, visible=bool(choices))
    return updates


def override_settings_from_choices(choices: list[str] | None) -> dict[str, Any]:
    """The `override_settings` dict from the "label: value" entries still selected in the override box, each
    value cast to its setting's type (A1111 `create_override_settings_dict`); a bad entry is a clear error."""
    out: dict[str, Any] = {}
    for item in choices or []:
        label, sep, value = str(item).partition(": ")
        key = setting_for_label(label.strip()) if sep else None
        if key is None:
            raise gr.Error(f"Override settings: {item!r} names no setting; remove it from the box")
        try:
            out[key] = value if key == "sd_model_checkpoint" else REGISTRY[key].cast(value)
        except SettingsError as exc:
            raise gr.Error(f"Override settings: {exc}") from None
    return out
