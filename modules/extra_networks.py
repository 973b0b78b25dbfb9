"""Compatibility: A1111 `modules.extra_networks` for extensions (re-exports of `modules.compat.extra_networks`;
docs/extensions.md)."""

from __future__ import annotations

from typing import Any

from modules.compat import extra_networks as _compat
from modules.compat.extra_networks import (
    ExtraNetwork,
    ExtraNetworkParams,
    lookup_extra_networks,
    parse_prompt,
    parse_prompts,
    register_extra_network,
    register_extra_network_alias,
    unregister_extra_network,
)


def __getattr__(name: str) -> Any:
    return _compat.__getattr__(name)


__all__ = ["ExtraNetwork", "ExtraNetworkParams", "lookup_extra_networks", "parse_prompt", "parse_prompts",
           "register_extra_network", "register_extra_network_alias", "unregister_extra_network"]
