"""Where the interrogation models live and how they are fetched on first use.

A1111 facts: the CLIP interrogator's BLIP captioner is downloaded into `models/BLIP` and its CLIP ranker (OpenAI
ViT-L/14) into `--clip-models-path` on first use; DeepBooru's `model-resnet_custom_v3.pt` comes from
github.com/AUTOMATIC1111/TorchDeepDanbooru/releases (v1) into the models folder (`modelloader.load_models`).

Here (docs/interrogate.md):
- BLIP is the transformers `BlipForConditionalGeneration` in the layout of Hugging Face's
  `Salesforce/blip-image-captioning-large` (the capfilt-large BLIP that A1111's `model_base_caption_capfilt_large.pth`
  also is), stored in `models/BLIP/blip-image-captioning-large/`;
- CLIP is the transformers `CLIPModel` of `openai/clip-vit-large-patch14` (the same ViT-L/14 weights as A1111's
  `clip.load("ViT-L/14")`), stored in `<--clip-models-path or models/CLIP>/clip-vit-large-patch14/`;
- DeepBooru is `models/torch_deepdanbooru/model-resnet_custom_v3.pt`.
Files are fetched with the project's resumable downloader (`modules.runtime.download`, which honours HF_ENDPOINT,
HF_HUB_OFFLINE and the proxy variables). `--do-not-download-clip`, or no network, gives a
:class:`ModelFilesMissing` message naming every file and the folder it belongs in.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from modules.runtime.download import DownloadError, ModelFile, download_file, hf_url

__all__ = ["BLIP_FILES", "CLIP_FILES", "DEEPBOORU_FILE", "DEEPBOORU_URL", "ModelFilesMissing", "WeightsSource",
           "ensure_files"]

BLIP_REPO = "Salesforce/blip-image-captioning-large"
CLIP_REPO = "openai/clip-vit-large-patch14"
BLIP_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
"""The BLIP captioner's files: architecture, weights and its BERT word-piece tokenizer."""
CLIP_FILES = ("config.json", "model.safetensors")
"""The CLIP ranker's files; its BPE tokenizer is the one shipped with open_clip_torch (modules.prompts.tokenizer)."""
DEEPBOORU_FILE = "model-resnet_custom_v3.pt"
DEEPBOORU_URL = "https://github.com/AUTOMATIC1111/TorchDeepDanbooru/releases/download/v1/model-resnet_custom_v3.pt"


class ModelFilesMissing(RuntimeError):
    """An interrogation model is not on disk and could not (or may not) be downloaded; says what to put where."""


@dataclass(frozen=True)
class WeightsSource:
    """How missing model files are fetched: the environment (HF_ENDPOINT, proxies) and whether downloading is
    allowed at all (`--do-not-download-clip` forbids it)."""

    env: Mapping[str, str]
    allow_download: bool = True
    progress: TextIO | None = sys.stderr


def _missing(folder: Path, names: Sequence[str]) -> list[str]:
    return [name for name in names if not (folder / name).is_file()]


def ensure_files(folder: Path, names: Sequence[str], source: WeightsSource, *, what: str, repo: str | None = None,
                 url: str | None = None) -> Path:
    """Make sure every file of `names` is in `folder`, downloading the missing ones; returns `folder`.

    Files come from the Hugging Face repository `repo` (through HF_ENDPOINT) or, for a single file, from `url`.
    Raises :class:`ModelFilesMissing` with the file names, the folder and the source when they cannot be had.
    """
    missing = _missing(folder, names)
    if not missing:
        return folder
    where = ", ".join(missing)
    origin = f"https://huggingface.co/{repo}" if repo else (url or "")
    hint = f"Put {where} (from {origin}) into {folder}"
    if not source.allow_download:
        raise ModelFilesMissing(f"{what}: {where} not found in {folder} and --do-not-download-clip is set. {hint}.")
    try:
        for name in missing:
            link = hf_url(ModelFile(repo, name, sha256=""), source.env) if repo else url
            assert link is not None
            download_file(link, folder / name, env=source.env, progress=source.progress)
    except DownloadError as exc:
        raise ModelFilesMissing(f"{what}: could not download {where}: {exc}. {hint}; behind a proxy set "
                                "https_proxy, in mainland China set HF_ENDPOINT=https://hf-mirror.com.") from None
    return folder


def deepbooru_candidates(folder: Path) -> list[Path]:
    """`.pt` files in the DeepBooru folder, A1111's file name first."""
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".pt")
    return sorted(files, key=lambda p: p.name != DEEPBOORU_FILE)


def env_or_os(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """The given environment, or the process environment."""
    return os.environ if env is None else env
