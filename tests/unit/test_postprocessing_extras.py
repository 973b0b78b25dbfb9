"""The Extras chain (A1111 `postprocessing.run_postprocessing` + the Upscale/GFPGAN/CodeFormer scripts) and face
restorers without a face detector.

Facts checked: "Scale to" uses factor max(W/w, H/h) and crops onto a W×H canvas; "Max side length" switches to
scale-to without crop; upscaler 1 "None" skips upscaling; upscaler 2 is `Image.blend(up1, up2, visibility)`;
infotext "Postprocess upscale by: 2, Postprocess upscaler: Lanczos, …" goes into the `postprocessing` and `extras`
PNG chunks while the original `parameters` chunk is kept; batch files keep their names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from modules.images import read_info_from_image, save_image
from modules.postprocessing import (
    ExtrasChain,
    ExtrasImage,
    ExtrasInputError,
    ExtrasOptions,
    FaceRestorerError,
    FaceRestorerRegistry,
    UpscalerRegistry,
    extras_output_dir,
    folder_sources,
    infotext_from_info,
    save_kwargs,
)
from modules.postprocessing.extras import limit_size_by_one_dimension, operation_order
from modules.postprocessing.face_restorers import square_region
from modules.postprocessing.spandrel_models import DevicePlacement

CPU = DevicePlacement(torch.device("cpu"), torch.float32)


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.fixture()
def chain(tmp_path: Path) -> ExtrasChain:
    folders = {name: tmp_path / name for name in ("ESRGAN", "GFPGAN", "Codeformer")}
    return ExtrasChain(UpscalerRegistry(folders, placement=lambda c: CPU),
                       FaceRestorerRegistry(folders, placement=lambda c: CPU))


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_scale_by_gives_a1111_size_and_infotext(chain: ExtrasChain) -> None:
    done = chain.process(noise_image(100, 75), ExtrasOptions(upscaling_resize=2, upscaler_1="Lanczos"))
    assert done.image.size == (200, 144)
    assert done.infotext == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"


def test_upscaler_none_leaves_the_image_alone(chain: ExtrasChain) -> None:
    image = noise_image(40, 30)
    done = chain.process(image, ExtrasOptions(upscaler_1="None", upscaler_2="Lanczos", upscaler_2_visibility=1))
    assert np.array_equal(as_array(done.image), as_array(image)) and done.infotext == ""


def test_scale_to_with_crop_fills_the_exact_size_centred(chain: ExtrasChain) -> None:
    image = noise_image(100, 50)
    opts = ExtrasOptions(resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64, upscaling_crop=True,
                         upscaler_1="Nearest")
    done = chain.process(image, opts)
    assert done.image.size == (64, 64)
    assert done.info == {"Postprocess upscale to": "64x64", "Postprocess crop to": "64x64",
                         "Postprocess upscaler": "Nearest"}
    # factor max(64/100, 64/50) = 1.28 → 128×64 (multiples of 8), centred: columns 32..95 of the upscaled image
    full = chain.upscalers.upscale(image, 1.28, "Nearest")
    assert full.size == (128, 64)
    assert np.array_equal(as_array(done.image), as_array(full.crop((32, 0, 96, 64))))


def test_scale_to_without_crop_keeps_the_aspect_ratio(chain: ExtrasChain) -> None:
    opts = ExtrasOptions(resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64, upscaling_crop=False,
                         upscaler_1="Lanczos")
    done = chain.process(noise_image(100, 50), opts)
    assert done.image.size == (128, 64) and "Postprocess crop to" not in done.info


def test_max_side_length_limits_the_longer_side(chain: ExtrasChain) -> None:
    assert limit_size_by_one_dimension(400, 300, 200) == (200, 150)
    assert limit_size_by_one_dimension(300, 400, 200) == (150, 200)
    done = chain.process(noise_image(100, 75), ExtrasOptions(upscaling_resize=4, max_side_length=200,
                                                             upscaler_1="Lanczos"))
    assert done.image.size == (200, 144)
    assert done.info["Max side length"] == 200 and done.info["Postprocess upscale by"] == 4


@pytest.mark.parametrize("visibility", [0.0, 1.0, 0.25])
def test_upscaler_2_blend(chain: ExtrasChain, visibility: float) -> None:
    image = noise_image(32, 24, seed=5)
    lanczos = chain.upscalers.upscale(image, 2, "Lanczos")
    nearest = chain.upscalers.upscale(image, 2, "Nearest")
    opts = ExtrasOptions(upscaler_1="Lanczos", upscaler_2="Nearest", upscaler_2_visibility=visibility)
    done = chain.process(image, opts)
    expected = {0.0: lanczos, 1.0: nearest}.get(visibility) or Image.blend(lanczos, nearest, visibility)
    assert np.array_equal(as_array(done.image), as_array(expected))
    assert ("Postprocess upscaler 2" in done.info) == (visibility > 0)


def test_bad_names_and_ranges_name_the_field(chain: ExtrasChain) -> None:
    with pytest.raises(ExtrasInputError, match="upscaler_2: upscaler 'Nope' not found") as info:
        chain.check(ExtrasOptions(upscaler_1="Lanczos", upscaler_2="Nope"))
    assert info.value.field == "upscaler_2"
    with pytest.raises(ExtrasInputError, match="gfpgan_visibility"):
        chain.check(ExtrasOptions(gfpgan_visibility=2))


def test_operation_order_setting_and_disabled_operations() -> None:
    assert operation_order(None) == ["Upscale", "GFPGAN", "CodeFormer"]
    assert operation_order({"postprocessing_operation_order": ["CodeFormer"]}) == ["CodeFormer", "Upscale", "GFPGAN"]
    assert operation_order({"postprocessing_disable_in_extras": ["GFPGAN"]}) == ["Upscale", "CodeFormer"]


def test_infotext_formatting_quotes_like_a1111() -> None:
    assert infotext_from_info({"Postprocess upscale by": 2.5, "Postprocess upscaler": "R-ESRGAN 4x+",
                               "Skipped": None, "Flag": "Flag"}) == \
        "Postprocess upscale by: 2.5, Postprocess upscaler: R-ESRGAN 4x+, Flag"
    assert infotext_from_info({"Postprocess upscaler": "a, b"}) == 'Postprocess upscaler: "a, b"'


def test_batch_saves_with_original_names_and_postprocessing_chunks(chain: ExtrasChain, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Seed: 1")
    noise_image(20, 16).save(src / "cat.png", pnginfo=info)
    noise_image(24, 16, seed=2).save(src / "dog.jpg")
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    sources = folder_sources(src)
    assert [name for _, name in sources] == ["broken.png", "cat.png", "dog.jpg"]
    chain.read_info = read_info_from_image

    def save(done: ExtrasImage) -> Path:
        return save_image(done.image, out, **save_kwargs(done)).path

    result = chain.run(sources, ExtrasOptions(upscaler_1="Lanczos"), save=save)
    assert [p.name for p in result.saved] == ["cat.png", "dog.png"]
    assert any("broken.png: skipped" in n for n in result.notices)
    with Image.open(out / "cat.png") as saved:
        assert saved.size == (40, 32)
        assert saved.info["parameters"] == "a cat\nSteps: 20, Seed: 1"
        assert saved.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
        assert saved.info["extras"] == saved.info["postprocessing"]
    assert result.html_info.startswith("<p>Postprocess upscale by: 2, Postprocess upscaler: Lanczos</p>")


def test_single_images_get_numbered_names_and_results_can_be_hidden(chain: ExtrasChain, tmp_path: Path) -> None:
    settings = {"use_upscaler_name_as_suffix": True}

    def save(done: ExtrasImage) -> Path:
        return save_image(done.image, tmp_path, **save_kwargs(done, settings)).path

    result = chain.run([(noise_image(16, 16), None)], ExtrasOptions(upscaler_1="Nearest"), save=save,
                       show_results=False, settings=settings)
    assert result.images == [] and result.saved[0].name == "00000-Nearest.png"


def test_output_dir_follows_settings(tmp_path: Path) -> None:
    assert extras_output_dir({}, tmp_path) == tmp_path / "outputs/extras-images"
    assert extras_output_dir({"outdir_samples": "all"}, tmp_path) == tmp_path / "all"
    assert extras_output_dir({}, tmp_path, "custom") == tmp_path / "custom"
    with pytest.raises(ExtrasInputError, match="input directory"):
        folder_sources(tmp_path / "missing")


# -- face restorers --------------------------------------------------------------------------------------------

def test_face_restorers_list_in_a1111_order(chain: ExtrasChain, tmp_path: Path) -> None:
    assert chain.face_restorers is not None
    assert [e["name"] for e in chain.face_restorers.api_entries()] == ["CodeFormer", "GFPGAN"]
    assert chain.face_restorers.api_entries()[1]["cmd_dir"] == str(tmp_path / "GFPGAN")


def test_missing_weights_are_a_clear_error(chain: ExtrasChain) -> None:
    with pytest.raises(FaceRestorerError, match=r"GFPGAN: no weights in .*GFPGANv1\.4\.pth"):
        chain.process(noise_image(16, 16), ExtrasOptions(gfpgan_visibility=1))


def _fake_weights(chain: ExtrasChain, name: str, folder: str) -> None:
    """A weights file so the restorer counts as installed, and a stand-in network that inverts the colours."""
    assert chain.face_restorers is not None
    restorer = chain.face_restorers[name]
    restorer.folder.mkdir(parents=True, exist_ok=True)
    (restorer.folder / f"{name}.pth").write_bytes(b"x")
    calls = restorer.__dict__.setdefault("calls", [])

    def restore_face(face: Image.Image, codeformer_weight: float = 0.5) -> Image.Image:
        calls.append((face.size, codeformer_weight))
        return Image.fromarray(255 - np.asarray(face.convert("RGB")))

    restorer.restore_face = restore_face  # type: ignore[method-assign]


def test_without_a_detector_faces_are_not_restored_unless_asked(chain: ExtrasChain) -> None:
    _fake_weights(chain, "GFPGAN", "GFPGAN")
    image = noise_image(32, 32)
    result = chain.run([(image, None)], ExtrasOptions(gfpgan_visibility=1))
    assert np.array_equal(as_array(result.images[0].image), as_array(image))
    assert "no face detector" in result.notices[0] and "GFPGAN visibility" not in result.infotext
    assert "no face detector" in result.html_info


def test_whole_image_restoration_blends_by_visibility(chain: ExtrasChain) -> None:
    _fake_weights(chain, "CodeFormer", "Codeformer")
    image = noise_image(32, 32)
    opts = ExtrasOptions(codeformer_visibility=0.5, codeformer_weight=0.25, restore_whole_image=True)
    done = chain.process(image, opts)
    inverted = Image.fromarray(255 - np.asarray(image))
    assert np.array_equal(as_array(done.image), as_array(Image.blend(image, inverted, 0.5)))
    assert done.infotext == "CodeFormer visibility: 0.5, CodeFormer weight: 0.25"
    assert chain.face_restorers is not None
    assert chain.face_restorers["CodeFormer"].calls == [((32, 32), 0.25)]  # type: ignore[attr-defined]


def test_a_detector_restores_only_the_face_regions(chain: ExtrasChain) -> None:
    _fake_weights(chain, "GFPGAN", "GFPGAN")
    assert chain.face_restorers is not None
    chain.face_restorers.detector = lambda image: [(40, 40, 56, 56)]
    image = noise_image(128, 128)
    done = chain.process(image, ExtrasOptions(gfpgan_visibility=1))
    region = square_region((40, 40, 56, 56), image.size)
    assert region == (34, 34, 61, 61)  # 16 px box + 35 % margin each side = 27 px square
    before, after = as_array(image), as_array(done.image)
    assert np.array_equal(before[:30], after[:30]) and np.array_equal(before[70:], after[70:])
    assert np.array_equal(after[48, 48], 255 - before[48, 48])
    assert done.info == {"GFPGAN visibility": 1.0}


class _RecordingNet(torch.nn.Module):
    """Stands in for a spandrel GFPGAN/CodeFormer module: records its input range and kwargs, returns -x."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[tuple[int, ...], float, float, dict[str, object]]] = []

    def forward(self, x: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, None]:
        self.calls.append((tuple(x.shape), float(x.min()), float(x.max()), kwargs))
        return -x, None


class _Descriptor:
    def __init__(self) -> None:
        self.model = _RecordingNet()
        self.device = torch.device("cpu")
        self.dtype = torch.float32


@pytest.mark.parametrize(("name", "kwargs"), [("GFPGAN", {"return_rgb": False}),
                                              ("CodeFormer", {"weight": 0.7, "adain": True})])
def test_restore_face_feeds_512_faces_in_minus_one_to_one(chain: ExtrasChain, name: str,
                                                          kwargs: dict[str, object]) -> None:
    """A1111 normalises faces to [-1, 1] at 512×512 and calls `net(face, return_rgb=False)[0]` (GFPGAN) or
    `net(face, weight=w, adain=True)[0]` (CodeFormer); the output maps back from [-1, 1]."""
    assert chain.face_restorers is not None
    restorer = chain.face_restorers[name]
    descriptor = _Descriptor()
    restorer._model = descriptor
    face = Image.new("RGB", (64, 48), (0, 255, 128))
    out = restorer.restore_face(face, codeformer_weight=0.7)
    shape, low, high, seen = descriptor.model.calls[0]
    assert shape == (1, 3, 512, 512) and low == -1.0 and high == 1.0 and seen == kwargs
    assert out.size == (64, 48)
    assert out.getpixel((32, 24)) == (255, 0, 127)  # -x in [-1, 1] = the inverted colour


def test_default_metadata_reader_keeps_png_text_chunks(chain: ExtrasChain) -> None:
    image = noise_image(8, 8)
    image.info = {"parameters": "a cat", "Software": "x", "dpi": (72, 72)}
    done = chain.process(image, ExtrasOptions(upscaler_1="Lanczos"))
    assert done.chunks == {"parameters": "a cat", "Software": "x"}
