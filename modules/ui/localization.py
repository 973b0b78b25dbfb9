"""Localization files: `localizations/<lang>.json` plus `extensions/*/localizations/*.json` (reference §14).

A1111 merges every file with the same stem, offers "None" + the stems in the `localization` setting, and applies
the mapping in the browser (`javascript/localization.js` walks text nodes, titles and placeholders).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from modules.processing.context import AppContext

log = logging.getLogger(__name__)


def localization_dirs(ctx: AppContext) -> list[Path]:
    """The folders searched: `--localizations-dir`, the repository's `localizations/`, extensions' folders."""
    repo = Path(__file__).resolve().parents[2] / "localizations"
    dirs = [Path(ctx.paths.localizations_dir), repo]
    for root in (ctx.paths.extensions_builtin_dir, ctx.paths.extensions_dir):
        root = Path(root)
        if root.is_dir():
            dirs.extend(sorted(p / "localizations" for p in root.iterdir() if (p / "localizations").is_dir()))
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def list_localizations(ctx: AppContext) -> list[str]:
    """"None" plus the stem of every localization file found (the Settings dropdown's choices)."""
    stems = {p.stem for d in localization_dirs(ctx) for p in d.glob("*.json")}
    return ["None", *sorted(stems)]


def load_localization(ctx: AppContext, name: str | None) -> dict[str, Any]:
    """The merged mapping for `name` ({} for "None" or an unknown name); a broken file is skipped with a warning."""
    if not name or name == "None":
        return {}
    merged: dict[str, Any] = {}
    for folder in localization_dirs(ctx):
        path = folder / f"{name}.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Cannot read localization file %s: %s", path, exc)
            continue
        if not isinstance(data, dict):
            log.warning("Localization file %s is not a JSON object; skipped", path)
            continue
        merged.update(data)
    return merged
