"""Train embedding (A1111 Train tab, `POST /sdapi/v1/train/embedding`) as a user reaches it: training updates the
file and the embedding list, resumes from the saved step, stops on Interrupt with its progress saved, refuses bad
input with a 4xx, and runs from the browser."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import torch

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, two_image_dataset
from tests.browser.conftest import fill_text


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"], prepare=two_image_dataset)
    running.wait_for_model()
    return running


def body(app: RunningApp, name: str, steps: int, **extra: Any) -> dict[str, Any]:
    return {"embedding_name": name, "learn_rate": "0.05", "batch_size": 2, "gradient_step": 1,
            "data_root": str(app.data_dir / "train-images"), "training_width": 64, "training_height": 64,
            "steps": steps, "template_filename": "style.txt", "save_embedding_every": 2,
            "latent_sampling_method": "deterministic", **extra}


def vectors(app: RunningApp, name: str) -> torch.Tensor:
    data = torch.load(app.data_dir / "embeddings" / f"{name}.pt", weights_only=True)
    vec: torch.Tensor = data["string_to_param"]["*"]
    return vec


def test_train_then_resume_updates_file_and_list(app: RunningApp) -> None:
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": "learned", "init_text": "cat"}
                           ).status_code == 200
    initial = vectors(app, "learned")
    response = app.client.post("/sdapi/v1/train/embedding", json=body(app, "learned", 4))
    assert response.status_code == 200, response.text
    assert response.json()["info"] == (f"train embedding complete: filename: "
                                       f"{app.data_dir / 'embeddings' / 'learned.pt'} error: None")
    assert not torch.equal(vectors(app, "learned"), initial)
    assert app.client.get("/sdapi/v1/embeddings").json()["loaded"]["learned"]["step"] == 4
    again = app.client.post("/sdapi/v1/train/embedding", json=body(app, "learned", 6))
    assert again.status_code == 200, again.text
    assert app.client.get("/sdapi/v1/embeddings").json()["loaded"]["learned"]["step"] == 6
    logs = list((app.data_dir / "textual_inversion").rglob("learned-2.pt"))
    assert logs, "a copy is saved to the log directory every save_embedding_every steps"


def test_interrupt_stops_training_and_keeps_its_progress(app: RunningApp) -> None:
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": "stopme"}).status_code == 200
    answer: dict[str, Any] = {}

    def train() -> None:
        with httpx.Client(base_url=app.url, timeout=600) as client:
            answer["response"] = client.post("/sdapi/v1/train/embedding", json=body(app, "stopme", 100000))

    thread = threading.Thread(target=train)
    thread.start()

    def training() -> bool:
        state = app.client.get("/sdapi/v1/progress").json()["state"]
        return bool(state["job"] == "train_embedding" and state["sampling_step"] >= 2)

    app.wait_for("training to run a few steps", training, timeout=120)
    assert app.client.post("/sdapi/v1/interrupt").status_code == 200
    thread.join(timeout=120)
    response = answer["response"]
    assert response.status_code == 200 and response.json()["info"].startswith("train embedding interrupted")
    step = app.client.get("/sdapi/v1/embeddings").json()["loaded"]["stopme"]["step"]
    assert 2 <= step < 100000


@pytest.mark.parametrize(("change", "detail"), [
    ({"embedding_name": "missing"}, "not found"),
    ({"learn_rate": "0.1:x"}, "Invalid learning rate"),
    ({"data_root": "/no/such/folder"}, "does not exist"),
    ({"template_filename": "nope.txt"}, "not found"),
])
def test_bad_training_input_is_400(app: RunningApp, change: dict[str, Any], detail: str) -> None:
    app.client.post("/sdapi/v1/create/embedding", json={"name": "target", "overwrite_old": True})
    response = app.client.post("/sdapi/v1/train/embedding", json={**body(app, "target", 3), **change})
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


@pytest.mark.browser
def test_train_tab_trains(app: RunningApp, browser: Any) -> None:
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": "viaui", "overwrite_old": True}
                           ).status_code == 200
    page = open_ui(browser, app.url)
    page.click("#tab_train-button")
    page.click("#train_train_tab-button")
    page.click("#train_refresh_embeddings")
    page.click("#train_embedding input")
    page.get_by_role("option", name="viaui", exact=True).click()
    fill_text(page, "train_dataset_directory", str(app.data_dir / "train-images"))
    page.click("#train_template_file input")
    page.get_by_role("option", name="style.txt", exact=True).click()
    for elem_id, value in (("train_training_width", 64), ("train_training_height", 64), ("train_steps", 2),
                           ("train_batch_size", 2)):
        box = page.locator(f"#{elem_id} input[type=number]").first
        box.fill(str(value))
        box.press("Tab")
    page.click("#train_train_embedding")
    page.wait_for_function("() => /Training complete|Error/.test(document.querySelector("
                           "'#train_embedding_outcome')?.innerText || '')", timeout=120000)
    assert "viaui.pt" in page.inner_text("#train_embedding_outcome"), page.inner_text("#train_embedding_outcome")
    assert app.client.get("/sdapi/v1/embeddings").json()["loaded"]["viaui"]["step"] == 2
    page.close()
