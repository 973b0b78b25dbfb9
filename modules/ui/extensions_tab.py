"""Extensions tab (reference §3.9) over `modules.extensions.manager`: "Installed" (name, URL, branch, version,
update status; enable/disable + "Apply and restart UI"; "Check for updates"; a notice when none is installed),
"Available" (the extension index with A1111's tag filters, order and search, an Install button per row:
`modules/ui/extensions_index.py`), "Install from URL" and "Backup/Restore" (`modules/ui/extensions_backup.py`).

Install (from URL or from an index row) takes `https://` URLs; on a server that only listens on this machine a
local folder or `file://` URL is accepted too (A1111 accepts whatever git can clone; an exposed server keeps to
https). "Apply and restart UI" first saves a "Backup (pre-apply)" config state, so the previous set can be restored.

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
from modules.ui import extensions_index
from modules.ui.common import error_html
from modules.ui.extensions_backup import build_backup_tab, save_current

HEADERS = ["Extension", "URL", "Branch", "Version", "Date", "Update", ""]
NO_EXTENSIONS = ("<p>No extensions are installed. Find one in the <b>Available</b> tab or install one with "
                 "<b>Install from URL</b>; extensions live in {folder}.</p>")


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


def install(ctx: AppContext, address: str, branch_name: str | None = None, folder: str | None = None) -> str:
    """Clone an extension into extensions/ and run its install.py (Install from URL and the index's Install
    buttons); refused when extension access is not allowed. Returns the notice."""
    reason = _refused(ctx)
    if reason:
        return error_html(reason)
    try:
        path = manager.install_extension(address, Path(ctx.paths.extensions_dir), branch=branch_name or None,
                                         dirname=folder or None, allow_local=not manager.server_exposed(ctx.flags))
    except (manager.ExtensionError, OSError) as exc:
        return error_html(f"Install failed: {exc}")
    return (f"<div>Installed into {html.escape(str(path))}. Use \"Apply and restart UI\" in the Installed "
            "tab to load it.</div>")


def build_extensions(ctx: AppContext) -> None:
    """Lay out and wire the Installed / Available / Install from URL / Backup/Restore sub-tabs."""
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
                                       elem_id="extensions_enabled", visible=bool(names))
            none_notice = gr.HTML(NO_EXTENSIONS.format(folder=html.escape(str(ctx.paths.extensions_dir))),
                                  elem_id="extensions_none", visible=not extensions)
            table = gr.Dataframe(value=table_rows(extensions) or None, headers=HEADERS, interactive=False,
                                 elem_id="extensions_table", visible=bool(extensions))
            result = gr.HTML(elem_id="extensions_result")
        with gr.Tab("Available", elem_id="extensions_available_tab"):
            with gr.Row():
                index_url = gr.Textbox(label="Extension index URL", value=manager.DEFAULT_INDEX_URL,
                                       elem_id="extensions_index_url", scale=4)
                load = gr.Button("Load from:", elem_id="extensions_index_load", scale=1)
            with gr.Row():
                hide_tags = gr.CheckboxGroup(extensions_index.tag_choices(None),
                                             value=list(extensions_index.DEFAULT_HIDDEN),
                                             label="Hide extensions with tags", elem_id="extensions_hide_tags")
                with gr.Column():
                    showing = gr.Radio(extensions_index.SHOWING_TYPES, value="hide", label="Showing type",
                                       elem_id="extensions_showing_type")
                    filtering = gr.Radio(extensions_index.FILTERING_TYPES, value="or", label="Filtering type",
                                         elem_id="extensions_filtering_type")
                order = gr.Radio(extensions_index.ORDERS, value=extensions_index.ORDERS[0], label="Order",
                                 elem_id="extensions_order")
            search = gr.Textbox(label="Search", placeholder="Search...", elem_id="extensions_search")
            index_state = gr.State(None)
            available = gr.HTML(elem_id="extensions_available")
            index_install_result = gr.HTML(elem_id="extensions_index_install_result")
            index_install_url = gr.Textbox(visible="hidden", elem_id="extensions_index_install_url")
            index_install = gr.Button(visible="hidden", elem_id=extensions_index.INSTALL_TRIGGER)
        with gr.Tab("Install from URL", elem_id="extensions_install_tab"):
            url = gr.Textbox(label="URL for extension's git repository", elem_id="extensions_install_url")
            branch = gr.Textbox(label="Specific branch name", placeholder="Leave empty for default main branch",
                                elem_id="extensions_install_branch")
            dirname = gr.Textbox(label="Local directory name", placeholder="Leave empty for auto",
                                 elem_id="extensions_install_dirname")
            install_button = gr.Button("Install", variant="primary", elem_id="extensions_install_button")
            install_result = gr.HTML(elem_id="extensions_install_result")
        with gr.Tab("Backup/Restore", elem_id="extensions_backup_tab"):
            build_backup_tab(ctx)

    def apply_changes(on: list[str]) -> str:
        """Save a "Backup (pre-apply)" config state, store the unchecked extensions in `disabled_extensions`, save
        config.json and restart (or ask for a restart)."""
        reason = _refused(ctx)
        if reason:
            return error_html(reason)
        try:
            save_current(ctx, "Backup (pre-apply)")
            backup = ""
        except (OSError, ValueError) as exc:  # a read-only install folder must not block the change
            backup = error_html(f"No backup config state was written: {exc}")
        try:
            ctx.settings.set("disabled_extensions", [n for n in names if n not in (on or [])])
            ctx.settings.save()
        except Exception as exc:
            return error_html(str(exc))
        if ctx.request_restart is not None:
            ctx.request_restart()
            return backup + "<div>Saved; the UI restarts now.</div>"
        return backup + "<div>Saved. Restart the server for the change to take effect.</div>"

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

    view: list[Any] = [hide_tags, order, search, showing, filtering]

    def load_index(address: str, hidden: list[str], ordering: str, text: str, shown_as: str, match: str
                   ) -> tuple[Any, Any, str]:
        """Download the extension index (A1111 "Load from:"), offer its tags and show it filtered."""
        try:
            index = manager.load_extension_index(address.strip() or None)
        except manager.ExtensionError as exc:
            return None, gr.update(), error_html(str(exc))
        choices = extensions_index.tag_choices(index)
        return (index, gr.CheckboxGroup(choices=choices, value=[t for t in hidden or [] if t in choices]),
                extensions_index.index_html(index, discover(ctx), hidden, ordering, text, shown_as, match))

    load.click(load_index, [index_url, *view], [index_state, hide_tags, available])

    def show_index(index: manager.ExtensionIndex | None, hidden: list[str], ordering: str, text: str,
                   shown_as: str = "hide", match: str = "or") -> Any:
        """Re-filter / re-order the loaded index (no download)."""
        if index is None:
            return gr.update()
        return extensions_index.index_html(index, discover(ctx), hidden, ordering, text, shown_as, match)

    for control in view:
        control.change(show_index, [index_state, *view], available, show_progress="hidden",
                       trigger_mode="always_last")

    def install_from_index(address: str, index: manager.ExtensionIndex | None, hidden: list[str], ordering: str,
                           text: str, shown_as: str, match: str) -> tuple[str, Any, Any, Any]:
        """An index row's Install button: the same install as Install from URL, then the row says "Installed"."""
        notice = install(ctx, address)
        found = discover(ctx)
        return (notice, show_index(index, hidden, ordering, text, shown_as, match), gr.update(visible=not found),
                gr.Dataframe(value=table_rows(found) or None, visible=bool(found)))

    index_install.click(install_from_index, [index_install_url, index_state, *view],
                        [index_install_result, available, none_notice, table],
                        js="(url, ...rest) => [window.webuiIndexInstallUrl || url, ...rest]")

    def install_from_url(address: str, branch_name: str, folder: str) -> tuple[str, Any, Any]:
        """Install from URL: clone, run install.py, show the new extension in the Installed list."""
        notice = install(ctx, address, branch_name, folder)
        found = discover(ctx)
        return notice, gr.update(visible=not found), gr.Dataframe(value=table_rows(found) or None,
                                                                  visible=bool(found))

    install_button.click(install_from_url, [url, branch, dirname], [install_result, none_notice, table])
