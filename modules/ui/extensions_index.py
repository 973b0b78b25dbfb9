"""The "Available" sub-tab of the Extensions tab: the extension index filtered and ordered as A1111 does
(`modules/ui_extensions.py`, reference §3.9), with an **Install** button per row.

* "Hide extensions with tags": every tag of the index plus A1111's pseudo-tag `installed`; by default `ads`,
  `localization` and `installed` are checked. "Showing type" hide (default: checked tags hide an entry) or show
  (only entries with checked tags are shown); "Filtering type" or (default: any checked tag counts) or and (all
  checked tags must be on the entry).
* "Order": newest first / oldest first (index field `added`), a-z / z-a (name, case-insensitive), internal order
  (as listed), update time (`commit_time`, newest first), create time (`created_at`, newest first), stars (most
  first). Missing fields sort last.
* Search: case-insensitive substring of name, URL, description or tags.
* Installed rows say "Installed"; other rows carry an Install button whose `data-url` a page-side handler hands to
  a hidden trigger (A1111 `install_extension_from_index`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from modules.extensions import manager

SHOWING_TYPES = ["hide", "show"]
FILTERING_TYPES = ["or", "and"]
ORDERS = ["newest first", "oldest first", "a-z", "z-a", "internal order", "update time", "create time", "stars"]
"""A1111's "Order" radio choices, in its order."""
BASE_TAGS = ["script", "ads", "localization", "installed"]
"""Tags A1111 always offers in "Hide extensions with tags"."""
DEFAULT_HIDDEN = ["ads", "localization", "installed"]
"""Checked by default (A1111)."""
INSTALL_TRIGGER = "extensions_index_install_trigger"
INSTALL_JS = ("window.webuiIndexInstallUrl = this.dataset.url; this.disabled = true; this.innerText = 'Installing...';"
              f" document.getElementById('{INSTALL_TRIGGER}').click(); return false;")


def tag_choices(index: manager.ExtensionIndex | None) -> list[str]:
    """A1111's base tags, then the index's own tags (declared in `tags` or used by an entry), each once."""
    found: list[str] = list(BASE_TAGS)
    if index is not None:
        for tag in [*index.tags, *(t for e in index.extensions for t in e.get("tags") or [])]:
            if str(tag) not in found:
                found.append(str(tag))
    return found


def _entry_tags(entry: dict[str, Any], installed: bool) -> list[str]:
    tags = [str(t) for t in entry.get("tags") or []]
    return [*tags, "installed"] if installed and "installed" not in tags else tags


def _order(entries: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """Sort as A1111's "Order" radio; entries missing the field go last; ties keep the index order."""
    def by(field: str, descending: bool) -> list[dict[str, Any]]:
        present = [e for e in entries if e.get(field) not in (None, "")]
        missing = [e for e in entries if e.get(field) in (None, "")]
        return sorted(present, key=lambda e: e[field], reverse=descending) + missing

    if order == "oldest first":
        return by("added", False)
    if order == "a-z":
        return sorted(entries, key=lambda e: str(e["name"]).lower())
    if order == "z-a":
        return sorted(entries, key=lambda e: str(e["name"]).lower(), reverse=True)
    if order == "internal order":
        return list(entries)
    if order == "update time":
        return by("commit_time", True)
    if order == "create time":
        return by("created_at", True)
    if order == "stars":
        return by("stars", True)
    return by("added", True)  # newest first (A1111's default)


def _tag_filter_passes(tags: Sequence[str], checked: set[str], showing: str, filtering: str) -> bool:
    """Whether an entry with `tags` stays visible under the tag checkboxes, "Showing type" and "Filtering type"."""
    if not checked:
        return True
    matched = checked.issubset(tags) if filtering == "and" else bool(checked.intersection(tags))
    return matched if showing == "show" else not matched


def visible_entries(index: manager.ExtensionIndex, installed: Iterable[manager.Extension], hide_tags: Sequence[str],
                    order: str, search: str, showing: str = "hide", filtering: str = "or"
                    ) -> tuple[list[tuple[dict[str, Any], bool]], int]:
    """(entry, installed) pairs left after the tag filter and the search, in the chosen order; and how many were
    hidden."""
    urls = manager.installed_urls(installed)
    hidden_tags = set(hide_tags or [])
    needle = (search or "").strip().lower()
    shown: list[tuple[dict[str, Any], bool]] = []
    for entry in _order(index.extensions, order or ORDERS[0]):
        done = manager.normalise_remote(entry.get("url")) in urls
        tags = _entry_tags(entry, done)
        text = " ".join([str(entry["name"]), str(entry["url"]), str(entry.get("description", "")), *tags]).lower()
        if not _tag_filter_passes(tags, hidden_tags, showing, filtering) or (needle and needle not in text):
            continue
        shown.append((entry, done))
    return shown, len(index.extensions) - len(shown)


def _details(entry: dict[str, Any]) -> str:
    parts = [f"{label}: {html.escape(str(entry[key]))}" for key, label in
             (("added", "Added"), ("created_at", "Created"), ("commit_time", "Update"), ("stars", "Stars"))
             if entry.get(key) not in (None, "")]
    return f"<p class='info'><span class='date_added'>{' | '.join(parts)}</span></p>" if parts else ""


def index_html(index: manager.ExtensionIndex, installed: Iterable[manager.Extension], hide_tags: Sequence[str] = (),
               order: str = ORDERS[0], search: str = "", showing: str = "hide", filtering: str = "or") -> str:
    """The Available table: name (link), tags, description and dates, and an Install button or "Installed"."""
    shown, hidden = visible_entries(index, list(installed), hide_tags, order, search, showing, filtering)
    rows = []
    for entry, done in shown:
        url = html.escape(str(entry["url"]), quote=True)
        tags = " ".join(f"<span class='extension-tag'>{html.escape(t)}</span>" for t in _entry_tags(entry, done))
        action = ("<span class='extension-installed'>Installed</span>" if done else
                  f"<button class='lg secondary gradio-button custom-button extension-install' data-url='{url}' "
                  f"onclick=\"{INSTALL_JS}\">Install</button>")
        rows.append(f"<tr data-url='{url}'><td><a href='{url}' target='_blank' rel='noopener'>"
                    f"{html.escape(str(entry['name']))}</a><br>{tags}</td>"
                    f"<td>{html.escape(str(entry.get('description', '')))}{_details(entry)}</td>"
                    f"<td>{action}</td></tr>")
    summary = f"<p id='extensions_available_count'>Extensions shown: {len(shown)}, hidden: {hidden}</p>"
    return (summary + "<table class='extensions-index'><thead><tr><th>Extension</th><th>Description</th>"
            "<th>Action</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
