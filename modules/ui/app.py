"""`build_ui(ctx) -> gr.Blocks`: the whole web UI (reference §3): quicksettings bar, the tabs txt2img, img2img,
Extras, PNG Info, Settings, Extensions, send-to wiring, and the browser assets.

Assets: `javascript/*.js` and `style.css` are injected by a page-load script (they travel inside the Blocks, so
the UI works however the server mounts it); `user.css` (data dir), the localization (`localization` setting),
`--theme` and notification.mp3 are sent by a load event each time the page loads, so "Reload UI" picks up changes
without a server restart (A1111 re-creates the Blocks instead).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any, cast

import gradio as gr

from modules.processing.context import AppContext
from modules.ui.common import REFRESH_ICON, checkpoint_choices, checkpoint_label, tool_button
from modules.ui.extension_ui import build_extension_tabs, extension_assets, fire_component_hooks
from modules.ui.extensions_tab import build_extensions
from modules.ui.extras import build_extras
from modules.ui.gallery import infotext_for_index, selected_image
from modules.ui.img2img import build_img2img
from modules.ui.layout_options import arrange_tabs, refresh_extra_options
from modules.ui.localization import load_localization
from modules.ui.merger_tab import build_merger
from modules.ui.output_actions import clean_temp_dir
from modules.ui.paste import updates_from_infotext
from modules.ui.pnginfo import build_pnginfo
from modules.ui.send_to import Destination
from modules.ui.send_to import begin as begin_send_to
from modules.ui.settings_tab import build_settings, make_component, ui_value
from modules.ui.train_tab import build_train
from modules.ui.txt2img import GenerationTab, build_txt2img

ROOT = Path(__file__).resolve().parents[2]
ALWAYS_IN_TOP_BAR = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers")
PREVIEW_FIELDS = ("prompt", "negative_prompt", "steps", "sampler_name", "cfg_scale", "seed", "width", "height")
"""A1111 `txt2img_preview_params` (given to `ui_train_tabs` callbacks), as txt2img field names."""


def boot_js(ctx: AppContext | None = None) -> str:
    """Page-load script that installs style.css and every javascript/*.js file (sorted, A1111 load order), then
    each enabled extension's style.css and javascript/*.js (`*.mjs` as modules), then starts the A1111 page API
    callbacks (`javascript/01-a1111-api.js`)."""
    scripts = [(p.read_text(encoding="utf-8"), False) for p in sorted((ROOT / "javascript").glob("*.js"))]
    css_file = ROOT / "style.css"
    styles = [css_file.read_text(encoding="utf-8")] if css_file.is_file() else []
    if ctx is not None:
        ext_scripts, ext_styles = extension_assets(ctx)
        scripts += ext_scripts
        styles += ext_styles
    return ("() => { if (window.sdBooted) return; window.sdBooted = true;"
            f" const css = {json.dumps(chr(10).join(styles))}; const st = document.createElement('style');"
            " st.id = 'sd-style'; st.textContent = css; document.head.appendChild(st);"
            f" for (const [src, mod] of {json.dumps(scripts)}) {{ const el = document.createElement('script');"
            " if (mod) el.type = 'module'; el.textContent = src; document.head.appendChild(el); }"
            " if (window.sdExtensionsReady) setTimeout(window.sdExtensionsReady, 0); }")


def assets_payload(ctx: AppContext) -> str:
    """JSON for the page: localization mapping, user.css, theme, notification sound and settings for scripts."""
    notification = ""
    path = Path(ctx.paths.notification_file)
    if ctx.settings.get("notification_audio") and path.is_file():
        notification = "data:audio/mpeg;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    user_css = Path(ctx.paths.user_css_file)
    return json.dumps({
        "localization": load_localization(ctx, ctx.settings.get("localization")),
        "user_css": user_css.read_text(encoding="utf-8", errors="replace") if user_css.is_file() else "",
        "theme": getattr(ctx.flags, "theme", None) or "",
        "notification": notification,
        "notification_volume": ctx.settings.get("notification_volume"),
        "keyedit_precision_attention": ctx.settings.get("keyedit_precision_attention"),
        "keyedit_precision_extra": ctx.settings.get("keyedit_precision_extra"),
        "opts": ctx.settings.values(),
    }, ensure_ascii=False, default=str)


def build_quicksettings(ctx: AppContext) -> tuple[list[str], list[gr.components.Component]]:
    """The top bar: checkpoint dropdown with 🔄, VAE, clip skip and every other `quicksettings_list` entry."""
    wanted = list(dict.fromkeys([*ALWAYS_IN_TOP_BAR, *(ctx.settings.get("quicksettings_list") or [])]))
    keys = [k for k in wanted if k in ctx.settings.registry]
    components: list[gr.components.Component] = []
    with gr.Row(elem_id="quicksettings"):
        for key in keys:
            info = ctx.settings.registry[key]
            component = make_component(ctx, info, ui_value(ctx, key), elem_id=f"setting_{key}")
            components.append(component)
            if key == "sd_model_checkpoint":
                refresh = tool_button(REFRESH_ICON, "refresh_sd_model_checkpoint")
                refresh.click(lambda: _refresh_checkpoints(ctx), None, component, queue=False)
    for key, component in zip(keys, components, strict=True):
        cast(gr.Textbox, component).change(lambda value, k=key: _set_quick(ctx, k, value), component, None, show_progress="hidden")
    return keys, components


def quick_value(ctx: AppContext, key: str) -> Any:
    """What a top-bar control shows when the page loads. The checkpoint dropdown gets fresh choices (titles gain
    their `[hash]` once hashed, after the UI was built) and the loaded model's title as its value, as A1111's
    quicksettings show `shared.opts.sd_model_checkpoint` = the title of the loaded checkpoint."""
    if key != "sd_model_checkpoint" or ctx.models is None:
        return ui_value(ctx, key)
    current = ctx.models.current
    value = checkpoint_label(ctx, current.checkpoint) if current is not None else ctx.settings.get(key)
    titles = checkpoint_choices(ctx)
    if value and value not in titles:
        found = ctx.models.registry.get_closest(str(value))
        value = checkpoint_label(ctx, found) if found is not None else value
    return gr.update(choices=titles, value=value or None)


def _refresh_checkpoints(ctx: AppContext) -> Any:
    """🔄: rescan the checkpoint folders (A1111 `refresh_checkpoints`)."""
    if ctx.models is not None:
        ctx.models.registry.refresh()
    return quick_value(ctx, "sd_model_checkpoint")


def _set_quick(ctx: AppContext, key: str, value: Any) -> None:
    """Store a quicksetting, save config.json and load the chosen checkpoint (A1111 reloads on change)."""
    if value is None or value == ctx.settings.get(key):
        return
    try:
        ctx.settings.set(key, value)
        ctx.settings.save()
    except Exception as exc:
        raise gr.Error(str(exc)) from None
    if key == "sd_model_checkpoint" and ctx.models is not None:
        current = ctx.models.current
        if current is not None and value in (current.checkpoint.title, current.checkpoint.short_title):
            return  # the page load showing the loaded title (now with its hash): nothing to load
        with ctx.jobs.exclusive():
            ctx.models.load(value)


def _decode_data_url(data: str) -> Any:
    """PIL image from a `data:image/png;base64,...` string (drag-and-drop onto a prompt box)."""
    from PIL import Image

    payload = data.split(",", 1)[1] if "," in data else data
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def wire_drop(ctx: AppContext, tab: GenerationTab) -> None:
    """Dropping a PNG onto the prompt loads its parameters (A1111 `dragdrop.js` + paste)."""
    from modules.images import read_infotext

    box = gr.Textbox(elem_id=f"{tab.name}_drop_data", elem_classes=["sd-hidden"], show_label=False)
    targets = list(dict.fromkeys(tab.fields.values()))

    def on_drop(data: str) -> dict[Any, Any]:
        if not data:
            return {}
        try:
            text = read_infotext(_decode_data_url(data)) or ""
        except Exception as exc:
            raise gr.Error(f"The dropped file is not an image with generation parameters ({exc})") from None
        if not text:
            raise gr.Error("The dropped image has no generation parameters")
        return updates_from_infotext(ctx, text, tab.fields)

    box.change(on_drop, box, targets, queue=False)


def wire_send_to(ctx: AppContext, source_image: Any, source_text: Any, button: gr.Button, target: GenerationTab | None,
                 image_slot: Any, tabs: gr.Tabs, tab_id: str, *, sub_tabs: Any = None, sub_id: str | None = None,
                 mode: Any = None, mode_index: int = 0, from_gallery: Any = None) -> None:
    """Send an image and its infotext to another tab; parameters are pasted by name (A1111 send-to buttons)."""
    fields = target.fields if target is not None else {}
    outputs = [tabs, *([image_slot] if image_slot is not None else []), *dict.fromkeys(fields.values())]
    if sub_tabs is not None:
        outputs.append(sub_tabs)
    if mode is not None:
        outputs.append(mode)
    inputs = [source_image, source_text] + ([from_gallery] if from_gallery is not None else [])

    def send(image: Any, text: str, index: int | None = None) -> dict[Any, Any]:
        if from_gallery is not None:
            image, text = selected_image(image, index), infotext_for_index(text, int(index or 0))
        if isinstance(image, str):
            from PIL import Image

            image = Image.open(image)
        if image is None:
            raise gr.Error("There is no image to send")
        out: dict[Any, Any] = {tabs: gr.Tabs(selected=tab_id)}
        if image_slot is not None:
            out[image_slot] = image
        if sub_tabs is not None:
            out[sub_tabs] = gr.Tabs(selected=sub_id)
        if mode is not None:
            out[mode] = mode_index
        if text and fields:
            out.update(updates_from_infotext(ctx, text, fields, for_send=True))
        return out

    button.click(send, inputs, outputs, queue=False)


def send_to_destinations(txt2img: GenerationTab, img2img: GenerationTab, extras: dict[str, Any]
                         ) -> dict[str, Destination]:
    """The tabs extensions' send-to buttons reach (A1111 `paste_fields`): what the app's own buttons fill."""
    images, sub_tabs, mode = img2img.extra["images"], img2img.extra["mode_tabs"], img2img.extra["mode"]

    def to_img2img(slot: str, sub_id: str, mode_index: int) -> Destination:
        return Destination("img2img", images[slot], dict(img2img.fields), sub_tabs=sub_tabs, sub_id=sub_id,
                           mode=mode, mode_index=mode_index)

    return {"txt2img": Destination("txt2img", None, dict(txt2img.fields)),
            "img2img": to_img2img("init_img", "img2img_tab", 0), "sketch": to_img2img("sketch", "sketch_tab", 1),
            "inpaint": to_img2img("inpaint", "inpaint_tab", 2),
            "inpaint_sketch": to_img2img("inpaint_sketch", "inpaint_sketch_tab", 3),
            "extras": Destination("extras", extras["image"])}


def build_ui(ctx: AppContext) -> gr.Blocks:
    """The complete UI for `ctx`; generation goes through `ctx.jobs` (shared FIFO with the API)."""
    clean_temp_dir(ctx)  # clean_temp_dir_at_start (A1111 cleans it when the UI starts)
    with gr.Blocks(title="Stable Diffusion", analytics_enabled=False) as demo:
        quick_keys, quick_components = build_quicksettings(ctx)
        with gr.Tabs(elem_id="tabs", overflow_behavior="wrap") as tabs:  # phone: tabs wrap, no "…" menu
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img") as txt2img_tab:
                txt2img = build_txt2img(ctx)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img") as img2img_tab:
                img2img = build_img2img(ctx)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras = build_extras(ctx)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png = build_pnginfo()
            with gr.Tab("Checkpoint Merger", id="modelmerger", elem_id="tab_modelmerger"):
                top_bar = dict(zip(quick_keys, quick_components, strict=True)).get("sd_model_checkpoint")
                build_merger(ctx, cast(gr.Dropdown, top_bar) if top_bar is not None else None)
            with gr.Tab("Train", id="train", elem_id="tab_train"):
                build_train(ctx, [txt2img.fields[k] for k in PREVIEW_FIELDS if k in txt2img.fields])
            send_to = begin_send_to(ctx, tabs, send_to_destinations(txt2img, img2img, extras))
            build_extension_tabs(ctx)  # A1111 ui_tabs: extension tabs after the built-in ones
            with gr.Tab("Settings", id="settings", elem_id="tab_settings") as settings_tab:
                build_settings(ctx, settings_tab)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                build_extensions(ctx)
        arrange_tabs(ctx, tabs)  # ui_tab_order, hidden_tabs
        gr.HTML("<div class='versions'>API: <a href='docs'>/docs</a> &#8226; "
                "<a href='#' onclick='location.reload(); return false;'>Reload UI</a></div>", elem_id="footer")
        for tab in (txt2img, img2img):
            wire_drop(ctx, tab)
        images = img2img.extra["images"]
        sub_tabs, mode = img2img.extra["mode_tabs"], img2img.extra["mode"]

        def to_img2img(source: Any, text: Any, button: gr.Button, slot: str, sub_id: str, mode_index: int,
                       gallery_index: Any = None) -> None:
            wire_send_to(ctx, source, text, button, img2img, images[slot], tabs, "img2img", sub_tabs=sub_tabs,
                         sub_id=sub_id, mode=mode, mode_index=mode_index, from_gallery=gallery_index)

        for out in (txt2img.output, img2img.output):
            to_img2img(out.gallery, out.generation_info, out.send_to_img2img, "init_img", "img2img_tab", 0,
                       out.selected_index)
            to_img2img(out.gallery, out.generation_info, out.send_to_inpaint, "inpaint", "inpaint_tab", 2,
                       out.selected_index)
            wire_send_to(ctx, out.gallery, out.generation_info, out.send_to_extras, None, extras["image"], tabs,
                         "extras", from_gallery=out.selected_index)
        wire_send_to(ctx, png.image, png.parameters, png.send_to_txt2img, txt2img, None, tabs, "txt2img")
        to_img2img(png.image, png.parameters, png.send_to_img2img, "init_img", "img2img_tab", 0)
        to_img2img(png.image, png.parameters, png.send_to_inpaint, "inpaint", "inpaint_tab", 2)
        wire_send_to(ctx, png.image, png.parameters, png.send_to_extras, None, extras["image"], tabs, "extras")

        send_to.connect()  # A1111 `connect_paste_params_buttons()`: extensions' send-to buttons
        payload = gr.Textbox(elem_id="sd_assets_payload", elem_classes=["sd-hidden"], show_label=False)
        all_keys, all_components = quick_keys, quick_components
        fire_component_hooks(ctx, demo, {"txt2img": txt2img_tab, "img2img": img2img_tab})
        for tab in (txt2img, img2img):
            shown = tab.extra.get("extra_options") or {}
            if shown:  # settings shown in the tab show their current values on each page load
                demo.load(lambda shown=shown: refresh_extra_options(ctx, shown), None, list(shown.values()),
                          queue=False, show_progress="hidden")
        demo.load(None, None, None, js=boot_js(ctx)).then(
            lambda: [assets_payload(ctx), *[quick_value(ctx, k) for k in all_keys]], None, [payload, *all_components],
            queue=False, show_progress="hidden").then(
            None, payload, None, js="(p) => { if (window.sdApplyAssets) window.sdApplyAssets(p); return []; }")
    apply_no_queue(ctx, demo)
    return demo


def apply_no_queue(ctx: AppContext, demo: gr.Blocks) -> int:
    """A1111 `--no-gradio-queue`: events are sent as plain HTTP requests instead of through Gradio's queue (A1111
    skips `demo.queue()`). Gradio 6 streams a generator's updates only through the queue, so the streaming events
    (Generate, ✨, progress) stay queued; returns how many events left the queue."""
    if not ctx.flags.no_gradio_queue:
        return 0
    moved = 0
    for fn in demo.fns.values():
        if fn.queue and not fn.types_generator:
            fn.queue = False
            moved += 1
    return moved


create_ui = build_ui
