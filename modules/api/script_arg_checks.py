"""Script arguments sent through the API (`script_args`, `alwayson_scripts[...].args`) checked against the UI
component each one stands for, before the job is queued.

A1111 (`modules/api/api.py` `init_script_args`) passes the values to the script's `run()`/`process()` unchecked,
so `NaN` for a slider, a number for a text box or a list where a dropdown value belongs ends as a 500 from deep
inside the script. Here each value must fit its component (issue "safe to expose", class 8: a 4xx naming the field):

* no non-finite number anywhere in the value (`NaN`, `1e309`, also nested in lists and objects);
* sliders and number boxes: a number (or text that reads as a finite number);
* text boxes: text;
* check boxes: true/false (or 0/1);
* dropdowns and radios: a text or number value (an index must be in range), or a list of them for multi-selects.
  Text values are not matched against the choices: many scripts refresh their choices at run time (the X/Y/Z
  plot's value lists follow the axis type), and the script itself names an unknown one.
Components this module does not know (images, files, JSON, state) only get the first rule; so do extension
scripts whose `ui()` describes no components.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from modules.api.errors import ApiError

NUMBER_KINDS = frozenset({"slider", "number"})
TEXT_KINDS = frozenset({"textbox", "text", "textarea", "code"})
CHOICE_KINDS = frozenset({"dropdown", "radio", "multiselect", "checkboxgroup"})
BOOL_KINDS = frozenset({"checkbox"})


def component_kind(component: Any) -> str:
    """`ScriptArg.kind`, else the component class name in lower case (`Slider` → "slider")."""
    kind = getattr(component, "kind", None)
    return kind.lower() if isinstance(kind, str) else type(component).__name__.lower()


def non_finite_path(value: Any, path: str = "") -> str | None:
    """Where in `value` a NaN/±inf sits ("" for the value itself, "[2].x" nested), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = non_finite_path(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = non_finite_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _choice_values(choices: Sequence[Any]) -> set[str]:
    out: set[str] = set()
    for choice in choices:
        if isinstance(choice, list | tuple) and choice:  # Gradio (label, value) pairs
            out.update(str(part) for part in choice)
        else:
            out.add(str(choice))
    return out


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return False


def value_problem(component: Any, value: Any) -> str | None:
    """Why `value` cannot be the value of `component` (module docstring), or None when it fits."""
    where = non_finite_path(value)
    if where is not None:
        return f"{'value' + where if where else 'value'} is not a finite number"
    if value is None:
        return None
    kind = component_kind(component)
    if kind in NUMBER_KINDS and not _is_number(value):
        return f"expected a number, got {type(value).__name__}"
    if kind in TEXT_KINDS and not isinstance(value, str):
        return f"expected text, got {type(value).__name__}"
    if kind in BOOL_KINDS and not (isinstance(value, bool) or value in (0, 1)):
        return f"expected true or false, got {value!r}"[:200]
    if kind in CHOICE_KINDS:
        items = value if isinstance(value, list | tuple) else [value]
        choices = getattr(component, "choices", None) or []
        known = _choice_values(choices)
        for item in items:
            if isinstance(item, Mapping | list | tuple):
                return f"expected a choice, got {type(item).__name__}"
            if isinstance(item, int) and not isinstance(item, bool) and choices and not 0 <= item < len(choices) \
                    and str(item) not in known:
                return f"choice index {item} is out of range (0–{len(choices) - 1})"
    return None


def check_script_values(script: Any, values: Sequence[Any], field: str) -> None:
    """422 naming `field[i]`, the argument's label and the script when a value does not fit its component."""
    specs = list(script.arg_specs()) if hasattr(script, "arg_specs") else []
    title = script.title() if hasattr(script, "title") else "?"
    for index, value in enumerate(values):
        component = specs[index] if index < len(specs) else None
        problem = value_problem(component, value)
        if problem is not None:
            label = getattr(component, "label", None) or f"argument {index}"
            raise ApiError(422, f"{field}[{index}] ({label}) of script {title!r}: {problem}", field=field)
