"""Unbounded work from one request, and 5xx where a 4xx belongs, attacked over HTTP on the running app."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import httpx

from tests.acceptance.conftest import WebUIFactory

SLOW = {"prompt": "a cat", "width": 64, "height": 64, "steps": 150, "seed": 1, "sampler_name": "Euler"}


def test_full_queue_answers_429_and_progress_interrupt_stay_responsive(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api", "--max-queued-jobs", "2"])
    app.txt2img()  # the model is loaded
    answers: list[int] = []

    def post() -> None:
        with httpx.Client(base_url=app.url, timeout=300) as client:
            answers.append(client.post("/sdapi/v1/txt2img", json=SLOW).status_code)

    threads = [threading.Thread(target=post) for _ in range(3)]  # 1 running + 2 waiting
    for thread in threads:
        thread.start()
        time.sleep(0.4)
    refused = app.client.post("/sdapi/v1/txt2img", json=SLOW)
    assert refused.status_code == 429 and "--max-queued-jobs" in refused.json()["detail"]
    started = time.monotonic()
    for _ in range(5):
        assert app.client.get("/sdapi/v1/progress?skip_current_image=true", timeout=5).status_code == 200
    assert time.monotonic() - started < 5
    for _ in range(3):
        assert app.client.post("/sdapi/v1/interrupt", timeout=5).status_code == 200
        time.sleep(0.3)
    for thread in threads:
        thread.join(timeout=120)
    assert answers and all(code == 200 for code in answers)


def test_a_job_whose_client_left_is_cancelled(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"])
    app.txt2img()
    with contextlib.suppress(httpx.TimeoutException):  # the client gives up and closes the connection
        httpx.post(f"{app.url}/sdapi/v1/txt2img", json={**SLOW, "steps": 150}, timeout=1.5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = app.client.get("/sdapi/v1/progress?skip_current_image=true").json()
        if not state["state"].get("job_count") and state["progress"] == 0:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the abandoned job kept running")
    started = time.monotonic()
    app.txt2img()  # the next job starts at once instead of waiting 150 steps
    assert time.monotonic() - started < 30


def test_hostile_values_are_4xx_naming_the_field(webui_app: WebUIFactory) -> None:
    app = webui_app(["--api"])
    cases = {
        "cfg_scale": b'{"prompt": "a", "cfg_scale": 1e309, "steps": 1, "width": 64, "height": 64}',
        "denoising_strength": b'{"prompt": "a", "denoising_strength": NaN, "steps": 1, "width": 64, "height": 64}',
        "subseed_strength": b'{"prompt": "a", "subseed_strength": -Infinity, "steps": 1, "width": 64, "height": 64}',
        "prompt": json.dumps({"prompt": "a\x00b", "steps": 1, "width": 64, "height": 64}).encode(),
        "negative_prompt": json.dumps({"prompt": "a", "negative_prompt": "x" * 70000, "steps": 1}).encode(),
    }
    for field, body in cases.items():
        response = app.client.post("/sdapi/v1/txt2img", content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (field, response.status_code, response.text[:200])
        assert field in response.text, (field, response.text[:300])
    nested = "(" * 5000 + "cat" + ")" * 5000
    deep = app.client.post("/sdapi/v1/txt2img", json={"prompt": nested, "steps": 1, "width": 64, "height": 64})
    assert deep.status_code < 500, deep.text[:300]
    hostile_pattern = app.client.post("/sdapi/v1/txt2img", json={
        "prompt": "a", "steps": 1, "width": 64, "height": 64, "save_images": True,
        "override_settings": {"samples_filename_pattern": "../../../../etc/[prompt]/../x\x00y"}})
    assert hostile_pattern.status_code < 500, hostile_pattern.text[:300]
    saved = list(app.data_dir.rglob("*.png"))
    assert saved, "the image is still saved"
    assert all(p.relative_to(app.data_dir).parts[0] == "outputs" for p in saved), saved
    assert not list(app.data_dir.parent.glob("*.png")) and not list(app.data_dir.parent.glob("etc*"))
