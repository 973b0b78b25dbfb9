"""Special pages of the Settings tab (A1111 `ui_settings.py`): **Sysinfo** (download the system-information JSON,
the same document `--dump-sysinfo` writes), **Actions** ("Unload SD checkpoint to RAM", "Load SD checkpoint to
VRAM", "Calculate hash for all checkpoint (may take a long time)"), **Defaults** (the settings whose value differs
from the default, with a button that reverts the chosen ones) and **Licenses** (`html/licenses.html`, as A1111
shows its `html/licenses.html`).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.settings import SettingsError


def write_sysinfo(ctx: AppContext) -> Path:
    """The sysinfo JSON in a temp file named as A1111 names its download (`sysinfo-YYYY-MM-DD-HH-MM.json`, UTC);
    the command line is masked like the start-up line."""
    from modules.cli.sysinfo import get_sysinfo

    paths = ctx.paths
    info = get_sysinfo(argv=sys.argv[1:], env=dict(os.environ), root=Path(paths.script_dir),
                       data_dir=Path(paths.data_dir), config_file=Path(paths.settings_file))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H-%M")
    folder = Path(tempfile.mkdtemp(prefix="sysinfo-"))
    target = folder / f"sysinfo-{stamp}.json"
    target.write_text(json.dumps(info, indent=4, ensure_ascii=False, default=str), encoding="utf-8")
    return target


def hash_all_checkpoints(ctx: AppContext) -> str:
    """sha256 of every checkpoint through the shared background hasher (cached in the hash cache); the result line
    names how many were hashed (A1111 `calculate_all_checkpoint_hash`)."""
    models = ctx.models
    infos = list(models.registry)
    futures = [(info, models.hasher.submit(info.filename, info.hash_cache_key)) for info in infos]
    done = 0
    for info, future in futures:
        value = future.result()
        if value is not None:
            info.sha256 = value
            done += 1
    if infos and not done:
        return "<p>Hashing is turned off (--no-hashing): no checkpoint was hashed.</p>"
    return f"<p>Calculated hashes of {done} of {len(infos)} checkpoints.</p>"


def build_sysinfo_page(ctx: AppContext) -> None:
    """Sysinfo: a button that offers the JSON as a download."""
    gr.HTML("<p>This page allows you to download the system information as a JSON file, for example to attach it "
            "to a bug report. Command-line values that look like secrets are masked.</p>")
    download = gr.Button("Download system info", elem_id="settings_sysinfo_download")
    file = gr.File(visible=False, interactive=False, elem_id="settings_sysinfo_file", show_label=False)
    download.click(lambda: gr.File(value=str(write_sysinfo(ctx)), visible=True), None, file,
                   show_progress="hidden")


def build_actions_page(ctx: AppContext) -> None:
    """Actions: unload / reload the checkpoint and hash every checkpoint."""
    result = gr.HTML(elem_id="settings_actions_result")
    unload = gr.Button("Unload SD checkpoint to RAM", elem_id="sett_unload_sd_model")
    reload = gr.Button("Load SD checkpoint to VRAM", elem_id="sett_reload_sd_model")
    hash_all = gr.Button("Calculate hash for all checkpoint (may take a long time)",
                         elem_id="calculate_all_checkpoint_hash")

    def do_unload() -> str:
        ctx.models.unload()
        return "<p>Checkpoint unloaded to RAM.</p>"

    def do_reload() -> str:
        model = ctx.models.reload()
        name = getattr(getattr(model, "checkpoint", None), "title", None)
        return f"<p>Checkpoint loaded: {name}</p>" if name else "<p>No checkpoint to load.</p>"

    unload.click(do_unload, None, result)
    reload.click(do_reload, None, result)
    hash_all.click(lambda: hash_all_checkpoints(ctx), None, result)


def changed_settings(ctx: AppContext, keys: list[str]) -> list[str]:
    """Those of `keys` (the settings the Settings tab shows) whose current value differs from their default."""
    settings = ctx.settings
    return [key for key in keys if settings.get(key) != settings.default(key)]


def defaults_html(ctx: AppContext, keys: list[str]) -> str:
    """A table of the changed settings: name, key, current value, default."""
    if not keys:
        return "<p>Every setting has its default value.</p>"
    settings = ctx.settings
    rows = "".join(f"<tr><td>{html.escape(settings.registry[k].label)}</td><td><code>{html.escape(k)}</code></td>"
                   f"<td>{html.escape(repr(settings.get(k)))}</td><td>{html.escape(repr(settings.default(k)))}</td>"
                   "</tr>" for k in keys)
    return (f"<p>{len(keys)} settings differ from their defaults.</p><table class='settings-defaults'><thead><tr>"
            "<th>Setting</th><th>Key</th><th>Current value</th><th>Default</th></tr></thead><tbody>" + rows
            + "</tbody></table>")


def revert_to_defaults(ctx: AppContext, keys: list[str]) -> str:
    """Forget the stored value of each chosen setting (its default applies again) and save config.json; frozen
    settings are skipped and named. Returns the result line."""
    settings = ctx.settings
    frozen = [k for k in keys if settings.frozen_reason(k) is not None]
    done = [k for k in keys if k not in frozen and k in settings.registry]
    try:
        for key in done:
            settings.reset(key)
        settings.save()
    except SettingsError as exc:
        return f"<div class='error'>{html.escape(str(exc))}</div>"
    text = f"Reverted {len(done)} settings to their defaults" + (f": {', '.join(done)}." if done else ".")
    if frozen:
        text += " Not changed (frozen): " + ", ".join(frozen) + "."
    return f"<div class='settings-result'>{html.escape(text)}</div>"


def build_defaults_page(ctx: AppContext, keys: list[str], components: list[Any]) -> None:
    """Defaults: the changed settings, a list to choose from and "Revert selected to defaults". The setting
    components of the tab (`keys`/`components`) are updated too, so a later "Apply settings" keeps the defaults."""
    gr.HTML("<p>Settings whose current value differs from the default. Choose some and press the button to put "
            "their defaults back (saved to config.json at once).</p>")
    refresh = gr.Button("View changes", elem_id="settings_defaults_view")
    table = gr.HTML(elem_id="settings_defaults_table")
    chosen = gr.CheckboxGroup([], label="Settings to revert", elem_id="settings_defaults_choose")
    revert = gr.Button("Revert selected to defaults", variant="primary", elem_id="settings_defaults_revert")
    result = gr.HTML(elem_id="settings_defaults_result")

    def view() -> tuple[str, Any]:
        changed = changed_settings(ctx, keys)
        labels = [(f"{ctx.settings.registry[k].label} ({k})", k) for k in changed]
        return defaults_html(ctx, changed), gr.CheckboxGroup(choices=labels, value=[])

    def do_revert(picked: list[str]) -> list[Any]:
        message = revert_to_defaults(ctx, list(picked or []))
        values = [gr.update(value=ctx.settings.get(k)) if k in (picked or []) else gr.update() for k in keys]
        return [message, *view(), *values]

    refresh.click(view, None, [table, chosen])
    revert.click(do_revert, chosen, [result, table, chosen, *components])


def build_licenses_page(ctx: AppContext) -> None:
    """Licenses: the static `html/licenses.html` of the install folder."""
    path = Path(ctx.paths.script_dir) / "html" / "licenses.html"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        text = f"<p>{html.escape(str(path))} could not be read: {html.escape(str(exc))}</p>"
    gr.HTML(text, elem_id="settings_licenses")
