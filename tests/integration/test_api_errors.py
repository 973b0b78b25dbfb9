"""Bad API input gets a 4xx JSON error naming the field, and the server keeps serving the next request.

A1111 facts (reference §12): validation errors are JSON `{error, detail, body, errors}`; an unknown sampler is
400 "Sampler not found"; img2img without init images is 404 "Init image not found"; a script that does not exist is
422 "Script … not found". These checks run before any job is queued, so they need no model and no pipeline.
"""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.integration.conftest import LiveServer, LiveServerFactory


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory) -> LiveServer:
    return live_server(["--nowebui", "--api", "--freeze-specific-settings", "samples_save"])


def _png_b64(size: tuple[int, int] = (16, 16)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _still_serving(server: LiveServer) -> None:
    response = server.client.get("/sdapi/v1/progress")
    assert response.status_code == 200 and response.json()["state"]["job_count"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": "many"}, "steps"),
        ({"steps": -1}, "steps"),
        ({"steps": 10**7}, "steps"),
        ({"width": -512}, "width"),
        ({"height": 10**6}, "height"),
        ({"batch_size": 1000}, "batch_size"),
        ({"n_iter": 0}, "n_iter"),
        ({"cfg_scale": "lots"}, "cfg_scale"),
        ({"seed": "abc"}, "seed"),
        ({"denoising_strength": 7}, "denoising_strength"),
        ({"styles": "not-a-list"}, "styles"),
        ({"override_settings": []}, "override_settings"),
    ],
)
def test_bad_txt2img_fields_are_422_naming_the_field(server: LiveServer, body: dict, field: str) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422, response.text
    data = response.json()
    assert set(data) >= {"error", "detail", "errors"}
    assert data["detail"].startswith(field), data["detail"]
    assert data["errors"][0]["field"] == field
    _still_serving(server)


def test_too_many_pixels_is_422_naming_width(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={"width": 8192, "height": 8192, "batch_size": 4})
    assert response.status_code == 422 and "width" in response.json()["detail"]
    _still_serving(server)


def test_body_that_is_not_json_is_422(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", content=b"{not json", headers={"content-type":
                                                                                        "application/json"})
    assert response.status_code == 422 and response.json()["error"] == "ValidationError"
    _still_serving(server)


@pytest.mark.parametrize("name", ["Bogus sampler", "Euler z", "DPM++ 9M"])
def test_unknown_sampler_is_400_sampler_not_found(server: LiveServer, name: str) -> None:
    for field in ("sampler_name", "sampler_index"):
        response = server.client.post("/sdapi/v1/txt2img", json={field: name})
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("Sampler not found")
        assert name in response.json()["detail"]
    _still_serving(server)


def test_unknown_scheduler_is_422_naming_it(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={"scheduler": "wobbly"})
    assert response.status_code == 422 and response.json()["detail"].startswith("scheduler")


def test_unknown_script_is_422(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={"script_name": "no such script"})
    assert response.status_code == 422 and "Script 'no such script' not found" in response.json()["detail"]
    response = server.client.post("/sdapi/v1/txt2img", json={"alwayson_scripts": {"ghost": {"args": []}}})
    assert response.status_code == 422 and "ghost" in response.json()["detail"]


def test_override_settings_are_checked_before_queueing(server: LiveServer) -> None:
    unknown = server.client.post("/sdapi/v1/txt2img", json={"override_settings": {"CLIP_stop_at_last_layerz": 2}})
    assert unknown.status_code == 400 and "CLIP_stop_at_last_layerz" in unknown.json()["detail"]
    assert "CLIP_stop_at_last_layers" in unknown.json()["detail"]  # the suggestion
    bad = server.client.post("/sdapi/v1/txt2img", json={"override_settings": {"CLIP_stop_at_last_layers": "x"}})
    assert bad.status_code == 422 and "CLIP_stop_at_last_layers" in bad.json()["detail"]
    frozen = server.client.post("/sdapi/v1/txt2img", json={"override_settings": {"samples_save": False}})
    assert frozen.status_code == 403 and "samples_save" in frozen.json()["detail"]
    missing = server.client.post("/sdapi/v1/txt2img", json={"override_settings": {"sd_model_checkpoint": "nope"}})
    assert missing.status_code == 400 and "nope" in missing.json()["detail"]
    _still_serving(server)


def test_img2img_without_init_images_is_404(server: LiveServer) -> None:
    for body in ({}, {"init_images": []}):
        response = server.client.post("/sdapi/v1/img2img", json=body)
        assert response.status_code == 404 and response.json()["detail"] == "Init image not found"


@pytest.mark.parametrize(
    "payload",
    ["%%%not base64%%%", base64.b64encode(b"just some text, not an image").decode(),
     "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode(), ""],
)
def test_undecodable_init_image_is_422_naming_it(server: LiveServer, payload: str) -> None:
    response = server.client.post("/sdapi/v1/img2img", json={"init_images": [_png_b64(), payload]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("init_images[1]")
    _still_serving(server)


def test_undecodable_mask_is_422_naming_mask(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/img2img", json={"init_images": [_png_b64()], "mask": "@@@"})
    assert response.status_code == 422 and response.json()["detail"].startswith("mask")


def test_image_url_to_a_local_address_is_refused(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/img2img",
                                  json={"init_images": [f"{server.url}/sdapi/v1/progress"]})
    assert response.status_code == 422 and "local address" in response.json()["detail"]


def test_png_info_of_garbage_is_422_and_empty_is_empty(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(b"nope").decode()})
    assert response.status_code == 422 and response.json()["detail"].startswith("image")
    empty = server.client.post("/sdapi/v1/png-info", json={"image": ""})
    assert empty.status_code == 200 and empty.json() == {"info": "", "items": {}, "parameters": {}}


def test_options_errors_name_the_key_and_change_nothing(server: LiveServer) -> None:
    before = server.client.get("/sdapi/v1/options").json()
    response = server.client.post("/sdapi/v1/options", json={"jpeg_quality": 50, "samples_formatt": "jpg"})
    assert response.status_code == 400 and "samples_formatt" in response.json()["detail"]
    bad = server.client.post("/sdapi/v1/options", json={"jpeg_quality": 500})
    assert bad.status_code == 422 and "jpeg_quality" in bad.json()["detail"]
    frozen = server.client.post("/sdapi/v1/options", json={"samples_save": False})
    assert frozen.status_code == 403 and "samples_save" in frozen.json()["detail"]
    not_object = server.client.post("/sdapi/v1/options", json=[1, 2])
    assert not_object.status_code == 422
    assert server.client.get("/sdapi/v1/options").json()["jpeg_quality"] == before["jpeg_quality"]


def test_unknown_checkpoint_in_options_is_400(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "does-not-exist.safetensors"})
    assert response.status_code == 400 and "does-not-exist" in response.json()["detail"]
    _still_serving(server)


def test_extras_validate_images_and_run(server: LiveServer) -> None:
    bad = server.client.post("/sdapi/v1/extra-single-image", json={"image": "!!"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("image")
    bad_batch = server.client.post("/sdapi/v1/extra-batch-images",
                                   json={"imageList": [{"data": _png_b64(), "name": "a"}, {"data": "??"}]})
    assert bad_batch.status_code == 422 and bad_batch.json()["detail"].startswith("imageList[1].data")
    response = server.client.post("/sdapi/v1/extra-single-image", json={"image": _png_b64()})  # postprocessing chain
    assert response.status_code == 200 and set(response.json()) == {"image", "html_info"}
