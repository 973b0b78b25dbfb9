"""Layout settings applied when the UI is built (A1111 marks them "requires Reload UI"): tab order and hidden tabs,
the order of the Generation panel's parts, hidden samplers, and settings shown in the txt2img/img2img tabs.

Sources: A1111 `modules/ui.py` (`ordered_ui_categories`, the tab loop over `ui_tab_order`/`hidden_tabs`),
`modules/shared_items.py` (`ui_reorder_categories`), `modules/sd_samplers.py` (`visible_sampler_names`) and the
built-in `extra-options-section` extension (`extra_options_*`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import gradio as gr

from modules.processing.context import AppContext

TAB_LABELS = ("txt2img", "img2img", "Extras", "PNG Info", "Checkpoint Merger", "Train", "Settings", "Extensions")
"""The built-in top-level tabs (A1111 `shared.tab_names`; extension tabs add theirs)."""

REORDER_CATEGORIES = ("prompt", "image", "inpaint", "sampler", "accordions", "checkboxes", "dimensions", "cfg",
                      "denoising", "seed", "batch", "override_settings", "scripts")
"""A1111 `ui_reorder_categories()`: the parts of the Generation panel, in their default order."""

OPEN_CHOICES = {"ui_tab_order", "hidden_tabs"}
"""Multi-selects that also accept names not in their list (tabs added by extensions)."""


def choices_for(ctx: AppContext, key: str) -> list[str] | None:
    """Run-time choices of the layout settings (None: not one of them)."""
    from modules.ui.common import sampler_names
    from modules.ui.theme import theme_choices

    if key in OPEN_CHOICES:
        return list(TAB_LABELS)
    if key == "ui_reorder_list":
        return list(REORDER_CATEGORIES)
    if key == "gradio_theme":
        return theme_choices()
    if key == "hide_samplers":
        return sampler_names()
    if key in ("extra_options_txt2img", "extra_options_img2img"):
        return list(ctx.settings.registry)
    if key == "sd_lora":  # "Add network to prompt"
        return ["None", *sorted(ctx.networks.loras.available)]
    return None


def ordered_categories(ctx: AppContext) -> list[str]:
    """A1111 `ordered_ui_categories`: category i of the default order sorts at 2·i, the j-th entry of
    `ui_reorder_list` at 2·j+1, so listed parts move up to just after the part at their list position."""
    user_order = {str(name).strip(): i * 2 + 1 for i, name in enumerate(ctx.settings.get("ui_reorder_list") or [])}
    ranked = sorted(enumerate(REORDER_CATEGORIES), key=lambda item: user_order.get(item[1], item[0] * 2))
    return [name for _i, name in ranked]


def build_in_order(ctx: AppContext, builders: Mapping[str, Callable[[], None]]) -> None:
    """Call the builder of each Generation-panel part in `ordered_categories` order (parts a tab lacks skipped)."""
    for category in ordered_categories(ctx):
        builder = builders.get(category)
        if builder is not None:
            builder()


def arrange_tabs(ctx: AppContext, tabs: gr.Tabs) -> None:
    """Top-level tabs in `ui_tab_order` order (listed labels first, the others keep their order, as A1111's stable
    sort with 9999 for unlisted tabs) and `hidden_tabs` hidden. A1111 does not render hidden tabs; here they are
    built but not shown, so send-to buttons aimed at them stay valid."""
    order = {str(label): i for i, label in enumerate(ctx.settings.get("ui_tab_order") or [])}
    hidden = {str(label) for label in ctx.settings.get("hidden_tabs") or []}
    tabs.children.sort(key=lambda tab: order.get(str(getattr(tab, "label", "")), 9999))
    for tab in tabs.children:
        if str(getattr(tab, "label", "")) in hidden:
            tab.visible = False
    shown = [tab for tab in tabs.children if getattr(tab, "visible", True) is not False]
    first = getattr(shown[0], "id", None) if shown else None
    if first is not None:
        tabs.selected = first  # the page opens on the first tab in this order


def visible_samplers(ctx: AppContext) -> list[str]:
    """Sampler names without `hide_samplers` (A1111 `visible_sampler_names`); the API still lists every sampler."""
    from modules.ui.common import sampler_names

    hidden = set(ctx.settings.get("hide_samplers") or [])
    return [name for name in sampler_names() if name not in hidden]


def build_extra_options(ctx: AppContext, tab: str) -> dict[str, gr.components.Component]:
    """The settings of `extra_options_<tab>` as controls in the tab, `extra_options_cols` per row, inside an
    "Options" accordion when `extra_options_accordion` (A1111 extra-options-section). Their values override the
    settings for the generation they are sent with (`apply_extra_options`); returns {setting key: control}."""
    from modules.ui.settings_tab import make_component, ui_value

    wanted = ctx.settings.get("extra_options_txt2img" if tab == "txt2img" else "extra_options_img2img")
    keys = [k for k in wanted or [] if k in ctx.settings.registry]
    if not keys:
        return {}
    cols = max(1, int(ctx.settings.get("extra_options_cols") or 1))
    out: dict[str, gr.components.Component] = {}
    container: Any = (gr.Accordion("Options", open=False, elem_id=f"extra_options_{tab}")
                      if ctx.settings.get("extra_options_accordion") else gr.Group(elem_id=f"extra_options_{tab}"))
    with container:
        for row in range(math.ceil(len(keys) / cols)):
            with gr.Row():
                for key in keys[row * cols:(row + 1) * cols]:
                    with gr.Column(min_width=160):
                        out[key] = make_component(ctx, ctx.settings.registry[key], ui_value(ctx, key),
                                                  elem_id=f"{tab}_setting_{key}")
    return out


def refresh_extra_options(ctx: AppContext, controls: Mapping[str, gr.components.Component]) -> Any:
    """Current values of the settings shown in a tab (A1111 refreshes them on each page load); one value alone
    when one setting is shown (Gradio takes a single output's value as it is)."""
    from modules.ui.settings_tab import ui_value

    values = [ui_value(ctx, key) for key in controls]
    return values[0] if len(values) == 1 else values


def apply_extra_options(ctx: AppContext, params: Any, controls: Mapping[str, gr.components.Component],
                        data: Mapping[Any, Any]) -> None:
    """Each shown setting's value overrides the setting for this generation unless the override settings already
    name it (A1111 `ExtraOptionsSection.before_process`)."""
    overrides = params.override_settings
    for key, control in controls.items():
        if key not in overrides and control in data:
            value = data[control]
            if ctx.settings.registry[key].value_type == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)
            overrides[key] = value


@contextmanager
def settings_column(ctx: AppContext, tab: str) -> Iterator[None]:
    """The column of generation settings; inside an "Open for Settings" accordion (closed) when
    `<tab>_settings_accordion` is on (A1111 UI alternatives)."""
    with ExitStack() as stack:
        key = "txt2img_settings_accordion" if tab == "txt2img" else "img2img_settings_accordion"
        if ctx.settings.get(key):
            stack.enter_context(gr.Accordion("Open for Settings", open=False, elem_id=f"{tab}_settings_accordion"))
        stack.enter_context(gr.Column(scale=1, elem_id=f"{tab}_settings"))
        yield


def scale_for_upscaler(ctx: AppContext, name: str | None) -> Any:
    """A1111 `set_scale_by_when_changing_upscaler`: choosing Extras "Upscaler 1" sets "Resize" to the scale its
    name states ("4x", "x2"); no update without the setting or without a scale in the name."""
    if not ctx.settings.get("set_scale_by_when_changing_upscaler"):
        return gr.update()
    found = re.search(r"(\d)[xX]|[xX](\d)", str(name or ""))
    return gr.update(value=int(found.group(1) or found.group(2))) if found else gr.update()
