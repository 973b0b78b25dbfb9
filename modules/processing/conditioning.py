"""Prompts → scheduled, composable conditioning for the samplers (A1111 `prompt_parser` + `get_conds_with_caching`).

* Each prompt is split on `AND` (composable diffusion) and every part is turned into a prompt-editing schedule
  (`[from:to:when]`, `[a|b]`); each distinct text is encoded once per job (A1111 caches conds per job).
* SD1/SD2: `crossattn` is the text encoder output. SDXL (base and refiner) is encoded by the one SDXL path,
  `modules.models.nn.conditioner.SDXLConditioner` (CLIP-L ⊕ bigG context, pooled ⊕ size/crop/aesthetic `vector`),
  with the job's settings: image size as original and target size, `sdxl_crop_top/left`,
  `sdxl_refiner_high/low_aesthetic_score` (6.0 prompt / 2.5 negative). A negative prompt whose scheduled texts are
  all empty gets zero context and pooled vector (SGM `force_zero_embeddings`, decided per prompt as A1111
  `sd_models_xl.get_learned_conditioning` does for each prompt's schedule).
* Extra-network tags (`<lora:…>`) are removed before encoding (A1111 `extra_networks.parse_prompts`). While a job's
  networks are active on the model (`modules.processing.extra_networks.activate_networks`), `build_conds` first
  switches them to the networks of the pass's prompts (A1111 activates per batch, and the hires prompt's networks
  for the hires pass), and encoding passes the textual-inversion lookup to the text encoders' splice hook and
  records the embeddings used (for `TI hashes`).
* With `persistent_cond_cache` (default on) the conds also outlive the job (`modules.processing.cond_cache`): a
  next job with the same prompt texts, model and encoder options does not run the text encoder again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modules.models.nn.conditioner import SDXLConditioner, forces_zero_embeddings
from modules.models.nn.text_encoders import ClipTextEncoder, OpenClipTextEncoder, encode_prompts
from modules.processing.cond_cache import CachedCond, CondCache, used_by
from modules.processing.extra_networks import active_networks
from modules.processing.job_timing import JobTimes
from modules.prompts import get_learned_conditioning_prompt_schedules, get_multicond_prompt_list, parse_prompts
from modules.sampling import CondSchedule, MultiCond, ScheduledCond, WeightedCond
from modules.sampling.conditioning import Cond


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


@dataclass
class PromptEncoder:
    """Encodes prompt texts of one job with the current model, caching each (text, is_negative, zeroed) once; with
    `persistent` and the `persistent_cond_cache` setting on, also across jobs."""

    model: Any
    settings: Mapping[str, Any]
    width: int
    height: int
    cache: dict[tuple[str, bool, bool], Cond] = field(default_factory=dict)
    times: JobTimes | None = None
    """The job's stage timings: "text encoder" (seconds, texts encoded) and the persistent-cache hits."""
    persistent: CondCache | None = None
    """The app's cond cache across jobs (`AppContext.cond_cache`)."""

    def __post_init__(self) -> None:
        found = getattr(self.model, "text_encoders", None) or getattr(self.model, "conditioner", None)
        self._owner = found
        self.clip_l, self.open_clip = find_text_encoders(found)
        self.family: str = self.model.family
        self.sdxl: SDXLConditioner | None = None
        if self.model.is_sdxl:
            if self.open_clip is None:
                raise ConditioningError("SDXL model without its OpenCLIP-bigG text encoder")
            clip_l = self.clip_l if self.family != "sdxl-refiner" else None
            self.sdxl = SDXLConditioner(self.open_clip, clip_l,
                                        vector_width=self.model.architecture.unet.adm_in_channels)

    def _options(self) -> dict[str, Any]:
        networks = active_networks(self.model)
        return {"emphasis": str(opt(self.settings, "emphasis", "Original")),
                "clip_skip": int(opt(self.settings, "CLIP_stop_at_last_layers", 1)),
                "comma_padding_backtrack": int(opt(self.settings, "comma_padding_backtrack", 20)),
                "embedding_lookup": networks.embedding_lookup() if networks is not None else None,
                "sdxl_clip_l_skip": bool(opt(self.settings, "sdxl_clip_l_skip", False)),
                # A1111 `forward_old`: pre-1.0 tokenization and bracket weights (modules.prompts.old_emphasis)
                "old_emphasis": bool(opt(self.settings, "use_old_emphasis_implementation", False))}

    def _note_embeddings(self, used: Mapping[str, Any]) -> None:
        networks = active_networks(self.model)
        if networks is not None and used:
            networks.note_embeddings(dict(used))

    def _persistent_key(self) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
        """(validity key, objects whose ids it holds) of the persistent cache for this job's encoding now, or None
        when the cache is off (see `modules.processing.cond_cache` for what the key holds)."""
        if self.persistent is None or not bool(opt(self.settings, "persistent_cond_cache", True)):
            return None
        options = tuple(sorted((k, v) for k, v in self._options().items() if k != "embedding_lookup"))
        networks = active_networks(self.model)
        embeddings = tuple(networks.library.embeddings.word_embeddings.values()) if networks is not None else ()
        sdxl: tuple[Any, ...] = ()
        if self.sdxl is not None:
            sdxl = (self.family, self.width, self.height, opt(self.settings, "sdxl_crop_top", 0),
                    opt(self.settings, "sdxl_crop_left", 0), opt(self.settings, "sdxl_refiner_low_aesthetic_score", 2.5),
                    opt(self.settings, "sdxl_refiner_high_aesthetic_score", 6.0))
        key = (options, networks.signature() if networks is not None else None,
               tuple((e.name, id(e)) for e in embeddings), sdxl)
        return key, embeddings

    def _from_persistent(self, texts: list[str], negative: bool, zeroed: bool,
                         key: tuple[Any, ...] | None) -> list[str]:
        """Fill the job's cache from the persistent one; returns the texts still to encode."""
        if key is None or self.persistent is None:
            return texts
        left = []
        for text in texts:
            hit = self.persistent.lookup(self._owner, key, (text, negative, zeroed))
            if hit is None:
                left.append(text)
                continue
            self.cache[(text, negative, zeroed)] = hit.cond
            self._note_embeddings(hit.used_embeddings)
            if self.times is not None:
                self.times.cache_hits += 1
        return left

    def _encode(self, texts: list[str], negative: bool, zeroed: bool) -> tuple[list[Cond], dict[str, Any]]:
        """Run the text encoder(s) on `texts`: (one cond per text, the embeddings the batch used)."""
        started = time.perf_counter()
        try:
            return self._run_encoders(texts, negative, zeroed)
        finally:
            if self.times is not None:
                self.times.add("text encoder", time.perf_counter() - started, count=len(texts))

    def _run_encoders(self, texts: list[str], negative: bool, zeroed: bool) -> tuple[list[Cond], dict[str, Any]]:
        with torch.no_grad():
            if self.sdxl is not None:
                key, default = (("sdxl_refiner_low_aesthetic_score", 2.5) if negative
                                else ("sdxl_refiner_high_aesthetic_score", 6.0))
                out = self.sdxl(texts, width=self.width, height=self.height, is_negative_prompt=negative,
                                crop_top=int(opt(self.settings, "sdxl_crop_top", 0)),
                                crop_left=int(opt(self.settings, "sdxl_crop_left", 0)),
                                aesthetic_score=float(opt(self.settings, key, default)),
                                force_zero_embeddings=zeroed, **self._options())
                self._note_embeddings(out.used_embeddings)
                return [{"crossattn": out.crossattn[i].float(), "vector": out.vector[i].float()}
                        for i in range(len(texts))], dict(out.used_embeddings)
            encoder = self.clip_l if self.clip_l is not None else self.open_clip
            assert encoder is not None  # find_text_encoders returns at least one
            encoded = encode_prompts(encoder, texts, **self._options())
            self._note_embeddings(encoded.used_embeddings)
            return [{"crossattn": encoded.cond[i].float()} for i in range(len(texts))], dict(encoded.used_embeddings)

    def encode(self, texts: Sequence[str], negative: bool = False, zeroed: bool = False) -> list[Cond]:
        """Conds for `texts` (extra-network tags stripped), from the cache where possible. `zeroed`: the texts
        make up negative prompts that SDXL encodes as zeros (`forces_zero_embeddings`; ignored for SD1/SD2)."""
        zeroed = zeroed and self.sdxl is not None
        missing = sorted({t for t in texts if (t, negative, zeroed) not in self.cache})
        persistent = self._persistent_key() if missing else None
        key = persistent[0] if persistent is not None else None
        missing = self._from_persistent(missing, negative, zeroed, key)
        if missing:
            stripped, _networks = parse_prompts(missing)
            conds, used = self._encode(list(stripped), negative, zeroed)
            for text, cond in zip(missing, conds, strict=True):
                self.cache[(text, negative, zeroed)] = cond
                if persistent is not None and self.persistent is not None:
                    self.persistent.store(self._owner, persistent[0], (text, negative, zeroed),
                                          CachedCond(cond, used_by(text, used, len(missing))), pinned=persistent[1])
        return [self.cache[(t, negative, zeroed)] for t in texts]


def _schedules(encoder: PromptEncoder, texts: Sequence[str], steps: int, hires_steps: int | None,
               negative: bool) -> list[CondSchedule]:
    """One schedule per prompt; SDXL zeroes a negative prompt whose scheduled texts are all empty (A1111 decides
    per prompt, on the texts of its schedule)."""
    use_old = bool(opt(encoder.settings, "use_old_scheduling", False))
    parsed = get_learned_conditioning_prompt_schedules(texts, steps, hires_steps, use_old)
    zero = [forces_zero_embeddings([e.text for e in schedule], negative) for schedule in parsed]
    conds: dict[tuple[str, bool], Cond] = {}
    for flag in (False, True):
        flat = sorted({e.text for schedule, z in zip(parsed, zero, strict=True) if z == flag for e in schedule})
        conds.update(((text, flag), cond) for text, cond in zip(flat, encoder.encode(flat, negative, flag),
                                                                   strict=True))
    return [CondSchedule(tuple(ScheduledCond(e.end_at_step, conds[(e.text, z)]) for e in schedule))
            for schedule, z in zip(parsed, zero, strict=True)]


def build_conds(encoder: PromptEncoder, prompts: Sequence[str], negative_prompts: Sequence[str], steps: int,
                hires_steps: int | None = None, *, switch_networks: bool = True
                ) -> tuple[MultiCond, list[CondSchedule]]:
    """(cond, uncond) of a batch: `AND` parts become weighted schedules (A1111 `get_multicond_learned_conditioning`),
    negative prompts plain schedules (A1111 `get_learned_conditioning`). `steps` counts model evaluations.
    Active extra networks switch to those of `prompts` first (cached conds are dropped when the weights change);
    `switch_networks=False` encodes with the networks active now (`hires_fix_use_firstpass_conds`)."""
    if switch_networks:
        use_networks(encoder, prompts)
    indexes, flat = get_multicond_prompt_list(list(prompts))
    schedules = _schedules(encoder, flat, steps, hires_steps, negative=False)
    cond = MultiCond(tuple(tuple(WeightedCond(schedules[i], w) for i, w in parts) for parts in indexes))
    uncond = _schedules(encoder, list(negative_prompts), steps, hires_steps, negative=True)
    return cond, uncond


def use_networks(encoder: PromptEncoder, prompts: Sequence[str]) -> None:
    """Switch the job's active extra networks on the encoder's model to those of `prompts` (A1111
    `extra_networks.activate`); the encoder's cached conds are dropped when the weights changed."""
    networks = active_networks(encoder.model)
    if networks is not None and networks.use(list(prompts)):
        encoder.cache.clear()


def empty_chunk_cond(encoder: PromptEncoder) -> torch.Tensor:
    """The (77, dim) empty-prompt cond used to pad cond/uncond to equal length (A1111 "Pad prompt/negative")."""
    return encoder.encode([""], negative=True)[0]["crossattn"][:77]
