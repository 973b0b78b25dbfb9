"""The UI token counter "N/75" (A1111 `modules/ui.py::update_token_counter`).

Rules (A1111 behaviour): comments are stripped (the built-in comments script hooks the counter), extra-network
tags are removed, a positive prompt is split at `AND`, every sub-prompt is expanded into its prompt-editing
schedule for `steps`, and the longest resulting text decides: `(its token count, that count rounded up to whole
75-token chunks)`. A prompt that does not parse is counted literally instead of raising while the user types.
"""

from __future__ import annotations

from modules.prompts.chunking import EmbeddingLookup, PromptTokenizer, target_token_count, tokenize_prompt
from modules.prompts.errors import PromptError
from modules.prompts.extra_network_tags import parse_prompt
from modules.prompts.parser import get_multicond_prompt_list, strip_comments
from modules.prompts.schedules import get_learned_conditioning_prompt_schedules


def count_prompt_tokens(
    text: str,
    tokenizer: PromptTokenizer,
    *,
    steps: int = 20,
    is_positive: bool = True,
    emphasis: str = "Original",
    comma_padding_backtrack: int = 20,
    embedding_lookup: EmbeddingLookup | None = None,
    enable_comments: bool = True,
) -> tuple[int, int]:
    """`(token_count, max_length)` for the prompt box, e.g. `(12, 75)` or `(80, 150)`."""
    if enable_comments:
        text = strip_comments(text)
    text, _networks = parse_prompt(text)
    if is_positive:
        _indexes, subprompts = get_multicond_prompt_list([text])
    else:
        subprompts = [text]
    schedules = get_learned_conditioning_prompt_schedules(subprompts, steps)
    texts = [entry.text for schedule in schedules for entry in schedule]

    best = 0
    for candidate in texts:
        try:
            _chunks, count = tokenize_prompt(
                candidate,
                tokenizer,
                emphasis=emphasis,
                comma_padding_backtrack=comma_padding_backtrack,
                embedding_lookup=embedding_lookup,
            )
        except PromptError:
            _chunks, count = tokenize_prompt(
                candidate, tokenizer, emphasis="None", comma_padding_backtrack=comma_padding_backtrack
            )
        best = max(best, count)
    return best, target_token_count(best)


def format_token_counter(token_count: int, max_length: int) -> str:
    """The counter text shown in the UI: `"token_count/max_length"`."""
    return f"{token_count}/{max_length}"
