"""Glue between flags and the settings store: the freeze policy and loading `config.json` for this run.

A1111: `--freeze-settings` freezes everything; `--freeze-settings-in-sections "saving-images,upscaling"` and
`--freeze-specific-settings "samples_save,samples_format"` take comma-separated section ids / keys;
`--hide-ui-dir-config` makes `restricted_opts` read-only; the settings file is `--ui-settings-file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modules.cli.flag_warnings import is_exposed
from modules.cli.paths import Paths
from modules.settings import REGISTRY, RESTRICTED_KEYS, FreezePolicy, LoadResult, Settings


def _split(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


DIR_KEYS = frozenset(key for key in RESTRICTED_KEYS if key.startswith("outdir_") or key == "temp_dir")
CODE_FOLDERS = ("scripts", "extensions", "extensions-builtin", "modules", "javascript", "localizations", "configs",
                "html", "venv", ".git")


def freeze_policy(flags: Any, paths: Paths | None = None) -> FreezePolicy:
    """The `FreezePolicy` of the freeze flags and `--hide-ui-dir-config`, plus two rules of our own
    (docs/security.md): folder settings never point into a code folder; and while the server is reachable from
    the network (`--listen`, `--share`, `--ngrok`, `--server-name`) the directory and filename settings are
    read-only unless `--allow-remote-output-dirs` (A1111's `--hide-ui-dir-config`, on by default when exposed)."""
    exposed = is_exposed(flags) and not flags.allow_remote_output_dirs
    if flags.hide_ui_dir_config:
        restricted, reason = RESTRICTED_KEYS, "directory and filename settings are read-only (--hide-ui-dir-config)"
    elif exposed:
        restricted = RESTRICTED_KEYS
        reason = ("directory and filename settings cannot be changed while the server is reachable from the network "
                  "(--listen/--share); start it with --allow-remote-output-dirs to allow it")
    else:
        restricted, reason = frozenset(), ""
    code_dirs: tuple[Path, ...] = ()
    exact: tuple[Path, ...] = ()
    if paths is not None:
        code_dirs = (*(paths.script_dir / name for name in CODE_FOLDERS), paths.extensions_dir,
                     paths.extensions_builtin_dir, paths.data_dir / "scripts", paths.models_dir)
        exact = (paths.script_dir, paths.data_dir)
    return FreezePolicy(
        all=bool(flags.freeze_settings),
        sections=_split(flags.freeze_settings_in_sections),
        keys=_split(flags.freeze_specific_settings),
        restricted=restricted,
        restricted_reason=reason or "directory and filename settings are read-only",
        dir_keys=DIR_KEYS,
        code_dirs=code_dirs,
        exact_dirs=exact,
        base_dir=paths.script_dir if paths is not None else None,
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
    result = Settings.load(paths.settings_file, freeze=freeze_policy(flags, paths),
                           default_overrides=paths.setting_default_overrides(flags))
    return LoadResult(result.settings, freeze_warnings(flags) + result.warnings)
