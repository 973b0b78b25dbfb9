"""The send-to registry of A1111 `modules.infotext_utils` (`generation_parameters_copypaste`) for the page being built.

A1111 keeps module lists: `paste_fields` (tab name → destination image and fields, filled by `add_paste_fields` while
the tabs are laid out) and `registered_param_bindings` (`register_paste_params_button(ParamBinding(...))`), connected
by `connect_paste_params_buttons()` near the end of `create_ui`. Image browsers and info tabs create their buttons
with `create_buttons(["txt2img", "img2img", "inpaint", "extras"])` and bind them to their image and infotext.

Here `build_ui` opens a registry per app (`begin`) once txt2img, img2img and Extras exist, with those tabs as
destinations — the same components the app's own Send-to buttons fill (`modules.ui.app.wire_send_to`): the
destination image, the tab's fields pasted by name from the infotext (`modules.ui.paste.updates_from_infotext`
with `for_send`, so `send_seed`/`send_size` apply), the img2img sub-tab and mode, and the top-level tab selected.
Extension tabs built afterwards (`ui_tabs`) register bindings; `connect()` wires every binding not wired yet (the
page calls it after all tabs; an extension may call it earlier). A binding to a tab without a destination is
logged and skipped. Tabs built before the registry opens (Extras' result buttons) queue their bindings with
`register_early(ctx, binding)`; `begin` adopts them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.ui.gallery import selected_image
from modules.ui.paste import updates_from_infotext

log = logging.getLogger(__name__)


@dataclass
class ParamBinding:
    """One send-to button (A1111 `ParamBinding`): clicking `paste_button` sends `source_image_component`'s image and
    `source_text_component`'s infotext (or the fields of tab `source_tabname`) to tab `tabname`."""

    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str | None = None
    override_settings_component: Any = None
    paste_field_names: list[str] = field(default_factory=list)


@dataclass
class Destination:
    """Where a send goes: the top-level tab, its image slot, its fields (by name, the app's tabs) or A1111 field
    pairs `(component, infotext label or fn(params))` (tabs extensions add with `add_paste_fields`)."""

    tab_id: str | None
    image: Any = None
    fields: dict[str, Any] = field(default_factory=dict)
    pairs: list[tuple[Any, Any]] = field(default_factory=list)
    sub_tabs: Any = None
    sub_id: str | None = None
    mode: Any = None
    mode_index: int = 0
    override_settings_component: Any = None


@dataclass
class SendToRegistry:
    """The destinations and bindings of one app's page."""

    ctx: AppContext
    tabs: Any
    destinations: dict[str, Destination]
    bindings: list[ParamBinding] = field(default_factory=list)
    connected: set[int] = field(default_factory=set)

    def add_destination(self, tabname: str, init_img: Any, fields: Any, override_settings_component: Any = None
                        ) -> None:
        """A1111 `add_paste_fields(tabname, init_img, fields, override_settings_component)`; a tab the app built
        keeps its own fields and gets `fields` (pairs) in addition."""
        pairs = list(fields or []) if not isinstance(fields, dict) else list(fields.items())
        known = self.destinations.get(tabname)
        if known is not None:
            known.pairs.extend(pairs)
            known.image = known.image if init_img is None else init_img
            return
        self.destinations[tabname] = Destination(None, init_img, pairs=pairs,
                                                 override_settings_component=override_settings_component)

    def connect(self) -> None:
        """Wire every registered binding not wired yet (must run inside the page's `gr.Blocks`)."""
        for binding in list(self.bindings):
            if id(binding) in self.connected:
                continue
            self.connected.add(id(binding))
            destination = self.destinations.get(binding.tabname)
            if destination is None:
                log.warning("A send-to button for tab %r was not connected: this web UI has no such tab (it has %s)",
                            binding.tabname, ", ".join(self.destinations))
                continue
            self._wire(binding, destination)

    def _wire(self, binding: ParamBinding, dest: Destination) -> None:
        source_fields = self._source_fields(binding, dest)
        image, text = binding.source_image_component, binding.source_text_component
        inputs: list[Any] = [c for c in (image, text) if c is not None]
        index = _gallery_index(image) if isinstance(image, gr.Gallery) else None
        if index is not None:
            inputs.append(index)
        names = list(source_fields)
        inputs += [source_fields[n] for n in names]
        outputs = [self.tabs, *([dest.image] if dest.image is not None and image is not None else []),
                   *dict.fromkeys([*dest.fields.values(), *(c for c, _ in dest.pairs)])]
        outputs += [c for c in (dest.sub_tabs, dest.mode) if c is not None]

        def send(*values: Any) -> dict[Any, Any]:
            rest = list(values)
            sent_image = rest.pop(0) if image is not None else None
            sent_text = rest.pop(0) if text is not None else ""
            if index is not None:
                sent_image = selected_image(sent_image, rest.pop(0))
            return self.updates(dest, sent_image, str(sent_text or ""), dict(zip(names, rest, strict=True)),
                                has_image=image is not None)

        binding.paste_button.click(send, inputs, outputs, queue=False)

    def _source_fields(self, binding: ParamBinding, dest: Destination) -> dict[str, Any]:
        """Fields of tab `source_tabname` copied by name to the same-named fields of the destination (A1111 copies
        `paste_field_names` between tabs)."""
        source = self.destinations.get(binding.source_tabname or "")
        if source is None:
            return {}
        wanted = binding.paste_field_names or list(source.fields)
        return {n: source.fields[n] for n in wanted if n in source.fields and n in dest.fields}

    def updates(self, dest: Destination, image: Any, text: str, copied: dict[str, Any], *, has_image: bool
                ) -> dict[Any, Any]:
        """What one click changes (the same as the app's own Send-to buttons)."""
        if isinstance(image, str):
            from PIL import Image

            image = Image.open(image)
        if has_image and image is None and dest.image is not None:
            raise gr.Error("There is no image to send")
        out: dict[Any, Any] = {}
        if dest.tab_id is not None:
            out[self.tabs] = gr.Tabs(selected=dest.tab_id)
        if dest.image is not None and image is not None:
            out[dest.image] = image
        if dest.sub_tabs is not None:
            out[dest.sub_tabs] = gr.Tabs(selected=dest.sub_id)
        if dest.mode is not None:
            out[dest.mode] = dest.mode_index
        if text and dest.fields:
            out.update(updates_from_infotext(self.ctx, text, dest.fields, for_send=True))
        for name, value in copied.items():
            out[dest.fields[name]] = value
        if text and dest.pairs:
            from modules.images import parse_infotext

            params = parse_infotext(text)
            for component, key in dest.pairs:
                value = key(params) if callable(key) else params.get(key)
                if value is not None:
                    out[component] = value
        return out


def _gallery_index(gallery: gr.Gallery) -> Any:
    """A state following the gallery's selected entry (A1111 reads it in the page)."""
    index = gr.State(0)

    def remember(evt: gr.SelectData) -> int:
        return int(evt.index) if isinstance(evt.index, int) else 0

    gallery.select(remember, None, index, queue=False)
    return index


class _Registries:
    """Registry of each running app's page registry (weakly keyed by the app)."""

    def __init__(self) -> None:
        self._items: list[tuple[weakref.ref[AppContext], SendToRegistry]] = []
        self._pending: list[tuple[weakref.ref[AppContext], ParamBinding]] = []
        self._lock = threading.Lock()

    def queue(self, ctx: AppContext, binding: ParamBinding) -> None:
        """Keep `binding` until `ctx`'s registry opens (a tab built before `begin`)."""
        with self._lock:
            self._pending.append((weakref.ref(ctx), binding))

    def take_pending(self, ctx: AppContext) -> list[ParamBinding]:
        """The bindings queued for `ctx` (removed from the queue)."""
        with self._lock:
            mine = [b for r, b in self._pending if r() is ctx]
            self._pending = [(r, b) for r, b in self._pending if r() is not None and r() is not ctx]
            return mine

    def set(self, ctx: AppContext, registry: SendToRegistry) -> None:
        with self._lock:
            self._items = [(r, g) for r, g in self._items if r() is not None and r() is not ctx]
            self._items.append((weakref.ref(ctx), registry))

    def get(self, ctx: AppContext) -> SendToRegistry | None:
        with self._lock:
            return next((g for r, g in self._items if r() is ctx), None)


REGISTRIES = _Registries()


def begin(ctx: AppContext, tabs: Any, destinations: dict[str, Destination]) -> SendToRegistry:
    """Open the page's send-to registry (A1111 `paste_fields` of the built-in tabs)."""
    registry = SendToRegistry(ctx, tabs, dict(destinations))
    registry.bindings.extend(REGISTRIES.take_pending(ctx))
    REGISTRIES.set(ctx, registry)
    return registry


def register_early(ctx: AppContext, binding: ParamBinding) -> None:
    """A1111 `register_paste_params_button` for a tab laid out before the destinations exist (Extras' result
    buttons): queued until the page's registry opens (`begin`), then wired by its `connect()`."""
    REGISTRIES.queue(ctx, binding)


def registry_for(ctx: AppContext) -> SendToRegistry:
    """The registry of `ctx`'s page; RuntimeError when the page is not being built (e.g. `--nowebui`)."""
    registry = REGISTRIES.get(ctx)
    if registry is None:
        raise RuntimeError("send-to buttons can only be created while the web UI page is built (in ui_tabs or a "
                           "script's ui()); this app has no page")
    return registry


def create_buttons(tabs_list: list[str]) -> dict[str, gr.Button]:
    """A1111 `create_buttons`: one "Send to <tab>" button per tab name (`elem_id="<tab>_tab"`), by name."""
    return {tab: gr.Button(f"Send to {tab}", elem_id=f"{tab}_tab") for tab in tabs_list}
