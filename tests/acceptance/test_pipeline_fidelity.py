"""A1111 fidelity of the generation pipeline, driven only over HTTP (`/sdapi/v1/txt2img` with `--api`):
prompt comments, SDXL's zeroed empty negative prompt, 8-bit truncation of decoded pixels, sizes that are not a
multiple of the UNet's depth, and no `Face restoration` claim when no face was restored.

Exact tensors (the zeroed uncond, the UNet's order of operations) are checked in tests/integration/
test_pipeline_fidelity.py and tests/unit/test_unet_parity.py; here the user-visible result is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png

FLAT_VAE_OUTPUT = (2 * (511 / 512) - 1, 0.0, 2 * (1 / 256) - 1)
"""Decoder output per channel of the "flat" VAE: 255·(x + 1)/2 = 254.5…, 127.5, 0.99… — A1111 truncates them to
254, 127, 0 where rounding would give 255, 128, 1 (all three values are exact in fp16 and fp32)."""


def _write_flat_vae(checkpoint: Path, target: Path) -> None:
    """A standalone VAE (A1111 layout) from the checkpoint's own VAE whose decoder ends in a zero-weight conv with
    bias `FLAT_VAE_OUTPUT`, so every decoded pixel is exactly those three values."""
    state = load_file(str(checkpoint))
    vae = {k.removeprefix("first_stage_model."): v.clone() for k, v in state.items()
           if k.startswith("first_stage_model.")}
    vae["decoder.conv_out.weight"] = torch.zeros_like(vae["decoder.conv_out.weight"])
    vae["decoder.conv_out.bias"] = torch.tensor(FLAT_VAE_OUTPUT, dtype=vae["decoder.conv_out.bias"].dtype)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(vae, str(target))


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data: Path) -> None:
        _write_flat_vae(data / "models" / "Stable-diffusion" / "sd1.safetensors", data / "models" / "VAE" / "flat.safetensors")
        codeformer = data / "models" / "Codeformer"
        codeformer.mkdir(parents=True, exist_ok=True)
        (codeformer / "codeformer-v0.1.0.pth").write_bytes(b"a CodeFormer file the user put there")

    return webui_app(["--api"], checkpoints={"sd1.safetensors": "sd1", "sdxl.safetensors": "sdxl"}, prepare=prepare)


def _generate(app: RunningApp, model: str = "sd1", settings: dict[str, Any] | None = None,
              **payload: Any) -> tuple[np.ndarray, str]:
    """(pixels of the first image, its infotext) for a txt2img request on checkpoint `model`."""
    data = app.txt2img(override_settings={"sd_model_checkpoint": model, **(settings or {})}, **payload)
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])["infotexts"][0]


def test_prompt_comment_changes_neither_image_nor_infotext(app: RunningApp) -> None:
    plain, _ = _generate(app, prompt="a cat", negative_prompt="blurry")
    commented, info = _generate(app, prompt="a cat # my private note", negative_prompt="blurry # another note")
    assert np.array_equal(commented, plain)
    assert "note" not in info and "#" not in info
    kept, kept_info = _generate(app, settings={"enable_prompt_comments": False}, prompt="a cat # my private note")
    assert "a cat # my private note" in kept_info
    assert not np.array_equal(kept, plain)


def test_sdxl_empty_negative_prompt_is_not_an_encoded_empty_text(app: RunningApp) -> None:
    """SGM/A1111 zero the negative conditioning when the negative prompt is empty; a single space encodes exactly
    the tokens of an empty prompt but is not empty, so it is encoded and the pictures differ."""
    empty, _ = _generate(app, "sdxl", negative_prompt="", cfg_scale=7)
    space, _ = _generate(app, "sdxl", negative_prompt=" ", cfg_scale=7)
    again, _ = _generate(app, "sdxl", negative_prompt="", cfg_scale=7)
    assert np.array_equal(empty, again)
    assert not np.array_equal(empty, space)


def test_decoded_pixels_are_truncated_to_8_bits(app: RunningApp) -> None:
    pixels, info = _generate(app, settings={"sd_vae": "flat.safetensors"})
    assert "VAE: flat" in info
    assert pixels.reshape(-1, 3).min(axis=0).tolist() == [254, 127, 0]
    assert pixels.reshape(-1, 3).max(axis=0).tolist() == [254, 127, 0]


def test_hires_size_that_is_not_a_multiple_of_the_unet_depth_generates(app: RunningApp) -> None:
    """66×66 hires on the tiny SD1 (VAE /2): a 33-cell latent, downsampled to 17 and upsampled to 34, is resized to
    the 33-cell skip connection (A1111's multiple-of-8 sizes)."""
    data = app.txt2img(override_settings={"sd_model_checkpoint": "sd1"}, enable_hr=True, hr_resize_x=66,
                       hr_resize_y=66, hr_upscaler="Latent", hr_second_pass_steps=1, denoising_strength=0.5)
    assert decode_png(data["images"][0]).size == (66, 66)


def test_restore_faces_without_a_restored_face_is_not_claimed(app: RunningApp) -> None:
    plain, _ = _generate(app)
    asked, info = _generate(app, restore_faces=True)
    assert "Face restoration" not in info
    assert np.array_equal(asked, plain)
