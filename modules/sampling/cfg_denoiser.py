"""Classifier-free guidance around a denoiser, with A1111's batching, AND weights, prompt-editing schedules,
instruct-pix2pix image CFG and the ``on_cfg_*`` hooks.

Guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance"; composable form of Liu et al. 2022):
``denoised_i = uncond_i + cfg_scale * sum_j w_ij (cond_ij - uncond_i)``.
Instruct-pix2pix (Brooks et al. 2023, eq. 3): three passes (text+image, image only, neither):
``uncond + cfg (cond - img_cond) + image_cfg (img_cond - uncond)``.

The wrapped denoiser is called as ``inner(x, sigma, cond={...})`` where the dict holds the batched text conds plus
``concat`` (image conditioning for inpainting / pix2pix models) when given. The CFG denoiser itself is a sampler
model: ``cfg(x, sigma, cond=MultiCond, uncond=[CondSchedule], cond_scale=7.0, image_cond=None)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .conditioning import Cond, CondSchedule, MultiCond, pad_tokens_to, reconstruct_multicond, reconstruct_uncond

Tensor = torch.Tensor
InnerDenoiser = Callable[..., Tensor]


@dataclass
class CFGDenoiserParams:
    """Given to ``on_cfg_denoiser`` hooks before the model runs; hooks may replace any field (A1111 names)."""

    x: Tensor
    image_cond: Tensor | None
    sigma: Tensor
    sampling_step: int
    total_sampling_steps: int
    text_cond: Cond
    text_uncond: Cond
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    """Given to ``on_cfg_denoised`` hooks with the raw model outputs (cond rows first, then uncond rows)."""

    x: Tensor
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class AfterCFGCallbackParams:
    """Given to ``on_cfg_after_cfg`` hooks with the guided result; hooks may replace ``x``."""

    x: Tensor
    sampling_step: int
    total_sampling_steps: int


@dataclass
class CFGHooks:
    """Plain callables the script system registers (A1111 ``script_callbacks.on_cfg_*``)."""

    on_cfg_denoiser: list[Callable[[CFGDenoiserParams], None]] = field(default_factory=list)
    on_cfg_denoised: list[Callable[[CFGDenoisedParams], None]] = field(default_factory=list)
    on_cfg_after_cfg: list[Callable[[AfterCFGCallbackParams], None]] = field(default_factory=list)


@dataclass
class CFGPolicy:
    """Batching and skipping rules.

    * ``batch_cond_uncond``: run cond and uncond rows in one model call (A1111 default); False runs one call per
      chunk of ``batch size`` rows (``--lowvram``/``--medvram`` behaviour).
    * ``pad_with``: when cond and uncond have different token counts, pad the shorter with repeats of this
      (77, dim) empty-prompt chunk (A1111 "Pad prompt/negative prompt", infotext "Pad conds"). Without it the two
      are run in separate calls.
    * ``s_min_uncond``: skip the uncond pass on every other step while sigma < this value (NGMS); with
      ``s_min_uncond_all`` on every such step (A1111 "Negative Guidance minimum sigma all steps").
    * ``skip_early_cond``: skip the uncond pass while ``step / total_steps <= skip_early_cond`` (A1111 1.10
      "Ignore negative prompt during early sampling"; it takes precedence over NGMS).

    * ``pad_v0``: A1111's pre-1.6 rule ("Pad prompt/negative prompt (v0)", infotext "Pad conds v0", wins over
      ``pad_with``): a shorter uncond repeats its last token vector up to the cond's length, a longer one is cut.

    The denoiser records in ``CFGDenoiser.skipped`` which rule skipped a pass ("early", "ngms"), for the infotext.
    """

    batch_cond_uncond: bool = True
    pad_with: Tensor | None = None
    s_min_uncond: float = 0.0
    skip_early_cond: float = 0.0
    s_min_uncond_all: bool = False
    pad_v0: bool = False


def _cat(conds: Sequence[Cond]) -> Cond:
    return {k: torch.cat([c[k] for c in conds]) for k in conds[0]}


def _rows(cond: Cond, a: int, b: int) -> Cond:
    return {k: v[a:b] for k, v in cond.items()}


def _token_count(cond: Cond) -> int | None:
    t = cond.get("crossattn")
    return None if t is None else int(t.shape[1])


def _pad_batch(cond: Cond, length: int, empty: Tensor) -> Cond:
    """Append whole empty-prompt chunks to a batched crossattn (A1111 ``pad_cond``)."""
    t = cond["crossattn"]
    repeats = (length - t.shape[1]) // empty.shape[-2]
    if repeats <= 0:
        return cond
    filler = empty.reshape(1, -1, t.shape[-1]).to(t).repeat(t.shape[0], repeats, 1)
    return {**cond, "crossattn": torch.cat([t, filler], dim=1)}


MaskBlend = Callable[[Tensor, Tensor, Tensor, "CFGDenoiser"], Tensor]
"""`mask_blend(denoised, blended, sigma, denoiser) -> latent`: replaces the hard inpainting blend after guidance
(A1111 `apply_blend` with the scripts' `on_mask_blend`; soft inpainting returns its own blend)."""


class CFGDenoiser:
    """A sampler model applying classifier-free guidance to ``inner``.

    ``step`` counts model evaluations of this run (prompt-editing schedules are indexed by it, as in A1111, where
    second-order samplers advance it twice per step); ``total_steps`` is the expected count. Optional inpainting
    blend after guidance: ``denoised = init_latent * mask + nmask * denoised``. ``last_uncond_denoised`` keeps the
    unconditional prediction for DDIM CFG++ (and, with ``last_cond_denoised``, for live previews); ``cond_scale_multiplier`` scales the CFG scale (1/12.5 for CFG++).
    ``image_cfg_scale`` is set only for instruct-pix2pix models; with a value other than 1 and an ``image_cond``
    the three-way image CFG is used (at 1.0 pix2pix equals plain CFG, so AND works, as in A1111).
    """

    def __init__(
        self,
        inner: InnerDenoiser,
        hooks: CFGHooks | None = None,
        policy: CFGPolicy | None = None,
        image_cfg_scale: float | None = None,
        total_steps: int = 0,
        cond_scale_multiplier: float = 1.0,
    ) -> None:
        self.inner = inner
        self.hooks = hooks or CFGHooks()
        self.policy = policy or CFGPolicy()
        self.image_cfg_scale = image_cfg_scale
        self.total_steps = total_steps
        self.cond_scale_multiplier = cond_scale_multiplier
        self.step = 0
        self.mask: Tensor | None = None
        self.nmask: Tensor | None = None
        self.init_latent: Tensor | None = None
        self.mask_blend: MaskBlend | None = None
        self.last_uncond_denoised: Tensor | None = None
        self.last_cond_denoised: Tensor | None = None
        self.padded_cond_uncond = False
        self.padded_cond_uncond_v0 = False
        self.skipped: set[str] = set()

    def __call__(
        self,
        x: Tensor,
        sigma: Tensor,
        cond: MultiCond,
        uncond: Sequence[CondSchedule],
        cond_scale: float = 7.0,
        image_cond: Tensor | None = None,
        **_: Any,
    ) -> Tensor:
        if len(cond) != x.shape[0] or len(uncond) != x.shape[0]:
            raise ValueError(f"CFG: batch of {x.shape[0]} latents but {len(cond)} conds and {len(uncond)} unconds")
        cond_scale = cond_scale * self.cond_scale_multiplier
        is_edit = image_cond is not None and self.image_cfg_scale is not None and self.image_cfg_scale != 1.0
        conds_list, text_cond = reconstruct_multicond(cond, self.step)
        text_uncond = reconstruct_uncond(uncond, self.step)
        if is_edit and any(len(parts) != 1 for parts in conds_list):
            raise ValueError("AND is not supported for instruct-pix2pix models unless Image CFG scale is 1.0")
        batch = x.shape[0]
        repeats = [len(parts) for parts in conds_list]

        def expand(t: Tensor) -> Tensor:
            return torch.cat([t[i : i + 1].expand(n, *t.shape[1:]) for i, n in enumerate(repeats)])

        x_in = torch.cat([expand(x), x] + ([x] if is_edit else []))
        sigma_in = torch.cat([expand(sigma), sigma] + ([sigma] if is_edit else []))
        image_in = None
        if image_cond is not None:
            tail = [image_cond] + ([torch.zeros_like(image_cond)] if is_edit else [])
            image_in = torch.cat([expand(image_cond), *tail])

        params = CFGDenoiserParams(x_in, image_in, sigma_in, self.step, self.total_steps, text_cond, text_uncond, self)
        for hook in self.hooks.on_cfg_denoiser:
            hook(params)
        x_in, image_in, sigma_in = params.x, params.image_cond, params.sigma
        text_cond, text_uncond = params.text_cond, params.text_uncond

        skip_uncond = self._skip_uncond(sigma, is_edit)
        if skip_uncond:
            x_in, sigma_in = x_in[:-batch], sigma_in[:-batch]
            image_in = None if image_in is None else image_in[:-batch]

        text_cond, text_uncond = self._match_lengths(text_cond, text_uncond)
        uncond_rows = [text_uncond, text_uncond] if is_edit else [text_uncond]
        x_out = self._run(x_in, sigma_in, image_in, text_cond, [] if skip_uncond else uncond_rows, batch)

        if skip_uncond:  # the cond prediction stands in for the skipped uncond one (A1111)
            x_out = torch.cat([x_out, torch.cat([x_out[p[0][0] : p[0][0] + 1] for p in conds_list])])

        denoised_params = CFGDenoisedParams(x_out, self.step, self.total_steps, self.inner)
        for denoised_hook in self.hooks.on_cfg_denoised:
            denoised_hook(denoised_params)
        x_out = denoised_params.x

        if is_edit:
            out_cond, out_img_cond, out_uncond = x_out.chunk(3)
            assert self.image_cfg_scale is not None
            denoised = out_uncond + cond_scale * (out_cond - out_img_cond) + self.image_cfg_scale * (out_img_cond - out_uncond)
            self.last_uncond_denoised = out_uncond
            self.last_cond_denoised = out_cond
        else:
            denoised = self.combine(x_out, conds_list, batch, 1.0 if skip_uncond else cond_scale)
            self.last_uncond_denoised = x_out[-batch:]
            self.last_cond_denoised = torch.cat([x_out[p[0][0] : p[0][0] + 1] for p in conds_list])

        if self.mask is not None and self.nmask is not None and self.init_latent is not None:
            blended = self.init_latent * self.mask + self.nmask * denoised
            denoised = blended if self.mask_blend is None else self.mask_blend(denoised, blended, sigma, self)

        after = AfterCFGCallbackParams(denoised, self.step, self.total_steps)
        for after_hook in self.hooks.on_cfg_after_cfg:
            after_hook(after)
        self.step += 1
        return after.x

    @staticmethod
    def combine(x_out: Tensor, conds_list: list[list[tuple[int, float]]], batch: int, cond_scale: float) -> Tensor:
        """``uncond + sum_j (cond_j - uncond) * w_j * cond_scale`` per image (A1111 ``combine_denoised``)."""
        uncond = x_out[-batch:]
        denoised = uncond.clone()
        for i, parts in enumerate(conds_list):
            for row, weight in parts:
                denoised[i] += (x_out[row] - uncond[i]) * (weight * cond_scale)
        return denoised

    def _skip_uncond(self, sigma: Tensor, is_edit: bool) -> bool:
        p = self.policy
        if is_edit:
            return False
        if p.skip_early_cond > 0 and self.total_steps and self.step / self.total_steps <= p.skip_early_cond:
            self.skipped.add("early")
            return True
        if (self.step % 2 or p.s_min_uncond_all) and p.s_min_uncond > 0 and float(sigma[0]) < p.s_min_uncond:
            self.skipped.add("ngms")
            return True
        return False

    def _match_lengths(self, cond: Cond, uncond: Cond) -> tuple[Cond, Cond]:
        self.padded_cond_uncond = False
        lc, lu = _token_count(cond), _token_count(uncond)
        if lc is None or lu is None or lc == lu:
            return cond, uncond
        if self.policy.pad_v0:
            self.padded_cond_uncond_v0 = True
            t = uncond["crossattn"]
            if lu < lc:
                t = torch.cat([t, t[:, -1:].repeat(1, lc - lu, 1)], dim=1)
            return cond, {**uncond, "crossattn": t[:, :lc]}
        if self.policy.pad_with is None:
            return cond, uncond
        self.padded_cond_uncond = True
        if lc < lu:
            return _pad_batch(cond, lu, self.policy.pad_with), uncond
        return cond, _pad_batch(uncond, lc, self.policy.pad_with)

    def _call(self, x: Tensor, sigma: Tensor, text: Cond, image: Tensor | None) -> Tensor:
        cond = dict(text)
        if image is not None:
            cond["concat"] = image
        return self.inner(x, sigma, cond=cond)

    def _run(
        self, x_in: Tensor, sigma_in: Tensor, image_in: Tensor | None, text_cond: Cond, uncond_rows: list[Cond],
        batch: int,
    ) -> Tensor:
        """Evaluate every row: one call, per-``batch`` chunks, or cond/uncond apart when token counts differ."""
        n_cond = next(iter(text_cond.values())).shape[0]
        same_len = all(_token_count(u) == _token_count(text_cond) for u in uncond_rows)
        if same_len:
            cond_in = _cat([text_cond, *uncond_rows])
            if self.policy.batch_cond_uncond:
                return self._call(x_in, sigma_in, cond_in, image_in)
            chunks = []
            for a in range(0, x_in.shape[0], batch):
                b = a + batch
                chunks.append(self._call(x_in[a:b], sigma_in[a:b], _rows(cond_in, a, b), _slice(image_in, a, b)))
            return torch.cat(chunks)
        # different token counts and no padding: conds and unconds go in separate calls (A1111)
        outs = [self._call(x_in[:n_cond], sigma_in[:n_cond], text_cond, _slice(image_in, 0, n_cond))]
        a = n_cond
        for u in uncond_rows:
            b = a + batch
            outs.append(self._call(x_in[a:b], sigma_in[a:b], u, _slice(image_in, a, b)))
            a = b
        return torch.cat(outs)


def _slice(t: Tensor | None, a: int, b: int) -> Tensor | None:
    return None if t is None else t[a:b]


__all__ = [
    "AfterCFGCallbackParams",
    "CFGDenoisedParams",
    "CFGDenoiser",
    "CFGDenoiserParams",
    "CFGHooks",
    "CFGPolicy",
    "pad_tokens_to",
]
