"""Extensions: install from a local git repository, update after a new commit, disable, refusal when exposed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from modules.extensions import manager
from modules.extensions.api import CallbackRegistry, ScriptRunner

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

SCRIPT = '''
from modules.extensions.api import Script
class Hello(Script):
    def title(self): return "Hello from ext"
'''


def _git(cwd: Path, *args: str) -> str:
    env_args = ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "init.defaultBranch=main"]
    return subprocess.run(["git", *env_args, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    repo = tmp_path / "upstream" / "sd-hello-ext"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "hello.py").write_text(SCRIPT, encoding="utf-8")
    (repo / "install.py").write_text("open('installed.txt', 'w').write('yes')\n", encoding="utf-8")
    (repo / "style.css").write_text("body {}\n", encoding="utf-8")
    (repo / "metadata.ini").write_text("[Extension]\nName=hello-ext\n", encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


class FakeSettings:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.values[key] = value
        return True


def test_install_update_disable_cycle(tmp_path: Path, upstream: Path) -> None:
    extensions_dir = tmp_path / "extensions"
    target = manager.install_extension(upstream.as_uri(), extensions_dir, allow_local=True)
    assert target == extensions_dir / "sd-hello-ext"
    assert (target / "installed.txt").read_text() == "yes"  # install.py ran in the extension folder
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".install-")]  # temp clone cleaned up

    [ext] = manager.discover_extensions(extensions_dir)
    assert ext.enabled and ext.canonical_name == "hello-ext" and ext.stylesheet() is not None
    assert ext.git is not None and len(ext.git.version) == 8 and ext.git.branch == "main"
    first_commit = ext.git.commit_hash

    runner = ScriptRunner(callbacks=CallbackRegistry())
    assert runner.load(None, [e.path for e in manager.discover_extensions(extensions_dir) if e.enabled]) == []
    assert runner.titles() == ["Hello from ext"]

    assert manager.check_for_updates(ext) == "latest"
    (upstream / "README.md").write_text("new\n", encoding="utf-8")
    _git(upstream, "add", ".")
    _git(upstream, "commit", "-q", "-m", "second")
    assert manager.check_for_updates(ext) == "behind"
    info = manager.update_extension(ext)
    assert info.commit_hash != first_commit and (target / "README.md").exists()
    assert manager.check_for_updates(ext) == "latest"

    settings = FakeSettings()
    assert manager.set_extension_enabled(settings, "sd-hello-ext", False) == ["sd-hello-ext"]
    [ext] = manager.discover_extensions(extensions_dir, disabled=manager.disabled_names(settings))
    assert not ext.enabled
    manager.set_extension_enabled(settings, "sd-hello-ext", True)
    assert manager.disabled_names(settings) == []

    with pytest.raises(manager.ExtensionError, match="already exists"):
        manager.install_extension(upstream.as_uri(), extensions_dir, allow_local=True)
    with pytest.raises(manager.ExtensionError, match="already installed"):
        manager.install_extension(upstream.as_uri(), extensions_dir, allow_local=True, dirname="other")


def test_urls_and_folder_names_are_checked(tmp_path: Path, upstream: Path) -> None:
    with pytest.raises(manager.ExtensionError, match="only https://"):
        manager.install_extension(upstream.as_uri(), tmp_path / "extensions")  # local needs the explicit flag
    for url in ("http://example.com/x.git", "git@github.com:a/b.git", "ssh://host/x", "--upload-pack=evil"):
        with pytest.raises(manager.ExtensionError):
            manager.check_url(url)
    assert manager.folder_name_for("https://github.com/a/sd-webui-foo.git") == "sd-webui-foo"
    for bad in ("..", "../evil", "a/b", ".hidden"):
        with pytest.raises(manager.ExtensionError, match="folder name"):
            manager.folder_name_for("https://github.com/a/b", bad)


def test_network_failure_has_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(manager.ExtensionError, match="could not reach the remote"):
        manager.install_extension("https://nonexistent.invalid/repo.git", tmp_path / "extensions")
    assert not (tmp_path / "extensions" / "repo").exists()


@pytest.mark.parametrize(("flags", "allowed"), [
    ({}, True),
    ({"listen": True}, False),
    ({"share": True}, False),
    ({"server_name": "0.0.0.0"}, False),
    ({"listen": True, "enable_insecure_extension_access": True}, True),
])
def test_refusal_when_exposed(flags: dict[str, Any], allowed: bool) -> None:
    ok, reason = manager.may_change_extensions(SimpleNamespace(**flags))
    assert ok is allowed
    assert ("--enable-insecure-extension-access" in reason) is (not allowed)


def test_extension_index_is_parsed(tmp_path: Path) -> None:
    index = {"tags": {"script": "Scripts"}, "extensions": [
        {"name": "Hello", "url": "https://github.com/a/hello.git", "tags": ["script"], "added": "2023-01-01"}]}
    path = tmp_path / "index.json"
    path.write_text(json.dumps(index), encoding="utf-8")
    parsed = manager.load_extension_index(path.as_uri())
    assert parsed.tags == {"script": "Scripts"} and parsed.extensions[0]["name"] == "Hello"
    with pytest.raises(manager.ExtensionError, match="not valid JSON"):
        manager.parse_extension_index("{", "x")
    with pytest.raises(manager.ExtensionError, match="needs a name and a url"):
        manager.parse_extension_index('{"extensions": [{"name": "x"}]}', "x")
    with pytest.raises(manager.ExtensionError, match="http"):
        manager.load_extension_index("ftp://example.com/index.json")


def test_disable_all_modes(tmp_path: Path) -> None:
    (tmp_path / "extensions" / "user-ext").mkdir(parents=True)
    (tmp_path / "builtin" / "Lora").mkdir(parents=True)
    found = manager.discover_extensions(tmp_path / "extensions", tmp_path / "builtin", disable_all="extra")
    assert {(e.name, e.enabled) for e in found} == {("Lora", True), ("user-ext", False)}
    found = manager.discover_extensions(tmp_path / "extensions", tmp_path / "builtin", disable_all="all")
    assert not any(e.enabled for e in found)


def test_missing_requirements_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "extensions"
    for name, meta in (("base-ext", "[Extension]\nName=Base\n"), ("needs", "[Extension]\nRequires=base, other|alt\n")):
        (root / name).mkdir(parents=True)
        (root / name / "metadata.ini").write_text(meta, encoding="utf-8")
    found = manager.discover_extensions(root, with_git=False)
    assert manager.missing_requirements(found) == {"needs": ["other|alt"]}
    found = manager.discover_extensions(root, disabled=["base-ext"], with_git=False)
    assert manager.missing_requirements(found) == {"needs": ["base", "other|alt"]}
