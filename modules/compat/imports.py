"""How extension code is imported (A1111 `modules/scripts.py::load_scripts`, `script_loading.load_module`).

* While a script file of an extension imports, the extension's folder is first on `sys.path` (A1111 does the
  same), so `import my_ext_pkg` finds `extensions/<name>/my_ext_pkg/` and `from scripts.helper import x` finds
  `extensions/<name>/scripts/helper.py`. The path is restored afterwards; packages already imported keep working.
* Python files inside extension folders (the script files and every module they import from their folder) see
  `import gradio` as the Gradio 3 compatibility module (`modules.compat.gradio3`); nothing else in the process
  does. This is done by an import finder that only answers for files under an extension folder.
* An extension that needs A1111 internals this app does not have (`modules.sd_hijack`, the `ldm`/`sgm` model
  trees, Forge's modules) fails to load with one line naming the extension and what it needed; the app goes on.
"""

from __future__ import annotations

import builtins
import contextlib
import importlib.abc
import importlib.machinery
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from modules.extensions.script import basedir_of

INTERNALS = {
    "modules.sd_hijack": "A1111's model hijack (text encoder and attention internals)",
    "modules.sd_samplers_kdiffusion": "A1111's k-diffusion sampler wrappers",
    "modules.sd_samplers_common": "A1111's sampler internals",
    "modules.sd_hijack_optimizations": "A1111's attention optimizations",
    "modules.sd_unet": "A1111's UNet replacement hooks",
    "modules.lowvram": "A1111's low-VRAM model internals",
    "ldm": "the LDM model tree (ldm.*) of A1111's repositories",
    "sgm": "the SGM model tree (sgm.*) of A1111's repositories",
    "repositories": "A1111's repositories folder",
    "modules_forge": "Forge's modules",
    "backend": "Forge's backend",
}
"""Modules that exist only inside A1111/Forge's model code (what a failing extension is told it needed)."""


class ExtensionFolders:
    """The registry of extension folders whose Python files get the Gradio 3 idioms."""

    def __init__(self) -> None:
        self._roots: list[Path] = []
        self._lock = threading.Lock()

    def add(self, folder: Path) -> None:
        with self._lock:
            resolved = folder.resolve()
            if resolved not in self._roots:
                self._roots.append(resolved)

    def remove(self, folder: Path) -> None:
        with self._lock:
            resolved = folder.resolve()
            self._roots = [root for root in self._roots if root != resolved]

    def roots(self) -> list[Path]:
        with self._lock:
            return list(self._roots)

    def covers(self, path: str | Path) -> bool:
        """True when `path` lies inside an extension folder."""
        try:
            resolved = Path(path).resolve()
        except OSError:
            return False
        return any(resolved.is_relative_to(root) for root in self.roots())


FOLDERS = ExtensionFolders()
"""Extension folders seen by the script loader (a registry)."""


def _gradio3_import(name: str, globals: Any = None, locals: Any = None, fromlist: Sequence[str] = (),
                    level: int = 0) -> ModuleType:
    """`__import__` of extension modules: `gradio` is the Gradio 3 compatibility module."""
    if level == 0 and name == "gradio":
        from modules.compat.gradio3 import module

        return module()
    return builtins.__import__(name, globals, locals, fromlist, level)


def extension_builtins() -> dict[str, Any]:
    """The builtins extension modules run with (the real ones, with `__import__` above)."""
    return {**vars(builtins), "__import__": _gradio3_import}


def prepare_extension_module(module: ModuleType) -> None:
    """Give a module from an extension folder the extension builtins (before its code runs)."""
    module.__dict__["__builtins__"] = extension_builtins()


class _ExtensionLoader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module: ModuleType) -> None:
        prepare_extension_module(module)
        super().exec_module(module)


class ExtensionFinder(importlib.abc.MetaPathFinder):
    """Finds modules inside extension folders (only those) and loads them with the extension builtins."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        roots = FOLDERS.roots()
        if not roots:
            return None
        if path is None:  # top-level name: only when an extension folder holds it
            head = fullname.partition(".")[0]
            if not any((root / head).is_dir() or (root / f"{head}.py").is_file() for root in roots):
                return None
        elif not any(FOLDERS.covers(entry) for entry in path):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        if not FOLDERS.covers(spec.origin):
            return None
        spec.loader = _ExtensionLoader(fullname, spec.origin)
        return spec


_FINDER = ExtensionFinder()


def _install_finder() -> None:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def missing_internal(exc: ImportError) -> str | None:
    """What A1111/Forge module a failed import needed, or None when the missing module is something else (a
    third-party package the extension's install.py should have installed)."""
    names = [exc.name or ""]
    found = re.search(r"cannot import name '([\w.]+)' from '([\w.]+)'", str(exc))
    if found:
        names.insert(0, f"{found.group(2)}.{found.group(1)}")
    for name in names:
        for prefix, what in INTERNALS.items():
            if name == prefix or name.startswith(prefix + "."):
                return f"{name} ({what})"
    if found and found.group(2).startswith("modules.") and found.group(2) in sys.modules:
        return f"{names[0]} (an A1111 name; the module is there, this name is not)"
    for name in names:
        if name.startswith("modules.") and name.count(".") == 1:
            return f"{name} (an A1111 module)"
    return None


@contextlib.contextmanager
def script_load_scope(path: Path, extension: str, module: ModuleType) -> Iterator[None]:
    """The context a script file imports in (`ScriptLoadScope` of `modules.extensions.runner`): for extension
    files, the folder on `sys.path`, the Gradio 3 idioms and a clear error for missing A1111 internals."""
    if extension == "base":
        yield
        return
    folder = Path(basedir_of(str(path)))
    FOLDERS.add(folder)
    _install_finder()
    prepare_extension_module(module)
    saved = list(sys.path)
    sys.path.insert(0, str(folder))
    try:
        yield
    except ImportError as exc:
        needed = missing_internal(exc)
        if needed is None:
            raise
        raise ImportError(f"extension {extension!r} needs {needed}, which this web UI does not provide; "
                          f"{path.name} is not loaded") from exc
    finally:
        sys.path[:] = saved


def forget_extension_modules(folders: Sequence[Path]) -> None:
    """Drop the modules imported from `folders` (and the folders) when their app stops, so an app started later in
    the same process imports its own copies (A1111 has one app per process and never needs this)."""
    resolved = [Path(f).resolve() for f in folders]

    def inside(path: Any) -> bool:
        try:
            return path is not None and any(Path(str(path)).resolve().is_relative_to(r) for r in resolved)
        except (OSError, ValueError):
            return False

    for name, module in list(sys.modules.items()):
        if inside(getattr(module, "__file__", None)):
            sys.modules.pop(name, None)
    for folder in folders:
        FOLDERS.remove(Path(folder))


def extension_import_folder(folder: Path) -> contextlib.AbstractContextManager[None]:
    """`sys.path` with `folder` first, for running an extension's `install.py`/`preload.py` in this process."""
    FOLDERS.add(folder)
    _install_finder()

    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        saved = list(sys.path)
        sys.path.insert(0, str(folder))
        try:
            yield
        finally:
            sys.path[:] = saved

    return scope()
