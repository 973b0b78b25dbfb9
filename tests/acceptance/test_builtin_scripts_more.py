"""Built-in scripts over the API: "Custom code" (A1111 `scripts/custom_code.py`: only with `--allow-code`; the
code's return value or `display(...)` images are the job's result) and "img2img alternative test" (A1111
`scripts/img2imgalt.py`: sampling starts from the noise found by inverting the input image)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

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


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_img2img_alternative_test_samples_from_the_inverted_image(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"])
    app.wait_for_model()
    listed = app.client.get("/sdapi/v1/scripts").json()
    assert "img2img alternative test" in listed["img2img"] and "img2img alternative test" not in listed["txt2img"]
    source = decode_png(app.txt2img(steps=2)["images"][0])
    body = {"prompt": "a dog", "init_images": [_png_b64(source)], "width": 64, "height": 64, "seed": 5,
            "sampler_name": "DPM++ 2M", "steps": 3, "denoising_strength": 0.5}

    def run(**payload: object) -> tuple[np.ndarray, str]:
        response = app.client.post("/sdapi/v1/img2img", json={**body, **payload})
        assert response.status_code == 200, response.text
        data = response.json()
        pixels = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
        return pixels, json.loads(data["info"])["infotexts"][0]

    #        info, sampler, prompt, original prompt, negative, steps?, decode steps, strength?, cfg, randomness, adjust
    args = ["", True, True, "a cat", "ugly", True, 3, True, 1.5, 0.0, False]
    alt, info = run(script_name="img2img alternative test", script_args=args)
    assert info.startswith("a cat\nNegative prompt: ugly\n")
    for field in ("Steps: 3,", "Sampler: Euler,", "Denoising strength: 1,", "Decode prompt: a cat,",
                  "Decode negative prompt: ugly,", "Decode CFG scale: 1.5,", "Decode steps: 3,", "Randomness: 0,",
                  "Sigma Adjustment: False"):
        assert field in info, (field, info)
    plain, _ = run(prompt="a cat", negative_prompt="ugly", sampler_name="Euler", denoising_strength=1.0)
    assert np.abs(alt - plain).mean() > 1, "the found noise did not replace the random noise"
    again, _ = run(script_name="img2img alternative test", script_args=args)
    assert np.array_equal(again, alt)
    adjusted, info = run(script_name="img2img alternative test", script_args=[*args[:-1], True])
    assert "Sigma Adjustment: True" in info and not np.array_equal(adjusted, alt)
    mixed, _ = run(script_name="img2img alternative test", script_args=[*args[:-2], 0.5, False])
    assert not np.array_equal(mixed, alt)
    response = app.client.post("/sdapi/v1/img2img", json={**body, "script_name": "img2img alternative test",
                                                           "script_args": [*args[:-2], 1.5, False]})
    assert 400 <= response.status_code < 500 and "Randomness" in response.text
