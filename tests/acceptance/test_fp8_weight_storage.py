"""FP8 weight storage through the app (A1111 1.8 settings "FP8 weight" `fp8_storage` and "Cache FP16 weight for
LoRA" `cache_fp16_weight`): the UNet's Linear/Conv2d weights are stored as float8_e4m3fn — the load line the user
reads in the console says how many bytes they take before and after — and the image stays close to the unconverted
one. Switching the setting back reads the checkpoint again and gives the original image bit for bit (A1111 reloads
when `check_fp8` changes). With a LoRA, "Cache FP16 weight" patches from the kept fp16 copy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png

FP8_LINE = re.compile(r"FP8 weight: (\d+) Linear/Conv2d layers stored as float8_e4m3fn, computed in (\w+); "
                      r"UNet weights ([\d.]+) MiB -> ([\d.]+) MiB(, FP16 copies kept for LoRA)?")
TO_K = "down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"  # [64, 128] in the tiny SD1 UNet
PROJ_IN = "mid_block_attentions_0_proj_in"  # 1×1 conv [128, 128, 1, 1]


def _randn(*shape: int, seed: int, scale: float) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def write_lora(data: Path) -> None:
    """A kohya-layout LoRA for the tiny SD1 model in `models/Lora/small.safetensors`."""
    folder = data / "models" / "Lora"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({f"lora_unet_{TO_K}.lora_down.weight": _randn(4, 128, seed=1, scale=0.3),
               f"lora_unet_{TO_K}.lora_up.weight": _randn(64, 4, seed=2, scale=0.3),
               f"lora_unet_{TO_K}.alpha": torch.tensor(4.0),
               f"lora_unet_{PROJ_IN}.lora_down.weight": _randn(4, 128, 1, 1, seed=3, scale=0.3),
               f"lora_unet_{PROJ_IN}.lora_up.weight": _randn(128, 4, 1, 1, seed=4, scale=0.3),
               f"lora_unet_{PROJ_IN}.alpha": torch.tensor(4.0)}, str(folder / "small.safetensors"))


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    running = webui_app(["--api"], prepare=write_lora)
    running.wait_for_model()
    yield running


def generate(app: RunningApp, prompt: str = "a cat", **settings: Any) -> np.ndarray:
    data = app.txt2img(prompt=prompt, steps=3, override_settings=settings)
    assert not json.loads(data["info"]).get("notices"), data["info"]
    return np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)


def fp8_lines(app: RunningApp) -> list[re.Match[str]]:
    return list(FP8_LINE.finditer(app.console))


def test_fp8_halves_the_unet_weights_and_keeps_the_image_close(app: RunningApp) -> None:
    base = generate(app)
    assert not fp8_lines(app)  # "Disable" is the default
    assert np.array_equal(generate(app, fp8_storage="Enable for SDXL"), base)  # SD1: not converted
    assert not fp8_lines(app)
    fp8 = generate(app, fp8_storage="Enable")
    (line,) = fp8_lines(app)
    before, after = float(line.group(3)), float(line.group(4))
    assert int(line.group(1)) > 0 and after <= 0.6 * before, line.group(0)  # 16-bit weights -> 8-bit
    diff = np.abs(fp8 - base)
    assert 0 < diff.mean() < 12, diff.mean()  # rounded weights: a close, not identical, image
    assert np.array_equal(generate(app), base)  # back to "Disable": read again, bit-identical
    app.client.post("/sdapi/v1/options", json={"fp8_storage": "Enable"}).raise_for_status()
    assert np.array_equal(generate(app), fp8)  # the global setting acts like the per-job override
    app.client.post("/sdapi/v1/options", json={"fp8_storage": "Disable"}).raise_for_status()


def test_cache_fp16_weight_patches_lora_from_the_fp16_copy(app: RunningApp) -> None:
    prompt = "a cat <lora:small:1>"
    plain_lora = generate(app, prompt)
    assert np.abs(plain_lora - generate(app)).mean() > 1  # the LoRA acts
    rounded = generate(app, prompt, fp8_storage="Enable")
    cached = generate(app, prompt, fp8_storage="Enable", cache_fp16_weight=True)
    assert fp8_lines(app)[-1].group(5)  # the load line says the fp16 copies are kept
    assert not np.array_equal(cached, rounded)  # LoRA went onto the fp16 copy, not onto the fp8-rounded weight
    assert np.abs(cached - plain_lora).mean() < 12
