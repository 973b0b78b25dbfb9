"""Screenshots of every tab at desktop (1440×1000) and phone (390×844) width into docs/screenshots/.

Starts the real server (webui.build_context + modules.server) on a free loopback port with a temporary data folder
holding a tiny random-weight SD1 checkpoint (tests/fixtures/tiny_checkpoints.py), then drives Debian's Chromium
through Playwright. Usage: `python tools/screenshots.py [--out docs/screenshots]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TABS = {"txt2img": "txt2img", "img2img": "img2img", "extras": "Extras", "pnginfo": "PNG Info",
        "settings": "Settings", "extensions": "Extensions"}
"""Tab id → the label Gradio shows on its button (and in the "…" overflow menu)."""
VIEWPORTS = {"desktop": (1440, 1000), "phone": (390, 844)}


def make_data_dir(folder: Path) -> Path:
    """A data folder with one tiny SD1 checkpoint in models/Stable-diffusion."""
    from tests.fixtures.tiny_checkpoints import write_tiny_checkpoint

    ckpt_dir = folder / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_tiny_checkpoint("sd1", ckpt_dir / "tiny-sd1.safetensors")
    return folder


def open_tab(page: object, tab: str, label: str) -> None:
    """Click the top-level tab (the main tabs wrap onto rows on a phone; an older layout's "…" menu still works)."""
    button = page.locator(f"#tab_{tab}-button")  # type: ignore[attr-defined]
    if button.count() and button.first.is_visible():
        button.first.click()
    else:
        menu = page.locator("#tabs > .tab-wrapper .overflow-menu")  # type: ignore[attr-defined]
        menu.locator("button[aria-label='More tabs']").click()
        menu.locator(".overflow-dropdown button", has_text=label).first.click()
    page.wait_for_selector(f"#tab_{tab}", state="visible", timeout=10000)  # type: ignore[attr-defined]


def shoot(url: str, out: Path) -> list[Path]:
    """Visit each tab at each viewport and save `<tab>-<viewport>.png` (viewport-sized, not full page)."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import ARGS, CHROMIUM

    saved = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for view, (width, height) in VIEWPORTS.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url + "/")
            page.wait_for_selector("body[data-sd-ready='1']", timeout=60000)
            for tab, label in TABS.items():
                open_tab(page, tab, label)
                page.wait_for_timeout(1500 if tab == "settings" else 500)
                path = out / f"{tab}-{view}.png"
                page.screenshot(path=str(path))
                saved.append(path)
            page.close()
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    from tests.browser.conftest import start_ui_server

    with tempfile.TemporaryDirectory() as tmp:
        server = start_ui_server(make_data_dir(Path(tmp)))
        try:
            for path in shoot(server.url, args.out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
