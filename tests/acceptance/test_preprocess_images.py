"""Train → Preprocess images (A1111 1.0–1.6 sub-tab) as a user reaches it in the browser: a source folder becomes a
dataset folder with A1111's file names — resized, flipped copies, oversized images split, DeepBooru captions with
the existing caption prepended; auto focal point crop (with its debug image) and auto-sized crop; a bad source is
a clear error; BLIP captions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text
from tests.fixtures.tiny_interrogate import BLIP_WORD, lay_out_models

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data: Path) -> None:
        lay_out_models(data)
        first = data / "raw"
        first.mkdir()
        Image.new("RGB", (80, 80), (200, 40, 40)).save(first / "square.png")
        (first / "square.txt").write_text("existing words", encoding="utf-8")
        wide = Image.new("RGB", (256, 64), (40, 40, 200))
        ImageDraw.Draw(wide).rectangle((0, 0, 20, 63), fill=(250, 250, 250))  # so the flipped copy differs
        wide.save(first / "wide.png")
        second = data / "raw2"
        second.mkdir()
        tall = Image.new("RGB", (64, 200), (128, 128, 128))
        draw = ImageDraw.Draw(tall)
        for y in range(150, 196, 4):  # detail near the bottom
            draw.line((0, y, 63, y), fill=(255, 255, 255) if y % 8 else (0, 0, 0), width=2)
        tall.save(second / "tall.png")

    running = webui_app(["--no-download-sd-model"], checkpoints={}, prepare=prepare)
    return running


def run_preprocess(page: Any) -> str:
    """Click Preprocess and wait for a new final outcome line (the previous run's line stays until then)."""
    line = "() => (document.querySelector('#train_preprocess_outcome .train-outcome, #train_preprocess_outcome "
    line += ".error')?.innerText || '')"
    before = page.evaluate(line)
    page.click("#train_run_preprocess")
    page.wait_for_function(f"(before) => {{ const text = ({line})(); return text !== before && "
                           "/Preprocessing (finished|interrupted)|Error/.test(text); }", arg=before, timeout=300000)
    return str(page.evaluate(line))


def test_preprocess_images_sub_tab(app: RunningApp, browser: Any) -> None:
    data = app.data_dir
    page = open_ui(browser, app.url)
    page.click("#tab_train-button")
    page.click("#train_preprocess_tab-button")
    fill_text(page, "train_process_src", str(data / "nowhere"))
    fill_text(page, "train_process_dst", str(data / "out"))
    assert "does not exist" in run_preprocess(page)

    fill_text(page, "train_process_src", str(data / "raw"))
    set_number(page, "train_process_width", 64)
    set_number(page, "train_process_height", 64)
    page.click("#train_preprocess_txt_action input")
    page.get_by_role("option", name="prepend", exact=True).click()
    for box in ("train_process_flip", "train_process_split", "train_process_caption_deepbooru"):
        page.click(f"#{box} input")
    outcome = run_preprocess(page)
    assert "finished: 12 images" in outcome, outcome
    out = data / "out"
    names = sorted(p.name for p in out.glob("*.png"))
    # square: resized + flipped copy; wide 256×64: split into ceil((256 − 12.8) / 51.2) = 5 pieces, each flipped
    assert names == ["00000-0-square.png", "00000-1-square.png"] + [f"00001-{i}-wide.png" for i in range(10)]
    assert all(Image.open(out / name).size == (64, 64) for name in names)
    flipped = np.asarray(Image.open(out / "00001-1-wide.png"))
    assert np.array_equal(flipped, np.asarray(Image.open(out / "00001-0-wide.png"))[:, ::-1])
    tags = "1girl, hat \\(object\\), smile"  # what the tiny DeepBooru model answers (tests/fixtures)
    assert (out / "00000-0-square.txt").read_text(encoding="utf-8") == f"existing words {tags}"
    assert (out / "00000-1-square.txt").read_text(encoding="utf-8") == f"existing words {tags}"
    assert (out / "00001-9-wide.txt").read_text(encoding="utf-8") == tags

    fill_text(page, "train_process_src", str(data / "raw2"))
    fill_text(page, "train_process_dst", str(data / "out2"))
    for box in ("train_process_flip", "train_process_split", "train_process_caption_deepbooru",
                "train_process_focal_crop", "train_process_focal_crop_debug", "train_process_multicrop",
                "train_process_caption"):
        page.click(f"#{box} input")
    for elem_id, value in (("train_process_multicrop_mindim", 64), ("train_process_multicrop_maxdim", 256),
                           ("train_process_multicrop_maxarea", 256 * 256)):
        set_number(page, elem_id, value)
    outcome = run_preprocess(page)
    assert "finished: 3 images" in outcome, outcome
    out2 = data / "out2"
    assert sorted(p.name for p in out2.glob("*.png")) == ["00000-0-tall.png", "00000-1-tall.png",
                                                          "00000-2-tall.png"]
    focal = np.asarray(Image.open(out2 / "00000-0-tall.png").convert("L"), dtype=np.float64)
    assert focal.shape == (64, 64) and focal.std() > 40, "the focal crop is on the detailed part"
    assert Image.open(out2 / "00000-1-tall.png").size == (64, 200), "the debug image shows the whole picture"
    # auto-sized: 64×200 → 64×192 (aspect error 4%, the only size within 10%)
    assert Image.open(out2 / "00000-2-tall.png").size == (64, 192)
    # "Use BLIP for caption": the interrogator's answer starts with the BLIP caption (the tiny BLIP says "cat")
    captions = [(out2 / f"00000-{i}-tall.txt").read_text(encoding="utf-8") for i in range(3)]
    assert all(caption.startswith(BLIP_WORD) for caption in captions), captions
    page.close()
