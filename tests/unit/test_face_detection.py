"""RetinaFace detection, face alignment and paste-back (modules/postprocessing/retinaface.py, face_align.py).

References: the trunk against torchvision's ResNet (the network facexlib builds on), priors/decoding/NMS against
the formulas of the RetinaFace paper and Pytorch_Retinaface/facexlib written out here, the alignment against a
known similarity transform, and the whole detector with weights built so that it fires on bright blobs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.postprocessing.face_align import (
    FACE_TEMPLATE_512,
    align_face,
    paste_face,
    paste_mask,
    similarity_transform,
)
from modules.postprocessing.face_restorers import FaceRestorerRegistry
from modules.postprocessing.retinaface import (
    DetectedFace,
    RetinaFaceDetector,
    RetinaFaceNet,
    decode,
    nms,
    prior_boxes,
)
from tests.face_fixtures import firing_retinaface, random_retinaface


def blobs(*corners: tuple[int, int], size: int = 512, side: int = 64) -> Image.Image:
    image = np.zeros((size, size, 3), np.uint8)
    for x, y in corners:
        image[y:y + side, x:x + side] = 255
    return Image.fromarray(image)


def test_trunk_is_torchvisions_resnet_in_the_same_key_layout() -> None:
    sd, trunk = random_retinaface(seed=3)
    net = RetinaFaceNet(sd)
    x = torch.randn(1, 3, 96, 80) * 50
    with torch.no_grad():
        ours = net.body(x)
        t = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(x))))
        c2 = trunk.layer2(trunk.layer1(t))
        c3 = trunk.layer3(c2)
        expected = [c2, c3, trunk.layer4(c3)]
    for a, b in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_heads_give_one_row_per_prior_and_probabilities() -> None:
    sd, _ = random_retinaface()
    net = RetinaFaceNet(sd)
    loc, conf, landms = net(torch.randn(1, 3, 100, 70))
    priors = prior_boxes(100, 70)
    assert loc.shape == (1, len(priors), 4) and landms.shape == (1, len(priors), 10)
    torch.testing.assert_close(conf.sum(-1), torch.ones(1, len(priors)))


def test_prior_boxes_follow_the_retinaface_config() -> None:
    priors = prior_boxes(100, 70)
    counts = [math.ceil(100 / s) * math.ceil(70 / s) * 2 for s in (8, 16, 32)]
    assert len(priors) == sum(counts)
    torch.testing.assert_close(priors[0], torch.tensor([4 / 70, 4 / 100, 16 / 70, 16 / 100]))
    torch.testing.assert_close(priors[1], torch.tensor([4 / 70, 4 / 100, 32 / 70, 32 / 100]))
    torch.testing.assert_close(priors[2], torch.tensor([12 / 70, 4 / 100, 16 / 70, 16 / 100]))  # next column
    last = priors[-1]  # stride 32, bottom-right cell, 512 anchor
    torch.testing.assert_close(last, torch.tensor([(2 + 0.5) * 32 / 70, (3 + 0.5) * 32 / 100, 512 / 70, 512 / 100]))


def test_decode_applies_the_variances() -> None:
    priors = torch.tensor([[0.5, 0.4, 0.2, 0.1]])
    loc = torch.tensor([[1.0, -2.0, 0.5, -1.0]])
    landms = torch.arange(10, dtype=torch.float32)[None] / 10
    boxes, points = decode(loc, landms, priors)
    cx, cy = 0.5 + 1.0 * 0.1 * 0.2, 0.4 - 2.0 * 0.1 * 0.1
    w, h = 0.2 * math.exp(0.5 * 0.2), 0.1 * math.exp(-1.0 * 0.2)
    torch.testing.assert_close(boxes[0], torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
    for k in range(5):
        torch.testing.assert_close(points[0, 2 * k], torch.tensor(0.5 + (2 * k) / 10 * 0.1 * 0.2))
        torch.testing.assert_close(points[0, 2 * k + 1], torch.tensor(0.4 + (2 * k + 1) / 10 * 0.1 * 0.1))


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [20, 20, 29, 29], [0, 0, 9, 4]], dtype=np.float64)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    # IoU(0, 1) = 81 / 119 > 0.4; IoU(3, 1) = 36 / (50 + 100 - 36) < 0.4; IoU(3, 0) = 50 / 100 > 0.4
    assert nms(boxes, scores, 0.4) == [3, 1, 2]


def test_a_detector_built_to_fire_finds_one_face_per_blob_with_landmarks() -> None:
    detector = RetinaFaceDetector(firing_retinaface(box=320, face=160))
    faces = detector(blobs((100, 100), (330, 350)))
    assert len(faces) == 2
    for face, (x, y) in zip(sorted(faces, key=lambda f: f.box[0]), [(100, 100), (330, 350)], strict=True):
        eyes = np.mean(face.landmarks[:2], axis=0)
        assert x - 32 <= eyes[0] <= x + 96 and y - 32 <= eyes[1] <= y + 96
        assert face.score > 0.99
        assert math.dist(face.landmarks[0], face.landmarks[1]) == pytest.approx(126 * 160 / 512 / 1.25, rel=0.01)
    assert detector(blobs()) == []


def test_small_images_are_scaled_up_to_640_for_detection() -> None:
    detector = RetinaFaceDetector(firing_retinaface(box=320, face=160))
    faces = detector(blobs((40, 40), size=128, side=16))
    assert len(faces) == 1
    eyes = np.mean(faces[0].landmarks[:2], axis=0)
    assert 30 <= eyes[0] <= 70 and 30 <= eyes[1] <= 70  # in the 128-px image's coordinates


def test_similarity_transform_recovers_a_known_map() -> None:
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = FACE_TEMPLATE_512 / 3
    m = similarity_transform(src, src @ rot.T + shift)
    np.testing.assert_allclose(m, np.hstack([rot, shift[:, None]]), atol=1e-9)


def test_aligning_a_face_already_on_the_template_is_the_identity() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8))
    face, m = align_face(image, FACE_TEMPLATE_512)
    np.testing.assert_allclose(m, np.hstack([np.eye(2), np.zeros((2, 1))]), atol=1e-9)
    assert np.abs(np.asarray(face, dtype=np.int16) - np.asarray(image, dtype=np.int16)).max() <= 1


def test_paste_back_changes_only_the_face_region_with_a_feathered_edge() -> None:
    image = Image.new("RGB", (400, 300), (10, 20, 30))
    landmarks = FACE_TEMPLATE_512 / 4 + np.array([100.0, 50.0])  # a 128-px face at (100, 50)
    face, m = align_face(image, landmarks)
    out = np.asarray(paste_face(image, Image.new("RGB", face.size, (250, 250, 250)), m), dtype=np.int16)
    assert (out[:40] == (10, 20, 30)).all() and (out[:, :90] == (10, 20, 30)).all()  # outside: untouched
    assert (out[:, 240:] == (10, 20, 30)).all() and (out[190:] == (10, 20, 30)).all()
    assert (out[114, 164] == 250).all()  # the centre of the face: the restored pixels
    soft = paste_mask(m, image.size)
    assert 0 < soft[114, 104] < 1 or 0 < soft[114, 108] < 1  # feathered near the edge


def _fake_gfpgan(registry: FaceRestorerRegistry, folder: Path) -> list[tuple[int, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "GFPGANv1.4.pth").write_bytes(b"stand-in")
    calls: list[tuple[int, int]] = []

    def restore_face(face: Image.Image, codeformer_weight: float = 0.5) -> Image.Image:
        calls.append(face.size)
        return Image.new("RGB", face.size, (255, 0, 0))

    registry["GFPGAN"].restore_face = restore_face  # type: ignore[method-assign]
    return calls


def test_registry_restores_detected_faces_and_leaves_the_rest(tmp_path: Path) -> None:
    detector = RetinaFaceDetector(firing_retinaface(box=320, face=160))
    registry = FaceRestorerRegistry({"GFPGAN": tmp_path / "GFPGAN"}, detector=detector)
    calls = _fake_gfpgan(registry, tmp_path / "GFPGAN")
    source = blobs((100, 100))
    result = registry.restore(source, "GFPGAN")
    assert result.faces == 1 and calls == [(512, 512)] and result.notices == []
    out = np.asarray(result.image, dtype=np.int16)
    assert (out[400:, :] == np.asarray(source)[400:, :]).all() and (out[:, 400:] == 0).all()
    assert (out[130, 130] == (255, 0, 0)).all()
    nothing = registry.restore(blobs(), "GFPGAN")
    assert nothing.faces == 0 and nothing.notices == ["GFPGAN: no faces found"]
    assert nothing.image.tobytes() == blobs().tobytes()


def test_the_detector_weights_are_read_from_the_gfpgan_folder(tmp_path: Path) -> None:
    from modules.postprocessing.face_restorers import FACE_DETECTOR_MODEL

    (tmp_path / "GFPGAN").mkdir()
    torch.save({f"module.{k}": v for k, v in firing_retinaface(box=320, face=160).items()},
               tmp_path / "GFPGAN" / "detection_Resnet50_Final.pth")
    registry = FaceRestorerRegistry({"GFPGAN": tmp_path / "GFPGAN"}, detector_model=FACE_DETECTOR_MODEL,
                                    env={"HF_HUB_OFFLINE": "1"}, settings={"face_restoration_unload": True})
    _fake_gfpgan(registry, tmp_path / "GFPGAN")
    offloads: list[bool] = []
    registry.offload = lambda: offloads.append(True)  # type: ignore[method-assign]
    assert registry.restore(blobs((300, 300)), "GFPGAN").faces == 1
    assert offloads == [True]  # face_restoration_unload: moved to the CPU after the restoration


def test_missing_detector_weights_offline_is_a_clear_error(tmp_path: Path) -> None:
    from modules.postprocessing.face_restorers import FACE_DETECTOR_MODEL, FaceRestorerError

    registry = FaceRestorerRegistry({"GFPGAN": tmp_path / "GFPGAN"}, detector_model=FACE_DETECTOR_MODEL,
                                    env={"HF_HUB_OFFLINE": "1"})
    _fake_gfpgan(registry, tmp_path / "GFPGAN")
    with pytest.raises(FaceRestorerError, match=r"detection_Resnet50_Final\.pth"):
        registry.restore(blobs((300, 300)), "GFPGAN")


def test_box_only_detectors_still_get_a_square_crop(tmp_path: Path) -> None:
    registry = FaceRestorerRegistry({"GFPGAN": tmp_path / "GFPGAN"}, detector=lambda image: [(40, 40, 56, 56)])
    calls = _fake_gfpgan(registry, tmp_path / "GFPGAN")
    assert registry.restore(Image.new("RGB", (128, 128)), "GFPGAN").faces == 1 and calls == [(27, 27)]


def test_gfpgan_model_flag_names_the_weights_file(tmp_path: Path) -> None:
    from types import SimpleNamespace

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "my-gfpgan.pth").write_bytes(b"x")
    (tmp_path / "GFPGAN").mkdir()
    (tmp_path / "GFPGAN" / "GFPGANv1.4.pth").write_bytes(b"x")
    flags = SimpleNamespace(gfpgan_dir=str(legacy), gfpgan_model="my-gfpgan.pth", use_cpu=["all"])
    registry = FaceRestorerRegistry({"GFPGAN": tmp_path / "GFPGAN"}, flags=flags)
    assert registry["GFPGAN"].model_path() == legacy / "my-gfpgan.pth"
    plain = FaceRestorerRegistry({"GFPGAN": tmp_path / "GFPGAN"}, flags=SimpleNamespace(gfpgan_dir=str(legacy)))
    assert plain["GFPGAN"].model_path() == tmp_path / "GFPGAN" / "GFPGANv1.4.pth"


def test_detected_face_is_a_value() -> None:
    face = DetectedFace((0.0, 0.0, 1.0, 1.0), 0.9, ((0.0, 0.0),) * 5)
    assert face == DetectedFace((0.0, 0.0, 1.0, 1.0), 0.9, ((0.0, 0.0),) * 5)
