"""Extensions tab as a user meets it (A1111 `ui_extensions.py`): a notice when nothing is installed; the Available
tab's tag filters, order and search over an index loaded from a file:// URL, and its per-row Install button (which
installs a local git repository, and is refused on a `--listen` server); Backup/Restore saves a config state,
shows it, and restoring it at the next start checks the recorded commit out again and re-enables what it had
enabled (`restore_config_state_file`)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modules.cli.flags import INSTALL_ROOT
from tests.acceptance.conftest import WebUIFactory, open_ui
from tests.browser.conftest import fill_text

pytestmark = pytest.mark.browser
TAG = f"h1-{uuid.uuid4().hex[:8]}"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(path: Path, commits: int = 1) -> list[str]:
    """A git repository with `commits` commits of scripts/<name>.py; returns the commit hashes."""
    (path / "scripts").mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    hashes = []
    for i in range(commits):
        (path / "scripts" / f"{path.name.replace('-', '_')}.py").write_text(f"VERSION = {i}\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"v{i}")
        hashes.append(git(path, "rev-parse", "HEAD"))
    return hashes


@pytest.fixture(scope="module", autouse=True)
def forget_our_config_states() -> Iterator[None]:
    """Config states are written in the install folder (A1111 `config_states/`); remove the ones this module
    wrote (they name our temporary data dirs)."""
    yield
    for path in (INSTALL_ROOT / "config_states").glob("*.json"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if TAG in text or "pytest-" in text:
            path.unlink(missing_ok=True)


def write_index(folder: Path) -> tuple[Path, Path]:
    """An index with four entries (one a real local repository); returns (index file, alpha's repository)."""
    alpha = folder / "alpha-tool"
    make_repo(alpha)
    entries = [
        {"name": "Alpha Tool", "url": alpha.as_uri(), "description": "alpha does things", "tags": ["script"],
         "added": "2023-01-01", "created_at": "2022-01-01T00:00:00Z", "stars": 5},
        {"name": "Beta Ads", "url": "https://example.invalid/beta.git", "description": "beta sells",
         "tags": ["ads"], "added": "2023-06-01", "stars": 1},
        {"name": "Gamma Lang", "url": "https://example.invalid/gamma.git", "description": "gamma translates",
         "tags": ["localization"], "added": "2023-03-01"},
        {"name": "Zeta Tool", "url": "https://example.invalid/zeta.git", "description": "zeta does more",
         "tags": ["script", "extras"], "added": "2024-01-01", "stars": 50},
    ]
    index = folder / "index.json"
    index.write_text(json.dumps({"tags": {"script": "Script", "ads": "Ads", "extras": "Extras"},
                                 "extensions": entries}))
    return index, alpha


def names_shown(page: Any) -> list[str]:
    return [name.strip() for name in page.locator("#extensions_available table tbody tr td:first-child a")
            .all_inner_texts()]


def wait_names(page: Any, expected: list[str]) -> None:
    try:
        _wait_names(page, expected)
    except Exception:
        raise AssertionError(f"expected {expected}, shown {names_shown(page)}") from None


def _wait_names(page: Any, expected: list[str]) -> None:
    page.wait_for_function("(want) => JSON.stringify([...document.querySelectorAll('#extensions_available table "
                           "tbody tr td:first-child a')].map(a => a.innerText.trim())) === JSON.stringify(want)",
                           arg=expected, timeout=20000)


def toggle_tag(page: Any, tag: str) -> None:
    page.locator("#extensions_hide_tags label").filter(has_text=tag).first.click()


def open_available(page: Any, index: Path) -> None:
    page.click("#tab_extensions-button")
    page.click("#extensions_available_tab-button")
    fill_text(page, "extensions_index_url", index.as_uri())
    page.click("#extensions_index_load")
    page.wait_for_selector("#extensions_available table", timeout=30000)


def test_available_filters_order_search_and_install(webui_app: WebUIFactory, browser: Any, tmp_path: Path) -> None:
    index, _alpha = write_index(tmp_path)
    app = webui_app(["--api"], checkpoints={})
    page = open_ui(browser, app.url, height=1200)
    page.click("#tab_extensions-button")
    page.wait_for_selector("#extensions_none", state="visible", timeout=30000)
    assert "No extensions are installed" in page.inner_text("#extensions_none")

    open_available(page, index)
    wait_names(page, ["Zeta Tool", "Alpha Tool"])  # ads and localization hidden, newest first
    assert "hidden: 2" in page.inner_text("#extensions_available_count")
    page.locator("#extensions_order label").filter(has_text="a-z").click()
    wait_names(page, ["Alpha Tool", "Zeta Tool"])
    toggle_tag(page, "ads")  # shown again
    wait_names(page, ["Alpha Tool", "Beta Ads", "Zeta Tool"])
    page.locator("#extensions_order label").filter(has_text="stars").click()
    wait_names(page, ["Zeta Tool", "Alpha Tool", "Beta Ads"])
    toggle_tag(page, "extras")  # the index's own tag hides Zeta
    wait_names(page, ["Alpha Tool", "Beta Ads"])
    page.locator("#extensions_showing_type label").filter(has_text="show").click()  # only the checked tags
    wait_names(page, ["Zeta Tool", "Gamma Lang"])
    page.locator("#extensions_filtering_type label").filter(has_text="and").click()  # all checked tags at once
    wait_names(page, [])
    page.locator("#extensions_filtering_type label").filter(has_text="or").click()
    page.locator("#extensions_showing_type label").filter(has_text="hide").click()
    wait_names(page, ["Alpha Tool", "Beta Ads"])
    fill_text(page, "extensions_search", "ALPHA")
    wait_names(page, ["Alpha Tool"])

    page.locator("#extensions_available tr", has_text="Alpha Tool").locator("button", has_text="Install").click()
    page.wait_for_function("document.querySelector('#extensions_index_install_result')?.innerText"
                           ".includes('Installed into')", timeout=60000)
    assert (app.data_dir / "extensions" / "alpha-tool" / "scripts" / "alpha_tool.py").is_file()
    wait_names(page, [])  # now tagged "installed", which is hidden by default
    toggle_tag(page, "installed")
    wait_names(page, ["Alpha Tool"])
    row = page.locator("#extensions_available tr", has_text="Alpha Tool")
    assert "Installed" in row.inner_text() and row.locator("button").count() == 0
    page.click("#extensions_installed_tab-button")
    page.wait_for_function("document.querySelector('#extensions_table')?.innerText.includes('alpha-tool')",
                           timeout=20000)
    assert not page.is_visible("#extensions_none")


def test_index_install_is_refused_on_a_listening_server(webui_app: WebUIFactory, browser: Any,
                                                        tmp_path: Path) -> None:
    index, _alpha = write_index(tmp_path)
    app = webui_app(["--listen"], checkpoints={})
    page = open_ui(browser, app.url, height=1200)
    open_available(page, index)
    wait_names(page, ["Zeta Tool", "Alpha Tool"])
    page.locator("#extensions_available tr", has_text="Alpha Tool").locator("button", has_text="Install").click()
    page.wait_for_function("document.querySelector('#extensions_index_install_result')?.innerText"
                           ".includes('--enable-insecure-extension-access')", timeout=30000)
    assert not (app.data_dir / "extensions" / "alpha-tool").exists()
    page.click("#extensions_backup_tab-button")
    page.click("#extension_backup_restore")
    page.wait_for_function("document.querySelector('#extension_backup_result')?.innerText"
                           ".includes('--enable-insecure-extension-access')", timeout=30000)


def test_backup_saves_a_state_and_restore_brings_it_back_at_next_start(
        webui_app: WebUIFactory, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    origins = tmp_path_factory.mktemp("origins")
    one = make_repo(origins / "ext-one", commits=2)
    make_repo(origins / "ext-two")
    data_dir = tmp_path_factory.mktemp("backup-data")

    def prepare(folder: Path) -> None:
        (folder / "extensions").mkdir(exist_ok=True)
        for name in ("ext-one", "ext-two"):
            git(folder / "extensions", "clone", "-q", str(origins / name), name)

    app = webui_app(["--api"], checkpoints={}, data_dir=data_dir, prepare=prepare)
    page = open_ui(browser, app.url, height=1200)
    page.click("#tab_extensions-button")
    page.click("#extensions_backup_tab-button")
    fill_text(page, "config_backup_name", TAG)
    page.click("#config_backup_save")
    page.wait_for_function("document.querySelector('#extension_backup_result')?.innerText.includes('Saved')",
                           timeout=30000)
    view = page.locator("#extension_backup_view")
    page.wait_for_function("document.querySelector('#extension_backup_view')?.innerText.includes('ext-two')",
                           timeout=20000)
    assert TAG in view.inner_text() and one[1][:8] in view.inner_text()
    saved = [p for p in (INSTALL_ROOT / "config_states").glob(f"*_{TAG}.json")]
    assert len(saved) == 1 and json.loads(saved[0].read_text())["extensions"]["ext-one"]["commit_hash"] == one[1]

    # the user moves ext-one to another commit and disables ext-two (Apply also saves a pre-apply backup)
    git(data_dir / "extensions" / "ext-one", "checkout", "-q", one[0])
    page.click("#extensions_installed_tab-button")
    page.locator("#extensions_enabled label").filter(has_text="ext-two").click()
    page.click("#extensions_apply")
    page.wait_for_function("document.querySelector('#extensions_result')?.innerText.includes('Saved')",
                           timeout=30000)
    assert json.loads((data_dir / "config.json").read_text())["disabled_extensions"] == ["ext-two"]

    page.click("#extensions_backup_tab-button")
    page.click("#extension_backup_refresh")
    page.locator("#extension_backup_saved_configs input").click()
    page.locator("[role=option]", has_text=TAG).first.click()
    page.locator("#extension_backup_restore_type label").filter(has_text="both").click()
    page.click("#extension_backup_restore")
    page.wait_for_function("document.querySelector('#extension_backup_result')?.innerText.includes('next start')",
                           timeout=30000)
    result = page.inner_text("#extension_backup_result")
    assert "git checkout" in result or "not a git checkout" in result  # the web UI part is reported, not done
    assert json.loads((data_dir / "config.json").read_text())["restore_config_state_file"] == str(saved[0])

    again = webui_app(["--api"], checkpoints={}, data_dir=data_dir)
    options = again.client.get("/sdapi/v1/options").json()
    assert options["restore_config_state_file"] == "" and options["disabled_extensions"] == []
    assert git(data_dir / "extensions" / "ext-one", "rev-parse", "HEAD") == one[1]
    assert "Restored extension config" in again.console
