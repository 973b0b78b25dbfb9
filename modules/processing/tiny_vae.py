"""The small extra networks of live previews and fast VAE encode/decode: "Approx NN" and TAESD (A1111
`modules/sd_vae_approx.py`, `modules/sd_vae_taesd.py`).

Files and where they come from (A1111 facts; the code is ours):

* Approx NN: `models/VAE-approx/model.pt` (SD1/SD2) and `models/VAE-approx/vaeapprox-sdxl.pt` (SDXL), downloaded on
  first use from A1111's release `https://github.com/AUTOMATIC1111/stable-diffusion-webui/releases/download/
  v1.0.0-pre/<file>`.
* TAESD: `models/VAE-taesd/taesd_decoder.pth`, `taesd_encoder.pth` (SD1/SD2) and `taesdxl_decoder.pth`,
  `taesdxl_encoder.pth` (SDXL), downloaded on first use from `https://github.com/madebyollin/taesd/raw/main/<file>`.

Downloads go through the project's resumable downloader (`modules.runtime.download.download_file`: `.part` file,
proxies, `HF_HUB_OFFLINE=1` means never) and honour the `GITHUB_ENDPOINT` mirror of the named upscalers
(`modules.postprocessing.model_downloads.NamedModel.source`). Files are read with the safe unpickler unless
`--disable-safe-unpickle`. When a file is missing and cannot be fetched, ONE log line says which file to put where;
callers then fall back ("Approx cheap" for previews, the full VAE for jobs) — a preview never fails a job.
Loaded networks stay in memory for the life of the app (they are a few MB), in float32 on the latents' device.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import Tensor, nn

from modules.models.nn.taesd import taesd_decoder, taesd_encoder
from modules.models.nn.vae_approx import VAEApprox
from modules.models.safe_unpickle import load_torch_file
from modules.postprocessing.model_downloads import NamedModel
from modules.processing.image_ops import tensor_to_pil
from modules.processing.vae_io import latent_factor
from modules.runtime.download import DownloadError, download_file

log = logging.getLogger(__name__)

APPROX_URL = "https://github.com/AUTOMATIC1111/stable-diffusion-webui/releases/download/v1.0.0-pre/"
TAESD_URL = "https://github.com/madebyollin/taesd/raw/main/"

Kind = Literal["approx", "taesd_decoder", "taesd_encoder"]


def file_name(kind: Kind, sdxl: bool) -> str:
    """The file A1111 reads for `kind` and the model family (see module docstring)."""
    if kind == "approx":
        return "vaeapprox-sdxl.pt" if sdxl else "model.pt"
    part = "decoder" if kind == "taesd_decoder" else "encoder"
    return f"taesdxl_{part}.pth" if sdxl else f"taesd_{part}.pth"


class TinyVaes:
    """Loads (downloading on first use) and keeps the Approx NN and TAESD networks; `None` when unavailable."""

    def __init__(self, approx_dir: Path, taesd_dir: Path, env: Mapping[str, str], *, safe_unpickle: bool,
                 allow_download: bool = True) -> None:
        self.approx_dir = Path(approx_dir)
        self.taesd_dir = Path(taesd_dir)
        self._env = dict(env)
        self._safe = safe_unpickle
        self._allow_download = allow_download
        self._loaded: dict[str, nn.Module] = {}
        self._reported: set[str] = set()
        self._download_failed: set[str] = set()
        self._lock = threading.Lock()

    def path(self, kind: Kind, sdxl: bool) -> Path:
        """Where the file of `kind` lives (`models/VAE-approx` or `models/VAE-taesd`)."""
        folder = self.approx_dir if kind == "approx" else self.taesd_dir
        return folder / file_name(kind, sdxl)

    def url(self, kind: Kind, sdxl: bool) -> str:
        """The download URL after the `GITHUB_ENDPOINT` mirror rewrite."""
        name = file_name(kind, sdxl)
        base = APPROX_URL if kind == "approx" else TAESD_URL
        return NamedModel(name, "", base + name, name).source(self._env)

    def approx_nn(self, sdxl: bool) -> nn.Module | None:
        """A1111's VAEApprox for the family, or None (logged once) when its file is not available."""
        return self.get("approx", sdxl)

    def decoder(self, sdxl: bool) -> nn.Module | None:
        """The TAESD decoder for the family, or None (logged once)."""
        return self.get("taesd_decoder", sdxl)

    def encoder(self, sdxl: bool) -> nn.Module | None:
        """The TAESD encoder for the family, or None (logged once)."""
        return self.get("taesd_encoder", sdxl)

    def get(self, kind: Kind, sdxl: bool) -> nn.Module | None:
        """The loaded network of `kind`; missing files are downloaded once per app run, a file put in place by
        hand later is picked up at the next call."""
        path = self.path(kind, sdxl)
        key = str(path)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            if not path.is_file():
                if key in self._download_failed or not self._allow_download:
                    self._report(key, f"{path.name} is missing: download {self.url(kind, sdxl)} and save it as "
                                      f"{path}")
                    return None
                try:
                    log.info("Downloading %s to %s", self.url(kind, sdxl), path)
                    download_file(self.url(kind, sdxl), path, env=self._env)
                except DownloadError as exc:
                    self._download_failed.add(key)
                    self._report(key, f"{path.name} could not be downloaded ({exc}); download "
                                      f"{self.url(kind, sdxl)} by hand and save it as {path}")
                    return None
            try:
                net = self._load(kind, path)
            except Exception as exc:  # a corrupt or foreign file: say so once, the caller falls back
                self._report(key, f"{path} could not be loaded ({exc}); replace it with {self.url(kind, sdxl)}")
                return None
            self._loaded[key] = net
            return net

    def _load(self, kind: Kind, path: Path) -> nn.Module:
        data = load_torch_file(path, safe=self._safe)
        if not isinstance(data, Mapping):
            raise ValueError("not a state dict")
        net: nn.Module = VAEApprox() if kind == "approx" else \
            taesd_decoder() if kind == "taesd_decoder" else taesd_encoder()
        net.load_state_dict({k: v.float() for k, v in data.items()}, strict=True)
        return net.eval().requires_grad_(False)

    def _report(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            log.warning("%s; using the fallback meanwhile ('Approx cheap' previews / the full VAE).", message)


def _run(net: nn.Module, x: Tensor) -> Tensor:
    net.to(x.device)
    with torch.no_grad():
        out: Tensor = net(x.float())
    return out


def approx_nn_images(net: nn.Module, latents: Tensor) -> list[Image.Image]:
    """Approx NN previews: the network's output is read as an image in [-1, 1] (A1111 `samples_to_images_tensor`
    approximation 0), one 2h×2w image per latent."""
    return tensor_to_pil(_run(net, latents).cpu())


def taesd_decode(decoder: nn.Module, latents: Tensor) -> Tensor:
    """Scaled latents → images in [-1, 1] (TAESD outputs [0, 1]; A1111 maps `x · 2 − 1`)."""
    return _run(decoder, latents) * 2.0 - 1.0


def taesd_images(decoder: nn.Module, latents: Tensor) -> list[Image.Image]:
    """TAESD-decoded RGB images of a batch of scaled latents."""
    return tensor_to_pil(taesd_decode(decoder, latents).cpu())


def taesd_encode(encoder: nn.Module, pixels: Tensor) -> Tensor:
    """Images in [-1, 1] → scaled latents in float32 (TAESD takes [0, 1] and its output is already scaled, A1111
    `images_tensor_to_samples` with approximation 3; deterministic, no sampling)."""
    return _run(encoder, (pixels.float() + 1.0) / 2.0).float()


def _setting(settings: Any, key: str) -> str:
    getter = getattr(settings, "get", None)
    value = getter(key) if getter is not None else None
    return str(value or "Full")


def job_network(vaes: TinyVaes | None, settings: Any, key: str, model: Any,
                notices: list[str] | None = None) -> nn.Module | None:
    """The TAESD network a job uses instead of `model`'s VAE when the setting `key` (`sd_vae_decode_method` or
    `sd_vae_encode_method`) is "TAESD" (A1111 `approximation_indexes`), else None. When TAESD is chosen but its
    file is not available, or the model's VAE does not make TAESD's 8× latents, the full VAE is used and
    `notices` says so (once per job)."""
    if vaes is None or _setting(settings, key) != "TAESD":
        return None
    sdxl = bool(getattr(model, "is_sdxl", False))
    factor = latent_factor(model)
    if factor != 8:
        message = (f"{key}: TAESD works on the 1/8-size latents of SD VAEs; this model's VAE makes 1/{factor}-size "
                   f"latents, so the full VAE was used")
        if notices is not None and message not in notices:
            notices.append(message)
        return None
    net = vaes.decoder(sdxl) if key == "sd_vae_decode_method" else vaes.encoder(sdxl)
    if net is None and notices is not None:
        kind: Kind = "taesd_decoder" if key == "sd_vae_decode_method" else "taesd_encoder"
        message = (f"{key}: TAESD is not available ({vaes.path(kind, sdxl)} is missing and could not be "
                   f"downloaded); the full VAE was used")
        if message not in notices:
            notices.append(message)
    return net
