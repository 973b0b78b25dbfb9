"""A broken script file (syntax error, exception, sys.exit) is skipped with its name; loading goes on."""

from __future__ import annotations

from pathlib import Path

from modules.extensions.api import CallbackRegistry, ScriptRunner

GOOD = '''
from modules.extensions.api import Script
class Good(Script):
    def title(self): return "Good"
'''


def test_broken_scripts_are_skipped_and_named(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "a_syntax.py").write_text("def broken(:\n", encoding="utf-8")
    (scripts / "b_raises.py").write_text("raise RuntimeError('no deps')\n", encoding="utf-8")
    (scripts / "c_exits.py").write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    (scripts / "d_title.py").write_text(
        "from modules.extensions.api import Script\nclass T(Script):\n    pass\n", encoding="utf-8")
    (scripts / "z_good.py").write_text(GOOD, encoding="utf-8")
    runner = ScriptRunner(callbacks=CallbackRegistry())
    errors = runner.load(tmp_path)
    assert runner.titles() == ["Good"]
    messages = [str(e) for e in errors] + [str(e) for e in runner.load_errors]
    assert any("a_syntax.py" in m and "syntax error" in m for m in messages)
    assert any("b_raises.py" in m and "no deps" in m for m in messages)
    assert any("c_exits.py" in m and "sys.exit(3)" in m for m in messages)
    assert any("d_title.py" in m and "title()" in m for m in messages)


def test_extension_scripts_are_loaded_with_callbacks_named_after_the_extension(tmp_path: Path) -> None:
    ext = tmp_path / "extensions" / "my-ext"
    (ext / "scripts").mkdir(parents=True)
    (ext / "scripts" / "hook.py").write_text(
        "from modules import script_callbacks\n"
        "from modules.extensions.api import Script\n"
        "class E(Script):\n    def title(self): return 'Ext script'\n", encoding="utf-8")
    registry = CallbackRegistry()
    (ext / "scripts" / "cb.py").write_text(
        "import modules.extensions.api as api\n"
        "REG = None\n", encoding="utf-8")
    runner = ScriptRunner(callbacks=registry)
    assert runner.load(None, [ext]) == []
    assert runner.titles() == ["Ext script"]
    assert runner.scripts[0].extension == "my-ext"
    with registry.loading_from("my-ext/cb.py"):
        name = registry.on_app_started(lambda demo, app: None)
    assert name == "my-ext/cb.py/app_started"


def test_old_style_script_callbacks_register_on_the_default_registry(tmp_path: Path) -> None:
    from modules.extensions.callbacks import default_registry
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "oldstyle.py").write_text(
        "from modules import script_callbacks\n"
        "def started(demo, app):\n    pass\n"
        "script_callbacks.on_app_started(started)\n", encoding="utf-8")
    runner = ScriptRunner()
    try:
        assert runner.load(tmp_path) == []
        assert "base/oldstyle.py/app_started" in default_registry.names("app_started")
    finally:
        default_registry.remove_script("base/oldstyle.py")


def test_unload_fires_script_unloaded_and_drops_the_files_callbacks(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "cbs.py").write_text(
        "from modules.extensions.api import Script\n"
        "from modules import script_callbacks\n"
        "class S(Script):\n    def title(self): return 'S'\n", encoding="utf-8")
    registry = CallbackRegistry()
    runner = ScriptRunner(callbacks=registry)
    runner.load(tmp_path)
    seen: list[str] = []
    with registry.loading_from("base/cbs.py"):
        registry.on_script_unloaded(lambda: seen.append("unloaded"))
        registry.on_model_loaded(lambda m: None)
    runner.unload()
    assert seen == ["unloaded"]
    assert runner.titles() == [] and registry.names("model_loaded") == []


def test_preload_adds_flags_and_broken_preload_is_reported(tmp_path: Path) -> None:
    import argparse

    from modules.extensions import manager

    good = tmp_path / "extensions" / "good"
    bad = tmp_path / "extensions" / "bad"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    (good / "preload.py").write_text("def preload(parser):\n    parser.add_argument('--my-flag')\n", encoding="utf-8")
    (bad / "preload.py").write_text("raise ImportError('missing')\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    errors = manager.run_preloads(manager.discover_extensions(tmp_path / "extensions", with_git=False), parser)
    assert parser.parse_args(["--my-flag", "x"]).my_flag == "x"
    assert len(errors) == 1 and "bad" in errors[0] and "missing" in errors[0]


def test_build_runners_imports_each_file_once(tmp_path: Path) -> None:
    from modules.extensions.api import build_runners

    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "counted.py").write_text(
        "from modules.extensions.api import Script\n"
        "class S(Script):\n"
        "    def title(self): return 'Counted'\n", encoding="utf-8")
    (scripts / "cb.py").write_text(
        "from modules import script_callbacks\n"
        "script_callbacks.on_before_ui(lambda: None)\n"
        "script_callbacks.on_before_ui(lambda: None)\n", encoding="utf-8")
    from modules.extensions.callbacks import default_registry
    try:
        txt2img, img2img, errors = build_runners(tmp_path)
        assert errors == [] and txt2img.titles() == ["Counted"] and img2img.titles() == ["Counted"]
        assert not txt2img.scripts[0].is_img2img and img2img.scripts[0].is_img2img
        assert default_registry.names("before_ui") == ["base/cb.py/before_ui", "base/cb.py/before_ui#2"]
    finally:
        default_registry.remove_script("base/cb.py")


def test_old_style_basedir_is_the_extension_folder(tmp_path: Path) -> None:
    ext = tmp_path / "extensions" / "based"
    (ext / "scripts").mkdir(parents=True)
    (ext / "scripts" / "b.py").write_text(
        "from modules import scripts\n"
        "BASE = scripts.basedir()\n"
        "class B(scripts.Script):\n"
        "    def title(self): return BASE\n", encoding="utf-8")
    runner = ScriptRunner(callbacks=CallbackRegistry())
    assert runner.load(None, [ext]) == []
    assert Path(runner.titles()[0]) == ext
