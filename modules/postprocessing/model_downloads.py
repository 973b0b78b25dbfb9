"""A1111's named model upscalers, listed before their file exists and downloaded on first use.

A1111 facts (1.10: `modules/esrgan_model.py`, `realesrgan_model.py`, `dat_model.py`,
`extensions-builtin/SwinIR/scripts/swinir_model.py`, `extensions-builtin/ScuNET/scripts/scunet_model.py`; names,
URLs, file names and checksums are data, the code here is ours):

- ESRGAN: "ESRGAN_4x" ← KAIR's `ESRGAN.pth`, saved as `models/ESRGAN/ESRGAN_4x.pth`.
- RealESRGAN: six named models (xinntao's releases, saved under their own file names in `models/RealESRGAN`);
  only those named in the `realesrgan_enabled_models` setting are listed (default "R-ESRGAN 4x+" and
  "R-ESRGAN 4x+ Anime6B"). A local file with the same name is used instead of a download.
- SwinIR: "SwinIR 4x" ← JingyunLiang's `003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth`, saved as
  `models/SwinIR/SwinIR_4x.pth` (A1111 replaces the space of the name by "_").
- ScuNET: "ScuNET GAN" (saved as `ScuNET.pth`, A1111's file name) and "ScuNET PSNR" (a 1× denoiser each). A1111
  downloads the GAN weights for both entries (its own TODO says so); here each entry gets its own file.
- DAT: "DAT x2/x3/x4" from `<HF_ENDPOINT>/w-e-w/DAT/…` with A1111's sha256, filtered by `dat_enabled_models`.
- LDSR is not offered (a latent-diffusion upscaler with its own model code; see docs/postprocessing.md).

Where the files come from: `HF_ENDPOINT` replaces `https://huggingface.co` (as A1111's `shared.hf_endpoint`);
`GITHUB_ENDPOINT` replaces `https://github.com` (this web UI's addition, for a GitHub mirror); `HF_HUB_OFFLINE=1`
means "never download". Downloads go through `modules.runtime.download.download_file` (a resumable `.part` file,
sha256 check where A1111 has one).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modules.runtime.download import DownloadError, download_file

GITHUB = "https://github.com"
HUGGINGFACE = "https://huggingface.co"


@dataclass(frozen=True)
class NamedModel:
    """One of A1111's named upscalers: list name, folder kind, source URL, file name on disk, nominal scale."""

    name: str
    folder: str
    url: str
    file_name: str
    scale: int = 4
    sha256: str | None = None
    setting: str | None = None
    """The multi-select setting that must contain `name` for the entry to be listed (None = always listed)."""

    def source(self, env: Mapping[str, str] | None = None) -> str:
        """The URL after the `GITHUB_ENDPOINT` / `HF_ENDPOINT` mirror rewrites."""
        env = os.environ if env is None else env
        for base, key in ((GITHUB, "GITHUB_ENDPOINT"), (HUGGINGFACE, "HF_ENDPOINT")):
            mirror = (env.get(key) or "").strip().rstrip("/")
            if mirror and self.url.startswith(base + "/"):
                return mirror + self.url[len(base):]
        return self.url


_REAL = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_DAT = "https://huggingface.co/w-e-w/DAT/resolve/main/experiments/pretrained_models/DAT"
_KAIR = "https://github.com/cszn/KAIR/releases/download/v1.0"
_RE = "realesrgan_enabled_models"

NAMED_MODELS: tuple[NamedModel, ...] = (
    NamedModel("ESRGAN_4x", "ESRGAN", f"{_KAIR}/ESRGAN.pth", "ESRGAN_4x.pth"),
    NamedModel("R-ESRGAN General 4xV3", "RealESRGAN", f"{_REAL}/v0.2.5.0/realesr-general-x4v3.pth",
               "realesr-general-x4v3.pth", setting=_RE),
    NamedModel("R-ESRGAN General WDN 4xV3", "RealESRGAN", f"{_REAL}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
               "realesr-general-wdn-x4v3.pth", setting=_RE),
    NamedModel("R-ESRGAN AnimeVideo", "RealESRGAN", f"{_REAL}/v0.2.5.0/realesr-animevideov3.pth",
               "realesr-animevideov3.pth", setting=_RE),
    NamedModel("R-ESRGAN 4x+", "RealESRGAN", f"{_REAL}/v0.1.0/RealESRGAN_x4plus.pth", "RealESRGAN_x4plus.pth",
               setting=_RE),
    NamedModel("R-ESRGAN 4x+ Anime6B", "RealESRGAN", f"{_REAL}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
               "RealESRGAN_x4plus_anime_6B.pth", setting=_RE),
    NamedModel("R-ESRGAN 2x+", "RealESRGAN", f"{_REAL}/v0.2.1/RealESRGAN_x2plus.pth", "RealESRGAN_x2plus.pth",
               scale=2, setting=_RE),
    NamedModel("SwinIR 4x", "SwinIR", "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
               "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth", "SwinIR_4x.pth"),
    NamedModel("ScuNET GAN", "ScuNET", f"{_KAIR}/scunet_color_real_gan.pth", "ScuNET.pth"),
    NamedModel("ScuNET PSNR", "ScuNET", f"{_KAIR}/scunet_color_real_psnr.pth", "scunet_color_real_psnr.pth"),
    NamedModel("DAT x2", "DAT", f"{_DAT}/DAT_x2.pth", "DAT_x2.pth", scale=2, setting="dat_enabled_models",
               sha256="7760aa96e4ee77e29d4f89c3a4486200042e019461fdb8aa286f49aa00b89b51"),
    NamedModel("DAT x3", "DAT", f"{_DAT}/DAT_x3.pth", "DAT_x3.pth", scale=3, setting="dat_enabled_models",
               sha256="581973e02c06f90d4eb90acf743ec9604f56f3c2c6f9e1e2c2b38ded1f80d197"),
    NamedModel("DAT x4", "DAT", f"{_DAT}/DAT_x4.pth", "DAT_x4.pth", scale=4, setting="dat_enabled_models",
               sha256="391a6ce69899dff5ea3214557e9d585608254579217169faf3d4c353caff049e"),
)
"""A1111's named upscalers in its listing order (the registry sorts them by name with the files)."""


class ModelDownloadError(RuntimeError):
    """A named model whose file is missing and could not be downloaded; the message says what to do."""


def enabled(model: NamedModel, settings: object) -> bool:
    """True when `model` is listed: it has no filter setting, or the setting (a list of names) contains it."""
    if model.setting is None:
        return True
    getter = getattr(settings, "get", None)
    if getter is None:
        return model.name in default_enabled(model.setting)
    value = getter(model.setting)  # Settings.get(key) or a plain mapping
    chosen = default_enabled(model.setting) if value is None else value
    return model.name in list(chosen)


def default_enabled(setting: str) -> tuple[str, ...]:
    """A1111's defaults of the two filter settings."""
    if setting == "dat_enabled_models":
        return ("DAT x2", "DAT x3", "DAT x4")
    return ("R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B")


def fetch_model(model: NamedModel, dest: Path, env: Mapping[str, str] | None = None) -> Path:
    """Download `model` to `dest` (resumable, checksummed when A1111 has a sha256); `ModelDownloadError` saying
    where to put the file by hand when that fails (offline, HTTP error, checksum mismatch)."""
    url = model.source(env)
    try:
        return download_file(url, dest, sha256=model.sha256, env=env, progress=sys.stderr)
    except DownloadError as exc:
        raise ModelDownloadError(f"{model.name}: the model file is not there and could not be downloaded ({exc}). "
                                 f"Download {url} by hand and save it as {dest}.") from None
