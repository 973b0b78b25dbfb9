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
  SGM `force_zero_embeddings=["txt"]`, applied by A1111 `sd_models_xl.get_learned_conditioning` when the batch
  is a negative prompt whose texts are all "" (`forces_zero_embeddings`);
- each text encoder tokenizes with its own tokenizer (A1111: CLIP-L with the CLIP tokenizer, bigG with open_clip's).
The size-embedding width is a parameter (`size_embed_dim`, or derived from the UNet's `vector_width`) so tiny test
models can use their own. This is the one SDXL conditioning path: the pipeline (`modules.processing.conditioning`)
encodes SDXL prompts through `SDXLConditioner`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modules.models.nn.blocks import timestep_embedding
from modules.models.nn.text_encoders import ClipTextEncoder, OpenClipTextEncoder, TextConditioning, encode_prompts
from modules.prompts.chunking import EmbeddingLookup

__all__ = ["SDXLConditioner", "SDXLConditioning", "embed_numbers", "forces_zero_embeddings", "infer_size_embed_dim",
           "timestep_embedding"]

SIZE_EMBED_DIM = 256
REFINER_HIGH_AESTHETIC_SCORE = 6.0
REFINER_LOW_AESTHETIC_SCORE = 2.5


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


def forces_zero_embeddings(texts: Sequence[str], is_negative_prompt: bool) -> bool:
    """SGM `force_zero_embeddings=["txt"]` as A1111 `sd_models_xl.get_learned_conditioning` applies it: True for
    the texts of a negative prompt (its prompt-editing schedule) that are all empty, e.g. `[""]`."""
    return is_negative_prompt and len(texts) > 0 and all(text == "" for text in texts)


def pad_tokens(t: torch.Tensor, length: int) -> torch.Tensor:
    """`[B, n, C]` → `[B, length, C]` by repeating the last token state (when one encoder's chunks run longer)."""
    if t.shape[1] >= length:
        return t
    return torch.cat([t, t[:, -1:].expand(t.shape[0], length - t.shape[1], t.shape[2])], dim=1)


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
        vector_width: int | None = None,
    ) -> None:
        """`vector_width` (the UNet's `adm_in_channels`), when given, sets the size-embedding width from the pooled
        width (`infer_size_embed_dim`) instead of `size_embed_dim`."""
        if clip_g.mode != "sdxl" or (clip_l is not None and clip_l.mode != "sdxl"):
            raise ValueError("SDXLConditioner needs text encoders built with mode='sdxl'")
        self.clip_g = clip_g
        self.clip_l = clip_l
        self.size_embed_dim = size_embed_dim
        self.vector_width = vector_width

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
        embed_dim: int | None = None,
    ) -> torch.Tensor:
        """The size/crop(/aesthetic) part of `vector`, `[batch, 3·2·dim]` (base) or `[batch, 5·dim]` (refiner)."""
        dim = embed_dim or self.size_embed_dim
        rows: list[list[float]] = [[height, width], [crop_top, crop_left]]
        if self.is_refiner:
            rows.append([aesthetic_score])
        else:
            rows.append([target_height or height, target_width or width])
        parts = [
            embed_numbers(torch.tensor([row], dtype=torch.float32, device=device).repeat(batch, 1), dim)
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
        force_zero_embeddings: bool | None = None,
        old_emphasis: bool = False,
    ) -> SDXLConditioning:
        """Encode prompts (already free of schedules, AND and extra-network tags) as A1111 does for SDXL.

        `force_zero_embeddings` None applies the SGM rule to `prompts` (`forces_zero_embeddings`); a caller that
        batches texts of several prompts decides per prompt and passes True/False."""
        prompts = list(prompts)

        def encode(encoder: ClipTextEncoder | OpenClipTextEncoder) -> TextConditioning:
            return encode_prompts(encoder, prompts, emphasis=emphasis, clip_skip=clip_skip,
                                  comma_padding_backtrack=comma_padding_backtrack, embedding_lookup=embedding_lookup,
                                  sdxl_clip_l_skip=sdxl_clip_l_skip, old_emphasis=old_emphasis)

        big = encode(self.clip_g)
        crossattn = big.cond
        used = dict(big.used_embeddings)
        if self.clip_l is not None:
            small = encode(self.clip_l)
            tokens = max(small.cond.shape[1], crossattn.shape[1])
            crossattn = torch.cat([pad_tokens(small.cond.to(crossattn.dtype), tokens), pad_tokens(crossattn, tokens)],
                                  dim=2)
            used.update(small.used_embeddings)
        pooled = big.pooled
        assert pooled is not None  # bigG in sdxl mode always pools
        if force_zero_embeddings is None:
            force_zero_embeddings = forces_zero_embeddings(prompts, is_negative_prompt)
        if force_zero_embeddings:
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
            embed_dim=(infer_size_embed_dim(self.vector_width, pooled.shape[-1], self.is_refiner)
                       if self.vector_width is not None else None),
        )
        vector = torch.cat([pooled, sizes.to(pooled.dtype)], dim=1)
        return SDXLConditioning(crossattn, vector, used)
