"""Extras postprocessing operations in the txt2img and img2img tabs (`postprocessing_enable_in_main_ui`).

A1111 behaviour reproduced (`modules/scripts_auto_postprocessing.py`, `ScriptPostprocessingForMainUI`):
* every name listed in the setting that is a postprocessing operation (the built-in Upscale, Simple Upscale, GFPGAN,
  CodeFormer, or an Extras script of `scripts/` or an extension, e.g. "Caption", "Auto-sized crop") becomes an
  always-on script of both generation tabs, titled by the operation's name; its `ui()` is the operation's Extras
  controls (here inside an accordion of that name), so the API reaches it as
  `alwayson_scripts: {"<name>": {"args": [...]}}` with A1111's argument names and order;
* per generated image (`postprocess_image`, after face restoration, before the image is saved) the operation's
  `process(pp, **args)` runs on a fresh `PostprocessedImage` of that image; its result replaces the image and its
  `pp.info` entries join the image's infotext (`p.extra_generation_params`). `process_firstpass`, extra images and
  captions are Extras-only, as in A1111;
* names in the setting that match no operation are skipped; the list is read when the scripts load (A1111: at start
  and on Reload UI; here at start, see docs/architecture.md).
The built-in operations' argument names and defaults follow A1111 1.10's `scripts/postprocessing_upscale.py`,
`postprocessing_gfpgan.py`, `postprocessing_codeformer.py`: Upscale is enabled with upscaler "None" (no change until
an upscaler is chosen), GFPGAN and CodeFormer start disabled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import gradio as gr

from modules.extensions.script import AlwaysVisible, Script
from modules.extensions.scripts_postprocessing import PostprocessedImage, ScriptPostprocessing
from modules.postprocessing.extras import ExtrasChain, ExtrasOptions
from modules.processing.context import AppContext

log = logging.getLogger(__name__)

SETTING = "postprocessing_enable_in_main_ui"
BUILTIN_NAMES = ("Upscale", "Simple Upscale", "GFPGAN", "CodeFormer")
"""A1111's built-in postprocessing scripts (Extras shows all but Simple Upscale, which exists for the main UI)."""


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")


class _BuiltinOperation(ScriptPostprocessing):
    """A built-in Extras operation as a `ScriptPostprocessing` with A1111's argument names."""

    def __init__(self, chain: ExtrasChain, settings: Callable[[], Mapping[str, Any]]) -> None:
        self.chain = chain
        self.settings = settings
        self.tab = "txt2img"

    def elem(self, item: str) -> str:
        """A DOM id unique to this operation and tab: `<tab>_postprocessing_<name>_<item>`."""
        return f"{self.tab}_postprocessing_{_slug(str(self.name))}_{item}"

    def _upscalers(self) -> list[str]:
        return ["None", *[n for n in self.chain.upscalers.names() if n != "None"]]


class UpscaleOperation(_BuiltinOperation):
    """A1111 `ScriptPostprocessingUpscale` ("Upscale"): scale by / scale to, two upscalers blended."""

    name = "Upscale"
    order = 1000

    def ui(self) -> dict[str, Any]:
        names = self._upscalers()
        return {
            "upscale_enabled": gr.Checkbox(True, label="Upscale", elem_id=self.elem("enabled")),
            "upscale_mode": gr.Radio([("Scale by", 0), ("Scale to", 1)], value=0, label="Resize mode", type="value",
                                     elem_id=self.elem("mode")),
            "upscale_by": gr.Slider(1.0, 8.0, value=2.0, step=0.05, label="Resize", elem_id=self.elem("by")),
            "max_side_length": gr.Number(0, label="Max side length", precision=0),
            "upscale_to_width": gr.Slider(64, 8192, value=512, step=8, label="Width"),
            "upscale_to_height": gr.Slider(64, 8192, value=512, step=8, label="Height"),
            "upscale_crop": gr.Checkbox(True, label="Crop to fit"),
            "upscaler_1_name": gr.Dropdown(names, value="None", label="Upscaler 1", elem_id=self.elem("upscaler_1")),
            "upscaler_2_name": gr.Dropdown(names, value="None", label="Upscaler 2", elem_id=self.elem("upscaler_2")),
            "upscaler_2_visibility": gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility"),
        }

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("upscale_enabled", True):
            return
        options = ExtrasOptions(
            resize_mode=int(args.get("upscale_mode") or 0), upscaling_resize=float(args.get("upscale_by") or 2.0),
            max_side_length=int(args.get("max_side_length") or 0),
            upscaling_resize_w=int(args.get("upscale_to_width") or 512),
            upscaling_resize_h=int(args.get("upscale_to_height") or 512),
            upscaling_crop=bool(args.get("upscale_crop", True)), upscaler_1=str(args.get("upscaler_1_name") or "None"),
            upscaler_2=str(args.get("upscaler_2_name") or "None"),
            upscaler_2_visibility=float(args.get("upscaler_2_visibility") or 0.0))
        self.chain.check(options)
        pp.image = self.chain.upscale(pp.image, pp.info, options, self.settings())


class SimpleUpscaleOperation(_BuiltinOperation):
    """A1111 `ScriptPostprocessingUpscaleSimple` ("Simple Upscale"): one upscaler, scale by."""

    name = "Simple Upscale"
    order = 900

    def ui(self) -> dict[str, Any]:
        return {"upscale_by": gr.Slider(0.05, 8.0, value=2.0, step=0.05, label="Upscale by", elem_id=self.elem("by")),
                "upscaler_name": gr.Dropdown(self._upscalers(), value="None", label="Upscaler",
                                                    elem_id=self.elem("upscaler"))}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        options = ExtrasOptions(upscaling_resize=float(args.get("upscale_by") or 2.0),
                                upscaler_1=str(args.get("upscaler_name") or "None"))
        self.chain.check(options)
        pp.image = self.chain.upscale(pp.image, pp.info, options, self.settings())


class FaceRestoreOperation(_BuiltinOperation):
    """A1111 `ScriptPostprocessingGfpGan` / `ScriptPostprocessingCodeFormer`: restore faces at a visibility."""

    def __init__(self, chain: ExtrasChain, settings: Callable[[], Mapping[str, Any]], restorer: str) -> None:
        super().__init__(chain, settings)
        self.name = restorer
        self.order = 2000 if restorer == "GFPGAN" else 3000

    def ui(self) -> dict[str, Any]:
        key = str(self.name).lower()
        controls = {"enable": gr.Checkbox(False, label=self.name, elem_id=self.elem("enabled")),
                    f"{key}_visibility": gr.Slider(0.0, 1.0, value=1.0, step=0.001, label="Visibility")}
        if self.name == "CodeFormer":
            controls["codeformer_weight"] = gr.Slider(0.0, 1.0, value=0.0, step=0.001,
                                                      label="Weight (0 = maximum effect, 1 = minimum effect)")
        return controls

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        if not args.get("enable"):
            return
        key = str(self.name).lower()
        visibility = float(args.get(f"{key}_visibility") or 0.0)
        options = ExtrasOptions(gfpgan_visibility=visibility if key == "gfpgan" else 0.0,
                                codeformer_visibility=visibility if key == "codeformer" else 0.0,
                                codeformer_weight=float(args.get("codeformer_weight") or 0.0))
        self.chain.check(options)
        notices: list[str] = []
        pp.image = self.chain.restore(pp.image, pp.info, str(self.name), options, notices)
        for notice in notices:
            log.warning("%s: %s", self.name, notice)


class PostprocessingForMainUI(Script):
    """An Extras operation as an always-on script of a generation tab (A1111 `ScriptPostprocessingForMainUI`)."""

    def __init__(self, operation: ScriptPostprocessing) -> None:
        self.operation = operation
        self.keys: list[str] = []

    def title(self) -> str:
        return str(self.operation.name)

    def show(self, is_img2img: bool) -> Any:
        return AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        tab = "img2img" if is_img2img else "txt2img"
        if isinstance(self.operation, _BuiltinOperation):
            self.operation.tab = tab
        with gr.Accordion(self.title(), open=False, elem_id=f"{tab}_postprocessing_{_slug(self.title())}"):
            controls = dict(self.operation.ui() or {})
        self.keys = list(controls)
        return list(controls.values())

    def arg_names(self) -> list[str]:
        """The operation's own argument names (the keys of its `ui()` dict), as A1111 passes them to `process`."""
        self.arg_specs()
        return list(self.keys)

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        """Run the operation on the image; its info entries go into the image's infotext."""
        one = PostprocessedImage(pp.image)
        self.operation.process(one, **dict(zip(self.keys, args, strict=False)))
        extra = getattr(p, "extra_generation_params", None)
        if isinstance(extra, dict):
            extra.update(one.info)
        pp.image = one.image


def operation_names(ctx: AppContext) -> list[str]:
    """Every postprocessing operation's name (the choices of the three `postprocessing_*` list settings, A1111
    `shared_items.postprocessing_scripts()`): the built-ins, then the loaded Extras scripts."""
    names = list(BUILTIN_NAMES)
    names += [str(s.name) for s in ctx.scripts.postprocessing.scripts if s.name and str(s.name) not in names]
    return names


def _operation(ctx: AppContext, name: str) -> ScriptPostprocessing | None:
    """A fresh instance of the operation called `name` (each tab gets its own controls), or None."""
    chain = ExtrasChain(ctx.upscalers, ctx.face_restorers)

    def settings() -> Mapping[str, Any]:
        return ctx.settings.snapshot()

    if name == "Upscale":
        return UpscaleOperation(chain, settings)
    if name == "Simple Upscale":
        return SimpleUpscaleOperation(chain, settings)
    if name in ("GFPGAN", "CodeFormer"):
        return FaceRestoreOperation(chain, settings, name)
    for script in ctx.scripts.postprocessing.scripts:
        if script.name == name:
            fresh = type(script)()
            fresh.filename, fresh.extension = script.filename, script.extension
            return fresh
    return None


def enabled_names(value: Any) -> list[str]:
    """The setting's value as a list of names (a single string is one name)."""
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value] if isinstance(value, Iterable) else []


def add_to_generation_tabs(ctx: AppContext, names: Sequence[str] | None = None) -> list[str]:
    """Add an always-on script to the txt2img and img2img runners for each operation named in
    `postprocessing_enable_in_main_ui` (or `names`); returns the names added. Unknown names are logged and skipped."""
    wanted = enabled_names(ctx.settings.get(SETTING) if names is None else names)
    added: list[str] = []
    for name in wanted:
        for runner in (ctx.scripts.txt2img, ctx.scripts.img2img):
            operation = _operation(ctx, name)
            if operation is None:
                log.warning("%s: %r is not a postprocessing operation (known: %s)", SETTING, name,
                            ", ".join(operation_names(ctx)))
                break
            script = PostprocessingForMainUI(operation)
            script.filename, script.extension = operation.filename or "", operation.extension
            script.is_img2img, script.is_txt2img = runner.is_img2img, not runner.is_img2img
            script.alwayson = True
            runner.scripts.append(script)
            runner.alwayson_scripts.append(script)
        else:
            added.append(name)
    return added
