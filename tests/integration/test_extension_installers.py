"""Extension installers (`install.py`) with A1111's `launch` API, run by the launcher as real subprocesses, and the
guard that keeps an installer from breaking the web UI's own packages."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

import launch
from modules.cli.flags import parse_flags
from modules.compat import installer

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "extensions"
OLD_GRADIO = "import launch\nlaunch.run_pip('install --no-index gradio==3.41.2', 'gradio 3 for the old UI')\n"


def _launcher(data_dir: Path) -> launch.Launcher:
    flags = parse_flags(["--data-dir", str(data_dir)], env={})
    return launch.Launcher(flags, root=REPO, python=sys.executable, env={"PATH": os.environ.get("PATH", "")},
                           run=launch.run_command, out=open(os.devnull, "w"), system="Linux")


def test_installers_use_launch_and_cannot_replace_the_apps_packages(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    extensions = tmp_path / "extensions"
    shutil.copytree(FIXTURES / "sd-webui-test-prompts", extensions / "sd-webui-test-prompts")
    (extensions / "sd-webui-old-gradio").mkdir()
    (extensions / "sd-webui-old-gradio" / "install.py").write_text(OLD_GRADIO, encoding="utf-8")
    gradio_before = importlib.metadata.version("gradio")

    launch.run_extension_installers(_launcher(tmp_path))

    ran = (extensions / "sd-webui-test-prompts" / "install-ran.txt").read_text(encoding="utf-8")
    assert ran.startswith("numpy installed: True; tag: ") and ran.endswith("skip_install: False")
    err = capsys.readouterr().err
    assert "extension 'sd-webui-old-gradio': refused to install gradio==3.41.2" in err, err
    assert f"runs gradio {gradio_before}" in err
    assert importlib.metadata.version("gradio") == gradio_before


def test_requested_requirements_and_conflicts(tmp_path: Path) -> None:
    needs = {"gradio": Requirement("gradio>=6.0,<7"), "numpy": Requirement("numpy>=1.26")}
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("dynamicprompts[attentiongrabber]==0.31.0\n# comment\nsend2trash>=1.8\n", encoding="utf-8")
    names = [str(r) for r in installer.requested(["install", "-U", "gradio==6.2", "-r", str(reqs), "./local"])]
    assert names == ["gradio==6.2", "dynamicprompts[attentiongrabber]==0.31.0", "send2trash>=1.8"]
    assert installer.conflicts({"gradio": "3.41.2", "numpy": "2.0.0", "other": "1.0"}, needs) == \
        ["gradio 3.41.2 (the web UI needs gradio<7,>=6.0)"]
    installer.check_request("ext", ["install", "numpy>=1.0", "somepackage"], needs)  # compatible: allowed
    with pytest.raises(installer.InstallRefusedError, match=r"extension 'ext': refused to install numpy<1\.0"):
        installer.check_request("ext", ["install", "numpy<1.0"], needs)


def test_a_dependency_pip_would_change_is_refused_before_installing(monkeypatch: pytest.MonkeyPatch) -> None:
    needs = {"numpy": Requirement("numpy>=1.26")}
    ran: list[Any] = []
    monkeypatch.setattr(installer, "planned_changes", lambda args: {"some-tool": "1.0", "numpy": "1.21.0"})
    monkeypatch.setattr(installer, "run", lambda *a, **k: ran.append(a) or "")
    with pytest.raises(installer.InstallRefusedError, match=r"pip would change numpy 1\.21\.0"):
        installer.guarded_pip("ext", ["install", "some-tool"], "some-tool", False, needs)
    assert ran == []


def test_a_package_broken_by_pip_is_rolled_back(monkeypatch: pytest.MonkeyPatch) -> None:
    needs = {"numpy": Requirement("numpy>=1.26")}
    commands: list[list[str]] = []

    def version(name: str) -> str | None:  # numpy 2.0.0 until pip ran, then 1.21.0
        return None if name != "numpy" else "2.0.0" if not commands else "1.21.0"

    monkeypatch.setattr(installer, "planned_changes", lambda args: None)  # pip could not tell (offline)
    monkeypatch.setattr(installer, "installed_version", version)
    monkeypatch.setattr(installer, "run", lambda command, **k: commands.append(list(command)) or "")
    with pytest.raises(installer.InstallRefusedError, match=r"changed numpy 1\.21\.0 .*rolled back to numpy==2\.0\.0"):
        installer.guarded_pip("ext", ["install", "old-thing"], "old-thing", False, needs)
    assert commands[-1][-3:] == ["pip", "install", "numpy==2.0.0"]


def test_launch_names_for_extensions() -> None:
    assert launch.is_installed("numpy") and not launch.is_installed("surely_not_installed_package_xyz")
    assert launch.git_tag()
    assert launch.args.skip_install is False
    assert launch.run([sys.executable, "-c", "print('ok')"]).strip() == "ok"
    with pytest.raises(RuntimeError, match="Couldn't do it"):
        launch.run(f'"{sys.executable}" -c "raise SystemExit(3)"', errdesc="Couldn't do it")
