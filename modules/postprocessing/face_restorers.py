"""Face restorers (GFPGAN, CodeFormer) loaded with spandrel, applied to face regions of an image.

A1111 facts (reference §3.4, §11.7; `modules/face_restoration_utils.py`, `gfpgan_model.py`, `codeformer_model.py`):
- Restorers are listed as CodeFormer then GFPGAN (`/sdapi/v1/face-restorers` → `[{name, cmd_dir}]`); weights come
  from `models/Codeformer` (codeformer-v0.1.0.pth) and `models/GFPGAN` (GFPGANv1.4.pth), loaded through spandrel
  (CodeFormer's architecture is in `spandrel_extra_arches`).
- Each face is cropped and aligned to 512×512 by facexlib's RetinaFace detector, converted to a tensor in [-1, 1]
  (RGB), restored (`net(face, return_rgb=False)[0]` for GFPGAN, `net(face, weight=w, adain=True)[0]` for
  CodeFormer, where w = 0 is the strongest effect), and pasted back; the result is blended with the input by the
  visibility (`Image.blend(original, restored, visibility)` when visibility < 1).

Faces are found by RetinaFace (`modules.postprocessing.retinaface`, facexlib's `detection_Resnet50_Final.pth`,
downloaded on first use into `models/GFPGAN` like A1111's patched facexlib), aligned to the 512 template by their
five landmarks (`face_align`), restored, and pasted back through a feathered mask; a detector that gives only boxes
(no landmarks) gets a square crop with `FACE_MARGIN` around the box instead. No face found → the image is returned
unchanged with a notice, so nobody claims a restoration. `whole_image` (ours) restores the picture as one face
resized to 512×512 without detection. `face_restoration_unload` moves the restorer and detector to the CPU after
each use (A1111 `CommonFaceRestoration.restore_with_helper`'s `finally`); `--gfpgan-model` names the GFPGAN weights
file and `--gfpgan-dir` is a second folder searched for it (A1111's legacy GFPGAN location flags).
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from modules.models.safe_unpickle import CheckpointLoadError, load_torch_file
from modules.postprocessing.face_align import align_face, paste_face
from modules.postprocessing.model_downloads import ModelDownloadError, NamedModel, fetch_model
from modules.postprocessing.retinaface import DetectedFace, RetinaFaceDetector
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

NO_DETECTOR_NOTICE = ("{name}: this face-restorer registry has no face detector, so faces were not restored. "
                      "Enable \"restore the whole image\" to run {name} on the whole picture resized to 512×512 "
                      "(good for close-up portraits).")

RESTORER_MODELS = {
    "CodeFormer": NamedModel("CodeFormer", "Codeformer", "https://github.com/sczhou/CodeFormer/releases/download/"
                             "v0.1.0/codeformer.pth", "codeformer-v0.1.0.pth", 1),
    "GFPGAN": NamedModel("GFPGAN", "GFPGAN", "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/"
                         "GFPGANv1.4.pth", "GFPGANv1.4.pth", 1),
}
"""Where A1111 downloads the restorer weights from on first use (`codeformer_model.py`, `gfpgan_model.py`)."""

FACE_DETECTOR_MODEL = NamedModel("RetinaFace ResNet-50", "GFPGAN", "https://github.com/xinntao/facexlib/releases/"
                                 "download/v0.1.0/detection_Resnet50_Final.pth", "detection_Resnet50_Final.pth", 1)
"""facexlib's detector weights, which A1111 keeps in `models/GFPGAN` (its `patch_facexlib(dirname)`)."""

Box = tuple[int, int, int, int]
FaceDetector = Callable[[Image.Image], Sequence[Box | DetectedFace]]
"""Returns faces of the given image: `DetectedFace`s (box + five landmarks) or plain boxes (left, top, right,
bottom) in pixel coordinates."""


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

    def __init__(self, name: str, folder: Path, placement: Callable[[str], DevicePlacement], *,
                 extra_folders: Sequence[Path] = (), model_file: str | None = None) -> None:
        if name not in FACE_RESTORERS:
            raise FaceRestorerError(f"unknown face restorer {name!r}; choose from {', '.join(FACE_RESTORERS)}")
        self.name = name
        self.folder = Path(folder)
        self.extra_folders = [Path(f) for f in extra_folders]
        self.model_file = model_file
        self.download: NamedModel | None = None
        """A1111's weights to download when the folder has none (None: the user must put the file there)."""
        self.env: Mapping[str, str] | None = None
        self._placement = placement
        self._model: Any = None
        self._lock = threading.Lock()

    def model_path(self) -> Path | None:
        """The weights file: the one `--gfpgan-model` names (a path, or a name in the folders), else A1111's default
        name if present, else a file whose name mentions the restorer (the folder, then `--gfpgan-dir`)."""
        files = model_files([self.folder, *self.extra_folders])
        if self.model_file:
            given = Path(self.model_file)
            if given.is_file():
                return given
            return next((p for p in files if p.name.lower() == given.name.lower()), None)
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

    def ensure_weights(self) -> Path:
        """The weights file; when there is none, A1111's file downloaded into the folder (`download` set by the
        registry), else `FaceRestorerError` saying which file to put where."""
        path = self.model_path()
        if path is not None:
            return path
        missing = (f"{self.name}: no weights in {self.folder} (A1111 uses {FACE_RESTORERS[self.name][2]}; put the "
                   f"file there)")
        if self.download is None:
            raise FaceRestorerError(missing)
        try:
            return fetch_model(self.download, self.folder / self.download.file_name, self.env)
        except ModelDownloadError as exc:
            raise FaceRestorerError(f"{missing}: {exc}") from None

    def load(self) -> Any:
        """The spandrel descriptor (a "FaceSR" model), loaded once; clear errors when it cannot be."""
        with self._lock:
            if self._model is not None:
                return self._model
            path = self.ensure_weights()
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
        """Drop the loaded model."""
        with self._lock:
            self._model = None

    def offload(self) -> None:
        """Move the loaded model to the CPU (A1111 `face_restoration_unload`: `send_model_to(devices.cpu)`); the
        next `restore_face` moves it back to its device."""
        with self._lock:
            if self._model is not None:
                self._model.to(torch.device("cpu"))

    def model_device(self) -> torch.device | None:
        """Where the loaded model's weights are now (None when not loaded)."""
        with self._lock:
            try:
                return next(self._model.model.parameters()).device
            except (AttributeError, StopIteration):  # not loaded (or a stand-in without weights)
                return None

    def restore_face(self, face: Image.Image, codeformer_weight: float = 0.5) -> Image.Image:
        """Restore one face image (any size; run at 512×512 and resized back)."""
        descriptor = self.load()
        wanted = self._placement(FACE_RESTORERS[self.name][1]).device
        if self.model_device() not in (None, wanted):  # offloaded after the last use
            descriptor.to(wanted)
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
    """CodeFormer and GFPGAN by name (A1111 order), with a face detector.

    `folders` maps "Codeformer" / "GFPGAN" to their directories (`Paths.upscaler_dirs`). `detector` is a callable
    (tests); otherwise `detector_model` (production: `FACE_DETECTOR_MODEL`) is loaded as RetinaFace on first use,
    downloaded into its folder when missing (`env`: mirrors, proxies, `HF_HUB_OFFLINE`); `restorer_models`
    (production: `RESTORER_MODELS`) are the restorers' weights downloaded on first use. With no detector, only
    whole-image restoration is possible. `settings` gives `face_restoration_unload`; `flags` the devices and
    `--gfpgan-model` / `--gfpgan-dir`.
    """

    def __init__(self, folders: Mapping[str, Path], *, flags: Any = None,
                 placement: Callable[[str], DevicePlacement] | None = None,
                 detector: FaceDetector | None = None, detector_model: NamedModel | None = None,
                 restorer_models: Mapping[str, NamedModel] | None = None, settings: Any = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._env = env
        self._place = placement or (lambda component: placement_for(component, flags))
        self.folders = {sub: Path(folders.get(sub, Path("models") / sub)) for sub, _c, _f in FACE_RESTORERS.values()}
        gfpgan_dir = getattr(flags, "gfpgan_dir", None)
        gfpgan_model = getattr(flags, "gfpgan_model", None)
        self._restorers = {
            name: FaceRestorer(name, self.folders[sub], self._place,
                               extra_folders=[Path(gfpgan_dir)] if name == "GFPGAN" and gfpgan_dir else (),
                               model_file=str(gfpgan_model) if name == "GFPGAN" and gfpgan_model else None)
            for name, (sub, _component, _file) in FACE_RESTORERS.items()}
        for name, restorer in self._restorers.items():  # A1111 downloads its restorers' weights on first use
            restorer.download = (restorer_models or {}).get(name) if not restorer.model_file else None
            restorer.env = env
        self.detector = detector
        self.detector_model = detector_model
        self._retinaface: RetinaFaceDetector | None = None
        self._detector_lock = threading.Lock()

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

    def face_detector(self) -> FaceDetector | None:
        """The callable detector, else RetinaFace from `detector_model` (loaded once, downloaded when missing)."""
        if self.detector is not None or self.detector_model is None:
            return self.detector
        with self._detector_lock:
            if self._retinaface is None:
                model = self.detector_model
                path = self.folders.get(model.folder, Path("models") / model.folder) / model.file_name
                if not path.is_file():
                    try:
                        fetch_model(model, path, self._env)
                    except ModelDownloadError as exc:
                        raise FaceRestorerError(f"face detection: {exc}") from None
                try:  # the start-up reference to torch.load through the allow-list: an extension's patch of
                    # torch.load cannot turn this file's pickle into running code (docs/security.md §12)
                    state = load_torch_file(path, map_location="cpu")
                    self._retinaface = RetinaFaceDetector(state, self._place("gfpgan").device)
                except (OSError, RuntimeError, KeyError, ValueError, EOFError, CheckpointLoadError,
                        pickle.UnpicklingError) as exc:
                    raise FaceRestorerError(f"face detection: {path.name} is not a usable RetinaFace "
                                            f"detection_Resnet50_Final.pth ({exc})") from None
            else:
                self._retinaface.net.to(self._place("gfpgan").device)  # back from a `face_restoration_unload`
            return self._retinaface

    def restore(self, image: Image.Image, name: str, *, visibility: float = 1.0, codeformer_weight: float = 0.5,
                whole_image: bool = False) -> RestoreResult:
        """Restore the faces of `image` with restorer `name`, blended with the input by `visibility` (A1111).

        Each detected face is aligned by its landmarks (or square-cropped around its box), restored at 512×512 and
        pasted back through a feathered mask (module docstring). `whole_image` restores the whole picture as one
        face. Without any detector the image is returned unchanged with a notice saying why.
        """
        restorer = self.get_restorer(name)
        source = image.convert("RGB")
        if visibility <= 0:
            return RestoreResult(source)
        restorer.ensure_weights()
        try:
            if whole_image:
                restored = restorer.restore_face(source, codeformer_weight)
                return self._blend(source, restored, visibility, [f"{restorer.name}: the whole image was restored "
                                                                  "as one face at 512×512"], 1)
            detector = self.face_detector()
            if detector is None:
                return RestoreResult(source, [NO_DETECTOR_NOTICE.format(name=restorer.name)], 0)
            faces = list(detector(source))
            restored = source.copy()
            for face in faces:
                restored = self._restore_one(restorer, source, restored, face, codeformer_weight)
        finally:
            if bool(self.settings.get("face_restoration_unload") if self.settings is not None else False):
                self.offload()
        if not faces:
            return RestoreResult(source, [f"{restorer.name}: no faces found"], 0)
        return self._blend(source, restored, visibility, [], len(faces))

    def offload(self) -> None:
        """Move every loaded restorer and the detector to the CPU (`face_restoration_unload`)."""
        for restorer in self._restorers.values():
            restorer.offload()
        if self._retinaface is not None:
            self._retinaface.net.to(torch.device("cpu"))

    @staticmethod
    def _restore_one(restorer: FaceRestorer, source: Image.Image, canvas: Image.Image, face: Box | DetectedFace,
                     codeformer_weight: float) -> Image.Image:
        if isinstance(face, DetectedFace):
            aligned, matrix = align_face(source, np.array(face.landmarks))
            return paste_face(canvas, restorer.restore_face(aligned, codeformer_weight), matrix)
        region = square_region(face, source.size)
        restored = restorer.restore_face(source.crop(region), codeformer_weight)
        canvas.paste(restored, region[:2], feather_mask(restored.size, max(2, restored.width // 16)))
        return canvas

    @staticmethod
    def _blend(source: Image.Image, restored: Image.Image, visibility: float, notices: list[str],
               count: int) -> RestoreResult:
        if visibility < 1.0:
            restored = Image.blend(source, restored, float(visibility))
        return RestoreResult(restored, notices, count)
