"""A1111 `modules.extensions` names for extensions: `extensions.active()`, `extensions.extensions`, `Extension`.

A1111 keeps a module list of `Extension` objects rebuilt by `list_extensions()`. Here every name reads the running
app's extension list (`ctx.extensions`, discovered at start-up with the enabled state the settings and flags
give); each `Extension` is a view over one of them: `name`, `path` (str), `enabled`, `is_builtin`,
`canonical_name`, `metadata`, and the git fields `remote`, `branch`, `commit_hash`, `commit_date`, `version` (the
short hash), read from the folder's git checkout the first time one is asked for (A1111 `read_info_from_repo`).
`list_files(subdir, extension)` lists `<folder>/<subdir>/*<extension>` as `scripts.ScriptFile` tuples, sorted
(A1111 uses it to find script files).
"""

from __future__ import annotations

import os
from collections import namedtuple

from modules.compat.host import HOST
from modules.extensions import manager

ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
"""A1111 `scripts.ScriptFile`: the extension folder, the file name and its full path."""


class Extension:
    """A view over one of the app's extensions (A1111 `modules.extensions.Extension`)."""

    def __init__(self, source: manager.Extension) -> None:
        self._source = source

    @property
    def name(self) -> str:
        return self._source.name

    @property
    def path(self) -> str:
        return str(self._source.path)

    @property
    def enabled(self) -> bool:
        return self._source.enabled

    @property
    def is_builtin(self) -> bool:
        return self._source.is_builtin

    @property
    def canonical_name(self) -> str:
        return self._source.canonical_name

    @property
    def metadata(self) -> dict[str, dict[str, str]]:
        return self._source.metadata

    def read_info_from_repo(self) -> None:
        """Read the git checkout once (A1111 reads it lazily too); kept on the app's extension object."""
        if self._source.git is None:
            self._source.git = manager.git_info(self._source.path)

    @property
    def have_info_from_repo(self) -> bool:
        return self._source.git is not None

    def _git(self) -> manager.GitInfo | None:
        self.read_info_from_repo()
        return self._source.git

    @property
    def remote(self) -> str | None:
        git = self._git()
        return git.remote if git is not None else None

    @property
    def branch(self) -> str | None:
        git = self._git()
        return git.branch if git is not None else None

    @property
    def commit_hash(self) -> str:
        git = self._git()
        return git.commit_hash if git is not None else ""

    @property
    def commit_date(self) -> int | None:
        git = self._git()
        return git.commit_date if git is not None else None

    @property
    def version(self) -> str:
        git = self._git()
        return git.version if git is not None else ""

    @property
    def status(self) -> str:
        return self._source.update_status

    def list_files(self, subdir: str, extension: str) -> list[ScriptFile]:
        """Files `<path>/<subdir>/*` whose suffix is `extension` (e.g. ".py"), sorted by name (A1111)."""
        folder = os.path.join(self.path, subdir)
        if not os.path.isdir(folder):
            return []
        files = [ScriptFile(self.path, n, os.path.join(folder, n)) for n in sorted(os.listdir(folder))]
        return [f for f in files if os.path.splitext(f.path)[1].lower() == extension.lower() and os.path.isfile(f.path)]

    def __repr__(self) -> str:
        return f"Extension(name={self.name!r}, enabled={self.enabled})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Extension) and other._source is self._source

    def __hash__(self) -> int:
        return hash(id(self._source))


def all_extensions() -> list[Extension]:
    """Every extension of the running app, enabled or not, in load order (A1111 `extensions.extensions`; empty
    while no app runs, as A1111's list before `list_extensions()`)."""
    return [Extension(e) for e in HOST.current().extensions] if HOST.running() else []


def active() -> list[Extension]:
    """The enabled extensions (A1111 `extensions.active()`; the `disable_all_extensions` setting and the
    `--disable-*-extensions` flags are already applied to `enabled`)."""
    return [e for e in all_extensions() if e.enabled]


def list_extensions() -> None:
    """A1111 re-reads the extension folders here; the views above always read the app's current list."""


def find_extension(filename: str) -> Extension | None:
    """The extension whose folder holds `filename` (A1111 `extensions.find_extension`)."""
    target = os.path.realpath(filename)
    for extension in all_extensions():
        root = os.path.realpath(extension.path)
        if target == root or target.startswith(root + os.sep):
            return extension
    return None


def list_scripts(scriptdirname: str, extension: str, *, include_extensions: bool = True) -> list[ScriptFile]:
    """Files `<install>/<scriptdirname>/*<extension>`, then each enabled extension's `<scriptdirname>/*<extension>`
    (A1111 `scripts.list_scripts`; images-browser uses it to look for other extensions' script files)."""
    from modules.compat.paths import script_path

    folder = os.path.join(script_path, scriptdirname)
    found = [ScriptFile(script_path, n, os.path.join(folder, n)) for n in sorted(os.listdir(folder))] \
        if os.path.isdir(folder) else []
    found = [f for f in found if os.path.splitext(f.path)[1].lower() == extension.lower() and os.path.isfile(f.path)]
    if include_extensions:
        for ext in active():
            found += ext.list_files(scriptdirname, extension)
    return found


__all__ = ["Extension", "ScriptFile", "active", "all_extensions", "find_extension", "list_extensions",
           "list_scripts"]
