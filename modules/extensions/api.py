"""The public plugin surface: what user scripts and extensions may import (A1111 `modules.scripts` +
`modules.script_callbacks`, reference §10).

Everything listed in `__all__` is stable within `API_VERSION`'s major number; anything else in
`modules.extensions` is internal.  Old-style imports (`from modules import scripts, script_callbacks`) reach the
same objects through the thin re-export modules `modules/scripts.py` and `modules/script_callbacks.py`.
"""

from __future__ import annotations

from modules.extensions.callbacks import (
    AfterCFGCallbackParams,
    BeforeTokenCounterParams,
    CallbackRegistry,
    CFGDenoisedParams,
    CFGDenoiserParams,
    ExtraNoiseParams,
    ImageGridLoopParams,
    ImageSaveParams,
    UiTrainTabParams,
    default_registry,
)
from modules.extensions.runner import (
    ScriptLoadError,
    ScriptRunner,
    build_runners,
    copy_params,
    load_script_file,
    process_images,
)
from modules.extensions.script import (
    AlwaysVisible,
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostProcessMaskOverlayArgs,
    PostprocessMaskOverlayArgs,
    PostSampleArgs,
    Script,
    ScriptArg,
    ScriptArgumentError,
    basedir_of,
)

API_VERSION = "1.0.0"
"""Version of this plugin API (semver: a major bump means a breaking change for scripts)."""

__all__ = [
    "API_VERSION",
    "AfterCFGCallbackParams",
    "AlwaysVisible",
    "BeforeTokenCounterParams",
    "CFGDenoisedParams",
    "CFGDenoiserParams",
    "CallbackRegistry",
    "ExtraNoiseParams",
    "ImageGridLoopParams",
    "ImageSaveParams",
    "MaskBlendArgs",
    "PostProcessMaskOverlayArgs",
    "PostSampleArgs",
    "PostprocessBatchListArgs",
    "PostprocessImageArgs",
    "PostprocessMaskOverlayArgs",
    "Script",
    "ScriptArg",
    "ScriptArgumentError",
    "ScriptLoadError",
    "ScriptRunner",
    "UiTrainTabParams",
    "basedir_of",
    "build_runners",
    "copy_params",
    "default_registry",
    "load_script_file",
    "process_images",
]
