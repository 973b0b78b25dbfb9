"""A1111 fidelity of the generation pipeline on the tiny checkpoints: prompt comments, SDXL's zeroed empty negative
prompt and an honest `Face restoration` infotext (A1111 reference §2 prompt syntax, §3.4, §6 settings).

Decoded-pixel truncation and the UNet's odd-size order are covered in tests/unit/test_decoded_pixels.py and
tests/unit/test_unet_parity.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from modules.extensions.callbacks import CallbackRegistry
from modules.images import parse_infotext
from modules.processing.context import AppContext
from modules.processing.run import run_txt2img
from tests.integration.test_pipeline_helpers import make_ctx, new_job, pixels, t2i

SDXL_SIZE_EMBED = 256
"""Width of each SDXL size/crop number's embedding (SGM `ConcatTimestepEmbedderND`); the tiny SDXL keeps it."""


@pytest.fixture(scope="module")
def ctx(tiny_checkpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    root = tmp_path_factory.mktemp("fidelity")
    weights = root / "models" / "Codeformer"
    weights.mkdir(parents=True)
    (weights / "codeformer-v0.1.0.pth").write_bytes(b"weights a user put there")  # found, never loaded
    return make_ctx(tiny_checkpoint, root, {"sd1": ("sd1", 0), "sdxl": ("sdxl", 0)})


def test_prompt_comments_are_neither_encoded_nor_written_to_the_infotext(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("sd1", prompt="a cat", negative_prompt="blurry"), new_job())
    commented = t2i("sd1", prompt="# my note\na cat # tail note", negative_prompt="blurry # neg note")
    stripped = run_txt2img(ctx, commented, new_job())
    assert np.array_equal(pixels(stripped.images[0]), pixels(plain.images[0]))
    assert "note" not in stripped.infotexts[0]
    assert stripped.all_prompts == ["\na cat \n"] and stripped.all_negative_prompts == ["blurry \n"]
    fields = parse_infotext(stripped.infotexts[0])
    assert fields["Prompt"].strip() == "a cat" and fields["Negative prompt"].strip() == "blurry"


def test_prompt_comments_setting_off_keeps_the_text(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("sd1", prompt="a cat"), new_job())
    off = {"sd_model_checkpoint": "sd1", "enable_prompt_comments": False}
    kept = run_txt2img(ctx, t2i("sd1", prompt="a cat # tail note", override_settings=off), new_job())
    assert "a cat # tail note" in kept.infotexts[0]
    assert not np.array_equal(pixels(kept.images[0]), pixels(plain.images[0]))


def _first_uncond(ctx: AppContext, negative: str) -> dict[str, torch.Tensor]:
    """The negative-prompt cond the sampler gets at the first step of an SDXL job (`cfg_denoiser` callback)."""
    seen: list[dict[str, torch.Tensor]] = []
    registry = CallbackRegistry()
    registry.add("cfg_denoiser", lambda params: seen.append(params.text_uncond))
    run_txt2img(dataclasses.replace(ctx, callbacks=registry), t2i("sdxl", negative_prompt=negative, steps=1),
                new_job())
    return seen[0]


def test_sdxl_empty_negative_prompt_is_zeroed_but_keeps_its_size_embedding(ctx: AppContext) -> None:
    empty = _first_uncond(ctx, "")
    pooled = empty["vector"].shape[-1] - 6 * SDXL_SIZE_EMBED
    assert pooled > 0
    assert empty["crossattn"].eq(0).all()
    assert empty["vector"][:, :pooled].eq(0).all()
    assert empty["vector"][:, pooled:].abs().sum() > 0  # original/crop/target size embeddings stay
    blurry = _first_uncond(ctx, "blurry")
    assert blurry["crossattn"].abs().sum() > 0 and blurry["vector"][:, :pooled].abs().sum() > 0
    assert torch.equal(blurry["vector"][:, pooled:], empty["vector"][:, pooled:])


def test_sdxl_negative_prompt_with_an_edited_empty_part_is_not_zeroed(ctx: AppContext) -> None:
    """A1111 zeroes per prompt when *all* its scheduled texts are empty: `[blurry::1]` is "blurry" then ""."""
    edited = _first_uncond(ctx, "[blurry::1]")
    assert edited["crossattn"].abs().sum() > 0


def test_restore_faces_without_a_restored_face_claims_nothing(ctx: AppContext) -> None:
    plain = run_txt2img(ctx, t2i("sd1"), new_job())
    registry = ctx.face_restorers
    try:
        registry.detector = lambda image: []  # the detector finds no face in this picture
        asked = run_txt2img(ctx, t2i("sd1", restore_faces=True), new_job())
    finally:
        registry.detector = None
    assert "Face restoration" not in asked.infotexts[0]
    assert any("no faces found" in notice for notice in asked.notices)
    assert np.array_equal(pixels(asked.images[0]), pixels(plain.images[0]))


def test_restore_faces_is_written_when_the_restorer_changed_the_image(ctx: AppContext) -> None:
    registry = ctx.face_restorers
    assert registry.detector is None
    try:
        registry.detector = lambda image: [(0, 0, image.width, image.height)]
        restorer = registry.get_restorer("CodeFormer")
        restorer.restore_face = lambda face, weight=0.5: face.point(lambda v: 255 - v)  # type: ignore[method-assign]
        restored = run_txt2img(ctx, t2i("sd1", restore_faces=True), new_job())
    finally:
        registry.detector = None
        del restorer.restore_face
    assert parse_infotext(restored.infotexts[0])["Face restoration"] == "CodeFormer"
