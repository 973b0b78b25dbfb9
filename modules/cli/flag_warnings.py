"""Warnings about flags that cannot do anything on this machine, or that expose the server.

A1111 silently ignores most of these (e.g. `--medvram` on a CPU-only install just does nothing); users then wonder why
a flag "does not work". Each warning names the flag, says why, and is emitted once.
Facts used: the memory flags (`--medvram`, `--medvram-sdxl`, `--lowvram`, `--lowram`) and `--device-id` act on CUDA
devices only; xformers needs CUDA and the `xformers` package; "exposed" = `--share`, `--listen`, `--ngrok` or
`--server-name` (A1111 then refuses extension installs unless `--enable-insecure-extension-access`); TLS needs both
`--tls-keyfile` and `--tls-certfile`; `--timeout-keep-alive` and `--skip-load-model-at-start` apply in `--nowebui`
mode only; the modules `--use-cpu` knows are all, sd, interrogate, gfpgan, esrgan, codeformer (plus the other
upscalers' task names); `--theme` is light or dark.
"""

from __future__ import annotations

from typing import Any

from modules.cli.flag_specs import FLAG_SPECS

USE_CPU_MODULES = frozenset({"all", "sd", "interrogate", "gfpgan", "esrgan", "codeformer", "bsrgan", "realesrgan",
                             "scunet", "swinir", "ldsr", "dat"})
_LEGACY = {spec.dest: spec.option for spec in FLAG_SPECS if spec.legacy}


def is_exposed(flags: Any) -> bool:
    """True when the server is reachable from other machines (A1111's `shared.cmd_opts` 'exposed' test)."""
    return bool(flags.share or flags.listen or flags.ngrok or flags.server_name)


def _has_ui_auth(flags: Any) -> bool:
    return bool(flags.gradio_auth or flags.gradio_auth_path)


def _device_warnings(flags: Any, cuda: bool, xformers: bool) -> list[str]:
    out: list[str] = []
    xformer_flags = [f for f, on in (("--xformers", flags.xformers), ("--force-enable-xformers",
                                      flags.force_enable_xformers),
                                     ("--xformers-flash-attention", flags.xformers_flash_attention)) if on]
    for flag in xformer_flags:
        if not cuda:
            out.append(f"{flag} has no effect: xformers needs a CUDA GPU and none is available; "
                       "PyTorch scaled-dot-product attention is used instead")
        elif not xformers:
            out.append(f"{flag} has no effect: the xformers package is not installed (pip install xformers); "
                       "PyTorch scaled-dot-product attention is used instead")
    if not cuda:
        for flag, on in (("--medvram", flags.medvram), ("--medvram-sdxl", flags.medvram_sdxl),
                         ("--lowvram", flags.lowvram), ("--lowram", flags.lowram)):
            if on:
                out.append(f"{flag} has no effect: it moves models between GPU memory and RAM, "
                           "and there is no CUDA GPU (everything already runs on the CPU)")
        if flags.device_id is not None:
            out.append(f"--device-id {flags.device_id} has no effect: there is no CUDA GPU")
    elif flags.lowvram and (flags.medvram or flags.medvram_sdxl):
        other = "--medvram" if flags.medvram else "--medvram-sdxl"
        out.append(f"{other} has no effect together with --lowvram (--lowvram wins)")
    unknown = [m for m in flags.use_cpu if m not in USE_CPU_MODULES]
    if unknown:
        out.append(f"--use-cpu: unknown module name(s) {', '.join(unknown)}; known: "
                   f"{', '.join(sorted(USE_CPU_MODULES))}")
    if flags.no_half and flags.upcast_sampling:
        out.append("--upcast-sampling has no effect with --no-half (the model is already in float32)")
    return out


def _server_warnings(flags: Any) -> list[str]:
    out: list[str] = []
    if flags.share and not _has_ui_auth(flags):
        out.append("--share makes the UI public on the internet through a gradio.live link, and no "
                   "--gradio-auth/--gradio-auth-path is set: anyone with the link can use this machine")
    if flags.ngrok and not _has_ui_auth(flags) and "basic_auth" not in flags.ngrok_options:
        out.append("--ngrok makes the UI public on the internet and no --gradio-auth is set: anyone with the "
                   "address can use this machine")
    if (flags.listen or flags.server_name) and not flags.share and not _has_ui_auth(flags):
        flag = "--listen" if flags.listen else "--server-name"
        out.append(f"{flag} makes the UI reachable from the network without a login (no --gradio-auth)")
    if (flags.api or flags.nowebui) and is_exposed(flags) and not flags.api_auth:
        out.append("the API is reachable from the network without --api-auth: anyone on it can run jobs "
                   "and change settings")
    if flags.enable_insecure_extension_access and is_exposed(flags):
        out.append("--enable-insecure-extension-access on an exposed server lets remote users install and run "
                   "arbitrary code through the Extensions tab")
    if flags.allow_code and is_exposed(flags):
        out.append("--allow-code on an exposed server lets remote users run arbitrary Python code")
    if flags.disable_tls_verify is False:  # store_false: passing the flag makes it False
        out.append("--disable-tls-verify has no effect here: A1111 needs it so Gradio's start-up request to its own "
                   "HTTPS address accepts a self-signed certificate; this server makes no such request, so "
                   "self-signed certificates work without it")
    if flags.gradio_debug:
        out.append("--gradio-debug has no effect here: A1111 passes it to Gradio's launch(debug=True), which only "
                   "keeps the main thread waiting and prints event errors in Colab notebooks; this server's main "
                   "thread already serves until stopped, and errors of UI events are printed to the console and "
                   "shown on the page")
    if bool(flags.tls_keyfile) != bool(flags.tls_certfile):
        given, missing = (("--tls-keyfile", "--tls-certfile") if flags.tls_keyfile
                          else ("--tls-certfile", "--tls-keyfile"))
        out.append(f"{given} has no effect without {missing}: the server stays on plain HTTP")
    if flags.nowebui:
        for flag, on in (("--share", flags.share), ("--gradio-auth", flags.gradio_auth),
                         ("--autolaunch", flags.autolaunch), ("--theme", flags.theme)):
            if on:
                out.append(f"{flag} has no effect with --nowebui (there is no UI)")
    else:
        if flags.is_set("timeout_keep_alive"):
            out.append("--timeout-keep-alive has no effect without --nowebui")
        if flags.skip_load_model_at_start:
            out.append("--skip-load-model-at-start has no effect without --nowebui")
    if flags.theme is not None and flags.theme not in ("light", "dark"):
        out.append(f"--theme {flags.theme!r} is not light or dark; the browser's theme is used")
    return out


def flag_warnings(flags: Any, cuda_available: bool, xformers_available: bool) -> list[str]:
    """Human-readable warnings for flags that cannot do anything here or that expose the server; each said once."""
    messages = _device_warnings(flags, cuda_available, xformers_available) + _server_warnings(flags)
    for dest, option in _LEGACY.items():
        if flags.is_set(dest):
            messages.append(f"{option} is accepted for compatibility but does nothing")
    return list(dict.fromkeys(messages))
