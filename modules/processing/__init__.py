"""processing package: the generation pipeline (`run_txt2img`, `run_img2img` in `modules.processing.run`).

For old A1111 scripts, `from modules.processing import process_images, Processed` works:

* `process_images(p)` runs the pipeline on `p` from inside a running job (a selected script's `run()`); it is the
  same function `modules.extensions.api.process_images` reaches. Outside a job it raises a clear error.
* `Processed(p, images_list, seed=-1, info="", ...)` builds a `GenerationResult` the A1111 way (scripts that
  assemble their own result, e.g. loopback-style scripts, construct it like this).

Both import the pipeline lazily so that importing this package stays cheap and free of import cycles.

A1111 names extensions use (docs/extensions.md): `StableDiffusionProcessing`, `StableDiffusionProcessingTxt2Img`,
`StableDiffusionProcessingImg2Img` are the job parameter classes `p` is an instance of (`isinstance` checks work;
A1111-only constructor arguments such as `sd_model=` or `outpath_samples=` are not taken); `fix_seed(p)` turns
-1 seeds into random ones; `create_infotext(p, ...)` is the running job's infotext (see its docstring).
"""

from __future__ import annotations

from typing import Any

from modules.processing.context import GenerationResult
from modules.processing.params import GenerationParams, Img2ImgParams, Txt2ImgParams
from modules.processing.seeds import resolve_seed

__all__ = ["Processed", "StableDiffusionProcessing", "StableDiffusionProcessingImg2Img",
           "StableDiffusionProcessingTxt2Img", "create_infotext", "fix_seed", "process_images"]

StableDiffusionProcessing = GenerationParams
StableDiffusionProcessingTxt2Img = Txt2ImgParams
StableDiffusionProcessingImg2Img = Img2ImgParams


def fix_seed(p: Any) -> None:
    """Replace -1 (or empty) `p.seed` / `p.subseed` by random seeds (A1111 `fix_seed`)."""
    p.seed = resolve_seed(p.seed)
    p.subseed = resolve_seed(p.subseed)


def create_infotext(p: Any, all_prompts: Any = None, all_seeds: Any = None, all_subseeds: Any = None,
                    comments: Any = None, iteration: int = 0, position_in_batch: int = 0, use_main_prompt: bool = False,
                    index: int | None = None, all_negative_prompts: Any = None) -> str:
    """The infotext of image `index` (default `iteration * batch_size + position_in_batch`) of the job `p` belongs
    to, built now from the job's parameters with the prompts/seeds lists given (A1111 `create_infotext`: what the
    image is saved with, including `p.extra_generation_params` scripts added so far; `use_main_prompt` takes the
    job's first prompts; `comments` is accepted and unused, as in A1111 1.10). Outside a running job it reads
    `p.infotexts` if a script set them, else "" ."""
    from modules.processing.infotext_binding import builder_of

    if index is None:
        index = position_in_batch + iteration * int(getattr(p, "batch_size", 1) or 1)
    builder = builder_of(p)
    if builder is not None:
        return builder(index, prompts=all_prompts, negative_prompts=all_negative_prompts, seeds=all_seeds,
                       subseeds=all_subseeds, use_main_prompt=use_main_prompt)
    infotexts = list(getattr(p, "infotexts", None) or [])
    return str(infotexts[index]) if 0 <= index < len(infotexts) else ""


def process_images(p: Any) -> GenerationResult:
    """Run the pipeline on `p` (A1111 `modules.processing.process_images`); only inside a running job."""
    from modules.processing.run import current_pipeline

    pipeline = current_pipeline()
    if pipeline is None:
        raise RuntimeError("modules.processing.process_images(p) can only be called while a job is running "
                           "(from a script's run()); start jobs with run_txt2img/run_img2img")
    return pipeline(p)


class Processed(GenerationResult):
    """A1111 `Processed(p, images_list, seed=-1, info="", subseed=None, all_prompts=None, all_negative_prompts=None,
    all_seeds=None, all_subseeds=None, index_of_first_image=0, infotexts=None, comments="")` as a
    `GenerationResult`."""

    def __init__(self, p: Any, images_list: list[Any], seed: int = -1, info: str = "", subseed: int | None = None,
                 all_prompts: list[str] | None = None, all_negative_prompts: list[str] | None = None,
                 all_seeds: list[int] | None = None, all_subseeds: list[int] | None = None,
                 index_of_first_image: int = 0, infotexts: list[str] | None = None, comments: str = "") -> None:
        super().__init__(
            images=list(images_list), infotexts=list(infotexts) if infotexts is not None else [info] * len(images_list),
            all_prompts=list(all_prompts or [getattr(p, "prompt", "")]),
            all_negative_prompts=list(all_negative_prompts or [getattr(p, "negative_prompt", "")]),
            all_seeds=list(all_seeds or [seed]), all_subseeds=list(all_subseeds or [subseed if subseed is not None
                                                                                    else seed]),
            index_of_first_image=index_of_first_image, width=int(getattr(p, "width", 0)),
            height=int(getattr(p, "height", 0)), sampler_name=str(getattr(p, "sampler_name", "") or ""),
            cfg_scale=float(getattr(p, "cfg_scale", 0.0)), steps=int(getattr(p, "steps", 0)), seed=seed,
            subseed=subseed if subseed is not None else -1,
            subseed_strength=float(getattr(p, "subseed_strength", 0.0)))
        self.comments = comments

    @property
    def info(self) -> str:
        """The first infotext (A1111 `Processed.info`)."""
        return self.infotexts[0] if self.infotexts else ""
