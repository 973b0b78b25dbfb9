"""The pipeline's side of the script and callback system (A1111 `p.scripts.*` calls and `script_callbacks`).

`JobHooks` wraps the two objects a job may find in `AppContext.extra` (docs/extensions.md, "Call points"):

* `extra["txt2img_scripts"]` / `extra["img2img_scripts"]`: a `ScriptRunner` (always-on hooks, selected script);
* `extra["callbacks"]`: a `CallbackRegistry` (`fire(category, *args)`; a raising callback is reported there and the
  job goes on, A1111 "exceptions in callbacks are caught and reported, never fatal").

Either may be absent: then every call is a no-op. `modules.processing` may not import `modules.extensions` (same
layer, see the layer table of docs/architecture.md), so the runner and registry are used by duck typing and the
small argument objects below repeat the field names of A1111's classes (`PostprocessImageArgs`, `ImageSaveParams`,
…); scripts only read and write those fields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modules.runtime.hook_params import (  # noqa: F401  (re-exported for the pipeline modules)
    ExtraNoiseParams,
    ImageGridLoopParams,
    ImageSaveParams,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostSampleArgs,
)
from modules.sampling.cfg_denoiser import CFGHooks

if TYPE_CHECKING:  # context.py imports this module: the name is for the type checker only
    from modules.processing.context import AppContext

log = logging.getLogger(__name__)


@dataclass
class JobHooks:
    """Script runner + callback registry of one job; every method is safe to call when either is missing."""

    scripts: Any = None
    callbacks: Any = None
    notices: list[str] = field(default_factory=list)

    @classmethod
    def from_context(cls, ctx: AppContext, kind: str) -> JobHooks:
        """The hooks of a `kind` ("txt2img"/"img2img") job: the tab's ScriptRunner and the callback registry."""
        return cls(scripts=ctx.scripts.for_kind(kind), callbacks=ctx.callbacks)

    def script(self, hook: str, p: Any, *args: Any, **kwargs: Any) -> None:
        """Call `runner.<hook>(p, *args, **kwargs)`; the runner itself catches and records a script's exception."""
        method = getattr(self.scripts, hook, None) if self.scripts is not None else None
        if method is not None:
            method(p, *args, **kwargs)

    def fire(self, category: str, *args: Any) -> None:
        """`registry.fire(category, *args)`; failures are kept in `registry.failures` by the registry."""
        if self.callbacks is None:
            return
        try:
            self.callbacks.fire(category, *args)
        except Exception as exc:  # a registry without a category must not break the job either
            log.error("callback category %s failed: %s", category, exc)

    def cfg_hooks(self) -> CFGHooks | None:
        """`CFGHooks` forwarding to the `cfg_denoiser` / `cfg_denoised` / `cfg_after_cfg` callbacks (A1111 fires
        them once per model evaluation from `CFGDenoiser.forward`); None without a registry."""
        if self.callbacks is None:
            return None
        return CFGHooks(on_cfg_denoiser=[lambda params: self.fire("cfg_denoiser", params)],
                        on_cfg_denoised=[lambda params: self.fire("cfg_denoised", params)],
                        on_cfg_after_cfg=[lambda params: self.fire("cfg_after_cfg", params)])
