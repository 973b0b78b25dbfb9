"""img2img colour correction (A1111 setting `img2img_color_correction`, "Apply color correction to img2img results
to match original colors").

A1111 (`processing.setup_color_correction` / `apply_color_correction`): the processed init image is kept in CIE L*a*b*
(OpenCV's 8-bit scaling: L·255/100, a+128, b+128); each result is converted to L*a*b*, its three channels are
histogram-matched to the init image's, converted back to RGB, and finally blended with the uncorrected result in
"luminosity" mode, so the result keeps its own brightness and takes the init image's colours.

Implemented here with numpy only (no OpenCV / scikit-image / blendmodes): sRGB ↔ L*a*b* with the D65 white point,
histogram matching by cumulative distributions (the classic quantile mapping: each source value goes to the template
value at the same quantile, linearly interpolated), and the W3C compositing "luminosity" mode (`SetLum` with
`ClipColor`, luma weights 0.3/0.59/0.11).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_D65 = np.array([0.950456, 1.0, 1.088754])
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPSILON = (6 / 29) ** 3


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def rgb_to_lab(image: Image.Image) -> np.ndarray:
    """(H, W, 3) float L*a*b* in OpenCV's 8-bit scaling (L 0…255, a and b centred on 128)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    xyz = _srgb_to_linear(rgb) @ _RGB_TO_XYZ.T / _D65
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lightness = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([lightness * 255 / 100, a + 128, b + 128], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> Image.Image:
    """Inverse of `rgb_to_lab` (values clipped to the RGB cube)."""
    lightness = lab[..., 0] * 100 / 255
    fy = (lightness + 16) / 116
    fx = fy + (lab[..., 1] - 128) / 500
    fz = fy - (lab[..., 2] - 128) / 200
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _D65
    rgb = _linear_to_srgb(xyz @ _XYZ_TO_RGB.T)
    return Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")


def match_channel(source: np.ndarray, template: np.ndarray) -> np.ndarray:
    """`source` values remapped so their histogram follows `template`'s (quantile mapping)."""
    _, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    t_values, t_counts = np.unique(template.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    t_quantiles = np.cumsum(t_counts) / template.size
    mapped = np.interp(quantiles, t_quantiles, t_values)
    return mapped[inverse].reshape(source.shape)


def _lum(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.3, 0.59, 0.11])


def luminosity_blend(base: Image.Image, top: Image.Image) -> Image.Image:
    """W3C "luminosity" mode: `base`'s hue and saturation with `top`'s luminosity."""
    cb = np.asarray(base.convert("RGB"), dtype=np.float64) / 255.0
    cs = np.asarray(top.convert("RGB"), dtype=np.float64) / 255.0
    c = cb + (_lum(cs) - _lum(cb))[..., None]
    lum = _lum(c)[..., None]
    low, high = c.min(axis=-1, keepdims=True), c.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(low < 0, lum + (c - lum) * lum / np.maximum(lum - low, 1e-12), c)
        c = np.where(high > 1, lum + (c - lum) * (1 - lum) / np.maximum(high - lum, 1e-12), c)
    return Image.fromarray(np.round(np.clip(c, 0, 1) * 255).astype(np.uint8), "RGB")


def setup_color_correction(image: Image.Image) -> np.ndarray:
    """The correction target of one processed init image (A1111 `setup_color_correction`)."""
    return rgb_to_lab(image)


def apply_color_correction(target: np.ndarray, image: Image.Image) -> Image.Image:
    """`image` with its L*a*b* histograms matched to `target`, keeping its own luminosity (A1111
    `apply_color_correction`). The mode of `image` is kept (RGBA keeps its alpha)."""
    lab = rgb_to_lab(image)
    matched = np.stack([match_channel(lab[..., k], target[..., k]) for k in range(3)], axis=-1)
    corrected = luminosity_blend(lab_to_rgb(matched), image)
    if image.mode == "RGBA":
        corrected.putalpha(image.getchannel("A"))
    return corrected
