"""Extras postprocessing scripts of A1111 1.6+ (the old Train → Preprocess steps), driven in the browser as a user
does: "Batch from Directory" with the "Caption" accordion writes `<image>.txt` beside each result, combined with the
input's existing caption per `postprocessing_existing_caption_action`; "Create flipped copies" and "Split oversized
images" turn one input into several results. The app is built only through `create_app` with a tiny DeepBooru
model in models/torch_deepdanbooru, as a user's install has it."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui
from tests.browser.conftest import fill_text
from tests.fixtures.tiny_interrogate import make_deepbooru

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data_dir: Path) -> None:
        make_deepbooru(data_dir / "models" / "torch_deepdanbooru" / "model-resnet_custom_v3.pt")

    return webui_app(["--api", "--no-download-sd-model"], checkpoints={}, prepare=prepare)


def _tags(app: RunningApp, path: Path) -> str:
    """DeepBooru's answer for one image, from the interrogate API (what the Caption step must write)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    answer = app.client.post("/sdapi/v1/interrogate", json={"image": data, "model": "deepdanbooru"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["caption"])


def _wait_files(folder: Path, pattern: str, count: int, timeout: float = 90.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(folder.glob(pattern)) if folder.is_dir() else []
        if len(found) >= count:
            time.sleep(0.5)
            return sorted(folder.glob(pattern))
        time.sleep(0.25)
    raise AssertionError(f"{folder}: expected {count} × {pattern}, found {sorted(folder.glob(pattern))}")


def _batch_page(browser: Any, app: RunningApp, input_dir: Path, output_dir: Path) -> Any:
    page = open_ui(browser, app.url, height=1400)
    page.click("#tab_extras-button")
    page.click("#extras_batch_directory_tab-button")
    fill_text(page, "extras_batch_input_dir", str(input_dir))
    fill_text(page, "extras_batch_output_dir", str(output_dir))
    return page


def _open(page: Any, accordion: str) -> None:
    """Open an InputAccordion: that turns the script on."""
    page.click(f"#{accordion} .label-wrap")
    page.wait_for_function(f"document.querySelector('#{accordion}-checkbox input[type=checkbox]')?.checked",
                           timeout=10000)


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / "a.png")
    Image.new("RGB", (64, 64), (20, 60, 220)).save(folder / "b.png")
    (folder / "a.txt").write_text("old caption\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(("action", "expected_a"), [
    ("Ignore", "{tags}"), ("Keep", "old caption"), ("Prepend", "old caption {tags}"), ("Append", "{tags} old caption"),
])
def test_caption_writes_txt_per_existing_caption_action(app: RunningApp, browser: Any, tmp_path: Path, action: str,
                                                        expected_a: str) -> None:
    source = _images(tmp_path)
    out = tmp_path / "out"
    answer = app.client.post("/sdapi/v1/options", json={"postprocessing_existing_caption_action": action})
    assert answer.status_code == 200, answer.text
    page = _batch_page(browser, app, source, out)
    _open(page, "extras_caption")  # "Deepbooru" is ticked by default
    page.click("#extras_generate")
    captions = _wait_files(out, "*.txt", 2)
    page.close()
    assert [p.name for p in captions] == ["a.txt", "b.txt"]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    tags_a, tags_b = _tags(app, source / "a.png"), _tags(app, source / "b.png")
    assert tags_a  # the tiny model answers something
    assert (out / "a.txt").read_text(encoding="utf-8") == expected_a.format(tags=tags_a)
    assert (out / "b.txt").read_text(encoding="utf-8") == tags_b  # no existing caption: always the tags
    assert (source / "a.txt").read_text(encoding="utf-8") == "old caption\n"  # the input is left alone


def test_flipped_copies_make_one_result_per_option(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    picture = Image.new("RGB", (64, 48), (0, 0, 0))
    picture.paste((255, 0, 0), (0, 0, 16, 12))  # red in the top-left corner
    picture.save(source / "p.png")
    out = tmp_path / "out"
    page = _batch_page(browser, app, source, out)
    _open(page, "extras_flip")
    page.locator("#extras_flip_option label", has_text="Vertical").click()
    page.locator("#extras_flip_option label", has_text="Both").click()
    page.click("#extras_generate")
    files = _wait_files(out, "*.png", 4)
    page.close()
    assert len(files) == 4  # the original and three flipped copies
    corners = set()
    for path in files:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            assert rgb.size == (64, 48)
            red = [xy for xy in ((2, 2), (61, 2), (2, 45), (61, 45)) if rgb.getpixel(xy) == (255, 0, 0)]
            assert len(red) == 1
            corners.add(red[0])
    assert corners == {(2, 2), (61, 2), (2, 45), (61, 45)}  # not flipped, horizontal, vertical, both


def test_split_oversized_image_into_target_sized_pieces(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    Image.new("RGB", (2048, 512), (90, 140, 30)).save(source / "wide.png")
    Image.new("RGB", (512, 512), (90, 140, 30)).save(source / "square.png")
    out = tmp_path / "out"
    page = _batch_page(browser, app, source, out)
    page.click("#extras_scale_to_tab-button")  # target 512×512 (upscaler None: no upscaling)
    _open(page, "extras_split")
    page.click("#extras_generate")
    files = _wait_files(out, "*.png", 6)
    page.close()
    # 2048×512 at threshold 0.5, overlap 0.2: ceil((2048 − 102.4) / 409.6) = 5 pieces; the square one stays whole
    assert len(files) == 6
    for path in files:
        with Image.open(path) as image:
            assert image.size == (512, 512)
    assert len([p for p in files if p.name.startswith("wide")]) == 5


def test_api_extras_leave_the_scripts_off(app: RunningApp) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buffer, "PNG")
    body = {"image": base64.b64encode(buffer.getvalue()).decode("ascii"), "upscaling_resize": 1}
    answer = app.client.post("/sdapi/v1/extra-single-image", json=body)
    assert answer.status_code == 200, answer.text  # A1111's API has no fields for them: they stay off


def test_caption_without_interrogator_weights_is_reported(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    source = _images(tmp_path)
    out = tmp_path / "out"
    page = _batch_page(browser, app, source, out)
    _open(page, "extras_caption")
    page.locator("#extras_caption_option label", has_text="Deepbooru").click()  # off
    page.locator("#extras_caption_option label", has_text="BLIP").click()  # on: no BLIP/CLIP weights here
    page.click("#extras_generate")
    page.wait_for_function("document.querySelector('#html_log_extras')?.innerText.includes('Caption')",
                           timeout=90000)
    text = page.locator("#html_log_extras").inner_text()
    page.close()
    assert "process of 'Caption' failed" in text
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]  # the images are still saved
    assert not list(out.glob("*.txt"))


def test_focal_crop_with_debug_image_and_auto_sized_crop(app: RunningApp, browser: Any, tmp_path: Path) -> None:
    from modules.training.autocrop import best_size

    source = tmp_path / "in"
    source.mkdir()
    Image.new("RGB", (1024, 512), (90, 140, 30)).save(source / "wide.png")
    out = tmp_path / "out"
    page = _batch_page(browser, app, source, out)
    page.click("#extras_scale_to_tab-button")  # the focal crop's size: 512×512
    _open(page, "extras_focal_crop")
    page.locator("#train_process_focal_crop_debug input[type=checkbox]").check()
    page.click("#extras_generate")
    files = _wait_files(out, "*.png", 2)
    names = {p.name: p for p in files}
    assert set(names) == {"wide.png", "wide-focal-crop-debug.png"}
    with Image.open(names["wide.png"]) as crop, Image.open(names["wide-focal-crop-debug.png"]) as debug:
        assert crop.size == (512, 512) and debug.size == (1024, 512)

    out2 = tmp_path / "out2"
    page.close()
    page = _batch_page(browser, app, source, out2)
    _open(page, "extras_autosized_crop")
    page.click("#extras_generate")
    files = _wait_files(out2, "*.png", 1)
    page.close()
    expected = best_size(1024, 512, 384, 768, 64 * 64, 640 * 640, "Maximize area", 0.1)
    assert expected is not None
    with Image.open(files[0]) as image:
        assert image.size == expected
