"""Parameter objects handed to script hooks and callbacks, defined once for the pipeline and the plugin API.

They carry A1111's class and field names (`scripts.PostprocessImageArgs`, `script_callbacks.ImageSaveParams`, …)
so A1111-style scripts can read and replace their fields. They live in this low layer because both
`modules.processing` (which creates them) and `modules.extensions` (which publishes them) use them, and those two
packages do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PostprocessImageArgs:
    """`postprocess_image(p, pp)`: `pp.image` may be replaced (A1111 `scripts.PostprocessImageArgs`)."""

    image: Any
    index: int = 0


@dataclass
class PostprocessBatchListArgs:
    """`postprocess_batch_list(p, pp, batch_number=)`: `pp.images` may be edited (A1111 class of that name)."""

    images: list[Any]


@dataclass
class PostSampleArgs:
    """`post_sample(p, ps)`: `ps.samples` may be replaced (A1111 `scripts.PostSampleArgs`)."""

    samples: Any


@dataclass
class ImageSaveParams:
    """`before_image_saved` / `image_saved`: image, p, filename, pnginfo (A1111 `script_callbacks.ImageSaveParams`)."""

    image: Any
    p: Any
    filename: str
    pnginfo: dict[str, Any]


@dataclass
class ExtraNoiseParams:
    """`extra_noise`: noise, latent `x`, latent image `xi` (A1111 `script_callbacks.ExtraNoiseParams`)."""

    noise: Any
    x: Any
    xi: Any


@dataclass
class ImageGridLoopParams:
    """`image_grid`: images and layout before a grid is built; callbacks may change them (A1111 class name)."""

    imgs: list[Any]
    cols: int
    rows: int


@dataclass
class MaskBlendArgs:
    """`on_mask_blend(p, mba)` (A1111 `scripts.MaskBlendArgs`): inpainting blends the sampled latent with the
    original one. `current_latent` is the latent being blended (the denoised prediction during sampling, the samples
    at the end), `nmask` 1 where to regenerate, `mask` its inverse, `blended_latent` the blend so far (scripts may
    replace it: soft inpainting does); `denoiser` and `sigma` are set during sampling, None for the final blend
    (`is_final_blend`)."""

    current_latent: Any
    nmask: Any
    init_latent: Any
    mask: Any
    blended_latent: Any
    denoiser: Any = None
    sigma: Any = None

    @property
    def is_final_blend(self) -> bool:
        """True for the blend after sampling (A1111: `denoiser is None`)."""
        return self.denoiser is None


@dataclass
class PostprocessMaskOverlayArgs:
    """`postprocess_maskoverlay(p, ppmo)` (A1111 `scripts.PostProcessMaskOverlayArgs`): before the untouched pixels
    are laid over image `index` of the batch; `mask_for_overlay` ("L", white = generated) and `overlay_image`
    (RGBA original, transparent where generated) may be replaced."""

    index: int
    mask_for_overlay: Any
    overlay_image: Any


PostProcessMaskOverlayArgs = PostprocessMaskOverlayArgs
"""A1111's spelling of the class name."""


@dataclass
class PostprocessedImageSharedInfo:
    """What the Extras operations of one image tell each other (A1111 `scripts_postprocessing`): the size the
    upscale will produce, set before any `process` runs."""

    target_width: int | None = None
    target_height: int | None = None


class PostprocessedImage:
    """One image going through the Extras chain (A1111 `scripts_postprocessing.PostprocessedImage`): `image` (may
    be replaced), `info` (entries become the extras infotext), `extra_images` (more results: PIL images or
    `PostprocessedImage`s, saved beside it), `nametags` (file-name suffixes), `disable_processing` (later
    operations skip it), `caption` (written to `<file>.txt`), `shared` (`PostprocessedImageSharedInfo`)."""

    def __init__(self, image: Any) -> None:
        self.image = image
        self.info: dict[str, Any] = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images: list[Any] = []
        self.nametags: list[str] = []
        self.disable_processing = False
        self.caption: str | None = None

    def get_suffix(self, used_suffixes: dict[str, int] | None = None) -> str:
        """`-tag1-tag2` from the name tags, numbered when the same suffix was used before (`-tag-1`)."""
        used = {} if used_suffixes is None else used_suffixes
        suffix = "-".join(self.nametags)
        if suffix:
            suffix = "-" + suffix
        if suffix not in used:
            used[suffix] = 1
            return suffix
        count = used[suffix]
        used[suffix] = count + 1
        return f"{suffix}-{count}"

    def create_copy(self, new_image: Any, *, nametags: list[str] | None = None,
                    disable_processing: bool = False) -> PostprocessedImage:
        """A new image that shares this one's info and shared data, with its own name tags."""
        copy = PostprocessedImage(new_image)
        copy.info = dict(self.info)
        copy.shared = self.shared
        copy.nametags = list(self.nametags) + list(nametags or [])
        copy.disable_processing = disable_processing
        copy.caption = self.caption
        return copy
