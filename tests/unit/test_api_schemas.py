"""API request models are derived from the one params schema: same names, defaults, bounds."""

import dataclasses

import pytest
from pydantic import ValidationError

from modules.api.schemas import Img2ImgRequest, Txt2ImgRequest, params_field_names
from modules.processing.params import Img2ImgParams, Txt2ImgParams


def test_every_params_field_is_a_request_field() -> None:
    assert params_field_names(Txt2ImgParams) <= set(Txt2ImgRequest.model_fields)
    assert params_field_names(Img2ImgParams) <= set(Img2ImgRequest.model_fields)


def test_api_defaults_are_a1111_api_defaults() -> None:
    req = Txt2ImgRequest()
    assert req.steps == 50 and req.sampler_index == "Euler" and req.sampler_name is None
    assert req.send_images is True and req.save_images is False
    defaults = Txt2ImgParams()
    for f in dataclasses.fields(Txt2ImgParams):
        if f.name != "firstpass_image":
            assert getattr(req, f.name) == getattr(defaults, f.name), f.name


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", -1), ("steps", 10**6), ("width", 0), ("batch_size", 1000), ("cfg_scale", "lots"),
     ("denoising_strength", 2.0), ("seed", "abc")],
)
def test_bad_fields_fail_validation_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        Txt2ImgRequest(**{field: value})
    assert err.value.errors()[0]["loc"][0] == field


def test_images_are_strings_and_unknown_fields_are_ignored() -> None:
    req = Img2ImgRequest(init_images=["iVBORw0KGgo="], mask=None, some_client_field=1)
    assert req.init_images == ["iVBORw0KGgo="] and req.include_init_images is False
    assert not hasattr(req, "some_client_field")
