"""Compatibility: A1111 `modules.scripts_postprocessing` for Extras-tab scripts of extensions (re-exports only; see
docs/extensions.md): `ScriptPostprocessing`, `PostprocessedImage`, `PostprocessedImageSharedInfo`, and
`ScriptPostprocessingRunner` (the app's runner class)."""

from __future__ import annotations

from modules.extensions.scripts_postprocessing import (
    PostprocessedImage,
    PostprocessedImageSharedInfo,
    PostprocessingScripts,
    ScriptPostprocessing,
)

ScriptPostprocessingRunner = PostprocessingScripts

__all__ = ["PostprocessedImage", "PostprocessedImageSharedInfo", "ScriptPostprocessing", "ScriptPostprocessingRunner"]
