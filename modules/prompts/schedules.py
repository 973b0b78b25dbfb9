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

The parser below is a single left-to-right pass with an explicit bracket stack (no recursion, any nesting depth).
When a bracket cannot be closed validly every open bracket is marked invalid and the text after the outermost one
is scanned again with those brackets treated as stray characters; each bracket is marked at most once, so the work
stays linear. Rendering and step collection walk the tree with explicit stacks as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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


@dataclass
class _Frame:
    kind: str  # "(" or "["
    position: int  # index of the bracket in the source
    item_start: int  # index in the item list of the bracket's own item
    separators: list[tuple[str, int, int]] = field(default_factory=list)  # (char, item index, source index)


def _split_parts(items: list[Item], frame: _Frame) -> list[list[Item]]:
    parts = []
    start = frame.item_start + 1
    for _char, item_index, _source in frame.separators:
        parts.append(items[start:item_index])
        start = item_index + 1
    parts.append(items[start:])
    return parts


def _close_square(text: str, items: list[Item], frame: _Frame, close_at: int) -> bool:
    """Turn an open `[` frame into its element at `close_at` (`]`); False when no element fits."""
    separators = frame.separators
    if not separators:
        items.append("]")
        return True
    kinds = {char for char, _, _ in separators}
    if kinds == {"|"}:
        node: Item = Alternation(_split_parts(items, frame))
    elif kinds == {":"} and len(separators) <= 2:
        number = _NUMBER.fullmatch(text, separators[-1][2] + 1, close_at)
        if number is None:
            return False
        parts = _split_parts(items, frame)
        before = parts[0] if len(separators) == 2 else None
        node = Scheduled(before, parts[-2], number.group(1))
    else:
        return False
    del items[frame.item_start :]
    items.append(node)
    return True


def parse_schedule_tree(text: str) -> list[Item] | None:
    """Parse `text` into plain strings and `Scheduled`/`Alternation` nodes; None when the grammar fails.

    Concatenating the strings of the result (with every node expanded) reproduces the prompt minus the syntax of
    scheduled and alternation elements; emphasis brackets and stray characters are kept verbatim.
    """
    items: list[Item] = []
    stack: list[_Frame] = []
    invalid: set[int] = set()
    length = len(text)
    index = 0

    def fail() -> int:
        outermost = stack[0]
        invalid.update(frame.position for frame in stack)
        del items[outermost.item_start :]
        stack.clear()
        return outermost.position

    while True:
        while index < length:
            match = _SPECIAL.search(text, index)
            stop = match.start() if match else length
            if stop > index:
                items.append(text[index:stop])
                index = stop
                continue
            char = text[index]
            if char == "\\":
                if index + 1 >= length or text[index + 1] == "\n":
                    return None
                items.append(text[index : index + 2])
                index += 2
            elif char in "([":
                if index in invalid:
                    items.append(char)
                else:
                    stack.append(_Frame(char, index, len(items)))
                    items.append(char)
                index += 1
            elif not stack:
                if char == "|":
                    return None
                items.append(char)  # stray ) ] : at top level
                index += 1
            else:
                frame = stack[-1]
                ok = True
                if char == ":":
                    if frame.kind == "(":
                        ok = not frame.separators
                    else:
                        ok = len(frame.separators) < 2 and all(c == ":" for c, _, _ in frame.separators)
                    if ok:
                        frame.separators.append((":", len(items), index))
                        items.append(":")
                elif char == "|":
                    ok = frame.kind == "[" and all(c == "|" for c, _, _ in frame.separators)
                    if ok:
                        frame.separators.append(("|", len(items), index))
                        items.append("|")
                elif char == ")":
                    ok = frame.kind == "("
                    if ok:
                        items.append(")")
                        stack.pop()
                else:  # "]"
                    ok = frame.kind == "[" and _close_square(text, items, frame, index)
                    if ok:
                        stack.pop()
                if ok:
                    index += 1
                else:
                    index = fail()
        if not stack:
            return items
        index = fail()


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
    if tree is None:
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
