"""Compatibility: A1111 `modules.generation_parameters_copypaste`, the pre-1.7 name of `modules.infotext_utils`
(A1111 keeps it as an alias module); everything is `modules.infotext_utils` (docs/extensions.md)."""

from __future__ import annotations

from typing import Any

from modules import infotext_utils as _infotext_utils
from modules.infotext_utils import (
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
    """The lazily resolved names of `modules.infotext_utils` (`ParamBinding`, `paste_fields`, …)."""
    return _infotext_utils.__getattr__(name)


__all__ = ["add_paste_fields", "bind_buttons", "connect_paste_params_buttons", "create_buttons",
           "image_from_url_text", "parse_generation_parameters", "quote", "register_paste_params_button", "unquote"]
