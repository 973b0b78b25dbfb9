"""Face restorers (GFPGAN, CodeFormer) loaded with spandrel, applied to face regions of an image.

A1111 facts (reference §3.4, §11.7; `modules/face_restoration_utils.py`, `gfpgan_model.py`, `codeformer_model.py`):
- Restorers are listed as CodeFormer then GFPGAN (`/sdapi/v1/face-restorers` → `[{name, cmd_dir}]`); weights come
  from `models/Codeformer` (codeformer-v0.1.0.pth) and `models/GFPGAN` (GFPGANv1.4.pth), loaded through spandrel
  (CodeFormer's architecture is in `spandrel_extra_arches`).
- Each face is cropped and aligned to 512×512 by facexlib's RetinaFace detector, converted to a tensor in [-1, 1]
  (RGB), restored (`net(face, return_rgb=False)[0]` for GFPGAN, `net(face, weight=w, adain=True)[0]` for
  CodeFormer, where w = 0 is the strongest effect), and pasted back; the result is blended with the input by the
  visibility (`Image.blend(original, restored, visibility)` when visibility < 1).

Limitation (documented in docs and in every notice): this project has no face detector (facexlib is not used).
A detector can be supplied as a callable returning face boxes; without one, restoration runs only when the caller
asks for whole-image mode, which resizes the whole picture to 512×512, restores it and resizes it back — right
for a close-up portrait, wrong for a small face in a larger scene.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from modules.postprocessing.spandrel_models import (
    DevicePlacement,
    UpscalerModelError,
    has_extra_arches,
    load_image_model,
    model_files,
    placement_for,
)

FACE_SIZE = 512
"""GFPGAN and CodeFormer work on 512×512 aligned faces."""

FACE_RESTORERS: dict[str, tuple[str, str, str]] = {
    "CodeFormer": ("Codeformer", "codeformer", "codeformer-v0.1.0.pth"),
    "GFPGAN": ("GFPGAN", "gfpgan", "GFPGANv1.4.pth"),
}
"""Name → (models/ subfolder, `--use-cpu` component, the file A1111 downloads), in A1111's list order."""

FACE_MARGIN = 0.35
"""Extra context around a detected face box, as a fraction of its size, before cropping to a square."""

NO_DETECTOR_NOTICE = ("{name}: no face detector is available in this web UI (A1111 finds faces with facexlib's "
                      "RetinaFace, which is not used here), so faces were not restored. Enable \"restore the whole "
                      "image\" to run {name} on the whole picture resized to 512×512 (good for close-up portraits).")

Box = tuple[int, int, int, int]
FaceDetector = Callable[[Image.Image], Sequence[Box]]
"""Returns face boxes (left, top, right, bottom) in pixel coordinates of the given image."""


class FaceRestorerError(RuntimeError):
    """A restorer that cannot run: unknown name, no weights file, or an unusable model."""


@dataclass
class RestoreResult:
    """The restored (and visibility-blended) image, plus notices for the user."""

    image: Image.Image
    notices: list[str] = field(default_factory=list)
    faces: int = 0


def face_to_tensor(face: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """512×512 RGB → `(1, 3, 512, 512)` in [-1, 1] (A1111 normalises with mean = std = 0.5)."""
    array = np.asarray(face.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype)


def tensor_to_face(tensor: torch.Tensor) -> Image.Image:
    """`(1, 3, H, W)` in [-1, 1] → RGB (A1111 `tensor2img(min_max=(-1, 1))`)."""
    array = ((tensor[0].detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB")


def square_region(box: Box, size: tuple[int, int], margin: float = FACE_MARGIN) -> Box:
    """A square around `box` enlarged by `margin` on each side, shifted (and if needed shrunk) to fit the image."""
    left, top, right, bottom = box
    side = round(max(right - left, bottom - top) * (1 + 2 * margin))
    side = max(1, min(side, size[0], size[1]))
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = round(min(max(cx - side / 2, 0), size[0] - side))
    y0 = round(min(max(cy - side / 2, 0), size[1] - side))
    return x0, y0, x0 + side, y0 + side


def feather_mask(size: tuple[int, int], border: int) -> Image.Image:
    """An "L" mask, opaque inside and fading to 0 over `border` pixels at the edges, to paste a face back."""
    mask = Image.new("L", size, 0)
    inset = max(border, 1)
    ImageDraw.Draw(mask).rectangle((inset, inset, size[0] - 1 - inset, size[1] - 1 - inset), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(border / 2, 0.5)))


class FaceRestorer:
    """One restorer (GFPGAN or CodeFormer): finds its weights in its folder and runs them on 512×512 faces."""

    def __init__(self, name: str, folder: Path, placement: Callable[[str], DevicePlacement]) -> None:
        if name not in FACE_RESTORERS:
            raise FaceRestorerError(f"unknown face restorer {name!r}; choose from {', '.join(FACE_RESTORERS)}")
        self.name = name
        self.folder = Path(folder)
        self._placement = placement
        self._model: Any = None
        self._lock = threading.Lock()

    def model_path(self) -> Path | None:
        """The weights file: A1111's default name if present, else a file whose name mentions the restorer."""
        files = model_files([self.folder])
        default = FACE_RESTORERS[self.name][2].lower()
        for candidate in files:
            if candidate.name.lower() == default:
                return candidate
        named = [p for p in files if self.name.lower() in p.name.lower()]
        candidates = named or files
        return candidates[0] if candidates else None

    def available(self) -> bool:
        """True when a weights file exists (and, for CodeFormer, spandrel_extra_arches is installed)."""
        return self.model_path() is not None and (self.name != "CodeFormer" or has_extra_arches())

    def load(self) -> Any:
        """The spandrel descriptor (a "FaceSR" model), loaded once; clear errors when it cannot be."""
        with self._lock:
            if self._model is not None:
                return self._model
            path = self.model_path()
            if path is None:
                raise FaceRestorerError(f"{self.name}: no weights in {self.folder} (A1111 uses "
                                        f"{FACE_RESTORERS[self.name][2]}; put the file there)")
            if self.name == "CodeFormer" and not has_extra_arches():
                raise FaceRestorerError("CodeFormer: its architecture comes from the spandrel-extra-arches package; "
                                        "install it with `pip install spandrel-extra-arches`")
            try:
                self._model = load_image_model(path, self._placement(FACE_RESTORERS[self.name][1]),
                                               purposes=("FaceSR",), expected=self.name)
            except UpscalerModelError as exc:
                raise FaceRestorerError(f"{self.name}: {exc}") from exc
            return self._model

    def unload(self) -> None:
        """Drop the loaded model (A1111 `face_restoration_unload`)."""
        with self._lock:
            self._model = None

    def restore_face(self, face: Image.Image, codeformer_weight: float = 0.5) -> Image.Image:
        """Restore one face image (any size; run at 512×512 and resized back)."""
        descriptor = self.load()
        net = descriptor.model
        original_size = face.size
        square = face.convert("RGB").resize((FACE_SIZE, FACE_SIZE), Image.Resampling.LANCZOS)
        x = face_to_tensor(square, descriptor.device, descriptor.dtype)
        with torch.inference_mode():
            if self.name == "CodeFormer":
                out = net(x, weight=float(codeformer_weight), adain=True)[0]
            else:
                out = net(x, return_rgb=False)[0]
        restored = tensor_to_face(out)
        if restored.size != original_size:
            restored = restored.resize(original_size, Image.Resampling.LANCZOS)
        return restored


class FaceRestorerRegistry(Mapping[str, FaceRestorer]):
    """CodeFormer and GFPGAN by name (A1111 order), with an optional face detector.

    `folders` maps "Codeformer" / "GFPGAN" to their directories (`Paths.upscaler_dirs`).
    """

    def __init__(self, folders: Mapping[str, Path], *, flags: Any = None,
                 placement: Callable[[str], DevicePlacement] | None = None,
                 detector: FaceDetector | None = None, settings: Any = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._env = env
        place = placement or (lambda component: placement_for(component, flags))
        self._restorers = {name: FaceRestorer(name, Path(folders.get(sub, Path("models") / sub)), place)
                           for name, (sub, _component, _file) in FACE_RESTORERS.items()}
        self.detector = detector

    def __getitem__(self, name: str) -> FaceRestorer:
        return self._restorers[name]

    def __iter__(self) -> Any:
        return iter(self._restorers)

    def __len__(self) -> int:
        return len(self._restorers)

    def api_entries(self) -> list[dict[str, Any]]:
        """`/sdapi/v1/face-restorers` items `{name, cmd_dir}`."""
        return [{"name": r.name, "cmd_dir": str(r.folder)} for r in self._restorers.values()]

    def get_restorer(self, name: str) -> FaceRestorer:
        """The restorer called `name` (case-insensitive); `FaceRestorerError` listing the names otherwise."""
        for key, restorer in self._restorers.items():
            if key.lower() == name.lower():
                return restorer
        raise FaceRestorerError(f"unknown face restorer {name!r}; choose from {', '.join(self._restorers)}")

    def restore(self, image: Image.Image, name: str, *, visibility: float = 1.0, codeformer_weight: float = 0.5,
                whole_image: bool = False) -> RestoreResult:
        """Restore the faces of `image` with restorer `name`, blended with the input by `visibility` (A1111).

        With a detector: each face box is enlarged to a square (`FACE_MARGIN`), restored at 512×512 and pasted back
        through a feathered mask. Without one: the whole image is restored only when `whole_image` is set,
        otherwise the image is returned unchanged with a notice saying why.
        """
        restorer = self.get_restorer(name)
        source = image.convert("RGB")
        if visibility <= 0:
            return RestoreResult(source)
        if restorer.model_path() is None:
            raise FaceRestorerError(f"{restorer.name}: no weights in {restorer.folder} (A1111 uses "
                                    f"{FACE_RESTORERS[restorer.name][2]}; put the file there)")
        notices: list[str] = []
        if self.detector is not None:
            boxes = list(self.detector(source))
            restored = source.copy()
            for box in boxes:
                region = square_region(box, source.size)
                face = restorer.restore_face(source.crop(region), codeformer_weight)
                restored.paste(face, region[:2], feather_mask(face.size, max(2, face.width // 16)))
            if not boxes:
                notices.append(f"{restorer.name}: no faces found")
            count = len(boxes)
        elif whole_image:
            restored = restorer.restore_face(source, codeformer_weight)
            notices.append(f"{restorer.name}: no face detector; the whole image was restored at 512×512")
            count = 1
        else:
            return RestoreResult(source, [NO_DETECTOR_NOTICE.format(name=restorer.name)], 0)
        if visibility < 1.0:
            restored = Image.blend(source, restored, float(visibility))
        return RestoreResult(restored, notices, count)
