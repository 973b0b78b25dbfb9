"""What extensions add to the page (A1111 `modules/ui.py::create_ui`, `modules/ui_gradio_extensions.py`).

* Extension tabs: the `ui_tabs` callbacks return `[(blocks, title, elem_id), ...]`; each interface becomes a
  top-level tab after PNG Info (A1111 puts them after the built-in tabs, before Settings and Extensions), with
  `id=<elem_id>` and `elem_id="tab_<elem_id>"`. The callbacks run inside the page being built; Gradio 6 renders a
  `gr.Blocks` created there in place, so each interface's blocks are moved into its own tab. Extension page scripts
  look up their tab's elements from `onUiLoaded` (images-browser), as every Gradio 3 tab was in the page; Gradio 6
  mounts a tab when it is first opened, so the tabs are marked `render_children` and the page script
  (javascript/01-a1111-api.js) opens each once before the `onUiLoaded` callbacks run. A callback that raises is reported and the page goes
  on (`layout_guard`).
* `before_component` / `after_component`: A1111 fires them from inside every Gradio component's constructor (it
  patches Gradio). Without patching, they fire for every component once the page is laid out, in creation order,
  with A1111's keyword arguments (`elem_id`, `label`, `value`, …); scripts of the txt2img/img2img runner get them
  for components of their tab. Components a callback creates land right before/after the component.
* Browser assets: every enabled extension's `javascript/*.js` (`*.mjs` as modules) after the app's own, its
  `style.css` after the app's `style.css`, as A1111 orders them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block, BlockContext
from gradio.context import get_render_context, set_render_context

from modules.extensions.script import layout_guard
from modules.processing.context import AppContext

log = logging.getLogger(__name__)


def build_extension_tabs(ctx: AppContext) -> None:
    """Call the `ui_tabs` callbacks inside the top-level `gr.Tabs` and give each interface its own tab."""
    if not ctx.callbacks.names("ui_tabs"):
        return
    with gr.Tab("Extension", elem_id="tab_extension_pending", render_children=True) as first:
        results = ctx.callbacks.fire_guarded("ui_tabs", layout_guard)
    interfaces = [item for result in results for item in (result or [])
                  if isinstance(item, tuple | list) and len(item) >= 3]
    if not interfaces:
        first.visible = False
        return
    blocks, title, elem_id = interfaces[0][:3]
    first.label, first.id, first.elem_id = str(title), str(elem_id), f"tab_{elem_id}"
    for blocks, title, elem_id in (item[:3] for item in interfaces[1:]):
        with gr.Tab(str(title), id=str(elem_id), elem_id=f"tab_{elem_id}", render_children=True) as tab:
            pass
        for child in list(getattr(blocks, "children", [])):
            if child in first.children:
                first.children.remove(child)
                tab.children.append(child)
                child.parent = tab


def _has_component_hooks(ctx: AppContext) -> bool:
    from modules.extensions.script import Script

    if ctx.callbacks.names("before_component") or ctx.callbacks.names("after_component"):
        return True
    runners = (ctx.scripts.txt2img, ctx.scripts.img2img)
    return any(type(s).before_component is not Script.before_component or
               type(s).after_component is not Script.after_component for r in runners for s in r.scripts)


def _descendants(block: Block) -> Iterator[Block]:
    for child in getattr(block, "children", []):
        yield child
        yield from _descendants(child)


def component_kwargs(component: Any) -> dict[str, Any]:
    """The constructor arguments A1111 passes to `before_component` / `after_component`."""
    out: dict[str, Any] = {}
    for key in ("elem_id", "label", "value", "visible", "elem_classes", "interactive", "placeholder", "choices"):
        value = getattr(component, key, None)
        if value is not None:
            out[key] = value
    return out


def _placed(parent: BlockContext, anchor: Block, fire: Any, *, before: bool) -> None:
    """Run `fire()` with `parent` as the render target; move what it created next to `anchor`."""
    count = len(parent.children)
    saved, grandparent = get_render_context(), parent.parent
    try:
        with parent:  # entering makes the current render context its parent: put both back afterwards
            fire()
    finally:
        parent.parent = grandparent
        set_render_context(saved)
    created = parent.children[count:]
    if not created:
        return
    del parent.children[count:]
    index = parent.children.index(anchor) + (0 if before else 1)
    parent.children[index:index] = created


def fire_component_hooks(ctx: AppContext, demo: gr.Blocks, tabs: dict[str, Block]) -> None:
    """`before_component` then `after_component` for every component of the built page (see module docstring)."""
    if not _has_component_hooks(ctx):
        return
    runner_of: dict[int, Any] = {}
    for kind, tab in tabs.items():
        for block in _descendants(tab):
            runner_of[block._id] = ctx.scripts.for_kind(kind)
    components = [b for b in list(demo.blocks.values()) if isinstance(b, gr.components.Component)]
    for component in components:
        parent = component.parent
        kwargs = component_kwargs(component)
        runner = runner_of.get(component._id)

        def fire(hook: str, component: Any = component, runner: Any = runner, kwargs: dict[str, Any] = kwargs
                 ) -> None:
            if runner is not None:
                getattr(runner, hook)(component, **kwargs)
            else:
                ctx.callbacks.fire_guarded(hook, layout_guard, component, **kwargs)

        if parent is None or isinstance(parent, gr.Blocks):
            fire("before_component")
            fire("after_component")
            continue
        _placed(parent, component, lambda: fire("before_component"), before=True)
        _placed(parent, component, lambda: fire("after_component"), before=False)


def extension_assets(ctx: AppContext) -> tuple[list[tuple[str, bool]], list[str]]:
    """(`[(javascript source, is_module)]`, `[css]`) of the enabled extensions, in load order."""
    scripts: list[tuple[str, bool]] = []
    styles: list[str] = []
    for extension in ctx.extensions:
        if not extension.enabled:
            continue
        for path in extension.javascript_files():
            text = _read(path)
            if text is not None:
                scripts.append((text, path.suffix == ".mjs"))
        css = extension.stylesheet()
        if css is not None:
            text = _read(css)
            if text is not None:
                styles.append(text)
    return scripts, styles


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("Extension asset %s not sent to the page: %s", path, exc)
        return None
