"""A1111 `modules.shared` for extensions (re-exported by `modules/shared.py`): views over the running app.

Constant view objects: `opts` (settings, `modules.compat.options`), `state` (the running job), `cmd_opts` (flags),
`total_tqdm`; the classes/functions `OptionInfo`, `options_section`, `listfiles`. Read on each access (module
`__getattr__`), because they change while the app runs: `sd_model` (the loaded checkpoint, None before one is
loaded), `device`, `prompt_styles`, `demo`, `models_path`, `data_path`, `script_path`, `hide_dirs`,
`xformers_available`, `sd_upscalers`, `face_restorers`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

from modules.cli.flags import INSTALL_ROOT
from modules.compat.host import HOST
from modules.compat.options import OptionInfo1111, options_section, opts
from modules.compat.state import cmd_opts, current_model, state, total_tqdm

OptionInfo = OptionInfo1111


def listfiles(dirname: str) -> list[str]:
    """Files of `dirname` sorted by name, hidden files left out (A1111 `shared.listfiles`)."""
    names = sorted(os.listdir(dirname), key=str.lower) if os.path.isdir(dirname) else []
    return [os.path.join(dirname, n) for n in names if os.path.isfile(os.path.join(dirname, n)) and
            not n.startswith(".")]


_DYNAMIC: dict[str, Callable[[], Any]] = {
    "sd_model": current_model,
    "device": lambda: HOST.current().models.policy.device,
    "prompt_styles": lambda: HOST.current().styles,
    "demo": lambda: HOST.demo(),
    "models_path": lambda: str(HOST.current().paths.models_dir),
    "data_path": lambda: str(HOST.current().paths.data_dir),
    "script_path": lambda: str(INSTALL_ROOT),
    "hide_dirs": lambda: {"visible": not HOST.current().flags.hide_ui_dir_config},
    "xformers_available": lambda: importlib.util.find_spec("xformers") is not None,
    "sd_upscalers": lambda: list(HOST.current().upscalers.values()),
    "face_restorers": lambda: list(HOST.current().face_restorers.values()),
}


def attribute(name: str) -> Any:
    """The value of a changing `modules.shared` name (module `__getattr__` of `modules/shared.py`)."""
    getter = _DYNAMIC.get(name)
    if getter is None:
        raise AttributeError(f"module 'modules.shared' has no attribute {name!r} in this web UI "
                             "(see docs/extensions.md for the supported A1111 names)")
    return getter()


__all__ = ["OptionInfo", "attribute", "cmd_opts", "listfiles", "options_section", "opts", "state", "total_tqdm"]
