"""Glue between flags and the settings store: the freeze policy and loading `config.json` for this run.

A1111: `--freeze-settings` freezes everything; `--freeze-settings-in-sections "saving-images,upscaling"` and
`--freeze-specific-settings "samples_save,samples_format"` take comma-separated section ids / keys;
`--hide-ui-dir-config` makes `restricted_opts` read-only; the settings file is `--ui-settings-file`.
"""

from __future__ import annotations

from typing import Any

from modules.cli.paths import Paths
from modules.settings import REGISTRY, RESTRICTED_KEYS, FreezePolicy, LoadResult, Settings


def _split(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


def freeze_policy(flags: Any) -> FreezePolicy:
    """The `FreezePolicy` the freeze flags and `--hide-ui-dir-config` describe."""
    return FreezePolicy(
        all=bool(flags.freeze_settings),
        sections=_split(flags.freeze_settings_in_sections),
        keys=_split(flags.freeze_specific_settings),
        restricted=RESTRICTED_KEYS if flags.hide_ui_dir_config else frozenset(),
    )


def freeze_warnings(flags: Any) -> list[str]:
    """Names in the freeze flags that match no section or setting (they would silently freeze nothing)."""
    section_ids = {s.id for s in REGISTRY.sections() if s.id}
    out = [f"--freeze-settings-in-sections: no settings section {name!r}"
           for name in sorted(_split(flags.freeze_settings_in_sections) - section_ids)]
    out += [f"--freeze-specific-settings: no setting {name!r}"
            for name in sorted(_split(flags.freeze_specific_settings)) if name not in REGISTRY]
    return out


def load_settings(flags: Any, paths: Paths) -> LoadResult:
    """Load `config.json` for this run, with the flags' freeze policy and the path-dependent defaults."""
    result = Settings.load(paths.settings_file, freeze=freeze_policy(flags),
                           default_overrides=paths.setting_default_overrides(flags))
    return LoadResult(result.settings, freeze_warnings(flags) + result.warnings)
