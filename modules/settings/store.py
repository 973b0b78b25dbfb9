"""The settings store: load `config.json`, typed set, atomic save, freeze rules, immutable per-job snapshots.

A1111 behaviour kept (`modules/options.py` 1.10): `config.json` is a flat JSON object (indent 4, non-ASCII kept);
keys no section declares are kept and written back untouched (extensions that are not loaded keep their settings);
the load migrations `sd_vae_as_default` → `sd_vae_overrides_per_model_preferences` (negated), `quicksettings`
(comma string) → `quicksettings_list` and `ui_reorder` → `ui_reorder_list`; `--freeze-settings` refuses every change
and every save, `--freeze-settings-in-sections` / `--freeze-specific-settings` refuse changes to those sections/keys,
`--hide-ui-dir-config` makes the path/filename settings read-only, `restrict_api` options cannot be set through the
API. Differences, on purpose: bad values are refused on set with an error naming the key (A1111 accepts them); a
loaded value of the wrong type is reported and replaced by the default (A1111 prints a warning and keeps it); a
corrupt file is renamed `config.json.corrupt-<time>` and the last good `config.json.bak` is loaded if there is one,
else defaults (A1111 moves it to `tmp/config.json` and starts from defaults); `override_settings` never touch the
global store: they produce a `SettingsSnapshot` for one job.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from modules.settings.atomic import atomic_write_text, remove_stale_temp_files
from modules.settings.options import (
    OptionInfo,
    OptionRegistry,
    SettingsError,
    SettingValueError,
    UnknownSettingError,
    unknown_key_message,
)
from modules.settings.registry import REGISTRY


class SettingsFrozenError(SettingsError):
    """A change or save refused by a freeze flag, `--hide-ui-dir-config`, or an API restriction."""


@dataclass(frozen=True)
class FreezePolicy:
    """Which settings may not change: everything, whole sections, single keys, and the restricted path keys."""

    all: bool = False
    sections: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    restricted: frozenset[str] = frozenset()
    restricted_reason: str = "directory and filename settings are read-only (--hide-ui-dir-config)"
    dir_keys: frozenset[str] = frozenset()
    """Settings whose value is a folder the app writes into (outdir_*, temp_dir)."""
    code_dirs: tuple[Path, ...] = ()
    """Folders holding code the app runs (scripts/, extensions/, modules/ …): never accepted for `dir_keys`."""
    exact_dirs: tuple[Path, ...] = ()
    """Folders refused themselves but not their sub-folders (the install root: `outputs/` below it is fine)."""
    base_dir: Path | None = None
    """What a relative folder setting is relative to (the install root, as A1111)."""

    def value_reason(self, info: OptionInfo, value: Any) -> str | None:
        """Why `value` may not be stored for `info` (a folder setting pointing into code), or None. Writing images
        into a folder the app imports from would let a crafted file name become code (A1111 issue #2571)."""
        if info.key not in self.dir_keys or not isinstance(value, str) or not value.strip():
            return None
        if "\x00" in value:  # no file system takes it; os calls would raise instead of answering
            return f"{value!r} contains a NUL character, which no folder name can hold"
        try:
            path = Path(os.path.expanduser(value.strip()))
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            target = Path(os.path.abspath(path)).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name too long for the system …
            return f"{value!r} is not a usable folder ({exc})"
        for folder in self.code_dirs:
            root = folder.resolve()
            if target == root or root in target.parents:
                return f"{value!r} is inside {root}, a folder the app loads code from; outputs never go there"
        if any(target == folder.resolve() for folder in self.exact_dirs):
            return f"{value!r} is the installation folder itself; choose a sub-folder such as outputs"
        return None

    def reason(self, info: OptionInfo) -> str | None:
        """Why `info` cannot be changed, or None when it can."""
        if self.all:
            return "all settings are frozen (--freeze-settings)"
        if info.section.id is not None and info.section.id in self.sections:
            return f"section {info.section.id!r} is frozen (--freeze-settings-in-sections)"
        if info.key in self.keys:
            return "it is frozen (--freeze-specific-settings)"
        if info.key in self.restricted:
            return self.restricted_reason
        return None


class LoadResult(NamedTuple):
    """What `Settings.load` returns: the store and the warnings to show the user."""

    settings: Settings
    warnings: list[str]


def _freeze_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze_value(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze_value(v) for k, v in value.items()})
    return value


class SettingsSnapshot(Mapping[str, Any]):
    """Immutable settings for one job: global values with the job's `override_settings` applied.

    Read as a mapping (`snap["eta_ancestral"]`) or by attribute (`snap.eta_ancestral`); lists are tuples.
    """

    __slots__ = ("_overrides", "_values")

    def __init__(self, values: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", {k: _freeze_value(v) for k, v in values.items()})
        object.__setattr__(self, "_overrides", MappingProxyType({k: _freeze_value(v) for k, v in overrides.items()}))

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise UnknownSettingError(unknown_key_message(key, self._values)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except UnknownSettingError as exc:
            raise AttributeError(str(exc)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a settings snapshot is read-only (tried to set {name!r})")

    @property
    def overrides(self) -> Mapping[str, Any]:
        """The per-job overrides that were applied (for infotext's "Override settings")."""
        return self._overrides


class Settings:
    """The global settings of the running program (A1111's `shared.opts`), backed by `config.json`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, data: Mapping[str, Any] | None = None, *,
                 registry: OptionRegistry | None = None, freeze: FreezePolicy | None = None,
                 default_overrides: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.registry = REGISTRY if registry is None else registry
        self.freeze = FreezePolicy() if freeze is None else freeze
        self._lock = threading.RLock()
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._defaults = {key: self.registry[key].validate(value) for key, value in (default_overrides or {}).items()}
        self._data: dict[str, Any] = {}
        for key, value in (data or {}).items():
            info = self.registry.get(key)
            self._data[key] = info.validate(value) if info else copy.deepcopy(value)

    # --- loading -----------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, registry: OptionRegistry | None = None,
             freeze: FreezePolicy | None = None, default_overrides: Mapping[str, Any] | None = None) -> LoadResult:
        """Read `path`; a missing file means defaults. Returns the store and warnings (corrupt file, bad values)."""
        target = Path(path)
        warnings: list[str] = []
        remove_stale_temp_files(target)
        raw = _read_json_object(target, warnings)
        if raw is None:
            raw = {}
        settings = cls(target, registry=registry, freeze=freeze, default_overrides=default_overrides)
        _migrate(raw)
        for key, value in raw.items():
            info = settings.registry.get(key)
            if info is None:
                settings._data[key] = value
                continue
            try:
                settings._data[key] = info.validate(value)
            except SettingValueError as exc:
                warnings.append(f"{target}: {exc}; using the default {info.default!r}")
        return LoadResult(settings, warnings)

    # --- reading -----------------------------------------------------------------------------------------------

    def default(self, key: str) -> Any:
        """The default of `key` (a path- or flag-dependent override when one was given)."""
        info = self.registry[key]
        return copy.deepcopy(self._defaults.get(key, info.default))

    def get(self, key: str) -> Any:
        """Current value of `key`; an unknown key raises `UnknownSettingError` naming the closest known key."""
        with self._lock:
            if key in self._data:
                return copy.deepcopy(self._data[key])
        return self.default(key)

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._data or key in self.registry

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("path", "registry", "freeze"):
            raise AttributeError(name)
        try:
            return self.get(name)
        except UnknownSettingError as exc:
            raise AttributeError(str(exc)) from None

    def stored(self) -> dict[str, Any]:
        """Exactly what `save()` writes: values loaded or set, plus unknown keys kept as they were."""
        with self._lock:
            return copy.deepcopy(self._data)

    def values(self) -> dict[str, Any]:
        """Effective value of every declared key, plus unknown stored keys."""
        with self._lock:
            out = {info.key: self._defaults.get(info.key, info.default) for info in self.registry.values()}
            out.update(self._data)
            return copy.deepcopy(out)

    def frozen_reason(self, key: str) -> str | None:
        """Why `key` cannot be changed now, or None."""
        return self.freeze.reason(self.registry[key])

    # --- changing ----------------------------------------------------------------------------------------------

    def _checked(self, key: str, value: Any, is_api: bool) -> Any:
        info = self.registry[key]
        reason = self.freeze.reason(info)
        if reason:
            raise SettingsFrozenError(f"cannot change setting {key!r}: {reason}")
        if is_api and info.restrict_api:
            raise SettingsFrozenError(f"setting {key!r} cannot be changed through the API")
        refused = self.freeze.value_reason(info, value)
        if refused:
            raise SettingsFrozenError(f"cannot set {key!r}: {refused}")
        return info.validate(value)

    def set(self, key: str, value: Any, *, is_api: bool = False) -> bool:
        """Validate and store one value; returns True when it changed (then the key's `on_change` listeners run).
        Errors name the key."""
        checked = self._checked(key, value, is_api)
        with self._lock:
            if key in self._data and self._data[key] == checked:
                return False
            if key not in self._data and self.default(key) == checked:
                self._data[key] = checked
                return False
            self._data[key] = checked
            listeners = list(self._listeners.get(key, ()))
        for listener in listeners:
            listener()
        return True

    def on_change(self, key: str, listener: Callable[[], None]) -> None:
        """Call `listener()` after every change of `key` (A1111 `opts.onchange(key, func)`; extensions use it)."""
        with self._lock:
            self._listeners.setdefault(key, []).append(listener)

    def update(self, values: Mapping[str, Any], *, is_api: bool = False) -> list[str]:
        """Set several values all-or-nothing: every key is checked first; returns the keys that changed."""
        errors: list[SettingsError] = []
        checked: dict[str, Any] = {}
        for key, value in values.items():
            try:
                checked[key] = self._checked(key, value, is_api)
            except SettingsError as exc:
                errors.append(exc)
        if errors:
            raise _combined(errors, "")
        with self._lock:
            return [key for key, value in checked.items() if self.set(key, value, is_api=is_api)]

    def reset(self, key: str) -> None:
        """Forget the stored value of `key` so its default applies again."""
        self._checked(key, self.default(key), False)
        with self._lock:
            self._data.pop(key, None)

    def save(self) -> None:
        """Write `config.json` atomically (temp file, fsync, `os.replace`, previous file kept as `.bak`)."""
        if self.freeze.all:
            raise SettingsFrozenError("settings are frozen (--freeze-settings): config.json is not saved")
        if self.path is None:
            raise SettingsError("these settings have no file to save to")
        with self._lock:
            text = json.dumps(self._data, indent=4, ensure_ascii=False)
            atomic_write_text(self.path, text)

    # --- per-job view ------------------------------------------------------------------------------------------

    def snapshot(self, override_settings: Mapping[str, Any] | None = None, *, is_api: bool = False,
                 honour_freeze: bool = True) -> SettingsSnapshot:
        """Immutable view for one job with `override_settings` applied; the global values are never changed.

        Unknown keys and bad values raise errors naming the key; frozen keys (A1111 refuses to change them) and,
        with `is_api`, `restrict_api` keys are refused unless `honour_freeze=False`.
        """
        overrides: dict[str, Any] = {}
        problems: list[SettingsError] = []
        for key, value in (override_settings or {}).items():
            try:
                if honour_freeze:
                    overrides[key] = self._checked(key, value, is_api)
                else:
                    overrides[key] = self.registry[key].validate(value)
            except SettingsError as exc:
                problems.append(exc)
        if problems:
            raise _combined(problems, "override_settings: ")
        values = self.values()
        values.update(copy.deepcopy(overrides))
        return SettingsSnapshot(values, overrides)


def _combined(errors: list[SettingsError], prefix: str) -> SettingsError:
    """One error for several bad keys: the most serious kind (frozen > unknown > bad value), every message."""
    message = "; ".join(prefix + str(e) for e in errors)
    for kind in (SettingsFrozenError, UnknownSettingError, SettingValueError):
        if any(isinstance(e, kind) for e in errors):
            return kind(message)
    return SettingsError(message)


def _read_json_object(target: Path, warnings: list[str]) -> dict[str, Any] | None:
    """The JSON object in `target`; a corrupt file is renamed aside and `.bak` tried. None = use defaults."""
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        warnings.append(f"cannot read settings file {target} ({exc.strerror or exc}); using default settings")
        return None
    problem = _parse_problem(data)
    if problem is None:
        return json.loads(data.decode("utf-8-sig"))
    aside = _corrupt_name(target)
    try:
        os.replace(target, aside)
        moved = f"moved to {aside.name}"
    except OSError as exc:
        moved = f"could not be moved aside ({exc.strerror or exc})"
    backup = target.with_name(target.name + ".bak")
    if backup.is_file():
        try:
            bak_bytes = backup.read_bytes()
        except OSError:
            bak_bytes = b""
        if _parse_problem(bak_bytes) is None:
            warnings.append(f"settings file {target} is corrupt ({problem}); {moved}; "
                            f"restored the previous settings from {backup.name}")
            return json.loads(bak_bytes.decode("utf-8-sig"))
    warnings.append(f"settings file {target} is corrupt ({problem}); {moved}; using default settings")
    return None


def _parse_problem(data: bytes) -> str | None:
    try:
        loaded = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if not isinstance(loaded, dict):
        return f"expected a JSON object, found {type(loaded).__name__}"
    return None


def _corrupt_name(target: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = target.with_name(f"{target.name}.corrupt-{stamp}")
    n = 1
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.corrupt-{stamp}-{n}")
        n += 1
    return candidate


def _migrate(data: dict[str, Any]) -> None:
    """A1111's load-time migrations of renamed settings (1.6.0 VAE, 1.1.1 quicksettings, 1.4.0 ui_reorder)."""
    if data.get("sd_vae_as_default") is not None and data.get("sd_vae_overrides_per_model_preferences") is None:
        data["sd_vae_overrides_per_model_preferences"] = not data["sd_vae_as_default"]
    if isinstance(data.get("quicksettings"), str) and data.get("quicksettings_list") is None:
        data["quicksettings_list"] = [part.strip() for part in data["quicksettings"].split(",") if part.strip()]
    if isinstance(data.get("ui_reorder"), str) and data["ui_reorder"] and "ui_reorder_list" not in data:
        data["ui_reorder_list"] = [part.strip() for part in data["ui_reorder"].split(",") if part.strip()]
