"""The shared parameter schema: A1111 field names, defaults and bounds."""

import pytest

from modules.processing.params import (
    Img2ImgParams,
    ParamError,
    Txt2ImgParams,
    field_metadata,
    rounded_size,
    validate_params,
)


def test_defaults_are_a1111_processing_defaults() -> None:
    p = Txt2ImgParams()
    assert (p.steps, p.cfg_scale, p.width, p.height, p.seed, p.subseed) == (50, 7.0, 512, 512, -1, -1)
    assert (p.hr_scale, p.denoising_strength, p.hr_second_pass_steps) == (2.0, 0.75, 0)
    i = Img2ImgParams()
    assert (i.mask_blur_x, i.inpainting_fill, i.inpaint_full_res, i.inpaint_full_res_padding) == (4, 0, True, 0)


def test_mutable_defaults_are_not_shared() -> None:
    a, b = Txt2ImgParams(), Txt2ImgParams()
    a.styles.append("x")
    a.override_settings["k"] = 1
    assert b.styles == [] and b.override_settings == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [("steps", 0), ("steps", 100000), ("width", 10), ("height", 100000), ("batch_size", -1), ("cfg_scale", float("nan")),
     ("denoising_strength", 1.5), ("seed", -2), ("steps", "20")],
)
def test_bad_values_name_the_field(name: str, value: object) -> None:
    p = Txt2ImgParams()
    setattr(p, name, value)
    with pytest.raises(ParamError) as err:
        validate_params(p)
    assert err.value.field == name


def test_valid_params_pass_and_labels_exist() -> None:
    validate_params(Txt2ImgParams(steps=20, width=768, height=512))
    meta = field_metadata(Txt2ImgParams)
    assert meta["steps"]["label"] == "Steps" and meta["cfg_scale"]["label"] == "CFG scale"


def test_sizes_round_down_to_multiples_of_8_with_a_notice() -> None:
    assert rounded_size(512, 768) == (512, 768, None)
    w, h, notice = rounded_size(515, 770)
    assert (w, h) == (512, 768) and "rounded" in notice
