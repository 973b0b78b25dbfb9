"""Layout settings of the "User interface" / "UI alternatives" / "Settings in UI" sections act on the page that
`./webui.sh` serves (A1111 applies them when the UI is built, "requires Reload UI").

Each test starts the app through `create_app` twice — with A1111's defaults and with the setting changed in
config.json — and reads the page's layout from Gradio's `/config` (the component tree the browser renders), so it
fails when the setting is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import RunningApp, WebUIFactory

CHANGED = {
    "ui_tab_order": ["Settings", "img2img"], "hidden_tabs": ["Train"], "ui_reorder_list": ["seed"],
    "gradio_theme": "gradio/soft", "samplers_in_dropdown": False, "hide_samplers": ["Euler", "Heun"],
    "dimensions_and_batch_together": False, "hires_fix_show_sampler": True, "hires_fix_show_prompts": True,
    "txt2img_settings_accordion": True, "img2img_settings_accordion": True, "compact_prompt_box": True,
    "extra_options_txt2img": ["eta_noise_seed_delta", "CLIP_stop_at_last_layers", "tiling"],
    "extra_options_cols": 2, "extra_options_accordion": True, "sd_checkpoint_dropdown_use_short": True,
}
CHECKPOINTS = {"photo/sd15.safetensors": "sd1"}


class Page:
    """The served page's component tree: components by elem_id, parents, and document order."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.components = {c["id"]: c for c in config["components"]}
        self.parent: dict[int, int] = {}
        self.order: list[int] = []

        def walk(node: dict[str, Any]) -> None:
            self.order.append(node["id"])
            for child in node.get("children", []) or []:
                self.parent[child["id"]] = node["id"]
                walk(child)

        walk(config["layout"])
        self.by_elem = {c["props"].get("elem_id"): c for c in config["components"] if c.get("props", {}).get("elem_id")}

    def get(self, elem_id: str) -> dict[str, Any]:
        return self.by_elem[elem_id]

    def has(self, elem_id: str) -> bool:
        return elem_id in self.by_elem

    def ancestors(self, elem_id: str) -> list[dict[str, Any]]:
        node, out = self.by_elem[elem_id]["id"], []
        while node in self.parent:
            node = self.parent[node]
            if node in self.components:
                out.append(self.components[node])
        return out

    def shown(self, elem_id: str) -> bool:
        """Visible itself and inside no hidden container."""
        chain = [self.by_elem[elem_id], *self.ancestors(elem_id)]
        return all(c.get("props", {}).get("visible", True) is not False for c in chain)

    def position(self, elem_id: str) -> int:
        return self.order.index(self.by_elem[elem_id]["id"])

    def inside(self, elem_id: str, container: str) -> bool:
        return any(c.get("props", {}).get("elem_id") == container for c in self.ancestors(elem_id))

    def top_tabs(self) -> list[tuple[str, bool]]:
        """(label, visible) of the top-level tabs, in order."""
        tabs = self.by_elem["tabs"]["id"]
        return [(self.components[i]["props"]["label"], self.components[i]["props"].get("visible", True) is not False)
                for i in self.order if self.parent.get(i) == tabs]


def config_of(app: RunningApp) -> dict[str, Any]:
    response = app.client.get("/config")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def page_of(app: RunningApp) -> Page:
    return Page(config_of(app))


def own_temp_dir(data_dir: Path) -> dict[str, str]:
    """A `temp_dir` holding PNGs (one in a subfolder) and a text file."""
    folder = data_dir / "own-temp"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png", "keep.txt"):
        (folder / name).write_bytes(b"x")
    return {"temp_dir": str(folder)}


@pytest.fixture(scope="module")
def apps(webui_app: WebUIFactory) -> Iterator[tuple[RunningApp, RunningApp]]:
    def prepare_default(data_dir: Path) -> None:
        (data_dir / "config.json").write_text(json.dumps(own_temp_dir(data_dir)), encoding="utf-8")

    def prepare(data_dir: Path) -> None:
        config = CHANGED | own_temp_dir(data_dir) | {"clean_temp_dir_at_start": True}
        (data_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")

    yield (webui_app(["--api"], checkpoints=CHECKPOINTS, prepare=prepare_default),
           webui_app(["--api", "--use-textbox-seed", "--no-gradio-queue", "--gradio-debug"], prepare=prepare,
                     checkpoints=CHECKPOINTS))


def test_tab_order_and_hidden_tabs(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    assert [label for label, _ in default.top_tabs()][:6] == ["txt2img", "img2img", "Extras", "PNG Info",
                                                               "Checkpoint Merger", "Train"]
    assert all(visible for _, visible in default.top_tabs())
    tabs = changed.top_tabs()
    assert [label for label, _ in tabs][:3] == ["Settings", "img2img", "txt2img"]
    assert ("Train", False) in tabs and ("Extras", True) in tabs
    assert changed.get("tabs")["props"]["selected"] == "settings"  # the page opens on the first tab


def test_gradio_theme_is_served(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (a.client.get("/theme.css").text for a in apps)
    assert default and changed and default != changed
    import gradio as gr

    soft_primary = gr.themes.Soft().primary_500
    assert f"--primary-500: {soft_primary}" in changed and f"--primary-500: {soft_primary}" not in default


def test_sampler_radio_and_hidden_samplers(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    assert default.get("txt2img_sampling")["type"] == "dropdown"
    assert changed.get("txt2img_sampling")["type"] == "radio"
    assert changed.get("img2img_sampling")["type"] == "radio"
    default_choices = [c[0] for c in default.get("txt2img_sampling")["props"]["choices"]]
    choices = [c[0] for c in changed.get("txt2img_sampling")["props"]["choices"]]
    hires = [c[0] for c in changed.get("txt2img_hr_sampling")["props"]["choices"]]
    assert "Euler" in default_choices and "Heun" in default_choices
    assert "Euler" not in choices and "Heun" not in choices and "Euler a" in choices
    assert "Euler" not in hires and "Use same sampler" in hires


def test_batch_beside_dimensions_or_in_its_own_row(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    for tab in ("txt2img", "img2img"):
        assert default.inside(f"{tab}_batch_count", f"{tab}_column_batch")
        assert default.inside(f"{tab}_batch_count", f"{tab}_dimensions_batch_row")
        assert not changed.has(f"{tab}_column_batch")
        assert changed.inside(f"{tab}_batch_count", f"{tab}_batch_row")
        assert not changed.inside(f"{tab}_batch_count", f"{tab}_dimensions_batch_row")


def test_hires_sampler_and_prompts_rows(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    for elem_id in ("txt2img_hr_checkpoint", "txt2img_hr_sampling", "txt2img_hr_prompt", "txt2img_hr_negative_prompt"):
        assert not default.shown(elem_id)
        assert changed.shown(elem_id)


def test_settings_accordion_and_compact_prompt_box(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    for tab in ("txt2img", "img2img"):
        assert not default.has(f"{tab}_settings_accordion")
        accordion = changed.get(f"{tab}_settings_accordion")
        assert accordion["props"]["label"] == "Open for Settings" and accordion["props"]["open"] is False
        assert changed.inside(f"{tab}_steps", f"{tab}_settings_accordion")
        assert not default.inside(f"{tab}_prompt", f"{tab}_generation_tab")
        assert changed.inside(f"{tab}_prompt", f"{tab}_generation_tab")
        assert changed.inside(f"{tab}_generate", f"{tab}_generation_tab")


def test_ui_reorder_list_moves_parts_of_the_generation_panel(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    for tab in ("txt2img", "img2img"):
        # A1111 default order: sampler, accordions, dimensions, cfg, seed; "seed" listed first sorts after "prompt"
        assert default.position(f"{tab}_steps") < default.position(f"{tab}_cfg_scale") < default.position(f"{tab}_seed")
        assert changed.position(f"{tab}_seed") < changed.position(f"{tab}_steps")
    assert default.position("txt2img_hr") < default.position("txt2img_width")


def test_textbox_seed_flag(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    assert default.get("txt2img_seed")["type"] == "number"
    assert changed.get("txt2img_seed")["type"] == "textbox"
    assert changed.get("img2img_subseed")["type"] == "textbox"


def test_settings_shown_in_txt2img(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    assert not default.has("extra_options_txt2img")
    accordion = changed.get("extra_options_txt2img")
    assert accordion["type"] == "accordion" and accordion["props"]["label"] == "Options"
    for key in CHANGED["extra_options_txt2img"]:
        assert changed.inside(f"txt2img_setting_{key}", "extra_options_txt2img")
    assert not changed.has("img2img_setting_tiling")  # extra_options_img2img is empty
    # two columns per row: the first two settings share a row, the third starts the next one
    rows = [next(c["id"] for c in changed.ancestors(f"txt2img_setting_{key}") if c["type"] == "row")
            for key in CHANGED["extra_options_txt2img"]]
    assert rows[0] == rows[1] != rows[2]


def test_checkpoint_dropdown_short_names(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (page_of(a) for a in apps)
    long_names = [c[0] for c in default.get("setting_sd_model_checkpoint")["props"]["choices"]]
    short_names = [c[0] for c in changed.get("setting_sd_model_checkpoint")["props"]["choices"]]
    assert long_names and all(name.startswith("photo/sd15.safetensors") for name in long_names)
    assert short_names and all(name.startswith("sd15") and "/" not in name and ".safetensors" not in name
                               for name in short_names)


def test_clean_temp_dir_at_start(apps: tuple[RunningApp, RunningApp]) -> None:
    default, changed = (a.data_dir / "own-temp" for a in apps)
    assert (default / "a.png").is_file() and (default / "sub" / "b.png").is_file()
    assert not (changed / "a.png").exists() and not (changed / "sub" / "b.png").exists()
    assert (changed / "keep.txt").is_file()  # only PNGs are removed (A1111)


def test_no_gradio_queue_sends_events_as_http_requests(apps: tuple[RunningApp, RunningApp]) -> None:
    def queued(app: RunningApp, elem_id: str) -> bool:
        config = config_of(app)
        target = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
        [dependency] = [d for d in config["dependencies"] if [target, "click"] in d["targets"]]
        return bool(dependency["queue"])

    default, changed = apps
    assert queued(default, "txt2img_extra_networks_checkpoint_apply")
    assert not queued(changed, "txt2img_extra_networks_checkpoint_apply")
    assert queued(changed, "txt2img_generate")  # streaming progress needs Gradio's queue

