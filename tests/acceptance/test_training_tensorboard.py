"""TensorBoard logs of training as a user reaches them (A1111 Settings → Training: "Enable tensorboard logging",
"Save generated images within tensorboard", flush period): training an embedding over the API writes event files
under `<log dir>/tensorboard` with A1111's scalar tags, and the preview images only with the images setting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, two_image_dataset

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    running = webui_app(["--api"], prepare=two_image_dataset)
    running.wait_for_model()
    return running


def train(app: RunningApp, name: str, **options: Any) -> dict[str, Any]:
    assert app.client.post("/sdapi/v1/options", json=options).status_code == 200
    assert app.client.post("/sdapi/v1/create/embedding", json={"name": name, "init_text": "cat"}).status_code == 200
    response = app.client.post("/sdapi/v1/train/embedding", timeout=900, json={
        "embedding_name": name, "learn_rate": "0.05", "batch_size": 2, "gradient_step": 1,
        "data_root": str(app.data_dir / "train-images"), "training_width": 64, "training_height": 64,
        "steps": 2, "template_filename": "style.txt", "save_embedding_every": 0, "create_image_every": 2,
        "preview_prompt": "a cat", "preview_steps": 2, "preview_width": 64, "preview_height": 64,
        "latent_sampling_method": "deterministic"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def events(app: RunningApp, name: str) -> Any:
    folders = list((app.data_dir / "textual_inversion").glob(f"*/{name}/tensorboard"))
    assert len(folders) == 1, folders
    loaded = event_accumulator.EventAccumulator(str(folders[0]), size_guidance={"images": 0, "scalars": 0})
    loaded.Reload()
    return loaded


def test_tensorboard_logs_scalars_and_previews(app: RunningApp) -> None:
    train(app, "boarded", training_enable_tensorboard=True, training_tensorboard_save_images=True,
          training_tensorboard_flush_every=1, training_write_csv_every=1)
    log = events(app, "boarded")
    tags = log.Tags()
    assert {"Loss/train", "Learn rate/train", "Loss/train/epoch-0", "Learn rate/train/epoch-0"} <= set(tags["scalars"])
    assert [e.step for e in log.Scalars("Loss/train")] == [1, 2]
    assert all(abs(e.value - 0.05) < 1e-6 for e in log.Scalars("Learn rate/train"))
    assert tags["images"] == ["Validation at epoch 1"]  # 2 images, batch 2: one step per epoch
    image = log.Images("Validation at epoch 1")[0]
    assert (image.width, image.height, image.step) == (64, 64, 2)


def test_no_images_without_the_images_setting_and_no_logs_when_off(app: RunningApp) -> None:
    train(app, "scalars-only", training_enable_tensorboard=True, training_tensorboard_save_images=False,
          training_write_csv_every=1)
    assert events(app, "scalars-only").Tags()["images"] == []
    train(app, "not-logged", training_enable_tensorboard=False)
    assert not list((app.data_dir / "textual_inversion").glob("*/not-logged/tensorboard"))
