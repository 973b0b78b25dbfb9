"""Config states (A1111 `config_states.py`): saved with A1111's file name and keys, listed newest first, and
restored: recorded commits checked out, recorded enabled state kept, unlisted extensions disabled; the start-up
step clears `restore_config_state_file` first."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from modules.extensions import config_states, manager


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def repo(path: Path, commits: int) -> list[str]:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    out = []
    for i in range(commits):
        (path / "f.txt").write_text(str(i))
        git(path, "add", "f.txt")
        git(path, "commit", "-q", "-m", str(i))
        out.append(git(path, "rev-parse", "HEAD"))
    return out


class FakeSettings:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values, self.saved = dict(values), 0

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> Any:
        self.values[key] = value

    def save(self) -> None:
        self.saved += 1


def test_save_list_and_restore(tmp_path: Path) -> None:
    exts_dir = tmp_path / "extensions"
    one = repo(exts_dir / "one", 2)
    repo(exts_dir / "two", 1)
    found = manager.discover_extensions(exts_dir, disabled=["two"])
    state = config_states.current_state(tmp_path, found)
    path = config_states.save_state(tmp_path / "config_states", "my state", state)
    assert path.name.endswith("_my state.json") and len(path.name.split("_")[0]) == 4
    data = json.loads(path.read_text())
    assert data["name"] == "my state" and data["webui"]["commit_hash"] is None
    assert data["extensions"]["one"]["commit_hash"] == one[1] and data["extensions"]["two"]["enabled"] is False
    listed = config_states.list_states(tmp_path / "config_states")
    assert list(listed) == [next(iter(listed))] and next(iter(listed)).startswith("my state: ")

    git(exts_dir / "one", "checkout", "-q", one[0])
    repo(exts_dir / "three", 1)
    disabled, report = config_states.restore_extensions(data, manager.discover_extensions(exts_dir))
    assert git(exts_dir / "one", "rev-parse", "HEAD") == one[1]
    assert disabled == ["three", "two"] and any("three: not in the saved state" in line for line in report)
    assert "not a git checkout" in config_states.webui_restore_note(data, tmp_path)

    settings = FakeSettings({"restore_config_state_file": str(path), "disabled_extensions": []})
    git(exts_dir / "one", "checkout", "-q", one[0])
    lines = config_states.restore_pending(settings, tmp_path / "config_states", manager.discover_extensions(exts_dir))
    assert lines[0].startswith("Restored extension config") and settings.values["restore_config_state_file"] == ""
    assert settings.values["disabled_extensions"] == ["three", "two"]
    assert config_states.restore_pending(settings, tmp_path, []) == []
    settings.values["restore_config_state_file"] = "missing.json"
    assert "not found" in config_states.restore_pending(settings, tmp_path, [])[0]
