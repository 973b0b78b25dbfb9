"""List endpoints: samplers, schedulers, upscalers, models, VAEs, networks, styles, scripts, extensions.

Shapes are A1111 1.10's (reference §12): `samplers` `[{name, aliases, options}]`; `schedulers`
`[{name, label, aliases, default_rho, need_inner_model}]`; `upscalers` `[{name, model_name, model_path, model_url,
scale}]` starting with the built-in None, Lanczos and Nearest (A1111 sorts those first); `latent-upscale-modes`
`[{name}]`; `sd-models` `[{title, model_name, hash, sha256, filename, config}]`; `sd-vae` `[{model_name, filename}]`;
`face-restorers` `[{name, cmd_dir}]`; `realesrgan-models` `[{name, path, scale}]`;
`prompt-styles` `[{name, prompt, negative_prompt}]`; `scripts` `{txt2img, img2img}`; `script-info` `[…]`; `extensions`
`[{name, remote, branch, commit_hash, commit_date, version, enabled}]`. Upscalers, face restorers and Real-ESRGAN
models come from the modules.postprocessing registries (model files found in models/ESRGAN, RealESRGAN, …).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from modules.api.app import ApiServices
from modules.models.networks.lora import LoraRegistry
from modules.models.vae_files import VaeRegistry
from modules.postprocessing.face_restorers import FaceRestorerRegistry
from modules.postprocessing.upscalers import UpscalerRegistry

BUILTIN_UPSCALERS = ("None", "Lanczos", "Nearest")
UPSCALER_DEFAULT_SCALE = 4
"""A1111's `UpscalerData.scale` default, reported for the built-in upscalers too."""


def vae_registry(services: ApiServices) -> VaeRegistry:
    """The app's VAE file registry (the one the model manager resolves VAEs with)."""
    return services.ctx.vaes


def lora_registry(services: ApiServices) -> LoraRegistry:
    """The LoRA registry of the app's extra-network library."""
    return services.ctx.networks.loras


def upscaler_registry(services: ApiServices) -> UpscalerRegistry:
    """The app's upscaler registry."""
    return services.ctx.upscalers


def face_restorer_registry(services: ApiServices) -> FaceRestorerRegistry:
    """The app's face-restorer registry."""
    return services.ctx.face_restorers


def embedding_db(services: ApiServices) -> Any:
    """The textual-inversion database, adjusted to the loaded model (modules/api/routes_networks.py)."""
    from modules.api.routes_networks import synced_embeddings

    return synced_embeddings(services)


def checkpoint_entry(info: Any) -> dict[str, Any]:
    """One `sd-models` item."""
    return {"title": info.title, "model_name": info.model_name, "hash": info.shorthash, "sha256": info.sha256,
            "filename": str(info.filename), "config": str(info.config_path) if info.config_path else None}


def _git_info(folder: Path) -> dict[str, Any]:
    """remote, branch and commit of an extension's git checkout, read from `.git` without running git."""
    git = folder / ".git"
    out: dict[str, Any] = {"remote": None, "branch": None, "commit_hash": None, "commit_date": None}
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if head.startswith("ref:"):
            ref = head.split(":", 1)[1].strip()
            out["branch"] = ref.rsplit("/", 1)[-1]
            ref_file = git / ref
            out["commit_hash"] = ref_file.read_text(encoding="utf-8").strip() if ref_file.is_file() else None
        else:
            out["commit_hash"] = head
        for line in (git / "config").read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("url ="):
                out["remote"] = line.split("=", 1)[1].strip()
                break
    except OSError:
        pass
    return out


def list_extensions(services: ApiServices) -> list[dict[str, Any]]:
    """Folders in `extensions/` and `extensions-builtin/` with their git state and enabled flag."""
    paths = services.ctx.paths
    disabled = set(services.setting("disabled_extensions", []) or [])
    disable_all = services.setting("disable_all_extensions", "none")
    out: list[dict[str, Any]] = []
    for root, builtin in ((paths.extensions_builtin_dir, True), (paths.extensions_dir, False)):
        if not Path(root).is_dir():
            continue
        for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
            git = _git_info(folder)
            enabled = folder.name not in disabled and disable_all != "all" and (builtin or disable_all != "extra")
            out.append({"name": folder.name, **git, "version": (git["commit_hash"] or "")[:8],
                        "enabled": enabled})
    return out


def add_routes(router: APIRouter, services: ApiServices) -> None:
    """Every list endpoint."""
    ctx = services.ctx

    def samplers() -> list[dict[str, Any]]:
        from modules.sampling.registry import list_samplers

        return [spec.api_entry() for spec in list_samplers()]

    def schedulers() -> list[dict[str, Any]]:
        from modules.sampling.schedules import list_schedulers

        return [{"name": s.name, "label": s.label, "aliases": list(s.aliases) or None,
                 "default_rho": s.default_rho, "need_inner_model": s.need_inner_model} for s in list_schedulers()]

    def upscalers() -> list[dict[str, Any]]:
        # postprocessing registry: built-ins first, then model files (modules/postprocessing/upscalers.py)
        registry = upscaler_registry(services)
        registry.refresh()
        return [registry[name].api_entry() for name in registry]

    def latent_upscale_modes() -> list[dict[str, Any]]:
        from modules.processing.hires import LATENT_UPSCALE_MODES

        return [{"name": name} for name in LATENT_UPSCALE_MODES]

    def sd_models() -> list[dict[str, Any]]:
        if ctx.models is None:
            return []
        return [checkpoint_entry(info) for info in ctx.models.registry]

    def sd_vae() -> list[dict[str, Any]]:
        return [{"model_name": name, "filename": str(path)} for name, path in vae_registry(services).files.items()]

    def face_restorers() -> list[dict[str, Any]]:
        return face_restorer_registry(services).api_entries()

    def realesrgan_models() -> list[dict[str, Any]]:
        return [{"name": e.name, "path": str(e.path), "scale": e.scale}
                for e in upscaler_registry(services).model_entries("RealESRGAN")]

    def prompt_styles() -> list[dict[str, Any]]:
        styles = ctx.styles
        if styles is None:
            return []
        return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                for s in styles.styles.values() if s.prompt is not None]

    def scripts() -> dict[str, list[str]]:
        from modules.api.routes_generation import scripts_list

        return scripts_list(services)

    def script_info() -> list[dict[str, Any]]:
        from modules.api.routes_generation import script_info_list

        return script_info_list(services)

    def extensions() -> list[dict[str, Any]]:
        return list_extensions(services)

    for path, fn in (("/samplers", samplers), ("/schedulers", schedulers), ("/upscalers", upscalers),
                     ("/latent-upscale-modes", latent_upscale_modes), ("/sd-models", sd_models),
                     ("/sd-vae", sd_vae), ("/face-restorers", face_restorers),
                     ("/realesrgan-models", realesrgan_models), ("/prompt-styles", prompt_styles),
                     ("/scripts", scripts),
                     ("/script-info", script_info), ("/extensions", extensions)):
        router.add_api_route(path, fn, methods=["GET"], summary=path.strip("/"))
