"""The `Script` base class and script argument binding (A1111 `modules/scripts.py::Script`).

A1111 passes every script its UI values as one flat positional list (`p.script_args[args_from:args_to]`), and the
API accepts `script_args` (selected script) and `alwayson_scripts: {"title": {"args": [...]}}` positionally.
Here each script's `ui()` returns argument descriptions (`ScriptArg`, or any object with `label`/`value`, such as
a Gradio component) so values are bound by name inside the app and positionally from the API; missing trailing
values take the defaults (A1111 fills them from the components' initial values).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from modules.runtime.hook_params import (  # noqa: F401  (MaskBlendArgs, PostProcessMaskOverlayArgs re-exported)
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostProcessMaskOverlayArgs,
    PostprocessMaskOverlayArgs,
    PostSampleArgs,
)

log = logging.getLogger(__name__)


class _AlwaysVisible:
    """Marker returned by `Script.show()` for always-on scripts (A1111 `scripts.AlwaysVisible`)."""

    def __repr__(self) -> str:
        return "AlwaysVisible"


AlwaysVisible = _AlwaysVisible()


@dataclass
class ScriptArg:
    """One script argument as `ui()` describes it: name (binding key), label, default and UI hints.

    `kind` is one of "text", "textarea", "number", "slider", "checkbox", "dropdown", "radio", "multiselect",
    "image"; the UI layer turns it into a component.  `choices` lists allowed values for the choice kinds.
    """

    name: str
    label: str = ""
    default: Any = None
    kind: str = "text"
    choices: Sequence[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    info: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name


class ScriptArgumentError(ValueError):
    """Bad arguments for a script: names the script and the argument."""


def arg_name(component: Any, index: int) -> str:
    """Binding name of a `ui()` item: `name`, else `elem_id`, else `label`, else `arg<index>`."""
    for attr in ("name", "elem_id", "label"):
        value = getattr(component, attr, None)
        if isinstance(value, str) and value:
            return value
    return f"arg{index}"


def arg_default(component: Any) -> Any:
    """Initial value of a `ui()` item: `ScriptArg.default`, else a component's `value`."""
    if isinstance(component, ScriptArg):
        return component.default
    return getattr(component, "value", None)


class Script:
    """Base class of user scripts (A1111 `modules.scripts.Script`); subclass it in `scripts/*.py`.

    Required: `title()`.  `show(is_img2img)` returns False (hidden), True (selectable in the Script dropdown) or
    `AlwaysVisible` (always-on: its hooks run for every job).  `ui(is_img2img)` returns the argument descriptions;
    every hook then gets the values as `*args` in that order.  The hooks below are no-ops by default; the stage
    each one runs at is documented on `modules.extensions.runner.ScriptRunner`.
    """

    filename: str = ""
    name: str | None = None
    alwayson: bool = False
    is_txt2img: bool = False
    is_img2img: bool = False
    tabname: str = ""
    group: Any = None
    create_group: bool = True
    section: str | None = None
    sorting_priority: int = 0
    infotext_fields: list[Any] | None = None
    paste_field_names: list[str] | None = None
    api_info: Any = None
    args_from: int = 0
    args_to: int = 0
    controls: list[Any] | None = None
    setup_for_ui_only: bool = False
    extension: str = "base"

    # description -------------------------------------------------------------------------------------------------
    def title(self) -> str:
        """The name shown in the Script dropdown and matched case-insensitively by the API."""
        raise NotImplementedError(f"{type(self).__name__} in {self.filename or '?'} must define title()")

    def show(self, is_img2img: bool) -> bool | _AlwaysVisible:
        """False: hidden; True: selectable; AlwaysVisible: always-on (A1111 default: True)."""
        return True

    def ui(self, is_img2img: bool) -> list[Any]:
        """The argument descriptions (`ScriptArg`s or components); their values become `*args` in order."""
        return []

    def describe(self) -> str:
        """Unused by A1111 itself; kept for compatibility."""
        return ""

    def elem_id(self, item_id: str) -> str:
        """A DOM id unique to this script and tab (A1111: `<tab>_script_<title>_<item_id>`, lower-case, `_`)."""
        tab = "img2img" if self.is_img2img else "txt2img"
        title = "".join(c if c.isalnum() else "_" for c in self.title().lower())
        return f"script_{tab}_{title}_{item_id}"

    # generation hooks (all optional) -------------------------------------------------------------------------
    def run(self, p: Any, *args: Any) -> Any:
        """Selectable scripts: do the whole job (usually via `process_images`) and return its result."""
        return None

    def setup(self, p: Any, *args: Any) -> None:
        """Before anything else, even before the seed is fixed."""

    def before_process(self, p: Any, *args: Any) -> None:
        """Before the job starts (prompts not yet expanded)."""

    def process(self, p: Any, *args: Any) -> None:
        """After prompts and seeds are set up, before the first batch."""

    def before_process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """Before each batch: kwargs batch_number, prompts, seeds, subseeds (prompts may still be edited)."""

    def after_extra_networks_activate(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """After extra networks of the batch are active: kwargs as `process_batch` plus extra_network_data."""

    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """Before each sampling (first pass and hires): kwargs x, noise, c, uc."""

    def process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """Each batch, after conditioning is ready: kwargs batch_number, prompts, seeds, subseeds."""

    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """After a batch is decoded: kwargs images (tensor), batch_number."""

    def postprocess_batch_list(self, p: Any, pp: PostprocessBatchListArgs, *args: Any, **kwargs: Any) -> None:
        """After a batch is decoded: `pp.images` may be replaced or extended; kwargs batch_number."""

    def post_sample(self, p: Any, ps: PostSampleArgs, *args: Any) -> None:
        """After sampling, before decoding: `ps.samples` may be replaced."""

    def on_mask_blend(self, p: Any, mba: MaskBlendArgs, *args: Any) -> None:
        """Inpainting: each time the mask blends the original latent in (every step after guidance, with
        `mba.denoiser`/`mba.sigma`, and once after sampling, `mba.is_final_blend`); `mba.blended_latent` may be
        replaced (A1111 `CFGDenoiser.apply_blend` and `StableDiffusionProcessingImg2Img.sample`)."""

    def postprocess_image(self, p: Any, pp: PostprocessImageArgs, *args: Any) -> None:
        """Each image before it is saved: `pp.image` may be replaced."""

    def postprocess_maskoverlay(self, p: Any, ppmo: PostprocessMaskOverlayArgs, *args: Any) -> None:
        """Inpainting, each image after `postprocess_image`: `ppmo.mask_for_overlay` / `ppmo.overlay_image` may be
        replaced before the untouched pixels are laid over the result (A1111 `process_images_inner`)."""

    def postprocess_image_after_composite(self, p: Any, pp: PostprocessImageArgs, *args: Any) -> None:
        """Each image after inpainting composition."""

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        """After the whole job; `processed` is the result."""

    def before_hr(self, p: Any, *args: Any) -> None:
        """Before the hires. fix pass."""

    # UI construction hooks ------------------------------------------------------------------------------------
    def before_component(self, component: Any, **kwargs: Any) -> None:
        """Before every UI component is created (kwargs include elem_id)."""

    def after_component(self, component: Any, **kwargs: Any) -> None:
        """After every UI component is created (kwargs include elem_id)."""

    # argument binding -----------------------------------------------------------------------------------------
    def arg_specs(self, *, refresh: bool = False) -> list[Any]:
        """The `ui()` result for this script's tab.

        A1111 calls `ui()` while it lays out the txt2img/img2img tabs (its Gradio components land in the page) and
        again inside a throwaway `gr.Blocks()` when the API needs the argument defaults. Here the page build calls
        `arg_specs(refresh=True)` inside the page; any earlier or page-less use (the API with `--nowebui`) runs
        `ui()` inside a throwaway Blocks, so layout blocks (`gr.Row`, `gr.Accordion`, `InputAccordion`) work
        everywhere. A `ui()` that raises is reported (`ui_error`) and the script keeps no arguments, as A1111's
        `wrap_call` does.
        """
        cached = self.__dict__.get("_arg_specs")
        if cached is None or refresh:
            try:
                with ui_build_scope():
                    cached = list(self.ui(self.is_img2img) or [])
                self.__dict__["ui_error"] = None
            except Exception as exc:
                log.error("Error calling ui() of script %s (%s): %s", type(self).__name__, self.filename or "?",
                          exc, exc_info=True)
                self.__dict__["ui_error"] = f"{type(exc).__name__}: {exc}"
                cached = []
            self.__dict__["_arg_specs"] = cached
        return cached

    def arg_names(self) -> list[str]:
        """Binding names of the arguments in positional order; a repeated name gets `#2`, `#3`, … (unlabelled or
        equally labelled Gradio components are common in extensions' `ui()`)."""
        names: list[str] = []
        for i, c in enumerate(self.arg_specs()):
            base = name = arg_name(c, i)
            n = 1
            while name in names:
                n += 1
                name = f"{base}#{n}"
            names.append(name)
        return names

    def default_args(self) -> list[Any]:
        """Every argument's default, in order."""
        return [arg_default(c) for c in self.arg_specs()]

    def bind_args(self, values: Sequence[Any] | Mapping[str, Any] | None) -> list[Any]:
        """Positional values (API `script_args`) or values by name (UI) → the full `*args` list.

        Missing trailing positions and missing names take the defaults; extra positions or unknown names are an
        error naming the script.
        """
        defaults = self.default_args()
        names = self.arg_names()
        if values is None:
            return defaults
        if isinstance(values, Mapping):
            unknown = [k for k in values if k not in names]
            if unknown:
                raise ScriptArgumentError(f"script {self.title()!r}: unknown argument(s) {', '.join(unknown)}; "
                                          f"known: {', '.join(names) or 'none'}")
            return [values.get(n, d) for n, d in zip(names, defaults, strict=True)]
        values = list(values)
        if len(values) > len(defaults) and defaults:
            raise ScriptArgumentError(f"script {self.title()!r} takes {len(defaults)} argument(s) "
                                      f"({', '.join(names)}), got {len(values)}")
        if not defaults:
            return values  # a script without ui() description receives what it is given (A1111 behaviour)
        return values + defaults[len(values):]

    def args_by_name(self, args: Sequence[Any]) -> dict[str, Any]:
        """`*args` as a dict keyed by argument name."""
        return dict(zip(self.arg_names(), args, strict=False))


def ui_build_scope() -> AbstractContextManager[Any]:
    """Where `ui()` runs: the page being built when there is one, else a throwaway `gr.Blocks()` (A1111's API does
    the same to read the defaults), because Gradio cannot lay out blocks outside a Blocks context."""
    import gradio as gr
    from gradio.context import get_render_context

    if get_render_context() is not None:
        return layout_guard()
    return gr.Blocks(analytics_enabled=False)


@contextmanager
def layout_guard() -> Iterator[None]:
    """Run extension UI code so that, when it raises halfway, the page build goes on where it was.

    A `gr.Blocks` left by an exception resets Gradio's render context and root block to None (Gradio's
    `Blocks.__exit__`), so the rest of the page would be built outside the page and fail (A1111 reports the
    extension's error and keeps building): put both back and drop the blocks and events the failed code added."""
    from gradio.context import Context, get_render_context, set_render_context

    target, root = get_render_context(), Context.root_block
    count = len(target.children) if target is not None else 0
    blocks = set(root.blocks) if root is not None else set()
    fns = set(root.fns) if root is not None else set()
    try:
        yield
    except BaseException:
        set_render_context(target)
        Context.root_block = root
        if target is not None:
            del target.children[count:]
        if root is not None:  # the half-built blocks and their events would break the page's config
            for key in set(root.blocks) - blocks:
                del root.blocks[key]
            for key in set(root.fns) - fns:
                del root.fns[key]
        raise


def basedir_of(filename: str) -> str:
    """The extension (or root) directory a script file belongs to (A1111 `scripts.basedir()`)."""
    folder = os.path.dirname(os.path.abspath(filename))
    return os.path.dirname(folder) if os.path.basename(folder) == "scripts" else folder
