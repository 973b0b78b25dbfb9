"""Typed settings (A1111's `shared.opts`): option declarations by section, the `config.json` store, job snapshots.

Public surface: `REGISTRY` (every declared `OptionInfo`), `Settings` (load / get / set / update / save / snapshot),
`SettingsSnapshot` (immutable per-job view), `FreezePolicy`, the DSL helpers to declare options, and the errors.
"""

from modules.settings.atomic import atomic_write_bytes, atomic_write_text
from modules.settings.options import (
    CATEGORIES,
    OptionInfo,
    OptionRegistry,
    Section,
    SettingsError,
    SettingValueError,
    UnknownSettingError,
    check,
    color,
    dropdown,
    multi,
    number,
    radio,
    section,
    slider,
    text,
)
from modules.settings.registry import REGISTRY, RESTRICTED_KEYS
from modules.settings.store import FreezePolicy, LoadResult, Settings, SettingsFrozenError, SettingsSnapshot

__all__ = [
    "CATEGORIES", "REGISTRY", "RESTRICTED_KEYS", "FreezePolicy", "LoadResult", "OptionInfo", "OptionRegistry",
    "Section", "SettingValueError", "Settings", "SettingsError", "SettingsFrozenError", "SettingsSnapshot",
    "UnknownSettingError", "atomic_write_bytes", "atomic_write_text", "check", "color", "dropdown", "multi",
    "number", "radio", "section", "slider", "text",
]
