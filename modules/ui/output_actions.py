"""Output-panel actions: 📂 open the output folder (only for a local server; A1111 hides it when the UI is reachable
from the network or `hide_ui_dir_config` is set) and the folder it opens (A1111 `open_dir_button_choice`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gradio as gr

from modules.processing.context import AppContext


def is_local(ctx: AppContext) -> bool:
    """True when no flag exposes the server (--listen/--share/--ngrok/--server-name) and dirs are not hidden."""
    flags = ctx.flags
    exposed = any(getattr(flags, name, None) for name in ("listen", "share", "ngrok", "server_name"))
    return not exposed and not getattr(flags, "hide_ui_dir_config", False)


def output_folder(ctx: AppContext, kind: str) -> Path:
    """The samples folder of `kind` ("txt2img"/"img2img"), relative paths taken from the data directory."""
    from modules.images.saving import output_dir

    settings = {k: ctx.settings.get(k) for k in ("outdir_samples", f"outdir_{kind}_samples")}
    return output_dir(kind, settings, base_dir=ctx.paths.data_dir)


def chosen_folder(ctx: AppContext, kind: str, saved: list[str] | None = None, index: int = 0, first: int = 0,
                  shown: str | None = None) -> Path:
    """The folder 📂 opens for gallery entry `index` (A1111 `open_dir_button_choice`): "Output Root" the tab's
    samples folder; "Subdirectory" the folder the selected image was saved in (its dated subfolder, or the grids'
    folder for the grid), else the root; "Subdirectory (even temp dir)" also the folder of an image that was only
    shown (the temp dir). `saved` are the job's saved files, `first` the gallery index of its first image."""
    root = output_folder(ctx, kind)
    choice = str(ctx.settings.get("open_dir_button_choice") or "Subdirectory")
    if choice == "Output Root":
        return root
    paths = [Path(p) for p in saved or []]
    root_resolved = root.resolve()
    samples = [p for p in paths if p.resolve().is_relative_to(root_resolved)]
    grids = [p for p in paths if p not in samples]
    if index < first and grids:
        return grids[0].parent
    if index >= first and samples:
        return samples[min(index - first, len(samples) - 1)].parent
    if choice == "Subdirectory (even temp dir)" and shown:
        return Path(shown).parent
    return root


def open_folder(ctx: AppContext, kind: str, folder: Path | None = None) -> None:
    """Open `folder` (default: the tab's output folder) in the desktop file manager (created if missing)."""
    if not is_local(ctx):
        raise gr.Error("Opening folders is only available when the server runs on this computer")
    folder = folder or output_folder(ctx, kind)
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        os.startfile(folder)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        raise gr.Error(f"Could not open {folder}: {opener} is not available ({exc})") from None


def clean_temp_dir(ctx: AppContext) -> int:
    """A1111 `clean_temp_dir_at_start` (`ui_tempdir.cleanup_tmpdr`): when the setting is on and a `temp_dir` is
    set, delete every .png below it (only PNGs: the folder may be shared); returns how many were deleted. Gradio's
    default temp dir is never touched."""
    from modules.server import temp_dir

    value = ctx.settings.get("temp_dir")
    if not ctx.settings.get("clean_temp_dir_at_start") or not isinstance(value, str) or not value.strip():
        return 0
    folder = temp_dir(ctx)
    removed = 0
    for root, _dirs, files in os.walk(folder, topdown=False) if folder.is_dir() else ():
        for name in files:
            if os.path.splitext(name)[1] == ".png":
                try:
                    (Path(root) / name).unlink()
                    removed += 1
                except OSError:
                    pass
    return removed
