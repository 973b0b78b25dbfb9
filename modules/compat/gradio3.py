"""Gradio 3 idioms for code loaded from `extensions/` only (A1111 1.x extensions were written for Gradio 3).

Extension modules get this module when they `import gradio` (see `modules.compat.imports`); everything else in
the process gets Gradio 6 unchanged. It forwards every name to Gradio 6 and adds what Gradio 3 code uses:

* `gr.Box` (removed in Gradio 4): a `gr.Group`;
* `component.style(...)` (removed in Gradio 4): applies what still exists (`height`, `container`, `full_width`,
  Gallery `grid`/`columns`, `preview`, …) and returns the component, so chained calls keep working;
* `gr.Textbox.update(...)` and friends (removed in Gradio 4): `gr.update(...)`;
* `_js=` on event listeners (renamed `js=` in Gradio 4), also on `.then(...)`/`.success(...)` chained to them;
  `show_progress=True/False` (now "full"/"hidden");
* components placed directly inside `gr.Tabs` (not in a `gr.Tab`): moved to right after the Tabs;
* `visible=False` in a constructor: `visible="hidden"` — Gradio 3 kept an invisible component in the page (hidden)
  and extension page scripts read such components (images-browser's settings checkboxes), while Gradio 6 leaves
  `visible=False` ones out of the page;
* constructor arguments Gradio 6 no longer takes (`gr.Image(source=..., tool=..., shape=...)`,
  `gr.File(type="file")`, …): translated where there is an equivalent (`source` → `sources`, `type="file"` →
  "filepath"), dropped otherwise.

The classes are subclasses of the Gradio 6 ones and `isinstance(x, gr.Textbox)` holds for this app's own
components too, so code that inspects the UI (`after_component`) keeps working.
"""

from __future__ import annotations

import functools
import inspect
import logging
import types
from collections.abc import Callable
from typing import Any

import gradio

from modules.compat.gradio_classes import QuietComponentMeta, RendersAsGradio

log = logging.getLogger(__name__)

_SOURCES = {"upload": ["upload"], "webcam": ["webcam"], "canvas": ["upload"], "clipboard": ["clipboard"],
            "microphone": ["microphone"]}
_STYLE_ATTRIBUTES = ("height", "width", "container", "full_width", "columns", "rows", "object_fit", "preview",
                     "size", "scale", "min_width", "equal_height", "show_label")


class Gradio3Meta(QuietComponentMeta):
    """`isinstance(x, gr.Textbox)` against a compatibility class answers for the Gradio 6 class it stands for."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__dict__.get("_gradio6", cls.__mro__[1]))


def _translate_kwargs(base: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Gradio 3 constructor arguments → Gradio 6 ones (unknown ones dropped, logged at debug level)."""
    out = dict(kwargs)
    if "source" in out:
        source = out.pop("source")
        out.setdefault("sources", _SOURCES.get(str(source), ["upload"]))
    if base.__name__ == "File" and out.get("type") == "file":
        out["type"] = "filepath"
    target: Any = base
    params = inspect.signature(target.__init__).parameters
    if out.get("visible") is False and "hidden" in str(getattr(params.get("visible"), "annotation", "")):
        out["visible"] = "hidden"  # Gradio 3 kept invisible components in the page; page scripts read them
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return out
    dropped = [k for k in out if k not in params]
    if dropped:
        log.debug("Gradio 3 argument(s) %s of gr.%s are not available in Gradio 6; ignored", ", ".join(dropped),
                  base.__name__)
    return {k: v for k, v in out.items() if k in params}


def _listener_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if "_js" in out:
        out["js"] = out.pop("_js")
    if isinstance(out.get("show_progress"), bool):
        out["show_progress"] = "full" if out["show_progress"] else "hidden"
    return out


def _style(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Gradio 3 `.style(...)`: set what still exists; returns the component for chaining."""
    if "grid" in kwargs:
        grid = kwargs.pop("grid")
        kwargs.setdefault("columns", grid[0] if isinstance(grid, list | tuple) and grid else grid)
    for key in _STYLE_ATTRIBUTES:
        if key in kwargs and hasattr(self, key):
            setattr(self, key, kwargs[key])
    return self


def _update(**kwargs: Any) -> Any:
    """Gradio 3 `gr.<Component>.update(...)`: `gr.update(...)`."""
    return gradio.update(**kwargs)


def _init_for(base: type) -> Callable[..., None]:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **_translate_kwargs(base, kwargs))  # type: ignore[misc]

    return __init__


def _chained(dependency: Any) -> Any:
    """The event's dependency with `.then` / `.success` / `.failure` taking Gradio 3 arguments too (images-browser
    chains `.then(fn=None, _js=...)`)."""
    for name in ("then", "success", "failure"):
        chain = getattr(dependency, name, None)
        if callable(chain) and not getattr(chain, "_gradio3", False):
            def translated(*args: Any, _chain: Any = chain, **kwargs: Any) -> Any:
                return _chained(_chain(*args, **_listener_kwargs(kwargs)))

            translated._gradio3 = True  # type: ignore[attr-defined]
            try:
                setattr(dependency, name, translated)
            except (AttributeError, TypeError):
                return dependency
    return dependency


def _listener_for(base: type, name: str) -> Callable[..., Any]:
    def listener(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _chained(getattr(base, name)(self, *args, **_listener_kwargs(kwargs)))

    listener.__name__ = name
    return listener


def _tabs_exit(self: Any, *args: Any) -> Any:
    """`gr.Tabs` exit: components placed directly in the Tabs (Gradio 3 showed them; images-browser keeps a hidden
    text box there) move to right after the Tabs, since Gradio 6 would count them as tabs and mix up the tab list."""
    strays = [c for c in self.children if not isinstance(c, gradio.TabItem)]
    parent = self.parent
    if strays and parent is not None and self in getattr(parent, "children", []):
        self.children = [c for c in self.children if isinstance(c, gradio.TabItem)]
        index = parent.children.index(self) + 1
        parent.children[index:index] = strays
        for child in strays:
            child.parent = parent
    return gradio.Tabs.__exit__(self, *args)


@functools.cache
def compat_class(base: type) -> type:
    """The Gradio 3-tolerant subclass of a Gradio 6 component or layout class (one per class)."""
    namespace: dict[str, Any] = {"__init__": _init_for(base), "style": _style, "update": staticmethod(_update),
                                 "_gradio6": base, "__module__": __name__, "__qualname__": base.__name__}
    for event in getattr(base, "EVENTS", ()) or ():
        name = event if isinstance(event, str) else getattr(event, "event_name", None)
        if name:
            namespace[name] = _listener_for(base, name)
    if base is gradio.Tabs:
        namespace["__exit__"] = _tabs_exit
    return Gradio3Meta(base.__name__, (RendersAsGradio, base), namespace)


class Gradio3Module(types.ModuleType):
    """The `gradio` module as extension code sees it: Gradio 6 plus the Gradio 3 idioms above."""

    def __init__(self) -> None:
        super().__init__("gradio", gradio.__doc__)
        self.__file__ = gradio.__file__
        self.__path__ = list(getattr(gradio, "__path__", []))

    def __getattr__(self, name: str) -> Any:
        if name == "Box":
            return compat_class(gradio.Group)
        value: Any = getattr(gradio, name)
        is_block = isinstance(value, type) and issubclass(value, gradio.blocks.Block)
        if is_block and not issubclass(value, gradio.blocks.Blocks):
            base: Any = value
            return compat_class(base)
        return value

    def __dir__(self) -> list[str]:
        return sorted({*dir(gradio), "Box"})


@functools.cache
def module() -> Gradio3Module:
    """The one compatibility `gradio` module."""
    return Gradio3Module()
