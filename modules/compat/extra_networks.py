"""A1111 `modules.extra_networks` for extensions: `<name:arg1:arg2>` prompt tags handled by registered networks.

A1111 keeps a module-wide `extra_network_registry`; here the registry is the running app's network library
(`ctx.networks.handlers`, `modules.processing.extra_networks`), so a network registered by an extension belongs to
that app and the pipeline calls it:

* per batch, after the tags of the batch's first prompt are parsed (`p.extra_network_data`), each named network's
  `activate(p, params_list)` (a list of `ExtraNetworkParams`, one per tag), then `activate(p, [])` for every other
  registered network; then the scripts' `after_extra_networks_activate`;
* once the job's batches are done (also after an error or interrupt), `deactivate(p)` of every registered network.

Tags are removed from the text before it is encoded, as in A1111. The app's own LoRA (`lora`, `lyco`) and
hypernetwork (`hypernet`) tags are handled by the app, not through this registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modules.compat.host import HOST
from modules.prompts.extra_network_tags import ExtraNetworkParams
from modules.prompts.extra_network_tags import parse_prompt as _parse_prompt
from modules.prompts.extra_network_tags import parse_prompts as _parse_prompts


class ExtraNetwork:
    """Base class of an extra network (A1111 `ExtraNetwork(name)`): subclasses implement `activate(p,
    params_list)` and `deactivate(p)`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def activate(self, p: Any, params_list: list[ExtraNetworkParams]) -> None:
        """Called per batch with the tags naming this network (empty list when the prompt names none)."""
        raise NotImplementedError

    def deactivate(self, p: Any) -> None:
        """Called once the job's batches are done."""
        raise NotImplementedError


def _library() -> Any:
    return HOST.current().networks


def register_extra_network(extra_network: Any) -> None:
    """Register `extra_network` under its `name` for the running app (a later one with the same name replaces it,
    as in A1111)."""
    _library().handlers[str(extra_network.name)] = extra_network


def register_extra_network_alias(extra_network: Any, alias: str) -> None:
    """Let tags `<alias:...>` reach `extra_network` too (A1111 `register_extra_network_alias`)."""
    _library().handler_aliases[str(alias)] = extra_network


def unregister_extra_network(name: str) -> None:
    """Forget the network registered as `name` (and aliases pointing at it)."""
    library = _library()
    handler = library.handlers.pop(name, None)
    for alias in [a for a, h in library.handler_aliases.items() if h is handler]:
        library.handler_aliases.pop(alias, None)


def lookup_extra_networks(extra_network_data: dict[str, list[ExtraNetworkParams]]) -> dict[Any, list[Any]]:
    """`{network object: params_list}` for the registered networks named in `extra_network_data` (A1111)."""
    library = _library()
    found: dict[Any, list[Any]] = {}
    for name, params in extra_network_data.items():
        handler = library.handlers.get(name) or library.handler_aliases.get(name)
        if handler is not None:
            found.setdefault(handler, []).extend(params)
    return found


def parse_prompt(prompt: str) -> tuple[str, dict[str, list[ExtraNetworkParams]]]:
    """(`prompt` without its `<name:args>` tags, `{name: [ExtraNetworkParams]}`) (A1111 `parse_prompt`)."""
    return _parse_prompt(prompt)


def parse_prompts(prompts: Sequence[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    """`parse_prompt` of each prompt; the networks are those of the first prompt (A1111 `parse_prompts`)."""
    return _parse_prompts(prompts)


def __getattr__(name: str) -> Any:
    """`extra_network_registry` / `extra_network_aliases`: the running app's registered networks (live dicts)."""
    if name == "extra_network_registry":
        return _library().handlers
    if name == "extra_network_aliases":
        return _library().handler_aliases
    raise AttributeError(f"module 'modules.extra_networks' has no attribute {name!r} in this web UI")


__all__ = ["ExtraNetwork", "ExtraNetworkParams", "lookup_extra_networks", "parse_prompt", "parse_prompts",
           "register_extra_network", "register_extra_network_alias", "unregister_extra_network"]
