"""The Available tab's filter and order rules (A1111 `ui_extensions.py`): hidden tags incl. the `installed`
pseudo-tag, the eight orders with missing fields last, and the search over name/URL/description/tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modules.extensions import manager
from modules.ui import extensions_index

ENTRIES: list[dict[str, Any]] = [
    {"name": "b-one", "url": "https://x/b.git", "description": "", "tags": ["script"], "added": "2023-02-01",
     "commit_time": "2024-05-01", "created_at": "2020-01-01", "stars": 3},
    {"name": "A-two", "url": "https://x/a.git", "description": "nice", "tags": ["ads"], "added": "2023-01-01",
     "stars": 9},
    {"name": "c-three", "url": "https://x/c.git", "description": "", "tags": [], "added": "2024-01-01",
     "commit_time": "2023-01-01", "created_at": "2022-01-01"},
]
INDEX = manager.ExtensionIndex({"script": "", "ads": ""}, ENTRIES)


def names(order: str, hide: list[str] | None = None, search: str = "",
          installed: list[manager.Extension] | None = None) -> list[str]:
    shown, _ = extensions_index.visible_entries(INDEX, installed or [], hide or [], order, search)
    return [e["name"] for e, _done in shown]


def test_orders() -> None:
    assert names("newest first") == ["c-three", "b-one", "A-two"]
    assert names("oldest first") == ["A-two", "b-one", "c-three"]
    assert names("a-z") == ["A-two", "b-one", "c-three"]
    assert names("z-a") == ["c-three", "b-one", "A-two"]
    assert names("internal order") == ["b-one", "A-two", "c-three"]
    assert names("update time") == ["b-one", "c-three", "A-two"]  # missing commit_time last
    assert names("create time") == ["c-three", "b-one", "A-two"]
    assert names("stars") == ["A-two", "b-one", "c-three"]


def test_hidden_tags_installed_and_search(tmp_path: Path) -> None:
    assert names("internal order", ["ads"]) == ["b-one", "c-three"]
    assert names("internal order", search="NICE") == ["A-two"]
    shown, _ = extensions_index.visible_entries(INDEX, [], ["ads", "script"], "internal order", "", "show", "or")
    assert [e["name"] for e, _ in shown] == ["b-one", "A-two"]
    shown, _ = extensions_index.visible_entries(INDEX, [], ["ads", "script"], "internal order", "", "hide", "and")
    assert [e["name"] for e, _ in shown] == ["b-one", "A-two", "c-three"]
    assert names("internal order", search="x/c") == ["c-three"]
    ext = manager.Extension("b", tmp_path, git=manager.GitInfo("https://x/b", "main", "0" * 40, 0))
    assert names("internal order", ["installed"], installed=[ext]) == ["A-two", "c-three"]
    html = extensions_index.index_html(INDEX, [ext], [], "internal order", "")
    assert html.count(">Install</button>") == 2 and "Installed" in html
    assert extensions_index.tag_choices(INDEX)[:4] == ["script", "ads", "localization", "installed"]
