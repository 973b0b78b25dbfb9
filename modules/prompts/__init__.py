"""Prompt text → structures: emphasis, prompt editing, AND, BREAK, extra-network tags, CLIP tokens and chunks.

Pure (no model access). Tensors are made from these structures by `modules.models.nn.text_encoders`.
"""

from modules.prompts.chunking import (
    CHUNK_LENGTH,
    EmbeddingFix,
    PromptChunk,
    TriggerIndex,
    empty_chunk,
    pad_after_first_eos,
    target_token_count,
    tokenize_prompt,
    tokenize_prompts,
)
from modules.prompts.errors import PromptError
from modules.prompts.extra_network_tags import ExtraNetworkParams, parse_prompt, parse_prompts
from modules.prompts.parser import (
    WeightedText,
    emphasis_infotext,
    get_multicond_prompt_list,
    parse_prompt_attention,
    split_and,
    strip_comments,
)
from modules.prompts.schedules import ScheduledText, get_learned_conditioning_prompt_schedules, prompt_schedule
from modules.prompts.token_counter import count_prompt_tokens
from modules.prompts.tokenizer import ClipTokenizer, get_tokenizer

__all__ = [
    "CHUNK_LENGTH",
    "ClipTokenizer",
    "EmbeddingFix",
    "ExtraNetworkParams",
    "PromptChunk",
    "PromptError",
    "ScheduledText",
    "TriggerIndex",
    "WeightedText",
    "count_prompt_tokens",
    "emphasis_infotext",
    "empty_chunk",
    "get_learned_conditioning_prompt_schedules",
    "get_multicond_prompt_list",
    "get_tokenizer",
    "pad_after_first_eos",
    "parse_prompt",
    "parse_prompt_attention",
    "parse_prompts",
    "prompt_schedule",
    "split_and",
    "strip_comments",
    "target_token_count",
    "tokenize_prompt",
    "tokenize_prompts",
]
