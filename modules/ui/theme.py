"""The Gradio theme of the page: the `gradio_theme` and `gradio_themes_cache` settings (A1111
`modules/shared_gradio_themes.py`, "requires Reload UI" there; here the theme is chosen when the app is built).

A1111 rules kept: "Default" is Gradio's default theme; any other name is a Hugging Face hub theme ("owner/name"),
read from the cache file `tmp/gradio_themes/<owner>_<name>.json` when `gradio_themes_cache` is on and the file
exists, otherwise downloaded and written to that file; a theme that cannot be loaded falls back to Default. This
machine has no hub access, so besides cached files only Gradio's built-in themes work: "gradio/soft" and the other
`gradio/<built-in>` names are the hub copies of the built-ins and are served from the installed Gradio, as is a
bare built-in name ("Soft", "Ocean").
"""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr

from modules.processing.context import AppContext

log = logging.getLogger(__name__)

BUILT_IN = {"base": gr.themes.Base, "default": gr.themes.Default, "soft": gr.themes.Soft,
            "glass": gr.themes.Glass, "monochrome": gr.themes.Monochrome, "origin": gr.themes.Origin,
            "citrus": gr.themes.Citrus, "ocean": gr.themes.Ocean}
"""Gradio's built-in themes by lower-case name (the hub's `gradio/<name>` themes are copies of these)."""

HUB_THEMES = ("gradio/base", "gradio/glass", "gradio/monochrome", "gradio/seafoam", "gradio/soft",
              "gradio/dracula_test", "abidlabs/dracula_test", "abidlabs/Lime", "abidlabs/pakistan",
              "Ama434/neutral-barlow", "dawood/microsoft_windows", "finlaymacklon/smooth_slate",
              "Franklisi/darkmode", "freddyaboulton/dracula_revamped", "freddyaboulton/test-blue",
              "gstaff/xkcd", "Insuz/Mocha", "Insuz/SimpleIndigo", "JohnSmith9982/small_and_pretty",
              "nota-ai/theme", "nuttea/Softblue", "ParityError/Anime", "reilnuud/polite", "remilia/Ghostly",
              "rottenlittlecreature/Moon_Goblin", "step-3-profit/Midnight-Deep", "Taithrah/Minimal",
              "ysharma/huggingface", "ysharma/steampunk", "NoCrypt/miku")
"""A1111 `gradio_hf_hub_themes`: the names its dropdown offers (hub themes; offline only cached ones load)."""


def theme_choices() -> list[str]:
    """Choices of the `gradio_theme` dropdown: "Default", A1111's hub names, then the built-in names."""
    built_in = [name.capitalize() for name in BUILT_IN if name != "default"]
    return ["Default", *HUB_THEMES, *built_in]


def cache_file(ctx: AppContext, name: str) -> Path:
    """A1111's cache path of hub theme `name`: `tmp/gradio_themes/<name with / → _>.json`."""
    return Path(ctx.paths.tmp_dir) / "gradio_themes" / f"{name.replace('/', '_')}.json"


def load_theme(ctx: AppContext) -> gr.themes.ThemeClass:
    """The theme `gradio_theme` names (see the module docstring); never raises: a theme that cannot be loaded is
    logged and replaced by Default, as A1111 does."""
    name = str(ctx.settings.get("gradio_theme") or "Default").strip()
    if name == "Default":
        return gr.themes.Default()
    cached = cache_file(ctx, name)
    if ctx.settings.get("gradio_themes_cache") and cached.is_file():
        try:
            return gr.themes.Base.load(str(cached))
        except Exception as exc:
            log.warning("Gradio theme %r: the cached file %s cannot be read (%s)", name, cached, exc)
    key = name.lower().removeprefix("gradio/")
    if key in BUILT_IN:
        return BUILT_IN[key]()
    try:
        theme = gr.themes.Base.from_hub(name)
    except Exception as exc:
        log.warning("Gradio theme %r cannot be loaded (%s); using the Default theme. Offline, only Gradio's "
                    "built-in themes and themes cached in %s work.", name, exc, cached.parent)
        return gr.themes.Default()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        theme.dump(str(cached))
    except OSError as exc:
        log.warning("Gradio theme %r could not be cached in %s (%s)", name, cached, exc)
    return theme
