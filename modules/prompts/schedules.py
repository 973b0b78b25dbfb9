"""Prompt editing `[from:to:when]` and alternation `[a|b]`: which text is used at which sampling step.

Behaviour source: A1111 `modules/prompt_parser.py` (`get_learned_conditioning_prompt_schedules` and its lark
grammar, restated in `a1111-features.md` §5). That grammar is, in words:
- top level: any mix of elements, plain text, whitespace and stray `[ ] ( ) :` characters;
- inside any bracket only elements, plain text and whitespace are allowed (no stray characters);
- elements: `(P)`, `(P:P)`, `[P]` (emphasis, kept verbatim), `[P:N]` / `[P:P:N]` (scheduled; `N` a signed number
  with optional whitespace around it), `[P|P|...]` (alternation, empty options allowed);
- plain text: anything but `[ ] ( ) : |` and backslash, where a backslash escapes any following character except a
  line break;
- a `|` outside an alternation or a dangling backslash makes the grammar fail: the prompt is then used literally.
When a `[` could start a valid element it does (as lark resolves `[b:3]`); otherwise it is a stray character.
(Checked against lark 1.1.2, the version A1111 pins, on thousands of generated prompts: identical for every prompt
without stray brackets. With stray characters right next to a top-level `[from:to:when]` lark's choice between
"scheduled" and "literal" comes from version-dependent Earley tie-breaking — lark 1.1.2 and 1.3 disagree — and
here the element is always scheduled.)

The parser below is a single left-to-right pass with an explicit bracket stack (no recursion, any nesting depth,
linear time). When a bracket cannot be closed validly every open bracket becomes a stray character (see
`parse_schedule_tree`). Rendering and step collection walk the tree with explicit stacks as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

_SPECIAL = re.compile(r"[\[\]():|\\]")
_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*")


@dataclass(eq=False)
class Scheduled:
    """`[before:after:when]`; `before` is None for `[after:when]`. `number` is the raw `when` text."""

    before: list[Item] | None
    after: list[Item]
    number: str


@dataclass(eq=False)
class Alternation:
    """`[a|b|c]`: option `(step - 1) % len(options)` is used at a step."""

    options: list[list[Item]]


Item = str | Scheduled | Alternation


class ScheduledText(NamedTuple):
    """The prompt text to use up to and including sampling step `end_at_step`."""

    end_at_step: int
    text: str


class _Stack:
    """Open brackets as parallel lists of plain values (no per-bracket objects, so no GC pressure at depth).

    Separators of the innermost bracket are the tail of `separator_items`/`separator_sources` from
    `separator_base[-1]` on; an inner bracket's separators are dropped when it closes, so every bracket's
    separators stay contiguous.
    """

    __slots__ = ("item_start", "kind", "separator", "separator_base", "separator_items", "separator_sources")

    def __init__(self) -> None:
        self.kind: list[str] = []  # "(" or "["
        self.item_start: list[int] = []  # item index of the bracket itself
        self.separator: list[str] = []  # "", ":" or "|" (they cannot be mixed)
        self.separator_base: list[int] = []
        self.separator_items: list[int] = []
        self.separator_sources: list[int] = []

    def push(self, kind: str, item_start: int) -> None:
        self.kind.append(kind)
        self.item_start.append(item_start)
        self.separator.append("")
        self.separator_base.append(len(self.separator_items))

    def pop(self) -> None:
        self.kind.pop()
        self.item_start.pop()
        self.separator.pop()
        del self.separator_items[self.separator_base[-1] :], self.separator_sources[self.separator_base[-1] :]
        self.separator_base.pop()

    def clear(self) -> None:
        for values in (self.kind, self.item_start, self.separator, self.separator_base):
            values.clear()
        self.separator_items.clear()
        self.separator_sources.clear()

    def separator_count(self) -> int:
        return len(self.separator_items) - self.separator_base[-1]

    def accepts(self, char: str) -> bool:
        """Can the innermost bracket take separator `char`: `(a:b)` one colon; `[a:b:N]` two; `[a|b|...]` pipes."""
        current = self.separator[-1]
        if self.kind[-1] == "(":
            return char == ":" and not current
        if char == "|":
            return current in ("", "|")
        return current == "" or (current == ":" and self.separator_count() < 2)


def _close_square(text: str, items: list[Item], stack: _Stack, close_at: int) -> bool:
    """Turn the innermost `[` into its element at `close_at` (`]`); False when no element fits."""
    separator = stack.separator[-1]
    if not separator:
        items.append("]")
        return True
    base = stack.separator_base[-1]
    boundaries = stack.separator_items[base:]
    start = stack.item_start[-1]
    parts = []
    previous = start + 1
    for boundary in boundaries:
        parts.append(items[previous:boundary])
        previous = boundary + 1
    parts.append(items[previous:])
    if separator == "|":
        node: Item = Alternation(parts)
    else:  # one or two ":" (a third one already failed the bracket)
        number = _NUMBER.fullmatch(text, stack.separator_sources[-1] + 1, close_at)
        if number is None:
            return False
        node = Scheduled(parts[0] if len(boundaries) == 2 else None, parts[-2], number.group(1))
    del items[start:]
    items.append(node)
    return True


def parse_schedule_tree(text: str) -> list[Item] | None:
    """Parse `text` into plain strings and `Scheduled`/`Alternation` nodes; None when the grammar fails.

    Concatenating the strings of the result (with every node expanded) reproduces the prompt minus the syntax of
    scheduled and alternation elements; emphasis brackets and stray characters are kept verbatim.

    When a bracket turns out invalid, every open bracket becomes a stray character. Their items (the bracket, its
    separators, the text and the completed elements inside) are already what a top-level scan would produce, so
    nothing is re-scanned; only a `|` separator among them now stands outside any alternation and fails the
    grammar.
    """
    if "[" not in text or (":" not in text and "|" not in text):
        return None if _grammar_fails_without_elements(text) else [text]
    items: list[Item] = []
    stack = _Stack()
    length = len(text)
    index = 0
    search = _SPECIAL.search
    while index < length:
        match = search(text, index)
        stop = match.start() if match else length
        if stop > index:
            items.append(text[index:stop])
            index = stop
            continue
        char = text[index]
        index += 1
        if char == "\\":
            if index >= length or text[index] == "\n":
                return None
            items.append(text[index - 1 : index + 1])
            index += 1
            continue
        if char in "([":
            stack.push(char, len(items))
            items.append(char)
            continue
        if stack.kind:
            kind = stack.kind[-1]
            if char in ":|":
                if stack.accepts(char):
                    stack.separator[-1] = char
                    stack.separator_items.append(len(items))
                    stack.separator_sources.append(index - 1)
                    items.append(char)
                    continue
            elif char == ")" and kind == "(":
                stack.pop()
                items.append(")")
                continue
            elif char == "]" and kind == "[" and _close_square(text, items, stack, index - 1):
                stack.pop()
                continue
            # the innermost bracket cannot go on: all open brackets are stray characters
            if "|" in stack.separator:
                return None
            stack.clear()
        if char == "|":
            return None
        items.append(char)  # stray ) ] : at top level
    if "|" in stack.separator:
        return None
    return items


def _grammar_fails_without_elements(text: str) -> bool:
    """For text that cannot hold a scheduled/alternation element: does lark's grammar reject it?

    It does for a `|` (only allowed inside an alternation) and for a backslash that escapes nothing.
    """
    if "|" in text:
        return True
    position = text.find("\\")
    while position != -1:
        if position + 1 >= len(text) or text[position + 1] == "\n":
            return True
        position = text.find("\\", position + 2)
    return False


def _walk_nodes(items: list[Item]) -> Iterator[Item]:
    pending: list[list[Item]] = [items]
    while pending:
        for item in pending.pop():
            if isinstance(item, Scheduled):
                yield item
                if item.before is not None:
                    pending.append(item.before)
                pending.append(item.after)
            elif isinstance(item, Alternation):
                yield item
                pending.extend(item.options)


def _render(items: list[Item], step: int, whens: dict[int, int]) -> str:
    out: list[str] = []
    stack: list[Iterator[Item]] = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, str):
                out.append(item)
                continue
            if isinstance(item, Scheduled):
                chosen = item.before if step <= whens[id(item)] else item.after
            else:
                chosen = item.options[(step - 1) % len(item.options)]
            if chosen:
                stack.append(iter(chosen))
                break
        else:
            stack.pop()
    return "".join(out)


def _switch_step(number: str, steps: int, int_offset: int, float_offset: float, use_old_scheduling: bool) -> int:
    """A1111's `when` → step: decimal point = fraction of `steps`, else an absolute step (see `prompt_schedule`)."""
    value = float(number)
    if use_old_scheduling:
        value = value * steps if value < 1 else value
    elif "." in number:
        value = (value - float_offset) * steps
    else:
        value = value - int_offset
    if math.isnan(value) or value == -math.inf:
        return -1
    return steps if value >= steps else int(value)


def prompt_schedule(
    prompt: str, base_steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[ScheduledText]:
    """The schedule of one prompt: `[(end_at_step, text), ...]`, sorted, last entry ending at the step count.

    `when` semantics (A1111 ≥ 1.6): a number with a decimal point is a fraction of the steps (`int(v·steps)`),
    without one an absolute step. For the hires pass (`hires_steps` given) the timeline is the hires pass:
    integers count on from the first pass (`v − base_steps`), fractions 1.0–2.0 map onto it (`(v − 1)·hires_steps`).
    `use_old_scheduling` (A1111 "Old prompt editing timelines"): v < 1 is a fraction, else a step, one timeline for
    both passes. A switch at step ≤ 0 never happens (the "to" text is used from the first step); alternation adds
    every step. A prompt that fails the grammar is one entry with the literal text.
    """
    if hires_steps is None or use_old_scheduling:
        int_offset, float_offset, steps = 0, 0.0, base_steps
    else:
        int_offset, float_offset, steps = base_steps, 1.0, hires_steps

    tree = parse_schedule_tree(prompt)
    if tree is None or all(type(item) is str for item in tree):
        return [ScheduledText(steps, prompt)]

    switch_steps = {steps}
    whens: dict[int, int] = {}
    for node in _walk_nodes(tree):
        if isinstance(node, Scheduled):
            when = _switch_step(node.number, steps, int_offset, float_offset, use_old_scheduling)
            whens[id(node)] = when
            if when >= 1:
                switch_steps.add(when)
        else:
            switch_steps.update(range(1, steps + 1))
    return [ScheduledText(step, _render(tree, step, whens)) for step in sorted(switch_steps)]


def get_learned_conditioning_prompt_schedules(
    prompts: Iterable[str], base_steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[list[ScheduledText]]:
    """`prompt_schedule` for every prompt (same name and arguments as A1111); equal prompts are parsed once."""
    prompts = list(prompts)
    cache = {p: prompt_schedule(p, base_steps, hires_steps, use_old_scheduling) for p in set(prompts)}
    return [cache[p] for p in prompts]
