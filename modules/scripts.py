"""Compatibility: `from modules import scripts` for A1111-style user scripts (re-exports only; see
docs/extensions.md).  New code imports `modules.extensions.api`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from modules.extensions.api import (
    AlwaysVisible,
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostProcessMaskOverlayArgs,
    PostprocessMaskOverlayArgs,
    PostSampleArgs,
    Script,
    ScriptRunner,
    basedir_of,
)


def basedir() -> str:
    """The calling code's extension folder, also from a module of the extension's own package, else the folder
    its script file lives in (A1111 `scripts.basedir()`: the extension whose scripts are loading)."""
    from modules.compat.imports import FOLDERS

    caller = Path(inspect.stack()[1].filename).resolve()
    for root in FOLDERS.roots():
        if caller.is_relative_to(root):
            return str(root)
    return basedir_of(str(caller))


def __getattr__(name: str) -> Any:
    """A1111's `scripts.scripts_txt2img` / `scripts_img2img`: the running app's runners (`modules.compat.host`)."""
    if name in ("scripts_txt2img", "scripts_img2img"):
        from modules.compat.host import HOST

        runners = HOST.current().scripts
        return runners.txt2img if name == "scripts_txt2img" else runners.img2img
    if name == "scripts_postproc":  # the Extras-tab scripts (`ScriptPostprocessing`)
        from modules.compat.host import HOST

        return HOST.current().scripts.postprocessing
    if name == "scripts_current":
        return None
    if name in ("ScriptFile", "list_scripts"):  # A1111 namedtuple(basedir, filename, path) and its lister
        from modules.compat import extensions

        return getattr(extensions, name)
    raise AttributeError(f"module 'modules.scripts' has no attribute {name!r} in this web UI")


__all__ = [
    "AlwaysVisible",
    "MaskBlendArgs",
    "PostProcessMaskOverlayArgs",
    "PostSampleArgs",
    "PostprocessBatchListArgs",
    "PostprocessImageArgs",
    "PostprocessMaskOverlayArgs",
    "Script",
    "ScriptRunner",
    "basedir",
]
