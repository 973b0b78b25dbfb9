"""A1111 extension features built on top of the Script system, used over HTTP with test extensions written the way
real ones are (tests/fixtures/extensions/):

* `preload.py` flags: `sd-webui-stamp-tools` adds `--stamp-text` / `--stamp-probe-log`; the app is started with
  them on its command line and its scripts read `shared.cmd_opts.stamp_text`; `sd-webui-broken-preload` has a
  preload.py that fails: the app names it and starts, and that extension's scripts still load;
* an Extras-tab `ScriptPostprocessing` ("Stamp") runs in `/sdapi/v1/extra-single-image` with A1111's API arguments
  (None for each of its arguments), its `pp.info` reaches the extras infotext, its `ui()` is in the Extras tab;
* an always-on img2img script ("Mask probe") gets `on_mask_blend` (every step and the final blend) and
  `postprocess_maskoverlay` during inpainting, can drop the overlay, and `processing.create_infotext(p, ...)`
  gives it the image's real infotext.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "extensions"
EXTENSIONS = ("sd-webui-stamp-tools", "sd-webui-broken-preload")


def install(data_dir: Path) -> None:
    for name in EXTENSIONS:
        shutil.copytree(FIXTURES / name, data_dir / "extensions" / name)


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def probe(app: RunningApp) -> list[dict[str, Any]]:
    path = app.data_dir / "extensions" / "sd-webui-stamp-tools" / "probe.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return webui_app(["--api", "--stamp-text", "from the command line", "--stamp-probe-log"], prepare=install)


def test_extension_flags_from_preload_are_parsed_and_a_failing_preload_is_named(app: RunningApp) -> None:
    flags = app.client.get("/sdapi/v1/cmd-flags").json()
    assert flags["stamp_text"] == "from the command line" and flags["stamp_probe_log"] is True
    lines = [line for line in app.console.splitlines() if "sd-webui-broken-preload" in line and "preload.py" in line]
    assert lines and "not_installed_dependency_xyz" in lines[0], app.console[-3000:]
    assert "broken_flag" not in flags
    scripts = app.client.get("/sdapi/v1/scripts").json()
    assert "still loads" in scripts["txt2img"]  # only its preload was skipped


def test_an_unknown_flag_still_stops_the_app(tmp_path: Path) -> None:
    import webui
    from modules.cli.flags import FlagError

    install(tmp_path)
    with pytest.raises(FlagError):
        webui.create_app(["--stamp-txt-typo", "x", "--data-dir", str(tmp_path)], {})


def test_extras_script_runs_in_the_api_with_a1111_arguments(app: RunningApp) -> None:
    source = Image.new("RGB", (32, 24), (0, 128, 0))
    body = {"image": png_b64(source), "upscaling_resize": 2, "upscaler_1": "Nearest"}
    answer = app.client.post("/sdapi/v1/extra-single-image", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    image = decode_png(data["image"])
    assert image.size == (64, 48) and image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert image.convert("RGB").getpixel((10, 10)) == (0, 128, 0)
    assert "Postprocess upscaler: Nearest" in data["html_info"]
    assert "Stamp: from the command line" in data["html_info"]  # its pp.info with the preload flag's value
    assert "Stamp target: 64x48" in data["html_info"]  # pp.shared set before process (process_firstpass)
    assert "Stamp: from the command line" in image.info.get("postprocessing", "")


def test_extras_script_ui_is_in_the_extras_tab(app: RunningApp) -> None:
    config = app.client.get("/config").json()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"extras_stamp_enable", "extras_stamp_text", "extras_upscaler_1"} <= ids


def _inpaint(app: RunningApp, init: str, mask: str, drop_overlay: bool) -> dict[str, Any]:
    body = {"prompt": "a cat", "init_images": [init], "mask": mask, "width": 64, "height": 64, "steps": 3,
            "seed": 7, "denoising_strength": 0.9, "mask_blur": 0, "inpainting_fill": 1,
            "alwayson_scripts": {"Mask probe": {"args": [drop_overlay]}}}
    answer = app.client.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_inpainting_calls_the_mask_hooks_and_create_infotext_is_the_real_infotext(app: RunningApp) -> None:
    original = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # regenerate the left half
    kept = _inpaint(app, png_b64(original), png_b64(mask), drop_overlay=False)
    blends = [e for e in probe(app) if e["event"] == "blends"][-1]
    steps = [b for b in blends["blends"] if not b["final"]]
    finals = [b for b in blends["blends"] if b["final"]]
    assert len(steps) >= 3 and all(b["sigma"] and b["denoiser"] for b in steps)
    assert len(finals) == 1 and not finals[0]["sigma"] and not finals[0]["denoiser"]
    latent, nmask, init_latent, mask_shape, blended = finals[0]["shapes"]
    assert latent == init_latent == blended and latent[:2] == [1, 4] and nmask[-2:] == mask_shape[-2:] == latent[-2:]
    overlays = [e for e in probe(app) if e["event"] == "maskoverlay"]
    assert overlays and overlays[-1]["index"] == 0 and overlays[-1]["overlay_mode"] == "RGBA"
    infotext = json.loads(kept["info"])["infotexts"][0]
    assert blends["infotext"] == infotext and "Mask probe: " in infotext and "Seed: 7" in infotext
    assert blends["probe_log"] is True
    right_kept = decode_png(kept["images"][0]).convert("RGB").crop((40, 0, 64, 64))
    assert set(right_kept.getdata()) == {(200, 30, 30)}  # the overlay keeps the untouched half
    dropped = _inpaint(app, png_b64(original), png_b64(mask), drop_overlay=True)
    right_dropped = decode_png(dropped["images"][0]).convert("RGB").crop((40, 0, 64, 64))
    assert set(right_dropped.getdata()) != {(200, 30, 30)}  # the script removed the overlay
