"""processing package: the generation pipeline (`run_txt2img`, `run_img2img` in `modules.processing.run`).

For old A1111 scripts, `from modules.processing import process_images, Processed` works:

* `process_images(p)` runs the pipeline on `p` from inside a running job (a selected script's `run()`); it is the
  same function `modules.extensions.api.process_images` reaches. Outside a job it raises a clear error.
* `Processed(p, images_list, seed=-1, info="", ...)` builds a `GenerationResult` the A1111 way (scripts that
  assemble their own result, e.g. loopback-style scripts, construct it like this).

Both import the pipeline lazily so that importing this package stays cheap and free of import cycles.
"""

from __future__ import annotations

from typing import Any

from modules.processing.context import GenerationResult

__all__ = ["Processed", "process_images"]


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
