"""SDXL conditioning: cross-attention context from CLIP-L + bigG and the `y` vector with size embeddings.

Sources (behaviour, not code): SGM `GeneralConditioner` / `ConcatTimestepEmbedderND` and the SDXL configs
(`sd_xl_base.yaml`, `sd_xl_refiner.yaml`), A1111 `modules/sd_models_xl.py::get_learned_conditioning`;
Podell et al. 2023 "SDXL" §2.2 (size and crop conditioning):
- base: `crossattn` = concat(CLIP-L hidden −2 [768], bigG penultimate [1280]) on the channel axis → 2048;
  `vector` = concat(bigG pooled [1280], emb(original h, w), emb(crop top, left), emb(target h, w)) → 2816;
- refiner: `crossattn` = bigG penultimate [1280]; `vector` = concat(pooled, emb(original h, w), emb(crop top,
  left), emb(aesthetic score)) → 2560;
- emb(v) is the sinusoidal timestep embedding of each number (256 dims, cos half first, max period 10000; the same
  formula as the UNet's timestep embedding), the numbers' embeddings concatenated in order;
- A1111 passes the image size as both original and target size, crop (0, 0) by default (`sdxl_crop_top/left`),
  aesthetic score 6.0 for prompts and 2.5 for negative prompts (`sdxl_refiner_high/low_aesthetic_score`);
- an all-empty negative prompt is encoded as zeros (text context and pooled vector; the size part stays) —
  SGM `force_zero_embeddings=["txt"]`.
The size-embedding width is a parameter (`size_embed_dim`) so tiny test models can use their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modules.models.nn.text_encoders import ClipTextEncoder, OpenClipTextEncoder, encode_chunks
from modules.prompts.chunking import EmbeddingLookup, tokenize_prompts
from modules.prompts.tokenizer import get_tokenizer

SIZE_EMBED_DIM = 256
REFINER_HIGH_AESTHETIC_SCORE = 6.0
REFINER_LOW_AESTHETIC_SCORE = 2.5


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding `[N, dim]` of `N` numbers: cos(t·fᵢ) then sin(t·fᵢ), fᵢ = max_period^(−i/(dim/2)).

    Odd `dim` gets a zero last column (LDM/SGM `timestep_embedding`).
    """
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    frequencies = torch.exp(-math.log(max_period) * exponents)
    angles = timesteps.reshape(-1, 1).float() * frequencies.reshape(1, -1)
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def embed_numbers(values: torch.Tensor, dim: int = SIZE_EMBED_DIM) -> torch.Tensor:
    """`[B, k]` numbers → `[B, k·dim]`: each number's timestep embedding, in order (SGM ConcatTimestepEmbedderND)."""
    if values.dim() == 1:
        values = values[:, None]
    batch, count = values.shape
    return timestep_embedding(values.reshape(-1), dim).reshape(batch, count * dim)


def infer_size_embed_dim(adm_in_channels: int, pooled_dim: int, refiner: bool) -> int:
    """The per-number embedding width implied by a UNet's `label_emb` input size (6 numbers base, 5 refiner)."""
    numbers = 5 if refiner else 6
    rest = adm_in_channels - pooled_dim
    if rest <= 0 or rest % numbers:
        raise ValueError(
            f"UNet vector size {adm_in_channels} minus pooled size {pooled_dim} is not {numbers} equal embeddings"
        )
    return rest // numbers


@dataclass
class SDXLConditioning:
    """`crossattn` `[B, 77·k, C]` and `vector` `[B, V]`, plus the textual-inversion embeddings used."""

    crossattn: torch.Tensor
    vector: torch.Tensor
    used_embeddings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """SGM-style `{"crossattn": ..., "vector": ...}`."""
        return {"crossattn": self.crossattn, "vector": self.vector}


class SDXLConditioner:
    """Prompts + image size → `SDXLConditioning` for SDXL base (`clip_l` given) or refiner (`clip_l=None`)."""

    def __init__(
        self,
        clip_g: OpenClipTextEncoder,
        clip_l: ClipTextEncoder | None = None,
        *,
        size_embed_dim: int = SIZE_EMBED_DIM,
    ) -> None:
        if clip_g.mode != "sdxl" or (clip_l is not None and clip_l.mode != "sdxl"):
            raise ValueError("SDXLConditioner needs text encoders built with mode='sdxl'")
        self.clip_g = clip_g
        self.clip_l = clip_l
        self.size_embed_dim = size_embed_dim

    @property
    def is_refiner(self) -> bool:
        return self.clip_l is None

    def size_vector(
        self,
        batch: int,
        *,
        width: int,
        height: int,
        crop_top: int = 0,
        crop_left: int = 0,
        target_width: int | None = None,
        target_height: int | None = None,
        aesthetic_score: float = REFINER_HIGH_AESTHETIC_SCORE,
        device: torch.device | None = None,
    ) -> torch.Tensor:
        """The size/crop(/aesthetic) part of `vector`, `[batch, 3·2·dim]` (base) or `[batch, 5·dim]` (refiner)."""
        rows = [[height, width], [crop_top, crop_left]]
        if self.is_refiner:
            rows.append([aesthetic_score])
        else:
            rows.append([target_height or height, target_width or width])
        parts = [
            embed_numbers(torch.tensor([row], dtype=torch.float32, device=device).repeat(batch, 1), self.size_embed_dim)
            for row in rows
        ]
        return torch.cat(parts, dim=1)

    def __call__(
        self,
        prompts: Sequence[str],
        *,
        width: int,
        height: int,
        is_negative_prompt: bool = False,
        crop_top: int = 0,
        crop_left: int = 0,
        target_width: int | None = None,
        target_height: int | None = None,
        aesthetic_score: float | None = None,
        emphasis: str = "Original",
        clip_skip: int = 1,
        sdxl_clip_l_skip: bool = False,
        comma_padding_backtrack: int = 20,
        embedding_lookup: EmbeddingLookup | None = None,
    ) -> SDXLConditioning:
        """Encode prompts (already free of schedules, AND and extra-network tags) as A1111 does for SDXL."""
        prompts = list(prompts)
        tokenizer = get_tokenizer("open_clip" if self.is_refiner else "clip")
        batch_chunks, _count = tokenize_prompts(
            prompts,
            tokenizer,
            emphasis=emphasis,
            comma_padding_backtrack=comma_padding_backtrack,
            embedding_lookup=embedding_lookup,
        )
        options = {"emphasis": emphasis, "clip_skip": clip_skip, "sdxl_clip_l_skip": sdxl_clip_l_skip}
        big = encode_chunks(self.clip_g, batch_chunks, **options)
        contexts = [big.cond]
        used = dict(big.used_embeddings)
        if self.clip_l is not None:
            small = encode_chunks(self.clip_l, batch_chunks, **options)
            contexts.insert(0, small.cond.to(big.cond.dtype))
            used.update(small.used_embeddings)
        crossattn = torch.cat(contexts, dim=2)
        pooled = big.pooled
        assert pooled is not None  # bigG in sdxl mode always pools
        if is_negative_prompt and all(p == "" for p in prompts):
            crossattn = torch.zeros_like(crossattn)
            pooled = torch.zeros_like(pooled)
        if aesthetic_score is None:
            aesthetic_score = REFINER_LOW_AESTHETIC_SCORE if is_negative_prompt else REFINER_HIGH_AESTHETIC_SCORE
        sizes = self.size_vector(
            len(prompts),
            width=width,
            height=height,
            crop_top=crop_top,
            crop_left=crop_left,
            target_width=target_width,
            target_height=target_height,
            aesthetic_score=aesthetic_score,
            device=pooled.device,
        )
        vector = torch.cat([pooled, sizes.to(pooled.dtype)], dim=1)
        return SDXLConditioning(crossattn, vector, used)
