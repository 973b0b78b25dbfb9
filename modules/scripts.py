"""Compatibility: `from modules import scripts` for A1111-style user scripts (re-exports only; see
docs/extensions.md).  New code imports `modules.extensions.api`.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from modules.extensions.api import (
    AlwaysVisible,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
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


__all__ = [
    "AlwaysVisible",
    "PostSampleArgs",
    "PostprocessBatchListArgs",
    "PostprocessImageArgs",
    "Script",
    "ScriptRunner",
    "basedir",
]
