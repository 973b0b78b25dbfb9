"""The one exception type of `modules.prompts`.

Every rule in this package either returns a result or raises `PromptError` with a message that says what part of
the prompt was wrong; nothing here may hang, recurse without bound or leak a bare `ValueError`/`RecursionError`.
"""

from __future__ import annotations


class PromptError(ValueError):
    """A prompt that cannot be turned into weighted text (bad weight, overflowing emphasis, too complex)."""
