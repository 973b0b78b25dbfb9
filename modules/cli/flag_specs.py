"""A1111's whole command-line flag set, as data.

Every row is one flag of A1111 1.10 (`modules/cmd_args.py` plus the flags the built-in extensions add from their
`preload.py`: Lora's `--lora-dir`/`--lyco-dir-backcompat`, ScuNET's, SwinIR's and LDSR's model paths). Names, types,
defaults and meaning follow A1111; the grouping follows the project reference (§1 of `a1111-features.md`):
server/network/security, device/precision/memory/attention, paths, launcher-only, plus one group for the legacy flags
A1111 still accepts but documents as "does not do anything".

Defaults that A1111 computes from directories (`data_path`, `models_path`, `script_path` in `paths_internal.py`) are
written as `Rel(base, *parts)` and resolved by `modules.cli.flags.parse_flags` once `--data-dir`/`--models-dir` are
known, exactly as A1111 pre-parses those two flags before building the real parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FlagKind = Literal["switch", "store_false", "str", "int", "path", "choice", "list", "append", "json"]
Base = Literal["script", "data", "models"]

GROUP_SERVER = "server / network / security"
GROUP_DEVICE = "device / precision / memory / attention"
GROUP_PATHS = "paths"
GROUP_LAUNCHER = "launcher-only"
GROUP_LEGACY = "legacy (accepted, no effect)"

GROUP_ORDER: tuple[str, ...] = (GROUP_SERVER, GROUP_DEVICE, GROUP_PATHS, GROUP_LAUNCHER, GROUP_LEGACY)


@dataclass(frozen=True)
class Rel:
    """A default path relative to one of A1111's base directories (install root, data dir, models dir)."""

    base: Base
    parts: tuple[str, ...]

    def __init__(self, base: Base, *parts: str) -> None:
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "parts", parts)


@dataclass(frozen=True)
class FlagSpec:
    """One command-line flag: its option string, value kind, A1111 default, help text and help group.

    Kinds: `switch` (store_true), `store_false`, `str`, `int`, `path` (made absolute like A1111 1.10's
    `normalized_filepath`), `choice`, `list` (nargs='+', lower-cased like `--use-cpu`), `append` (repeatable), `json`.
    """

    option: str
    kind: FlagKind
    default: Any
    help: str
    group: str
    choices: tuple[str, ...] = ()
    legacy: bool = False

    @property
    def dest(self) -> str:
        """Attribute name on the parsed object, as argparse (and so A1111's `cmd_opts`) derives it."""
        return self.option.lstrip("-").replace("-", "_")


def _s(option: str, help: str, group: str, *, default: Any = False, legacy: bool = False) -> FlagSpec:
    return FlagSpec(option, "switch", default, help, group, legacy=legacy)


def _v(option: str, kind: FlagKind, help: str, group: str, default: Any = None, **kw: Any) -> FlagSpec:
    return FlagSpec(option, kind, default, help, group, **kw)


S, D, P, L, X = GROUP_SERVER, GROUP_DEVICE, GROUP_PATHS, GROUP_LAUNCHER, GROUP_LEGACY

FLAG_SPECS: tuple[FlagSpec, ...] = (
    # --- server / network / security -------------------------------------------------------------------------------
    _s("--listen", "bind 0.0.0.0 so the server answers network (LAN) requests", S),
    _v("--port", "int", "server port; root/admin rights are needed below 1024; default 7860 (7861 with --nowebui)", S),
    _v("--server-name", "str", "explicit hostname to bind; overrides --listen", S),
    _v("--allowed-hosts", "str", "extra host names the server answers for, comma-separated (a leading dot allows "
       "subdomains; * allows any); localhost, IP addresses and this machine's names always work", S),
    _s("--allow-remote-output-dirs", "let output-folder and file-name settings change while the server is "
       "reachable from the network (--listen/--share); refused by default", S),
    _v("--script-import-timeout", "int", "seconds a script or extension file may take to import before the server "
       "starts without it (0: wait forever)", S, default=60),
    _v("--max-queued-jobs", "int", "generation requests that may wait behind the running one; more get 429 "
       "(0: no limit)", S, default=64),
    _v("--max-request-body-mb", "int", "refuse request bodies larger than this many MB with 413 (0: no limit)", S,
       default=128),
    _s("--share", "create a public Gradio share link (*.gradio.live)", S),
    _v("--ngrok", "str", "ngrok authtoken: tunnel through ngrok instead of --share", S),
    _v("--ngrok-options", "json", 'options for ngrok as JSON, e.g. \'{"basic_auth": "user:password"}\'', S, default={}),
    _v("--gradio-auth", "str", 'UI login: "user:password", or several comma-separated "u1:p1,u2:p2"', S),
    _v("--gradio-auth-path", "path", "file with UI logins in the --gradio-auth format (one or more lines)", S),
    _s("--gradio-debug", "launch Gradio in debug mode", S),
    _v("--gradio-allowed-path", "append", "extra path Gradio may serve files from (repeatable)", S,
       default=(Rel("data"),)),
    _s("--no-gradio-queue", "disable the Gradio queue: the page uses HTTP requests instead of websockets", S),
    _s("--api", "also serve the REST API (/sdapi/v1/*, /docs) next to the UI", S),
    _s("--nowebui", "serve only the REST API, no UI (default port 7861)", S),
    _v("--api-auth", "str", 'HTTP Basic auth for the API: "user:password" or "u1:p1,u2:p2"', S),
    _s("--api-log", "log every API request (time, status, method, path, client, duration)", S),
    _s("--api-server-stop", "enable /sdapi/v1/server-kill, /server-restart and /server-stop", S),
    _v("--timeout-keep-alive", "int", "uvicorn keep-alive timeout in seconds (API-only mode)", S, default=30),
    _s("--skip-load-model-at-start", "with --nowebui: do not load a checkpoint at start", S),
    _v("--cors-allow-origins", "str", "allowed CORS origins, comma-separated without spaces", S),
    _v("--cors-allow-origins-regex", "str", "allowed CORS origins as one regular expression", S),
    _v("--tls-keyfile", "str", "TLS private key file; HTTPS needs --tls-certfile too", S),
    _v("--tls-certfile", "str", "TLS certificate file; HTTPS needs --tls-keyfile too", S),
    _v("--disable-tls-verify", "store_false", "allow self-signed certificates (value becomes False when passed)", S),
    _v("--subpath", "str", "serve under this root path, for use behind a reverse proxy", S),
    _s("--autolaunch", "open the UI in the system's default browser at start", S),
    _s("--freeze-settings", "no setting can be changed or saved (UI, API, quicksettings)", S),
    _v("--freeze-settings-in-sections", "str", 'freeze whole settings sections, e.g. "saving-images,upscaling"', S),
    _v("--freeze-specific-settings", "str", 'freeze individual settings, e.g. "samples_save,samples_format"', S),
    _s("--hide-ui-dir-config", "hide directory settings; output path and filename settings become read-only", S),
    _s("--enable-insecure-extension-access", "allow installing/updating extensions even when the server is exposed", S),
    _s("--disable-all-extensions", "load no extensions at all, regardless of settings", S),
    _s("--disable-extra-extensions", "load only the built-in extensions, regardless of settings", S),
    _s("--allow-code", "enable the 'Custom code' script, which runs Python typed into the UI", S),
    _s("--ui-debug-mode", "start the UI without loading a model", S),
    _s("--administrator", "administrator rights (reserved)", S),
    _v("--theme", "str", "force the UI theme: light or dark", S),
    _s("--use-textbox-seed", "seed as a textbox (allows seeds longer than a number field)", S),
    _s("--disable-console-progressbars", "do not print progress bars to the console", S),
    _s("--no-progressbar-hiding", "do not hide Gradio's progress bars", S),
    _v("--loglevel", "str", "log level: CRITICAL, ERROR, WARNING, INFO or DEBUG (env SD_WEBUI_LOG_LEVEL also works)", S),
    _s("--log-startup", "print a detailed log of what happens at startup", S),
    # --- device / precision / memory / attention -------------------------------------------------------------------
    _s("--medvram", "keep only one of text encoder, UNet, VAE on the GPU at a time", D),
    _s("--medvram-sdxl", "--medvram only while an SDXL model is loaded", D),
    _s("--lowvram", "also move the UNet to the GPU block by block (very slow, least VRAM)", D),
    _s("--lowram", "load checkpoint weights straight to VRAM instead of RAM", D),
    _s("--no-half", "keep the model in 32-bit floats", D),
    _s("--no-half-vae", "keep the VAE in 32-bit floats", D),
    _v("--precision", "choice", "evaluate at this precision: full (no autocast), half, autocast", D,
       default="autocast", choices=("full", "half", "autocast")),
    _s("--upcast-sampling", "upcast the sampling maths to fp32 (no effect with --no-half)", D),
    _v("--device-id", "str", "CUDA device index to use (CUDA_VISIBLE_DEVICES also works)", D),
    _v("--use-cpu", "list", "run these modules on the CPU: all, sd, interrogate, gfpgan, esrgan, codeformer", D,
       default=()),
    _s("--use-ipex", "use an Intel XPU as the torch device", D),
    _s("--xformers", "use xformers for cross attention", D),
    _s("--force-enable-xformers", "use xformers even if the availability check says it cannot run", D),
    _s("--xformers-flash-attention", "use xformers with flash attention (SD2.x; better reproducibility)", D),
    _s("--opt-split-attention", "prefer Doggettx's split attention for the Automatic choice", D),
    _s("--opt-split-attention-v1", "prefer the original v1 split attention for the Automatic choice", D),
    _s("--opt-split-attention-invokeai", "prefer InvokeAI's split attention for the Automatic choice", D),
    _s("--opt-sub-quad-attention", "prefer sub-quadratic attention for the Automatic choice", D),
    _v("--sub-quad-q-chunk-size", "int", "query chunk size for sub-quadratic attention", D, default=1024),
    _v("--sub-quad-kv-chunk-size", "int", "key/value chunk size for sub-quadratic attention", D),
    _v("--sub-quad-chunk-threshold", "int", "percentage of VRAM above which sub-quadratic attention chunks", D),
    _s("--opt-sdp-attention", "prefer torch scaled-dot-product attention for the Automatic choice", D),
    _s("--opt-sdp-no-mem-attention", "prefer SDP without the memory-efficient kernel (deterministic)", D),
    _s("--disable-opt-split-attention", "prefer no attention optimisation for the Automatic choice", D),
    _s("--opt-channelslast", "use the channels_last memory format for the model", D),
    _s("--disable-opt-cpu-fast-path", "on the CPU, run the plain PyTorch path instead of oneDNN linears with "
       "prepacked weights and channels_last networks", D),
    _s("--disable-opt-cpu-prepack", "on the CPU, keep no oneDNN-reordered copy of the UNet's weights: 1.6 GiB less "
       "RAM with SD1.5 in bf16, about 10 % slower steps", D),
    _s("--disable-nan-check", "do not check latents/images for NaNs", D),
    _s("--disable-model-loading-ram-optimization", "turn off the low-RAM model loading path", D),
    _s("--no-hashing", "never compute sha256 hashes of checkpoints", D),
    _s("--disable-safe-unpickle", "skip the restricted unpickler for .ckpt/.pt files (unsafe)", D),
    # --- paths -------------------------------------------------------------------------------------------------------
    _v("--data-dir", "path", "base directory of all user data (config, outputs, extensions, models...)", P,
       default=Rel("script")),
    _v("--models-dir", "path", "base directory of models; overrides <data-dir>/models", P),
    _v("--ckpt", "path", "checkpoint to add to the list and load at start", P, default=Rel("script", "model.ckpt")),
    _v("--ckpt-dir", "path", "extra directory with Stable Diffusion checkpoints (models/Stable-diffusion is kept)", P),
    _v("--config", "path", "fallback model config", P, default=Rel("script", "configs", "v1-inference.yaml")),
    _v("--vae-dir", "path", "extra directory with VAE files (models/VAE is kept)", P),
    _v("--vae-path", "path", "force this VAE file; disables the VAE settings", P),
    _v("--embeddings-dir", "path", "textual inversion embeddings directory", P, default=Rel("data", "embeddings")),
    _v("--textual-inversion-templates-dir", "path", "directory with textual inversion prompt templates", P,
       default=Rel("script", "textual_inversion_templates")),
    _v("--hypernetwork-dir", "path", "hypernetwork directory", P, default=Rel("models", "hypernetworks")),
    _v("--lora-dir", "path", "Lora networks directory", P, default=Rel("models", "Lora")),
    _v("--lyco-dir-backcompat", "path", "LyCORIS directory kept for backwards compatibility", P,
       default=Rel("models", "LyCORIS")),
    _v("--localizations-dir", "path", "localizations directory", P, default=Rel("script", "localizations")),
    _v("--ui-settings-file", "str", "settings file", P, default=Rel("data", "config.json")),
    _v("--ui-config-file", "str", "UI defaults file", P, default=Rel("data", "ui-config.json")),
    _v("--styles-file", "append", "styles file, path or wildcard (repeatable); default <data-dir>/styles.csv", P,
       default=()),
    _v("--codeformer-models-path", "path", "CodeFormer models directory", P, default=Rel("models", "Codeformer")),
    _v("--gfpgan-models-path", "path", "GFPGAN models directory", P, default=Rel("models", "GFPGAN")),
    _v("--esrgan-models-path", "path", "ESRGAN models directory", P, default=Rel("models", "ESRGAN")),
    _v("--bsrgan-models-path", "path", "BSRGAN models directory", P, default=Rel("models", "BSRGAN")),
    _v("--realesrgan-models-path", "path", "RealESRGAN models directory", P, default=Rel("models", "RealESRGAN")),
    _v("--dat-models-path", "path", "DAT models directory", P, default=Rel("models", "DAT")),
    _v("--scunet-models-path", "path", "ScuNET models directory", P, default=Rel("models", "ScuNET")),
    _v("--swinir-models-path", "path", "SwinIR models directory", P, default=Rel("models", "SwinIR")),
    _v("--ldsr-models-path", "path", "LDSR models directory", P, default=Rel("models", "LDSR")),
    _v("--clip-models-path", "path", "CLIP models directory for interrogate", P),
    _v("--gfpgan-dir", "path", "legacy GFPGAN source directory", P, default=Rel("script", "GFPGAN")),
    _v("--gfpgan-model", "path", "legacy GFPGAN model file name", P),
    _s("--unix-filenames-sanitization", "allow every character except '/' in saved filenames", P),
    _v("--filenames-max-length", "int", "maximum length of each part of a saved filename", P, default=128),
    _s("--no-prompt-history", "do not write <data-dir>/params.txt (last generation's parameters)", P),
    _s("--no-download-sd-model", "do not download SD1.5 when no checkpoint is found", P),
    _s("--do-not-download-clip", "do not download CLIP when the checkpoint lacks it", P),
    # --- launcher-only ------------------------------------------------------------------------------------------------
    _s("-f", "allow running as root (checked by webui.sh)", L),
    _s("--skip-prepare-environment", "skip all environment preparation", L),
    _s("--skip-install", "install nothing with pip; do not run extensions' install.py", L),
    _s("--skip-python-version-check", "do not check the Python version", L),
    _s("--skip-torch-cuda-test", "do not check that CUDA works", L),
    _s("--skip-version-check", "do not check the torch and xformers versions", L),
    _s("--reinstall-torch", "reinstall torch even if a version is installed", L),
    _s("--reinstall-xformers", "reinstall xformers even if a version is installed", L),
    _s("--update-check", "compare the installed version with the latest at start", L),
    _s("--update-all-extensions", "git pull every extension at start", L),
    _s("--test-server", "configure the server for testing", L),
    _s("--dump-sysinfo", "write sysinfo-<UTC>.json (no extensions/options) and exit", L),
    _s("--exit", "exit after preparing the environment", L),
    # --- legacy: accepted, documented by A1111 as "does not do anything" ----------------------------------------------
    _s("--always-batch-cond-uncond", "does nothing since 1.6; see setting batch_cond_uncond", X, legacy=True),
    _s("--gradio-queue", "does nothing (the queue is on unless --no-gradio-queue)", X, default=True, legacy=True),
    _v("--ngrok-region", "str", "does nothing", X, default="", legacy=True),
    _s("--enable-console-prompts", "does nothing; default of setting enable_console_prompts", X, legacy=True),
    _v("--max-batch-count", "int", "does nothing", X, default=16, legacy=True),
    _s("--unload-gfpgan", "does nothing", X, legacy=True),
    _s("--deepdanbooru", "does nothing", X, legacy=True),
    _s("--show-negative-prompt", "does nothing", X, legacy=True),
    _v("--gradio-img2img-tool", "str", "does nothing", X, legacy=True),
    _v("--gradio-inpaint-tool", "str", "does nothing", X, legacy=True),
    _s("--add-stop-route", "does nothing (see --api-server-stop)", X, legacy=True),
)
