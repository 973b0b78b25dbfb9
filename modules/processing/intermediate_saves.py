"""The extra files A1111 writes beside a job's results, each behind its own setting.

* `save_copy`: a copy of an image at an intermediate stage, saved like a sample (samples folder, file-name pattern,
  the image's infotext, `before_image_saved`/`image_saved` callbacks) with a suffix: "-before-highres-fix"
  (`save_images_before_highres_fix`), "-before-color-correction" (`save_images_before_color_correction`),
  "-mask" / "-mask-composite" (`save_mask` / `save_mask_composite`, saved even when samples are not).
  A1111 saves these only when the job saves samples (`p.save_samples()`: `samples_save` and not
  `do_not_save_samples`).
* `save_init_images`: with `save_init_img`, every img2img init image is written once per job to
  `outdir_init_images`, named by the MD5 of its pixels, with its own metadata and no infotext; the infotext gets
  "Init image hash" (A1111 `StableDiffusionProcessingImg2Img.init`, which does not look at `samples_save`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import Image

from modules.images import FilenameJob, info_items, output_dir, save_image
from modules.processing.conditioning import opt
from modules.processing.save_outputs import data_dir, flag_saving_options, save_hooked


def saving_settings(run: Any) -> dict[str, Any]:
    """The job's settings as a plain mapping plus the command-line saving options."""
    return {**dict(run.settings), **flag_saving_options(getattr(run.ctx, "flags", None))}


def filename_job(run: Any, i: int, spec: Any, schedule: str | None) -> FilenameJob:
    """What the file-name tokens of image `i` of the job refer to."""
    p = run.params
    return FilenameJob(
        prompt=run.prompts[i], negative_prompt=run.negative_prompts[i], styles=tuple(p.styles), steps=p.steps,
        cfg_scale=p.cfg_scale, sampler_name=spec.name, scheduler=schedule, model_name=run.model.checkpoint.model_name,
        model_hash=run.model_hash(), batch_size=p.batch_size, batch_index=i % p.batch_size, n_iter=p.n_iter,
        iteration=i // p.batch_size, all_seeds=tuple(run.seeds), job_timestamp=run.job.state.job_timestamp)


def save_copy(run: Any, image: Image.Image, i: int, suffix: str, *, always: bool = False) -> Path | None:
    """Save `image` as image `i` of the job with `suffix` after the name (see module docstring); None when the
    job does not save samples, unless `always` (A1111 saves the inpainting masks regardless)."""
    p = run.params
    if not always and (not opt(run.settings, "samples_save", True) or p.do_not_save_samples):
        return None
    spec, schedule = run.sampler(p.sampler_name, p.scheduler)
    settings = saving_settings(run)
    folder = output_dir(run.kind, settings, base_dir=data_dir(run.ctx))

    def save(im: Image.Image, info: str) -> Any:
        return save_image(im, folder, "", settings=settings, seed=run.seeds[i], prompt=run.prompts[i], info=info,
                          job=filename_job(run, i, spec, schedule), suffix=suffix)

    saved = save_hooked(run.hooks, p, image, folder, run.infotext(i, spec, schedule), save)
    return Path(saved.path)


def init_image_hash(image: Image.Image) -> str:
    """A1111's "Init image hash": MD5 of the image's raw pixel bytes."""
    return hashlib.md5(image.tobytes()).hexdigest()


def save_init_images(run: Any, images: list[Image.Image]) -> list[Path]:
    """With `save_init_img`: write each init image once per job (see module docstring); returns the paths."""
    if not opt(run.settings, "save_init_img", False) or "Init image hash" in run.extra_fields:
        return []
    settings = saving_settings(run)
    folder = data_dir(run.ctx) / str(opt(settings, "outdir_init_images", "outputs/init-images"))
    written = []
    for image in images:
        digest = init_image_hash(image)
        written.append(save_image(image, folder, "", settings=settings, forced_filename=digest,
                                  save_to_dirs=False, existing_info=info_items(image)).path)
        run.extra_fields["Init image hash"] = digest
    return written
