"""Every directory and file location, resolved once from the flags into a frozen `Paths`.

A1111 layout (`modules/paths_internal.py`, `cmd_args.py`, `shared.py` of 1.10):
- install root (`script_path`): `configs/`, `localizations/`, `textual_inversion_templates/`, `extensions-builtin/`,
  `config_states/`, `tmp/` (restart marker `tmp/restart`), `model.ckpt`, `notification.mp3`;
- data dir (`--data-dir`, default the install root): `config.json`, `ui-config.json`, `styles.csv`, `params.txt`,
  `cache.json` (env `SD_WEBUI_CACHE_FILE`), `cache/` (env `SD_WEBUI_CACHE_DIR`), `user.css`, `extensions/`,
  `embeddings/`, `outputs/`, `log/images/`;
- models dir (`--models-dir`, default `<data>/models`): `Stable-diffusion/` (always scanned, plus `--ckpt-dir`),
  `VAE/` (plus `--vae-dir`), `VAE-approx/`, `Lora/`, `LyCORIS/`, `hypernetworks/`, `ESRGAN/`, `RealESRGAN/`,
  `GFPGAN/`, `Codeformer/`, `BSRGAN/`, `ScuNET/`, `SwinIR/`, `LDSR/`, `DAT/`, `deepbooru/`, `BLIP/`,
  `torch_deepdanbooru/`.
Output directory settings default to `<data>/outputs/...` written relative to the install root when inside it
(A1111's `util.truncate_path`); relative values are resolved against the install root (A1111 resolves them against
the working directory, which its launcher sets to the install root).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from modules.cli.flags import INSTALL_ROOT

OUTPUT_SUBDIRS: dict[str, tuple[str, ...]] = {
    "outdir_txt2img_samples": ("outputs", "txt2img-images"),
    "outdir_img2img_samples": ("outputs", "img2img-images"),
    "outdir_extras_samples": ("outputs", "extras-images"),
    "outdir_txt2img_grids": ("outputs", "txt2img-grids"),
    "outdir_img2img_grids": ("outputs", "img2img-grids"),
    "outdir_init_images": ("outputs", "init-images"),
    "outdir_save": ("log", "images"),
}
"""Output-directory settings whose A1111 default lives under the data dir."""


@dataclass(frozen=True)
class Paths:
    """All locations the program reads or writes; every field is absolute."""

    script_dir: Path
    data_dir: Path
    models_dir: Path
    checkpoint_dir: Path
    checkpoint_dirs: tuple[Path, ...]
    checkpoint_file: Path
    model_config_file: Path
    configs_dir: Path
    vae_dir: Path
    vae_dirs: tuple[Path, ...]
    vae_path: Path | None
    vae_approx_dir: Path
    lora_dir: Path
    lyco_dir: Path
    embeddings_dir: Path
    hypernetwork_dir: Path
    textual_inversion_templates_dir: Path
    upscaler_dirs: Mapping[str, Path]
    clip_models_dir: Path | None
    localizations_dir: Path
    settings_file: Path
    ui_config_file: Path
    styles_files: tuple[str, ...]
    outputs_dir: Path
    log_dir: Path
    params_file: Path | None
    cache_file: Path
    cache_dir: Path
    extensions_dir: Path
    extensions_builtin_dir: Path
    config_states_dir: Path
    tmp_dir: Path
    restart_file: Path
    user_css_file: Path
    notification_file: Path
    gradio_allowed_paths: tuple[Path, ...]

    def model_subdir(self, name: str) -> Path:
        """`models/<name>` (e.g. `deepbooru`, `BLIP`, `torch_deepdanbooru`)."""
        return self.models_dir / name

    def resolve_user_path(self, value: str | os.PathLike[str]) -> Path:
        """A path typed into a setting: absolute as given, relative ones against the install root."""
        path = Path(os.path.expanduser(os.fspath(value)))
        return path if path.is_absolute() else self.script_dir / path

    def setting_default_overrides(self, flags: Any | None = None) -> dict[str, Any]:
        """Settings whose A1111 default depends on paths or flags, for `Settings(default_overrides=...)`.

        Output dirs: `<data>/outputs/...` and `<data>/log/images`, relative to the install root when inside it.
        `enable_console_prompts` defaults to the legacy `--enable-console-prompts` flag.
        """
        out: dict[str, Any] = {key: _truncate(self.data_dir.joinpath(*parts), self.script_dir)
                               for key, parts in OUTPUT_SUBDIRS.items()}
        if flags is not None:
            out["enable_console_prompts"] = bool(flags.enable_console_prompts)
        return out


def _truncate(target: Path, base: Path) -> str:
    """`target` relative to `base` when inside it, else absolute, with `/` separators (A1111 `truncate_path`)."""
    try:
        return target.relative_to(base).as_posix()
    except ValueError:
        return str(target)


def _abs(value: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(value))))


def resolve_paths(flags: Any, env: Mapping[str, str] | None = None) -> Paths:
    """Resolve every location from parsed flags (and `SD_WEBUI_CACHE_FILE` / `SD_WEBUI_CACHE_DIR` in `env`)."""
    env = {} if env is None else env
    script = INSTALL_ROOT
    data = _abs(flags.data_dir)
    models = _abs(flags.models_dir) if flags.models_dir else data / "models"
    checkpoint_dir = models / "Stable-diffusion"
    ckpt_dirs = [checkpoint_dir]
    if flags.ckpt_dir and _abs(flags.ckpt_dir) != checkpoint_dir:
        ckpt_dirs.append(_abs(flags.ckpt_dir))
    vae_dir = models / "VAE"
    vae_dirs = [vae_dir]
    if flags.vae_dir and _abs(flags.vae_dir) != vae_dir:
        vae_dirs.append(_abs(flags.vae_dir))
    upscalers = {
        "Codeformer": flags.codeformer_models_path, "GFPGAN": flags.gfpgan_models_path,
        "ESRGAN": flags.esrgan_models_path, "BSRGAN": flags.bsrgan_models_path,
        "RealESRGAN": flags.realesrgan_models_path, "DAT": flags.dat_models_path,
        "ScuNET": flags.scunet_models_path, "SwinIR": flags.swinir_models_path, "LDSR": flags.ldsr_models_path,
    }
    return Paths(
        script_dir=script,
        data_dir=data,
        models_dir=models,
        checkpoint_dir=checkpoint_dir,
        checkpoint_dirs=tuple(ckpt_dirs),
        checkpoint_file=_abs(flags.ckpt),
        model_config_file=_abs(flags.config),
        configs_dir=script / "configs",
        vae_dir=vae_dir,
        vae_dirs=tuple(vae_dirs),
        vae_path=_abs(flags.vae_path) if flags.vae_path else None,
        vae_approx_dir=models / "VAE-approx",
        lora_dir=_abs(flags.lora_dir),
        lyco_dir=_abs(flags.lyco_dir_backcompat),
        embeddings_dir=_abs(flags.embeddings_dir),
        hypernetwork_dir=_abs(flags.hypernetwork_dir),
        textual_inversion_templates_dir=_abs(flags.textual_inversion_templates_dir),
        upscaler_dirs=MappingProxyType({name: _abs(value) for name, value in upscalers.items()}),
        clip_models_dir=_abs(flags.clip_models_path) if flags.clip_models_path else None,
        localizations_dir=_abs(flags.localizations_dir),
        settings_file=_abs(flags.ui_settings_file),
        ui_config_file=_abs(flags.ui_config_file),
        styles_files=tuple(str(_abs(p)) for p in flags.styles_file),
        outputs_dir=data / "outputs",
        log_dir=data / "log",
        params_file=None if flags.no_prompt_history else data / "params.txt",
        cache_file=_abs(env["SD_WEBUI_CACHE_FILE"]) if env.get("SD_WEBUI_CACHE_FILE") else data / "cache.json",
        cache_dir=_abs(env["SD_WEBUI_CACHE_DIR"]) if env.get("SD_WEBUI_CACHE_DIR") else data / "cache",
        extensions_dir=data / "extensions",
        extensions_builtin_dir=script / "extensions-builtin",
        config_states_dir=script / "config_states",
        tmp_dir=script / "tmp",
        restart_file=script / "tmp" / "restart",
        user_css_file=data / "user.css",
        notification_file=script / "notification.mp3",
        gradio_allowed_paths=tuple(dict.fromkeys(_abs(p) for p in flags.gradio_allowed_path)),
    )
