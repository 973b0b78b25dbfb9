"""Typed option declarations (A1111's `OptionInfo`), a small declaration DSL, value validation and the registry.

A1111 facts (`modules/options.py`, `shared_options.py` 1.10): each option has a default, a label, a Gradio component
with its arguments, a section `(id, label)` inside a category (saving, sd, ui, system, postprocessing, training, or
"Uncategorized"), an optional infotext name, `restrict_api` (cannot be changed through the API) and hints "requires
Reload UI" / "requires restart". A1111 checks loaded values only by type, with int and float interchangeable
(`Options.typemap = {int: float}`) and `None` matching anything; here validation is stricter and happens on every
set: type, static choices, slider/number ranges, colour format.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Component = Literal["checkbox", "textbox", "number", "slider", "radio", "dropdown", "dropdown_editable",
                    "checkboxgroup", "dropdown_multi", "color"]
ValueType = Literal["bool", "int", "float", "str", "list"]

CATEGORIES: dict[str, str] = {"saving": "Saving images", "sd": "Stable Diffusion", "ui": "User Interface",
                              "system": "System", "postprocessing": "Postprocessing", "training": "Training"}
"""Settings categories in A1111's creation order (left column of the Settings tab)."""

_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


class SettingsError(Exception):
    """Base of every settings error; the message names the setting key."""


class UnknownSettingError(SettingsError):
    """A key that no section declares."""


class SettingValueError(SettingsError, ValueError):
    """A value of the wrong type or out of range for its key."""


@dataclass(frozen=True)
class Section:
    """A settings page: A1111's `(id, label)` section plus the category it is listed under."""

    id: str | None
    label: str
    category: str | None = None

    @property
    def category_label(self) -> str:
        """Category heading shown in the Settings tab ("Uncategorized" when none)."""
        return CATEGORIES.get(self.category or "", "Uncategorized")


@dataclass(frozen=True)
class OptionInfo:
    """One setting: key, A1111 default, label, section, component and its arguments, behaviour hints."""

    key: str
    default: Any
    label: str
    section: Section
    component: Component
    value_type: ValueType
    allow_none: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    info: str = ""
    infotext: str | None = None
    restrict_api: bool = False
    needs_reload_ui: bool = False
    needs_restart: bool = False

    def validate(self, value: Any) -> Any:
        """Return `value` coerced to this option's type, or raise `SettingValueError` naming the key."""
        if value is None:
            if self.allow_none:
                return None
            raise self._error(value, f"expected {self._expected()}, got null")
        value = self._coerce(value)
        if self.choices is not None:
            bad = [v for v in value if v not in self.choices] if self.value_type == "list" else (
                [] if value in self.choices else [value])
            if bad:
                raise self._error(value, f"{bad[0]!r} is not one of {list(self.choices)!r}")
        if self.value_type in ("int", "float"):
            if self.minimum is not None and value < self.minimum:
                raise self._error(value, f"must be at least {_num(self.minimum)}")
            if self.maximum is not None and value > self.maximum:
                raise self._error(value, f"must be at most {_num(self.maximum)}")
        if self.component == "color" and not _COLOR.match(value):
            raise self._error(value, "expected a colour like #ff8800")
        return value

    def cast(self, text: Any) -> Any:
        """Convert text (from infotext or a form) to this option's type, like A1111's `Options.cast_value`."""
        if text is None or not isinstance(text, str):
            return self.validate(text)
        raw = text.strip()
        if self.value_type == "bool":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise self._error(text, "expected True or False")
            return self.validate(lowered in ("true", "1"))
        if self.value_type in ("int", "float"):
            try:
                number = float(raw)
            except ValueError:
                raise self._error(text, f"expected {self._expected()}") from None
            return self.validate(number)
        if self.value_type == "list":
            return self.validate([part.strip() for part in raw.split(",") if part.strip()])
        return self.validate(text)

    def _coerce(self, value: Any) -> Any:
        kind = self.value_type
        if kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                return int(value)
        elif kind == "float":
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                return float(value)
        elif kind == "str":
            if isinstance(value, str):
                return value
        elif kind == "list" and isinstance(value, list | tuple):
            return list(value)
        raise self._error(value, f"expected {self._expected()}, got {type(value).__name__}")

    def _expected(self) -> str:
        names = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "text",
                 "list": "a list"}
        return names[self.value_type] + (" or null" if self.allow_none else "")

    def _error(self, value: Any, why: str) -> SettingValueError:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return SettingValueError(f"setting {self.key!r} ({self.label}): bad value {shown}: {why}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# --- declaration DSL: each helper returns an OptionInfo without key/section; `section()` binds them --------------

_UNBOUND = Section(None, "")


def _decl(default: Any, label: str, component: Component, value_type: ValueType, **kw: Any) -> OptionInfo:
    return OptionInfo("", default, label, _UNBOUND, component, value_type, **kw)


def _number_type(default: Any, step: float | None, precision: int | None = None) -> ValueType:
    if isinstance(default, float) or (step is not None and not float(step).is_integer()):
        return "float"
    if precision == 0 or isinstance(default, int):
        return "int"
    return "float"


def check(default: bool, label: str, **kw: Any) -> OptionInfo:
    """A checkbox (bool)."""
    return _decl(default, label, "checkbox", "bool", **kw)


def text(default: str | None, label: str, **kw: Any) -> OptionInfo:
    """A textbox (str); a `None` default allows null."""
    return _decl(default, label, "textbox", "str", allow_none=default is None, **kw)


def number(default: float, label: str, *, precision: int | None = None, **kw: Any) -> OptionInfo:
    """A number field; `precision=0` (or an int default) makes it a whole number."""
    return _decl(default, label, "number", _number_type(default, None, precision), **kw)


def slider(default: float, label: str, minimum: float, maximum: float, step: float, **kw: Any) -> OptionInfo:
    """A slider with A1111's minimum/maximum/step; whole-number steps with an int default make it an int."""
    return _decl(default, label, "slider", _number_type(default, step), minimum=minimum, maximum=maximum,
                 step=step, **kw)


def radio(default: str, label: str, choices: Sequence[str] | None, **kw: Any) -> OptionInfo:
    """Radio buttons; fixed choices are validated, `None` means filled at run time (e.g. face restorers)."""
    return _decl(default, label, "radio", "str", choices=tuple(choices) if choices is not None else None, **kw)


def dropdown(default: str | None, label: str, choices: Sequence[str] | None = None, *, editable: bool = False,
             **kw: Any) -> OptionInfo:
    """A dropdown; `choices=None` means they are filled at run time (checkpoints, upscalers) and not validated."""
    return _decl(default, label, "dropdown_editable" if editable else "dropdown", "str",
                 choices=tuple(choices) if choices is not None and not editable else None,
                 allow_none=default is None, **kw)


def multi(default: Sequence[str], label: str, choices: Sequence[str] | None = None, *, boxes: bool = False,
          **kw: Any) -> OptionInfo:
    """A multi-select (list of str): checkbox group when `boxes`, else a multi dropdown; run-time choices if None."""
    return _decl(list(default), label, "checkboxgroup" if boxes else "dropdown_multi", "list",
                 choices=tuple(choices) if choices is not None else None, **kw)


def color(default: str, label: str, **kw: Any) -> OptionInfo:
    """A colour picker (`#rrggbb`)."""
    return _decl(default, label, "color", "str", **kw)


def section(section_id: str | None, label: str, category: str | None,
            options: Mapping[str, OptionInfo]) -> list[OptionInfo]:
    """Bind declared options to their key and section (A1111's `options_section`)."""
    sec = Section(section_id, label, category)
    return [dataclasses.replace(info, key=key, section=sec) for key, info in options.items()]


class OptionRegistry:
    """All declared options by key, in declaration order. The one allowed module-level mutable global."""

    def __init__(self, options: Iterable[OptionInfo] = ()) -> None:
        self._options: dict[str, OptionInfo] = {}
        self.register(options)

    def register(self, options: Iterable[OptionInfo], *, replace: bool = False) -> None:
        """Add options (e.g. from an extension); a key declared twice is an error unless `replace`."""
        for info in options:
            if not info.key:
                raise SettingsError(f"option {info.label!r} has no key; declare it through section()")
            if info.key in self._options and not replace:
                raise SettingsError(f"setting {info.key!r} is declared twice "
                                    f"(sections {self._options[info.key].section.label!r} and {info.section.label!r})")
            info.validate(info.default)
            self._options[info.key] = info

    def __getitem__(self, key: str) -> OptionInfo:
        try:
            return self._options[key]
        except KeyError:
            raise UnknownSettingError(unknown_key_message(key, self._options, self._infotext_names())) from None

    def __contains__(self, key: object) -> bool:
        return key in self._options

    def __iter__(self) -> Iterator[str]:
        return iter(self._options)

    def __len__(self) -> int:
        return len(self._options)

    def get(self, key: str) -> OptionInfo | None:
        """The option for `key`, or None."""
        return self._options.get(key)

    def values(self) -> list[OptionInfo]:
        """Every option in declaration order."""
        return list(self._options.values())

    def sections(self) -> list[Section]:
        """Every section in first-declaration order."""
        return list(dict.fromkeys(info.section for info in self._options.values()))

    def in_section(self, section_id: str) -> list[OptionInfo]:
        """The options of every section with this id (A1111 reuses the id "ui" for two pages)."""
        return [info for info in self._options.values() if info.section.id == section_id]

    def _infotext_names(self) -> dict[str, str]:
        return {info.infotext.lower(): info.key for info in self._options.values() if info.infotext}

    def defaults(self) -> dict[str, Any]:
        """key → default for every option."""
        return {key: info.default for key, info in self._options.items()}


def unknown_key_message(key: str, known: Iterable[str], infotext_names: Mapping[str, str] | None = None) -> str:
    """"unknown setting 'x'; did you mean 'y'?" with the closest declared key.

    An infotext name typed as a key (`clip_skip` for "Clip skip") points to the key it stands for
    (`CLIP_stop_at_last_layers`).
    """
    by_infotext = (infotext_names or {}).get(key.replace("_", " ").strip().lower())
    close = [by_infotext] if by_infotext else difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown setting {key!r}{hint}"
