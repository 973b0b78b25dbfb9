"""Compatibility: `from modules import scripts` for A1111-style user scripts (re-exports only; see
docs/extensions.md).  New code imports `modules.extensions.api`.
"""

from __future__ import annotations

import inspect

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
    """The calling script's extension (or root) folder (A1111 `scripts.basedir()`)."""
    caller = inspect.stack()[1].filename
    return basedir_of(caller)


__all__ = [
    "AlwaysVisible",
    "PostSampleArgs",
    "PostprocessBatchListArgs",
    "PostprocessImageArgs",
    "Script",
    "ScriptRunner",
    "basedir",
]
