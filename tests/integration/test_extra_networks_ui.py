"""The Extra Networks tabs: cards, thumbnails through the allowed-file route only, click-to-insert in a real browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browser.conftest import browser, open_ui  # noqa: F401  (browser is a fixture)
from tests.integration.conftest import start_live_server
from tests.integration.test_extra_networks_pipeline import write_embedding, write_hypernetwork, write_lora


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("networks-ui")
    models = data / "models"
    for folder in ("Stable-diffusion", "Lora", "hypernetworks"):
        (models / folder).mkdir(parents=True)
    write_lora(models / "Lora" / "tinylora.safetensors")
    Image.new("RGB", (640, 480), (200, 30, 30)).save(models / "Lora" / "tinylora.preview.png")
    write_lora(models / "Lora" / "other.safetensors", seed=4)
    write_hypernetwork(models / "hypernetworks" / "tinyhn.pt")
    (data / "embeddings").mkdir()
    write_embedding(data / "embeddings" / "tinyemb.pt")
    from modules.ui import build_ui

    live = start_live_server(data, ["--api", "--no-download-sd-model"], ui_factory=build_ui)  # .ctx for cards_html
    yield live
    live.stop()


def test_cards_and_thumbnail_route(server: Any) -> None:
    from modules.ui.extra_networks import cards_html

    page = cards_html(server.ctx, "txt2img", "lora")
    assert page.count('class="extra-network-card"') == 2
    assert "&lt;lora:tinylora:1&gt;" in page
    urls = re.findall(r'src="\./file=([^"]+)"', page)
    assert len(urls) == 1 and urls[0].endswith(".webp")  # only tinylora has a preview
    response = server.client.get("/file=" + urls[0])
    assert response.status_code == 200 and response.content[:4] == b"RIFF"
    with Image.open(Path(urls[0])) as thumb:
        assert max(thumb.size) <= 512
    model_file = Path(server.data_dir) / "models" / "Lora" / "tinylora.preview.png"
    assert server.client.get(f"/file={model_file}").status_code == 404  # model folders are never served
    embeddings = cards_html(server.ctx, "img2img", "textual_inversion")
    assert 'data-name="tinyemb"' in embeddings and "2 vectors" in embeddings
    assert "&lt;hypernet:tinyhn:1&gt;" in cards_html(server.ctx, "txt2img", "hypernetworks")


def test_click_inserts_into_prompt_and_search_filters(server: Any, browser: Any) -> None:  # noqa: F811
    page = open_ui(browser, server.url)
    try:
        page.locator("#txt2img_extra_tabs button[role='tab']", has_text="Lora").click()
        card = page.locator("#txt2img_lora_cards .extra-network-card[data-name='tinylora']")
        card.wait_for(timeout=30000)
        prompt = page.locator("#txt2img_prompt textarea")
        prompt.fill("a cat")
        card.click()
        assert prompt.input_value() == "a cat <lora:tinylora:1>"
        card.click()  # a second click removes it again (A1111)
        assert prompt.input_value() == "a cat"
        search = page.locator("#txt2img_lora_cards .extra-network-search")
        search.fill("other")
        assert not card.is_visible()
        assert page.locator("#txt2img_lora_cards .extra-network-card[data-name='other']").is_visible()
    finally:
        page.close()
