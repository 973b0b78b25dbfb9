"""Emphasis parsing, BREAK, AND sub-prompts, comments and extra-network tags, against A1111's documented results.

Expected values come from A1111's `parse_prompt_attention` doctests and the syntax table in
`a1111-features.md` §5.
"""

from __future__ import annotations

import re

import pytest

from modules.prompts import PromptError, parse_prompt_attention, split_and, strip_comments
from modules.prompts.extra_network_tags import lora_tag, parse_prompt, parse_prompts
from modules.prompts.parser import emphasis_infotext, get_multicond_prompt_list


def pairs(text: str) -> list[list]:
    return [[piece.text, piece.weight] for piece in parse_prompt_attention(text)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("normal text", [["normal text", 1.0]]),
        ("an (important) word", [["an ", 1.0], ["important", 1.1], [" word", 1.0]]),
        ("(unbalanced", [["unbalanced", 1.1]]),
        ("\\(literal\\]", [["(literal]", 1.0]]),
        ("(unnecessary)(parens)", [["unnecessaryparens", 1.1]]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ["a ", 1.0],
                ["house", 1.5730000000000004],
                [" ", 1.1],
                ["on", 1.0],
                [" a ", 1.1],
                ["hill", 0.55],
                [", sun, ", 1.1],
                ["sky", 1.4641000000000006],
                [".", 1.1],
            ],
        ),
    ],
)
def test_a1111_documented_attention_examples(prompt, expected):
    assert pairs(prompt) == expected


def test_square_brackets_divide_and_nesting_multiplies():
    assert pairs("[x]") == [["x", 1 / 1.1]]
    assert pairs("((x))") == [["x", 1.1 * 1.1]]
    assert pairs("[[x]]") == [["x", 1 / 1.1 / 1.1]]
    assert pairs("([x])") == [["x", 1 / 1.1 * 1.1]]


def test_explicit_weight_with_spaces_and_signs():
    assert pairs("(x:1.3)") == [["x", 1.3]]
    assert pairs("(x: 1.3 )") == [["x", 1.3]]
    assert pairs("(x:-1)") == [["x", -1.0]]
    assert pairs("(x:.5)") == [["x", 0.5]]
    assert pairs("((x:2))") == [["x", 2 * 1.1]]
    # square brackets with a number are prompt editing syntax, not a weight
    assert pairs("[x:1.5]") == [["x:1.5", 1 / 1.1]]


def test_stray_closers_and_colons_are_literal():
    assert pairs("a) b] c:d") == [["a) b] c:d", 1.0]]
    assert pairs("x:1.2)") == [["x:1.2)", 1.0]]


def test_escapes_and_lone_backslash():
    assert pairs("\\\\") == [["\\", 1.0]]
    assert pairs("a\\bc") == [["abc", 1.0]]  # an unknown escape drops the backslash
    assert pairs("\\(x\\)") == [["(x)", 1.0]]


def test_unclosed_brackets_close_at_end_with_their_multiplier():
    assert pairs("a (b [c") == [["a ", 1.0], ["b ", 1.1], ["c", 1.1 / 1.1]]


def test_empty_prompt_and_empty_brackets():
    assert pairs("") == [["", 1.0]]
    assert pairs("()") == [["", 1.0]]


def test_break_marker_and_surrounding_whitespace():
    assert pairs("a BREAK b") == [["a", 1.0], ["BREAK", -1.0], ["b", 1.0]]
    assert pairs("a\nBREAK\n\nb") == [["a", 1.0], ["BREAK", -1.0], ["b", 1.0]]
    assert pairs("aBREAK b") == [["aBREAK b", 1.0]]  # not a whole word
    assert pairs("a break b") == [["a break b", 1.0]]  # upper case only


def test_break_inside_brackets_is_weighted_text_like_a1111():
    # A1111 multiplies the marker's -1 by the bracket, after which it no longer means "break"
    assert pairs("(a BREAK b)") == [["a", 1.1], ["BREAK", -1.1], ["b", 1.1]]


def test_invalid_weight_is_a_clear_error():
    with pytest.raises(PromptError, match=r"invalid emphasis weight '1\.2\.3'"):
        parse_prompt_attention("(x:1.2.3)")


def test_split_and_weights_and_whitespace():
    assert split_and("a cat AND a dog :1.2 AND x: -0.5") == [("a cat", 1.0), (" a dog", 1.2), (" x", -0.5)]
    assert split_and("(x:1.2) AND y:1.") == [("(x:1.2)", 1.0), (" y", 1.0)]
    assert split_and("ANDROID and AND") == [("ANDROID and", 1.0), ("", 1.0)]


def test_split_and_matches_the_a1111_weight_regex():
    reference = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")
    samples = ["a", "a:1", "a : 1.5 ", "a:1.2.3", "a:.5", "a:.", "x:+-5", "x:-5", " a b :2\n", "a:b:3", ":1", ""]
    for sample in samples:
        text, weight = reference.search(sample).groups()
        assert split_and(sample) == [(text, float(weight) if weight is not None else 1.0)], sample


def test_multicond_prompt_list_deduplicates():
    indexes, flat = get_multicond_prompt_list(["a AND b:2", "a AND c"])
    assert flat == ["a", " b", " c"]
    assert indexes == [[(0, 1.0), (1, 2.0)], [(0, 1.0), (2, 1.0)]]


def test_strip_comments():
    assert strip_comments("# whole line\na cat # tail\nb") == "\na cat \nb"
    assert strip_comments("a\n#c\nb") == "a\nb"


def test_emphasis_infotext():
    assert emphasis_infotext(["(a)"], "No norm") == "No norm"
    assert emphasis_infotext(["a"], "No norm") is None
    assert emphasis_infotext(["(a)"], "Original") is None


def test_extra_network_tags_removed_and_parsed():
    text, found = parse_prompt("a <lora:x:0.8> b <hypernet:h:1> <lora:y:te=0.5:unet=1:dyn=16> <no> <a:>")
    assert text == "a  b   <no> <a:>"
    assert [p.items for p in found["lora"]] == [["x", "0.8"], ["y", "te=0.5", "unet=1", "dyn=16"]]
    assert found["lora"][1].named == {"te": "0.5", "unet": "1", "dyn": "16"}
    assert found["hypernet"][0].positional == ["h", "1"]
    tag = lora_tag(found["lora"][1])
    assert (tag.name, tag.te_multiplier, tag.unet_multiplier, tag.dyn_dim) == ("y", 0.5, 1.0, 16)
    plain = lora_tag(found["lora"][0])
    assert (plain.te_multiplier, plain.unet_multiplier, plain.dyn_dim) == (0.8, 0.8, None)


def test_extra_network_tags_match_the_a1111_regex():
    reference = re.compile(r"<(\w+):([^>]+)>")
    samples = ["<<lora:x>", "<a:b<c:d>", "x<a:>>y", "<a:b:c=d=e>", "<1:2>>", "<é:x>", "<a b:c>", "<a:\nb>"]
    for sample in samples:
        text, found = parse_prompt(sample)
        assert text == reference.sub("", sample), sample
        expected = [(m.group(1), m.group(2).split(":")) for m in reference.finditer(sample)]
        assert [(name, p.items) for name, params in found.items() for p in params] == expected


def test_parse_prompts_takes_networks_from_first_prompt():
    texts, found = parse_prompts(["a <lora:x:1>", "b <lora:y:1>"])
    assert texts == ["a ", "b "]
    assert [p.items[0] for p in found["lora"]] == ["x"]


def test_lora_tag_bad_multiplier_is_clear():
    _text, found = parse_prompt("<lora:x:strong>")
    with pytest.raises(ValueError, match="te multiplier 'strong' is not a number"):
        lora_tag(found["lora"][0])
