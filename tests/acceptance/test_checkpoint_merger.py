"""Checkpoint Merger tab (A1111 §3.6) as a user drives it: merge two checkpoints in the browser, then the new file
is listed (API and top-bar dropdown), carries the merge recipe metadata and generates through the API; bad input
gives a notice in the tab and leaves no file behind."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.torch import load_file

from modules.models.state_dict_io import read_safetensors_metadata
from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui
from tests.browser.conftest import fill_text
from tests.conftest import TinyCheckpointFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory, tiny_checkpoint: TinyCheckpointFactory) -> RunningApp:
    def more_models(data: Path) -> None:
        models = data / "models" / "Stable-diffusion"
        shutil.copyfile(tiny_checkpoint("sd1", seed=1), models / "b.safetensors")
        shutil.copyfile(tiny_checkpoint("sd2"), models / "v2.safetensors")

    running = webui_app(["--api"], checkpoints={"a.safetensors": "sd1"}, prepare=more_models)
    running.wait_for_model()
    return running


def models_dir(app: RunningApp) -> Path:
    return app.data_dir / "models" / "Stable-diffusion"


def choose(page: Any, elem_id: str, name: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=re.compile("^" + re.escape(name))).first.click()


def merge_in_ui(page: Any, a: str, b: str | None, *, method: str = "Weighted sum", multiplier: float = 0.3,
                name: str = "") -> str:
    page.click("#tab_modelmerger-button")
    choose(page, "modelmerger_primary_model_name", a)
    if b is not None:
        choose(page, "modelmerger_secondary_model_name", b)
    page.click(f"#modelmerger_interp_method label:has-text('{method}')")
    box = page.locator("#modelmerger_interp_amount input[type=number]").first
    box.fill(str(multiplier))
    box.press("Tab")
    fill_text(page, "modelmerger_custom_name", name)
    notice = "() => document.querySelector('#modelmerger_result :is(.error, .merge-result)')?.innerText || ''"
    before = page.evaluate(notice)
    page.click("#modelmerger_merge")
    page.wait_for_function(
        f"(prev) => {{ const t = ({notice})();"
        " return t !== prev && /Checkpoint saved to|Error merging|interrupted/.test(t); }", arg=before, timeout=120000)
    return str(page.evaluate(notice))


def pixels(app: RunningApp, checkpoint: str) -> tuple[np.ndarray, dict[str, Any]]:
    data = app.txt2img(override_settings={"sd_model_checkpoint": checkpoint})
    image = np.asarray(decode_png(data["images"][0]).convert("RGB"), dtype=np.int16)
    return image, json.loads(data["info"])


def test_merge_in_browser_then_generate_with_the_result(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    text = merge_in_ui(page, "a.safetensors", "b.safetensors", multiplier=0.5, name="ab-merge")
    assert "Checkpoint saved to" in text and "ab-merge.safetensors" in text, text
    merged_file = models_dir(app) / "ab-merge.safetensors"
    merged, a, b = (load_file(p) for p in (merged_file, models_dir(app) / "a.safetensors",
                                            models_dir(app) / "b.safetensors"))
    for key in ("model.diffusion_model.out.2.weight", "cond_stage_model.transformer.text_model.final_layer_norm.bias"):
        assert np.allclose(merged[key].numpy(), (0.5 * a[key] + 0.5 * b[key]).numpy(), atol=1e-6)
    metadata = read_safetensors_metadata(merged_file)
    recipe = json.loads(metadata["sd_merge_recipe"])
    assert recipe["interp_method"] == "Weighted sum" and recipe["multiplier"] == 0.5
    assert len(json.loads(metadata["sd_merge_models"])) == 2
    assert not [p.name for p in models_dir(app).iterdir() if p.name.endswith(".tmp")]

    titles = [m["title"] for m in app.client.get("/sdapi/v1/sd-models").json()]
    assert any(t.startswith("ab-merge.safetensors") for t in titles), titles
    page.click("#setting_sd_model_checkpoint input")
    page.get_by_role("option", name=re.compile(r"^ab-merge\.safetensors")).first.wait_for(timeout=10000)
    page.keyboard.press("Escape")

    image, info = pixels(app, "ab-merge")
    assert info["sd_model_name"] == "ab-merge"
    image_a, _ = pixels(app, "a.safetensors")
    image_b, _ = pixels(app, "b.safetensors")
    assert np.abs(image - image_a).mean() > 1 and np.abs(image - image_b).mean() > 1
    page.close()


def test_bad_merges_give_a_notice_and_leave_no_file(app: RunningApp, browser: Any) -> None:
    before = sorted(p.name for p in models_dir(app).iterdir())
    page = open_ui(browser, app.url)
    text = merge_in_ui(page, "a.safetensors", "b.safetensors", method="Add difference", name="needs-c")
    assert "Error merging" in text and "tertiary" in text, text
    text = merge_in_ui(page, "a.safetensors", "v2.safetensors", name="mixed")
    assert "Error merging" in text and "incompatible" in text, text
    assert sorted(p.name for p in models_dir(app).iterdir()) == before
    page.close()
