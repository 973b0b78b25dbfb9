"""The last A1111 names image browsers, info tabs and network extensions rely on, used by test extensions written
the way real ones are (tests/fixtures/extensions/): an image browser tab whose "Send to …" buttons come from
`generation_parameters_copypaste.create_buttons` / `bind_buttons` (driven in the browser: the image and its
infotext land in txt2img / img2img like the app's own Send-to buttons), `modules.extensions.active()` with git
versions and `list_files`, `modules.extras.run_pnginfo`, `modules.ui` names, and an extra network registered with
`extra_networks.register_extra_network` whose `<guidance:…>` tag changes a generation over the API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory, decode_png, open_ui

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "extensions"
REMOTE = "https://example.invalid/sd-webui-mini-browser.git"


def install(data_dir: Path) -> None:
    for name in ("sd-webui-mini-browser", "sd-webui-guidance-net"):
        shutil.copytree(FIXTURES / name, data_dir / "extensions" / name)
    folder = data_dir / "extensions" / "sd-webui-mini-browser"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "v1"],
                 ["remote", "add", "origin", REMOTE]):
        subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True)


def calls(app: RunningApp) -> list[dict[str, Any]]:
    path = app.data_dir / "extensions" / "sd-webui-guidance-net" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.is_file() else []


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    return webui_app(["--api"], prepare=install)


def test_extensions_active_extras_and_ui_names(app: RunningApp) -> None:
    app.txt2img(prompt="a lighthouse", seed=42, save_images=True)
    info = app.client.get("/mini-browser/v1/info").json()
    assert {"sd-webui-mini-browser", "sd-webui-guidance-net"} <= set(info["active"])
    assert ["sd-webui-mini-browser", True] in info["all"]
    me = info["me"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=app.data_dir / "extensions" / "sd-webui-mini-browser",
                          capture_output=True, text=True, check=True).stdout.strip()
    assert me["remote"] == REMOTE and me["branch"] == "main" and me["commit_hash"] == head
    assert me["version"] == head[:8] and me["enabled"] is True
    assert me["files"] == ["mini_browser.py"]
    assert info["symbols"] == ["\U0001f504", "\U0001f4be"]
    assert info["gr_show"] == {"visible": False, "__type__": "update"}
    assert {"txt2img", "img2img", "inpaint", "extras"} <= set(info["paste_tabs"])
    assert info["pnginfo"].startswith("a lighthouse\nSteps: 2") and "Seed: 42" in info["pnginfo"]


def test_a_registered_extra_network_changes_the_generation(app: RunningApp) -> None:
    plain7 = app.txt2img(prompt="a cat", cfg_scale=7)
    plain3 = app.txt2img(prompt="a cat", cfg_scale=3)
    before = len(calls(app))
    tagged = app.txt2img(prompt="a cat <guidance:3:mode=soft>", cfg_scale=7)
    made = calls(app)[before:]
    assert made[0] == {"call": "activate", "items": [["3", "mode=soft"]], "positional": [["3"]],
                       "named": [{"mode": "soft"}]}
    assert made[-1] == {"call": "deactivate", "cfg_scale": 3.0}
    image = decode_png(tagged["images"][0]).tobytes()
    # the tag is removed from the text that is encoded and the network set CFG 3: the same image as plain CFG 3
    assert image == decode_png(plain3["images"][0]).tobytes() != decode_png(plain7["images"][0]).tobytes()
    infotext = json.loads(tagged["info"])["infotexts"][0]
    assert infotext.startswith("a cat <guidance:3:mode=soft>") and "CFG scale: 3," in infotext
    assert "Guidance net: 3" in infotext
    # the alias reaches the same network; a prompt without the tag still gets activate(p, []) and deactivate(p)
    before = len(calls(app))
    aliased = app.txt2img(prompt="a cat <cfgnet:3>", cfg_scale=7)
    assert decode_png(aliased["images"][0]).tobytes() == image
    before = len(calls(app))
    app.txt2img(prompt="a cat", cfg_scale=7)
    assert calls(app)[before:] == [{"call": "activate", "items": [], "positional": [], "named": []},
                                   {"call": "deactivate", "cfg_scale": 7.0}]


@pytest.mark.browser
def test_image_browser_send_to_buttons(app: RunningApp, browser: Any) -> None:
    app.txt2img(prompt="a red lighthouse", seed=4242, steps=3, save_images=True)
    page = open_ui(browser, app.url, height=1000)
    page.click("#tab_mini_browser-button")
    page.click("#mini_browser_refresh")
    page.wait_for_function("document.querySelector('#mini_browser_info textarea')?.value.includes('Seed: 4242')",
                           timeout=30000)
    page.locator("#tab_mini_browser #txt2img_tab").click()
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea')?.value === 'a red lighthouse'",
                           timeout=30000)
    assert page.locator("#tab_txt2img").is_visible()
    assert page.input_value("#txt2img_steps input[type=number]") == "3"
    page.click("#tab_mini_browser-button")
    page.locator("#tab_mini_browser #img2img_tab").click()
    page.wait_for_function("document.querySelector('#img2img_prompt textarea')?.value === 'a red lighthouse'",
                           timeout=30000)
    page.wait_for_selector("#img2img_image img", state="visible", timeout=30000)
    assert page.locator("#tab_img2img").is_visible()
