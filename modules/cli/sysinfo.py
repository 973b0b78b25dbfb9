"""System information for bug reports (A1111 `modules/sysinfo.py`, written by `launch.py --dump-sysinfo`).

A1111 writes `sysinfo-<UTC date>.json` in the working directory and exits; the JSON has the platform, Python,
the program's version and commit, its paths, the command line with passwords masked, the torch/CUDA facts, CPU and
RAM, the extensions, a whitelist of environment variables (never the whole environment, which may hold tokens),
the settings (`config.json`) and the installed packages. Fields this app does not have (A1111's file checksum,
the exception log) are left out rather than made up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ENVIRONMENT_WHITELIST = (
    "GIT", "INDEX_URL", "WEBUI_LAUNCH_LIVE_OUTPUT", "GRADIO_ANALYTICS_ENABLED", "PYTHONPATH", "TORCH_INDEX_URL",
    "TORCH_COMMAND", "REQS_FILE", "XFORMERS_PACKAGE", "COMMANDLINE_ARGS", "IGNORE_CMD_ARGS_ERRORS",
    "SD_WEBUI_LOG_LEVEL", "SD_WEBUI_CACHE_FILE", "SD_WEBUI_CACHE_DIR",
)
"""Environment variables A1111's sysinfo reports (its list, plus this app's own SD_WEBUI_* ones)."""


def _torch_info() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"torch": None}
    info: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available(), "mps_available": torch.backends.mps.is_available()}
    if torch.cuda.is_available():
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _ram() -> dict[str, Any]:
    try:
        import psutil
    except ImportError:
        return {}
    memory = psutil.virtual_memory()
    return {"total": memory.total, "available": memory.available, "used": memory.used}


def _packages() -> list[str]:
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"])


def _config(path: Path | None) -> Any:
    if path is None or not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable: {exc}"


def _environment(env: Mapping[str, str]) -> dict[str, str]:
    """The whitelisted variables; `COMMANDLINE_ARGS` with its passwords and tokens masked like the command line
    (users put `--gradio-auth user:password` there in webui-user.sh)."""
    import shlex

    from modules.cli.flags import masked_argv

    out = {key: env[key] for key in ENVIRONMENT_WHITELIST if key in env}
    if "COMMANDLINE_ARGS" in out:
        try:
            out["COMMANDLINE_ARGS"] = shlex.join(masked_argv(shlex.split(out["COMMANDLINE_ARGS"])))
        except ValueError:  # cannot be split like a shell line: nothing of it is shown
            out["COMMANDLINE_ARGS"] = "***"
    return out


def get_sysinfo(*, argv: Sequence[str], env: Mapping[str, str], root: Path, data_dir: Path,
                config_file: Path | None = None, version: str | None = None, commit: str | None = None,
                extensions: Sequence[str] = ()) -> dict[str, Any]:
    """The sysinfo dict (see module docstring); `argv` is masked like the start-up line."""
    from modules.cli.flags import masked_argv

    return {
        "Platform": platform.platform(),
        "Python": platform.python_version(),
        "Version": version,
        "Commit": commit,
        "Script path": str(root),
        "Data path": str(data_dir),
        "Commandline": masked_argv(list(argv)),
        "Torch env info": _torch_info(),
        "CPU": {"model": platform.processor(), "count logical": os.cpu_count()},
        "RAM": _ram(),
        "Extensions": list(extensions),
        "Environment": _environment(env),
        "Config": _config(config_file),
        "Startup": {"argv": masked_argv(list(sys.argv))},
        "Packages": _packages(),
    }


def dump_sysinfo(directory: Path, **kwargs: Any) -> Path:
    """Write `sysinfo-YYYY-MM-DD-HH-MM.json` (UTC, A1111's name) in `directory`; returns its path."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H-%M")
    target = directory / f"sysinfo-{stamp}.json"
    target.write_text(json.dumps(get_sysinfo(**kwargs), indent=4, ensure_ascii=False), encoding="utf-8")
    return target
