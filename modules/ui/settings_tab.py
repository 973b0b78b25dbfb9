"""Settings tab (reference §3.8): every option of `modules.settings.REGISTRY`, grouped by category and section,
a search box, "Apply settings" (validate, `settings.update`, `settings.save()` to config.json) and "Reload UI".

A1111 `modules/ui_settings.py`. Dynamic choices (checkpoints, VAEs, localizations, styles) are filled here because
the registry declares them without choices. Component values are refreshed on every page load so a reload shows
what config.json holds now.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.processing.main_ui_postprocessing import operation_names
from modules.settings import CATEGORIES, OptionInfo, SettingsError
from modules.ui.common import checkpoint_choices, error_html, vae_choices
from modules.ui.layout_options import OPEN_CHOICES, choices_for
from modules.ui.localization import list_localizations
from modules.ui.settings_pages import (
    build_actions_page,
    build_defaults_page,
    build_licenses_page,
    build_sysinfo_page,
)


def dynamic_choices(ctx: AppContext, info: OptionInfo) -> list[Any] | None:
    """Choices for options whose list depends on files found at run time."""
    if info.key == "sd_model_checkpoint":
        return checkpoint_choices(ctx)
    if info.key == "sd_vae":
        return vae_choices(ctx)
    if info.key == "localization":
        return list_localizations(ctx)
    if info.key == "quicksettings_list":
        return list(ctx.settings.registry)
    if info.key == "interrogate_clip_skip_categories":  # A1111 `interrogate.category_types`
        return ctx.interrogators.category_names()
    if info.key == "upscaler_for_img2img":  # A1111: every name of `shared.sd_upscalers`
        return list(ctx.upscalers)
    if info.key == "face_restoration_model":  # A1111: the names of `shared.face_restorers`
        return list(ctx.face_restorers)
    if info.key in ("postprocessing_enable_in_main_ui", "postprocessing_disable_in_extras",
                    "postprocessing_operation_order"):  # A1111: `shared_items.postprocessing_scripts()` names
        return operation_names(ctx)
    layout = choices_for(ctx, info.key)  # tabs, panel parts, themes, samplers, settings for the tabs
    if layout is not None:
        return layout
    return list(info.choices) if info.choices is not None else None


def make_component(ctx: AppContext, info: OptionInfo, value: Any, elem_id: str | None = None) -> gr.components.Component:
    """The Gradio component for one option, by its declared component kind."""
    label = info.label
    eid = elem_id or f"setting_{info.key}"
    kind = info.component
    choices = dynamic_choices(ctx, info)
    common: dict[str, Any] = {"label": label, "elem_id": eid, "elem_classes": ["setting-item"], "interactive": True}
    if info.info:
        common["info"] = info.info
    if kind == "checkbox":
        return gr.Checkbox(value=bool(value), **common)
    if kind == "slider":
        return gr.Slider(info.minimum or 0, info.maximum or 1, value=value, step=info.step or 1, **common)
    if kind == "number":
        return gr.Number(value=value, precision=0 if info.value_type == "int" else None, **common)
    if kind == "radio":
        opts = list(choices or [])
        opts += [value] if value is not None and value not in opts else []
        return gr.Radio(opts, value=value, **common)
    if kind in ("dropdown", "dropdown_editable"):
        opts = list(choices or [])
        if value is not None and value not in opts:
            opts.append(value)
        return gr.Dropdown(opts, value=value, allow_custom_value=kind == "dropdown_editable" or not choices, **common)
    if kind == "checkboxgroup":
        opts = list(choices or [])
        opts += [v for v in value or [] if v not in opts]
        return gr.CheckboxGroup(opts, value=list(value or []), **common)
    if kind == "dropdown_multi":
        opts = list(choices or [])
        opts += [v for v in value or [] if v not in opts]
        return gr.Dropdown(opts, value=list(value or []), multiselect=True,
                           allow_custom_value=not choices or info.key in OPEN_CHOICES, **common)
    if kind == "color":
        return gr.ColorPicker(value=value, **common)
    return gr.Textbox(value="" if value is None else str(value), **common)


def ui_value(ctx: AppContext, key: str) -> Any:
    """The current value in the form the component shows (None text → "")."""
    value = ctx.settings.get(key)
    return "" if value is None and ctx.settings.registry[key].component == "textbox" else value


def apply_values(ctx: AppContext, keys: list[str], values: list[Any]) -> str:
    """Validate and store the changed values, then save config.json; returns the result line (A1111 wording)."""
    changed: dict[str, Any] = {}
    for key, value in zip(keys, values, strict=True):
        info = ctx.settings.registry[key]
        if info.allow_none and value == "":
            value = None
        if info.value_type == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if value != ctx.settings.get(key) and ctx.settings.frozen_reason(key) is None:
            changed[key] = value
    try:
        names = ctx.settings.update(changed)
        ctx.settings.save()
    except SettingsError as exc:
        return error_html(str(exc))
    reload = [k for k in names if ctx.settings.registry[k].needs_reload_ui]
    text = f"{len(names)} settings changed" + (f": {', '.join(names)}." if names else ".")
    if reload:
        text += " Reload the UI for these to take effect: " + ", ".join(reload) + "."
    return f"<div class='settings-result'>{text}</div>"


RELOAD_JS = """() => {
  const el = document.querySelector('#settings_result [data-reload]');
  const how = el ? el.dataset.reload : 'page';
  if (how === 'page') { setTimeout(() => location.reload(), 100); return; }
  if (how === 'page-late') { setTimeout(() => location.reload(), 4000); return; }
  let down = false;
  const poll = () => fetch('./', {cache: 'no-store'})
    .then((r) => { if (down && r.ok) location.reload(); else setTimeout(poll, 1000); })
    .catch(() => { down = true; setTimeout(poll, 1000); });
  setTimeout(poll, 1000);
}"""
"""After "Reload UI": reload the page at once, a moment later (after a notice), or once the restarted server is
back (the page polls until a request fails, then until one succeeds)."""


def reload_ui_result(ctx: AppContext) -> str:
    """"Reload UI" (A1111 `settings_restart_gradio`). A1111 rebuilds its Gradio app in-process and, with
    `enable_reloading_ui_scripts`, first re-imports its `modules.ui*` Python modules so edits to UI code show
    without a restart. This app builds its page once per process, so with the setting on "Reload UI" restarts the
    server through the launcher (webui.sh / launch.py restart while `tmp/restart` exists): the UI modules and the
    scripts are imported again and the page reloads when the server is back. With the setting off, the browser
    reloads the page (settings read per page load apply). Returns the result line; its `data-reload` tells
    `RELOAD_JS` how to reload."""
    if not ctx.settings.get("enable_reloading_ui_scripts"):
        return "<div class='settings-result' data-reload='page'></div>"
    if ctx.request_restart is None:
        return ("<div class='settings-result' data-reload='page-late'>Reloading the UI scripts needs a restart, and "
                "this server was not started by webui.sh / launch.py, which restart it: restart it by hand. "
                "Reloading the page only.</div>")
    ctx.request_restart()
    return ("<div class='settings-result' data-reload='restart'>Reloading the UI modules and scripts: the server "
            "restarts; this page reloads when it is back.</div>")


def build_settings(ctx: AppContext, tab: gr.Tab) -> None:
    """Lay out the Settings tab lazily: the ~320 option components are rendered (`gr.render`) the first time the
    tab is opened, so building the UI at start-up does not pay for them (A1111 builds them eagerly).

    Values are read when the tab renders, so they show what config.json holds at that moment. "Show all pages"
    (A1111: the last entry of the page list) renders every category on one page, sections open, instead of one
    tab per category; the special pages (Defaults, Actions, Sysinfo, Licenses) follow as tabs.
    """
    with gr.Row(elem_id="settings_top"):
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit")
        reload_ui = gr.Button("Reload UI", elem_id="settings_restart_gradio")
    result = gr.HTML(elem_id="settings_result")
    with gr.Row():
        search = gr.Textbox(label="Search", placeholder="Search...", elem_id="settings_search", show_label=False,
                            scale=4)
        show_all = gr.Checkbox(False, label="Show all pages", elem_id="settings_show_all_pages", scale=1)
    opened = gr.Number(value=0, visible=False, elem_id="settings_opened")
    tab.select(lambda n: 1 if not n else gr.update(), opened, opened, queue=False, show_progress="hidden")
    reload_ui.click(lambda: reload_ui_result(ctx), None, result, queue=False).then(None, None, None, js=RELOAD_JS)

    @gr.render(inputs=[opened, show_all], triggers=[opened.change, show_all.change])
    def render(flag: float | None, everything: bool) -> None:
        if not flag:
            gr.HTML("<p>Loading settings...</p>", elem_id="settings_loading")
            return
        keys, components, accordions = _layout(ctx, bool(everything))
        apply.click(lambda *vals: apply_values(ctx, keys, list(vals)), components, result)
        search.change(lambda text: _search(ctx, keys, accordions, text, bool(everything)), search,
                      [*components, *[a for a, _ in accordions]], queue=False, trigger_mode="always_last",
                      show_progress="hidden")


def _layout(ctx: AppContext, show_all: bool = False
            ) -> tuple[list[str], list[gr.components.Component], list[tuple[gr.Accordion, list[str]]]]:
    """Category tabs with one accordion per section (with `show_all`, every category on one page with its
    sections open), then the special pages; returns keys, components and (accordion, keys) pairs."""
    registry = ctx.settings.registry
    by_category: dict[str, list[Any]] = defaultdict(list)
    for sec in registry.sections():
        if sec.id is None:  # hidden options (A1111 section None) are not shown
            continue
        by_category[sec.category_label].append(sec)
    keys: list[str] = []
    components: list[gr.components.Component] = []
    accordions: list[tuple[gr.Accordion, list[str]]] = []
    ordered = [c for c in [*CATEGORIES.values(), "Uncategorized"] if c in by_category]

    def category_page(category: str) -> None:
        for sec in by_category[category]:
            with gr.Accordion(sec.label, open=show_all, elem_id=f"settings_{sec.id}") as acc:
                section_keys = []
                for info in (i for i in registry.in_section(sec.id) if i.section == sec):  # id "ui" x2
                    components.append(make_component(ctx, info, ui_value(ctx, info.key)))
                    keys.append(info.key)
                    section_keys.append(info.key)
            accordions.append((acc, section_keys))

    if show_all:
        with gr.Column(elem_id="settings_all_pages"):
            for category in ordered:
                gr.HTML(f"<h2>{category}</h2>", elem_classes=["settings-category-title"])
                category_page(category)
    with gr.Tabs(elem_id="settings"):
        for category in [] if show_all else ordered:
            with gr.Tab(category, elem_id=f"settings_category_{category.lower().replace(' ', '_')}"):
                category_page(category)
        with gr.Tab("Defaults", elem_id="settings_tab_defaults"):
            build_defaults_page(ctx, keys, components)
        with gr.Tab("Actions", elem_id="settings_tab_actions"):
            build_actions_page(ctx)
        with gr.Tab("Sysinfo", elem_id="settings_tab_sysinfo"):
            build_sysinfo_page(ctx)
        with gr.Tab("Licenses", elem_id="settings_tab_licenses"):
            build_licenses_page(ctx)
    return keys, components, accordions


def _search(ctx: AppContext, keys: list[str], accordions: list[tuple[gr.Accordion, list[str]]], text: str,
            show_all: bool = False) -> list[Any]:
    """Show only settings whose label or key contains the text; open sections that have matches (with "Show all
    pages" every shown section stays open)."""
    registry = ctx.settings.registry
    needle = (text or "").strip().lower()
    visible = {k: not needle or needle in k.lower() or needle in registry[k].label.lower() for k in keys}
    updates: list[Any] = [gr.update(visible=visible[k]) for k in keys]
    updates += [gr.update(open=(show_all or bool(needle)) and any(visible[k] for k in ks),
                          visible=any(visible[k] for k in ks))
                for _acc, ks in accordions]
    return updates
