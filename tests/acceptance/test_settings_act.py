"""Settings a user changes over HTTP act on what the app produces (A1111 behaviour of each option).

One app for the module; every test sets what it needs per request (`override_settings`) or through
`POST /sdapi/v1/options` and puts it back, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> Iterator[RunningApp]:
    yield webui_app(["--api"])


def generate(app: RunningApp, **payload: Any) -> tuple[np.ndarray, str]:
    """(pixels of the first image, its infotext)."""
    data = app.txt2img(**payload)
    pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return pixels, json.loads(data["info"])["infotexts"][0]


def test_sampler_parameter_settings_change_the_image_and_the_infotext(app: RunningApp) -> None:
    base, base_info = generate(app, steps=4)
    assert "Skip Early CFG" not in base_info and "Noise Schedule" not in base_info
    early, info = generate(app, steps=4, override_settings={"skip_early_cond": 0.5})
    assert "Skip Early CFG: 0.5" in info and not np.array_equal(early, base)
    ztsnr, info = generate(app, steps=4, override_settings={"sd_noise_schedule": "Zero Terminal SNR"})
    assert "Noise Schedule: Zero Terminal SNR" in info and not np.array_equal(ztsnr, base)
    unipc, _ = generate(app, steps=4, sampler_name="UniPC")
    vary, _ = generate(app, steps=4, sampler_name="UniPC", override_settings={"uni_pc_variant": "vary_coeff"})
    assert not np.array_equal(unipc, vary)
