"""Create embedding / Create hypernetwork (A1111 Train tab, `POST /sdapi/v1/create/*`) as a user reaches them: the
new file is listed, changes what a prompt produces, and bad input is a clear 4xx. The Train tab does the same in
the browser."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui
from tests.browser.conftest import fill_text


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"])
    running.wait_for_model()
    return running


def image(app: RunningApp, prompt: str) -> np.ndarray:
    data = app.txt2img(prompt=prompt, negative_prompt="")
    return np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)


def test_created_embedding_is_listed_and_stands_for_its_init_text(app: RunningApp) -> None:
    before = image(app, "zorblax")
    response = app.client.post("/sdapi/v1/create/embedding",
                               json={"name": "zorblax", "num_vectors_per_token": 1, "init_text": "cat"})
    assert response.status_code == 200, response.text
    info = response.json()["info"]
    assert info.startswith("create embedding filename: ") and info.endswith("zorblax.pt")
    path = app.data_dir / "embeddings" / "zorblax.pt"
    data = torch.load(path, weights_only=True)
    assert data["name"] == "zorblax" and data["step"] == 0 and data["string_to_token"] == {"*": 265}
    assert data["sd_checkpoint_name"] == "sd1" and tuple(data["string_to_param"]["*"].shape) == (1, 128)

    listed = app.client.get("/sdapi/v1/embeddings").json()["loaded"]
    assert listed["zorblax"]["vectors"] == 1 and listed["zorblax"]["shape"] == 128 and listed["zorblax"]["step"] == 0
    after = image(app, "zorblax")
    assert np.abs(after - before).mean() > 1, "the new embedding must change what its name produces"
    assert np.array_equal(after, image(app, "cat")), "a 1-vector embedding made from 'cat' must act as 'cat'"


def test_create_embedding_bad_input_is_4xx(app: RunningApp) -> None:
    first = app.client.post("/sdapi/v1/create/embedding", json={"name": "twice"})
    assert first.status_code == 200, first.text
    again = app.client.post("/sdapi/v1/create/embedding", json={"name": "twice"})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": "twice", "overwrite_old": True}
                           ).status_code == 200
    empty = app.client.post("/sdapi/v1/create/embedding", json={"name": "///"})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    too_many = app.client.post("/sdapi/v1/create/embedding", json={"name": "x", "num_vectors_per_token": 80})
    assert too_many.status_code == 422


def test_created_hypernetwork_is_listed_and_changes_the_image(app: RunningApp) -> None:
    plain = image(app, "a cat")
    response = app.client.post("/sdapi/v1/create/hypernetwork", json={
        "name": "hn", "enable_sizes": [64, 128], "layer_structure": "1, 2, 1", "activation_func": "relu",
        "weight_init": "XavierNormal", "add_layer_norm": False, "use_dropout": False})
    assert response.status_code == 200, response.text
    assert response.json()["info"].endswith("hn.pt")
    names = [h["name"] for h in app.client.get("/sdapi/v1/hypernetworks").json()]
    assert "hn" in names
    patched = image(app, "a cat <hypernet:hn:1>")
    assert np.abs(patched - plain).mean() > 1, "the hypernetwork must change the image"
    bad = app.client.post("/sdapi/v1/create/hypernetwork", json={"name": "bad", "enable_sizes": [64],
                                                                 "layer_structure": "2, 1"})
    assert bad.status_code == 400 and "start and end with 1" in bad.json()["detail"]
    assert not (app.data_dir / "models" / "hypernetworks" / "bad.pt").exists()


@pytest.mark.browser
def test_train_tab_creates_both(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    page.click("#tab_train-button")
    fill_text(page, "train_new_embedding_name", "from-ui")
    page.click("#train_create_embedding")
    page.wait_for_function("() => /Created:|Error/.test(document.querySelector("
                           "'#train_create_embedding_outcome')?.innerText || '')", timeout=60000)
    assert "from-ui.pt" in page.inner_text("#train_create_embedding_outcome")
    assert "from-ui" in app.client.get("/sdapi/v1/embeddings").json()["loaded"]

    page.click("#train_create_hypernetwork_tab-button")
    fill_text(page, "train_new_hypernetwork_name", "ui-hn")
    fill_text(page, "train_new_hypernetwork_layer_structure", "1, 3")
    page.click("#train_create_hypernetwork")
    page.wait_for_function("() => /Created:|Error/.test(document.querySelector("
                           "'#train_create_hypernetwork_outcome')?.innerText || '')", timeout=60000)
    assert re.search("start and end with 1", page.inner_text("#train_create_hypernetwork_outcome"))
    fill_text(page, "train_new_hypernetwork_layer_structure", "1, 1.5, 1")
    page.click("#train_create_hypernetwork")
    page.wait_for_function("() => /Created:/.test(document.querySelector("
                           "'#train_create_hypernetwork_outcome')?.innerText || '')", timeout=60000)
    assert "ui-hn" in [h["name"] for h in app.client.get("/sdapi/v1/hypernetworks").json()]
    page.close()
