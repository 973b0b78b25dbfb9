"""Hires checkpoint, override restore, ✨ firstpass_image, img2img batch folders, SDXL-inpaint, soft inpainting,
restore faces, Model hash, hires latent factor — on the tiny checkpoints (A1111 reference §3.3, §4, §8)."""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from modules.images import parse_infotext, read_infotext
from modules.processing.context import AppContext
from modules.processing.hires import hires_target, upscale_latent
from modules.processing.img2img_batch import Img2ImgBatchSpec, run_img2img_batch
from modules.processing.run import run_img2img, run_txt2img
from modules.processing.soft_inpainting import (
    SoftInpaintingSettings,
    latent_blend,
    settings_from_params,
    step_mask,
)
from tests.integration.test_pipeline_helpers import i2i, init_image, make_ctx, new_job, pixels, square_mask, t2i

SOFT = {"soft inpainting": {"args": [True, 1.0, 0.5, 4.0, 0.0, 0.5, 2.0]}}


@pytest.fixture(scope="module")
def ctx(tiny_checkpoint: Any, tmp_path_factory: pytest.TempPathFactory) -> AppContext:
    return make_ctx(tiny_checkpoint, tmp_path_factory.mktemp("features"),
                    {"sd1": ("sd1", 0), "sd1b": ("sd1", 1), "sdxl-inpaint": ("sdxl-inpaint", 0)})


def test_model_hash_in_first_infotext(tiny_checkpoint: Any, tmp_path: Path) -> None:
    hashed = make_ctx(tiny_checkpoint, tmp_path, {"sd1": ("sd1", 0)})
    result = run_txt2img(hashed, t2i("sd1"), new_job())
    assert re.search(r"Model hash: [0-9a-f]{10}, Model: sd1", result.infotexts[0])
    assert result.sd_model_hash


def test_override_checkpoint_restored_afterwards_or_kept(ctx: AppContext) -> None:
    ctx.models.load("sd1")
    run_txt2img(ctx, t2i("sd1b"), new_job())
    assert ctx.models.current.checkpoint.model_name == "sd1"
    run_txt2img(ctx, t2i("sd1b", override_settings={"sd_model_checkpoint": "sd1b", "CLIP_stop_at_last_layers": 2},
                         override_settings_restore_afterwards=False), new_job())
    assert ctx.models.current.checkpoint.model_name == "sd1b"
    assert ctx.settings.get("CLIP_stop_at_last_layers") == 2
    ctx.settings.set("CLIP_stop_at_last_layers", 1)
    ctx.models.load("sd1")


def test_hires_checkpoint_switches_for_the_second_pass_and_back(ctx: AppContext) -> None:
    ctx.models.load("sd1")
    hires = dict(enable_hr=True, hr_scale=1.5, hr_second_pass_steps=2, denoising_strength=0.6, batch_size=1, n_iter=2)
    same = run_txt2img(ctx, t2i("sd1", **hires), new_job())
    other = run_txt2img(ctx, t2i("sd1", hr_checkpoint_name="sd1b", **hires), new_job())
    assert other.images[1].size == (48, 48)
    assert parse_infotext(other.infotexts[1])["Hires checkpoint"] == "sd1b"
    assert parse_infotext(other.infotexts[1])["Model"] == "sd1"
    assert not np.array_equal(pixels(same.images[1]), pixels(other.images[1]))
    assert ctx.models.current.checkpoint.model_name == "sd1"


def test_firstpass_image_runs_only_the_hires_pass(ctx: AppContext) -> None:
    calls: list[int] = []
    registry = types.SimpleNamespace(fire=lambda category, *a: calls.append(1) if category == "cfg_denoiser" else None)
    counted = dataclasses.replace(ctx, callbacks=registry)
    for upscaler in ("Latent", "Lanczos"):
        calls.clear()
        params = t2i("sd1", enable_hr=True, firstpass_image=init_image(), hr_scale=1.5, hr_upscaler=upscaler,
                     hr_second_pass_steps=3, denoising_strength=0.3)
        first = run_txt2img(counted, params, new_job())
        assert len(calls) == 3  # the hires steps only: no first pass
        assert first.images[0].size == (48, 48)
        again = run_txt2img(counted, params, new_job())
        assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    # the given image is what gets upscaled (random-weight VAE: compare outputs, not the picture itself)
    mirrored = run_txt2img(counted, dataclasses.replace(params, firstpass_image=ImageOps.mirror(init_image())),
                           new_job())
    assert not np.array_equal(pixels(first.images[0]), pixels(mirrored.images[0]))
    assert "Hires upscale: 1.5" in first.infotexts[0]


def test_img2img_batch_from_folders(ctx: AppContext, tmp_path: Path) -> None:
    inputs, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    inputs.mkdir()
    masks.mkdir()
    init_image().save(inputs / "a.png")
    ImageOps.mirror(init_image()).save(inputs / "b.png")
    init_image().save(inputs / "c.jpg")
    (inputs / "notes.txt").write_text("not an image")
    square_mask().save(masks / "a.png")
    square_mask(box=(0, 0, 15, 31)).save(masks / "b.webp")
    before = sorted(Path(ctx.paths.data_dir).rglob("*.png"))
    params = i2i("sd1", batch_size=2, mask_blur=0, inpainting_fill=1, inpaint_full_res=False,
                 do_not_save_samples=False)
    outcome = run_img2img_batch(ctx, params, Img2ImgBatchSpec(str(inputs), str(out), str(masks)), new_job())
    assert sorted(Path(p).name for p in outcome.written) == ["a-1.png", "a.png", "b-1.png", "b.png"]
    assert any("c.jpg" in n for n in outcome.notices)  # no mask for c: skipped
    assert sorted(Path(ctx.paths.data_dir).rglob("*.png")) == before  # output folder given: not saved normally
    written = Image.open(out / "a.png")
    assert "Denoising strength: 0.9" in read_infotext(written)
    assert np.array_equal(pixels(written)[:6], pixels(init_image())[:6])  # outside a's mask: the original
    plain = run_img2img_batch(ctx, dataclasses.replace(params, batch_size=1, do_not_save_samples=True),
                              Img2ImgBatchSpec(str(inputs)), new_job())
    assert len(plain.results) == 3 and not plain.written


def test_sdxl_inpaint_family_end_to_end(ctx: AppContext) -> None:
    text = run_txt2img(ctx, t2i("sdxl-inpaint"), new_job())
    assert text.images[0].size == (32, 32) and pixels(text.images[0]).std() > 0
    result = run_img2img(ctx, i2i("sdxl-inpaint", mask=square_mask(), mask_blur=0, inpainting_fill=1,
                                  inpaint_full_res=False), new_job())
    out = pixels(result.images[0])
    assert np.array_equal(out[:6], pixels(init_image())[:6])
    assert np.abs(out[10:22, 10:22] - pixels(init_image())[10:22, 10:22]).max() > 0
    assert "Conditional mask weight: 1" in result.infotexts[0] and "Model: sdxl-inpaint" in result.infotexts[0]


def test_soft_inpainting_blend_maths() -> None:
    s = SoftInpaintingSettings()
    a, b = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3) * 3
    assert torch.allclose(latent_blend(s, a, b, torch.zeros(1, 1, 3, 3)), a, atol=1e-4)
    assert torch.allclose(latent_blend(s, a, b, torch.ones(1, 1, 3, 3)), b, atol=1e-4)
    half = latent_blend(s, a, b, torch.full((1, 1, 3, 3), 0.5))
    expected = ((a.norm(dim=1) ** 4 + b.norm(dim=1) ** 4) / 2) ** 0.25
    assert torch.allclose(half.norm(dim=1), expected, rtol=1e-3)
    nmask = torch.tensor([[[[0.0, 0.5, 1.0]]]])
    assert torch.allclose(step_mask(s, nmask, torch.tensor([4.0])), nmask ** 2.0)  # 4^1 * 0.5
    assert settings_from_params(types.SimpleNamespace(alwayson_scripts={})) is None
    assert settings_from_params(types.SimpleNamespace(alwayson_scripts={"Soft Inpainting": {"args": [False]}})) is None
    with pytest.raises(ValueError, match="Transition contrast boost"):
        settings_from_params(types.SimpleNamespace(alwayson_scripts={"soft inpainting": [True, 1, 0.5, 0]}))


def test_soft_inpainting_end_to_end(ctx: AppContext) -> None:
    mask = square_mask().resize((32, 32))
    hard = run_img2img(ctx, i2i("sd1", mask=mask, mask_blur=4, inpainting_fill=1, inpaint_full_res=False),
                       new_job())
    params = i2i("sd1", mask=mask, mask_blur=4, inpainting_fill=1, inpaint_full_res=False, alwayson_scripts=SOFT)
    soft = run_img2img(ctx, params, new_job())
    again = run_img2img(ctx, params, new_job())
    fields = parse_infotext(soft.infotexts[0])
    assert fields["Soft inpainting enabled"] == "True" and fields["Transition contrast boost"] == "4"
    assert np.array_equal(pixels(soft.images[0]), pixels(again.images[0]))
    assert not np.array_equal(pixels(soft.images[0]), pixels(hard.images[0]))
    corner = np.abs(pixels(soft.images[0])[:3, :3] - pixels(init_image())[:3, :3]).max()
    assert corner <= 8  # far from the mask the original stays


def test_restore_faces_uses_the_registry_or_reports(ctx: AppContext) -> None:
    class Restorers:
        def restore(self, image: Image.Image, name: str, **kw: Any) -> Any:
            return types.SimpleNamespace(image=ImageOps.invert(image.convert("RGB")), notices=[])

    plain = run_txt2img(ctx, t2i("sd1"), new_job())
    restored = run_txt2img(dataclasses.replace(ctx, face_restorers=Restorers()),
                           t2i("sd1", restore_faces=True), new_job())
    assert (pixels(plain.images[0]) + pixels(restored.images[0]) == 255).all()
    assert "Face restoration: CodeFormer" in restored.infotexts[0]
    skipped = run_txt2img(ctx, t2i("sd1", restore_faces=True), new_job())  # no restorer weights installed
    assert any("Restore faces" in n for n in skipped.notices), skipped.notices
    assert "Face restoration" not in skipped.infotexts[0]
    assert np.array_equal(pixels(skipped.images[0]), pixels(plain.images[0]))


def test_hires_target_uses_the_vae_factor() -> None:
    t = hires_target(32, 32, 1.0, 40, 32, factor=2)  # cover 40x40, crop 8 px = 4 latent rows of a /2 VAE
    assert (t.truncate_x, t.truncate_y, t.final_size) == (0, 4, (40, 32))
    out = upscale_latent(torch.zeros(1, 4, 16, 16), "Latent", t)
    assert out.shape[-2:] == (16, 20)
    with pytest.raises(ValueError, match="latent factor"):
        hires_target(32, 32, 1.0, 0, 0, factor=0)
