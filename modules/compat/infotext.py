"""A1111 `modules.infotext_utils` (formerly `generation_parameters_copypaste`) names for extensions.

`parse_generation_parameters(x, skip_fields=None)` → A1111's dict ("Prompt", "Negative prompt", "Steps",
"Size-1", …; `skip_fields` defaults to the `infotext_skip_pasting` setting); `quote`, `unquote`;
`image_from_url_text`.

The send-to registry (`modules.ui.send_to`, one per app page): `create_buttons(tabs_list)` → `{tab: gr.Button}`,
`bind_buttons(buttons, image_component, generation_info_component)`, `register_paste_params_button(ParamBinding(
paste_button=, tabname=, source_text_component=, source_image_component=, source_tabname=))`,
`connect_paste_params_buttons()`, `add_paste_fields(tabname, init_img, fields, override_settings_component)`,
`paste_fields` (tab name → `{"init_img", "fields", "override_settings_component", "paste_field_names"}`) and
`registered_param_bindings`. A click sends the image and infotext to the tab as the app's own Send-to buttons do.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from typing import Any

from PIL import Image

from modules.compat.host import HOST
from modules.images import parse_infotext, quote, unquote


def parse_generation_parameters(x: str, skip_fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Parse an infotext the A1111 way (with the running app's `infotext_skip_pasting` when no fields given)."""
    if skip_fields is None:
        skip_fields = HOST.current().settings.get("infotext_skip_pasting") if HOST.running() else ()
    return parse_infotext(x, skip_fields=list(skip_fields or ()))


def image_from_url_text(filedata: Any) -> Image.Image | None:
    """An image from a `data:image/...;base64,` string, a Gradio file dict or a path (A1111 helper)."""
    if filedata is None:
        return None
    if isinstance(filedata, list):
        filedata = filedata[0] if filedata else None
        if filedata is None:
            return None
    if isinstance(filedata, dict):
        filedata = filedata.get("path") or filedata.get("name") or filedata.get("url")
    if isinstance(filedata, str) and filedata.startswith("data:image/"):
        return Image.open(io.BytesIO(base64.b64decode(filedata.split(",", 1)[1])))
    return Image.open(str(filedata)) if filedata else None


def _registry() -> Any:
    from modules.ui.send_to import registry_for

    return registry_for(HOST.current())


def create_buttons(tabs_list: list[str]) -> dict[str, Any]:
    """`{tab: gr.Button("Send to <tab>", elem_id="<tab>_tab")}` (A1111), created where the caller lays them out."""
    from modules.ui.send_to import create_buttons as make

    return make(list(tabs_list))


def register_paste_params_button(binding: Any) -> None:
    """Add a send-to binding to the page; it is wired by `connect_paste_params_buttons()` (the page calls it after
    every tab is built, as A1111's `create_ui` does)."""
    _registry().bindings.append(binding)


def bind_buttons(buttons: dict[str, Any], send_image: Any, send_generate_info: Any) -> None:
    """A1111's older form: bind each `{tab: button}` to an image component and an infotext component (or, given a
    tab name string, that tab's fields)."""
    from modules.ui.send_to import ParamBinding

    for tabname, button in buttons.items():
        text = send_generate_info if not isinstance(send_generate_info, str) else None
        source_tab = send_generate_info if isinstance(send_generate_info, str) else None
        register_paste_params_button(ParamBinding(button, tabname, source_text_component=text,
                                                  source_image_component=send_image, source_tabname=source_tab))


def connect_paste_params_buttons() -> None:
    """Wire every registered binding not wired yet (A1111)."""
    _registry().connect()


def add_paste_fields(tabname: str, init_img: Any, fields: Any, override_settings_component: Any = None) -> None:
    """Make `tabname` a send-to destination: its image component and `(component, infotext label or fn)` pairs."""
    _registry().add_destination(tabname, init_img, fields, override_settings_component)


def __getattr__(name: str) -> Any:
    """`paste_fields`, `registered_param_bindings` and `ParamBinding`, read from the running app's page."""
    if name == "ParamBinding":
        from modules.ui.send_to import ParamBinding

        return ParamBinding
    if name == "registered_param_bindings":
        return _registry().bindings
    if name == "paste_fields":
        return {tab: {"init_img": d.image, "fields": [(c, n) for n, c in d.fields.items()] + list(d.pairs),
                      "override_settings_component": d.override_settings_component, "paste_field_names": []}
                for tab, d in _registry().destinations.items()}
    raise AttributeError(f"module 'modules.infotext_utils' has no attribute {name!r} in this web UI")


SEND_TO_NAMES = ["add_paste_fields", "bind_buttons", "connect_paste_params_buttons", "create_buttons",
                 "register_paste_params_button"]

__all__ = ["image_from_url_text", "parse_generation_parameters", "quote", "unquote", *SEND_TO_NAMES]
