"""Prompt editing and alternation schedules, against A1111's documented results.

Expected values: A1111 `get_learned_conditioning_prompt_schedules` doctests (1.6+, with the hires-pass timeline)
and `a1111-features.md` §5. Results are `(end_at_step, text)` tuples.
"""

from __future__ import annotations

import pytest

from modules.prompts import get_learned_conditioning_prompt_schedules, prompt_schedule
from modules.prompts.schedules import parse_schedule_tree


def g(prompt: str, steps: int = 10, hires: int | None = None, old: bool = False) -> list[list]:
    return [[step, text] for step, text in prompt_schedule(prompt, steps, hires, old)]


def every_step(pattern: list[str], steps: int = 10) -> list[list]:
    return [[step, pattern[(step - 1) % len(pattern)]] for step in range(1, steps + 1)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("test", [[10, "test"]]),
        ("a [b:3]", [[3, "a "], [10, "a b"]]),
        ("a [b: 3]", [[3, "a "], [10, "a b"]]),
        ("a [[[b]]:2]", [[2, "a "], [10, "a [[b]]"]]),
        ("[(a:2):3]", [[3, ""], [10, "(a:2)"]]),
        ("a [b : c : 1] d", [[1, "a b  d"], [10, "a  c  d"]]),
        ("a[b:[c:d:2]:1]e", [[1, "abe"], [2, "ace"], [10, "ade"]]),
        ("a [unbalanced", [[10, "a [unbalanced"]]),
        ("a [b:.5] c", [[5, "a  c"], [10, "a b c"]]),
        ("((a][:b:c [d:3]", [[3, "((a][:b:c "], [10, "((a][:b:c d"]]),
    ],
)
def test_a1111_documented_schedules(prompt, expected):
    assert g(prompt) == expected


def test_alternation_per_step_including_empty_options():
    assert g("[a|(b:1.1)]") == every_step(["a", "(b:1.1)"])
    assert g("[fe|]male") == every_step(["female", "male"])
    assert g("[fe|||]male") == every_step(["female", "male", "male", "male"])


def test_hires_pass_timeline():
    assert g("a [b:.5] c", 10, 10) == [[10, "a b c"]]
    assert g("a [b:1.5] c", 10, 10) == [[5, "a  c"], [10, "a b c"]]
    # integers count on from the first pass: step 15 overall = step 5 of the hires pass
    assert g("a [b:15] c", 10, 10) == [[5, "a  c"], [10, "a b c"]]
    assert g("[x:y:3]", 10, 10) == [[10, "y"]]


def test_old_scheduling_uses_one_timeline():
    assert g("a [b:.5] c", 10, 20, old=True) == [[5, "a  c"], [10, "a b c"]]
    assert g("[x:y:3]", 10, None, old=True) == [[3, "x"], [10, "y"]]
    # old rule: a value of 1.0 or more is a step even with a decimal point
    assert g("[x:y:3.0]", 10, None, old=True) == [[3, "x"], [10, "y"]]


def test_decimal_point_means_fraction_in_new_scheduling():
    assert g("[x:y:3.0]") == [[10, "x"]]  # 3.0 × 10 steps, clamped to 10
    assert g("[x:y:0.25]", 20) == [[5, "x"], [20, "y"]]
    assert g("[x:y:1e1]", 20) == [[10, "x"], [20, "y"]]  # no decimal point: absolute step


def test_switch_at_or_before_zero_uses_the_second_text_throughout():
    assert g("a [b:c:-5]") == [[10, "a c"]]
    assert g("[b:c:0]") == [[10, "c"]]
    assert g("[b:c:0.05]") == [[10, "c"]]  # int(0.5) = 0


def test_switch_beyond_the_last_step_keeps_the_first_text():
    assert g("[b:c:25]") == [[10, "b"]]


def test_nested_schedules_and_alternation_collect_all_steps():
    assert g("[[a|b]:3]", 4) == [[1, ""], [2, ""], [3, ""], [4, "b"]]
    assert g("[x:[y:z:0.8]:0.3]") == [[3, "x"], [8, "y"], [10, "z"]]


def test_remove_after_and_emphasis_inside():
    assert g("a [(b:1.3) c::4] d") == [[4, "a (b:1.3) c d"], [10, "a  d"]]


def test_spaces_around_the_number_are_dropped():
    assert g("[ red : green : 0.5 ]") == [[5, " red "], [10, " green "]]


def test_grammar_failures_are_literal():
    assert g("a|b [c:d:3]") == [[10, "a|b [c:d:3]"]]  # `|` outside an alternation
    assert g("[a|b [c:3]") == [[10, "[a|b [c:3]"]]
    assert g("[c:3] x\\") == [[10, "[c:3] x\\"]]  # dangling backslash
    assert g("(a|b)") == [[10, "(a|b)"]]


def test_invalid_elements_are_stray_text_but_others_still_parse():
    assert g("[a:b] [c:3]") == [[3, "[a:b] "], [10, "[a:b] c"]]
    assert g("(a:b:c) [c:3]") == [[3, "(a:b:c) "], [10, "(a:b:c) c"]]
    assert g("[a:b:c:3] [x|y]", 2) == [[1, "[a:b:c:3] x"], [2, "[a:b:c:3] y"]]


def test_escaped_brackets_are_plain_text():
    assert g("\\[a:b:3\\]") == [[10, "\\[a:b:3\\]"]]
    assert g("[\\(a\\):3]") == [[3, ""], [10, "\\(a\\)"]]


def test_batch_api_keeps_order_and_duplicates():
    schedules = get_learned_conditioning_prompt_schedules(["a [b:2]", "c", "a [b:2]"], 4)
    assert schedules[0] == schedules[2] == [(2, "a "), (4, "a b")]
    assert schedules[1] == [(4, "c")]


def test_parse_tree_none_on_grammar_failure():
    assert parse_schedule_tree("a | b") is None
    assert parse_schedule_tree("plain") == ["plain"]
