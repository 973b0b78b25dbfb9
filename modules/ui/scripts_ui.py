"""Script UIs (reference §9): the "Script" dropdown with each selectable script's `ui()` controls (only the selected
script's group is visible) and every always-on script as an accordion.

Values reach the params BY NAME: `script_name` = the dropdown, `script_args` = {argument name: value} of the
selected script, `alwayson_scripts` = {title: {"args": {name: value}}}; `ScriptRunner.bind_args` binds them
(A1111 passes one flat positional list sliced by `args_from`/`args_to` instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from modules.extensions.script import ScriptArg, arg_default
from modules.processing.context import AppContext


@dataclass
class ScriptControls:
    """The Script dropdown and, per script title, its (argument name, component) pairs."""

    dropdown: gr.Dropdown
    selectable: dict[str, list[tuple[str, gr.components.Component]]] = field(default_factory=dict)
    alwayson: dict[str, list[tuple[str, gr.components.Component]]] = field(default_factory=dict)
    groups: list[tuple[str, gr.Group]] = field(default_factory=list)

    def show_selected(self, title: str) -> list[Any]:
        """Visibility updates of the selectable scripts' groups: only `title`'s is shown (A1111 `select_script`)."""
        return [gr.update(visible=t == title) for t, _g in self.groups]

    def components(self) -> list[gr.components.Component]:
        """Every script argument component (inputs of the generate event)."""
        return [c for group in (*self.selectable.values(), *self.alwayson.values()) for _n, c in group]


def component_for(spec: Any, elem_id: str) -> gr.components.Component | None:
    """A Gradio component for one `ScriptArg` (kinds text, textarea, number, slider, checkbox, dropdown, radio,
    multiselect, image, html); `ui()` items that are already Gradio components are used as they are."""
    if not isinstance(spec, ScriptArg):
        return spec if isinstance(spec, gr.components.Component) else None
    common: dict[str, Any] = {"label": spec.label, "elem_id": elem_id}
    if spec.info:
        common["info"] = spec.info
    kind, default, choices = spec.kind, spec.default, list(spec.choices or [])
    if kind == "checkbox":
        return gr.Checkbox(value=bool(default), **common)
    if kind == "slider":
        return gr.Slider(spec.minimum if spec.minimum is not None else 0,
                         spec.maximum if spec.maximum is not None else 100, value=default, step=spec.step or 1,
                         **common)
    if kind == "number":
        return gr.Number(value=default, minimum=spec.minimum, maximum=spec.maximum, step=spec.step or 1, **common)
    if kind == "dropdown":
        return gr.Dropdown(choices, value=default, **common)
    if kind == "radio":
        return gr.Radio(choices, value=default, **common)
    if kind == "multiselect":
        return gr.Dropdown(choices, value=list(default or []), multiselect=True, **common)
    if kind == "image":
        return gr.Image(type="pil", **common)
    if kind == "html":
        return gr.HTML(str(default or ""), elem_id=elem_id)
    lines = 3 if kind == "textarea" else 1
    return gr.Textbox(value="" if default is None else str(default), lines=lines, **common)


def _slug(title: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in title.lower()).strip("_")


def _controls(tab: str, script: Any, specs: list[Any]) -> list[tuple[str, gr.components.Component]]:
    out = []
    for name, spec in zip(script.arg_names(), specs, strict=True):
        component = component_for(spec, f"script_{tab}_{_slug(script.title())}_{_slug(name)}")
        if component is not None and not isinstance(component, gr.HTML):
            out.append((name, component))
    return out


def script_ui(runner: Any, tab: str, script: Any, *, accordion: bool) -> list[tuple[str, gr.components.Component]]:
    """Call the script's `ui()` here, inside the page being built (A1111 `ScriptRunner.create_script_ui`): the
    Gradio components and layout blocks it creates (`gr.Row`, `gr.Accordion`, `InputAccordion`, …) land where
    they are created. `ScriptArg` descriptions are then rendered, in an accordion titled after the script for
    always-on scripts. A `ui()` that raises is reported in `runner.hook_errors` and leaves the script without
    controls (A1111 `wrap_call`)."""
    from modules.extensions.runner import ScriptLoadError

    specs = script.arg_specs(refresh=True)
    if script.__dict__.get("ui_error"):
        runner.hook_errors.append(ScriptLoadError(script.filename or script.title(), f"ui(): {script.ui_error}"))
    if accordion and any(isinstance(spec, ScriptArg) for spec in specs):
        with gr.Accordion(script.title(), open=False, elem_id=f"{tab}_script_{_slug(script.title())}"):
            return _controls(tab, script, specs)
    return _controls(tab, script, specs)


def build_script_controls(ctx: AppContext, tab: str) -> ScriptControls:
    """Lay out the Script dropdown, the selectable scripts' groups and the always-on scripts for `tab`; every
    script's `ui()` runs here (A1111 `setup_ui_for_section`: one `gr.Group` per script)."""
    runner = ctx.scripts.for_kind(tab)
    selectable = list(runner.selectable_scripts)
    alwayson = list(runner.alwayson_scripts)
    # choices given to the constructor: Gradio rebuilds a component from its constructor arguments once an event
    # updated it, so choices assigned later would be lost (a pasted "Script" would then be refused)
    choices = [("None", "None"), *[(s.title(), s.title()) for s in selectable]]
    controls = ScriptControls(gr.Dropdown(choices, value="None", label="Script", elem_id=f"{tab}_script_dropdown"))
    for script in alwayson:
        with gr.Group(elem_id=f"{tab}_script_group_{_slug(script.title())}") as group:
            controls.alwayson[script.title()] = script_ui(runner, tab, script, accordion=True)
        script.group = group
    groups: list[tuple[str, gr.Group]] = []
    for script in selectable:
        title = script.title()
        with gr.Group(visible=False, elem_id=f"{tab}_script_{_slug(title)}") as group:
            controls.selectable[title] = script_ui(runner, tab, script, accordion=False)
        script.group = group
        groups.append((title, group))

    controls.groups = groups
    if groups:
        controls.dropdown.change(controls.show_selected, controls.dropdown, [g for _t, g in groups], queue=False,
                                 show_progress="hidden")
    return controls


def script_values(controls: ScriptControls, script_name: str | None,
                  data: dict[gr.components.Component, Any]) -> dict[str, Any]:
    """`script_name`, `script_args` and `alwayson_scripts` by name from the generate event's input dict."""
    out: dict[str, Any] = {"alwayson_scripts": {
        title: {"args": {name: _value(c, data) for name, c in pairs}} for title, pairs in controls.alwayson.items()}}
    if script_name and script_name != "None" and script_name in controls.selectable:
        out["script_name"] = script_name
        out["script_args"] = {name: _value(c, data) for name, c in controls.selectable[script_name]}
    return out


def _value(component: gr.components.Component, data: dict[gr.components.Component, Any]) -> Any:
    value = data.get(component, arg_default(component))
    if isinstance(value, float) and value.is_integer() and isinstance(component, gr.Slider) \
            and float(getattr(component, "step", 1) or 1).is_integer():
        return int(value)
    return value
