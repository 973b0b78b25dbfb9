"""The CLIP interrogator: a BLIP caption followed by the CLIP-ranked best entries of each category list.

A1111 facts (`modules/interrogate.py`, `InterrogateModels`):
- BLIP input: the image resized to 384×384 (bicubic), normalised with CLIP's mean/std; the caption is generated
  deterministically (no sampling) with `interrogate_clip_num_beams` beams (1), `interrogate_clip_min_length` (24)
  and `interrogate_clip_max_length` (48) tokens;
- categories are the `*.txt` files of the `interrogate/` folder; a name like `flavors.top3.txt` asks for the top 3
  (default 1); lines are stripped; categories named in `interrogate_clip_skip_categories` are skipped;
  `interrogate_clip_dict_limit` (1500, 0 = no limit) keeps only the first lines of each list;
- ranking: image and text features (CLIP ViT-L/14) are L2-normalised, scores are `softmax(100 · image·textᵀ)`
  over the list, the top-N are appended to the caption as `, name`, or `, (name:0.123)` (score as a fraction)
  with `interrogate_return_ranks`.
BLIP here is transformers' `BlipForConditionalGeneration` (the Hugging Face layout of the same capfilt-large
model); CLIP is transformers' `CLIPModel`, fed by this project's CLIP tokenizer (truncated to 77 tokens, as
`clip.tokenize(truncate=True)`) and CLIP's image transform (bicubic resize of the short side, centre crop).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules.prompts.tokenizer import ClipTokenizer

__all__ = ["CLIP_MEAN", "CLIP_STD", "Category", "ClipOptions", "blip_caption", "blip_pixels", "clip_pixels",
           "clip_ranks", "load_categories", "tokenize"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
BLIP_IMAGE_SIZE = 384
CONTEXT_LENGTH = 77
_TOPN = re.compile(r"\.top(\d+)\.")


@dataclass(frozen=True)
class Category:
    """One category list: its name (the file stem), how many entries to append, and its lines."""

    name: str
    topn: int
    items: list[str]


@dataclass(frozen=True)
class ClipOptions:
    """The CLIP-interrogator settings (A1111 names and defaults)."""

    num_beams: int = 1
    min_length: int = 24
    max_length: int = 48
    dict_limit: int = 1500
    skip_categories: tuple[str, ...] = ()
    return_ranks: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ClipOptions:
        """Read the `interrogate_clip_*` settings and `interrogate_return_ranks`."""
        return cls(num_beams=max(1, int(settings.get("interrogate_clip_num_beams", 1))),
                   min_length=max(0, int(settings.get("interrogate_clip_min_length", 24))),
                   max_length=max(1, int(settings.get("interrogate_clip_max_length", 48))),
                   dict_limit=max(0, int(settings.get("interrogate_clip_dict_limit", 1500) or 0)),
                   skip_categories=tuple(settings.get("interrogate_clip_skip_categories") or ()),
                   return_ranks=bool(settings.get("interrogate_return_ranks", False)))


def category_names(folder: Path) -> list[str]:
    """The category names (file stems) in `folder`, the choices of `interrogate_clip_skip_categories`."""
    return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []


def load_categories(folder: Path, skip: Sequence[str] = ()) -> list[Category]:
    """The category lists of `folder` in name order, without the skipped ones (empty lines dropped)."""
    out: list[Category] = []
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        if path.stem in skip:
            continue
        match = _TOPN.search(path.name)
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        out.append(Category(path.stem, int(match.group(1)) if match else 1, [line for line in lines if line]))
    return out


def _normalise(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return ((tensor - mean) / std).unsqueeze(0)


def blip_pixels(image: Image.Image, size: int = BLIP_IMAGE_SIZE) -> torch.Tensor:
    """BLIP input: `size`×`size` bicubic resize, CLIP normalisation → `(1, 3, size, size)`."""
    return _normalise(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))


def clip_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """CLIP input: short side to `size` (bicubic), centre crop `size`×`size`, CLIP normalisation."""
    image = image.convert("RGB")
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.BICUBIC)
    left, top = round((w - size) / 2.0), round((h - size) / 2.0)
    return _normalise(image.crop((left, top, left + size, top + size)))


def tokenize(tokenizer: ClipTokenizer, texts: Sequence[str]) -> torch.Tensor:
    """`(N, 77)` ids: start, the text's tokens (cut to fit), end, then zero padding (OpenAI `clip.tokenize`)."""
    start, end = tokenizer.bos_id, tokenizer.eos_id
    rows = torch.zeros(len(texts), CONTEXT_LENGTH, dtype=torch.long)
    for index, text in enumerate(texts):
        ids = [start, *tokenizer.encode(text)[: CONTEXT_LENGTH - 2], end]
        rows[index, : len(ids)] = torch.tensor(ids)
    return rows


def clip_ranks(image_features: torch.Tensor, text_features: torch.Tensor, top_count: int) -> list[tuple[int, float]]:
    """Indices and scores (0–1) of the `top_count` best texts: softmax over `100 · cos` (both sides normalised)."""
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    similarity = (100.0 * image_features.float() @ text_features.float().T).softmax(dim=-1).mean(dim=0)
    top = similarity.topk(min(top_count, similarity.shape[0]))
    return [(int(i), float(p)) for p, i in zip(top.values, top.indices, strict=True)]


def blip_caption(model: Any, tokenizer: Any, image: Image.Image, options: ClipOptions, device: torch.device,
                 dtype: torch.dtype) -> str:
    """Caption one image with a transformers `BlipForConditionalGeneration` (beam search, no sampling)."""
    size = int(model.config.vision_config.image_size)
    pixels = blip_pixels(image, size).to(device=device, dtype=dtype)
    with torch.inference_mode():
        ids = model.generate(pixel_values=pixels, num_beams=options.num_beams, do_sample=False,
                             min_length=options.min_length, max_length=options.max_length)
    return str(tokenizer.decode(ids[0], skip_special_tokens=True)).strip()


def interrogate_with_clip(clip: Any, tokenizer: ClipTokenizer, image: Image.Image, caption: str,
                          categories: Sequence[Category], options: ClipOptions, device: torch.device,
                          dtype: torch.dtype) -> str:
    """Append the best entries of each category to `caption` (A1111 `InterrogateModels.interrogate`)."""
    size = int(clip.config.vision_config.image_size)
    result = caption
    with torch.inference_mode():
        image_features = _features(clip.get_image_features(pixel_values=clip_pixels(image, size).to(device, dtype)))
        for category in categories:
            items = category.items[: options.dict_limit] if options.dict_limit else category.items
            if not items:
                continue
            text_features = _features(clip.get_text_features(input_ids=tokenize(tokenizer, items).to(device)))
            for index, score in clip_ranks(image_features, text_features, category.topn):
                result += f", ({items[index]}:{score:.3f})" if options.return_ranks else f", {items[index]}"
    return result


def _features(output: Any) -> torch.Tensor:
    """The projected embedding of a `get_*_features` call (a tensor, or `pooler_output` of a model output)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output
