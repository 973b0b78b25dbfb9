"""Special pages of the Settings tab (A1111 `ui_settings.py`): **Sysinfo** (download the system-information JSON,
the same document `--dump-sysinfo` writes) and **Actions** ("Unload SD checkpoint to RAM", "Load SD checkpoint to
VRAM", "Calculate hash for all checkpoint (may take a long time)").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

import gradio as gr

from modules.processing.context import AppContext


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
