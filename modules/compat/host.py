"""The running app behind the A1111 views, and the extension moments of start-up.

A1111 has one program per process and reaches it through module globals. Here `webui.create_app` binds the
`AppContext` it built (`HOST.bind(ctx)`) and every A1111 view (`modules.shared.opts`, `shared.state`,
`shared.sd_model`, …) reads through `HOST.current()` on each access, so nothing is copied and nothing goes stale.
With several apps in one process (tests), the most recently bound one that is still running is current.

Start-up moments, in A1111's order (`webui.py::webui()` / `api_only()`, `ui.create_ui()`):

1. scripts load (`webui.build_context`): each extension folder is on `sys.path` while its files import;
2. `before_ui` callbacks, then `ui_settings` callbacks (A1111 `create_ui` registers the settings first; here they
   also run with `--nowebui` so the API knows extension options);
3. the UI is built (`modules.ui.build_ui`): every script's `ui()` inside the page, extension tabs (`ui_tabs`),
   `before_component` / `after_component` for every component;
4. `app_started(demo, app)` once the FastAPI app is complete (`demo` is None with `--nowebui`); routes that
   extensions add there are served before the UI's catch-all mount.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount

from modules.extensions.callbacks import CALLBACK_CATEGORIES
from modules.extensions.runner import ScriptLoadError, load_scripts, script_paths
from modules.processing.context import AppContext

log = logging.getLogger(__name__)


class NoRunningAppError(RuntimeError):
    """An A1111 view was read while no app is running (e.g. at import time of a module outside the app)."""


class AppHost:
    """The registry of running apps (the one process-wide mutable object of `modules.compat`)."""

    def __init__(self) -> None:
        self._apps: list[weakref.ref[AppContext]] = []
        self._demos: list[tuple[weakref.ref[AppContext], Any]] = []
        self._sources: list[tuple[weakref.ref[AppContext], list[str]]] = []
        self._lock = threading.Lock()

    def _alive(self) -> list[AppContext]:
        return [ctx for ctx in (ref() for ref in self._apps) if ctx is not None]

    def bind(self, ctx: AppContext) -> None:
        """Make `ctx` the app the A1111 views read (done by the composition root before scripts load). Apps are
        held weakly: a context nobody uses any more drops out by itself."""
        with self._lock:
            self._apps = [weakref.ref(a) for a in self._alive() if a is not ctx] + [weakref.ref(ctx)]

    def unbind(self, ctx: AppContext) -> None:
        """Forget `ctx` (its app shut down); the previously bound app, if any, becomes current again."""
        with self._lock:
            self._apps = [weakref.ref(a) for a in self._alive() if a is not ctx]

    def set_demo(self, ctx: AppContext, demo: Any) -> None:
        """Remember the app's Gradio Blocks (A1111 `shared.demo`)."""
        with self._lock:
            self._demos = [(ref, d) for ref, d in self._demos if ref() is not None and ref() is not ctx]
            self._demos.append((weakref.ref(ctx), demo))

    def set_sources(self, ctx: AppContext, sources: list[str]) -> None:
        """Remember the `<extension>/<file.py>` script files the app loaded (their callbacks go with the app)."""
        with self._lock:
            self._sources = [(ref, s) for ref, s in self._sources if ref() is not None and ref() is not ctx]
            self._sources.append((weakref.ref(ctx), list(sources)))

    def sources(self, ctx: AppContext) -> list[str]:
        with self._lock:
            return next((list(s) for ref, s in self._sources if ref() is ctx), [])

    def demo(self) -> Any:
        """The current app's Gradio Blocks (None with `--nowebui`)."""
        ctx = self.current()
        with self._lock:
            return next((d for ref, d in self._demos if ref() is ctx), None)

    def current(self) -> AppContext:
        """The running app; raises `NoRunningAppError` naming what to do when there is none."""
        with self._lock:
            alive = self._alive()
            if alive:
                return alive[-1]
        raise NoRunningAppError("no web UI app is running: A1111 names such as modules.shared.opts are views over "
                                "the app that webui.create_app builds, and can only be read while it runs")

    def running(self) -> bool:
        """True when an app is bound."""
        with self._lock:
            return bool(self._alive())


HOST = AppHost()
"""The registry of running apps read by every A1111 view."""


def load_extensions(ctx: AppContext) -> list[ScriptLoadError]:
    """Bind `ctx`, then import `scripts/*.py` and every enabled extension's scripts into the two runners (A1111
    `scripts.load_scripts()` in `initialize`): each extension folder is on `sys.path` while its files import and
    its modules see Gradio 3 idioms (`modules.compat.imports`). Then the callbacks are ordered by the extensions'
    metadata.ini `[callbacks/<name>] Before=/After=` hints, checkpoint loads fire `model_loaded`, and
    `list_optimizers` / `list_unets` run (A1111 lists them right after the scripts load). Returns the load
    errors (also in each runner's `load_errors`)."""
    from modules.compat.imports import script_load_scope
    from modules.compat.state import ModelView

    HOST.bind(ctx)
    enabled = [e.path for e in ctx.extensions if e.enabled]
    paths = script_paths(ctx.paths.script_dir, enabled)
    HOST.set_sources(ctx, [f"{extension}/{path.name}" for path, extension in paths])
    files, errors = load_scripts(paths, callbacks=ctx.callbacks, scope=script_load_scope,
                                 timeout=float(ctx.flags.script_import_timeout))
    for runner in (ctx.scripts.txt2img, ctx.scripts.img2img):
        runner.load_errors += errors
        runner.add_files(files)
    ctx.scripts.postprocessing.add_files(files)  # Extras-tab ScriptPostprocessing classes
    order_callbacks(ctx)

    def model_loaded(model: Any) -> None:
        ctx.callbacks.fire("model_loaded", ModelView(model))

    ctx.models.on_loaded.append(model_loaded)
    for category, what in (("list_optimizers", "cross-attention optimizations"), ("list_unets", "UNet options")):
        added: list[Any] = []
        ctx.callbacks.fire(category, added)
        if added:
            log.warning("Extensions offered %d %s (%s); this web UI picks attention and UNet code itself, so they "
                        "are not used", len(added), what, ", ".join(str(getattr(a, "name", a)) for a in added))
    return errors


def order_callbacks(ctx: AppContext) -> None:
    """Apply every enabled extension's metadata.ini `[callbacks/<callback name>]` `Before=` / `After=` lists to
    the callback order of each category (A1111 1.9)."""
    hints: dict[str, tuple[list[str], list[str]]] = {}
    for extension in ctx.extensions:
        if not extension.enabled:
            continue
        for section, values in extension.metadata.items():
            if section.startswith("callbacks/"):
                split = [[n.strip() for n in values.get(key, "").split(",") if n.strip()] for key in ("Before", "After")]
                hints[section.removeprefix("callbacks/")] = (split[0], split[1])
    if hints:
        for category in CALLBACK_CATEGORIES:
            ctx.callbacks.order(category, hints=hints)


def before_ui(ctx: AppContext) -> None:
    """Fire `before_ui` and `ui_settings` (A1111: `before_ui_callback()` in `webui()`, then
    `ui_settings_callback()` first thing in `create_ui()`). Options added with `shared.opts.add_option` register in
    the app's settings registry."""
    HOST.bind(ctx)
    ctx.callbacks.fire("before_ui")
    ctx.callbacks.fire("ui_settings")


def app_started(ctx: AppContext, demo: Any, app: FastAPI) -> None:
    """Fire `app_started(demo, app)` (A1111 right after the server is created), then keep the UI's mount at `/`
    last so the routes extensions added are reachable (Gradio's mount matches every path)."""
    HOST.set_demo(ctx, demo)
    ctx.callbacks.fire("app_started", demo, app)
    keep_mounts_last(app)


def keep_mounts_last(app: FastAPI) -> None:
    """Move catch-all mounts (the Gradio UI at `/`) behind every route added after them."""
    routes = app.router.routes
    mounts: list[BaseRoute] = [r for r in routes if isinstance(r, Mount) and r.path in ("", "/")]
    if mounts:
        routes[:] = [r for r in routes if r not in mounts] + mounts


def shutdown(ctx: AppContext, *, reloading: bool = False) -> None:
    """The app stops: when it stops to be started again (a restart was requested), `before_reload` then
    `script_unloaded` fire first (A1111 fires them when the UI restarts, before the scripts load again); then the
    views stop reading it."""
    if reloading:
        ctx.callbacks.fire("before_reload")
        ctx.callbacks.fire("script_unloaded")
    from modules.compat.imports import forget_extension_modules

    for source in HOST.sources(ctx):  # an app that stopped leaves no callbacks or extension modules behind
        ctx.callbacks.remove_script(source)
    forget_extension_modules([e.path for e in ctx.extensions if e.enabled])
    HOST.unbind(ctx)
