"""`modules.processing.create_infotext(p, ...)` for scripts: the real infotext of the running job.

A1111 builds the infotext from `p` whenever a script asks (`create_infotext(p, p.all_prompts, p.all_seeds,
p.all_subseeds, comments, iteration, position_in_batch, use_main_prompt=, index=, all_negative_prompts=)`); scripts
call it from `postprocess_image`/`postprocess_batch` to write an image with the job's parameters, and the answer
includes what they put in `p.extra_generation_params` so far. Here the job binds its own infotext builder to `p`
once the sampler and schedule are known, and `create_infotext` calls it with the lists the script passes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol

from modules.processing.job import Job

BUILDER_ATTRIBUTE = "_webui_infotext_builder"
"""The attribute of `p` that holds the job's builder (set by `bind_infotext`)."""


class InfotextBuilder(Protocol):
    def __call__(self, index: int, *, prompts: Sequence[str] | None = None,
                 negative_prompts: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
                 subseeds: Sequence[int] | None = None, use_main_prompt: bool = False) -> str: ...


def _pick(given: Sequence[Any] | None, own: list[Any], index: int) -> list[Any]:
    """The script's list when it has an entry for `index`, else the job's."""
    return list(given) if given is not None and 0 <= index < len(given) else own


def bind_infotext(run: Job, spec: Any, schedule: str | None) -> None:
    """Give `run.params` the builder `create_infotext` calls (image `index`, A1111's list arguments)."""
    def build(index: int, *, prompts: Sequence[str] | None = None, negative_prompts: Sequence[str] | None = None,
              seeds: Sequence[int] | None = None, subseeds: Sequence[int] | None = None,
              use_main_prompt: bool = False) -> str:
        view = copy.copy(run)
        view.prompts = _pick(prompts, run.prompts, index)
        view.negative_prompts = _pick(negative_prompts, run.negative_prompts, index)
        view.seeds = _pick(seeds, run.seeds, index)
        view.subseeds = _pick(subseeds, run.subseeds, index)
        if use_main_prompt:  # A1111 `p.main_prompt` / `p.main_negative_prompt`: the first image's prompts
            view.prompts = [run.prompts[0]] * max(len(view.prompts), index + 1)
            view.negative_prompts = [run.negative_prompts[0]] * max(len(view.negative_prompts), index + 1)
        index = min(max(index, 0), len(view.seeds) - 1)
        return view.infotext(index, spec, schedule)

    setattr(run.params, BUILDER_ATTRIBUTE, build)


def builder_of(p: Any) -> InfotextBuilder | None:
    """The infotext builder of the job `p` belongs to, or None outside a job."""
    builder = getattr(p, BUILDER_ATTRIBUTE, None)
    return builder if callable(builder) else None
