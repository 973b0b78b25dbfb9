"""User scripts: loading from scripts/ dirs, listing, argument binding (by name and positionally), hooks."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modules.extensions.api import CallbackRegistry, ScriptArgumentError, ScriptRunner

USER_SCRIPT = '''
from modules import scripts
from modules.extensions.api import ScriptArg, process_images


class Doubler(scripts.Script):
    def title(self):
        return "My Doubler"

    def ui(self, is_img2img):
        return [ScriptArg("factor", "Factor", 2, kind="number"), ScriptArg("suffix", "Suffix", "!")]

    def run(self, p, factor, suffix):
        p.steps = p.steps * factor
        p.prompt = p.prompt + suffix
        return process_images(p)


class Tagger(scripts.Script):
    def title(self):
        return "Tagger"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [ScriptArg("enabled", default=False, kind="checkbox"), ScriptArg("tag", default="x")]

    def process(self, p, enabled, tag):
        if enabled:
            p.log.append(("process", tag))

    def before_process(self, p, enabled, tag):
        p.log.append(("before_process", enabled))

    def postprocess_image(self, p, pp, enabled, tag):
        pp.image = pp.image + "-" + tag


class Img2ImgOnly(scripts.Script):
    def title(self):
        return "Only img2img"

    def show(self, is_img2img):
        return is_img2img
'''


@dataclass
class FakeParams:
    prompt: str = "cat"
    steps: int = 10
    script_name: str | None = None
    script_args: list[Any] = field(default_factory=list)
    alwayson_scripts: dict[str, Any] = field(default_factory=dict)
    log: list[Any] = field(default_factory=list)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def runner(tmp_path: Path) -> ScriptRunner:
    _write(tmp_path / "scripts", "user.py", USER_SCRIPT)
    r = ScriptRunner(is_img2img=False, callbacks=CallbackRegistry())
    assert r.load(tmp_path) == []
    return r


def _pipeline(p: FakeParams) -> dict[str, Any]:
    return {"prompt": p.prompt, "steps": p.steps}


def test_user_script_is_listed_per_tab(tmp_path: Path, runner: ScriptRunner) -> None:
    assert runner.titles() == ["My Doubler"]
    assert [s.title() for s in runner.alwayson_scripts] == ["Tagger"]
    img2img = ScriptRunner(is_img2img=True, callbacks=CallbackRegistry())
    img2img.load(tmp_path)
    assert img2img.titles() == ["My Doubler", "Only img2img"]
    assert all(s.is_img2img and not s.is_txt2img for s in img2img.scripts)


def test_selected_script_runs_with_positional_args_and_defaults(runner: ScriptRunner) -> None:
    p = FakeParams(script_name="my doubler", script_args=[3])  # title matched case-insensitively
    assert runner.run(p, process_images=_pipeline) == {"prompt": "cat!", "steps": 30}


def test_selected_script_runs_with_args_by_name(runner: ScriptRunner) -> None:
    p = FakeParams(script_name="My Doubler", script_args={"suffix": "?"})
    assert runner.run(p, process_images=_pipeline) == {"prompt": "cat?", "steps": 20}
    p = FakeParams(script_name="My Doubler")
    assert runner.run(p, 5, "#", process_images=_pipeline) == {"prompt": "cat#", "steps": 50}


def test_no_script_selected_returns_none(runner: ScriptRunner) -> None:
    assert runner.run(FakeParams(), process_images=_pipeline) is None
    assert runner.run(FakeParams(script_name="None"), process_images=_pipeline) is None


def test_bad_script_args_are_clear_errors(runner: ScriptRunner) -> None:
    with pytest.raises(ScriptArgumentError, match="takes 2 argument"):
        runner.run(FakeParams(script_name="My Doubler", script_args=[1, 2, 3]), process_images=_pipeline)
    with pytest.raises(ScriptArgumentError, match=r"unknown argument.*bogus"):
        runner.validate(FakeParams(script_name="My Doubler", script_args={"bogus": 1}))
    with pytest.raises(ScriptArgumentError, match="not found"):
        runner.validate(FakeParams(script_name="Nope"))
    with pytest.raises(ScriptArgumentError, match=r"always-on.*ghost"):
        runner.validate(FakeParams(alwayson_scripts={"Ghost": {"args": []}}))


def test_alwayson_hooks_fire_with_api_args(runner: ScriptRunner) -> None:
    p = FakeParams(alwayson_scripts={"TAGGER": {"args": [True, "hello"]}})
    runner.before_process(p)
    runner.process(p)
    assert p.log == [("before_process", True), ("process", "hello")]
    from modules.extensions.api import PostprocessImageArgs
    pp = PostprocessImageArgs("img", 0)
    runner.postprocess_image(p, pp)
    assert pp.image == "img-hello"


def test_alwayson_defaults_apply_without_args(runner: ScriptRunner) -> None:
    p = FakeParams()
    runner.before_process(p)
    runner.process(p)
    assert p.log == [("before_process", False)]


def test_raising_hook_is_reported_and_job_continues(tmp_path: Path) -> None:
    _write(tmp_path / "scripts", "bad_hook.py", '''
        from modules.extensions.api import AlwaysVisible, Script
        class Boom(Script):
            def title(self): return "Boom"
            def show(self, is_img2img): return AlwaysVisible
            def process(self, p): raise ValueError("kaput")
        class Fine(Script):
            def title(self): return "Fine"
            def show(self, is_img2img): return AlwaysVisible
            def process(self, p): p.log.append("fine")
        ''')
    r = ScriptRunner(callbacks=CallbackRegistry())
    r.load(tmp_path)
    p = FakeParams()
    r.process(p)
    assert p.log == ["fine"]
    assert len(r.hook_errors) == 1 and "Boom" in str(r.hook_errors[0]) and "kaput" in str(r.hook_errors[0])


def test_process_images_outside_a_run_is_a_clear_error() -> None:
    from modules.extensions.api import process_images
    with pytest.raises(RuntimeError, match="only be called from a script's run"):
        process_images(FakeParams())
