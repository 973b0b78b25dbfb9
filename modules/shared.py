"""Compatibility: A1111 `modules.shared` for extensions (re-exports only; see docs/extensions.md).

Every name is a view over the running app (`modules.compat.host`): `opts` reads and writes the app's settings,
`state` the running job, `cmd_opts` the flags; `sd_model`, `device`, `prompt_styles`, … are read on each access.
New code takes what it needs from the `AppContext` instead.
"""

from __future__ import annotations

from typing import Any

from modules.compat.shared import OptionInfo, attribute, cmd_opts, listfiles, options_section, opts, state, total_tqdm


def __getattr__(name: str) -> Any:
    return attribute(name)


__all__ = ["OptionInfo", "cmd_opts", "listfiles", "options_section", "opts", "state", "total_tqdm"]
