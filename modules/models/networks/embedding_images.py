"""Textual-inversion embeddings stored in images, as A1111's "Save images with embedding in PNG chunks" writes them.

A1111 (``modules/textual_inversion/image_embedding.py``) stores the embedding's data dict twice:

1. a PNG text chunk ``sd-ti-embedding``: base64 of the JSON of the dict, each tensor written as
   ``{"TORCHTENSOR": nested lists}``;
2. in the pixels, so it survives re-encoding that drops text chunks: the zlib-compressed (level 9) JSON bytes are
   split into low and high nibbles, each laid out as an ``[h, w, 3]`` block (``h`` = image height, data repeated to
   fill), XOR-ed with ``LCG & 0x0F`` (LCG ``seed = (1664525·seed + 1013904223) mod 2³²``, value ``seed mod 255``,
   seed 0), given a decorative high nibble, and pasted left (low) and right (high) of the image with one black
   column on each side. Reading crops black borders, keeps the low nibbles, splits at the black columns, XORs again
   and decompresses (trailing fill bytes after the zlib stream are ignored).
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import numpy as np
import torch
from PIL import Image

TEXT_CHUNK = "sd-ti-embedding"
LCG_MULTIPLIER = 1664525
LCG_INCREMENT = 1013904223
LCG_MODULUS = 2**32


def lcg_values(count: int) -> np.ndarray:
    """The first ``count`` values of A1111's LCG stream (``seed mod 255`` after each step, from seed 0)."""
    out = np.empty(count, dtype=np.uint8)
    seed = 0
    for i in range(count):
        seed = (LCG_MULTIPLIER * seed + LCG_INCREMENT) % LCG_MODULUS
        out[i] = seed % 255
    return out


def _xor_block(block: np.ndarray) -> np.ndarray:
    return np.bitwise_xor(block.astype(np.uint8), lcg_values(block.size).reshape(block.shape) & 0x0F)


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return {"TORCHTENSOR": value.detach().cpu().numpy().tolist()}
    raise TypeError(f"cannot store {type(value).__name__} in an embedding image")


def _json_object_hook(obj: dict[str, Any]) -> Any:
    if "TORCHTENSOR" in obj:
        return torch.from_numpy(np.array(obj["TORCHTENSOR"]))
    return obj


def embedding_to_b64(data: dict[str, Any]) -> str:
    """The ``sd-ti-embedding`` text-chunk value for an embedding data dict."""
    return base64.b64encode(json.dumps(data, default=_json_default).encode()).decode("ascii")


def embedding_from_b64(text: str | bytes) -> dict[str, Any]:
    """Decode an ``sd-ti-embedding`` text-chunk value back into a data dict with tensors."""
    return json.loads(base64.b64decode(text), object_hook=_json_object_hook)


def insert_embedding_in_pixels(image: Image.Image, data: dict[str, Any]) -> Image.Image:
    """Return ``image`` with the data blocks pasted left and right (layout in the module docstring).

    The high nibble of each data pixel is set to a constant so data pixels are never black; A1111 draws a dotted
    pattern there instead, which the reader ignores in the same way.
    """
    compressed = np.frombuffer(zlib.compress(json.dumps(data, default=_json_default).encode(), level=9), np.uint8)
    height, depth = image.size[1], 3
    size = compressed.size + (height - compressed.size % height)
    size = size + (height * depth - size % (height * depth))
    blocks = []
    for nibbles in (compressed & 0x0F, compressed >> 4):
        block = np.resize(nibbles, size).reshape(height, -1, depth)
        blocks.append(Image.fromarray(_xor_block(block) | 0x80, mode="RGB"))
    low, high = blocks
    canvas = Image.new("RGB", (image.size[0] + low.size[0] + high.size[0] + 2, height), (0, 0, 0))
    canvas.paste(low, (0, 0))
    canvas.paste(image.convert("RGB"), (low.size[0] + 1, 0))
    canvas.paste(high, (low.size[0] + 1 + image.size[0] + 1, 0))
    return canvas


def _crop_black(pixels: np.ndarray) -> np.ndarray:
    mask = np.all(pixels > 0, axis=2)
    cols, rows = np.any(mask, axis=0), np.any(mask, axis=1)
    if not cols.any():
        return pixels[:0, :0]
    col_start, col_end = cols.argmax(), mask.shape[1] - cols[::-1].argmax()
    row_start, row_end = rows.argmax(), mask.shape[0] - rows[::-1].argmax()
    return pixels[row_start:row_end, col_start:col_end]


def extract_embedding_from_pixels(image: Image.Image) -> dict[str, Any] | None:
    """The data dict hidden in the pixels, or None when the image carries none (e.g. a plain preview)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    nibbles = _crop_black(pixels) & 0x0F
    black_cols = np.where(nibbles.sum(axis=(0, 2)) == 0)[0]
    if black_cols.size < 2:
        return None
    low = _xor_block(nibbles[:, : black_cols.min(), :])
    high = _xor_block(nibbles[:, black_cols.max() + 1:, :])
    if low.shape != high.shape or low.size == 0:
        return None
    try:
        raw = zlib.decompress(((high << 4) | low).astype(np.uint8).flatten().tobytes())
        data = json.loads(raw, object_hook=_json_object_hook)
    except (zlib.error, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_embedding_image(image: Image.Image) -> dict[str, Any] | None:
    """Embedding data from the text chunk (preferred, as A1111) or the pixels; None for ordinary images."""
    text = getattr(image, "text", None)
    if isinstance(text, dict) and TEXT_CHUNK in text:
        return embedding_from_b64(text[TEXT_CHUNK])
    return extract_embedding_from_pixels(image)
