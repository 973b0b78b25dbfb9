"""Extensions tab (reference §3.9), "Installed" sub-tab: every folder of `extensions/` and `extensions-builtin/`
with its enabled state, remote URL, branch and commit read from its `.git`; "Apply and restart UI" writes the
`disabled_extensions` setting (A1111 `modules/ui_extensions.py`).
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import gradio as gr

from modules.ui.common import error_html


def git_info(folder: Path) -> tuple[str, str, str]:
    """(remote url, branch, short commit) read from `.git` files without running git ("" when unknown)."""
    git = folder / ".git"
    if not git.is_dir():
        return "", "", ""
    remote = branch = commit = ""
    config = configparser.ConfigParser(strict=False)
    try:
        config.read(git / "config", encoding="utf-8")
        remote = config.get('remote "origin"', "url", fallback="")
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if head.startswith("ref: "):
            ref = head[5:]
            branch = ref.rsplit("/", 1)[-1]
            ref_file = git / ref
            commit = ref_file.read_text(encoding="utf-8").strip() if ref_file.is_file() else ""
        else:
            commit = head
    except (OSError, configparser.Error):
        pass
    return remote, branch, commit[:8]


def installed_extensions(ctx: Any) -> list[dict[str, Any]]:
    """One row per extension folder: name, builtin flag, enabled, url, branch, commit."""
    disabled = set(ctx.settings.get("disabled_extensions") or [])
    mode = ctx.settings.get("disable_all_extensions")
    rows = []
    for root, builtin in ((ctx.paths.extensions_builtin_dir, True), (ctx.paths.extensions_dir, False)):
        root = Path(root)
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            url, branch, commit = git_info(folder)
            off = folder.name in disabled or mode == "all" or (mode == "extra" and not builtin)
            rows.append({"name": folder.name, "builtin": builtin, "enabled": not off, "url": url,
                         "branch": branch, "commit": commit})
    return rows


def build_extensions(ctx: Any) -> None:
    """Lay out the Installed sub-tab."""
    rows = installed_extensions(ctx)
    names = [r["name"] for r in rows]
    with gr.Tabs(elem_id="tabs_extensions"), gr.Tab("Installed", elem_id="extensions_installed_tab"):
        apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply")
        enabled = gr.CheckboxGroup(names, value=[r["name"] for r in rows if r["enabled"]], label="Enabled",
                                   elem_id="extensions_enabled")
        table = gr.Dataframe(value=[[r["name"], r["url"], r["branch"], r["commit"],
                                     "built-in" if r["builtin"] else ""] for r in rows] or None,
                             headers=["Extension", "URL", "Branch", "Version", ""], interactive=False,
                             elem_id="extensions_table")
        result = gr.HTML(elem_id="extensions_result")
    del table

    def apply_changes(on: list[str]) -> str:
        """Store the unchecked extensions in `disabled_extensions` and save config.json."""
        try:
            ctx.settings.set("disabled_extensions", [n for n in names if n not in (on or [])])
            ctx.settings.save()
        except Exception as exc:
            return error_html(str(exc))
        return "<div>Saved. Restart the server for the change to take effect.</div>"

    apply.click(apply_changes, enabled, result)
