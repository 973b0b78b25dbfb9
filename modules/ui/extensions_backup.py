"""The "Backup/Restore" sub-tab of the Extensions tab (A1111 `modules/ui_extensions.py`, `config_states.py`):
saved config states in a dropdown with a refresh button, a view of the chosen state, "Save current config" with
a name, and "Restore selected config state" with the restore type (extensions / webui / both).

Restoring extensions sets `restore_config_state_file` and restarts (A1111); the next start restores the
extensions (`config_states.restore_pending`). Without a launcher that restarts us the notice asks for a restart.
The web UI is never reset from here (see `config_states.webui_restore_note`). Both are refused when extension
access is not allowed (`manager.may_change_extensions`).
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import gradio as gr

from modules.extensions import config_states, manager
from modules.processing.context import AppContext
from modules.ui.common import error_html

RESTORE_TYPES = ["extensions", "webui", "both"]


def _installed(ctx: AppContext) -> list[manager.Extension]:
    return manager.discover_extensions(ctx.paths.extensions_dir, ctx.paths.extensions_builtin_dir,
                                       disabled=manager.disabled_names(ctx.settings),
                                       disable_all=str(ctx.settings.get("disable_all_extensions") or "none"),
                                       with_git=False)


def save_current(ctx: AppContext, name: str) -> config_states.ConfigState:
    """Write the current state named `name` into `config_states/`."""
    state = config_states.current_state(ctx.paths.script_dir, _installed(ctx))
    return config_states.read_state(config_states.save_state(ctx.paths.config_states_dir, name, state))


def state_html(state: config_states.ConfigState | None) -> str:
    """The chosen state as a table: the web UI's version, then each extension (A1111 "config state" view)."""
    if state is None:
        return "<p>No config state chosen.</p>"

    def when(value: object) -> str:
        return dt.datetime.fromtimestamp(float(value)).strftime("%Y-%m-%d %H:%M:%S") \
            if isinstance(value, int | float) else ""

    def cell(value: object) -> str:
        return f"<td>{html.escape('' if value is None else str(value))}</td>"

    webui = state.data.get("webui") or {}
    rows = ["<tr>" + cell("web UI") + cell(webui.get("remote")) + cell(webui.get("branch"))
            + cell((webui.get("commit_hash") or "")[:8]) + cell(when(webui.get("commit_date"))) + cell("") + "</tr>"]
    for name, entry in sorted((state.data.get("extensions") or {}).items()):
        entry = entry if isinstance(entry, dict) else {}
        rows.append("<tr>" + cell(name) + cell(entry.get("remote")) + cell(entry.get("branch"))
                    + cell((entry.get("commit_hash") or "")[:8]) + cell(when(entry.get("commit_date")))
                    + cell("enabled" if entry.get("enabled", True) else "disabled") + "</tr>")
    return (f"<p>Config state <b>{html.escape(state.name)}</b>, saved {when(state.created_at)} in "
            f"{html.escape(str(state.path))}</p><table class='config-state'><thead><tr><th>Name</th><th>URL</th>"
            "<th>Branch</th><th>Commit</th><th>Date</th><th>State</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def restore(ctx: AppContext, title: str, restore_type: str) -> str:
    """Restore the chosen state: extensions at the next start (sets `restore_config_state_file`, restarts when a
    launcher can), and a note on the web UI version."""
    allowed, reason = manager.may_change_extensions(ctx.flags)
    if not allowed:
        return error_html(reason)
    state = config_states.list_states(ctx.paths.config_states_dir).get(title or "")
    if state is None:
        return error_html(f"No config state named {title!r}; choose one from the list (refresh it first).")
    lines = []
    if restore_type in ("webui", "both"):
        lines.append(config_states.webui_restore_note(state.data, ctx.paths.script_dir))
    if restore_type in ("extensions", "both"):
        ctx.settings.set("restore_config_state_file", str(state.path))
        ctx.settings.save()
        if ctx.request_restart is not None:
            ctx.request_restart()
            lines.append(f"Extensions are restored from {state.name!r} now; the UI restarts.")
        else:
            lines.append(f"Extensions will be restored from {state.name!r} at the next start: restart the server.")
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines) or error_html(f"Unknown restore type {restore_type!r}")


def build_backup_tab(ctx: AppContext) -> None:
    """Lay out and wire the Backup/Restore sub-tab (call inside a gr.Tab)."""
    def titles() -> list[str]:
        return list(config_states.list_states(ctx.paths.config_states_dir))

    with gr.Row():
        chosen = gr.Dropdown(titles(), value=None, label="Saved Configs", elem_id="extension_backup_saved_configs",
                             scale=4)
        refresh = gr.Button("\U0001f504", elem_id="extension_backup_refresh", scale=0, min_width=40)
    with gr.Row():
        restore_type = gr.Radio(RESTORE_TYPES, value="extensions", label="State to restore",
                                elem_id="extension_backup_restore_type")
        restore_button = gr.Button("Restore Selected Config", variant="primary",
                                   elem_id="extension_backup_restore")
    with gr.Row():
        name = gr.Textbox("", label="Config Name", elem_id="config_backup_name", scale=4)
        save = gr.Button("Save Current Config", elem_id="config_backup_save", scale=1)
    result = gr.HTML(elem_id="extension_backup_result")
    view = gr.HTML(state_html(None), elem_id="extension_backup_view")

    def do_refresh(current: str | None) -> gr.Dropdown:
        names = titles()
        return gr.Dropdown(choices=names, value=current if current in names else None)

    def show(title: str | None) -> str:
        return state_html(config_states.list_states(ctx.paths.config_states_dir).get(title or ""))

    def do_save(text: str) -> tuple[Any, str, Any]:
        try:
            state = save_current(ctx, text)
        except (OSError, ValueError) as exc:
            return gr.Dropdown(), error_html(f"Could not save the config state: {exc}"), gr.update()
        title = next((t for t, s in config_states.list_states(ctx.paths.config_states_dir).items()
                      if s.path == state.path), None)
        return (gr.Dropdown(choices=titles(), value=title), f"<p>Saved config state to {html.escape(str(state.path))}"
                "</p>", state_html(state))

    refresh.click(do_refresh, chosen, chosen)
    chosen.change(show, chosen, view)
    save.click(do_save, name, [chosen, result, view])
    restore_button.click(lambda title, kind: restore(ctx, title, kind), [chosen, restore_type], result)
