"""Train Hypernetwork and training previews (A1111 Train tab, `POST /sdapi/v1/train/hypernetwork`,
`/train/embedding` preview fields) as a user reaches them: training changes what `<hypernet:name:1>` produces, the
file keeps A1111's layout and resumes from its step, previews with infotext land in the log directory (from the
training prompt or the txt2img parameters), the Training settings act, Interrupt keeps the progress, bad input is a
400, and the browser's Train Hypernetwork button trains."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui, two_image_dataset
from tests.browser.conftest import fill_text


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"], prepare=two_image_dataset)
    running.wait_for_model()
    return running


def create(app: RunningApp, name: str) -> None:
    response = app.client.post("/sdapi/v1/create/hypernetwork", json={
        "name": name, "enable_sizes": [64, 128], "overwrite_old": True})
    assert response.status_code == 200, response.text


def body(app: RunningApp, name: str, steps: int, **extra: Any) -> dict[str, Any]:
    return {"hypernetwork_name": name, "learn_rate": "0.02", "batch_size": 2, "gradient_step": 1,
            "data_root": str(app.data_dir / "train-images"), "training_width": 64, "training_height": 64,
            "steps": steps, "template_filename": "style.txt", "save_hypernetwork_every": 2, "create_image_every": 0,
            "latent_sampling_method": "deterministic", **extra}


def train(app: RunningApp, route: str, payload: dict[str, Any]) -> httpx.Response:
    """POST a training request and wait for the answer (training on a busy 2-core machine takes minutes)."""
    with httpx.Client(base_url=app.url, timeout=900) as client:
        return client.post(f"/sdapi/v1/train/{route}", json=payload)


def image(app: RunningApp, prompt: str) -> np.ndarray:
    data = app.txt2img(prompt=prompt, negative_prompt="")
    return np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)


def log_dir(app: RunningApp, name: str) -> Path:
    found = [p for p in (app.data_dir / "textual_inversion").glob(f"*/{name}") if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def set_options(app: RunningApp, **values: Any) -> None:
    assert app.client.post("/sdapi/v1/options", json=values).status_code == 200


def test_training_changes_the_hypernetwork_and_resumes(app: RunningApp) -> None:
    create(app, "hn")
    path = app.data_dir / "models" / "hypernetworks" / "hn.pt"
    created = torch.load(path, weights_only=False)
    untrained = image(app, "a cat <hypernet:hn:1>")
    set_options(app, training_write_csv_every=1, training_image_repeats_per_epoch=3)
    response = train(app, "hypernetwork", body(app, "hn", 4, create_image_every=2, preview_from_txt2img=True,
                                                preview_prompt="a cat", preview_steps=3, preview_width=64,
                                                preview_height=64))
    assert response.status_code == 200, response.text
    assert response.json()["info"] == f"train hypernetwork complete: filename: {path} error: None"
    trained = torch.load(path, weights_only=False)
    assert set(trained) == set(created) and trained["step"] == 4 and trained["sd_checkpoint_name"] == "sd1"
    assert set(trained[64][0]) == set(created[64][0]), "A1111's k/v state-dict keys"
    assert np.abs(image(app, "a cat <hypernet:hn:1>") - untrained).mean() > 0.5, \
        "the trained hypernetwork must change the conditioning path"

    logs = log_dir(app, "hn")
    assert sorted(p.name for p in (logs / "hypernetworks").iterdir()) == ["hn-2.pt"]
    previews = sorted(p.name for p in (logs / "images").iterdir())
    assert previews == ["hn-2.png", "hn-4.png"]
    with Image.open(logs / "images" / "hn-4.png") as preview:
        info = preview.info["parameters"]
    assert info.startswith("a cat <hypernet:hn:1>\n") and "Steps: 3" in info and "Size: 64x64" in info, info
    rows = [line.split(",") for line in (logs / "hypernetwork_loss.csv").read_text().splitlines()[1:]]
    # 2 images × 3 repeats // batch 2 = 3 steps per epoch: step 4 is epoch 1, its first step
    assert [r[:3] for r in rows] == [["1", "0", "1"], ["2", "0", "2"], ["3", "0", "3"], ["4", "1", "1"]]
    settings = list(logs.glob("settings-*.json"))
    assert len(settings) == 1 and json.loads(settings[0].read_text())["hypernetwork_name"] == "hn"

    set_options(app, save_training_settings_to_txt=False, training_image_repeats_per_epoch=1)
    again = train(app, "hypernetwork", body(app, "hn", 6))
    assert again.status_code == 200, again.text
    assert torch.load(path, weights_only=False)["step"] == 6
    assert len(list(logs.glob("settings-*.json"))) == 1, "no settings file when save_training_settings_to_txt is off"
    last = (logs / "hypernetwork_loss.csv").read_text().splitlines()[-1].split(",")
    assert last[:3] == ["6", "5", "1"], "one image repeat: an epoch is one step"
    set_options(app, save_training_settings_to_txt=True, training_write_csv_every=500)


def test_embedding_previews(app: RunningApp) -> None:
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": "pv", "overwrite_old": True}
                           ).status_code == 200
    response = train(app, "embedding", {
        "embedding_name": "pv", "learn_rate": "0.05", "batch_size": 2, "data_root": str(app.data_dir / "train-images"),
        "training_width": 64, "training_height": 64, "steps": 2, "template_filename": "style.txt",
        "create_image_every": 1, "save_embedding_every": 0, "preview_from_txt2img": True,
        "preview_prompt": "a painting of pv", "preview_negative_prompt": "blurry", "preview_steps": 3,
        "preview_sampler_name": "Euler", "preview_cfg_scale": 5, "preview_seed": 42, "preview_width": 64,
        "preview_height": 96})
    assert response.status_code == 200, response.text
    images = log_dir(app, "pv") / "images"
    assert sorted(p.name for p in images.iterdir()) == ["pv-1.png", "pv-2.png"]
    with Image.open(images / "pv-2.png") as preview:
        info, size = preview.info["parameters"], preview.size
    assert size == (64, 96)
    assert info.startswith("a painting of pv\nNegative prompt: blurry\n"), info
    for part in ("Steps: 3", "Sampler: Euler", "CFG scale: 5", "Seed: 42", "Size: 64x96"):
        assert part in info, (part, info)

    # without "Read parameters from txt2img tab": the training prompt (names the embedding), 20 steps, training size
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": "pw", "overwrite_old": True}
                           ).status_code == 200
    response = train(app, "embedding", {
        "embedding_name": "pw", "learn_rate": "0.05", "batch_size": 2, "data_root": str(app.data_dir / "train-images"),
        "training_width": 64, "training_height": 64, "steps": 1, "template_filename": "style.txt",
        "create_image_every": 1, "save_embedding_every": 0})
    assert response.status_code == 200, response.text
    with Image.open(log_dir(app, "pw") / "images" / "pw-1.png") as preview:
        info = preview.info["parameters"]
    assert "pw" in info.splitlines()[0] and "Steps: 20" in info and "Size: 64x64" in info, info


def test_cross_attention_optimizations_setting(app: RunningApp) -> None:
    create(app, "xa")
    line = "Training with the original attention implementation"
    seen = app.console.count(line)
    set_options(app, training_xattention_optimizations=True)
    assert train(app, "hypernetwork", body(app, "xa", 1)).status_code == 200
    assert app.console.count(line) == seen, "optimised attention is kept when the setting is on"
    set_options(app, training_xattention_optimizations=False)
    assert train(app, "hypernetwork", body(app, "xa", 2)).status_code == 200
    assert app.console.count(line) == seen + 1


def test_interrupt_keeps_the_progress(app: RunningApp) -> None:
    create(app, "stop")
    answer: dict[str, Any] = {}

    def train() -> None:
        with httpx.Client(base_url=app.url, timeout=600) as client:
            answer["response"] = client.post("/sdapi/v1/train/hypernetwork", json=body(app, "stop", 100000))

    thread = threading.Thread(target=train)
    thread.start()

    def training() -> bool:
        state = app.client.get("/sdapi/v1/progress").json()["state"]
        return bool(state["job"] == "train_hypernetwork" and state["sampling_step"] >= 2)

    app.wait_for("training to run a few steps", training, timeout=180)
    progress = app.client.get("/sdapi/v1/progress").json()
    assert "loss:" in progress["textinfo"] and progress["eta_relative"] is not None
    assert app.client.post("/sdapi/v1/interrupt").status_code == 200
    thread.join(timeout=180)
    response = answer["response"]
    assert response.status_code == 200 and response.json()["info"].startswith("train hypernetwork interrupted")
    step = torch.load(app.data_dir / "models" / "hypernetworks" / "stop.pt", weights_only=False)["step"]
    assert 2 <= step < 100000


@pytest.mark.parametrize(("change", "detail"), [
    ({"hypernetwork_name": "missing"}, "not found"),
    ({"learn_rate": "0.1:x"}, "Invalid learning rate"),
    ({"data_root": "/no/such/folder"}, "does not exist"),
    ({"latent_sampling_method": "often"}, "latent_sampling_method"),
])
def test_bad_training_input_is_400(app: RunningApp, change: dict[str, Any], detail: str) -> None:
    create(app, "target")
    response = app.client.post("/sdapi/v1/train/hypernetwork", json={**body(app, "target", 3), **change})
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]


@pytest.mark.browser
def test_train_hypernetwork_button(app: RunningApp, browser: Any) -> None:
    create(app, "viaui")
    page = open_ui(browser, app.url)
    page.click("#tab_train-button")
    page.click("#train_train_tab-button")
    page.click("#train_refresh_hypernetworks")
    page.click("#train_hypernetwork input")
    page.get_by_role("option", name="viaui", exact=True).click()
    fill_text(page, "train_hypernetwork_learn_rate", "0.001")
    fill_text(page, "train_dataset_directory", str(app.data_dir / "train-images"))
    page.click("#train_template_file input")
    page.get_by_role("option", name="style.txt", exact=True).click()
    for elem_id, value in (("train_training_width", 64), ("train_training_height", 64), ("train_steps", 2),
                           ("train_batch_size", 2), ("train_create_image_every", 2)):
        box = page.locator(f"#{elem_id} input[type=number]").first
        box.fill(str(value))
        box.press("Tab")
    page.click("#train_train_hypernetwork")
    page.wait_for_function("() => /Training complete|Error/.test(document.querySelector("
                           "'#train_embedding_outcome')?.innerText || '')", timeout=300000)
    assert "viaui.pt" in page.inner_text("#train_embedding_outcome"), page.inner_text("#train_embedding_outcome")
    assert torch.load(app.data_dir / "models" / "hypernetworks" / "viaui.pt", weights_only=False)["step"] == 2
    assert (log_dir(app, "viaui") / "images" / "viaui-2.png").is_file(), "the preview is made from the UI too"
    page.close()
