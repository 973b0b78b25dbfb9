"""Every `/sdapi/v1` endpoint's happy path and response shape (A1111 1.10, reference §12) on one live `--nowebui`
server with a tiny SD1 checkpoint, plus `--api-auth` on every route and the PNG infotext = `info["infotexts"]`.

Endpoints of features that are not built yet must answer A1111's error JSON with 501 `FeatureNotAvailableError`
(never a traceback or a fake success); once built they must answer the A1111 shape checked here.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fixtures.tiny_interrogate import make_deepbooru
from tests.integration.conftest import LiveServer, LiveServerFactory

SMALL = {"prompt": "a red cube", "steps": 2, "width": 64, "height": 64, "seed": 7, "cfg_scale": 5}
ERROR_KEYS = {"error", "detail", "body", "errors"}


def png_b64(size: tuple[int, int] = (64, 64), text: str | None = None) -> str:
    from PIL.PngImagePlugin import PngInfo

    buffer = io.BytesIO()
    meta = PngInfo()
    if text is not None:
        meta.add_text("parameters", text)
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="PNG", pnginfo=meta)
    return base64.b64encode(buffer.getvalue()).decode()


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint) -> LiveServer:
    data = tmp_path_factory.mktemp("contract-data")
    target = data / "models" / "Stable-diffusion"
    target.mkdir(parents=True)
    shutil.copy2(tiny_checkpoint("sd1"), target / "tiny-sd1.safetensors")
    (data / "styles.csv").write_text("name,prompt,negative_prompt\nNoir,\"{prompt}, noir\",color\n", encoding="utf-8")
    make_deepbooru(data / "models" / "torch_deepdanbooru" / "model-resnet_custom_v3.pt")  # interrogate offline
    srv = live_server(["--nowebui", "--api"], data_dir=data)
    srv.ctx.models.load(None)
    return srv


def keys(*names: str) -> Callable[[Any], None]:
    """Check: a list whose items have exactly these keys (an empty list passes the type check only)."""
    def check(body: Any) -> None:
        assert isinstance(body, list)
        for item in body:
            assert set(item) == set(names), item
    return check


def is_dict_with(*names: str) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        assert isinstance(body, dict) and set(names) <= set(body), body
    return check


def equals(value: Any) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        assert body == value
    return check


def generation(body: Any) -> None:
    assert set(body) == {"images", "parameters", "info"}
    assert len(body["images"]) == 1 and decode(body["images"][0]).size == (64, 64)
    info = json.loads(body["info"])
    assert info["seed"] == 7 and info["width"] == 64 and len(info["infotexts"]) == 1


def progress_shape(body: Any) -> None:
    assert set(body) == {"progress", "eta_relative", "state", "current_image", "textinfo"}
    assert {"skipped", "interrupted", "stopping_generation", "job", "job_count", "job_timestamp", "job_no",
            "sampling_step", "sampling_steps"} <= set(body["state"])
    assert body["progress"] == 0 and body["state"]["job_count"] == 0


def sd_models(body: Any) -> None:
    keys("title", "model_name", "hash", "sha256", "filename", "config")(body)
    assert [m["model_name"] for m in body] == ["tiny-sd1"]


def scripts(body: Any) -> None:
    assert set(body) == {"txt2img", "img2img"}
    assert "x/y/z plot" in body["txt2img"] and "loopback" in body["img2img"] and "loopback" not in body["txt2img"]


def script_info(body: Any) -> None:
    keys("name", "is_alwayson", "is_img2img", "args")(body)
    xyz = next(s for s in body if s["name"] == "x/y/z plot" and not s["is_img2img"])
    assert xyz["args"] and set(xyz["args"][0]) == {"label", "value", "minimum", "maximum", "step", "choices"}


def memory(body: Any) -> None:
    assert set(body) == {"ram", "cuda"} and {"free", "used", "total"} <= set(body["ram"])


def styles(body: Any) -> None:
    assert body == [{"name": "Noir", "prompt": "{prompt}, noir", "negative_prompt": "color"}]


def png_info(body: Any) -> None:
    assert body["info"] == "a cat\nSteps: 3, Sampler: Euler, Seed: 5, Size: 64x64"
    # A1111's parse_generation_parameters keeps the values as strings
    assert body["parameters"]["Steps"] == "3" and body["parameters"]["Seed"] == "5" and "items" in body


IMAGE = png_b64()
EXTRAS = {"upscaling_resize": 1, "upscaler_1": "Lanczos"}
# (method, path, json body, check of a 200 answer, may answer 501 while the feature is not built)
CASES: list[tuple[str, str, Any, Callable[[Any], None], bool]] = [
    ("POST", "txt2img", SMALL, generation, False),
    ("POST", "img2img", {**SMALL, "init_images": [IMAGE], "denoising_strength": 0.5}, generation, False),
    ("POST", "extra-single-image", {"image": IMAGE, **EXTRAS}, is_dict_with("image", "html_info"), True),
    ("POST", "extra-batch-images", {"imageList": [{"data": IMAGE, "name": "a.png"}], **EXTRAS},
     is_dict_with("images", "html_info"), True),
    ("POST", "png-info", {"image": png_b64(text="a cat\nSteps: 3, Sampler: Euler, Seed: 5, Size: 64x64")},
     png_info, False),
    ("GET", "progress", None, progress_shape, False),
    ("POST", "interrogate", {"image": IMAGE, "model": "deepdanbooru"}, is_dict_with("caption"), False),
    ("POST", "interrupt", None, equals({}), False),
    ("POST", "skip", None, equals(None), False),
    ("GET", "options", None, is_dict_with("sd_model_checkpoint", "CLIP_stop_at_last_layers", "samples_format"),
     False),
    ("POST", "options", {"samples_format": "png"}, equals(None), False),
    ("GET", "cmd-flags", None, lambda b: (is_dict_with("api", "nowebui", "data_dir")(b), b["nowebui"] is True),
     False),
    ("GET", "samplers", None, keys("name", "aliases", "options"), False),
    ("GET", "schedulers", None, keys("name", "label", "aliases", "default_rho", "need_inner_model"), False),
    ("GET", "upscalers", None, keys("name", "model_name", "model_path", "model_url", "scale"), False),
    ("GET", "latent-upscale-modes", None, keys("name"), False),
    ("GET", "sd-models", None, sd_models, False),
    ("GET", "sd-vae", None, keys("model_name", "filename"), False),
    ("GET", "hypernetworks", None, keys("name", "path"), False),
    ("GET", "face-restorers", None, keys("name", "cmd_dir"), False),
    ("GET", "realesrgan-models", None, keys("name", "path", "scale"), False),
    ("GET", "prompt-styles", None, styles, False),
    ("GET", "embeddings", None, is_dict_with("loaded", "skipped"), True),
    ("GET", "loras", None, keys("name", "alias", "path", "metadata"), False),
    ("GET", "scripts", None, scripts, False),
    ("GET", "script-info", None, script_info, False),
    ("GET", "extensions", None, keys("name", "remote", "branch", "commit_hash", "commit_date", "version",
                                      "enabled"), False),
    ("POST", "refresh-checkpoints", None, equals(None), False),
    ("POST", "refresh-vae", None, equals(None), False),
    ("POST", "refresh-loras", None, equals(None), False),
    ("POST", "refresh-embeddings", None, equals(None), True),
    ("POST", "unload-checkpoint", None, equals({}), False),
    ("POST", "reload-checkpoint", None, equals({}), False),
    ("GET", "memory", None, memory, False),
    ("POST", "create/embedding", {"name": "e1", "num_vectors_per_token": 1}, is_dict_with("info"), True),
    ("POST", "create/hypernetwork", {"name": "h1", "enable_sizes": [768]}, is_dict_with("info"), True),
]


@pytest.mark.parametrize(("method", "path", "body", "check", "may_be_missing"), CASES,
                         ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_endpoint_happy_path_and_shape(server: LiveServer, method: str, path: str, body: Any,
                                       check: Callable[[Any], None], may_be_missing: bool) -> None:
    response = server.client.request(method, f"/sdapi/v1/{path}", json=body)
    if may_be_missing and response.status_code == 501:
        assert set(response.json()) == ERROR_KEYS and response.json()["error"] == "FeatureNotAvailableError"
        return
    assert response.status_code == 200, response.text
    check(response.json())


def test_every_route_is_in_the_table(server: LiveServer) -> None:
    """A new route must be added to CASES (server control routes are covered by test_api_info)."""
    spec = server.client.get("/openapi.json").json()
    routes = {(m.upper(), p.removeprefix("/sdapi/v1/")) for p, ms in spec["paths"].items() if p.startswith("/sdapi")
              for m in ms}
    tested = {(c[0], c[1]) for c in CASES} | {("POST", f"server-{a}") for a in ("kill", "restart", "stop")}
    # these need a dataset: tests/acceptance/test_train_embedding.py, tests/acceptance/test_train_hypernetwork.py
    tested |= {("POST", "train/embedding"), ("POST", "train/hypernetwork")}
    assert routes - tested == set()


def test_png_infotext_equals_info_infotexts(server: LiveServer) -> None:
    body = {**SMALL, "batch_size": 2, "negative_prompt": "blurry, lowres", "seed": 99}
    response = server.client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    info = json.loads(data["info"])
    infotexts = info["infotexts"]
    # A1111 with a batch: the grid first (setting return_grid), then each image; one infotext per returned image
    assert len(data["images"]) == len(infotexts) == 3 and info["index_of_first_image"] == 1
    for b64, infotext in zip(data["images"], infotexts, strict=True):
        assert decode(b64).info["parameters"] == infotext
    assert "Seed: 99," in infotexts[1] and "Seed: 100," in infotexts[2]
    # and png-info reads it back the way A1111 parses it
    parsed = server.client.post("/sdapi/v1/png-info", json={"image": data["images"][1]}).json()
    assert parsed["info"] == infotexts[1] and parsed["parameters"]["Seed"] == "99"
    assert parsed["parameters"]["Negative prompt"] == "blurry, lowres"


@pytest.fixture(scope="module")
def auth_server(live_server: LiveServerFactory) -> LiveServer:
    return live_server(["--nowebui", "--api", "--api-auth", "alice:s3cret,bob:pa:ss", "--api-server-stop"])


def test_api_auth_guards_every_route(auth_server: LiveServer) -> None:
    spec = auth_server.client.get("/openapi.json", auth=("alice", "s3cret")).json()
    routes = [(m.upper(), p) for p, ms in spec["paths"].items() if p.startswith("/sdapi") for m in ms]
    assert len(routes) >= 35
    for index, (method, path) in enumerate(routes):
        # each route from its own loopback address: the login brake (5 wrong logins a minute per address) would
        # otherwise answer 429 after the first few routes
        transport = httpx.HTTPTransport(local_address=f"127.0.{index // 200 + 10}.{index % 200 + 2}")
        with httpx.Client(transport=transport, timeout=10) as client:
            for creds in (None, ("alice", "wrong"), ("mallory", "s3cret")):
                response = client.request(method, auth_server.url + path, json={}, auth=creds)
                assert response.status_code == 401, (method, path, creds, response.status_code)
            assert response.headers["www-authenticate"].lower().startswith("basic"), path
    ok = auth_server.client.get("/sdapi/v1/samplers", auth=("alice", "s3cret"))
    assert ok.status_code == 200
    # the password is split at the first ":" (A1111 `--api-auth "user:pass"` parsing)
    assert auth_server.client.get("/sdapi/v1/options", auth=("bob", "pa:ss")).status_code == 200
