"""Hostile prompts: every entry point returns a result or raises `PromptError`, never hangs or overflows the stack.

The `timeout` marks are hang guards (the work is linear and takes well under a second), not speed measurements.
"""

from __future__ import annotations

import random

import pytest

from modules.prompts import (
    PromptError,
    count_prompt_tokens,
    get_tokenizer,
    parse_prompt,
    parse_prompt_attention,
    prompt_schedule,
    split_and,
    strip_comments,
    tokenize_prompt,
)

TK = get_tokenizer("clip")
DEEP = 100_000
MEGABYTE = 1_000_000


def megabyte_of(pattern: str) -> str:
    return (pattern * (MEGABYTE // len(pattern) + 1))[:MEGABYTE]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "prompt",
    [
        megabyte_of("masterpiece, (best quality:1.2), [a:b:0.5] [x|y] <lora:z:1> AND "),
        megabyte_of(" "),
        megabyte_of("(["),
        megabyte_of("<a:"),
        megabyte_of("[a:"),
        megabyte_of("\\"),
    ],
    ids=["mixed", "spaces", "open-brackets", "open-tags", "open-schedules", "backslashes"],
)
def test_one_megabyte_prompts_finish(prompt):
    text, _networks = parse_prompt(prompt)
    subprompts = split_and(text)
    strip_comments(prompt)
    schedule = prompt_schedule(subprompts[0].text, 20)
    assert schedule[-1].end_at_step == 20
    try:
        pieces = parse_prompt_attention(schedule[-1].text)
    except PromptError:
        return
    assert pieces


@pytest.mark.timeout(60)
def test_megabyte_of_words_tokenizes():
    rng = random.Random(0)
    prompt = " ".join("".join(rng.choice("abcdefghij") for _ in range(8)) for _ in range(MEGABYTE // 9))
    chunks, count = tokenize_prompt(prompt, TK)
    assert count == sum(75 for _ in chunks[:-1]) + sum(t != 49407 for t in chunks[-1].tokens[1:-1])


@pytest.mark.timeout(60)
def test_megabyte_single_word_tokenizes():
    ids = TK.encode("a" * MEGABYTE)
    assert len(ids) > 0 and set(ids) <= set(range(49408))


@pytest.mark.timeout(60)
def test_deeply_nested_parentheses_overflow_to_a_clear_error():
    prompt = "(" * DEEP + "x" + ")" * DEEP
    with pytest.raises(PromptError, match="not a finite number"):
        parse_prompt_attention(prompt)
    assert prompt_schedule(prompt, 10) == [(10, prompt)]
    assert count_prompt_tokens(prompt, TK)[0] > 0  # the counter falls back to literal text


@pytest.mark.timeout(60)
def test_deeply_nested_square_brackets_underflow_to_zero_weight():
    prompt = "[" * DEEP + "x" + "]" * DEEP
    ((text, weight),) = parse_prompt_attention(prompt)
    assert text == "x" and 0.0 <= weight < 1e-300
    assert prompt_schedule(prompt, 10) == [(10, prompt)]


@pytest.mark.timeout(60)
def test_deeply_nested_schedules():
    depth = 20_000
    prompt = "[a:" * depth + "b" + ":3]" * depth
    schedule = prompt_schedule(prompt, 10)
    assert schedule == [(3, "a"), (10, "b")]


@pytest.mark.timeout(60)
def test_unbalanced_brackets_everywhere():
    for prompt in ["(" * DEEP, "]" * DEEP, "[" * DEEP + "x", "x" + ")" * DEEP, "([)]" * (DEEP // 4)]:
        assert prompt_schedule(prompt, 10) == [(10, prompt)]
        parse_prompt_attention(prompt)


@pytest.mark.timeout(60)
def test_many_unclosed_brackets_with_text_is_refused_clearly():
    with pytest.raises(PromptError, match="too many nested or unclosed brackets"):
        parse_prompt_attention("(a" * 50_000)


def test_huge_and_invalid_weights():
    assert parse_prompt_attention("(x:1e309)") == [("x:1e309", 1.1)]  # not a weight in A1111's syntax
    with pytest.raises(PromptError, match="not a finite number"):
        parse_prompt_attention("(x:1" + "0" * 400 + ")")
    with pytest.raises(PromptError, match="invalid emphasis weight"):
        parse_prompt_attention("(x:...)")


def test_extreme_schedule_numbers():
    assert prompt_schedule("[a:b:-5]", 10) == [(10, "b")]
    assert prompt_schedule("[a:b:1e309]", 10) == [(10, "a")]
    assert prompt_schedule("[a:b:-1e309]", 10) == [(10, "b")]
    assert prompt_schedule("[a:b:" + "9" * 400 + "]", 10) == [(10, "a")]
    assert prompt_schedule("[a:b:0." + "0" * 400 + "1]", 10) == [(10, "b")]


def test_alternation_with_many_options():
    prompt = "[" + "|".join(str(i) for i in range(10_000)) + "]"
    schedule = prompt_schedule(prompt, 5)
    assert [text for _step, text in schedule] == ["0", "1", "2", "3", "4"]
