"""Imports point one way: the layer table of docs/architecture.md, checked on every module's AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "modules"

LAYER = {
    "settings": 0, "cli": 0, "memory": 0, "prompts": 0, "runtime": 0,
    "models": 1,
    "sampling": 2, "images": 2, "postprocessing": 2, "interrogate": 2,
    "processing": 3, "extensions": 2,
    "api": 4, "ui": 4, "training": 4,
    "compat": 5,
}
# Same-layer imports that the contract allows (importer -> imported).
ALLOWED_SIBLINGS = {("cli", "settings"), ("runtime", "settings"), ("ui", "training"), ("api", "training")}
# Layer-2 packages that must stay independent of the model code.
FORBIDDEN = {("sampling", "models")}


def _package_of(path: Path) -> str | None:
    parts = path.relative_to(MODULES).parts
    return parts[0] if len(parts) > 1 else None


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "modules":
                names = [f"modules.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # resolve `from ..x import y` against this file's own package path
            package = ["modules", *path.relative_to(MODULES).parts[:-1]]
            base = package[: len(package) - (node.level - 1)]
            names = [".".join([*base, node.module] if node.module else base)]
        for name in names:
            parts = name.split(".")
            if parts[0] == "modules" and len(parts) > 1 and parts[1] in LAYER:
                found.add(parts[1])
    return found


def _module_files() -> list[Path]:
    return sorted(p for p in MODULES.rglob("*.py") if _package_of(p) in LAYER)


A1111_NAME_SHIMS = {MODULES / "extensions" / "__init__.py", MODULES / "ui" / "__init__.py"}
"""A1111's `modules.extensions` and `modules.ui` have the names of our own packages, so their A1111 attributes are
served from the package `__init__` by a module `__getattr__` that imports `modules.compat` lazily (only when an
extension asks); that one upward import is the documented exception (docs/architecture.md)."""


@pytest.mark.parametrize("path", _module_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    own = _package_of(path)
    assert own is not None
    for imported in _imported_packages(path):
        if imported == own or (imported == "compat" and path in A1111_NAME_SHIMS):
            continue
        pair = (own, imported)
        assert pair not in FORBIDDEN, f"{path}: {own} must not import {imported}"
        if LAYER[imported] < LAYER[own] or pair in ALLOWED_SIBLINGS:
            continue
        pytest.fail(f"{path}: layer {LAYER[own]} package '{own}' imports '{imported}' (layer {LAYER[imported]})")


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in MODULES.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert packages <= set(LAYER), f"packages without a layer: {packages - set(LAYER)}"
