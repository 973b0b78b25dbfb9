"""Extensions tab (reference §3.9) over `modules.extensions.manager`: "Installed" (name, URL, branch, version,
update status; enable/disable + "Apply and restart UI"; "Check for updates"), "Available" (load the extension index
from a URL, mark installed entries) and "Install from URL".

Changing extensions is refused with the manager's notice when `may_change_extensions(flags)` says no (A1111:
`--listen`/`--share` without `--enable-insecure-extension-access`). A1111 `modules/ui_extensions.py`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from modules.extensions import manager
from modules.processing.context import AppContext
from modules.ui.common import error_html

HEADERS = ["Extension", "URL", "Branch", "Version", "Date", "Update", ""]


def discover(ctx: AppContext) -> list[manager.Extension]:
    """The installed extensions with their enabled state from the settings."""
    return manager.discover_extensions(ctx.paths.extensions_dir, ctx.paths.extensions_builtin_dir,
                                       disabled=manager.disabled_names(ctx.settings),
                                       disable_all=str(ctx.settings.get("disable_all_extensions") or "none"))


def table_rows(extensions: list[manager.Extension]) -> list[list[str]]:
    """One row per extension: name, remote, branch, version (short hash), commit date, update status, built-in."""
    import time

    rows = []
    for ext in extensions:
        git = ext.git
        date = time.strftime("%Y-%m-%d", time.gmtime(git.commit_date)) if git and git.commit_date else ""
        rows.append([ext.name, (git.remote or "") if git else "", (git.branch or "") if git else "",
                     git.version if git else "", date, ext.update_status, "built-in" if ext.is_builtin else ""])
    return rows


def _refused(ctx: AppContext) -> str | None:
    allowed, reason = manager.may_change_extensions(ctx.flags)
    return None if allowed else reason


def index_html(index: manager.ExtensionIndex, extensions: list[manager.Extension]) -> str:
    """The Available table: name (link), description, tags, and "Installed" for entries already present."""
    rows = []
    for entry in index.extensions:
        status = "Installed" if manager.is_installed(entry, extensions) else ""
        rows.append(f"<tr><td><a href='{html.escape(entry['url'])}' target='_blank'>{html.escape(entry['name'])}"
                    f"</a></td><td>{html.escape(str(entry.get('description', '')))}</td>"
                    f"<td>{html.escape(', '.join(map(str, entry.get('tags') or [])))}</td><td>{status}</td></tr>")
    return ("<table class='extensions-index'><thead><tr><th>Extension</th><th>Description</th><th>Tags</th>"
            "<th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def build_extensions(ctx: AppContext) -> None:
    """Lay out and wire the Installed / Available / Install from URL sub-tabs."""
    extensions = discover(ctx)
    names = [e.name for e in extensions]
    refused = _refused(ctx)
    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", elem_id="extensions_installed_tab"):
            if refused:
                gr.HTML(error_html(refused), elem_id="extensions_disabled_notice")
            with gr.Row():
                apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply")
                check = gr.Button("Check for updates", elem_id="extensions_check")
            enabled = gr.CheckboxGroup(names, value=[e.name for e in extensions if e.enabled], label="Enabled",
                                       elem_id="extensions_enabled")
            table = gr.Dataframe(value=table_rows(extensions) or None, headers=HEADERS, interactive=False,
                                 elem_id="extensions_table")
            result = gr.HTML(elem_id="extensions_result")
        with gr.Tab("Available", elem_id="extensions_available_tab"):
            with gr.Row():
                index_url = gr.Textbox(label="Extension index URL", value=manager.DEFAULT_INDEX_URL,
                                       elem_id="extensions_index_url", scale=4)
                load = gr.Button("Load from:", elem_id="extensions_index_load", scale=1)
            available = gr.HTML(elem_id="extensions_available")
        with gr.Tab("Install from URL", elem_id="extensions_install_tab"):
            url = gr.Textbox(label="URL for extension's git repository", elem_id="extensions_install_url")
            branch = gr.Textbox(label="Specific branch name", placeholder="Leave empty for default main branch",
                                elem_id="extensions_install_branch")
            dirname = gr.Textbox(label="Local directory name", placeholder="Leave empty for auto",
                                 elem_id="extensions_install_dirname")
            install = gr.Button("Install", variant="primary", elem_id="extensions_install_button")
            install_result = gr.HTML(elem_id="extensions_install_result")

    def apply_changes(on: list[str]) -> str:
        """Store the unchecked extensions in `disabled_extensions`, save config.json and reload the page."""
        reason = _refused(ctx)
        if reason:
            return error_html(reason)
        try:
            ctx.settings.set("disabled_extensions", [n for n in names if n not in (on or [])])
            ctx.settings.save()
        except Exception as exc:
            return error_html(str(exc))
        if ctx.request_restart is not None:
            ctx.request_restart()
            return "<div>Saved; the UI restarts now.</div>"
        return "<div>Saved. Restart the server for the change to take effect.</div>"

    apply.click(apply_changes, enabled, result)

    def check_updates() -> tuple[Any, str]:
        """`git fetch` every git extension and show "behind"/"latest" (A1111 "Check for updates")."""
        found = discover(ctx)
        errors = []
        for ext in found:
            if ext.git is None:
                continue
            try:
                manager.check_for_updates(ext)
            except manager.ExtensionError as exc:
                ext.update_status = "error"
                errors.append(f"{ext.name}: {exc}")
        return table_rows(found) or None, "".join(error_html(e) for e in errors) or "<div>Checked.</div>"

    check.click(check_updates, None, [table, result])

    def load_index(address: str) -> str:
        """Download and show the extension index (A1111 "Load from:")."""
        try:
            index = manager.load_extension_index(address.strip() or None)
        except manager.ExtensionError as exc:
            return error_html(str(exc))
        return index_html(index, discover(ctx))

    load.click(load_index, index_url, available)

    def install_from_url(address: str, branch_name: str, folder: str) -> str:
        """Clone the repository into extensions/ and run its install.py; refused when not allowed."""
        reason = _refused(ctx)
        if reason:
            return error_html(reason)
        try:
            path = manager.install_extension(address, Path(ctx.paths.extensions_dir), branch=branch_name or None,
                                             dirname=folder or None)
        except (manager.ExtensionError, OSError) as exc:
            return error_html(f"Install failed: {exc}")
        return (f"<div>Installed into {html.escape(str(path))}. Use \"Apply and restart UI\" in the Installed "
                "tab to load it.</div>")

    install.click(install_from_url, [url, branch, dirname], install_result)
