"""The "Custom code" script over the API (A1111 `scripts/custom_code.py`): only with `--allow-code`; the code's
return value or `display(...)` images are the job's result."""

from __future__ import annotations

import json

import numpy as np

from tests.acceptance.conftest import WebUIFactory, decode_png

RETURNS = """from modules.processing import process_images

p.width = 64
p.height = 64
p.steps = 1
p.batch_size = 2

return process_images(p)
"""

DISPLAYS = """from PIL import Image

display([Image.new("RGB", (40, 24), (200, 10, 30))], 1234, "shown by custom code")
"""


def test_custom_code_is_absent_and_refused_without_allow_code(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"])
    app.wait_for_model()
    listed = app.client.get("/sdapi/v1/scripts").json()
    assert "custom code" not in [t.lower() for t in listed["txt2img"] + listed["img2img"]]
    response = app.client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 1,
                                                           "script_name": "custom code", "script_args": [DISPLAYS, 2]})
    assert response.status_code == 422 and "custom code" in response.text.lower()


def test_custom_code_runs_the_users_python_with_allow_code(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--allow-code"])
    app.wait_for_model()
    listed = app.client.get("/sdapi/v1/scripts").json()
    assert "custom code" in [t.lower() for t in listed["txt2img"]]
    assert "custom code" in [t.lower() for t in listed["img2img"]]

    data = app.txt2img(width=96, height=96, steps=4, script_name="custom code", script_args=[RETURNS, 2])
    images = [decode_png(b) for b in data["images"]]
    assert [im.size for im in images if im.size == (64, 64)] == [(64, 64), (64, 64)]
    assert "Steps: 1," in json.loads(data["info"])["infotexts"][0]

    data = app.txt2img(script_name="custom code", script_args=[DISPLAYS, 4])
    shown = decode_png(data["images"][0]).convert("RGB")
    assert shown.size == (40, 24) and np.asarray(shown)[5, 5].tolist() == [200, 10, 30]
    info = json.loads(data["info"])
    assert info["seed"] == 1234 and info["infotexts"][0] == "shown by custom code"

    response = app.client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 1, "width": 64, "height": 64,
                                                           "script_name": "custom code",
                                                           "script_args": ["return (", 2]})
    assert 400 <= response.status_code < 500 and "Custom code" in response.text
