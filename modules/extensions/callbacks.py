"""Callback registries for scripts and extensions (A1111 `modules/script_callbacks.py`).

A1111 keeps one module-global dict of callback lists; here a `CallbackRegistry` object owns them, so tests and two
apps in one process can each have their own.  `default_registry` is the one instance old-style scripts reach
through `modules.script_callbacks.on_*` (the only module-level mutable state, a registry as the rules allow).

Behaviour taken from A1111 (reference §10.2):

* `on_<category>(callback, *, name=None)` appends the callback; each gets the unique name
  `<extension name or "base">/<file.py>/<category>[/<name>]` (a second one with the same name gets `#2`, …).
  Before a script file is imported again its callbacks are removed (`remove_script`), so reloads do not double
  them; `build_runners` imports each file once for both tabs.
* Callbacks run in registration order; an exception is caught and reported with the callback's name and the job
  goes on ("Exceptions in callbacks are caught and reported, never fatal").
* Parameter objects keep A1111's class and field names (`ImageSaveParams`, `CFGDenoiserParams`, …) so extension
  code that reads or writes `params.x`, `params.image`, … works unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from modules.runtime.hook_params import ExtraNoiseParams, ImageGridLoopParams, ImageSaveParams  # noqa: F401

log = logging.getLogger(__name__)

CALLBACK_CATEGORIES: tuple[str, ...] = (
    "app_started", "before_reload", "model_loaded", "ui_tabs", "ui_train_tabs", "ui_settings", "before_image_saved",
    "image_saved", "extra_noise", "cfg_denoiser", "cfg_denoised", "cfg_after_cfg", "before_component",
    "after_component", "image_grid", "infotext_pasting", "script_unloaded", "before_ui", "list_optimizers",
    "list_unets", "before_token_counter",
)
"""Every category A1111 1.10 knows; `on_infotext_pasted` is A1111's registration name for `infotext_pasting`."""


@dataclass
class CFGDenoiserParams:
    """`on_cfg_denoiser`: before the model call of each step; callbacks may replace `x`, `image_cond`, conds."""

    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    """`on_cfg_denoised`: after the model call, before cond/uncond are combined."""

    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class AfterCFGCallbackParams:
    """`on_cfg_after_cfg`: the combined denoised `x` (callbacks may replace it)."""

    x: Any
    sampling_step: int
    total_sampling_steps: int


@dataclass
class UiTrainTabParams:
    """`on_ui_train_tabs`: the txt2img preview parameters component group."""

    txt2img_preview_params: Any


@dataclass
class BeforeTokenCounterParams:
    """`on_before_token_counter`: the prompt about to be counted (callbacks may rewrite it)."""

    prompt: str
    steps: int
    styles: list[str]
    is_positive: bool = True


@dataclass
class CallbackEntry:
    """One registered callback: its unique name, the script file it came from, and the function."""

    name: str
    script: str
    callback: Callable[..., Any]


@dataclass
class CallbackFailure:
    """A callback that raised: reported (logged and kept on the registry) instead of breaking the job."""

    category: str
    name: str
    error: str
    traceback: str


@dataclass
class CallbackRegistry:
    """The lists of callbacks per category, plus the failures reported so far.

    `source` is the `<extension>/<file.py>` prefix used for names of callbacks registered while a script file is
    being imported (the loader sets it with `loading_from`); outside of that it is "base/unknown". It is kept per
    thread, because a script whose import hangs keeps importing on its own thread after the loader moved on.
    """

    callbacks: dict[str, list[CallbackEntry]] = field(
        default_factory=lambda: {category: [] for category in CALLBACK_CATEGORIES})
    failures: list[CallbackFailure] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @property
    def source(self) -> str:
        return str(getattr(self._local, "source", "base/unknown"))

    @source.setter
    def source(self, value: str) -> None:
        self._local.source = value

    # registration -----------------------------------------------------------------------------------------------
    def add(self, category: str, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """Register `callback` for `category`; returns its unique name (A1111 `add_callback`)."""
        category = _canonical(category)
        if not callable(callback):
            raise TypeError(f"on_{category}: the callback must be callable, got {type(callback).__name__}")
        base = f"{self.source}/{category}" + (f"/{name}" if name else "")
        entries = self.callbacks[category]
        taken = {e.name for e in entries}
        unique, n = base, 1
        while unique in taken:
            n += 1
            unique = f"{base}#{n}"
        entries.append(CallbackEntry(unique, self.source, callback))
        return unique

    def remove_script(self, script: str) -> None:
        """Drop every callback registered from `script` (`<extension>/<file.py>`), before a reload."""
        for entries in self.callbacks.values():
            entries[:] = [e for e in entries if e.script != script]

    def remove_callback(self, callback: Callable[..., Any]) -> None:
        """Drop `callback` from every category (A1111 `remove_current_script_callbacks` by function)."""
        for entries in self.callbacks.values():
            entries[:] = [e for e in entries if e.callback is not callback]

    def clear(self) -> None:
        """Forget all callbacks (A1111 `clear_callbacks`)."""
        for entries in self.callbacks.values():
            entries.clear()

    def names(self, category: str) -> list[str]:
        """Unique names of the callbacks of `category` in call order."""
        return [e.name for e in self.callbacks[_canonical(category)]]

    @contextmanager
    def loading_from(self, source: str) -> Iterator[None]:
        """Attribute callbacks registered inside the block to `source` (`<extension>/<file.py>`)."""
        previous, self.source = self.source, source
        try:
            yield
        finally:
            self.source = previous

    def order(self, category: str, *, hints: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
              prioritized: Sequence[str] = ()) -> list[str]:
        """Reorder a category's callbacks; returns the new name order (A1111 1.9 callback ordering).

        `hints` maps a callback name to (Before, After) lists from its extension's metadata.ini section
        `[callbacks/<name>]`; `prioritized` is the `prioritized_callbacks_<category>` setting: those names first,
        in that order, then the rest.  Within those constraints registration order is kept (stable topological
        sort); a cycle is reported and registration order kept for the callbacks in it.
        """
        entries = self.callbacks[_canonical(category)]
        names = [e.name for e in entries]
        rank = {n: i for i, n in enumerate(names)}
        for i, n in enumerate(p for p in prioritized if p in rank):
            rank[n] = i - len(names)
        after: dict[str, set[str]] = {n: set() for n in names}  # n runs after every member
        for name, (before, later) in (hints or {}).items():
            if name not in after:
                continue
            for other in before:
                if other in after:
                    after[other].add(name)
            after[name].update(o for o in later if o in after)
        ordered: list[str] = []
        pending = sorted(names, key=rank.__getitem__)
        while pending:
            ready = next((n for n in pending if after[n] <= set(ordered)), None)
            if ready is None:
                log.error("callback order hints for %s form a cycle among %s; keeping registration order",
                          category, ", ".join(pending))
                ordered += pending
                break
            ordered.append(ready)
            pending.remove(ready)
        by_name = {e.name: e for e in entries}
        entries[:] = [by_name[n] for n in ordered]
        return ordered

    # firing -----------------------------------------------------------------------------------------------------
    def fire(self, category: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Call every callback of `category` with `args`; returns their results in order (None for failures).

        A raising callback is reported with its name (`<extension>/<file.py>/<category>`) and the others still run,
        as in A1111's `report_exception`.
        """
        return self.fire_guarded(category, None, *args, **kwargs)

    def fire_guarded(self, category: str, guard: Callable[[], AbstractContextManager[Any]] | None, *args: Any,
                     **kwargs: Any) -> list[Any]:
        """`fire`, with each callback run inside `guard()` (when given): the page build passes one that puts
        Gradio's layout context back when a callback raises halfway through building its blocks."""
        category = _canonical(category)
        results: list[Any] = []
        for entry in list(self.callbacks[category]):
            try:
                with guard() if guard is not None else contextlib.nullcontext():
                    results.append(entry.callback(*args, **kwargs))
            except Exception as exc:  # a plugin's bug must not break the job
                self._report(category, entry, exc)
                results.append(None)
        return results

    def _report(self, category: str, entry: CallbackEntry, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        self.failures.append(CallbackFailure(category, entry.name, message, tb))
        log.error("Error executing callback %s (%s): %s\n%s", entry.name, category, message, tb)

    # A1111's registration names ---------------------------------------------------------------------------------
    def on_app_started(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(demo, app) after the server started; add FastAPI routes here."""
        return self.add("app_started", callback, name=name)

    def on_before_reload(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """() before the UI is reloaded."""
        return self.add("before_reload", callback, name=name)

    def on_model_loaded(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(sd_model) after a checkpoint is loaded."""
        return self.add("model_loaded", callback, name=name)

    def on_ui_tabs(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """() -> [(blocks, title, elem_id), ...] extra top-level tabs."""
        return self.add("ui_tabs", callback, name=name)

    def on_ui_train_tabs(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(UiTrainTabParams) inside the Train tab."""
        return self.add("ui_train_tabs", callback, name=name)

    def on_ui_settings(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """() while the settings are registered; add options here."""
        return self.add("ui_settings", callback, name=name)

    def on_before_image_saved(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(ImageSaveParams) before an image file is written; may change it."""
        return self.add("before_image_saved", callback, name=name)

    def on_image_saved(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(ImageSaveParams) after an image file was written."""
        return self.add("image_saved", callback, name=name)

    def on_extra_noise(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(ExtraNoiseParams) when img2img adds extra noise."""
        return self.add("extra_noise", callback, name=name)

    def on_cfg_denoiser(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(CFGDenoiserParams) each step before the model call."""
        return self.add("cfg_denoiser", callback, name=name)

    def on_cfg_denoised(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(CFGDenoisedParams) each step after the model call."""
        return self.add("cfg_denoised", callback, name=name)

    def on_cfg_after_cfg(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(AfterCFGCallbackParams) each step after cond/uncond are combined."""
        return self.add("cfg_after_cfg", callback, name=name)

    def on_before_component(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(component, **kwargs) before each UI component is created."""
        return self.add("before_component", callback, name=name)

    def on_after_component(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(component, **kwargs) after each UI component is created."""
        return self.add("after_component", callback, name=name)

    def on_image_grid(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(ImageGridLoopParams) before a grid is built."""
        return self.add("image_grid", callback, name=name)

    def on_infotext_pasted(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(infotext, params dict) after an infotext was parsed; may change the dict."""
        return self.add("infotext_pasting", callback, name=name)

    on_infotext_pasting = on_infotext_pasted

    def on_script_unloaded(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """() before scripts are reloaded."""
        return self.add("script_unloaded", callback, name=name)

    def on_before_ui(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """() before the UI is built."""
        return self.add("before_ui", callback, name=name)

    def on_list_optimizers(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(list) append cross-attention optimizers."""
        return self.add("list_optimizers", callback, name=name)

    def on_list_unets(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(list) append UNet replacements."""
        return self.add("list_unets", callback, name=name)

    def on_before_token_counter(self, callback: Callable[..., Any], *, name: str | None = None) -> str:
        """(BeforeTokenCounterParams) before the prompt tokens are counted."""
        return self.add("before_token_counter", callback, name=name)


def _canonical(category: str) -> str:
    category = category.removeprefix("on_")
    if category == "infotext_pasted":
        category = "infotext_pasting"
    if category not in CALLBACK_CATEGORIES:
        raise ValueError(f"unknown callback category {category!r}; known: {', '.join(CALLBACK_CATEGORIES)}")
    return category


default_registry = CallbackRegistry()
"""The process-wide registry behind `modules.script_callbacks.on_*` (A1111's module-level callback map)."""

REGISTRATION_FUNCTIONS: tuple[str, ...] = (
    *(f"on_{c}" for c in CALLBACK_CATEGORIES if c != "infotext_pasting"), "on_infotext_pasted")
"""The `on_*` names `modules.script_callbacks` exports, bound to `default_registry`."""
