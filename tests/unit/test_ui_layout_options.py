"""Rules behind the UI layout settings (modules/ui/layout_options.py, modules/ui/theme.py) and the --gradio-debug
start-up notice; the acceptance tests in tests/acceptance/test_ui_*settings.py drive them through the app."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr

from modules.cli.flag_warnings import flag_warnings
from modules.cli.flags import parse_flags
from modules.ui.layout_options import REORDER_CATEGORIES, ordered_categories, scale_for_upscaler
from modules.ui.theme import cache_file, load_theme


def fake_ctx(tmp_path: Path | None = None, **settings: Any) -> Any:
    store = SimpleNamespace(get=lambda key: settings.get(key))
    paths = SimpleNamespace(tmp_dir=tmp_path or Path("/nonexistent"))
    return SimpleNamespace(settings=store, paths=paths)


def test_ui_reorder_list_ranks_listed_parts_after_the_part_at_their_position() -> None:
    assert ordered_categories(fake_ctx()) == list(REORDER_CATEGORIES)
    # A1111: default index i sorts at 2i, the j-th listed part at 2j+1
    order = ordered_categories(fake_ctx(ui_reorder_list=["seed", "cfg"]))
    assert order[:4] == ["prompt", "seed", "image", "cfg"]
    assert sorted(order) == sorted(REORDER_CATEGORIES)


def test_theme_from_the_cache_file_and_built_ins(tmp_path: Path) -> None:
    ctx = fake_ctx(tmp_path, gradio_theme="someone/pretty", gradio_themes_cache=True)
    cached = cache_file(ctx, "someone/pretty")
    assert cached == tmp_path / "gradio_themes" / "someone_pretty.json"
    cached.parent.mkdir(parents=True)
    gr.themes.Ocean().dump(str(cached))
    assert load_theme(ctx).primary_500 == gr.themes.Ocean().primary_500
    assert isinstance(load_theme(fake_ctx(tmp_path, gradio_theme="gradio/soft")), gr.themes.Soft)
    assert isinstance(load_theme(fake_ctx(tmp_path, gradio_theme="Default")), gr.themes.Default)


def test_set_scale_by_reads_the_scale_in_the_upscaler_name() -> None:
    on = fake_ctx(set_scale_by_when_changing_upscaler=True)
    assert scale_for_upscaler(on, "R-ESRGAN 4x+")["value"] == 4
    assert scale_for_upscaler(on, "DAT x3")["value"] == 3
    assert "value" not in scale_for_upscaler(on, "Lanczos")
    assert "value" not in scale_for_upscaler(fake_ctx(), "R-ESRGAN 4x+")


def test_gradio_debug_says_it_has_no_effect() -> None:
    def warnings(*argv: str) -> list[str]:
        return flag_warnings(parse_flags(list(argv), env={}, stderr=io.StringIO()), True, True)

    assert any("--gradio-debug has no effect here" in w for w in warnings("--gradio-debug"))
    assert not any("--gradio-debug" in w for w in warnings())
