"""`<name:arg1:arg2:k=v>` extra-network tags: find them, remove them from the prompt, keep their arguments.

Behaviour source: A1111 `modules/extra_networks.py` (`re_extra_net = <(\\w+):([^>]+)>`, `parse_prompt`,
`parse_prompts`, `ExtraNetworkParams`) and the built-in Lora extension's argument rules, restated in
`a1111-features.md` §5: the tag is removed from the text (replaced by nothing); arguments are split on `:`;
an argument of the form `k=v` is a named argument, anything else positional. For batches, the networks of the
first prompt are the ones activated. The scan is linear (the regex form is quadratic on many unclosed `<`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_TAG_NAME = re.compile(r"\w+:")


@dataclass
class ExtraNetworkParams:
    """The arguments of one tag: all `items`, the positional ones and the `k=v` ones."""

    items: list[str]
    positional: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for item in self.items:
            key, sep, value = item.partition("=")
            if sep and "=" not in value:
                self.named[key] = value
            else:
                self.positional.append(item)


def parse_prompt(prompt: str) -> tuple[str, dict[str, list[ExtraNetworkParams]]]:
    """Remove every `<name:args>` tag; return the remaining text and `{name: [params, ...]}` in prompt order."""
    found: dict[str, list[ExtraNetworkParams]] = {}
    out: list[str] = []
    position = 0
    copied = 0
    next_close = -1
    while True:
        start = prompt.find("<", position)
        if start == -1:
            break
        name = _TAG_NAME.match(prompt, start + 1)
        if name is None:
            position = start + 1
            continue
        args_start = name.end()
        if next_close < args_start:
            next_close = prompt.find(">", args_start)
            if next_close == -1:
                break  # no later tag can close either
        if next_close == args_start:  # `<name:>`: arguments must be non-empty
            position = start + 1
            continue
        found.setdefault(name.group(0)[:-1], []).append(ExtraNetworkParams(prompt[args_start:next_close].split(":")))
        out.append(prompt[copied:start])
        copied = position = next_close + 1
    out.append(prompt[copied:])
    return "".join(out), found


def parse_prompts(prompts: Sequence[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    """`parse_prompt` for each prompt; the networks returned are those of the first prompt (A1111)."""
    texts: list[str] = []
    first: dict[str, list[ExtraNetworkParams]] | None = None
    for prompt in prompts:
        text, networks = parse_prompt(prompt)
        if first is None:
            first = networks
        texts.append(text)
    return texts, first or {}


@dataclass(frozen=True)
class LoraTag:
    """A `<lora:name:te:unet:dyn>` tag resolved per the Lora extension: unet multiplier defaults to te."""

    name: str
    te_multiplier: float
    unet_multiplier: float
    dyn_dim: int | None


def lora_tag(params: ExtraNetworkParams) -> LoraTag:
    """Interpret one lora/lyco tag: `name[:te[:unet[:dyn]]]` or `te=`, `unet=`, `dyn=` named arguments."""
    if not params.positional:
        raise ValueError(f"<lora:...> tag without a network name: {':'.join(params.items)!r}")
    positional = params.positional

    def number(index: int, key: str, default: float | None) -> float | None:
        raw = positional[index] if len(positional) > index else params.named.get(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"<lora:{positional[0]}:...>: {key} multiplier {raw!r} is not a number") from None

    te = number(1, "te", 1.0)
    unet = number(2, "unet", te)
    dyn = number(3, "dyn", None)
    return LoraTag(positional[0], float(te), float(unet), int(dyn) if dyn is not None else None)  # type: ignore[arg-type]
