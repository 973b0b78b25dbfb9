"""Compatibility: A1111 `modules.errors` for extensions (docs/extensions.md): `report(message, exc_info=False)`,
`display(e, task)`, `display_once(e, task)`, `print_error_explanation(message)` log through this app's logging."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("extensions")


def report(message: str, *, exc_info: bool = False) -> None:
    """Log an error (with the current traceback when `exc_info`)."""
    log.error(message, exc_info=exc_info)


def display(e: BaseException, task: str, *, full_traceback: bool = False) -> None:
    log.error("%s: %s: %s", task, type(e).__name__, e, exc_info=(type(e), e, e.__traceback__))


def display_once(e: BaseException, task: str) -> None:
    display(e, task)


def print_error_explanation(message: str) -> None:
    log.error(message)


def run(code: Any, task: str) -> None:
    """Call `code()`, logging instead of raising (A1111 `errors.run`)."""
    try:
        code()
    except Exception as e:
        display(e, task)


__all__ = ["display", "display_once", "print_error_explanation", "report", "run"]
