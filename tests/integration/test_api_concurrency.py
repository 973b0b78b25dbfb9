"""The shared job queue seen through the API: 20 concurrent txt2img requests, interrupt, progress.

A1111 facts (reference §12): generation endpoints serialise on one FIFO `queue_lock`, so requests run one at a time
in arrival order and none is lost; `POST /interrupt` stops the running job at its next step and answers `{}`; the
interrupted request still answers 200 with `{images, parameters, info}`; the next request runs normally;
`GET /progress` reports `state.job_count` (= n_iter), `state.job_no`, `sampling_step`/`sampling_steps`,
`eta_relative` and `current_image` (the live preview, every `show_progress_every_n_steps` steps).
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import shutil
import threading
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.conftest import LiveServer, LiveServerFactory

SMALL = {"prompt": "a red cube", "steps": 1, "width": 64, "height": 64, "cfg_scale": 5}
LONG = {**SMALL, "steps": 20, "n_iter": 2, "seed": 5, "override_settings": {"show_progress_every_n_steps": 1}}


@pytest.fixture(scope="module")
def server(live_server: LiveServerFactory, tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint) -> LiveServer:
    data = tmp_path_factory.mktemp("queue-data")
    target = data / "models" / "Stable-diffusion"
    target.mkdir(parents=True)
    shutil.copy2(tiny_checkpoint("sd1"), target / "tiny-sd1.safetensors")
    srv = live_server(["--nowebui", "--api"], data_dir=data)
    srv.ctx.models.load(None)
    return srv


def pixels_digest(b64: str) -> str:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_twenty_concurrent_requests_all_complete_fifo_with_distinct_images(server: LiveServer) -> None:
    count = 20
    responses: dict[int, httpx.Response] = {}
    client = httpx.Client(base_url=server.url, timeout=300, limits=httpx.Limits(max_connections=count))

    def post(i: int) -> None:
        responses[i] = client.post("/sdapi/v1/txt2img",
                                   json={**SMALL, "seed": 1000 + i, "force_task_id": f"task(fifo-{i:02d})"})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    try:
        for i, thread in enumerate(threads):
            thread.start()  # each request is queued before the next is sent, so arrival order is known
            wait_for(lambda i=i: server.ctx.jobs.get(f"task(fifo-{i:02d})"), 30, f"request {i} to be queued")
        for thread in threads:
            thread.join(timeout=300)
    finally:
        client.close()
    assert sorted(responses) == list(range(count)), "a request was lost"
    assert all(r.status_code == 200 for r in responses.values()), [r.text for r in responses.values()
                                                                   if r.status_code != 200]
    seeds = [json.loads(responses[i].json()["info"])["seed"] for i in range(count)]
    assert seeds == [1000 + i for i in range(count)]
    digests = {pixels_digest(responses[i].json()["images"][0]) for i in range(count)}
    assert len(digests) == count, "two different seeds gave the same image"
    jobs = [server.ctx.jobs.get(f"task(fifo-{i:02d})") for i in range(count)]
    starts = [job.started_at for job in jobs]
    assert starts == sorted(starts), "jobs did not run in arrival order"
    for earlier, later in itertools.pairwise(jobs):
        assert earlier.finished_at <= later.started_at, "two jobs overlapped"
    idle = server.client.get("/sdapi/v1/progress").json()
    assert idle["state"]["job_count"] == 0 and idle["progress"] == 0


def test_progress_during_a_job_then_interrupt_returns_early_and_next_job_runs(server: LiveServer) -> None:
    result: dict[str, Any] = {}

    def long_job() -> None:
        started = time.monotonic()
        result["response"] = server.client.post("/sdapi/v1/txt2img", json=LONG, timeout=300)
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=long_job)
    thread.start()

    def progress() -> dict[str, Any]:
        response = server.client.get("/sdapi/v1/progress")
        assert response.status_code == 200
        return response.json()

    def second_batch_with_preview() -> dict[str, Any] | None:
        body = progress()
        state = body["state"]
        return body if state["job_no"] >= 1 and state["sampling_step"] >= 2 and body["current_image"] else None

    body = wait_for(second_batch_with_preview, 120, "the second batch of the long job with a live preview")
    state = body["state"]
    assert state["job_count"] == 2 and state["sampling_steps"] == 20
    assert 0 < body["progress"] < 1 and body["eta_relative"] > 0
    assert Image.open(io.BytesIO(base64.b64decode(body["current_image"]))).size[0] > 0
    assert progress()["current_image"] is not None
    skipped = server.client.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()
    assert skipped["current_image"] is None

    interrupted_at = time.monotonic()
    answer = server.client.post("/sdapi/v1/interrupt")
    assert answer.status_code == 200 and answer.json() == {}
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert time.monotonic() - interrupted_at < 10, "the job did not stop at its next step"
    response = result["response"]
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"images", "parameters", "info"} and isinstance(json.loads(data["info"]), dict)
    assert data["parameters"]["steps"] == 20

    after = server.client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": 3})
    assert after.status_code == 200 and len(after.json()["images"]) == 1
    assert json.loads(after.json()["info"])["seed"] == 3
    assert progress()["state"]["interrupted"] is False
