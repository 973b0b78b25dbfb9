"""Our own packages are imported at module top and never inside `try: … except ImportError` (a broken import must
fail loudly at start-up instead of turning a feature off, e.g. "generation not available")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.joinpath("modules").rglob("*.py"), ROOT / "webui.py", ROOT / "launch.py",
                *ROOT.joinpath("scripts").glob("*.py")])
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _imports_our_package(node: ast.stmt) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Import) and any(a.name.split(".")[0] in ("modules", "webui") for a in child.names):
            return True
        if isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").split(".")[0] in (
                "modules", "webui"):
            return True
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and \
                child.func.attr == "import_module" and child.args and isinstance(child.args[0], ast.Constant) and \
                str(child.args[0].value).split(".")[0] in ("modules", "webui"):
            return True
    return False


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
    return any(isinstance(n, ast.Name) and n.id in IMPORT_ERRORS for n in names)


ALLOWED = {("launch.py", "start")}
"""`launch.start` turns a missing webui.py (an incomplete clone) into one line; it re-raises every other error."""


def _functions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    out: list[tuple[str, ast.AST]] = [("<module>", tree)]
    out += [(n.name, n) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_of_our_packages_is_swallowed(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed_lines: set[int] = set()
    for name, function in _functions(tree):
        if (str(path.relative_to(ROOT)), name) in ALLOWED:
            allowed_lines |= {n.lineno for n in ast.walk(function) if isinstance(n, ast.Try)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_imports_our_package(stmt) for stmt in node.body) and \
                any(_catches_import_errors(h) for h in node.handlers):
            if node.lineno in allowed_lines:
                continue
            raise AssertionError(f"{path.relative_to(ROOT)}:{node.lineno}: an import of our own package is "
                                 "wrapped in try/except; import it at module top and let a broken import fail")
