"""Shared set-up of the pipeline integration tests (imported by test_pipeline_*.py; holds no tests itself).

`make_ctx` builds an `AppContext` over symlinks to the tiny checkpoints with a RAM cache large enough that each
family is loaded from disk once per test module. Sizes are 32×32 (the tiny VAE downscales by 2: 16×16 latents).
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from modules.processing.context import AppContext
from modules.processing.params import Img2ImgParams, Txt2ImgParams
from modules.runtime.job_state import JobState
from tests.fixtures.app_context import context_for


def make_ctx(tiny_checkpoint: Any, root: Path, families: dict[str, tuple[str, int]], args: Sequence[str] = ()
             ) -> AppContext:
    """The app's context (composition root) whose model folder holds `name.safetensors` → tiny (family, seed) for
    each entry of `families`."""
    return context_for(root, {name: tiny_checkpoint(family, seed=seed) for name, (family, seed) in families.items()},
                       args=args)


def new_job() -> types.SimpleNamespace:
    state = JobState("test")
    state.begin()
    return types.SimpleNamespace(state=state)


def t2i(model: str, **kw: Any) -> Txt2ImgParams:
    base: dict[str, Any] = dict(prompt="a cat", negative_prompt="blurry", width=32, height=32, steps=2, seed=7,
                                sampler_name="Euler", do_not_save_samples=True,
                                override_settings={"sd_model_checkpoint": model})
    base.update(kw)
    return Txt2ImgParams(**base)


def i2i(model: str, **kw: Any) -> Img2ImgParams:
    base: dict[str, Any] = dict(prompt="a dog", init_images=[init_image()], width=32, height=32, steps=2, seed=3,
                                sampler_name="Euler", denoising_strength=0.9, do_not_save_samples=True,
                                override_settings={"sd_model_checkpoint": model})
    base.update(kw)
    return Img2ImgParams(**base)


def init_image(size: tuple[int, int] = (32, 32)) -> Image.Image:
    image = Image.new("RGB", size, (200, 40, 40))
    ImageDraw.Draw(image).ellipse((4, 4, size[0] - 6, size[1] - 6), fill=(20, 180, 60))
    return image


def square_mask(size: int = 32, box: tuple[int, int, int, int] = (8, 8, 23, 23)) -> Image.Image:
    mask = Image.new("L", (size, size))
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)
