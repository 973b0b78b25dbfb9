"""`use_old_emphasis_implementation`: A1111's pre-1.0 tokenization (`sd_hijack_clip_old.process_text_old`)."""

from __future__ import annotations

import pytest

from modules.prompts.chunking import tokenize_prompt
from modules.prompts.old_emphasis import bracket_multipliers, tokenize_prompt_old
from modules.prompts.tokenizer import get_tokenizer


def words_and_weights(prompt: str, emphasis: str = "Original") -> list[tuple[str, float]]:
    tokenizer = get_tokenizer("clip")
    [chunk], _count = tokenize_prompt_old(prompt, tokenizer, emphasis=emphasis)
    body = [(t, w) for t, w in zip(chunk.tokens[1:-1], chunk.multipliers[1:-1], strict=True)
            if t != tokenizer.eos_id]
    return [(tokenizer.decode([t]), round(w, 4)) for t, w in body]


def test_bracket_tokens_change_a_running_weight_and_are_dropped() -> None:
    assert words_and_weights("a (cat) dog") == [("a", 1.0), ("cat", 1.1), ("dog", 1.0)]
    assert words_and_weights("a ((cat)) [dog]") == [("a", 1.0), ("cat", 1.21), ("dog", round(1 / 1.1, 4))]
    assert words_and_weights("a (cat dog") == [("a", 1.0), ("cat", 1.1), ("dog", 1.1)]  # unclosed: the rest


def test_weight_syntax_break_and_none_emphasis_are_plain_text() -> None:
    words = [w for w, _ in words_and_weights("(cat:1.5) BREAK dog")]
    assert ":" in words and "break" in words and "1" in words
    assert ("(", 1.0) in words_and_weights("a (cat)", emphasis="None")


def test_one_chunk_cut_at_75_tokens_and_the_full_count() -> None:
    chunks, count = tokenize_prompt_old(" ".join(["cat"] * 100), get_tokenizer("clip"))
    assert len(chunks) == 1 and len(chunks[0].tokens) == 77 and count == 100
    new_chunks, _ = tokenize_prompt(" ".join(["cat"] * 100), get_tokenizer("clip"))
    assert len(new_chunks) == 2


def test_plain_prompts_tokenize_as_the_new_implementation() -> None:
    tokenizer = get_tokenizer("clip")
    old, _ = tokenize_prompt_old("a photo of a cat, sitting", tokenizer)
    new, _ = tokenize_prompt("a photo of a cat, sitting", tokenizer)
    assert old[0].tokens == new[0].tokens and old[0].multipliers == new[0].multipliers


@pytest.mark.parametrize(("text", "factor"), [("(</w>", 1.1), (")</w>", 1 / 1.1), ("[(</w>", 1.0), ("]]</w>", 1.21)])
def test_bracket_multipliers_count_every_bracket_of_a_token(text: str, factor: float) -> None:
    table = bracket_multipliers({text: 7, "cat</w>": 8})
    assert (table.get(7, 1.0) == pytest.approx(factor)) and 8 not in table
