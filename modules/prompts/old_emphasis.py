"""A1111's pre-1.0 prompt tokenization, used with the `use_old_emphasis_implementation` setting.

Behaviour source: A1111 `modules/sd_hijack_clip_old.py` (`process_text_old`, `forward_old`) and the `token_mults`
table of `FrozenCLIPEmbedderWithCustomWords`. What differs from `modules.prompts.chunking.tokenize_prompt`:

- the prompt is not parsed for attention: the whole text is tokenized as it is, so `(word:1.3)`, `\\(` escapes and
  `BREAK` are plain text (the `:1.3` becomes tokens);
- instead, every vocabulary token made of or containing brackets changes a running weight: `(` multiplies it by
  1.1, `)` divides by 1.1, `[` divides by 1.1, `]` multiplies (a token such as `((` counts each character); such a
  token is dropped from the prompt, and the weight applies to every following token until it changes again, so an
  unclosed bracket weights the rest of the prompt. With emphasis "None" the bracket tokens stay as text;
- one chunk only: tokens beyond 75 are cut off (A1111 prints a "too many input tokens" warning), no comma
  backtracking; textual-inversion vectors are placed where their trigger was, weighted like the text around them;
- the token count is that of the whole prompt, before the cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modules.prompts.chunking import (
    CHUNK_LENGTH,
    EMBEDDING_PLACEHOLDER_ID,
    EmbeddingFix,
    EmbeddingLookup,
    PromptChunk,
    PromptTokenizer,
)

BRACKET_FACTOR = 1.1


def bracket_multipliers(vocabulary: Mapping[str, int]) -> dict[int, float]:
    """Token id → weight factor of every vocabulary entry with brackets whose factor is not 1 (A1111
    `token_mults`)."""
    out: dict[int, float] = {}
    for text, ident in vocabulary.items():
        if not any(c in text for c in "()[]"):
            continue
        mult = 1.0
        for c in text:
            if c in "(]":
                mult *= BRACKET_FACTOR
            elif c in ")[":
                mult /= BRACKET_FACTOR
        if mult != 1.0:
            out[int(ident)] = mult
    return out


_TABLES: dict[int, tuple[Mapping[str, int], dict[int, float]]] = {}
"""id(vocabulary) → (the vocabulary, kept alive so the id stays its own; its bracket weights)."""


def _cached_multipliers(tokenizer: PromptTokenizer) -> dict[int, float]:
    vocabulary: Mapping[str, int] = getattr(tokenizer, "encoder", {})
    entry = _TABLES.get(id(vocabulary))
    if entry is None or entry[0] is not vocabulary:
        entry = _TABLES[id(vocabulary)] = (vocabulary, bracket_multipliers(vocabulary))
    return entry[1]


def tokenize_prompt_old(prompt: str, tokenizer: PromptTokenizer, *, emphasis: str = "Original",
                        embedding_lookup: EmbeddingLookup | None = None,
                        chunk_length: int = CHUNK_LENGTH) -> tuple[list[PromptChunk], int]:
    """One chunk (BOS + 75 + EOS, EOS-padded) of `prompt` and its token count, the pre-1.0 way (see module
    docstring). `tokenizer` must expose its vocabulary as `encoder` (token text → id) for the bracket weights."""
    token_mults = _cached_multipliers(tokenizer) if emphasis != "None" else {}
    tokens = tokenizer.encode_batch([prompt])[0]
    remade: list[int] = []
    weights: list[float] = []
    fixes: list[EmbeddingFix] = []
    mult = 1.0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        found = embedding_lookup(tokens, i) if embedding_lookup is not None else None
        change = token_mults.get(token)
        if change is not None:
            mult *= change
            i += 1
        elif found is None:
            remade.append(token)
            weights.append(mult)
            i += 1
        else:
            embedding, trigger_length = found
            count = int(embedding.vector_count)
            fixes.append(EmbeddingFix(len(remade), embedding))
            remade += [EMBEDDING_PLACEHOLDER_ID] * count
            weights += [mult] * count
            i += trigger_length
    token_count = len(remade)
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    body = (remade + [eos] * (chunk_length - len(remade)))[:chunk_length]
    body_weights = (weights + [1.0] * (chunk_length - len(weights)))[:chunk_length]
    chunk = PromptChunk([bos, *body, eos], [1.0, *body_weights, 1.0],
                        [fix for fix in fixes if fix.offset < chunk_length])
    return [chunk], token_count


def tokenize_prompts_old(prompts: Sequence[str], tokenizer: PromptTokenizer, *, emphasis: str = "Original",
                         embedding_lookup: EmbeddingLookup | None = None) -> tuple[list[list[PromptChunk]], int]:
    """`tokenize_prompt_old` for a batch; returns the chunks and the largest token count."""
    batch: list[list[PromptChunk]] = []
    largest = 0
    for prompt in prompts:
        chunks, count = tokenize_prompt_old(prompt, tokenizer, emphasis=emphasis, embedding_lookup=embedding_lookup)
        batch.append(chunks)
        largest = max(largest, count)
    return batch, largest
