"""Compatibility: A1111 `modules.prompt_parser` for extensions (docs/extensions.md): `parse_prompt_attention(text)`
→ `[[text, weight], ...]` and `get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps=None,
use_old_scheduling=False)` → per prompt `[[end_at_step, text], ...]`, from this app's prompt parser."""

from __future__ import annotations

from typing import Any

from modules.prompts import parser, schedules


def parse_prompt_attention(text: str) -> list[list[Any]]:
    """(text, weight) pieces as A1111's lists (A1111 `parse_prompt_attention`)."""
    return [[piece.text, piece.weight] for piece in parser.parse_prompt_attention(text)]


def get_learned_conditioning_prompt_schedules(prompts: list[str], base_steps: int, hires_steps: int | None = None,
                                              use_old_scheduling: bool = False) -> list[list[list[Any]]]:
    """Each prompt's schedule as A1111's `[[end_at_step, text], ...]`."""
    return [[list(item) for item in schedule] for schedule in
            schedules.get_learned_conditioning_prompt_schedules(prompts, base_steps, hires_steps, use_old_scheduling)]


__all__ = ["get_learned_conditioning_prompt_schedules", "parse_prompt_attention"]
