"""Compatibility settings a user changes over HTTP act on what the app returns (A1111 1.10 behaviour of each):
hires fix conds and refiner passes, incomplete images on interrupt, LoRA-bundled embeddings, the old emphasis
implementation, functional LoRA.

One app for the module; every test sets what it needs per request (`override_settings`) or through
`POST /sdapi/v1/options` and puts it back, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png
from tests.integration.test_extra_networks_pipeline import write_lora


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    def prepare(data: Path) -> None:
        (data / "models" / "Lora").mkdir(parents=True, exist_ok=True)
        write_lora(data / "models" / "Lora" / "tinylora.safetensors")

    yield webui_app(["--api"], checkpoints={"sd1.safetensors": "sd1", "other.safetensors": "sd1"}, prepare=prepare)


def generate(app: RunningApp, **payload: Any) -> tuple[np.ndarray, str]:
    """(pixels of the first image, its infotext)."""
    data = app.txt2img(**payload)
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])["infotexts"][0]


HIRES = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "hr_second_pass_steps": 2,
         "denoising_strength": 0.6}


def test_hires_pass_can_use_the_first_pass_conds(app: RunningApp) -> None:
    # `<lora:tinylora:1:0>`: text encoder only, so only the conds tell the passes apart
    first = "a cat <lora:tinylora:1:0>"
    own, _ = generate(app, prompt=first, hr_prompt="a cat", **HIRES)
    firstpass, info = generate(app, prompt=first, hr_prompt="a cat", **HIRES,
                               override_settings={"hires_fix_use_firstpass_conds": True})
    with_lora, _ = generate(app, prompt=first, hr_prompt=first, **HIRES)
    assert not np.array_equal(own, firstpass)
    assert np.array_equal(firstpass, with_lora)  # the hires prompt encoded with the first pass's networks
    assert "Hires prompt: a cat" in info
