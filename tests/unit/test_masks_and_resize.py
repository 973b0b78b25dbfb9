"""img2img geometry: A1111's resize modes, mask binarise/blur/crop, fill and overlay."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter1d

from modules.processing.image_ops import flatten_alpha, pil_to_tensor, resize_image, tensor_to_pil
from modules.processing.masks import (
    apply_overlay,
    binary_mask,
    blur_mask,
    crop_region,
    expand_to_aspect,
    fill_masked,
    gaussian_kernel_size,
    latent_mask,
    masked_overlay,
    prepare_mask,
)


def _two_tone(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: makes crops and fills visible."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(arr)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_every_resize_mode_gives_the_requested_size(mode: int) -> None:
    out = resize_image(mode, _two_tone(300, 100), 128, 128)
    assert out.size == (128, 128)


def test_crop_and_resize_covers_and_centre_crops() -> None:
    # 300x100 into 128x128: scaled to 384x128, centre 128 columns straddle the red/blue border
    out = np.asarray(resize_image(1, _two_tone(300, 100), 128, 128))
    assert tuple(out[64, 10]) == (255, 0, 0) and tuple(out[64, 120]) == (0, 0, 255)


def test_resize_and_fill_stretches_edges_into_the_gaps() -> None:
    img = Image.new("RGB", (200, 100), (0, 255, 0))
    out = np.asarray(resize_image(2, img, 128, 128))
    # fitted 128x64 in the middle; top and bottom gaps filled with the edge colour, not black
    assert (out[0, 64] > 200).sum() == 1 and out[0, 64, 1] > 200
    assert out[127, 64, 1] > 200


def test_bad_resize_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="resize_mode"):
        resize_image(7, _two_tone(10, 10), 8, 8)


def test_binary_mask_uses_alpha_and_rounds() -> None:
    rgba = Image.new("RGBA", (4, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 200))
    assert list(binary_mask(rgba).getdata()) == [0, 255, 0, 0]
    grey = Image.fromarray(np.array([[100, 129]], np.uint8), "L")
    assert list(binary_mask(grey).getdata()) == [0, 255]
    assert list(binary_mask(grey, round_mask=False).getdata()) == [100, 129]


def test_mask_blur_matches_an_independent_gaussian() -> None:
    assert gaussian_kernel_size(4) == 21
    rng = np.random.default_rng(0)
    arr = (rng.random((40, 50)) > 0.5).astype(np.uint8) * 255
    ours = np.asarray(blur_mask(Image.fromarray(arr, "L"), 4, 2), dtype=np.float64)
    ref = gaussian_filter1d(arr.astype(np.float64), 4, axis=1, mode="mirror", truncate=2.5)
    ref = gaussian_filter1d(ref, 2, axis=0, mode="mirror", truncate=2.5)
    assert np.abs(ours - np.clip(np.round(ref), 0, 255)).max() <= 1


def test_only_masked_region_is_padded_and_expanded_to_the_aspect() -> None:
    mask = Image.new("L", (200, 100))
    mask.paste(255, (90, 40, 110, 60))
    assert crop_region(mask, 4) == (86, 36, 114, 64)
    assert crop_region(Image.new("L", (8, 8)), 4) is None
    x1, y1, x2, y2 = expand_to_aspect((86, 36, 114, 64), 512, 256, 200, 100)
    assert (x2 - x1) == 2 * (y2 - y1) and x1 <= 86 and x2 >= 114


def test_prepare_mask_only_masked_gives_paste_region() -> None:
    mask = Image.new("L", (200, 100))
    mask.paste(255, (90, 40, 110, 60))
    prepared = prepare_mask(mask, width=64, height=64, resize_mode=0, invert=False, blur_x=0, blur_y=0,
                            round_mask=True, only_masked=True, padding=8)
    assert prepared.mask.size == (64, 64)
    x, _y, w, h = prepared.paste_region
    assert w == h and x <= 82 and x + w >= 118
    inverted = prepare_mask(mask, width=64, height=32, resize_mode=0, invert=True, blur_x=0, blur_y=0,
                            round_mask=True, only_masked=False, padding=0)
    assert inverted.paste_region is None and inverted.mask.getpixel((32, 16)) == 0
    assert inverted.mask.getpixel((0, 0)) == 255


def test_fill_replaces_the_hole_with_surrounding_colour() -> None:
    img = Image.new("RGB", (64, 64), (0, 200, 0))
    img.paste((255, 0, 0), (24, 24, 40, 40))
    mask = Image.new("L", (64, 64))
    mask.paste(255, (24, 24, 40, 40))
    filled = np.asarray(fill_masked(img, mask))
    assert filled[32, 32, 1] > 150 and filled[32, 32, 0] < 60


def test_overlay_keeps_unmasked_pixels_exactly() -> None:
    original = _two_tone(32, 32)
    mask = Image.new("L", (32, 32))
    mask.paste(255, (8, 8, 24, 24))
    generated = Image.new("RGB", (32, 32), (7, 7, 7))
    out = np.asarray(apply_overlay(generated, masked_overlay(original, mask), None))
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[16, 16]) == (7, 7, 7)
    base = Image.new("RGB", (100, 100), (1, 2, 3))
    pasted = apply_overlay(Image.new("RGB", (64, 64), (9, 9, 9)), None, (10, 20, 30, 30), base)
    assert pasted.getpixel((15, 25)) == (9, 9, 9) and pasted.getpixel((5, 5)) == (1, 2, 3)


def test_latent_mask_shape_and_round() -> None:
    mask = Image.new("L", (64, 64))
    mask.paste(255, (0, 0, 32, 64))
    lat = latent_mask(mask, 8, 8, round_mask=True)
    assert lat.shape == (1, 1, 8, 8) and set(lat.unique().tolist()) <= {0.0, 1.0}
    assert lat[0, 0, 0, 0] == 1 and lat[0, 0, 0, 7] == 0


def test_tensor_pil_round_trip_and_alpha_flatten() -> None:
    img = _two_tone(16, 8)
    t = pil_to_tensor([img])
    assert t.shape == (1, 3, 8, 16) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(np.asarray(tensor_to_pil(t)[0]), np.asarray(img))
    assert tensor_to_pil(torch.full((1, 3, 2, 2), 5.0))[0].getpixel((0, 0)) == (255, 255, 255)
    transparent = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert flatten_alpha(transparent).getpixel((0, 0)) == (255, 255, 255)
