"""Extra-networks settings in the served app (A1111 `ui_extra_networks*.py`, the Lora extension's options):
`ui_extra_networks_tab_reorder`, `lora_show_all`, `lora_hide_unknown_for_versions`, `extra_networks_hidden_models`,
`extra_networks_add_text_separator`, `extra_networks_show_hidden_directories`, `extra_networks_dir_button_function`,
`sd_lora` ("Add network to prompt") and `lora_not_found_gradio_warning`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file, save_file

from tests.acceptance.conftest import RunningApp, WebUIFactory, open_ui, set_number
from tests.browser.conftest import fill_text
from tests.integration.test_extra_networks_pipeline import write_lora

pytestmark = pytest.mark.browser

CONFIG = {"ui_extra_networks_tab_reorder": "lora, checkpoints", "lora_hide_unknown_for_versions": ["SD1"],
          "extra_networks_add_text_separator": ", ", "sd_model_checkpoint": "sd1.safetensors"}


def write_variant(source: Path, target: Path, metadata: dict[str, str]) -> None:
    """A copy of a LoRA file with other header metadata (what decides its SD version)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(str(source)), str(target), metadata=metadata or None)


@pytest.fixture(scope="module")
def app(webui_app: WebUIFactory) -> RunningApp:
    def prepare(data: Path) -> None:
        folder = data / "models" / "Lora"
        folder.mkdir(parents=True, exist_ok=True)
        base = write_lora(folder / "sdone.safetensors")  # kohya metadata without v2/sdxl keys: SD1
        write_variant(base, folder / "xlnet.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
        write_variant(base, folder / "plain.safetensors", {})  # no metadata: Unknown
        (data / "config.json").write_text(json.dumps(CONFIG), encoding="utf-8")

    # a checkpoint in a dot folder: listed (`list_hidden_files`), its card subject to extra_networks_hidden_models
    running = webui_app(["--api"], prepare=prepare,
                        checkpoints={"sd1.safetensors": "sd1", ".secret/hidden.safetensors": "sd1"})
    running.wait_for_model()
    return running


def set_options(app: RunningApp, **values: Any) -> None:
    assert app.client.post("/sdapi/v1/options", json=values).status_code == 200


def lora_page(app: RunningApp, browser: Any) -> Any:
    page = open_ui(browser, app.url)
    page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
    page.locator("#txt2img_lora_cards .extra-network-page").wait_for(timeout=30000)
    return page


def cards(page: Any, kind: str = "lora") -> dict[str, bool]:
    """Card name → shown, on a txt2img extra-networks page."""
    return dict(page.evaluate(f"Object.fromEntries(Array.from(document.querySelectorAll("
                              f"'#txt2img_{kind}_cards .extra-network-card')).map(c => [c.dataset.name, "
                              f"c.style.display !== 'none']))"))


def test_tab_order_version_filter_hidden_folders_and_separator(app: RunningApp, browser: Any) -> None:
    page = lora_page(app, browser)
    titles = [t.strip() for t in page.locator("#txt2img_extra_tabs button[role='tab']").all_inner_texts()]
    assert titles[:5] == ["Generation", "Lora", "Checkpoints", "Textual Inversion", "Hypernetworks"]
    page.wait_for_function("document.querySelectorAll('#txt2img_lora_cards .extra-network-card').length > 0",
                           timeout=20000)
    # SD1 checkpoint: the SDXL network is left out, the unknown one too ("SD1" in lora_hide_unknown_for_versions)
    assert cards(page) == {"sdone": True}
    fill_text(page, "txt2img_prompt", "a cat")
    card = page.locator("#txt2img_lora_cards .extra-network-card[data-name='sdone']")
    card.click()
    assert page.locator("#txt2img_prompt textarea").input_value() == "a cat, <lora:sdone:1>"
    card.click()  # removed again with its separator
    assert page.locator("#txt2img_prompt textarea").input_value() == "a cat"
    # the checkpoint in a dot folder is there but shows only while searching ("When searched")
    page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Checkpoints").click()
    page.locator("#txt2img_checkpoints_cards .extra-network-card").first.wait_for(state="attached", timeout=20000)
    assert cards(page, "checkpoints") == {"sd1": True, "hidden": False}
    page.locator("#txt2img_checkpoints_cards .extra-network-search").fill("hidd")
    page.wait_for_function("document.querySelector(\"#txt2img_checkpoints_cards [data-name='hidden']\")"
                           ".style.display !== 'none'", timeout=10000)
    page.close()

    set_options(app, lora_show_all=True, extra_networks_hidden_models="Never")
    try:
        page = lora_page(app, browser)
        page.wait_for_function("document.querySelectorAll('#txt2img_lora_cards .extra-network-card').length > 0",
                               timeout=20000)
        assert cards(page) == {"sdone": True, "xlnet": True, "plain": True}
        page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Checkpoints").click()
        page.locator("#txt2img_checkpoints_cards .extra-network-card").first.wait_for(state="attached",
                                                                                      timeout=20000)
        assert cards(page, "checkpoints") == {"sd1": True}
        page.close()
    finally:
        set_options(app, lora_show_all=False, extra_networks_hidden_models="When searched")


def test_sd_lora_adds_the_network_to_every_prompt(app: RunningApp) -> None:
    set_options(app, sd_lora="sdone")
    try:
        info = json.loads(app.txt2img(prompt="a dog", seed=51)["info"])
        assert info["prompt"].endswith("<lora:sdone:1>") and "Lora hashes" in info["infotexts"][0]
        named = json.loads(app.txt2img(prompt="a dog <lora:sdone:0.5>", seed=52)["info"])
        assert named["prompt"] == "a dog <lora:sdone:0.5>"  # already named: not added again
    finally:
        set_options(app, sd_lora="None")
    info = json.loads(app.txt2img(prompt="a dog", seed=53)["info"])
    assert info["prompt"] == "a dog" and "Lora hashes" not in info["infotexts"][0]


def test_missing_lora_pops_up_a_warning_when_asked(app: RunningApp, browser: Any) -> None:
    page = open_ui(browser, app.url)
    for enabled, seed in ((True, 54), (False, 55)):
        set_options(app, lora_not_found_gradio_warning=enabled)
        fill_text(page, "txt2img_prompt", f"a cat <lora:nowhere{seed}:1>")
        for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2),
                               ("txt2img_seed", seed)):
            set_number(page, elem_id, value)
        page.click("#txt2img_generate")
        page.wait_for_function("(s) => document.querySelector('#html_info_txt2img')?.innerText.includes("
                               "'Seed: ' + s)", arg=seed, timeout=180000)
        page.wait_for_timeout(1000)
        warned = page.get_by_text(f"Lora not found: nowhere{seed}").count() > 0
        assert warned == enabled
    set_options(app, lora_not_found_gradio_warning=False)


def folder_buttons(app: RunningApp, browser: Any) -> list[str]:
    page = open_ui(browser, app.url)
    page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Checkpoints").click()
    page.wait_for_selector("#txt2img_checkpoints_cards .extra-network-dirs", state="attached", timeout=30000)
    labels = page.locator("#txt2img_checkpoints_cards .extra-network-folder").all_inner_texts()
    page.close()
    return [label.strip() for label in labels]


def test_directory_buttons_hidden_folders_and_leading_slash(app: RunningApp, browser: Any) -> None:
    set_options(app, extra_networks_tree_view_style="Dirs", extra_networks_tree_view_default_enabled=True)
    try:
        assert folder_buttons(app, browser) == [".secret"]
        set_options(app, extra_networks_dir_button_function=True)
        assert folder_buttons(app, browser) == ["/.secret"]
        set_options(app, extra_networks_show_hidden_directories=False)
        assert folder_buttons(app, browser) == []
    finally:
        set_options(app, extra_networks_dir_button_function=False, extra_networks_show_hidden_directories=True)
