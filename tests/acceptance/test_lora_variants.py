"""OFT, BOFT, GLoRA and DoRA network files in `models/Lora` act on txt2img through the API, in kohya and LyCORIS
key layouts, and `lora_functional` gives the same image as merging.

Files are tiny random networks for the tiny SD1 model in the exact key layouts A1111 reads
(`extensions-builtin/Lora/network_oft.py`, `network_glora.py`, `network.py` `dora_scale`): kohya OFT
(`oft_unet_<diffusers name>.oft_blocks` + `alpha`), LyCORIS BOFT (`lora_unet_….oft_blocks` of rank 4), old LyCORIS
OFT (`lora_te_….oft_diag`), LyCORIS GLoRA (`….a1.weight`, `a2`, `b1`, `b2`, `alpha`) and kohya LoRA + `dora_scale`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png

TO_K = "down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"  # [64, 128] (context 128)
PROJ_IN = "mid_block_attentions_0_proj_in"  # 1×1 conv [128, 128, 1, 1]
TE_Q = "text_model_encoder_layers_0_self_attn_q_proj"  # [128, 128]


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _orthogonal_blocks(num: int, size: int, seed: int) -> torch.Tensor:
    return torch.stack([torch.linalg.qr(_randn(size, size, seed=seed + i))[0] for i in range(num)])


NETWORKS: dict[str, dict[str, torch.Tensor]] = {
    "oftkohya": {
        f"oft_unet_{TO_K}.oft_blocks": _randn(4, 16, 16, seed=1, scale=0.3), f"oft_unet_{TO_K}.alpha": torch.tensor(1.0),
        f"oft_unet_{PROJ_IN}.oft_blocks": _randn(8, 16, 16, seed=2, scale=0.3),
        f"oft_unet_{PROJ_IN}.alpha": torch.tensor(1.0),
    },
    "boftlyco": {
        f"lora_unet_{PROJ_IN}.oft_blocks": _randn(2, 16, 8, 8, seed=3, scale=0.3),
        f"lora_te_{TE_Q}.oft_diag": _orthogonal_blocks(8, 16, seed=4),
    },
    "glora": {
        f"lora_unet_{TO_K}.a1.weight": _randn(4, 128, seed=5, scale=0.2),
        f"lora_unet_{TO_K}.a2.weight": _randn(128, 4, seed=6, scale=0.2),
        f"lora_unet_{TO_K}.b1.weight": _randn(4, 128, seed=7, scale=0.3),
        f"lora_unet_{TO_K}.b2.weight": _randn(64, 4, seed=8, scale=0.3),
        f"lora_unet_{TO_K}.alpha": torch.tensor(4.0),
        f"lora_te_{TE_Q}.a1.weight": _randn(4, 128, seed=9, scale=0.2),
        f"lora_te_{TE_Q}.a2.weight": _randn(128, 4, seed=10, scale=0.2),
        f"lora_te_{TE_Q}.b1.weight": _randn(4, 128, seed=11, scale=0.3),
        f"lora_te_{TE_Q}.b2.weight": _randn(128, 4, seed=12, scale=0.3),
        f"lora_te_{TE_Q}.alpha": torch.tensor(4.0),
    },
    "dora": {
        f"lora_unet_{TO_K}.lora_down.weight": _randn(4, 128, seed=13, scale=0.3),
        f"lora_unet_{TO_K}.lora_up.weight": _randn(64, 4, seed=14, scale=0.3),
        f"lora_unet_{TO_K}.alpha": torch.tensor(4.0),
        f"lora_unet_{TO_K}.dora_scale": torch.rand(1, 128, generator=torch.Generator().manual_seed(15)) + 1.0,
        f"lora_unet_{PROJ_IN}.lora_down.weight": _randn(4, 128, 1, 1, seed=16, scale=0.3),
        f"lora_unet_{PROJ_IN}.lora_up.weight": _randn(128, 4, 1, 1, seed=17, scale=0.3),
        f"lora_unet_{PROJ_IN}.dora_scale": torch.rand(1, 128, 1, 1, generator=torch.Generator().manual_seed(18)) + 1,
    },
}


def write_networks(data: Path) -> None:
    """The variant files in the data dir's `models/Lora`."""
    folder = data / "models" / "Lora"
    folder.mkdir(parents=True, exist_ok=True)
    for name, tensors in NETWORKS.items():
        save_file(tensors, str(folder / f"{name}.safetensors"))


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    running = webui_app(["--api"], prepare=write_networks)
    running.wait_for_model()
    yield running


def generate(app: RunningApp, prompt: str, **payload: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """(pixels of the first image, the info JSON)."""
    data = app.txt2img(prompt=prompt, steps=3, **payload)
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])


@pytest.mark.parametrize("name", list(NETWORKS))
def test_variant_file_changes_the_image_only_when_present(app: RunningApp, name: str) -> None:
    base, _ = generate(app, "a cat")
    used, info = generate(app, f"a cat <lora:{name}:0.7>")
    assert not any("skipped" in n or "didn't match" in n for n in info.get("notices", [])), info.get("notices")
    assert f"Lora hashes: \"{name}: " in info["infotexts"][0]
    assert np.abs(used - base).max() > 3, f"{name} did not change the image"
    absent, info = generate(app, f"a cat <lora:{name}missing:0.7>")
    assert any("Networks not found" in n for n in info.get("notices", []))
    assert np.array_equal(absent, base)


def test_lora_functional_gives_the_merged_image(webui_app: WebUIFactory) -> None:
    """In 32-bit floats (`--no-half`) both paths agree up to rounding: the forward term adds ``op(x, ΔW)`` to
    ``op(x, W)`` where merging computes ``op(x, W + ΔW)``. (In half precision the merged weight is rounded to the
    model's dtype and the two differ by that rounding, as A1111's note on the setting says.)"""
    app = webui_app(["--api", "--no-half"], prepare=write_networks)
    app.wait_for_model()
    prompt = "a cat <lora:dora:0.7> <lora:glora:0.5> <lora:oftkohya:1> <lora:boftlyco:0.6>"
    base, _ = generate(app, "a cat")
    merged, _ = generate(app, prompt, override_settings={"lora_functional": False})
    functional, _ = generate(app, prompt, override_settings={"lora_functional": True})
    effect, gap = np.abs(merged - base), np.abs(functional - merged)
    assert effect.mean() > 3 and gap.max() <= 2, (gap.max(), gap.mean(), effect.mean())
