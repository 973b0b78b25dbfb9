"""Config states: a saved record of the web UI version and each extension's version and enabled state, to go back
to a known working set (A1111 `modules/config_states.py`, Extensions tab "Backup/Restore", reference §3.9).

Format (A1111's keys): `config_states/<YYYY_MM_DD-HH_MM_SS>_<name>.json` =
`{"name", "created_at" (unix time), "webui": {"remote", "commit_hash", "commit_date", "branch"},
"extensions": {folder name: {"name", "path", "enabled", "is_builtin", "remote", "commit_hash", "commit_date",
"branch", "have_info_from_repo"}}}`.

Restoring extensions (A1111 `restore_extension_config`): built-ins are left alone; an installed extension missing
from the state is disabled; one in the state gets its recorded enabled state and, for a git checkout with a recorded
commit, `git checkout --force <commit>` (after a `git fetch` when the commit is not present locally); the disabled
list is written to `disabled_extensions`. The setting `restore_config_state_file` names a state file to restore
at the next start (the Restore button sets it and restarts); start-up clears it first so a failing restore does not
repeat.

The web UI itself is never reset from here: A1111 runs `git reset --hard` on its install folder, which would
discard local work; the result says which commit the state recorded and how to check it out by hand (and that a
non-git install cannot be restored at all).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modules.extensions import manager

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()-]+")


class SavingSettings(manager.SettingsLike, Protocol):
    """The settings store as the start-up restore uses it (`modules.settings.Settings`)."""

    def save(self) -> None: ...


@dataclass(frozen=True)
class ConfigState:
    """One saved state file and its parsed contents."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.path.stem)

    @property
    def created_at(self) -> float:
        value = self.data.get("created_at")
        return float(value) if isinstance(value, int | float) else self.path.stat().st_mtime

    @property
    def title(self) -> str:
        """The dropdown label, `name: YYYY-MM-DD HH:MM:SS` (A1111 lists states this way)."""
        stamp = dt.datetime.fromtimestamp(self.created_at).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self.name}: {stamp}"


def _git_state(info: manager.GitInfo | None) -> dict[str, Any]:
    return {"remote": info.remote if info else None, "commit_hash": info.commit_hash if info else None,
            "commit_date": info.commit_date if info else None, "branch": info.branch if info else None}


def webui_state(install_dir: str | Path) -> dict[str, Any]:
    """The install folder's git remote, commit, date and branch (all None for a non-git install)."""
    return _git_state(manager.git_info(install_dir))


def extension_state(ext: manager.Extension) -> dict[str, Any]:
    """One extension's entry: name, path, enabled, built-in, and its git version (read now)."""
    info = manager.git_info(ext.path)
    return {"name": ext.name, "path": str(ext.path), "enabled": ext.enabled, "is_builtin": ext.is_builtin,
            **_git_state(info), "have_info_from_repo": info is not None}


def current_state(install_dir: str | Path, extensions: Iterable[manager.Extension]) -> dict[str, Any]:
    """The state of this install now (A1111 `get_config`)."""
    return {"created_at": time.time(), "webui": webui_state(install_dir),
            "extensions": {ext.name: extension_state(ext) for ext in extensions}}


def save_state(folder: str | Path, name: str, state: dict[str, Any]) -> Path:
    """Write `state` named `name` (default "Config") as `<folder>/<YYYY_MM_DD-HH_MM_SS>_<name>.json` (A1111's file
    name); characters unsafe in file names are dropped from the file name only."""
    name = (name or "").strip() or "Config"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(float(state.get("created_at") or time.time())).strftime("%Y_%m_%d-%H_%M_%S")
    safe = _UNSAFE.sub("_", name).strip(" .") or "Config"
    target = folder / f"{stamp}_{safe}.json"
    counter = 1
    while target.exists():
        counter += 1
        target = folder / f"{stamp}_{safe}_{counter}.json"
    target.write_text(json.dumps({**state, "name": name}, indent=4), encoding="utf-8")
    return target


def read_state(path: str | Path) -> ConfigState:
    """Parse one state file; a missing or malformed file raises ValueError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"config state {path} could not be read: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("extensions", {}), dict):
        raise ValueError(f"config state {path} is not a config state (expected an object with \"extensions\")")
    return ConfigState(path, data)


def list_states(folder: str | Path) -> dict[str, ConfigState]:
    """Readable states in `folder` by title, newest first (unreadable files are skipped, as A1111 does)."""
    folder = Path(folder)
    states = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            states.append(read_state(path))
        except ValueError:
            continue
    states.sort(key=lambda s: s.created_at, reverse=True)
    out: dict[str, ConfigState] = {}
    for state in states:
        title, n = state.title, 1
        while title in out:
            n += 1
            title = f"{state.title} ({n})"
        out[title] = state
    return out


def restore_extensions(state: dict[str, Any], extensions: Iterable[manager.Extension]) -> tuple[list[str], list[str]]:
    """Put the installed extensions back as `state` records them; returns (the new `disabled_extensions` list,
    one line per change or problem). The caller stores the list and saves the settings."""
    recorded: dict[str, Any] = state.get("extensions") or {}
    disabled: list[str] = []
    report: list[str] = []
    for ext in extensions:
        if ext.is_builtin:
            if not ext.enabled:
                disabled.append(ext.name)
            continue
        entry = recorded.get(ext.name)
        if not isinstance(entry, dict):
            disabled.append(ext.name)
            report.append(f"{ext.name}: not in the saved state, disabled")
            continue
        commit = entry.get("commit_hash")
        info = manager.git_info(ext.path)
        if commit and info is not None and info.commit_hash != commit:
            try:
                manager.checkout_commit(ext, str(commit))
                report.append(f"{ext.name}: {info.commit_hash[:8]} -> {str(commit)[:8]}")
            except manager.ExtensionError as exc:
                report.append(f"{ext.name}: could not restore commit {str(commit)[:8]}: {exc}")
        if not entry.get("enabled", True):
            disabled.append(ext.name)
            report.append(f"{ext.name}: disabled")
    return sorted(disabled), report


def webui_restore_note(state: dict[str, Any], install_dir: str | Path) -> str:
    """What restoring the web UI version would need: the recorded commit and the command to check it out, or that
    a non-git install cannot be restored (this app does not reset its own install folder)."""
    commit = (state.get("webui") or {}).get("commit_hash")
    if manager.git_info(install_dir) is None:
        return ("The web UI is not a git checkout, so its version cannot be restored; reinstall the version you "
                "need" + (f" (commit {commit})." if commit else "."))
    if not commit:
        return "The saved state has no web UI commit; nothing to restore for the web UI."
    return (f"The web UI is not reset automatically (that would discard local changes). To go back to the saved "
            f"version run in {install_dir}: git checkout {commit}")


def restore_pending(settings: SavingSettings, config_states_dir: str | Path,
                    extensions: Iterable[manager.Extension]) -> list[str]:
    """Start-up step (A1111 `list_extensions`): when `restore_config_state_file` names a state, clear the setting
    (saved at once, so a failing restore does not repeat), restore the extensions from that state and store the
    new `disabled_extensions`. Returns the lines to print; [] when nothing was pending. A relative name is looked up
    in `config_states_dir`."""
    name = str(settings.get("restore_config_state_file") or "").strip()
    if not name:
        return []
    try:
        settings.set("restore_config_state_file", "")
        settings.save()
    except Exception as exc:  # frozen or unwritable settings: restoring at every start would never end
        return [f"Config state {name} not restored: restore_config_state_file could not be cleared ({exc})"]
    path = Path(name) if Path(name).is_absolute() else Path(config_states_dir) / name
    if not path.is_file():
        return [f"Config state backup not found: {path}"]
    try:
        state = read_state(path)
    except ValueError as exc:
        return [str(exc)]
    disabled, report = restore_extensions(state.data, extensions)
    try:
        settings.set("disabled_extensions", disabled)
        settings.save()
    except Exception as exc:  # the checkouts are done; say that the enabled set was not stored
        report.append(f"disabled_extensions could not be saved: {exc}")
    return [f"Restored extension config from {path}", *report]
