"""Start the web UI / API server: `python webui.py [flags]` (also what `launch.py` runs through `main()`).

Order, as A1111's `webui.py` (`webui()` / `api_only()`): parse the flags (command line + `COMMANDLINE_ARGS`),
resolve paths, load `config.json`, print start-up warnings, build the model manager and the job queue, start
loading the default checkpoint (skipped with `--nowebui --skip-load-model-at-start` or `--ui-debug-mode`), build the
UI (unless `--nowebui`), mount the API (with `--api` / `--nowebui`) and serve with uvicorn. With no checkpoint the
server still starts and says where to put one. A busy port is a one-line error (exit status 1).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger("webui")


def _print(message: str) -> None:
    print(message, flush=True)


def _model_manager(flags: Any, paths: Any, settings: Any) -> Any:
    """The ModelManager over the checkpoint folders (None when the models package is not available)."""
    try:
        from modules.models.checkpoints import CheckpointRegistry
        from modules.models.hashes import HashCache
        from modules.models.loader import DevicePolicy
        from modules.models.manager import ModelManager, OffloadFlags
    except ModuleNotFoundError as exc:
        log.warning("Model management is not available (%s); generation will not work", exc)
        return None
    from modules.memory.devices import probe_devices
    from modules.memory.precision import PrecisionFlags, resolve_dtype_policy

    cache = HashCache(paths.cache_file, enabled=not flags.no_hashing)
    registry = CheckpointRegistry(paths.checkpoint_dir, flags.ckpt_dir, paths.checkpoint_file, cache,
                                  include_hidden=bool(settings.get("list_hidden_files")))
    device = probe_devices(flags.device_id, flags.use_cpu).sd_device
    precision = PrecisionFlags(no_half=flags.no_half, no_half_vae=flags.no_half_vae, precision=flags.precision,
                               upcast_sampling=flags.upcast_sampling, disable_nan_check=flags.disable_nan_check)
    policy = DevicePolicy(device=device, dtypes=resolve_dtype_policy(device, precision),
                          safe_unpickle=not flags.disable_safe_unpickle)
    return ModelManager(registry, policy, cache_size=max(0, int(settings.get("sd_checkpoints_limit")) - 1),
                        offload=OffloadFlags(flags.medvram, flags.medvram_sdxl, flags.lowvram))


def _load_default_model(ctx: Any) -> None:
    """Load the selected (or first) checkpoint in the background, holding the device lock; errors are logged."""
    def load() -> None:
        try:
            with ctx.jobs.exclusive():
                model = ctx.models.load(ctx.settings.get("sd_model_checkpoint") or None)
            timings = getattr(model, "timings", None)
            _print(f"{timings.summary()}: {model.checkpoint.title}" if timings is not None
                   else f"Model loaded: {model.checkpoint.title}")
        except Exception as exc:
            log.error("Could not load the checkpoint: %s", exc)

    threading.Thread(target=load, name="load-model", daemon=True).start()


def _build_ui(ctx: Any) -> Any:
    """The Gradio Blocks from `modules.ui.create_ui(ctx)`; None when the UI package does not provide it yet."""
    try:
        from modules.ui import create_ui  # type: ignore[attr-defined]
    except ImportError:
        log.warning("The Gradio UI is not available in this build (modules.ui.create_ui); serving the API only")
        return None
    return create_ui(ctx)


def _device_summary(flags: Any, settings: Any, models: Any) -> None:
    """Python/torch/GPU facts and the chosen device, dtype and attention backend (modules.runtime.diagnostics)."""
    from modules.memory.attention import preferred_backend_from_flags, select_backend
    from modules.runtime.diagnostics import startup_diagnostics

    if models is None:
        return
    policy = models.policy
    backend = select_backend(settings.get("cross_attention_optimization"),
                             preferred=preferred_backend_from_flags(flags.as_dict()))
    _print(startup_diagnostics(str(policy.device), str(policy.dtypes.unet).removeprefix("torch."), backend.name,
                               vae_dtype=str(policy.dtypes.vae).removeprefix("torch.")))


def _startup_diagnostics(flags: Any, paths: Any, warnings: list[str], models: Any) -> None:
    from modules.cli.flags import flag_warnings

    try:
        import torch

        cuda = torch.cuda.is_available()
    except Exception:
        cuda = False
    try:
        import importlib.util

        xformers = importlib.util.find_spec("xformers") is not None
    except Exception:
        xformers = False
    for message in warnings + flag_warnings(flags, cuda, xformers):
        _print(f"Warning: {message}")
    if models is not None and len(models.registry) == 0:
        _print(f"No checkpoints found. Put a Stable Diffusion checkpoint (.safetensors or .ckpt) in "
               f"{paths.checkpoint_dir} and use /sdapi/v1/refresh-checkpoints (or restart).")


def _ensure_checkpoint(ctx: Any) -> None:
    """First start: no checkpoint anywhere → download the default SD1.5 one (A1111 `sd_models.list_models`), unless
    `--no-download-sd-model`; on failure (offline) it says where to put a model and the UI starts without one."""
    from modules.runtime.download import ensure_default_checkpoint

    if ctx.models is None or len(ctx.models.registry):
        return
    flags = ctx.flags
    found = ensure_default_checkpoint(ctx.paths.checkpoint_dir, extra_paths=[flags.ckpt_dir, flags.ckpt],
                                      no_download=bool(flags.no_download_sd_model))
    if found is not None:
        ctx.models.registry.refresh()


def _add_extra_networks(ctx: Any) -> None:
    """`ctx.extra["extra_networks"]` (+ `lora_registry`, `embedding_db` for the API): the network files of this
    install, sharing the checkpoints' hash cache (`cache.json`)."""
    from modules.processing.extra_networks import NetworkLibrary

    registry = getattr(ctx.models, "registry", None)
    library = NetworkLibrary.from_paths(
        ctx.paths, hash_cache=getattr(registry, "hash_cache", None),
        safe_unpickle=not getattr(ctx.flags, "disable_safe_unpickle", False),
        prefer_filename=ctx.settings.get("lora_preferred_name") == "Filename")
    ctx.extra.update(extra_networks=library, lora_registry=library.loras, embedding_db=library.embeddings)


def build_context(flags: Any, env: Any = None) -> Any:
    """Paths, settings, models, queue and styles for this run: the `AppContext` every part receives."""
    from modules.cli.app_settings import load_settings
    from modules.cli.paths import resolve_paths
    from modules.processing.context import AppContext
    from modules.prompts.styles import StyleDatabase
    from modules.runtime.jobs import JobQueue

    paths = resolve_paths(flags, os.environ if env is None else env)
    paths.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_settings(flags, paths)
    models = _model_manager(flags, paths, loaded.settings)
    ctx = AppContext(flags=flags, paths=paths, settings=loaded.settings, models=models, jobs=JobQueue(),
                     styles=StyleDatabase(list(paths.styles_files)))
    ctx.extra["startup_warnings"] = list(loaded.warnings)
    _add_extra_networks(ctx)  # extra networks: LoRA/TI/hypernetwork library (modules/processing/extra_networks.py)
    _add_postprocessing(ctx)  # upscalers / face restorers (modules/postprocessing)
    _add_script_runners(ctx)
    return ctx


def _add_postprocessing(ctx: Any) -> None:
    """Upscaler and face-restorer registries (modules.postprocessing) as `ctx.extra["upscalers"/"face_restorers"]`."""
    from modules.postprocessing import build_registries

    ctx.extra["upscalers"], ctx.extra["face_restorers"] = build_registries(ctx.paths, ctx.flags)


def _add_script_runners(ctx: Any) -> None:
    """The txt2img/img2img ScriptRunners over `<install>/scripts` and the enabled extensions, and their callbacks.

    Stored as `ctx.extra["txt2img_scripts"]`, `["img2img_scripts"]` and `["callbacks"]` (the pipeline and the API
    read them there). The callbacks are `default_registry`, where old-style `script_callbacks.on_*` calls register
    (a re-import of a file replaces that file's callbacks). A1111: `scripts.load_scripts()` at start-up, over `scripts/` then each enabled extension's `scripts/`.
    """
    from modules.extensions.callbacks import default_registry
    from modules.extensions.manager import discover_extensions
    from modules.extensions.runner import build_runners

    flags, settings = ctx.flags, ctx.settings
    mode = "all" if flags.disable_all_extensions else "extra" if flags.disable_extra_extensions else \
        str(settings.get("disable_all_extensions") or "none")
    extensions = discover_extensions(ctx.paths.extensions_dir, ctx.paths.extensions_builtin_dir,
                                     disabled=settings.get("disabled_extensions") or (), disable_all=mode,
                                     with_git=False)
    callbacks = default_registry
    txt2img, img2img, errors = build_runners(ctx.paths.script_dir, [e.path for e in extensions if e.enabled],
                                             callbacks=callbacks)
    for error in errors:
        log.error("Script not loaded: %s", error)
    ctx.extra.update(txt2img_scripts=txt2img, img2img_scripts=img2img, callbacks=callbacks)


def _open_browser_soon(url: str) -> None:
    """`--autolaunch`: open the UI in the system's default browser once the server is accepting (A1111)."""
    import threading
    import webbrowser

    threading.Timer(1.0, webbrowser.open, args=(url,)).start()


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build everything, serve until stopped; the process exit status."""
    from modules.cli.flags import FlagError, parse_flags
    from modules.cli.server import AuthFormatError
    from modules.runtime.diagnostics import StageTimer
    from modules.server import PortInUseError, ServerHandle, bind_for_flags, build_app, local_url, run_server

    logging.basicConfig(level=os.environ.get("SD_WEBUI_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        flags = parse_flags(argv)
    except FlagError as exc:
        return int(exc.code or 2)
    try:
        sock = bind_for_flags(flags)  # first, so a busy port fails fast, before models and torch load
    except (PortInUseError, OSError) as exc:
        print(f"webui: error: {exc}", file=sys.stderr, flush=True)
        return 1
    timer = StageTimer()
    ctx = build_context(flags)
    timer.record("load scripts and settings")
    _ensure_checkpoint(ctx)
    timer.record("check for a checkpoint")
    _device_summary(flags, ctx.settings, ctx.models)
    _startup_diagnostics(flags, ctx.paths, ctx.extra["startup_warnings"], ctx.models)
    skip_load = flags.ui_debug_mode or (flags.nowebui and flags.skip_load_model_at_start)
    if ctx.models is not None and len(ctx.models.registry) and not skip_load:
        _load_default_model(ctx)
    ui = None if flags.nowebui else _build_ui(ctx)
    timer.record("create ui")
    if ui is None and not flags.nowebui and not flags.api:
        flags = _with_api(flags)
        ctx.flags = flags
    handle = ServerHandle(ctx.paths.restart_file)
    wire_restart(ctx, handle.action, os.environ)
    try:
        app = build_app(ctx, ui, server_action=handle.action)
    except AuthFormatError as exc:
        sock.close()
        print(f"webui: error: {exc}", file=sys.stderr, flush=True)
        return 1
    timer.record("create app")
    _print(f"Running on local URL: {local_url(flags, sock)}")
    _print(f"Startup time: {timer.summary()}.")
    if flags.api or flags.nowebui:
        _print(f"API docs: {local_url(flags, sock)}docs")
    if getattr(flags, "autolaunch", False) and not flags.nowebui:
        _open_browser_soon(local_url(flags, sock))
    try:
        return run_server(app, sock, flags, handle)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown; A1111 exits with status 0
        _print("Interrupted with signal 2 (Ctrl+C): stopped.")
        return 0
    finally:
        ctx.jobs.shutdown(cancel_pending=True, timeout=5)


def wire_restart(ctx: Any, server_action: Any, env: Any) -> None:
    """Give the Extensions tab's "Apply and restart UI" a `ctx.extra["request_restart"]` when a launcher restarts us:
    webui.sh exports SD_WEBUI_RESTART and runs launch.py again while the `tmp/restart` marker exists, so the request
    writes that marker and stops the server (A1111 `restart.restart_program`). Without it, nothing is wired and the
    tab asks for a manual restart."""
    if env.get("SD_WEBUI_RESTART"):
        ctx.extra["request_restart"] = lambda: server_action("restart")


def _with_api(flags: Any) -> Any:
    """The flags with `--api` on (used when no UI can be built, so the server still does something useful)."""
    import dataclasses

    return dataclasses.replace(flags, api=True)


if __name__ == "__main__":
    raise SystemExit(main())
