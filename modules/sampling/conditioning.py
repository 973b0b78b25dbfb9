"""Scheduled and composable conditioning, as the CFG denoiser consumes it.

A *cond* is a dict of tensors for one image without a batch dimension, e.g. ``{"crossattn": (77k, 768)}`` for SD1
or ``{"crossattn": (77k, 2048), "vector": (2816,)}`` for SDXL.

Prompt editing (A1111 ``[from:to:when]``) turns one prompt into a :class:`CondSchedule`: entries
``(end_at_step, cond)`` sorted by step; at sampling step s the first entry with ``s <= end_at_step`` is used
(A1111 ``prompt_parser.reconstruct_cond_batch``). Composable diffusion (A1111 ``AND`` with ``:weight``;
Liu et al. 2022, "Compositional Visual Generation with Composable Diffusion Models") gives each image several
weighted schedules: a :class:`MultiCond`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
Cond = dict[str, Tensor]


@dataclass(frozen=True)
class ScheduledCond:
    """One prompt-editing segment: ``cond`` applies up to and including sampling step ``end_at_step``."""

    end_at_step: int
    cond: Cond


@dataclass(frozen=True)
class CondSchedule:
    """The conditioning of one prompt over the sampling steps (at least one entry, sorted by ``end_at_step``)."""

    entries: tuple[ScheduledCond, ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ValueError("a CondSchedule needs at least one (end_at_step, cond) entry")
        ends = [e.end_at_step for e in self.entries]
        if ends != sorted(ends):
            raise ValueError(f"CondSchedule entries must be sorted by end_at_step, got {ends}")
        keys = set(self.entries[0].cond)
        for e in self.entries:
            if set(e.cond) != keys:
                raise ValueError(f"every entry of a CondSchedule needs the same keys, got {sorted(keys)} and {sorted(e.cond)}")

    @classmethod
    def constant(cls, cond: Cond) -> CondSchedule:
        """A prompt without editing: one cond for every step."""
        return cls((ScheduledCond(end_at_step=2**31 - 1, cond=cond),))

    def at(self, step: int) -> Cond:
        """The cond in force at sampling ``step`` (the last entry once every end step has passed)."""
        for entry in self.entries:
            if step <= entry.end_at_step:
                return entry.cond
        return self.entries[-1].cond


@dataclass(frozen=True)
class WeightedCond:
    """One ``AND`` part of a prompt with its weight (A1111 ``a cat AND a dog :0.7``; default weight 1)."""

    schedule: CondSchedule
    weight: float = 1.0


@dataclass(frozen=True)
class MultiCond:
    """Per image of the batch, its list of weighted ``AND`` parts."""

    batch: tuple[tuple[WeightedCond, ...], ...]

    def __post_init__(self) -> None:
        if not self.batch or any(len(parts) == 0 for parts in self.batch):
            raise ValueError("MultiCond needs at least one weighted cond for every image")

    @classmethod
    def single(cls, schedules: Sequence[CondSchedule]) -> MultiCond:
        """One weight-1 part per image (a prompt without ``AND``)."""
        return cls(tuple((WeightedCond(s, 1.0),) for s in schedules))

    def __len__(self) -> int:
        return len(self.batch)


def pad_tokens_to(t: Tensor, length: int) -> Tensor:
    """Lengthen a (tokens, dim) cond to ``length`` tokens by repeating its last vector (A1111 does this when the
    images of one batch have prompts of different chunk counts)."""
    if t.shape[0] >= length:
        return t
    return torch.cat([t, t[-1:].expand(length - t.shape[0], *t.shape[1:])])


def stack_conds(conds: Sequence[Cond]) -> Cond:
    """Batch per-image conds into one dict; ``crossattn`` of different token counts is padded with the last token."""
    keys = list(conds[0])
    out: Cond = {}
    for key in keys:
        tensors = [c[key] for c in conds]
        if key == "crossattn" and len({t.shape[0] for t in tensors}) > 1:
            longest = max(t.shape[0] for t in tensors)
            tensors = [pad_tokens_to(t, longest) for t in tensors]
        out[key] = torch.stack(tensors)
    return out


def reconstruct_multicond(multi: MultiCond, step: int) -> tuple[list[list[tuple[int, float]]], Cond]:
    """Flatten a :class:`MultiCond` at ``step`` into stacked conds and, per image, ``[(row, weight), ...]``
    (A1111 ``reconstruct_multicond_batch``): rows are ordered image by image, part by part."""
    conds_list: list[list[tuple[int, float]]] = []
    rows: list[Cond] = []
    for parts in multi.batch:
        entry = []
        for part in parts:
            entry.append((len(rows), float(part.weight)))
            rows.append(part.schedule.at(step))
        conds_list.append(entry)
    return conds_list, stack_conds(rows)


def reconstruct_uncond(schedules: Sequence[CondSchedule], step: int) -> Cond:
    """Stacked negative-prompt conds at ``step`` (A1111 ``reconstruct_cond_batch``)."""
    return stack_conds([s.at(step) for s in schedules])
