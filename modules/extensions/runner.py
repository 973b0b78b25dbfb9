"""Loading script files and running their hooks (A1111 `modules/scripts.py::ScriptRunner`, `load_scripts`).

Loading: every `scripts/*.py` of the root and of each enabled extension (`extensions/<name>/scripts/*.py`) is
imported once per file as its own module; each `Script` subclass defined in it becomes one script object per tab
(txt2img, img2img) whose `show()` is not False.  A file that does not import (syntax error, an exception, a
`sys.exit()`) is skipped with a message naming the file, and loading goes on (A1111 reports and continues too).

Call points for the pipeline (`modules.processing.run`), in order, for every `process_images` call (the first
argument is the params/processing object `p`; always-on scripts get their arguments from
`p.alwayson_scripts`)::

    runner.setup(p)                               # before seeds are fixed
    runner.before_process(p)                      # before prompts are expanded
    runner.process(p)                             # prompts/seeds known, before the first batch
    for each batch n:
        runner.before_process_batch(p, batch_number=n, prompts=..., seeds=..., subseeds=...)
        runner.process_batch(p, batch_number=n, prompts=..., seeds=..., subseeds=...)
        runner.before_hr(p)                       # txt2img with hires. fix, before the second pass
        runner.postprocess_batch(p, images=decoded, batch_number=n)
        runner.postprocess_batch_list(p, PostprocessBatchListArgs(images), batch_number=n)
        runner.postprocess_image(p, PostprocessImageArgs(image, index))   # each image, before saving
    runner.postprocess(p, result)                 # after the job, with the GenerationResult

and around it, once per job: `result = runner.run(p, process_images=fn)`; when it returns None no script was
selected and the pipeline calls `fn(p)` itself.  `fn(p)` is the pipeline's own process_images (the hooks above run
inside it); selected scripts reach it through `modules.extensions.api.process_images(p)`.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import importlib.util
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from modules.extensions.callbacks import CallbackRegistry, default_registry
from modules.extensions.script import AlwaysVisible, Script, ScriptArgumentError
from modules.extensions.scripts_postprocessing import ScriptPostprocessing

log = logging.getLogger(__name__)

_current_pipeline: contextvars.ContextVar[Callable[[Any], Any] | None] = contextvars.ContextVar(
    "current_pipeline", default=None)
"""The pipeline's process_images for the script run in progress (per thread/task, set only by `ScriptRunner.run`)."""


@dataclass
class ScriptLoadError:
    """A script file that could not be loaded, or a script hook that raised."""

    path: str
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class ScriptFile:
    """One loaded script file: the module, the extension it belongs to, its Script classes and its Extras-tab
    `ScriptPostprocessing` classes."""

    path: Path
    extension: str
    module: Any
    classes: list[type[Script]] = field(default_factory=list)
    postprocessing_classes: list[type[ScriptPostprocessing]] = field(default_factory=list)


def script_paths(root: str | Path | None, extension_dirs: Iterable[str | Path] = ()) -> list[tuple[Path, str]]:
    """(file, extension name) of every `*.py` in `<root>/scripts` and `<ext>/scripts`, root first, sorted by name."""
    out: list[tuple[Path, str]] = []
    if root is not None:
        out += [(p, "base") for p in sorted(Path(root, "scripts").glob("*.py"))]
    for ext in extension_dirs:
        ext = Path(ext)
        out += [(p, ext.name) for p in sorted((ext / "scripts").glob("*.py"))]
    return out


ScriptLoadScope = Callable[[Path, str, ModuleType], AbstractContextManager[Any]]
"""`scope(path, extension, module)`: the context a script file is imported in (the composition root passes
`modules.compat.imports.script_load_scope`: the extension folder on `sys.path`, Gradio 3 idioms, clear errors)."""


def load_script_file(path: str | Path, *, extension: str = "base", callbacks: CallbackRegistry | None = None,
                     scope: ScriptLoadScope | None = None) -> tuple[ScriptFile | None, ScriptLoadError | None]:
    """Import one script file (inside `scope`, if given); callbacks it registers are named `<extension>/<file.py>/…`.

    Returns the loaded file, or an error naming it when the import raised (anything, including `SystemExit`).
    """
    path = Path(path)
    registry = callbacks or default_registry
    module_name = f"webui_script_{extension}_{path.stem}".replace("-", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        return None, ScriptLoadError(str(path), "not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    module.__dict__.setdefault("__webui_extension__", extension)
    sys.modules[module_name] = module
    registry.remove_script(f"{extension}/{path.name}")  # a re-import replaces the file's earlier callbacks
    try:
        with registry.loading_from(f"{extension}/{path.name}"), \
                (scope(path, extension, module) if scope is not None else contextlib.nullcontext()):
            spec.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(module_name, None)
        registry.remove_script(f"{extension}/{path.name}")
        return None, ScriptLoadError(str(path), f"called sys.exit({exc.code!r}) while loading; skipped")
    except Exception as exc:
        sys.modules.pop(module_name, None)
        registry.remove_script(f"{extension}/{path.name}")
        kind = "syntax error" if isinstance(exc, SyntaxError) else "error"
        return None, ScriptLoadError(str(path), f"{kind} while loading, skipped: {type(exc).__name__}: {exc}",
                                     traceback.format_exc())
    # A1111 registers every Script subclass the file's namespace holds, also one imported from the extension's own
    # package (`from sd_dynamic_prompts.dynamic_prompting import Script`); the app's own classes are not scripts
    def own(obj: type) -> bool:
        return obj.__module__ == module_name or not obj.__module__.startswith("modules.")

    classes = [obj for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, Script) and obj is not Script and own(obj)]
    postprocessing = [obj for obj in vars(module).values() if isinstance(obj, type) and own(obj)
                      and issubclass(obj, ScriptPostprocessing) and obj is not ScriptPostprocessing]
    return ScriptFile(path, extension, module, classes, postprocessing), None


DEFAULT_IMPORT_TIMEOUT = 60.0
"""Seconds a script file may take to import before the server starts without it (`--script-import-timeout`)."""


def load_script_file_bounded(path: Path, *, extension: str, callbacks: CallbackRegistry | None,
                             scope: ScriptLoadScope | None, timeout: float
                             ) -> tuple[ScriptFile | None, ScriptLoadError | None]:
    """`load_script_file` on a worker thread, waiting at most `timeout` seconds. A file still importing then (a
    download, a prompt for input, a deadlock) is reported and skipped so the server starts; if it finishes later its
    module and callbacks are discarded, so it never half-joins a running app (A1111 would hang at start-up)."""
    if timeout <= 0:
        return load_script_file(path, extension=extension, callbacks=callbacks, scope=scope)
    outcome: list[tuple[ScriptFile | None, ScriptLoadError | None]] = []
    abandoned = threading.Event()
    registry = callbacks or default_registry

    def work() -> None:
        result = load_script_file(path, extension=extension, callbacks=callbacks, scope=scope)
        if abandoned.is_set():
            registry.remove_script(f"{extension}/{path.name}")
            if result[0] is not None:
                sys.modules.pop(result[0].module.__name__, None)
            log.warning("script %s finished importing after it was skipped; it stays unloaded", path)
            return
        outcome.append(result)

    context = contextvars.copy_context()  # the loader's context (scope bindings) also holds on the worker
    worker = threading.Thread(target=context.run, args=(work,), name=f"import {extension}/{path.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not outcome:
        abandoned.set()
        return None, ScriptLoadError(str(path), f"still importing after {timeout:g} s (--script-import-timeout); "
                                                "skipped so that the server starts")
    return outcome[0]


def load_scripts(paths: Sequence[tuple[Path, str]], *, callbacks: CallbackRegistry | None = None,
                 scope: ScriptLoadScope | None = None, timeout: float = DEFAULT_IMPORT_TIMEOUT,
                 ) -> tuple[list[ScriptFile], list[ScriptLoadError]]:
    """Load every file; broken ones (and ones whose import hangs past `timeout`) are reported and skipped."""
    files, errors = [], []
    seen: set[type[Script]] = set()
    seen_pp: set[type[ScriptPostprocessing]] = set()
    for path, extension in paths:
        loaded, error = load_script_file_bounded(Path(path), extension=extension, callbacks=callbacks, scope=scope,
                                                 timeout=timeout)
        if error is not None:
            log.error("Error loading script %s", error)
            errors.append(error)
        elif loaded is not None:
            loaded.classes = [cls for cls in loaded.classes if cls not in seen]  # imported by several files: once
            seen.update(loaded.classes)
            loaded.postprocessing_classes = [cls for cls in loaded.postprocessing_classes if cls not in seen_pp]
            seen_pp.update(loaded.postprocessing_classes)
            files.append(loaded)
    return files, errors


def process_images(p: Any) -> Any:
    """Run the generation pipeline on `p` from inside a selected script's `run()` (A1111 `process_images`)."""
    pipeline = _current_pipeline.get()
    if pipeline is None:
        raise RuntimeError("process_images(p) can only be called from a script's run() while a job is running "
                           "(the pipeline passes it to ScriptRunner.run)")
    return pipeline(p)


def copy_params(p: Any, **changes: Any) -> Any:
    """A copy of `p` whose lists/dicts are copies too, with `changes` set (for scripts that vary a job)."""
    q = copy.copy(p)
    for key, value in list(vars(q).items()):
        if isinstance(value, dict | list):
            setattr(q, key, copy.copy(value))
    for key, value in changes.items():
        setattr(q, key, value)
    return q


class ScriptRunner:
    """The scripts of one tab (txt2img or img2img): selectable ones for the Script dropdown, always-on ones."""

    def __init__(self, is_img2img: bool = False, callbacks: CallbackRegistry | None = None) -> None:
        self.is_img2img = is_img2img
        self.callbacks = callbacks or default_registry
        self.scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self.alwayson_scripts: list[Script] = []
        self.load_errors: list[ScriptLoadError] = []
        self.hook_errors: list[ScriptLoadError] = []

    # loading ------------------------------------------------------------------------------------------------
    def load(self, root: str | Path | None, extension_dirs: Iterable[str | Path] = ()) -> list[ScriptLoadError]:
        """Load `<root>/scripts/*.py` and each enabled extension's `scripts/*.py`; returns the load errors.

        For the two tabs of an app use `build_runners`, which imports each file only once.
        """
        files, errors = load_scripts(script_paths(root, extension_dirs), callbacks=self.callbacks)
        self.load_errors += errors
        self.add_files(files)
        return errors

    def add_files(self, files: Iterable[ScriptFile]) -> None:
        """Add the Script classes of already imported files."""
        for loaded in files:
            for cls in loaded.classes:
                self.add_script_class(cls, str(loaded.path), loaded.extension)

    def unload(self) -> None:
        """Fire `script_unloaded`, then forget the scripts and the callbacks their files registered (before a
        reload; A1111 `scripts.reload_scripts`)."""
        self.callbacks.fire("script_unloaded")
        for script in self.scripts:
            if script.filename:
                self.callbacks.remove_script(f"{script.extension}/{Path(script.filename).name}")
        self.scripts, self.selectable_scripts, self.alwayson_scripts = [], [], []
        self.load_errors, self.hook_errors = [], []

    def add_script_class(self, cls: type[Script], filename: str = "", extension: str = "base") -> Script | None:
        """Instantiate `cls` for this tab; returns the script or None if hidden or broken (reported)."""
        try:
            script = cls()
            script.filename, script.extension = filename, extension
            script.is_img2img, script.is_txt2img = self.is_img2img, not self.is_img2img
            visibility = script.show(self.is_img2img)
            if visibility is False:
                return None
            script.title()  # ui() is not called here: A1111 calls it while the tabs are laid out (arg_specs)
        except Exception as exc:
            error = ScriptLoadError(filename or cls.__name__, f"script {cls.__name__} skipped: "
                                    f"{type(exc).__name__}: {exc}", traceback.format_exc())
            log.error("Error setting up script %s", error)
            self.load_errors.append(error)
            return None
        script.alwayson = visibility is AlwaysVisible
        self.scripts.append(script)
        (self.alwayson_scripts if script.alwayson else self.selectable_scripts).append(script)
        self.alwayson_scripts.sort(key=lambda s: s.sorting_priority)
        return script

    # lookup and argument binding ----------------------------------------------------------------------------
    def titles(self) -> list[str]:
        """Titles of the selectable scripts (the Script dropdown after "None")."""
        return [s.title() for s in self.selectable_scripts]

    def find(self, title: str, *, alwayson: bool = False) -> Script | None:
        """A selectable (or always-on) script by title, case-insensitively as A1111's API matches it."""
        pool = self.alwayson_scripts if alwayson else self.selectable_scripts
        wanted = title.strip().lower()
        return next((s for s in pool if s.title().lower() == wanted), None)

    def selected_args(self, p: Any, args: Sequence[Any] | Mapping[str, Any] | None = None,
                      ) -> tuple[Script | None, list[Any]]:
        """The selected script (`p.script_name`) and its bound arguments (`args`, else `p.script_args`)."""
        title = getattr(p, "script_name", None)
        if not title or str(title).lower() == "none":
            return None, []
        script = self.find(str(title))
        if script is None:
            raise ScriptArgumentError(f"script {title!r} not found; available: {', '.join(self.titles()) or 'none'}")
        return script, script.bind_args(args if args is not None else getattr(p, "script_args", None))

    def alwayson_args(self, p: Any) -> list[tuple[Script, list[Any]]]:
        """Each always-on script with its arguments from `p.alwayson_scripts` ({"title": {"args": ...}})."""
        given = {str(k).lower(): v for k, v in (getattr(p, "alwayson_scripts", None) or {}).items()}
        known = {s.title().lower() for s in self.alwayson_scripts}
        unknown = [k for k in given if k not in known]
        if unknown:
            raise ScriptArgumentError(f"always-on script(s) not found: {', '.join(unknown)}")
        out = []
        for script in self.alwayson_scripts:
            entry = given.get(script.title().lower())
            values = entry.get("args") if isinstance(entry, Mapping) else entry
            out.append((script, script.bind_args(values)))
        return out

    def validate(self, p: Any) -> None:
        """Raise `ScriptArgumentError` for an unknown script title or bad arguments (for the API's 422)."""
        self.selected_args(p)
        self.alwayson_args(p)

    # running ------------------------------------------------------------------------------------------------
    def run(self, p: Any, *args: Any, process_images: Callable[[Any], Any] | None = None) -> Any:
        """Run the selected script's `run(p, *args)`; None when no script is selected.

        `args` (if any) are the positional values, else `p.script_args`; `process_images` is the pipeline
        function scripts call through `api.process_images(p)`.
        """
        script, bound = self.selected_args(p, args if args else None)
        if script is None:
            return None
        token = _current_pipeline.set(process_images)
        try:
            return script.run(p, *bound)
        finally:
            _current_pipeline.reset(token)

    def _each(self, hook: str, p: Any, call: Callable[[Script, list[Any]], None]) -> None:
        for script, args in self.alwayson_args(p):
            try:
                call(script, args)
            except Exception as exc:  # a plugin's bug is reported and the job goes on (A1111 behaviour)
                error = ScriptLoadError(script.filename, f"{hook} of {script.title()!r} failed: "
                                        f"{type(exc).__name__}: {exc}", traceback.format_exc())
                log.error("Error running %s", error)
                self.hook_errors.append(error)

    def setup(self, p: Any) -> None:
        """Always-on `setup(p, *args)`: first thing in a job."""
        self._each("setup", p, lambda s, a: s.setup(p, *a))

    def before_process(self, p: Any) -> None:
        """Always-on `before_process(p, *args)`."""
        self._each("before_process", p, lambda s, a: s.before_process(p, *a))

    def process(self, p: Any) -> None:
        """Always-on `process(p, *args)`."""
        self._each("process", p, lambda s, a: s.process(p, *a))

    def before_process_batch(self, p: Any, **kwargs: Any) -> None:
        """Always-on `before_process_batch(p, *args, batch_number=, prompts=, seeds=, subseeds=)`."""
        self._each("before_process_batch", p, lambda s, a: s.before_process_batch(p, *a, **kwargs))

    def after_extra_networks_activate(self, p: Any, **kwargs: Any) -> None:
        """Always-on `after_extra_networks_activate(p, *args, **kwargs)`."""
        self._each("after_extra_networks_activate", p, lambda s, a: s.after_extra_networks_activate(p, *a, **kwargs))

    def process_before_every_sampling(self, p: Any, **kwargs: Any) -> None:
        """Always-on `process_before_every_sampling(p, *args, x=, noise=, c=, uc=)`."""
        self._each("process_before_every_sampling", p,
                   lambda s, a: s.process_before_every_sampling(p, *a, **kwargs))

    def process_batch(self, p: Any, **kwargs: Any) -> None:
        """Always-on `process_batch(p, *args, batch_number=, prompts=, seeds=, subseeds=)`."""
        self._each("process_batch", p, lambda s, a: s.process_batch(p, *a, **kwargs))

    def post_sample(self, p: Any, ps: Any) -> None:
        """Always-on `post_sample(p, PostSampleArgs, *args)`."""
        self._each("post_sample", p, lambda s, a: s.post_sample(p, ps, *a))

    def postprocess_batch(self, p: Any, **kwargs: Any) -> None:
        """Always-on `postprocess_batch(p, *args, images=, batch_number=)`."""
        self._each("postprocess_batch", p, lambda s, a: s.postprocess_batch(p, *a, **kwargs))

    def postprocess_batch_list(self, p: Any, pp: Any, **kwargs: Any) -> None:
        """Always-on `postprocess_batch_list(p, PostprocessBatchListArgs, *args, batch_number=)`."""
        self._each("postprocess_batch_list", p, lambda s, a: s.postprocess_batch_list(p, pp, *a, **kwargs))

    def on_mask_blend(self, p: Any, mba: Any) -> None:
        """Always-on `on_mask_blend(p, MaskBlendArgs, *args)`: each inpainting mask blend."""
        self._each("on_mask_blend", p, lambda s, a: s.on_mask_blend(p, mba, *a))

    def postprocess_maskoverlay(self, p: Any, ppmo: Any) -> None:
        """Always-on `postprocess_maskoverlay(p, PostprocessMaskOverlayArgs, *args)`: before each inpainting
        overlay."""
        self._each("postprocess_maskoverlay", p, lambda s, a: s.postprocess_maskoverlay(p, ppmo, *a))

    def postprocess_image(self, p: Any, pp: Any) -> None:
        """Always-on `postprocess_image(p, PostprocessImageArgs, *args)`."""
        self._each("postprocess_image", p, lambda s, a: s.postprocess_image(p, pp, *a))

    def postprocess_image_after_composite(self, p: Any, pp: Any) -> None:
        """Always-on `postprocess_image_after_composite(p, PostprocessImageArgs, *args)`."""
        self._each("postprocess_image_after_composite", p,
                   lambda s, a: s.postprocess_image_after_composite(p, pp, *a))

    def postprocess(self, p: Any, processed: Any) -> None:
        """Always-on `postprocess(p, processed, *args)`: after the job."""
        self._each("postprocess", p, lambda s, a: s.postprocess(p, processed, *a))

    def before_hr(self, p: Any) -> None:
        """Always-on `before_hr(p, *args)`: before the hires. fix pass."""
        self._each("before_hr", p, lambda s, a: s.before_hr(p, *a))

    # UI construction ----------------------------------------------------------------------------------------
    def before_component(self, component: Any, **kwargs: Any) -> None:
        """Every script's `before_component`, then the `before_component` callbacks (UI layer calls this)."""
        for script in self.scripts:
            try:
                script.before_component(component, **kwargs)
            except Exception as exc:
                self.hook_errors.append(ScriptLoadError(script.filename, f"before_component: {exc}"))
        self.callbacks.fire("before_component", component, **kwargs)

    def after_component(self, component: Any, **kwargs: Any) -> None:
        """Every script's `after_component`, then the `after_component` callbacks (UI layer calls this)."""
        for script in self.scripts:
            try:
                script.after_component(component, **kwargs)
            except Exception as exc:
                self.hook_errors.append(ScriptLoadError(script.filename, f"after_component: {exc}"))
        self.callbacks.fire("after_component", component, **kwargs)


def build_runners(root: str | Path | None, extension_dirs: Iterable[str | Path] = (), *,
                  callbacks: CallbackRegistry | None = None, scope: ScriptLoadScope | None = None,
                  ) -> tuple[ScriptRunner, ScriptRunner, list[ScriptLoadError]]:
    """The txt2img and img2img runners of an app, sharing one import of every script file (as A1111 does).

    Returns (txt2img runner, img2img runner, load errors); each runner's `load_errors` also lists the errors.
    """
    registry = callbacks or default_registry
    files, errors = load_scripts(script_paths(root, extension_dirs), callbacks=registry, scope=scope)
    runners = []
    for is_img2img in (False, True):
        runner = ScriptRunner(is_img2img=is_img2img, callbacks=registry)
        runner.load_errors += errors
        runner.add_files(files)
        runners.append(runner)
    return runners[0], runners[1], errors
