"""`modules.compat.run_installer`: an extension's install.py that runs pip itself (sd-dynamic-prompts calls
`subprocess.check_call([sys.executable, "-m", "pip", "install", ...])`, past `launch.run_pip`'s guard) still cannot
leave the web UI's packages broken: afterwards a moved app package is put back and the run fails naming the
extension and the package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from modules.compat import installer, run_installer


def _extension(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "extensions" / "sd-own-pip"
    folder.mkdir(parents=True)
    script = folder / "install.py"
    script.write_text(body, encoding="utf-8")
    return script


def test_an_installer_that_breaks_an_app_package_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    script = _extension(tmp_path, "import pathlib, sys\n"
                                  "assert sys.argv[0] == __file__ and sys.path[0] == str(pathlib.Path(__file__).parent)\n"
                                  "pathlib.Path(__file__).with_name('ran').write_text('pip ran')\n")
    ran = script.with_name("ran")
    commands: list[list[str]] = []
    monkeypatch.setattr(installer, "app_requirements", lambda path=None: {"numpy": Requirement("numpy>=1.26")})
    monkeypatch.setattr(run_installer, "app_requirements", installer.app_requirements)
    monkeypatch.setattr(installer, "installed_version",
                        lambda name: "1.21.0" if ran.exists() and not commands else "2.0.0")

    def run(command: list[str], **kwargs: object) -> str:
        commands.append(list(command))
        return ""

    monkeypatch.setattr(installer, "run", run)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))

    assert run_installer.main([str(script)]) == 1
    assert ran.read_text() == "pip ran"
    err = capsys.readouterr().err
    assert "extension 'sd-own-pip': its install.py changed numpy 1.21.0 (the web UI needs numpy>=1.26)" in err, err
    assert "rolled back to numpy==2.0.0" in err
    assert commands == [[installer.python, "-m", "pip", "install", "numpy==2.0.0"]]


def test_a_harmless_installer_passes_with_its_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert run_installer.main([str(_extension(tmp_path, "print('nothing to do')\n"))]) == 0
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    failing = _extension(tmp_path / "b", "raise SystemExit(3)\n")
    assert run_installer.main([str(failing)]) == 3
