"""Scripts and extensions (layer 3): the public plugin API (`api`), the script runner, callbacks, the
extension manager and the logic of the built-in scripts.  See docs/extensions.md.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """A1111 `modules.extensions` names for extensions (`extensions.active()`, `extensions.extensions`,
    `Extension`, `list_extensions`, `find_extension`): views over the running app (`modules.compat.extensions`)."""
    from modules.compat import extensions as compat

    if name == "extensions":
        return compat.all_extensions()
    if name in ("active", "Extension", "list_extensions", "find_extension", "ScriptFile"):
        return getattr(compat, name)
    raise AttributeError(f"module 'modules.extensions' has no attribute {name!r}")
