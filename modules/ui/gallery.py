"""Output panel of txt2img/img2img: gallery, live preview, progress bar with ETA, infotext, "Time taken" footer,
send-to buttons; and the generator that runs a job on the shared queue and streams its progress.

A1111 `modules/ui_common.create_output_panel` and `javascript/progressbar.js` (which polls `/internal/progress` for
progress, ETA and the live preview). Here the generate event is a Python generator that polls the job's
`JobState` every `live_preview_refresh_period` ms and yields the progress bar HTML and the newest preview image (a
temp file in the `live_previews_image_format` format); the job itself runs
on `ctx.jobs` (the FIFO queue shared with the API), so UI and API requests are served in submission order.

Gallery files: each image is given to the gallery as a PNG written to the temp dir with its infotext in the
`parameters` text chunk (A1111 `ui_tempdir.save_pil_to_file` embeds `image.info` when `enable_pnginfo` is on), so
the file a user downloads or drags out of the gallery carries its parameters whether or not saving is on.
A finished job replaces gallery, infotext and generation info together; a job that ends without images
(interrupted before the first image, or failed) clears them and says why, so the infotext shown always belongs
to the images shown (A1111 returns empty outputs with the error/notice).
"""

from __future__ import annotations

import html
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr

from modules.processing.context import AppContext
from modules.ui.common import error_html, format_time_taken, infotext_html

POLL_SECONDS = 0.25


@dataclass
class OutputPanel:
    """Components of one tab's output panel."""

    gallery: gr.Gallery
    preview: gr.Image
    progress: gr.HTML
    infotext: gr.HTML
    html_log: gr.HTML
    generation_info: gr.Textbox
    selected_index: gr.Number
    send_to_img2img: gr.Button
    send_to_inpaint: gr.Button
    send_to_extras: gr.Button
    save: gr.Button
    save_zip: gr.Button
    download_files: gr.File
    open_folder: gr.Button | None = None
    upscale: gr.Button | None = None


def build_output_panel(tab: str, *, local: bool = False) -> OutputPanel:
    """Lay out the gallery column for `tab`; 📂 only when the server runs locally (A1111 hides it otherwise),
    ✨ (run hires fix on the selected image) only on txt2img."""
    with gr.Column(elem_id=f"{tab}_results", elem_classes=["results"]):
        progress = gr.HTML(progress_html(None), elem_id=f"{tab}_progress", elem_classes=["progress-area"])
        preview = gr.Image(label="Live preview", elem_id=f"{tab}_preview", visible=False, interactive=False,
                           type="pil", height=320)
        gallery = gr.Gallery(label="Output", elem_id=f"{tab}_gallery", columns=4, height=420, show_label=False,
                             format="png", interactive=False)
        with gr.Row(elem_id=f"{tab}_tools_buttons"):
            open_folder = gr.Button("\U0001f4c2", elem_id=f"{tab}_open_folder", elem_classes=["tool"], size="sm",
                                    min_width=40, scale=0, visible=local)
            save = gr.Button("\U0001f4be", elem_id=f"save_{tab}", elem_classes=["tool"], size="sm", min_width=40,
                             scale=0)
            save_zip = gr.Button("\U0001f5c3\ufe0f", elem_id=f"save_zip_{tab}", elem_classes=["tool"], size="sm",
                                 min_width=40, scale=0)
            send_img2img = gr.Button("Send to img2img", elem_id=f"{tab}_send_to_img2img", size="sm")
            send_inpaint = gr.Button("Send to inpaint", elem_id=f"{tab}_send_to_inpaint", size="sm")
            send_extras = gr.Button("Send to extras", elem_id=f"{tab}_send_to_extras", size="sm")
            upscale = gr.Button("\u2728", elem_id=f"{tab}_upscale", elem_classes=["tool"], size="sm", min_width=40,
                                scale=0, visible=tab == "txt2img")
        download_files = gr.File(None, file_count="multiple", interactive=False, show_label=False, visible=False,
                                 elem_id=f"download_files_{tab}")
        infotext = gr.HTML(infotext_html(""), elem_id=f"html_info_{tab}", elem_classes=["infotext-area"])
        html_log = gr.HTML("", elem_id=f"html_log_{tab}", elem_classes=["html-log"])
        generation_info = gr.Textbox(visible=False, elem_id=f"generation_info_{tab}")
        selected = gr.Number(value=0, precision=0, visible=False, elem_id=f"{tab}_selected_index")

    def select(info: str, evt: gr.SelectData) -> tuple[int, str]:
        """Clicking an image shows its own infotext (A1111 `selected_gallery_index` + per-image infotexts)."""
        index = int(evt.index or 0)
        return index, infotext_html(infotext_for_index(info, index))

    gallery.select(select, [generation_info], [selected, infotext], queue=False)
    return OutputPanel(gallery, preview, progress, infotext, html_log, generation_info, selected, send_img2img,
                       send_inpaint, send_extras, save=save, save_zip=save_zip, download_files=download_files,
                       open_folder=open_folder, upscale=upscale)


def infotext_for_index(generation_info: str, index: int) -> str:
    """The infotext of gallery entry `index` from the JSON kept in `generation_info` ("" if none)."""
    try:
        info = json.loads(generation_info or "{}")
    except ValueError:
        return ""
    texts = info.get("infotexts") or []
    if not texts:
        return ""
    return str(texts[index] if 0 <= index < len(texts) else texts[0])


def progress_html(info: dict[str, Any] | None, *, state: str = "idle", queued: tuple[int, int] | None = None) -> str:
    """The progress bar: "xx% ETA: n s" plus textinfo; `data-job-state` tells javascript/ui.js when a job ends."""
    if info is None or state != "running":
        return f"<div class='progress-info' data-job-state='{state}'></div>"
    if queued is not None and queued[0] > 0:  # (0, 0) = running, not waiting
        return (f"<div class='progress-info' data-job-state='running'><div class='progress-text'>"
                f"In queue: {queued[0]}/{queued[1]}</div></div>")
    fraction = float(info.get("progress") or 0.0)
    eta = info.get("eta_relative")
    eta_text = f" ETA: {format_eta(eta)}" if eta is not None and fraction > 0 else ""
    text = html.escape(str(info.get("textinfo") or ""))
    return (f"<div class='progress-info' data-job-state='running'><div class='progressDiv'>"
            f"<div class='progress' style='width:{fraction * 100:.1f}%'>{fraction * 100:.0f}%{eta_text}</div></div>"
            f"<div class='progress-text'>{text}</div></div>")


def format_eta(seconds: float) -> str:
    """A1111 progressbar.js ETA text: "1m 05s" over a minute, "12s" otherwise."""
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def stream_job(ctx: AppContext, fn: Callable[..., Any], params: Any, kind: str,
               panel: OutputPanel) -> Iterator[dict[gr.components.Component, Any]]:
    """Submit `fn(ctx, params)` to the shared queue and yield progress, preview and finally the results."""
    live = bool(ctx.settings.get("live_previews_enable"))
    period = refresh_period(ctx)
    job = ctx.jobs.submit(fn, ctx, params, kind=kind)
    preview_id, last_file = -1, None
    yield {panel.progress: progress_html({}, state="running", queued=ctx.jobs.queue_position(job.id)),
           panel.html_log: "", panel.preview: gr.update(visible=False, value=None)}
    while not job.wait(period):
        queued = ctx.jobs.queue_position(job.id)
        update: dict[gr.components.Component, Any] = {
            panel.progress: progress_html(job.state.progress_info(), state="running", queued=queued)}
        latest = job.state.latest_preview(preview_id) if live else None
        if latest is not None:
            preview_id, image = latest
            shown = preview_file(ctx, image)
            update[panel.preview] = gr.update(visible=True, value=shown)
            if isinstance(last_file, str) and last_file != shown:
                Path(last_file).unlink(missing_ok=True)  # Gradio served its own copy of it already
            last_file = shown
        yield update
    yield finished_update(job, panel, ctx)


def refresh_period(ctx: AppContext) -> float:
    """Seconds between two progress/preview updates sent to the page: `live_preview_refresh_period` (ms, A1111
    default 1000; A1111's progressbar.js polls `/internal/progress` that often), at least `POLL_SECONDS / 5`."""
    try:
        milliseconds = float(ctx.settings.get("live_preview_refresh_period") or 0)
    except (TypeError, ValueError):
        milliseconds = 1000.0
    return max(POLL_SECONDS / 5, milliseconds / 1000)


def gradio_progress(ctx: AppContext) -> Literal["full", "minimal"]:
    """How Gradio's own progress overlay shows on the output panel while a job runs: A1111 hides it (its CSS
    `css_hide_progressbar`, because it slows the browser down) unless started with `--no-progressbar-hiding`."""
    return "full" if getattr(ctx.flags, "no_progressbar_hiding", False) else "minimal"


PREVIEW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def preview_file(ctx: AppContext, image: Any) -> Any:
    """The live preview as a temp file in the `live_previews_image_format` format (png/jpeg/webp, A1111 encodes
    `/internal/progress` previews in it); the image itself if it cannot be written."""
    from modules.server import temp_dir

    fmt = str(ctx.settings.get("live_previews_image_format") or "png").lower()
    fmt = fmt if fmt in PREVIEW_FORMATS else "png"
    folder = temp_dir(ctx) / "previews"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=f".{fmt}", delete=False) as handle:
            target = Path(handle.name)
        rgb = image.convert("RGB") if fmt == "jpeg" and image.mode != "RGB" else image
        rgb.save(target, format=PREVIEW_FORMATS[fmt])
    except (OSError, ValueError, AttributeError):
        return image
    return str(target)


def gallery_files(ctx: AppContext, images: list[Any], infotexts: list[str]) -> list[Any]:
    """Each image as a temp PNG with its infotext as the `parameters` chunk (when `enable_pnginfo` is on), for the
    gallery (A1111 `save_pil_to_file`); an image that cannot be written is shown as it is."""
    from modules.images import save_image_with_geninfo
    from modules.server import temp_dir

    folder = temp_dir(ctx) / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    embed = bool(ctx.settings.get("enable_pnginfo"))
    out: list[Any] = []
    for index, image in enumerate(images):
        text = infotexts[index] if index < len(infotexts) else None
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".png", delete=False) as handle:
            target = Path(handle.name)
        try:
            save_image_with_geninfo(image, text, target, ".png", existing_pnginfo=getattr(image, "info", None),
                                    enable_pnginfo=embed)
        except (OSError, ValueError):
            target.unlink(missing_ok=True)
            out.append(image)
            continue
        out.append(str(target))
    return out


def finished_update(job: Any, panel: OutputPanel, ctx: AppContext | None = None) -> dict[gr.components.Component, Any]:
    """Gallery, infotext, info JSON and the "Time taken" footer for a finished job; without images (interrupted
    before the first one, or an error) the gallery and infotext are cleared and the notice says why."""
    done = {panel.progress: progress_html(None, state="done"), panel.preview: gr.update(visible=False)}
    empty = {panel.gallery: [], panel.generation_info: "", panel.infotext: infotext_html(""),
             panel.selected_index: 0}
    try:
        result = job.result()
    except Exception as exc:
        error = getattr(exc, "error", exc)
        return done | empty | {panel.html_log: error_html(f"Error: {error}")}
    if result is None:  # interrupted before any image was finished
        return done | empty | {panel.html_log: error_html("Interrupted")}
    if not result.images:  # every batch skipped
        notices = "".join(error_html(n) for n in result.notices)
        return done | empty | {panel.html_log: error_html("No images were generated") + notices}
    info = result.info_dict()
    texts = list(result.infotexts or [])
    first = texts[result.index_of_first_image if result.index_of_first_image < len(texts) else 0] if texts else ""
    # A1111 shows the memory line only while its memory monitor runs (`memmon_poll_rate` > 0)
    shown_memory = result.peak_memory_bytes if ctx is None or ctx.settings.get("memmon_poll_rate") else 0
    footer = format_time_taken(result.time_taken, shown_memory)
    notices = "".join(error_html(n) for n in result.notices)
    images = gallery_files(ctx, list(result.images), texts) if ctx is not None else list(result.images)
    return done | {
        panel.gallery: images,
        panel.generation_info: json.dumps(info, ensure_ascii=False, default=str),
        panel.infotext: infotext_html(first),
        panel.html_log: notices + footer,
        panel.selected_index: result.index_of_first_image,
    }


def selected_image(gallery_value: Any, index: int | float | None) -> Any:
    """The PIL image / file path of gallery entry `index` (Gradio gives (image, caption) pairs)."""
    if not gallery_value:
        return None
    items = list(gallery_value)
    idx = int(index or 0)
    return gallery_item(items[idx if 0 <= idx < len(items) else 0])


def gallery_item(item: Any) -> Any:
    """The image or file path of one gallery entry: Gradio gives (image, caption) pairs or file dicts."""
    if isinstance(item, (tuple, list)):
        item = item[0]
    if isinstance(item, dict):
        item = item.get("image") or item.get("path") or item.get("name")
        if isinstance(item, dict):
            item = item.get("path")
    return item


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` until true or `timeout` seconds passed (used by tests and the screenshot tool)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
