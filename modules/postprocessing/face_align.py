"""Aligning detected faces to the 512×512 restorer template and pasting restored faces back (facexlib's
`FaceRestoreHelper.align_warp_face` / `paste_faces_to_input_image` as A1111 uses them, without the parsing net).

Rules (facexlib `utils/face_restoration_helper.py`; read, not copied):
- Template: the five points (eyes, nose tip, mouth corners) of FFHQ-aligned 512×512 faces, `FACE_TEMPLATE_512`.
- The image → face map is the similarity transform (rotation, uniform scale, translation) that best maps the five
  detected landmarks onto the template (facexlib: `cv2.estimateAffinePartial2D`; here the least-squares solution of
  Umeyama 1991, equal for consistent points). The face is sampled bilinearly; outside the image it is grey
  (135, 133, 132).
- Paste back: the restored face is warped back with the inverse map; its mask (ones over the 512 square, warped
  back) is eroded by 2 px, then by `2·w` px with `w = ⌊√(mask area)⌋ // 20`, and blurred with a Gaussian of size
  `2·w + 1` (OpenCV's sigma rule `0.3·((k − 1)/2 − 1) + 0.8`); result = soft·face + (1 − soft)·image, so only the
  face region changes and the seam is feathered.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

FACE_SIZE = 512
FACE_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)
BORDER_GREY = (135, 133, 132)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 matrix of the similarity transform minimising Σ|M·src_i − dst_i|² (Umeyama, no reflection)."""
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s ** 2).sum() / len(src)
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign)) / var if var > 0 else 1.0
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine map."""
    a = np.linalg.inv(m[:, :2])
    return np.hstack([a, (-a @ m[:, 2])[:, None]])


def warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border: float | tuple[float, ...] = 0.0
         ) -> np.ndarray:
    """Bilinear `warpAffine`: output pixel (x, y) samples `image` (H, W, C float) at `M⁻¹·(x, y)`; `size` (W, H)."""
    h, w = image.shape[:2]
    inv = invert_affine(m)
    theta = torch.zeros(1, 2, 3, dtype=torch.float64)
    # normalised coordinates (align_corners=True: -1 and 1 are the centres of the corner pixels)
    to_norm_in = np.array([[2 / max(w - 1, 1), 0, -1], [0, 2 / max(h - 1, 1), -1], [0, 0, 1]])
    from_norm_out = np.array([[(size[0] - 1) / 2, 0, (size[0] - 1) / 2], [0, (size[1] - 1) / 2, (size[1] - 1) / 2],
                              [0, 0, 1]])
    full = to_norm_in @ np.vstack([inv, [0, 0, 1]]) @ from_norm_out
    theta[0] = torch.from_numpy(full[:2])
    grid = F.affine_grid(theta.float(), [1, image.shape[2], size[1], size[0]], align_corners=True)
    src = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    fill = torch.tensor(border if isinstance(border, tuple) else (border,) * image.shape[2], dtype=torch.float32)
    sampled = F.grid_sample(src - fill[None, :, None, None], grid, mode="bilinear", padding_mode="zeros",
                            align_corners=True)
    out = sampled + fill[None, :, None, None]
    return out[0].permute(1, 2, 0).numpy()


def align_face(image: Image.Image, landmarks: np.ndarray, size: int = FACE_SIZE) -> tuple[Image.Image, np.ndarray]:
    """The `size`×`size` aligned face crop and the image → face matrix for five `landmarks` (5×2 pixels)."""
    m = similarity_transform(landmarks, FACE_TEMPLATE_512 * (size / FACE_SIZE))
    face = warp(np.asarray(image.convert("RGB"), dtype=np.float32), m, (size, size), BORDER_GREY)
    return Image.fromarray(np.clip(np.rint(face), 0, 255).astype(np.uint8), "RGB"), m


def _erode(mask: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 1:
        return mask
    pad = (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2)
    return -F.max_pool2d(F.pad(-mask, pad, value=-1.0), k, stride=1)


def _gaussian_blur(mask: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 1:
        return mask
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8
    x = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    r = k // 2
    out = F.conv2d(F.pad(mask, (r, r, 0, 0), mode="reflect"), kernel.view(1, 1, 1, k))
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="reflect"), kernel.view(1, 1, k, 1))


def paste_mask(m: np.ndarray, image_size: tuple[int, int], face_size: int = FACE_SIZE) -> np.ndarray:
    """The soft paste mask (H, W) in [0, 1] of a face placed by image → face matrix `m` (module docstring)."""
    inv = invert_affine(m)
    hard = warp(np.ones((face_size, face_size, 1), dtype=np.float32), inv, image_size)[:, :, 0]
    mask = _erode(torch.from_numpy(hard)[None, None], 2)
    w_edge = int(math.sqrt(float(mask.sum()))) // 20
    soft = _gaussian_blur(_erode(mask, w_edge * 2), w_edge * 2 + 1)
    return soft[0, 0].clamp(0, 1).numpy()


def paste_face(image: Image.Image, face: Image.Image, m: np.ndarray) -> Image.Image:
    """`image` with the restored `face` (aligned by `m`) blended in through the feathered mask."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    back = warp(np.asarray(face.convert("RGB"), dtype=np.float32), invert_affine(m), image.size)
    soft = paste_mask(m, image.size, face.width)[:, :, None]
    out = soft * back + (1 - soft) * base
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")
