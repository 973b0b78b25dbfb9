"""Attention (emphasis) parsing, BREAK, composable `AND` sub-prompts and prompt comments, with A1111's semantics.

Sources (behaviour, not code): A1111 `modules/prompt_parser.py` (`parse_prompt_attention`, `re_AND`, `re_weight`,
`get_multicond_prompt_list`) and `modules/processing.py`/`scripts/comments.py` (`strip_comments`); the rules are
restated in `a1111-features.md` §5.

Rules implemented here:
- `(x)` multiplies the weight of `x` by 1.1, `[x]` by 1/1.1, `(x:w)` by `w` (`w` = `[+-]?[.0-9]+`, whitespace
  allowed around it); nesting multiplies. Brackets still open at the end of the prompt are closed there (their
  multiplier is applied to everything after them); a stray `)` / `]` / `:` is literal text.
- `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are literal characters; any other backslash is dropped.
- `BREAK` (upper case, a whole word) becomes a `BREAK_MARKER` piece `("BREAK", -1.0)` and the whitespace around it
  is removed. As in A1111, the marker's weight is multiplied by enclosing brackets, so `(a BREAK b)` yields the
  *word* "BREAK" with weight -1.1 rather than a chunk break (only a weight of exactly -1 means "break").
- Adjacent pieces with identical weights are merged; an empty prompt gives `[("", 1.0)]`.

Unlike A1111 every step is linear or budgeted: the per-bracket range multiplication (which A1111 performs naively)
is counted and a prompt whose brackets would need more than `MAX_EMPHASIS_WORK` multiplications raises
`PromptError`, as do weights that are not numbers or that overflow to infinity.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from modules.prompts.errors import PromptError

MAX_EMPHASIS_WEIGHT = 1e4
"""Largest |weight| accepted. A1111 has no bound, and 5,000 nested `(` give 1.1^5000 ≈ 1e206: finite, but the
weighted embedding overflows and the UNet returns NaN. Real prompts stay far below (weights above ~2 already ruin
the image)."""
ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
MAX_EMPHASIS_WORK = 1_000_000


class WeightedText(NamedTuple):
    """A piece of prompt text and the attention multiplier of its tokens."""

    text: str
    weight: float


BREAK_MARKER = WeightedText("BREAK", -1.0)

# One token of the attention syntax per match; alternatives in priority order (escapes, brackets, explicit
# weight close, plain text, a lone colon). Every alternative consumes at least one character and none
# backtracks across more than the `\s*` around a weight, so `finditer` is linear.
_ATTENTION_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]                       # escaped bracket or backslash -> literal character
    | \\                               # any other backslash -> dropped
    | \(
    | \[
    | :\s*([+-]?[.\d]+)\s*\)           # explicit weight closing a round bracket
    | \)
    | \]
    | [^\\()\[\]:]+                    # plain text
    | :
    """,
    re.X,
)
_BREAK_WORD = re.compile(r"\bBREAK\b")


def _split_breaks(text: str) -> list[str]:
    """Split plain text at the word BREAK, dropping the whitespace around each BREAK (A1111 `re_break`).

    Equivalent to `re.split(r"\\s*\\bBREAK\\b\\s*", text)` but linear: that pattern is quadratic on long
    whitespace runs, so the whitespace is stripped from the neighbouring parts instead.
    """
    parts = _BREAK_WORD.split(text)
    if len(parts) == 1:
        return parts
    last = len(parts) - 1
    out = []
    for index, part in enumerate(parts):
        if index > 0:
            part = part.lstrip()
        if index < last:
            part = part.rstrip()
        out.append(part)
    return out


def _parse_weight(raw: str, source: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise PromptError(f"invalid emphasis weight {raw!r} in prompt near {source!r}") from None
    return value


def parse_prompt_attention(text: str) -> list[WeightedText]:
    """Split `text` into (text, weight) pieces following A1111's emphasis rules (see the module docstring).

    >>> parse_prompt_attention("an (important) word")
    [WeightedText(text='an ', weight=1.0), WeightedText(text='important', weight=1.1), WeightedText(text=' word', weight=1.0)]

    Raises `PromptError` for a weight that is not a number (`(x:1.2.3)`), a weight that is not finite (explicit or
    through deep nesting), or bracket structures needing more than `MAX_EMPHASIS_WORK` multiplications.
    """
    texts: list[str] = []
    weights: list[float] = []
    round_open: list[int] = []
    square_open: list[int] = []
    work = 0

    def check_budget(extra: int) -> None:
        if work + extra > MAX_EMPHASIS_WORK:
            raise PromptError(
                "prompt has too many nested or unclosed brackets to weigh "
                f"(more than {MAX_EMPHASIS_WORK} weight updates); close or remove some brackets"
            )

    def multiply_from(start: int, multiplier: float) -> None:
        nonlocal work
        count = len(weights) - start
        check_budget(count)
        work += count
        for index in range(start, len(weights)):
            weights[index] *= multiplier

    for match in _ATTENTION_TOKEN.finditer(text):
        token = match.group(0)
        explicit = match.group(1)
        if token[0] == "\\":
            texts.append(token[1:])
            weights.append(1.0)
        elif token == "(":
            round_open.append(len(weights))
        elif token == "[":
            square_open.append(len(weights))
        elif explicit is not None and round_open:
            multiply_from(round_open.pop(), _parse_weight(explicit, text[max(0, match.start() - 40) : match.end()]))
        elif token == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for index, part in enumerate(_split_breaks(token)):
                if index > 0:
                    texts.append(BREAK_MARKER.text)
                    weights.append(BREAK_MARKER.weight)
                texts.append(part)
                weights.append(1.0)

    unclosed_work = sum(len(weights) - start for start in round_open) + sum(len(weights) - s for s in square_open)
    check_budget(unclosed_work)  # fail before doing any of it
    for start in round_open:
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply_from(start, SQUARE_MULTIPLIER)

    if not texts:
        return [WeightedText("", 1.0)]

    merged: list[WeightedText] = []
    run: list[str] = [texts[0]]
    run_weight = weights[0]
    for piece, weight in zip(texts[1:], weights[1:], strict=True):
        if weight == run_weight:
            run.append(piece)
            continue
        merged.append(WeightedText("".join(run), run_weight))
        run, run_weight = [piece], weight
    merged.append(WeightedText("".join(run), run_weight))

    for item in merged:
        if not math.isfinite(item.weight):
            raise PromptError(f"emphasis weight of {item.text[:40]!r} is not a finite number ({item.weight})")
        if abs(item.weight) > MAX_EMPHASIS_WEIGHT:
            raise PromptError(f"emphasis weight of {item.text[:40]!r} is {item.weight:.3g}, beyond the "
                              f"±{MAX_EMPHASIS_WEIGHT:g} that the text encoder can represent (too deeply nested "
                              "brackets?)")
    return merged


def is_break(piece: WeightedText) -> bool:
    """True for the chunk-break marker produced by a bare `BREAK` (weight exactly -1, as A1111 tests)."""
    return piece.text == BREAK_MARKER.text and piece.weight == BREAK_MARKER.weight


# --- composable diffusion: "a AND b:1.2" ---------------------------------------------------------------------
_AND_WORD = re.compile(r"\bAND\b")
_WEIGHT_NUMBER = re.compile(r"[-+]?(?:\d+\.?|\d*\.\d+)")


class SubPrompt(NamedTuple):
    """One `AND`-separated part of a prompt and its composable-diffusion weight."""

    text: str
    weight: float


def _split_weight(subprompt: str) -> SubPrompt:
    """A1111 `re_weight`: an optional trailing `: number` is the weight; trailing whitespace is dropped.

    Implemented by scanning from the end (the original lazy regex is quadratic on long whitespace runs).
    """
    body = subprompt.rstrip()
    end = len(body)
    start = end
    while start > 0 and (body[start - 1].isdecimal() or body[start - 1] == "."):
        start -= 1
    if start > 0 and body[start - 1] in "+-":
        start -= 1
    number = body[start:end]
    if number and _WEIGHT_NUMBER.fullmatch(number):
        head = body[:start].rstrip()
        if head.endswith(":"):
            return SubPrompt(head[:-1].rstrip(), float(number))
    return SubPrompt(body, 1.0)


def split_and(prompt: str) -> list[SubPrompt]:
    """Split a prompt at the word `AND` into sub-prompts with weights (composable diffusion, A1111 1.x).

    Each part may end with `:weight` (default 1.0); the result for `uncond` and the cfg combination is
    `uncond + Σ wᵢ·cfg·(condᵢ − uncond)` (done by the sampling layer).
    """
    return [_split_weight(part) for part in _AND_WORD.split(prompt)]


def get_multicond_prompt_list(prompts: list[str]) -> tuple[list[list[tuple[int, float]]], list[str]]:
    """Split every prompt with `split_and` and de-duplicate the sub-prompt texts (A1111 `get_multicond_prompt_list`).

    Returns `(indexes, flat)`: `flat` holds each distinct sub-prompt text once (first-seen order) and `indexes[i]` is
    the list of `(index into flat, weight)` of prompt `i`.
    """
    flat: list[str] = []
    positions: dict[str, int] = {}
    indexes: list[list[tuple[int, float]]] = []
    for prompt in prompts:
        entry = []
        for text, weight in split_and(prompt):
            index = positions.get(text)
            if index is None:
                index = positions[text] = len(flat)
                flat.append(text)
            entry.append((index, weight))
        indexes.append(entry)
    return indexes, flat


# --- comments and infotext ---------------------------------------------------------------------------------
_WHOLE_LINE_COMMENT = re.compile(r"(^|\n)#[^\n]*(\n|$)")
_TRAILING_COMMENT = re.compile(r"#[^\n]*(\n|$)")


def strip_comments(text: str) -> str:
    """Remove `# comments` (A1111 1.8 `enable_prompt_comments`): whole comment lines, then line tails from `#`.

    Each removed comment (with its line end) is replaced by a newline, exactly as A1111 does.
    """
    text = _WHOLE_LINE_COMMENT.sub("\n", text)
    return _TRAILING_COMMENT.sub("\n", text)


EMPHASIS_MODES = ("None", "Ignore", "Original", "No norm")


def emphasis_infotext(prompts: list[str], emphasis: str) -> str | None:
    """The infotext `Emphasis` value: the mode when it is not "Original" and some prompt uses `(` or `[` (A1111)."""
    if emphasis != "Original" and any("(" in p or "[" in p for p in prompts):
        return emphasis
    return None
