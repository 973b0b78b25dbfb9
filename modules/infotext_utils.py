"""Compatibility: A1111 `modules.infotext_utils` for extensions (re-exports of `modules.compat.infotext`;
docs/extensions.md)."""

from __future__ import annotations

from modules.compat.infotext import image_from_url_text, parse_generation_parameters, quote, unquote

__all__ = ["image_from_url_text", "parse_generation_parameters", "quote", "unquote"]
