"""Compatibility: A1111 `modules.infotext_utils` for extensions (re-exports of `modules.compat.infotext`;
docs/extensions.md)."""

from __future__ import annotations

from typing import Any

from modules.compat import infotext as _compat
from modules.compat.infotext import (
    add_paste_fields,
    bind_buttons,
    connect_paste_params_buttons,
    create_buttons,
    image_from_url_text,
    parse_generation_parameters,
    quote,
    register_paste_params_button,
    unquote,
)


def __getattr__(name: str) -> Any:
    """`ParamBinding`, `paste_fields`, `registered_param_bindings` (views over the app's page)."""
    return _compat.__getattr__(name)


__all__ = ["add_paste_fields", "bind_buttons", "connect_paste_params_buttons", "create_buttons",
           "image_from_url_text", "parse_generation_parameters", "quote", "register_paste_params_button", "unquote"]
