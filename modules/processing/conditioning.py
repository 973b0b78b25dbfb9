"""Prompts → scheduled, composable conditioning for the samplers (A1111 `prompt_parser` + `get_conds_with_caching`).

* Each prompt is split on `AND` (composable diffusion) and every part is turned into a prompt-editing schedule
  (`[from:to:when]`, `[a|b]`); each distinct text is encoded once per job (A1111 caches conds per job).
* SD1/SD2: `crossattn` is the text encoder output. SDXL base: CLIP-L and OpenCLIP-bigG outputs concatenated on the
  channel axis, `vector` = bigG pooled ⊕ embeddings of original size (h, w), crop (top, left), target size (h, w)
  (SGM `ConcatTimestepEmbedderND`, 256 sinusoidal features per number). SDXL refiner: bigG only, `vector` = pooled ⊕
  original size, crop, aesthetic score (A1111: `sdxl_refiner_high_aesthetic_score` 6.0 for the prompt,
  `sdxl_refiner_low_aesthetic_score` 2.5 for the negative).
* Extra-network tags (`<lora:…>`) are removed before encoding (A1111 `extra_networks.parse_prompts`). While a job's
  networks are active on the model (`modules.processing.extra_networks.activate_networks`), `build_conds` first
  switches them to the networks of the pass's prompts (A1111 activates per batch, and the hires prompt's networks
  for the hires pass), and encoding passes the textual-inversion lookup to the text encoders' splice hook and
  records the embeddings used (for `TI hashes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modules.models.nn.blocks import timestep_embedding
from modules.models.nn.text_encoders import ClipTextEncoder, OpenClipTextEncoder, encode_prompts
from modules.processing.extra_networks import active_networks
from modules.prompts import get_learned_conditioning_prompt_schedules, get_multicond_prompt_list, parse_prompts
from modules.sampling import CondSchedule, MultiCond, ScheduledCond, WeightedCond
from modules.sampling.conditioning import Cond

SIZE_VALUES_BASE = 6
"""SDXL base vector: original (h, w), crop (top, left), target (h, w)."""
SIZE_VALUES_REFINER = 5
"""SDXL refiner vector: original (h, w), crop (top, left), aesthetic score."""


class ConditioningError(RuntimeError):
    """The loaded model's text encoders cannot be used (missing, or an unknown wrapper)."""


def opt(settings: Mapping[str, Any], key: str, default: Any) -> Any:
    """A setting from the job snapshot, or `default` when the registry does not define it."""
    try:
        return settings[key]
    except (KeyError, LookupError):
        return default


def find_text_encoders(conditioner: Any) -> tuple[ClipTextEncoder | None, OpenClipTextEncoder | None]:
    """(CLIP-L, OpenCLIP) of a model's `text_encoders`: an object with `clip_l`/`open_clip` attributes (the
    loader's `CheckpointTextEncoders`) or a single encoder."""
    if conditioner is None:
        raise ConditioningError("the loaded checkpoint has no text encoder (UNet-only file); load a full checkpoint")
    if isinstance(conditioner, ClipTextEncoder):
        return conditioner, None
    if isinstance(conditioner, OpenClipTextEncoder):
        return None, conditioner
    clip_l, open_clip = getattr(conditioner, "clip_l", None), getattr(conditioner, "open_clip", None)
    if clip_l is None and open_clip is None:
        raise ConditioningError(f"unsupported text-encoder object {type(conditioner).__name__}: expected clip_l/open_clip")
    return clip_l, open_clip


def size_embedding(values: Sequence[float], width: int) -> torch.Tensor:
    """Sinusoidal embedding of each number (`width` features each), concatenated: SGM's size/score embedder."""
    if width <= 0:
        return torch.zeros(0)
    emb = timestep_embedding(torch.tensor([float(v) for v in values]), width)
    return emb.reshape(-1)


@dataclass
class PromptEncoder:
    """Encodes prompt texts of one job with the current model, caching each (text, is_negative) once."""

    model: Any
    settings: Mapping[str, Any]
    width: int
    height: int
    cache: dict[tuple[str, bool], Cond] = field(default_factory=dict)

    def __post_init__(self) -> None:
        found = getattr(self.model, "text_encoders", None) or getattr(self.model, "conditioner", None)
        self.clip_l, self.open_clip = find_text_encoders(found)
        self.family: str = self.model.family

    def _encode_with(self, encoder: Any, texts: list[str]) -> Any:
        networks = active_networks(self.model)
        out = encode_prompts(
            encoder, texts, emphasis=str(opt(self.settings, "emphasis", "Original")),
            clip_skip=int(opt(self.settings, "CLIP_stop_at_last_layers", 1)),
            comma_padding_backtrack=int(opt(self.settings, "comma_padding_backtrack", 20)),
            embedding_lookup=networks.embedding_lookup() if networks is not None else None,
            sdxl_clip_l_skip=bool(opt(self.settings, "sdxl_clip_l_skip", False)))
        if networks is not None and out.used_embeddings:
            networks.note_embeddings(out.used_embeddings)
        return out

    def _vector(self, pooled: torch.Tensor, negative: bool) -> torch.Tensor:
        adm = self.model.architecture.unet.adm_in_channels
        h, w = float(self.height), float(self.width)
        top, left = float(opt(self.settings, "sdxl_crop_top", 0)), float(opt(self.settings, "sdxl_crop_left", 0))
        if self.family == "sdxl-refiner":
            key, default = ("sdxl_refiner_low_aesthetic_score", 2.5) if negative else \
                ("sdxl_refiner_high_aesthetic_score", 6.0)
            values = [h, w, top, left, float(opt(self.settings, key, default))]
        else:
            values = [h, w, top, left, h, w]
        per_value = (adm - pooled.shape[-1]) // len(values)
        emb = size_embedding(values, per_value).to(pooled)
        return torch.cat([pooled, emb.expand(pooled.shape[0], -1)], dim=1)

    def _encode(self, texts: list[str], negative: bool) -> list[Cond]:
        with torch.no_grad():
            if self.model.is_sdxl:
                if self.open_clip is None:
                    raise ConditioningError("SDXL model without its OpenCLIP-bigG text encoder")
                big = self._encode_with(self.open_clip, texts)
                if big.pooled is None:
                    raise ConditioningError("the SDXL OpenCLIP encoder returned no pooled output")
                cross = big.cond
                if self.clip_l is not None and self.family != "sdxl-refiner":
                    small = self._encode_with(self.clip_l, texts).cond
                    tokens = max(small.shape[1], cross.shape[1])
                    small, cross = (_pad_tokens(t, tokens) for t in (small, cross))
                    cross = torch.cat([small, cross], dim=2)
                vector = self._vector(big.pooled.float(), negative)
                return [{"crossattn": cross[i].float(), "vector": vector[i]} for i in range(len(texts))]
            encoder = self.clip_l if self.clip_l is not None else self.open_clip
            out = self._encode_with(encoder, texts).cond
            return [{"crossattn": out[i].float()} for i in range(len(texts))]

    def encode(self, texts: Sequence[str], negative: bool = False) -> list[Cond]:
        """Conds for `texts` (extra-network tags stripped), from the cache where possible."""
        missing = sorted({t for t in texts if (t, negative) not in self.cache})
        if missing:
            stripped, _networks = parse_prompts(missing)
            for text, cond in zip(missing, self._encode(list(stripped), negative), strict=True):
                self.cache[(text, negative)] = cond
        return [self.cache[(t, negative)] for t in texts]


def _pad_tokens(t: torch.Tensor, length: int) -> torch.Tensor:
    if t.shape[1] >= length:
        return t
    return torch.cat([t, t[:, -1:].expand(t.shape[0], length - t.shape[1], t.shape[2])], dim=1)


def _schedules(encoder: PromptEncoder, texts: Sequence[str], steps: int, hires_steps: int | None,
               negative: bool) -> list[CondSchedule]:
    use_old = bool(opt(encoder.settings, "use_old_scheduling", False))
    parsed = get_learned_conditioning_prompt_schedules(texts, steps, hires_steps, use_old)
    flat = sorted({entry.text for schedule in parsed for entry in schedule})
    conds = dict(zip(flat, encoder.encode(flat, negative), strict=True))
    return [CondSchedule(tuple(ScheduledCond(e.end_at_step, conds[e.text]) for e in schedule)) for schedule in parsed]


def build_conds(encoder: PromptEncoder, prompts: Sequence[str], negative_prompts: Sequence[str], steps: int,
                hires_steps: int | None = None) -> tuple[MultiCond, list[CondSchedule]]:
    """(cond, uncond) of a batch: `AND` parts become weighted schedules (A1111 `get_multicond_learned_conditioning`),
    negative prompts plain schedules (A1111 `get_learned_conditioning`). `steps` counts model evaluations.
    Active extra networks switch to those of `prompts` first (cached conds are dropped when the weights change)."""
    networks = active_networks(encoder.model)
    if networks is not None and networks.use(list(prompts)):
        encoder.cache.clear()
    indexes, flat = get_multicond_prompt_list(list(prompts))
    schedules = _schedules(encoder, flat, steps, hires_steps, negative=False)
    cond = MultiCond(tuple(tuple(WeightedCond(schedules[i], w) for i, w in parts) for parts in indexes))
    uncond = _schedules(encoder, list(negative_prompts), steps, hires_steps, negative=True)
    return cond, uncond


def empty_chunk_cond(encoder: PromptEncoder) -> torch.Tensor:
    """The (77, dim) empty-prompt cond used to pad cond/uncond to equal length (A1111 "Pad prompt/negative")."""
    return encoder.encode([""], negative=True)[0]["crossattn"][:77]
