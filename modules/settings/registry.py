"""The registry of every built-in setting, in A1111 1.10's section order.

Order (`modules/shared_options.py`): saving-images, saving-paths, saving-to-dirs, upscaling, face-restoration,
system, profiler, API, training, sd, sdxl, sd3, vae, img2img, optimizations, compatibility, interrogate,
extra_networks, prompt editing, gallery, UI alternatives, user interface, infotext, live previews, sampler
parameters, postprocessing, hidden; then what the built-in extensions add (canvas hotkeys, Hypertile) and the
"Settings in UI" page. Extensions register more with `REGISTRY.register(section(...))`.
"""

from __future__ import annotations

from modules.settings import sections_saving, sections_sd, sections_system, sections_ui
from modules.settings.options import OptionRegistry

REGISTRY = OptionRegistry(
    sections_saving.OPTIONS
    + sections_system.POSTPROCESSING_OPTIONS
    + sections_system.SYSTEM_OPTIONS
    + sections_sd.SD_OPTIONS
    + sections_system.INTERROGATE
    + sections_sd.EXTRA_NETWORKS
    + sections_ui.UI_OPTIONS
    + sections_ui.LIVE_PREVIEWS
    + sections_sd.SAMPLER_PARAMS
    + sections_system.POSTPROCESSING
    + sections_system.HIDDEN
    + sections_ui.SETTINGS_IN_UI
    + sections_ui.CANVAS_HOTKEYS
    + sections_sd.HYPERTILE
)
"""Every built-in option by key. The only module-level mutable state in `modules.settings` (a registry)."""

BUILTIN_KEYS = frozenset(REGISTRY)
"""The keys this app declares itself (extensions add theirs to `REGISTRY` at run time)."""

RESTRICTED_KEYS = sections_saving.RESTRICTED_KEYS
"""Keys that `--hide-ui-dir-config` makes read-only (A1111 `restricted_opts`)."""
