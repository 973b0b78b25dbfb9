"""Decoded images get A1111's exact 8-bit values: `255 * clamp((x + 1) / 2, 0, 1)` then `.astype(uint8)`.

A1111 `processing.py` converts every decoded sample this way (and `single_sample_to_image` every preview), which
truncates: a value of 254.5 becomes 254, not 255. The inputs below are dyadic fractions, so every step is exact
in float32 and the expected bytes are written out by hand.
"""

from __future__ import annotations

import numpy as np
import torch

from modules.processing.image_ops import tensor_to_pil
from modules.processing.preview import cheap_preview

# (x + 1) / 2 = u  →  255·u  →  A1111 byte (truncated); rounding would give the last column.
CASES = [
    (511 / 512, 254.501953125, 254, 255),
    (1 / 256, 0.99609375, 0, 1),
    (0.5, 127.5, 127, 128),
    (0.75, 191.25, 191, 191),
    (1.25, 255.0, 255, 255),  # above 1 is clamped
    (-0.5, 0.0, 0, 0),  # below 0 is clamped
]


def _as_decoded(units: list[float]) -> torch.Tensor:
    """A (1, 3, 1, N) decoder output whose three channels all hold x = 2u − 1."""
    x = torch.tensor([2 * u - 1 for u in units], dtype=torch.float32)
    return x.reshape(1, 1, 1, -1).expand(1, 3, 1, -1).contiguous()


def test_decoded_tensor_is_truncated_like_a1111() -> None:
    units = [u for u, *_ in CASES]
    image = tensor_to_pil(_as_decoded(units))[0]
    got = np.asarray(image)
    assert image.mode == "RGB" and got.shape == (1, len(CASES), 3)
    assert got[0, :, 0].tolist() == [byte for _u, _scaled, byte, _rounded in CASES]
    assert (got[0, :, 0] != [rounded for *_rest, rounded in CASES]).any()  # rounding would differ
    assert (got == got[..., :1]).all()


def test_half_precision_decoder_output_converts_in_float32() -> None:
    """A1111 casts the decoded batch to float32 before converting; fp16 1/256 steps are exact, so the bytes match."""
    units = [1 / 256, 0.5, 0.75]
    image = tensor_to_pil(_as_decoded(units).half())[0]
    assert np.asarray(image)[0, :, 0].tolist() == [0, 127, 191]


def test_cheap_preview_uses_the_same_truncation() -> None:
    """A latent whose approximate colour is exactly 0.5·(x + 1) = 0.5 in every channel gives 127 (rounding: 128)."""
    latent = torch.zeros(1, 4, 2, 2)
    preview = cheap_preview(latent)
    assert np.asarray(preview).reshape(-1).tolist() == [127] * 12
