"""`shared.opts` and `shared.OptionInfo` for extensions: a view over the running app's `Settings`.

A1111 facts followed (`modules/options.py`, `modules/shared_options.py` 1.10):

* `shared.OptionInfo(default, label, component=None, component_args=None, onchange=None, section=None,
  refresh=None, comment_before="", comment_after="", infotext=None, restrict_api=False, category_id=None)` with the
  chainable `.info(text)`, `.html(text)`, `.link(label, url)`, `.js(label, func)`, `.needs_restart()`,
  `.needs_reload_ui()`; `section` is `(id, label)` or `(id, label, category_id)`;
* `shared.opts.add_option(key, info)` (from an `on_ui_settings` callback) declares the option;
  `shared.options_section(section, {key: info})` sets the section of several;
* `opts.<key>` reads the current value (an unknown key raises AttributeError, so `getattr(opts, key, default)`
  works); `opts.<key> = value` / `opts.set(key, value)` change it in memory (A1111 saves only from the Settings tab
  or `opts.save()`); `opts.onchange(key, func, call=True)` calls `func()` after each change; `opts.data` is the
  dict of current values; `opts.data_labels` the declared options.

Types are checked the A1111 way for extension options (by Python type, int and float interchangeable, `None`
accepted); choices are offered in the Settings tab but not enforced.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from modules.compat.host import HOST
from modules.settings.options import Component, OptionInfo, Section, SettingValueError, ValueType
from modules.settings.store import Settings

log = logging.getLogger(__name__)

_COMPONENTS: dict[str, tuple[Component, ValueType | None]] = {
    "checkbox": ("checkbox", "bool"), "slider": ("slider", None), "number": ("number", None),
    "radio": ("radio", "str"), "dropdown": ("dropdown", "str"), "checkboxgroup": ("checkboxgroup", "list"),
    "colorpicker": ("color", "str"), "textbox": ("textbox", "str"), "code": ("textbox", "str"),
    "html": ("textbox", "str"),
}


class OptionInfo1111:
    """A1111 `shared.OptionInfo`: what an extension declares; turned into a typed option by `add_option`."""

    def __init__(self, default: Any = None, label: str = "", component: Any = None,
                 component_args: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
                 onchange: Callable[[], None] | None = None, section: tuple[Any, ...] | None = None,
                 refresh: Callable[[], None] | None = None, comment_before: str = "", comment_after: str = "",
                 infotext: str | None = None, restrict_api: bool = False, category_id: str | None = None) -> None:
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.do_not_save = False
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        self.reload_ui = False
        self.restart = False

    def link(self, label: str, url: str) -> OptionInfo1111:
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label: str, js_func: str) -> OptionInfo1111:
        self.comment_before += f"[<a onclick='{js_func}(); return false'>{label}</a>]"
        return self

    def info(self, info: str) -> OptionInfo1111:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> OptionInfo1111:
        self.comment_after += html
        return self

    def needs_restart(self) -> OptionInfo1111:
        self.restart = True
        return self

    def needs_reload_ui(self) -> OptionInfo1111:
        self.reload_ui = True
        return self


@dataclasses.dataclass(frozen=True)
class ExtensionOption(OptionInfo):
    """A typed option declared by an extension, validated the A1111 way (see the module docstring)."""

    def validate(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return super().validate(value)
        except SettingValueError:
            if self.value_type in ("int", "float") and isinstance(value, int | float) and not isinstance(value, bool):
                return value
            if self.value_type == "str" and not isinstance(self.default, str) and \
                    (self.default is None or isinstance(value, type(self.default))):
                return value
            if self.value_type == "list" and isinstance(value, list | tuple):
                return list(value)
            raise


def _component_args(info: OptionInfo1111) -> dict[str, Any]:
    args = info.component_args() if callable(info.component_args) else info.component_args
    return dict(args or {})


def typed_option(key: str, info: OptionInfo1111) -> ExtensionOption:
    """The app's option for an A1111 `OptionInfo` (component and type from the Gradio class or the default)."""
    args = _component_args(info)
    name = getattr(info.component, "__name__", "").lower()
    component, value_type = _COMPONENTS.get(name, ("textbox", None))
    if name == "dropdown" and args.get("multiselect"):
        component, value_type = "dropdown_multi", "list"
    default = info.default
    if name == "" and isinstance(default, bool):
        component = "checkbox"
    elif name == "" and isinstance(default, int | float):
        component = "number"
    elif name == "" and isinstance(default, list | tuple):
        component = "dropdown_multi"
    if value_type is None or (component == "textbox" and not isinstance(default, str | type(None))):
        value_type = ("bool" if isinstance(default, bool) else "int" if isinstance(default, int) else
                      "float" if isinstance(default, float) else "list" if isinstance(default, list | tuple) else
                      "str")
    choices = args.get("choices")
    section = info.section or (None, "Other")
    category = section[2] if len(section) > 2 else info.category_id
    help_text = " ".join(part for part in (info.comment_before, info.comment_after) if part)
    return ExtensionOption(
        key=key, default=list(default) if isinstance(default, tuple) else default, label=info.label,
        section=Section(section[0], str(section[1]), category), component=component, value_type=value_type,
        allow_none=True, choices=tuple(choices) if isinstance(choices, list | tuple) else None,
        minimum=args.get("minimum"), maximum=args.get("maximum"), step=args.get("step"), info=help_text,
        infotext=info.infotext, restrict_api=info.restrict_api, needs_reload_ui=info.reload_ui,
        needs_restart=info.restart)


def options_section(section: tuple[Any, ...], options: Mapping[str, OptionInfo1111]) -> dict[str, OptionInfo1111]:
    """A1111 `shared.options_section`: set `section` on every option of the dict and return it."""
    for info in options.values():
        info.section = section
    return dict(options)


def _settings() -> Settings:
    return HOST.current().settings


class Options:
    """`shared.opts`: reads and writes go to the running app's settings (nothing is copied)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "sd_checkpoint_hash":  # A1111 stores the loaded checkpoint's sha256 there; read it live instead
            model = HOST.current().models.current
            return (model.checkpoint.sha256 or "") if model is not None else ""
        settings = _settings()
        if name in settings:
            return settings.get(name)
        raise AttributeError(f"shared.opts has no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        self.set(name, value)

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Change a setting in memory (A1111 `Options.set`); returns True when it changed."""
        del run_callbacks  # listeners always run (A1111 skips them only while loading config.json)
        return _settings().set(key, value, is_api=is_api)

    def get_default(self, key: str) -> Any:
        return _settings().default(key)

    def add_option(self, key: str, info: OptionInfo1111) -> None:
        """Declare an extension's option (A1111 `Options.add_option`, called from `on_ui_settings`)."""
        settings = _settings()
        settings.registry.register([typed_option(key, info)], replace=True)
        if info.onchange is not None:
            self.onchange(key, info.onchange, call=False)

    def onchange(self, key: str, func: Callable[[], None], call: bool = True) -> None:
        """Call `func()` after every change of `key` (and now, with `call`)."""
        def guarded() -> None:
            try:
                func()
            except Exception:
                log.exception("Error in the onchange callback of setting %s", key)

        _settings().on_change(key, guarded)
        if call:
            guarded()

    def save(self, filename: str | None = None) -> None:
        """Write config.json (A1111 `Options.save`; `filename` is ignored: the app has one settings file)."""
        del filename
        _settings().save()

    def reorder(self) -> None:
        """A1111 sorts the options by section here; the Settings tab groups them itself."""

    def dumpjson(self) -> str:
        return json.dumps(_settings().values(), default=str)

    def same_type(self, x: Any, y: Any) -> bool:
        return x is None or y is None or type(x) is type(y) or {type(x), type(y)} <= {int, float}

    @property
    def data(self) -> dict[str, Any]:
        """The current value of every setting (a fresh dict on each read)."""
        return _settings().values()

    @property
    def data_labels(self) -> dict[str, OptionInfo]:
        """Every declared option by key."""
        registry = _settings().registry
        return {key: registry[key] for key in registry}

    def __contains__(self, key: str) -> bool:
        return key in _settings()


opts = Options()
"""A1111 `shared.opts`."""
