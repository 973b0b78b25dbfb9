"""Extras-tab scripts (A1111 `modules/scripts_postprocessing.py`): `ScriptPostprocessing` subclasses in
`scripts/*.py` of the install or of an extension join the Extras chain.

A1111 behaviour reproduced:
* a script has `name`, `order` (default 1000) and `ui()` returning `{argument name: component}`; its components
  are laid out in the Extras tab (one `gr.Row` per script) and their values reach `process(pp, **args)` by name;
* before any `process`, every script's `process_firstpass(pp, **args)` runs (scripts may set fields of `pp`);
  then each script's `process` runs on the image and on the extra images earlier scripts added (unless their
  `disable_processing` is set); `pp.info` entries become the extras infotext;
* scripts and the built-in operations (Upscale, GFPGAN, CodeFormer) run in `postprocessing_operation_order`, then by
  `order`, then by name; names in `postprocessing_disable_in_extras` are left out; a script named "Simple Upscale"
  is skipped (A1111 keeps it for the main UI);
* the API's extras routes give the built-in operations their request fields and every other script `None` for
  each of its arguments (A1111 `create_args_for_run` fills only Upscale/GFPGAN/CodeFormer); `ui()` then runs once
  in a throwaway `gr.Blocks()` to learn the argument names, as A1111 does when no page was built;
* `image_changed()` is called when the Extras source image changes.
A script whose `ui()`, `process_firstpass` or `process` raises is reported (`hook_errors`) and the chain goes on.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modules.runtime.hook_params import PostprocessedImage, PostprocessedImageSharedInfo

if TYPE_CHECKING:
    from modules.extensions.runner import ScriptFile, ScriptLoadError

log = logging.getLogger(__name__)

__all__ = ["BoundPostprocessingScript", "PostprocessedImage", "PostprocessedImageSharedInfo", "PostprocessingScripts",
           "ScriptPostprocessing"]


class ScriptPostprocessing:
    """Base class of an Extras-tab script (A1111 `scripts_postprocessing.ScriptPostprocessing`)."""

    filename: str | None = None
    extension: str = "base"
    controls: dict[str, Any] | None = None
    args_from: int | None = None
    args_to: int | None = None
    order: int = 1000
    """Scripts run (and show) in this order after those listed in `postprocessing_operation_order`."""
    name: str | None = None
    """The script's title: its key in `postprocessing_operation_order` and the API."""
    group: Any = None
    """The `gr.Row` holding the script's UI."""

    def ui(self) -> dict[str, Any] | None:
        """Create the Gradio components; return `{argument name: component}` (values reach `process` by name)."""
        return None

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        """Postprocess `pp.image` (replace it, add `pp.info` entries, append `pp.extra_images`)."""

    def process_firstpass(self, pp: PostprocessedImage, **args: Any) -> None:
        """Called for every script before any `process`: look at the image, set fields of `pp` for others."""

    def image_changed(self) -> None:
        """The Extras source image changed."""


@dataclass
class BoundPostprocessingScript:
    """A script with the argument values of one run, as the Extras chain calls it (`name`, `order`,
    `process_firstpass(pp)`, `process(pp)`)."""

    script: ScriptPostprocessing
    args: dict[str, Any]
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.script.name or type(self.script).__name__)

    @property
    def order(self) -> int:
        return int(self.script.order)

    def _call(self, hook: str, pp: PostprocessedImage) -> None:
        try:
            getattr(self.script, hook)(pp, **self.args)
        except Exception as exc:  # a plugin's bug is reported, the other operations go on
            message = f"{self.script.filename or self.name}: {hook} of {self.name!r} failed: {type(exc).__name__}: {exc}"
            log.error("%s\n%s", message, traceback.format_exc())
            self.errors.append(message)

    def process_firstpass(self, pp: PostprocessedImage) -> None:
        self._call("process_firstpass", pp)

    def process(self, pp: PostprocessedImage) -> None:
        self._call("process", pp)


class PostprocessingScripts:
    """The Extras-tab scripts of an app (A1111 `ScriptPostprocessingRunner`, `scripts.scripts_postproc`)."""

    def __init__(self) -> None:
        self.scripts: list[ScriptPostprocessing] = []
        self.load_errors: list[ScriptLoadError] = []
        self.hook_errors: list[str] = []
        self.ui_created = False
        self._lock = threading.Lock()

    def add_files(self, files: Iterable[ScriptFile]) -> None:
        """Instantiate the `ScriptPostprocessing` classes of already imported script files."""
        from modules.extensions.runner import ScriptLoadError

        for loaded in files:
            for cls in loaded.postprocessing_classes:
                try:
                    script = cls()
                except Exception as exc:
                    error = ScriptLoadError(str(loaded.path), f"postprocessing script {cls.__name__} skipped: "
                                            f"{type(exc).__name__}: {exc}", traceback.format_exc())
                    log.error("Error setting up script %s", error)
                    self.load_errors.append(error)
                    continue
                if script.name == "Simple Upscale":
                    continue
                script.filename, script.extension = str(loaded.path), loaded.extension
                self.scripts.append(script)

    def ordered(self, settings: Mapping[str, Any] | None = None) -> list[ScriptPostprocessing]:
        """Scripts in `postprocessing_operation_order`, then by `order`, then by name (A1111)."""
        listed = list((settings or {}).get("postprocessing_operation_order") or [])

        def key(item: tuple[int, ScriptPostprocessing]) -> tuple[int, int, str, int]:
            index, script = item
            name = str(script.name)
            return (listed.index(name) if name in listed else len(listed), int(script.order), name, index)

        return [script for _, script in sorted(enumerate(self.scripts), key=key)]

    def setup_ui(self, settings: Mapping[str, Any] | None = None) -> list[Any]:
        """Lay out every script's `ui()` in the current Gradio context (one `gr.Row` each); returns the input
        components in order (the Extras tab passes their values to `bind`)."""
        import gradio as gr

        inputs: list[Any] = []
        with self._lock:
            for script in self.ordered(settings):
                script.args_from = len(inputs)
                with gr.Row() as group:
                    try:
                        controls = script.ui()
                    except Exception as exc:
                        message = f"{script.filename}: ui() of {script.name!r} failed: {type(exc).__name__}: {exc}"
                        log.error("%s\n%s", message, traceback.format_exc())
                        self.hook_errors.append(message)
                        controls = None
                script.controls = dict(controls or {})
                script.group = group
                inputs += list(script.controls.values())
                script.args_to = len(inputs)
            self.ui_created = True
        return inputs

    def ensure_controls(self, settings: Mapping[str, Any] | None = None) -> None:
        """Run the scripts' `ui()` once in a throwaway `gr.Blocks()` when no page built them (API-only)."""
        if self.ui_created:
            return
        import gradio as gr

        with gr.Blocks(analytics_enabled=False):
            self.setup_ui(settings)

    def bind(self, values: Sequence[Any] | None, settings: Mapping[str, Any] | None = None,
             ) -> list[BoundPostprocessingScript]:
        """Each script with its arguments by name: from the UI's positional `values` (in `setup_ui` order), or
        None for every argument (the API, A1111 `create_args_for_run`)."""
        self.ensure_controls(settings)
        disabled = set((settings or {}).get("postprocessing_disable_in_extras") or [])
        bound = []
        for script in self.ordered(settings):
            if script.name in disabled:
                continue
            names = list(script.controls or {})
            start = script.args_from or 0
            given = list(values[start:start + len(names)]) if values is not None else []
            args = {name: given[i] if i < len(given) else None for i, name in enumerate(names)}
            bound.append(BoundPostprocessingScript(script, args, self.hook_errors))
        return bound

    def image_changed(self) -> None:
        """Tell every script the Extras source image changed (A1111 `image_changed`)."""
        for script in self.scripts:
            try:
                script.image_changed()
            except Exception as exc:
                self.hook_errors.append(f"{script.filename}: image_changed of {script.name!r} failed: {exc}")
