"""Callback registry: every A1111 category fires once via fire(); a raising callback is reported, others run."""

from __future__ import annotations

import pytest

from modules.extensions.callbacks import (
    CALLBACK_CATEGORIES,
    CallbackRegistry,
    CFGDenoiserParams,
    ImageGridLoopParams,
    ImageSaveParams,
)


@pytest.mark.parametrize("category", CALLBACK_CATEGORIES)
def test_each_category_fires_once(category: str) -> None:
    registry = CallbackRegistry()
    calls: list[tuple] = []
    method = "on_infotext_pasted" if category == "infotext_pasting" else f"on_{category}"
    getattr(registry, method)(lambda *a, **k: calls.append(a))
    registry.fire(category, "param")
    assert calls == [("param",)]


def test_parameter_objects_can_be_modified_by_callbacks() -> None:
    registry = CallbackRegistry()

    def shrink(params: ImageGridLoopParams) -> None:
        params.cols, params.rows = 1, len(params.imgs)

    registry.on_image_grid(shrink)
    params = ImageGridLoopParams(imgs=["a", "b"], cols=2, rows=1)
    registry.fire("image_grid", params)
    assert (params.cols, params.rows) == (1, 2)
    registry.on_cfg_denoiser(lambda prm: setattr(prm, "x", prm.x * 2))
    cfg = CFGDenoiserParams(x=3, image_cond=None, sigma=1.0, sampling_step=0, total_sampling_steps=10,
                            text_cond=None, text_uncond=None)
    registry.fire("cfg_denoiser", cfg)
    assert cfg.x == 6


def test_raising_callback_is_reported_with_its_name_and_others_run() -> None:
    registry = CallbackRegistry()
    seen: list[str] = []
    with registry.loading_from("broken-ext/hooks.py"):
        registry.on_image_saved(lambda prm: 1 / 0, name="bad")
    registry.on_image_saved(lambda prm: seen.append(prm.filename))
    results = registry.fire("image_saved", ImageSaveParams(image=None, p=None, filename="x.png", pnginfo={}))
    assert seen == ["x.png"]
    assert results[0] is None
    assert len(registry.failures) == 1
    failure = registry.failures[0]
    assert failure.name == "broken-ext/hooks.py/image_saved/bad"
    assert "ZeroDivisionError" in failure.error


def test_ui_tabs_results_are_collected_in_order() -> None:
    registry = CallbackRegistry()
    registry.on_ui_tabs(lambda: [("blocks1", "Tab 1", "tab1")], name="one")
    registry.on_ui_tabs(lambda: [("blocks2", "Tab 2", "tab2")], name="two")
    assert registry.fire("ui_tabs") == [[("blocks1", "Tab 1", "tab1")], [("blocks2", "Tab 2", "tab2")]]


def test_same_name_is_kept_unique_and_unknown_category_is_an_error() -> None:
    registry = CallbackRegistry()
    assert registry.on_model_loaded(lambda m: "first", name="x") == "base/unknown/model_loaded/x"
    assert registry.on_model_loaded(lambda m: "second", name="x") == "base/unknown/model_loaded/x#2"
    assert registry.fire("model_loaded", None) == ["first", "second"]
    with pytest.raises(ValueError, match="unknown callback category"):
        registry.fire("on_nonsense")
    with pytest.raises(TypeError, match="callable"):
        registry.on_app_started("not a function")  # type: ignore[arg-type]


def test_compat_module_exports_every_registration_function() -> None:
    from modules import script_callbacks
    from modules.extensions.callbacks import REGISTRATION_FUNCTIONS
    for name in REGISTRATION_FUNCTIONS:
        assert callable(getattr(script_callbacks, name)), name


def test_order_hints_and_priorities() -> None:
    registry = CallbackRegistry()
    calls: list[str] = []
    names = []
    for ext in ("a", "b", "c"):
        with registry.loading_from(f"{ext}/s.py"):
            names.append(registry.on_model_loaded(lambda m, ext=ext: calls.append(ext)))
    # b asks to run before a; c is prioritized by the user
    order = registry.order("model_loaded", hints={names[1]: ([names[0]], [])}, prioritized=[names[2]])
    assert order == [names[2], names[1], names[0]]
    registry.fire("model_loaded", None)
    assert calls == ["c", "b", "a"]
    # a cycle keeps registration order instead of failing
    assert len(registry.order("model_loaded", hints={names[0]: ([names[1]], []), names[1]: ([names[0]], [])})) == 3
