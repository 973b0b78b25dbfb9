"""A1111 `modules.paths` / `modules.paths_internal` names for extensions, read from the running app's `Paths`.

`script_path` (the install root) is a constant; `data_path`, `models_path`, `extensions_dir`,
`extensions_builtin_dir`, `config_states_dir`, `sd_configs_path`, `sd_model_file`, `default_sd_model_file`,
`cwd` follow the app's `--data-dir` / `--models-dir` and are read on each access. `paths` (A1111's repositories)
is empty: this app has no `repositories/` folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from modules.cli.flags import INSTALL_ROOT
from modules.compat.host import HOST

script_path = str(INSTALL_ROOT)
paths: dict[str, str] = {}

_DYNAMIC: dict[str, Callable[[], Any]] = {
    "data_path": lambda: str(HOST.current().paths.data_dir),
    "models_path": lambda: str(HOST.current().paths.models_dir),
    "extensions_dir": lambda: str(HOST.current().paths.extensions_dir),
    "extensions_builtin_dir": lambda: str(HOST.current().paths.extensions_builtin_dir),
    "config_states_dir": lambda: str(HOST.current().paths.config_states_dir),
    "sd_configs_path": lambda: str(HOST.current().paths.configs_dir),
    "sd_model_file": lambda: str(HOST.current().paths.checkpoint_file),
    "default_sd_model_file": lambda: str(HOST.current().paths.checkpoint_file),
    "cwd": os.getcwd,
}


def attribute(name: str) -> Any:
    """A changing `modules.paths` name."""
    getter = _DYNAMIC.get(name)
    if getter is None:
        raise AttributeError(f"module 'modules.paths' has no attribute {name!r} in this web UI")
    return getter()
