"""Compatibility: A1111 `modules.launch_utils` for extensions (re-exports of `modules.compat.installer`, the same
names `launch` offers; docs/extensions.md)."""

from __future__ import annotations

from typing import Any

from modules.compat.installer import attribute as _attribute
from modules.compat.installer import (
    check_run_python,
    commit_hash,
    default_command_live,
    dir_repos,
    git,
    git_tag,
    index_url,
    is_installed,
    python,
    repo_dir,
    run,
    run_pip,
    run_python,
)


def __getattr__(name: str) -> Any:
    return _attribute(name)


__all__ = ["check_run_python", "commit_hash", "default_command_live", "dir_repos", "git", "git_tag", "index_url",
           "is_installed", "python", "repo_dir", "run", "run_pip", "run_python"]
