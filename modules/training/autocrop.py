"""Crops of the Preprocess images sub-tab: split oversized images, auto focal point crop, auto-sized crop.

A1111 behaviour implemented (A1111 1.6 ``textual_inversion/preprocess.py`` and ``autocrop.py``; reference §3.4/§3.7
"Split oversized images", "Auto focal point crop", "Auto-sized crop"):

* Split: an image whose aspect ratio differs from the target's by more than the threshold (``ratio <= threshold``,
  ``ratio = min(a, 1/a)`` of (image aspect ÷ target aspect)) is scaled so its short side matches the target's and
  cut along the long side into ``ceil((L − t·overlap) / (t·(1 − overlap)))`` target-sized pieces, evenly spaced from
  one end to the other (so neighbours overlap by at least ``overlap`` of a piece).
* Auto focal point crop: the image is scaled to cover the target size and a target-sized window is placed around
  the focal point, clamped to the image. The focal point is the weighted mean of the points of interest. A1111 has
  three kinds: faces (an OpenCV DNN face detector), corners ("edges": OpenCV good-features-to-track) and entropy
  (the window with the most detail). Here there is no face detector (no model weights can be shipped), so the face
  weight is accepted and has no effect; the edge point is the centroid of the edge magnitude (PIL ``FIND_EDGES``)
  and the entropy point is the centre of the window whose grey-level histogram has the highest Shannon entropy.
  "Create debug image" adds a copy with the points, the focal point and the crop box drawn in.
* Auto-sized crop: among sizes ``w, h`` in ``min_dim..max_dim`` (steps of 64) with ``min_area ≤ w·h ≤ max_area``
  and aspect error ``1 − min(q, 1/q)`` (``q`` = image aspect ÷ ``w/h``) at most the threshold, pick the largest
  area (ties: smaller error) for "Maximize area", or the smallest error (ties: larger area) for "Minimize error";
  the image is centre-cropped to that aspect and resized to it. No size qualifies → the image is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MULTICROP_OBJECTIVES = ("Maximize area", "Minimize error")


def aspect_mismatch(image: Image.Image, width: int, height: int) -> tuple[float, bool]:
    """``(ratio, tall)``: ratio ≤ 1 of the image's aspect to the target's; ``tall`` when the image is the taller
    one (it is then split along its height)."""
    ratio = (image.height * width) / (image.width * height)
    return (1.0 / ratio, True) if ratio >= 1.0 else (ratio, False)


def split_image(image: Image.Image, width: int, height: int, overlap: float) -> Iterator[Image.Image]:
    """The target-sized pieces of an oversized image (rule in the module docstring)."""
    _ratio, tall = aspect_mismatch(image, width, height)
    overlap = max(0.0, min(0.9, overlap))
    if tall:
        length = max(height, image.height * width // image.width)
        scaled = image.resize((width, length), Image.Resampling.LANCZOS)
        piece = height
    else:
        length = max(width, image.width * height // image.height)
        scaled = image.resize((length, height), Image.Resampling.LANCZOS)
        piece = width
    count = max(1, math.ceil((length - piece * overlap) / (piece * (1.0 - overlap))))
    step = (length - piece) / (count - 1) if count > 1 else 0.0
    for i in range(count):
        start = int(step * i)
        yield scaled.crop((0, start, width, start + piece) if tall else (start, 0, start + piece, height))


# ------------------------------------------------------------------------------------------------- focal point
@dataclass
class FocalSettings:
    """Auto focal point crop options (A1111 names and defaults)."""

    crop_width: int = 512
    crop_height: int = 512
    face_points_weight: float = 0.9
    entropy_points_weight: float = 0.15
    corner_points_weight: float = 0.5
    annotate_image: bool = False


def _entropy(gray: np.ndarray) -> float:
    counts = np.bincount(gray.ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def entropy_point(image: Image.Image, width: int, height: int) -> tuple[float, float]:
    """Centre of the ``width × height`` window (slid along the long side) with the highest grey-level entropy."""
    gray = np.asarray(image.convert("L"))
    best, best_xy = -1.0, (image.width / 2, image.height / 2)
    slide_x, slide_y = image.width - width, image.height - height
    steps = max(slide_x, slide_y, 0)
    stride = max(1, steps // 32)
    for offset in range(0, steps + 1, stride):
        x = min(offset, slide_x) if slide_x > 0 else 0
        y = min(offset, slide_y) if slide_y > 0 else 0
        value = _entropy(gray[y:y + height, x:x + width])
        if value > best:
            best, best_xy = value, (x + width / 2, y + height / 2)
    return best_xy


def edge_point(image: Image.Image) -> tuple[float, float] | None:
    """Centroid of the edge magnitude (None for a flat image)."""
    edges = np.asarray(image.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float64)
    edges[0, :] = edges[-1, :] = 0  # the filter's border is not an edge
    edges[:, 0] = edges[:, -1] = 0
    total = edges.sum()
    if total <= 0:
        return None
    ys, xs = np.indices(edges.shape)
    return float((xs * edges).sum() / total), float((ys * edges).sum() / total)


def focal_crop(image: Image.Image, settings: FocalSettings) -> list[Image.Image]:
    """The focal-point crop (and the debug image when asked); rules in the module docstring."""
    width, height = settings.crop_width, settings.crop_height
    scale = max(width / image.width, height / image.height)
    scaled = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                          Image.Resampling.LANCZOS)
    points: list[tuple[tuple[float, float], float, str]] = []
    if settings.entropy_points_weight > 0:
        points.append((entropy_point(scaled, width, height), settings.entropy_points_weight, "entropy"))
    edge = edge_point(scaled) if settings.corner_points_weight > 0 else None
    if edge is not None:
        points.append((edge, settings.corner_points_weight, "edges"))
    total = sum(weight for _, weight, _ in points)
    if total > 0:
        fx = sum(p[0] * w for p, w, _ in points) / total
        fy = sum(p[1] * w for p, w, _ in points) / total
    else:
        fx, fy = scaled.width / 2, scaled.height / 2
    left = int(min(max(fx - width / 2, 0), scaled.width - width))
    top = int(min(max(fy - height / 2, 0), scaled.height - height))
    results = [scaled.crop((left, top, left + width, top + height))]
    if settings.annotate_image:
        debug = scaled.copy()
        draw = ImageDraw.Draw(debug)
        for (x, y), _, kind in points:
            color = "#ff0000" if kind == "entropy" else "#0000ff"
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), outline=color, width=2)
        draw.ellipse((fx - 6, fy - 6, fx + 6, fy + 6), fill="#ffff00")
        draw.rectangle((left, top, left + width - 1, top + height - 1), outline="#ffff00", width=2)
        results.append(debug)
    return results


# ------------------------------------------------------------------------------------------------- multicrop
def aspect_error(image_w: int, image_h: int, w: int, h: int) -> float:
    """``1 − min(q, 1/q)`` with ``q`` = image aspect ÷ ``w/h``."""
    q = (image_w / image_h) / (w / h)
    return 1 - (q if q < 1 else 1 / q)


def best_size(image_w: int, image_h: int, min_dim: int, max_dim: int, min_area: int, max_area: int,
              objective: str, threshold: float) -> tuple[int, int] | None:
    """The auto-sized crop's size, None when no size qualifies (rule in the module docstring)."""
    candidates = [(w, h) for w in range(min_dim, max_dim + 1, 64) for h in range(min_dim, max_dim + 1, 64)
                  if min_area <= w * h <= max_area and aspect_error(image_w, image_h, w, h) <= threshold]
    if not candidates:
        return None
    if objective == "Minimize error":
        return min(candidates, key=lambda s: (aspect_error(image_w, image_h, *s), -s[0] * s[1]))
    return max(candidates, key=lambda s: (s[0] * s[1], -aspect_error(image_w, image_h, *s)))


def center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """Centre crop to ``width:height`` and resize to ``width × height``."""
    iw, ih = image.size
    if ih / height < iw / width:
        sw = width * ih / height
        box = ((iw - sw) / 2, 0.0, iw - (iw - sw) / 2, float(ih))
    else:
        sh = height * iw / width
        box = (0.0, (ih - sh) / 2, float(iw), ih - (ih - sh) / 2)
    return image.resize((width, height), Image.Resampling.LANCZOS, box)
