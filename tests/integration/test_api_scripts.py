"""Scripts, per-request settings, checkpoint switching and legacy sampler names through the live API.

A1111 facts (reference §12): `script_name` = title of a selectable script (case-insensitive), `script_args` its
values in order; `alwayson_scripts` = `{"<title>": {"args": [...]}}` (case-insensitive); unknown titles or bad
arguments are 422. `/scripts` lists lower-cased titles per tab, `/script-info` their arguments. `override_settings`
apply to one request and are restored afterwards; `POST /options {"sd_model_checkpoint": …}` loads that model.
"DPM++ 2M Karras" (sampler + schedule) and `sampler_index` are accepted; an unknown sampler is 400.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import textwrap

import pytest
from PIL import Image

from tests.integration.conftest import LiveServer, LiveServerFactory

SMALL = {"prompt": "a red cube", "steps": 1, "width": 64, "height": 64, "seed": 11, "cfg_scale": 5}

PROBE_SCRIPT = textwrap.dedent('''
    from modules.extensions.api import AlwaysVisible, Script, ScriptArg, copy_params, process_images


    class CornerMarker(Script):
        def title(self):
            return "Corner Marker"

        def show(self, is_img2img):
            return AlwaysVisible

        def ui(self, is_img2img):
            return [ScriptArg("enabled", default=False, kind="checkbox"),
                    ScriptArg("red", default=255, kind="slider", minimum=0, maximum=255, step=1)]

        def postprocess_image(self, p, pp, enabled, red):
            if enabled:
                pp.image = pp.image.copy()
                pp.image.putpixel((0, 0), (int(red), 1, 2))


    class PromptSuffix(Script):
        def title(self):
            return "Prompt Suffix"

        def ui(self, is_img2img):
            return [ScriptArg("suffix", default=", suffix")]

        def run(self, p, suffix):
            return process_images(copy_params(p, prompt=p.prompt + suffix))
''')


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint) -> LiveServer:
    data = tmp_path_factory.mktemp("scripts-data")
    target = data / "models" / "Stable-diffusion"
    target.mkdir(parents=True)
    shutil.copy2(tiny_checkpoint("sd1"), target / "tiny-a.safetensors")
    shutil.copy2(tiny_checkpoint("sd1", seed=1), target / "tiny-b.safetensors")
    scripts = data / "extensions" / "api-probe" / "scripts"
    scripts.mkdir(parents=True)
    (scripts / "probe.py").write_text(PROBE_SCRIPT, encoding="utf-8")
    srv = live_server(["--nowebui", "--api"], data_dir=data)
    srv.ctx.models.load("tiny-a")
    return srv


def txt2img(server: LiveServer, **fields: object) -> dict:
    response = server.client.post("/sdapi/v1/txt2img", json={**SMALL, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def first_image(data: dict) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data["images"][0])))
    image.load()
    return image


def infotext(data: dict) -> str:
    return json.loads(data["info"])["infotexts"][0]


def test_scripts_and_script_info_list_the_loaded_scripts(server: LiveServer) -> None:
    listed = server.client.get("/sdapi/v1/scripts").json()
    for tab in ("txt2img", "img2img"):
        assert {"corner marker", "prompt suffix", "x/y/z plot", "prompt matrix"} <= set(listed[tab])
    info = server.client.get("/sdapi/v1/script-info").json()
    marker = next(s for s in info if s["name"] == "corner marker" and not s["is_img2img"])
    assert marker["is_alwayson"] is True
    assert marker["args"] == [
        {"label": "enabled", "value": False, "minimum": None, "maximum": None, "step": None, "choices": None},
        {"label": "red", "value": 255, "minimum": 0, "maximum": 255, "step": 1, "choices": None}]
    assert next(s for s in info if s["name"] == "prompt suffix")["is_alwayson"] is False


def test_alwayson_script_args_case_insensitive_title(server: LiveServer) -> None:
    marked = txt2img(server, alwayson_scripts={"corner MARKER": {"args": [True, 200]}})
    assert first_image(marked).convert("RGB").getpixel((0, 0)) == (200, 1, 2)
    default_red = txt2img(server, alwayson_scripts={"Corner Marker": {"args": [True]}})
    assert first_image(default_red).convert("RGB").getpixel((0, 0)) == (255, 1, 2)
    plain = txt2img(server)
    assert first_image(plain).convert("RGB").getpixel((0, 0)) != (255, 1, 2)


def test_selected_script_runs_with_script_args(server: LiveServer) -> None:
    data = txt2img(server, script_name="prompt suffix", script_args=[", golden hour"])
    assert infotext(data).startswith("a red cube, golden hour\n")
    default = txt2img(server, script_name="Prompt Suffix")
    assert infotext(default).startswith("a red cube, suffix\n")


@pytest.mark.parametrize("fields", [
    {"script_name": "No Such Script"},
    {"script_name": "Prompt Suffix", "script_args": ["a", "too many"]},
    {"script_name": "corner marker"},  # always-on scripts are not selectable
    {"alwayson_scripts": {"Nope": {"args": []}}},
    {"alwayson_scripts": {"Corner Marker": {"args": [True, 1, 2]}}},
], ids=["unknown", "too-many-args", "alwayson-as-selected", "unknown-alwayson", "alwayson-too-many"])
def test_bad_scripts_are_422(server: LiveServer, fields: dict) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={**SMALL, **fields})
    assert response.status_code == 422, response.text
    assert set(response.json()) >= {"error", "detail"}
    assert server.client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0


def test_override_settings_apply_to_one_request_only(server: LiveServer) -> None:
    assert server.client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 1
    skipped = txt2img(server, override_settings={"CLIP_stop_at_last_layers": 2})
    assert "Clip skip: 2" in infotext(skipped)
    assert server.client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 1
    plain = txt2img(server)
    assert "Clip skip" not in infotext(plain)
    assert first_image(plain).tobytes() != first_image(skipped).tobytes()


def test_checkpoint_switch_through_options(server: LiveServer) -> None:
    before = txt2img(server)
    assert "Model: tiny-a" in infotext(before)
    assert server.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-b"}).status_code == 200
    try:
        options = server.client.get("/sdapi/v1/options").json()
        assert options["sd_model_checkpoint"].startswith("tiny-b")
        after = txt2img(server)
        assert "Model: tiny-b" in infotext(after) and json.loads(after["info"])["sd_model_name"] == "tiny-b"
        digest = [hashlib.sha256(first_image(d).tobytes()).hexdigest() for d in (before, after)]
        assert digest[0] != digest[1], "the other checkpoint gave the same image"
        bad = server.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "missing-model"})
        assert 400 <= bad.status_code < 500
        assert server.client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("tiny-b")
    finally:
        server.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-a"})
    assert "Model: tiny-a" in infotext(txt2img(server))


@pytest.mark.parametrize(("fields", "sampler", "schedule"), [
    # A1111 `get_sampler_and_scheduler`: a schedule suffix equal to the sampler's default (DPM++ 2M → Karras) is
    # stored as "Automatic", which means that default
    ({"sampler_name": "DPM++ 2M Karras"}, "DPM++ 2M", None),
    ({"sampler_name": "Euler Karras"}, "Euler", "Karras"),
    ({"sampler_index": "Euler a"}, "Euler a", None),
    ({"sampler_name": "", "sampler_index": "Euler Exponential"}, "Euler", "Exponential"),
    ({"sampler_name": "k_dpmpp_2m", "scheduler": "exponential"}, "DPM++ 2M", "Exponential"),
])
def test_legacy_sampler_names(server: LiveServer, fields: dict, sampler: str, schedule: str | None) -> None:
    text = infotext(txt2img(server, steps=2, **fields))
    assert f"Sampler: {sampler}," in text
    if schedule is not None:
        assert f"Schedule type: {schedule}," in text


def test_unknown_sampler_is_400(server: LiveServer) -> None:
    response = server.client.post("/sdapi/v1/txt2img", json={**SMALL, "sampler_name": "Nope Sampler"})
    assert response.status_code == 400 and "Sampler not found" in response.text
