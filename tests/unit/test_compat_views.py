"""The A1111 views of `modules.compat`: `shared.opts`/`OptionInfo` over the app's settings, `shared.state` between
jobs, the clear failure for A1111 internals, the Gradio 3 idioms and `InputAccordion`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pytest

from modules.compat import gradio3
from modules.compat.host import HOST, NoRunningAppError
from modules.compat.imports import missing_internal
from modules.compat.options import OptionInfo1111, opts, typed_option
from modules.compat.state import state
from modules.compat.ui_components import InputAccordion, ToolButton
from modules.settings import OptionRegistry, Settings


@dataclass(eq=False)
class FakeApp:
    settings: Settings
    jobs: Any = field(default=None)


class NoJobs:
    def current(self) -> None:
        return None


@pytest.fixture
def app() -> Iterator[FakeApp]:
    fake = FakeApp(Settings(registry=OptionRegistry()), NoJobs())
    HOST.bind(fake)  # type: ignore[arg-type]
    yield fake
    HOST.unbind(fake)  # type: ignore[arg-type]


def test_option_info_becomes_a_typed_option() -> None:
    check = typed_option("a", OptionInfo1111(False, "A flag", section=("s", "S")).info("more").needs_restart())
    assert (check.component, check.value_type, check.section.label, check.needs_restart) == ("checkbox", "bool", "S",
                                                                                             True)
    assert "more" in check.info
    assert typed_option("n", OptionInfo1111(5, "N")).value_type == "int"
    drop = typed_option("d", OptionInfo1111("a", "D", gr.Dropdown, lambda: {"choices": ["a", "b"]}))
    assert (drop.component, drop.choices) == ("dropdown", ("a", "b"))
    slider = typed_option("s", OptionInfo1111(0.5, "S", gr.Slider, {"minimum": 0, "maximum": 1, "step": 0.1}))
    assert (slider.component, slider.value_type, slider.maximum) == ("slider", "float", 1)
    assert typed_option("i", OptionInfo1111(3, "I", gr.Slider, {"minimum": 0, "maximum": 9})).validate(2.5) == 2.5
    assert typed_option("m", OptionInfo1111(["x"], "M")).component == "dropdown_multi"


def test_opts_reads_and_writes_the_bound_apps_settings(app: FakeApp) -> None:
    calls: list[str] = []
    opts.add_option("tp_word", OptionInfo1111("cat", "Word", onchange=lambda: calls.append("changed")))
    assert opts.tp_word == "cat" and getattr(opts, "tp_missing", "default") == "default"
    opts.tp_word = "dog"
    assert app.settings.get("tp_word") == "dog" and calls == ["changed"]
    seen: list[Any] = []
    opts.onchange("tp_word", lambda: seen.append(opts.tp_word))
    assert seen == ["dog"]  # call=True runs it now
    opts.set("tp_word", "owl")
    assert seen == ["dog", "owl"] and opts.data["tp_word"] == "owl" and "tp_word" in opts.data_labels


def test_views_without_an_app_say_so() -> None:
    if HOST.running():
        pytest.skip("an app is bound in this process")
    with pytest.raises(NoRunningAppError, match="no web UI app is running"):
        _ = opts.samples_format


def test_state_between_jobs(app: FakeApp) -> None:
    assert state.interrupted is False and state.job_count == 0 and state.textinfo is None


def test_missing_internals_are_named() -> None:
    exc = ModuleNotFoundError("No module named 'ldm.modules'", name="ldm.modules")
    assert missing_internal(exc) == "ldm.modules (the LDM model tree (ldm.*) of A1111's repositories)"
    exc2 = ImportError("cannot import name 'sd_hijack' from 'modules' (/x/modules/__init__.py)", name="modules")
    assert (missing_internal(exc2) or "").startswith("modules.sd_hijack (A1111's model hijack")
    assert missing_internal(ModuleNotFoundError("No module named 'dynamicprompts'", name="dynamicprompts")) is None
    import modules.ui_common  # noqa: F401  (a module that is there, asked for a name it lacks: images-browser)

    exc3 = ImportError("cannot import name 'no_such' from 'modules.ui_common' (/x/modules/ui_common.py)",
                       name="modules.ui_common")
    assert missing_internal(exc3) == "modules.ui_common.no_such (an A1111 name; the module is there, this name is not)"


def test_gradio3_idioms_and_input_accordion() -> None:
    g3 = gradio3.module()
    with gr.Blocks() as demo, g3.Box():
        with InputAccordion(True, label="Ext", elem_id="ext_acc") as enabled:
            box = g3.Textbox(label="t").style(container=False)
            button = g3.Button("b")
            button.click(fn=None, inputs=box, outputs=box, _js="(x) => x", show_progress=False)
            ToolButton("x", elem_id="ext_tool")
        image = g3.Image(source="webcam", tool="sketch", type="pil")
    assert isinstance(box, gr.Textbox) and isinstance(gr.Textbox(render=False), g3.Textbox)
    assert image.sources == ["webcam"] and g3.Dropdown.update(value=1) == {"value": 1, "__type__": "update"}
    components = {c["props"].get("elem_id"): c for c in demo.get_config_file()["components"]}
    assert components["ext_acc-checkbox"]["type"] == "checkbox" and components["ext_acc-checkbox"]["props"]["value"]
    assert components["ext_acc"]["type"] == "accordion" and components["ext_acc"]["props"]["open"] is True
    assert components["ext_tool"]["type"] == "button" and "tool" in components["ext_tool"]["props"]["elem_classes"]
    assert enabled.accordion.parent is not None and box.parent is not None
