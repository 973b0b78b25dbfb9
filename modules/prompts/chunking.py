"""Prompt text → 77-token CLIP chunks with per-token weights and textual-inversion splice points.

Behaviour source: A1111 `modules/sd_hijack_clip.py` (`tokenize_line`, `empty_chunk`,
`get_target_prompt_token_count`) and `modules/textual_inversion/textual_inversion.py`
(`find_embedding_at_position`), restated in `a1111-features.md` §5 and §11.4:
- the prompt is split into weighted pieces (`parse_prompt_attention`, unless emphasis is "None"), each piece is
  tokenized on its own, and tokens fill chunks of 75; each chunk becomes BOS + 75 + EOS, padded with EOS (models that
  pad with 0, OpenCLIP, replace everything after the first EOS later: `pad_after_first_eos`);
- a bare `BREAK` closes the current chunk (padding it);
- `comma_padding_backtrack` N: when a chunk is full, the next token is not a comma and the last comma lies within
  the last N tokens, the tokens after that comma move to the next chunk;
- a textual-inversion trigger found by the lookup is replaced by its `vector_count` placeholder tokens (id 0),
  weighted like the text, never split across chunks; the chunk records `EmbeddingFix(offset, embedding)` with the
  offset counted without the BOS token;
- the token count reported is 75 per finished chunk plus the tokens of the last chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from modules.prompts.parser import BREAK_MARKER, WeightedText, parse_prompt_attention

CHUNK_LENGTH = 75
EMBEDDING_PLACEHOLDER_ID = 0


class TextualInversionEmbedding(Protocol):
    """What the chunker and the encoders need from an embedding (A1111 `Embedding`).

    `vec` is a tensor `[vector_count, dim]`, or a mapping such as `{"clip_l": ..., "clip_g": ...}` for SDXL.
    """

    name: str
    vector_count: int
    vec: Any


class EmbeddingLookup(Protocol):
    """Given the token ids of one prompt piece and a position, return `(embedding, trigger token count)` or None."""

    def __call__(self, tokens: Sequence[int], position: int) -> tuple[TextualInversionEmbedding, int] | None: ...


class PromptTokenizer(Protocol):
    """The tokenizer interface the chunker needs (`modules.prompts.tokenizer.ClipTokenizer` implements it)."""

    bos_id: int
    eos_id: int
    comma_id: int

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]: ...


@dataclass(frozen=True)
class EmbeddingFix:
    """Splice `embedding.vec` into the chunk at token `offset` (counted after BOS; A1111 `PromptChunkFix`)."""

    offset: int
    embedding: Any


@dataclass
class PromptChunk:
    """77 token ids (BOS + 75 + EOS), their weights and the embeddings to splice in."""

    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list[EmbeddingFix] = field(default_factory=list)


class TriggerIndex:
    """Textual-inversion trigger lookup (A1111 `EmbeddingDatabase.ids_lookup` / `find_embedding_at_position`).

    Built from `(trigger token ids, embedding)` pairs; at a position the longest trigger whose ids match wins.
    """

    def __init__(self, entries: Iterable[tuple[Sequence[int], TextualInversionEmbedding]] = ()) -> None:
        self._by_first: dict[int, list[tuple[tuple[int, ...], TextualInversionEmbedding]]] = {}
        for ids, embedding in entries:
            self.add(ids, embedding)

    def add(self, ids: Sequence[int], embedding: TextualInversionEmbedding) -> None:
        """Register one trigger; ids must be non-empty."""
        key = tuple(int(i) for i in ids)
        if not key:
            raise ValueError(f"embedding {embedding.name!r} has an empty trigger (its name tokenizes to nothing)")
        bucket = self._by_first.setdefault(key[0], [])
        bucket.append((key, embedding))
        bucket.sort(key=lambda entry: len(entry[0]), reverse=True)

    def __call__(self, tokens: Sequence[int], position: int) -> tuple[TextualInversionEmbedding, int] | None:
        candidates = self._by_first.get(tokens[position])
        if not candidates:
            return None
        for ids, embedding in candidates:
            if tuple(tokens[position : position + len(ids)]) == ids:
                return embedding, len(ids)
        return None


def empty_chunk(bos_id: int, eos_id: int, chunk_length: int = CHUNK_LENGTH) -> PromptChunk:
    """BOS followed by EOS × (chunk_length + 1), all weights 1 (used to even out batch chunk counts)."""
    return PromptChunk([bos_id] + [eos_id] * (chunk_length + 1), [1.0] * (chunk_length + 2), [])


def target_token_count(token_count: int, chunk_length: int = CHUNK_LENGTH) -> int:
    """The "max" of the UI token counter: token count rounded up to whole chunks (at least one)."""
    return math.ceil(max(token_count, 1) / chunk_length) * chunk_length


EMPHASIS_CHOICES = ("Original", "No norm", "Ignore", "None")


def tokenize_prompt(
    prompt: str,
    tokenizer: PromptTokenizer,
    *,
    emphasis: str = "Original",
    comma_padding_backtrack: int = 20,
    embedding_lookup: EmbeddingLookup | None = None,
    chunk_length: int = CHUNK_LENGTH,
) -> tuple[list[PromptChunk], int]:
    """Chunks of one prompt line and its token count (A1111 `tokenize_line`); see the module docstring.

    `emphasis="None"` keeps brackets (and BREAK) as literal text; any other mode parses them. Raises
    `PromptError` from the attention parser and `ValueError` for an unknown emphasis mode.
    """
    if emphasis not in EMPHASIS_CHOICES:
        raise ValueError(f"unknown emphasis mode {emphasis!r}; expected one of {', '.join(EMPHASIS_CHOICES)}")
    pieces = parse_prompt_attention(prompt) if emphasis != "None" else [WeightedText(prompt, 1.0)]
    tokenized = tokenizer.encode_batch([text for text, _ in pieces])
    bos, eos, comma = tokenizer.bos_id, tokenizer.eos_id, tokenizer.comma_id

    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    token_count = 0
    last_comma = -1

    def next_chunk(is_last: bool = False) -> None:
        nonlocal chunk, token_count, last_comma
        token_count += len(chunk.tokens) if is_last else chunk_length
        missing = chunk_length - len(chunk.tokens)
        if missing > 0:
            chunk.tokens += [eos] * missing
            chunk.multipliers += [1.0] * missing
        chunk.tokens = [bos, *chunk.tokens, eos]
        chunk.multipliers = [1.0, *chunk.multipliers, 1.0]
        last_comma = -1
        chunks.append(chunk)
        chunk = PromptChunk()

    for tokens, (text, weight) in zip(tokenized, pieces, strict=True):
        if emphasis != "None" and text == BREAK_MARKER.text and weight == BREAK_MARKER.weight:
            next_chunk()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(chunk.tokens)
            elif (
                comma_padding_backtrack != 0
                and len(chunk.tokens) == chunk_length
                and last_comma != -1
                and len(chunk.tokens) - last_comma <= comma_padding_backtrack
            ):
                cut = last_comma + 1
                moved_tokens, moved_weights = chunk.tokens[cut:], chunk.multipliers[cut:]
                del chunk.tokens[cut:], chunk.multipliers[cut:]
                next_chunk()
                chunk.tokens, chunk.multipliers = moved_tokens, moved_weights
            if len(chunk.tokens) == chunk_length:
                next_chunk()

            found = embedding_lookup(tokens, position) if embedding_lookup is not None else None
            if found is None:
                chunk.tokens.append(token)
                chunk.multipliers.append(weight)
                position += 1
                continue
            embedding, trigger_length = found
            vector_count = int(embedding.vector_count)
            if len(chunk.tokens) + vector_count > chunk_length:
                next_chunk()
            chunk.fixes.append(EmbeddingFix(len(chunk.tokens), embedding))
            chunk.tokens += [EMBEDDING_PLACEHOLDER_ID] * vector_count
            chunk.multipliers += [weight] * vector_count
            position += trigger_length

    if chunk.tokens or not chunks:
        next_chunk(is_last=True)
    return chunks, token_count


def tokenize_prompts(
    prompts: Sequence[str],
    tokenizer: PromptTokenizer,
    *,
    emphasis: str = "Original",
    comma_padding_backtrack: int = 20,
    embedding_lookup: EmbeddingLookup | None = None,
) -> tuple[list[list[PromptChunk]], int]:
    """`tokenize_prompt` for a batch, equal lines tokenized once; returns the chunks and the largest token count."""
    cache: dict[str, list[PromptChunk]] = {}
    batch: list[list[PromptChunk]] = []
    largest = 0
    for prompt in prompts:
        chunks = cache.get(prompt)
        if chunks is None:
            chunks, count = tokenize_prompt(
                prompt,
                tokenizer,
                emphasis=emphasis,
                comma_padding_backtrack=comma_padding_backtrack,
                embedding_lookup=embedding_lookup,
            )
            cache[prompt] = chunks
            largest = max(largest, count)
        batch.append(chunks)
    return batch, largest


def pad_after_first_eos(tokens: list[int], eos_id: int, pad_id: int) -> list[int]:
    """Replace every token after the first EOS with `pad_id` (A1111 `process_tokens` for OpenCLIP, pad 0)."""
    if eos_id == pad_id or eos_id not in tokens:
        return list(tokens)
    first = tokens.index(eos_id)
    return tokens[: first + 1] + [pad_id] * (len(tokens) - first - 1)
