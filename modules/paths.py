"""Compatibility: A1111 `modules.paths` for extensions (re-exports of `modules.compat.paths`; docs/extensions.md)."""

from __future__ import annotations

from typing import Any

from modules.compat.paths import attribute, paths, script_path


def __getattr__(name: str) -> Any:
    return attribute(name)


__all__ = ["paths", "script_path"]
