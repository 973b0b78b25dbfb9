"""Preprocess crop maths (A1111 1.6 preprocess.py / autocrop.py rules): split piece count and spacing, the
auto-sized crop's size choice, centre crop, and a focal point that follows the detail."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from modules.training.autocrop import (
    FocalSettings,
    aspect_error,
    aspect_mismatch,
    best_size,
    center_crop,
    focal_crop,
    split_image,
)


def test_split_counts_and_spacing_follow_a1111() -> None:
    wide = Image.new("RGB", (256, 64))
    assert aspect_mismatch(wide, 64, 64) == (0.25, False)
    pieces = list(split_image(wide, 64, 64, 0.2))
    # ceil((256 - 64·0.2) / (64·0.8)) = ceil(4.75) = 5 pieces, first at 0, last at the end
    assert len(pieces) == 5 and all(p.size == (64, 64) for p in pieces)
    tall = Image.new("RGB", (100, 400))
    ratio, is_tall = aspect_mismatch(tall, 64, 64)
    assert is_tall and ratio == 0.25
    gradient = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 64, 3)))  # 64×256
    parts = list(split_image(gradient, 64, 64, 0.0))
    assert len(parts) == 4
    assert [int(np.asarray(p)[0, 0, 0]) for p in parts] == [0, 64, 128, 192]


def test_auto_sized_crop_picks_a1111s_size() -> None:
    assert aspect_error(100, 100, 64, 64) == 0
    assert best_size(1000, 1000, 384, 768, 64 * 64, 640 * 640, "Maximize area", 0.1) == (640, 640)
    # 3:2 image: within 10% the largest area below 640² ...
    size = best_size(1500, 1000, 384, 768, 64 * 64, 640 * 640, "Maximize area", 0.1)
    assert size is not None and size[0] * size[1] <= 640 * 640 and aspect_error(1500, 1000, *size) <= 0.1
    # ... and the exact aspect (largest such area) when minimising the error
    assert best_size(1500, 1000, 384, 768, 64 * 64, 640 * 640, "Minimize error", 0.1) == (768, 512)
    assert best_size(100, 1000, 384, 768, 64 * 64, 640 * 640, "Maximize area", 0.1) is None
    assert center_crop(Image.new("RGB", (300, 200)), 128, 64).size == (128, 64)


def test_focal_point_follows_the_detail() -> None:
    image = Image.new("RGB", (64, 256), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for y in range(200, 250, 4):  # stripes near the bottom
        draw.line((0, y, 63, y), fill=(255, 255, 255) if y % 8 else (0, 0, 0), width=2)
    results = focal_crop(image, FocalSettings(64, 64, annotate_image=True))
    assert len(results) == 2 and results[0].size == (64, 64) and results[1].size == (64, 256)
    crop = np.asarray(results[0].convert("L"), dtype=np.float64)
    assert crop.std() > 40, "the crop is on the striped (detailed) part"
