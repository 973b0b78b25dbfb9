"""Start the web UI / API server: `python webui.py [flags]` (also what `launch.py` runs through `main()`).

This file is the app's composition root (docs/architecture.md): `build_context` is the only place where the
collaborators are created and joined, and `create_app` turns flags and a data dir into the served ASGI app. The
acceptance tests build the app through `create_app` exactly as `main` does.

Order, as A1111's `webui.py` (`webui()` / `api_only()`): parse the flags (command line + `COMMANDLINE_ARGS`),
resolve paths, load `config.json`, print start-up warnings, build the model manager and the job queue, start
loading the default checkpoint (skipped with `--nowebui --skip-load-model-at-start` or `--ui-debug-mode`), build the
UI (unless `--nowebui`), mount the API (with `--api` / `--nowebui`) and serve with uvicorn. With no checkpoint the
server still starts and says where to put one. A busy port is a one-line error (exit status 1).
"""

# ruff: noqa: E402 - the imports are timed in stages (IMPORT_STARTED ... OTHERS_IMPORTED)
from __future__ import annotations

import time

IMPORT_STARTED = time.perf_counter()
"""When this module began importing; with the marks below, the import stages of the "Startup time" line (A1111
times "import torch", "import gradio" and "other imports" the same way, in `modules/initialize.imports`)."""

import torch  # first, so that its cost is its own stage

TORCH_IMPORTED = time.perf_counter()

import gradio as gr

GRADIO_IMPORTED = time.perf_counter()

import contextlib
import functools
import logging
import os
import sys
import threading
import webbrowser
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from modules.cli.app_settings import load_settings
from modules.cli.flags import FlagError, FlagValues, flag_warnings
from modules.cli.paths import Paths, resolve_paths
from modules.cli.server import AuthFormatError
from modules.compat import host as extension_host
from modules.extensions import config_states
from modules.extensions.callbacks import default_registry
from modules.extensions.manager import Extension, discover_extensions
from modules.extensions.preload import parse_command_line
from modules.extensions.runner import ScriptRunner
from modules.extensions.scripts_postprocessing import PostprocessingScripts
from modules.interrogate import InterrogatorPaths, Interrogators, WeightsSource
from modules.memory.attention import AttentionSelector, configure_backends, preferred_backend_from_flags
from modules.memory.devices import probe_devices
from modules.memory.precision import PrecisionFlags, resolve_dtype_policy
from modules.models.checkpoints import CheckpointInfo, CheckpointRegistry
from modules.models.fp8_storage import WeightStorage
from modules.models.hashes import BackgroundHasher, HashCache
from modules.models.loader import DevicePolicy
from modules.models.manager import CacheLimits, ModelManager, OffloadFlags
from modules.models.sd_model import StableDiffusionModel
from modules.models.vae_files import VaeRegistry, VaeResolution
from modules.postprocessing import build_registries
from modules.processing.context import AppContext, ScriptRunners
from modules.processing.extra_networks import NetworkLibrary
from modules.processing.image_ops import resize_image
from modules.processing.main_ui_postprocessing import add_to_generation_tabs
from modules.processing.tiny_vae import TinyVaes
from modules.prompts.styles import StyleDatabase
from modules.runtime import startup
from modules.runtime.dependency_floors import outdated_dependencies
from modules.runtime.diagnostics import StageTimer, startup_diagnostics
from modules.runtime.download import ensure_default_checkpoint
from modules.runtime.jobs import JobQueue
from modules.server import PortInUseError, ServerHandle, bind_for_flags, build_app, local_url, run_server
from modules.settings.store import Settings, SettingsError
from modules.ui import build_ui

OTHERS_IMPORTED = time.perf_counter()

log = logging.getLogger("webui")


def _print(message: str) -> None:
    print(message, flush=True)


def _vae_resolver(vaes: VaeRegistry, settings: Settings
                  ) -> Callable[[CheckpointInfo, Mapping[str, Any] | None], VaeResolution]:
    """A1111 `sd_vae.resolve_vae`: `--vae-path`, `sd_vae` (+ `sd_vae_overrides_per_model_preferences`), the
    checkpoint's `<stem>.json` preference and `<stem>.vae.*` sidecars, read at each load from the job's settings
    snapshot (its `override_settings`) or else the global settings."""
    def resolve(info: CheckpointInfo, options: Mapping[str, Any] | None) -> VaeResolution:
        def read(key: str) -> Any:
            return options[key] if options is not None and key in options else settings.get(key)

        choice = str(read("sd_vae") or "Automatic")
        if choice not in ("Automatic", "None") and vaes.find(choice) is None:
            vaes.refresh()  # a file added since the last scan (A1111 rescans on its refresh button / refresh-vae)
        return vaes.resolve(info, choice,
                            overrides_per_model_preferences=bool(read("sd_vae_overrides_per_model_preferences")))

    return resolve


def _model_manager(flags: FlagValues, paths: Paths, settings: Settings, vaes: VaeRegistry,
                   cache: HashCache) -> ModelManager:
    """The ModelManager over the checkpoint folders with its hasher, VAE resolver and attention selector."""
    registry = CheckpointRegistry(paths.checkpoint_dir, flags.ckpt_dir, paths.checkpoint_file, cache,
                                  include_hidden=bool(settings.get("list_hidden_files")))
    device = probe_devices(flags.device_id, flags.use_cpu).sd_device
    precision = PrecisionFlags(no_half=flags.no_half, no_half_vae=flags.no_half_vae, precision=flags.precision,
                               upcast_sampling=flags.upcast_sampling, disable_nan_check=flags.disable_nan_check)
    policy = DevicePolicy(device=device, dtypes=resolve_dtype_policy(device, precision),
                          safe_unpickle=not flags.disable_safe_unpickle, channels_last=bool(flags.opt_channelslast),
                          cpu_fast_path=not flags.disable_opt_cpu_fast_path, cpu_prepack=not flags.disable_opt_cpu_prepack,
                          share_file_memory=not flags.disable_model_loading_ram_optimization,
                          mmap_safetensors=lambda: not settings.get("disable_mmap_load_safetensors"))
    configure_backends(flags.as_dict())  # --sub-quad-* chunk sizes
    attention = AttentionSelector(preferred_backend_from_flags(flags.as_dict()),
                                  lambda: settings.get("cross_attention_optimization"),
                                  upcast=lambda: bool(settings.get("upcast_attn")))
    return ModelManager(registry, policy, hasher=BackgroundHasher(cache), vae_resolver=_vae_resolver(vaes, settings),
                        attention=attention, offload=OffloadFlags(flags.medvram, flags.medvram_sdxl, flags.lowvram),
                        limits=lambda: _cache_limits(settings), storage=_weight_storage(settings))


def _weight_storage(settings: Settings) -> Callable[[Mapping[str, Any] | None], WeightStorage]:
    """The FP8 settings of a job's snapshot (its ``override_settings`` included) or, without one, the global ones."""

    def read(options: Mapping[str, Any] | None) -> WeightStorage:
        def value(key: str) -> Any:
            return options[key] if options is not None and key in options else settings.get(key)

        return WeightStorage(str(value("fp8_storage") or "Disable"), bool(value("cache_fp16_weight")))

    return read


def _cache_limits(settings: Settings) -> CacheLimits:
    """The model-cache settings at this moment (A1111 reads them at each checkpoint or VAE switch)."""
    return CacheLimits(loaded=max(1, int(settings.get("sd_checkpoints_limit"))),
                       keep_in_cpu=bool(settings.get("sd_checkpoints_keep_in_cpu")),
                       ram=max(0, int(settings.get("sd_checkpoint_cache"))),
                       vae_ram=max(0, int(settings.get("sd_vae_checkpoint_cache"))))


def _extensions(flags: FlagValues, paths: Paths, settings: Settings) -> list[Extension]:
    """The extensions on disk with their enabled state (`disabled_extensions`, `--disable-all-extensions`, …)."""
    mode = "all" if flags.disable_all_extensions else "extra" if flags.disable_extra_extensions else \
        str(settings.get("disable_all_extensions") or "none")
    # `restore_config_state_file` (Extensions > Backup/Restore): restore before the extensions are listed (A1111)
    for line in config_states.restore_pending(settings, paths.config_states_dir, discover_extensions(
            paths.extensions_dir, paths.extensions_builtin_dir, disabled=settings.get("disabled_extensions") or (),
            disable_all=mode, with_git=False)):
        log.info("%s", line)
    return discover_extensions(paths.extensions_dir, paths.extensions_builtin_dir,
                               disabled=settings.get("disabled_extensions") or (), disable_all=mode, with_git=False)


def _load_scripts(ctx: AppContext) -> None:
    """Fill the txt2img/img2img ScriptRunners from `<install>/scripts` and the enabled extensions (A1111
    `scripts.load_scripts()` at start-up, over `scripts/` then each enabled extension's `scripts/`) with the app
    bound for the A1111 views extensions read at import (`modules.compat.host.load_extensions`). Old-style
    `script_callbacks.on_*` calls register in `default_registry` (a re-import of a file replaces its callbacks).
    Then the Extras operations named in `postprocessing_enable_in_main_ui` join both tabs as always-on scripts
    (A1111 `scripts_auto_postprocessing`)."""
    for error in extension_host.load_extensions(ctx):
        log.error("Script not loaded: %s", error)
    add_to_generation_tabs(ctx)  # `postprocessing_enable_in_main_ui`: Extras operations as always-on scripts


def _interrogators(flags: FlagValues, paths: Paths, settings: Settings, env: Mapping[str, str]) -> Interrogators:
    """CLIP/DeepBooru interrogation on the `--use-cpu interrogate` device; weights in models/BLIP, the CLIP models
    folder (`--clip-models-path`) and models/torch_deepdanbooru, downloaded on first use unless
    `--do-not-download-clip` (docs/interrogate.md)."""
    device = probe_devices(flags.device_id, flags.use_cpu or ()).device_for("interrogate")
    dtype = torch.float32 if flags.no_half else torch.float16
    folders = InterrogatorPaths(blip=paths.model_subdir("BLIP") / "blip-image-captioning-large",
                                clip=(paths.clip_models_dir or paths.model_subdir("CLIP")) / "clip-vit-large-patch14",
                                deepbooru=paths.model_subdir("torch_deepdanbooru"),
                                categories=paths.script_dir / "interrogate")
    return Interrogators(folders, settings, WeightsSource(env, allow_download=not flags.do_not_download_clip),
                         device, dtype, functools.partial(resize_image, 2),
                         safe_unpickle=not flags.disable_safe_unpickle)


def build_context(flags: FlagValues, env: Mapping[str, str]) -> AppContext:
    """The composition root: every collaborator of the app, created once and joined here."""
    paths = resolve_paths(flags, env)
    paths.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_settings(flags, paths)
    settings = loaded.settings
    cache = HashCache(paths.cache_file, enabled=not flags.no_hashing)
    vaes = VaeRegistry(paths.vae_dir, paths.checkpoint_dirs, vae_path=paths.vae_path)
    models = _model_manager(flags, paths, settings, vaes, cache)
    networks = NetworkLibrary.from_paths(paths, hash_cache=cache, safe_unpickle=not flags.disable_safe_unpickle,
                                         prefer_filename=settings.get("lora_preferred_name") == "Filename")
    upscalers, face_restorers = build_registries(paths, flags, settings=settings, env=env)
    jobs = JobQueue(max_queued=max(0, int(flags.max_queued_jobs or 0)))
    scripts = ScriptRunners(txt2img=ScriptRunner(False, default_registry), img2img=ScriptRunner(True, default_registry),
                            postprocessing=PostprocessingScripts())
    ctx = AppContext(flags=flags, paths=paths, settings=settings, models=models, vaes=vaes, jobs=jobs,
                     styles=StyleDatabase(list(paths.styles_files)), networks=networks, upscalers=upscalers,
                     face_restorers=face_restorers, interrogators=_interrogators(flags, paths, settings, env),
                     tiny_vaes=TinyVaes(paths.vae_approx_dir, paths.model_subdir("VAE-taesd"), env,
                                        safe_unpickle=not flags.disable_safe_unpickle),
                     scripts=scripts, callbacks=default_registry,
                     extensions=_extensions(flags, paths, settings), startup_warnings=list(loaded.warnings))
    _load_scripts(ctx)
    return ctx


def load_first_loadable(ctx: AppContext) -> StableDiffusionModel | None:
    """Load the selected checkpoint (`sd_model_checkpoint`, `--ckpt`, else the first listed); when it cannot be
    loaded (corrupt, refused by the safe unpickler, unknown architecture), say why and try the next one, as a user
    would by hand. The setting then names the checkpoint that did load (A1111 writes the loaded title there)."""
    registry = ctx.models.registry
    wanted = ctx.settings.get("sd_model_checkpoint") or None
    first = (registry.get_closest(wanted) if wanted else None) or registry.default
    candidates = [first] + [info for info in registry if first is None or info.filename != first.filename]
    for info in candidates:
        if info is None:
            continue
        try:
            with ctx.jobs.exclusive():
                model = ctx.models.load(info)
        except Exception as exc:  # any failure of one file (CheckpointLoadError, out of memory) → the next file
            log.warning("Could not load %s: %s. Trying the next checkpoint.", info.title, exc)
            continue
        with contextlib.suppress(SettingsError):  # frozen settings keep their value
            ctx.settings.set("sd_model_checkpoint", model.checkpoint.title)
        timings = model.timings
        _print(f"{timings.summary()}: {model.checkpoint.title}")
        return model
    if len(registry):
        log.warning("None of the checkpoints could be loaded; put a working checkpoint in %s and choose it in "
                    "the top bar.", ctx.paths.checkpoint_dir)
    return None


def _ensure_checkpoint(ctx: AppContext) -> None:
    """First start: no checkpoint anywhere → download the default SD1.5 one (A1111 `sd_models.list_models`), unless
    `--no-download-sd-model`; on failure (offline) it says where to put a model and the UI starts without one."""
    if len(ctx.models.registry):
        return
    flags = ctx.flags
    found = ensure_default_checkpoint(ctx.paths.checkpoint_dir, extra_paths=[flags.ckpt_dir, flags.ckpt],
                                      no_download=bool(flags.no_download_sd_model))
    if found is not None:
        ctx.models.registry.refresh()


def _print_startup_facts(ctx: AppContext) -> None:
    """Warnings, then Python/torch/GPU facts with the chosen device, dtype and attention backend."""
    import importlib.util

    flags, policy = ctx.flags, ctx.models.policy
    xformers = importlib.util.find_spec("xformers") is not None
    warnings = ctx.startup_warnings + flag_warnings(flags, torch.cuda.is_available(), xformers)
    # --skip-version-check: A1111 skips its torch/xformers version warnings; here the dependency-floor check
    for message in warnings + ([] if flags.skip_version_check else outdated_dependencies()):
        _print(f"Warning: {message}")
    _print(startup_diagnostics(str(policy.device), str(policy.dtypes.unet).removeprefix("torch."),
                               ctx.models.attention.current().name,
                               vae_dtype=str(policy.dtypes.vae).removeprefix("torch.")))
    if len(ctx.models.registry) == 0:
        _print(f"No checkpoints found. Put a Stable Diffusion checkpoint (.safetensors or .ckpt) in "
               f"{ctx.paths.checkpoint_dir} and use /sdapi/v1/refresh-checkpoints (or restart).")


@dataclass
class WebUIApp:
    """The built app: its context, the UI (None with `--nowebui`), the ASGI app and the server handle."""

    ctx: AppContext
    ui: gr.Blocks | None
    asgi: FastAPI
    handle: ServerHandle

    def start_background_work(self) -> threading.Thread | None:
        """First-start download check, then the default checkpoint loading in the background (unless
        `--ui-debug-mode` or `--nowebui --skip-load-model-at-start`). Returns the loader thread."""
        ctx, flags = self.ctx, self.ctx.flags
        _ensure_checkpoint(ctx)
        if flags.ui_debug_mode or (flags.nowebui and flags.skip_load_model_at_start) or not len(ctx.models.registry):
            return None
        thread = threading.Thread(target=load_first_loadable, args=(ctx,), name="load-model", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Stop the job queue and the hasher (pending jobs are cancelled); A1111 views stop reading this app."""
        restart = self.handle.restart_file
        extension_host.shutdown(self.ctx, reloading=restart is not None and restart.exists())
        self.ctx.jobs.shutdown(cancel_pending=True, timeout=5)
        self.ctx.models.hasher.shutdown(wait=False)


def command_line(argv: Sequence[str], env: Mapping[str, str]) -> tuple[FlagValues, list[str]]:
    """The flags of `argv` + `COMMANDLINE_ARGS`, with the flags enabled extensions add in their `preload.py`
    (A1111 imports each preload.py and calls `preload(parser)` before parsing); returns (flags, messages naming
    each preload.py that failed and was skipped). Raises FlagError on a bad command line."""
    from modules.compat.imports import extension_import_folder

    return parse_command_line(list(argv), env, scope=extension_import_folder)


def create_app(argv: Sequence[str], env: Mapping[str, str], *, timer: StageTimer | None = None,
               parsed: tuple[FlagValues, list[str]] | None = None) -> WebUIApp:
    """Flags and environment → the complete app, as `./webui.sh` starts it (raises FlagError on a bad command
    line, AuthFormatError on a malformed `--gradio-auth`/`--api-auth`). `parsed` is `command_line(argv, env)`
    when the caller already parsed it (`main`)."""
    timer = timer or StageTimer()
    flags, preload_errors = parsed if parsed is not None else command_line(argv, env)
    ctx = build_context(flags, env)
    ctx.startup_warnings.extend(preload_errors)
    timer.record("load scripts and settings")
    extension_host.before_ui(ctx)  # A1111 before_ui, then ui_settings
    ui = None if flags.nowebui else build_ui(ctx)
    timer.record("create ui")
    handle = ServerHandle(ctx.paths.restart_file)
    wire_restart(ctx, handle.action, env)
    asgi = build_app(ctx, ui, server_action=handle.action, env=env)
    extension_host.app_started(ctx, ui, asgi)  # A1111 app_started(demo, app)
    timer.record("create app")
    return WebUIApp(ctx=ctx, ui=ui, asgi=asgi, handle=handle)


def wire_restart(ctx: AppContext, server_action: Callable[[str], None], env: Mapping[str, str]) -> None:
    """Give the Extensions tab's "Apply and restart UI" a `ctx.request_restart` when a launcher restarts us:
    webui.sh exports SD_WEBUI_RESTART and runs launch.py again while the `tmp/restart` marker exists, so the request
    writes that marker and stops the server (A1111 `restart.restart_program`). Without it, nothing is wired and the
    tab asks for a manual restart."""
    if env.get("SD_WEBUI_RESTART"):
        ctx.request_restart = lambda: server_action("restart")


def _open_browser_soon(url: str) -> None:
    """`--autolaunch`: open the UI in the system's default browser once the server is accepting (A1111)."""
    threading.Timer(1.0, webbrowser.open, args=(url,)).start()


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build everything, serve until stopped; the process exit status."""
    logging.basicConfig(level=os.environ.get("SD_WEBUI_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = command_line(args, os.environ)
    except FlagError as exc:
        return int(exc.code or 2)
    flags = parsed[0]
    startup.configure_logging(flags, os.environ)  # --loglevel
    try:
        sock = bind_for_flags(flags)  # first, so a busy port fails fast, before models load
    except (PortInUseError, OSError) as exc:
        print(f"webui: error: {exc}", file=sys.stderr, flush=True)
        return 1
    timer = StageTimer(on_record=startup.StartupLog(bool(flags.log_startup)).stage_done)
    startup.book_stages(timer, IMPORT_STARTED, [
        ("import torch", TORCH_IMPORTED), ("import gradio", GRADIO_IMPORTED), ("other imports", OTHERS_IMPORTED),
        ("initialize", time.perf_counter())])  # flags, port (and launch.py's CUDA check, when it was still running)
    try:
        app = create_app(args, os.environ, timer=timer, parsed=parsed)
    except AuthFormatError as exc:
        sock.close()
        print(f"webui: error: {exc}", file=sys.stderr, flush=True)
        return 1
    _print_startup_facts(app.ctx)
    app.start_background_work()
    _print(f"Running on local URL: {local_url(flags, sock)}")
    _print(f"Startup time: {timer.summary()}.")
    if flags.api or flags.nowebui:
        _print(f"API docs: {local_url(flags, sock)}docs")
    if startup.opens_browser(flags, app.ctx.settings, os.environ):  # --autolaunch / auto_launch_browser
        _open_browser_soon(local_url(flags, sock))
    app.handle.on_signal = startup.stack_dump(app.ctx.settings)  # dump_stacks_on_signal
    startup.apply_warning_filters(app.ctx.settings)  # show_warnings, show_gradio_deprecation_warnings
    try:
        return run_server(app.asgi, sock, flags, app.handle)
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown; A1111 exits with status 0
        _print("Interrupted with signal 2 (Ctrl+C): stopped.")
        return 0
    finally:
        app.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
