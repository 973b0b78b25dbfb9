"""RetinaFace face detector (Deng et al. 2019, "RetinaFace: Single-stage Dense Face Localisation in the Wild"),
written here for facexlib's released weights `detection_Resnet50_Final.pth` in their original key layout.

A1111 finds faces with facexlib's `FaceRestoreHelper(det_model="retinaface_resnet50")`; facts used (facexlib
`detection/retinaface.py`, `retinaface_net.py`, `align_trans` / Pytorch_Retinaface `cfg_re50`; read, not copied):

- Network: a ResNet-50 (torchvision key layout under `body.`: `conv1`, `bn1`, `layer1..4` of bottlenecks with the
  stride on `conv2` and a `downsample` conv+BN) whose layer2/3/4 outputs feed an FPN (`fpn.output1..3` 1×1 conv+BN,
  nearest upsampling top-down, `fpn.merge1/2` 3×3 conv+BN), one SSH context module per level (`ssh1..3`: a 3×3
  branch of half the channels and 5×5 / 7×7 branches of a quarter each, built from stacked 3×3 conv+BN, concatenated,
  ReLU) and per level 1×1 heads `ClassHead.k` (2 anchors × 2 classes), `BboxHead.k` (×4), `LandmarkHead.k` (×10).
  LeakyReLU slope 0.1 when the FPN width is ≤ 64, else 0 (ReLU). Channel widths and block counts are read from the
  state dict, so small random-weight variants in the same layout load too (tests). A `module.` prefix is dropped.
- Input: BGR pixels minus the mean (104, 117, 123), no scaling; A1111 scales the image up so that its shorter side
  is at least 640 (`get_face_landmarks_5(resize=640)`, never down) and divides the results by that factor.
- Priors: per level (strides 8, 16, 32; anchor sizes 16/32, 64/128, 256/512) for each cell row-major, each size:
  centre ((j + 0.5)·step / W, (i + 0.5)·step / H), size (s / W, s / H).
- Decoding with variances (0.1, 0.2): centre = prior_c + loc_xy·0.1·prior_wh, size = prior_wh·exp(loc_wh·0.2);
  landmark k = prior_c + pred_k·0.1·prior_wh; the face score is softmax(class)[1].
- Faces with score > 0.8 (`conf_threshold`), sorted by score, greedy NMS at IoU 0.4 with the "+1" pixel areas of
  `py_cpu_nms`; faces whose eyes are closer than 5 px are dropped (`eye_dist_threshold=5`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

MEAN_BGR = (104.0, 117.0, 123.0)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
CONF_THRESHOLD = 0.8
NMS_THRESHOLD = 0.4
EYE_DIST_THRESHOLD = 5.0
RESIZE_TO = 640


@dataclass(frozen=True)
class DetectedFace:
    """One face in image pixels: box (x1, y1, x2, y2), score, and five landmarks (eyes, nose, mouth corners)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]


def _conv_bn(sd: dict[str, torch.Tensor], key: str, stride: int = 1) -> nn.Sequential:
    weight = sd[f"{key}.0.weight"]
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], stride, weight.shape[2] // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(weight.shape[0]))


class _Bottleneck(nn.Module):
    def __init__(self, sd: dict[str, torch.Tensor], key: str, stride: int) -> None:
        super().__init__()
        shape = {n: sd[f"{key}.{n}.weight"].shape for n in ("conv1", "conv2", "conv3")}
        self.conv1 = nn.Conv2d(shape["conv1"][1], shape["conv1"][0], 1, bias=False)
        self.bn1 = nn.BatchNorm2d(shape["conv1"][0])
        self.conv2 = nn.Conv2d(shape["conv2"][1], shape["conv2"][0], 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(shape["conv2"][0])
        self.conv3 = nn.Conv2d(shape["conv3"][1], shape["conv3"][0], 1, bias=False)
        self.bn3 = nn.BatchNorm2d(shape["conv3"][0])
        self.downsample: nn.Module | None = None
        if f"{key}.downsample.0.weight" in sd:
            w = sd[f"{key}.downsample.0.weight"]
            self.downsample = nn.Sequential(nn.Conv2d(w.shape[1], w.shape[0], 1, stride, bias=False),
                                            nn.BatchNorm2d(w.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class _Body(nn.Module):
    """ResNet trunk in torchvision's layout; returns the layer2, layer3 and layer4 outputs."""

    def __init__(self, sd: dict[str, torch.Tensor]) -> None:
        super().__init__()
        w = sd["body.conv1.weight"]
        self.conv1 = nn.Conv2d(w.shape[1], w.shape[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w.shape[0])
        for n, stride in zip(range(1, 5), (1, 2, 2, 2), strict=True):
            count = len({int(m.group(1)) for k in sd if (m := re.match(rf"body\.layer{n}\.(\d+)\.", k))})
            blocks = [_Bottleneck(sd, f"body.layer{n}.{b}", stride if b == 0 else 1) for b in range(count)]
            setattr(self, f"layer{n}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        layers = [getattr(self, f"layer{n}") for n in range(1, 5)]
        c2 = layers[1](layers[0](x))
        c3 = layers[2](c2)
        return [c2, c3, layers[3](c3)]


class RetinaFaceNet(nn.Module):
    """The RetinaFace network built from (and loaded with) a state dict in the facexlib layout."""

    def __init__(self, sd: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.body = _Body(sd)
        width = sd["fpn.output1.0.weight"].shape[0]
        self.leaky = 0.1 if width <= 64 else 0.0
        self.fpn = nn.ModuleDict({n: _conv_bn(sd, f"fpn.{n}") for n in ("output1", "output2", "output3",
                                                                        "merge1", "merge2")})
        names = ("conv3X3", "conv5X5_1", "conv5X5_2", "conv7X7_2", "conv7x7_3")
        for level in (1, 2, 3):
            setattr(self, f"ssh{level}", nn.ModuleDict({n: _conv_bn(sd, f"ssh{level}.{n}") for n in names}))
        for head in ("ClassHead", "BboxHead", "LandmarkHead"):
            convs = []
            for level in range(3):
                w = sd[f"{head}.{level}.conv1x1.weight"]
                convs.append(nn.ModuleDict({"conv1x1": nn.Conv2d(w.shape[1], w.shape[0], 1)}))
            setattr(self, head, nn.ModuleList(convs))
        self.load_state_dict(sd)
        self.eval()

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.leaky) if self.leaky else F.relu(x)

    def _ssh(self, m: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        c3 = m["conv3X3"](x)
        c5_1 = self._act(m["conv5X5_1"](x))
        c5 = m["conv5X5_2"](c5_1)
        c7 = m["conv7x7_3"](self._act(m["conv7X7_2"](c5_1)))
        return F.relu(torch.cat([c3, c5, c7], dim=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(N, 3, H, W)` mean-subtracted BGR → (loc (N, A, 4), face probabilities (N, A, 2), landmarks (N, A, 10))."""
        c2, c3, c4 = self.body(x)
        o1, o2, o3 = (self._act(self.fpn[n](c)) for n, c in (("output1", c2), ("output2", c3), ("output3", c4)))
        o2 = self._act(self.fpn["merge2"](o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest")))
        o1 = self._act(self.fpn["merge1"](o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest")))
        features = [self._ssh(getattr(self, f"ssh{k}"), f) for k, f in zip((1, 2, 3), (o1, o2, o3), strict=True)]

        def head(name: str, per_anchor: int) -> torch.Tensor:
            outs = [m["conv1x1"](f).permute(0, 2, 3, 1).reshape(f.shape[0], -1, per_anchor)
                    for m, f in zip(getattr(self, name), features, strict=True)]
            return torch.cat(outs, dim=1)

        return head("BboxHead", 4), F.softmax(head("ClassHead", 2), dim=-1), head("LandmarkHead", 10)


def prior_boxes(height: int, width: int) -> torch.Tensor:
    """Anchors `(A, 4)` as (cx, cy, w, h) relative to the image, in the order of the heads' outputs."""
    anchors: list[list[float]] = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        for i in range(math.ceil(height / step)):
            for j in range(math.ceil(width / step)):
                for s in sizes:
                    anchors.append([(j + 0.5) * step / width, (i + 0.5) * step / height, s / width, s / height])
    return torch.tensor(anchors, dtype=torch.float32)


def decode(loc: torch.Tensor, landms: torch.Tensor, priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes `(A, 4)` as (x1, y1, x2, y2) and landmarks `(A, 10)`, relative to the image (module docstring)."""
    v0, v1 = VARIANCES
    centre = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * v1)
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    points = priors[:, None, :2] + landms.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
    return boxes, points.reshape(-1, 10)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression with "+1" pixel areas (`py_cpu_nms`); indices kept, best first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = list(np.argsort(-scores, kind="stable"))
    keep: list[int] = []
    while order:
        i = int(order.pop(0))
        keep.append(i)
        if not order:
            break
        rest = np.array(order)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        iou = w * h / (areas[i] + areas[rest] - w * h)
        order = [int(k) for k, o in zip(rest, iou, strict=True) if o <= threshold]
    return keep


class RetinaFaceDetector:
    """Callable face detector: PIL image → `DetectedFace` list (A1111/facexlib rules, module docstring)."""

    def __init__(self, state_dict: dict[str, torch.Tensor], device: torch.device | str = "cpu") -> None:
        sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
        self.device = torch.device(device)
        self.net = RetinaFaceNet(sd).to(self.device)

    def __call__(self, image: Image.Image) -> list[DetectedFace]:
        rgb = image.convert("RGB")
        scale = max(1.0, RESIZE_TO / min(rgb.size))
        if scale > 1.0:
            rgb = rgb.resize((int(rgb.width * scale), int(rgb.height * scale)), Image.Resampling.BILINEAR)
        bgr = np.asarray(rgb, dtype=np.float32)[:, :, ::-1] - np.array(MEAN_BGR, dtype=np.float32)
        x = torch.from_numpy(np.ascontiguousarray(bgr)).permute(2, 0, 1).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            loc, conf, landms = self.net(x)
        rel_boxes, rel_points = decode(loc[0].float().cpu(), landms[0].float().cpu(),
                                       prior_boxes(rgb.height, rgb.width))
        size = torch.tensor([rgb.width, rgb.height], dtype=torch.float32)
        boxes = (rel_boxes * size.repeat(2)).numpy() / scale
        points = (rel_points * size.repeat(5)).numpy() / scale
        scores = conf[0, :, 1].float().cpu().numpy()
        chosen = np.where(scores > CONF_THRESHOLD)[0]
        faces = []
        for k in nms(boxes[chosen], scores[chosen], NMS_THRESHOLD):
            i = chosen[k]
            marks = tuple((float(points[i, 2 * n]), float(points[i, 2 * n + 1])) for n in range(5))
            if math.dist(marks[0], marks[1]) < EYE_DIST_THRESHOLD:
                continue
            faces.append(DetectedFace(tuple(float(v) for v in boxes[i]), float(scores[i]), marks))  # type: ignore[arg-type]
        return faces
